//! The flash: saves (1091) and restores (1092) into the core's [`ConfigStore`]
//! on the last four 4 KiB sectors of the 2 MiB flash. An erase stops code fetch from
//! flash with interrupts off for up to 400 ms (a page program for up to 3 ms), long
//! enough to overrun the P1 UART's FIFO, so a save waits for the quiet gap right after
//! a telegram (at most [`QUIET_WAIT`], for a silent meter).
//!
//! That gap opens with the RS485 exchange the telegram's control tick starts (the new
//! limit, 0x4100; and the status read when one is due): a stall during an exchange
//! keeps the transceiver's driver on over the charger's reply, overruns the UART1 RX
//! FIFO (32 bytes: 33 ms at 9600 baud; a status reply is 79 bytes) or splits a reply
//! at the silence framer, and the client retries 0.8 s later. So the save then lets the
//! tick and the RS485 task run and waits until no exchange is on the bus
//! ([`Shared::bus_busy`]), at most [`BUS_WAIT`]: the limit goes out at once and the
//! flash work follows it. A save is never dropped: after either wait it goes ahead.

use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_rp::flash::{Blocking, Flash};
use embassy_rp::peripherals::FLASH;
use embassy_time::{Duration, with_timeout};
use p1lb_core::config::Config;
use p1lb_core::config_store::ConfigStore;

use crate::shared::Shared;

/// The Pico's flash size.
pub const FLASH_SIZE: usize = 2 * 1024 * 1024;
/// Where the store begins (the last 16 KiB; `memory.x` keeps the program below it).
pub const STORE_OFFSET: u32 = (FLASH_SIZE - 16 * 1024) as u32;

/// The flash as the store sees it.
pub type StoreFlash = BlockingAsync<Flash<'static, FLASH, Blocking, FLASH_SIZE>>;

/// The longest a save waits for the end of a telegram.
pub const QUIET_WAIT: Duration = Duration::from_millis(1500);

/// Then the longest it waits for the RS485 exchange on the bus to end. At 9600 baud a
/// tick's 0x4100 write and a status read take ~0.15 s with a few ms of reply delay
/// (~0.26 s at 4800). The longest save after it — one that frees a sector: ~0.1 s of
/// CPU before the erase (measured in the emulator), the erase (0.4 s datasheet
/// maximum) and a few pages — still ends within 0.3 + 0.1 + 0.42 ≈ 0.82 s of the
/// telegram, before the next one of a 1 s meter (the gap is ~0.87–0.92 s). Longer exchanges (a silent charger's retries,
/// lower baud rates) do not hold a save longer: the P1 gap comes first. A save
/// answers within [`QUIET_WAIT`] + [`BUS_WAIT`] + its flash work, well inside the 3 s
/// that `p1lb config` waits.
pub const BUS_WAIT: Duration = Duration::from_millis(300);

/// The store on its sectors.
pub fn store(
    flash: Flash<'static, FLASH, Blocking, FLASH_SIZE>,
) -> Option<ConfigStore<StoreFlash>> {
    ConfigStore::new(BlockingAsync::new(flash), STORE_OFFSET..FLASH_SIZE as u32)
}

/// Saves `config` in the quiet gap after a telegram, once the RS485 exchange of that
/// telegram's tick is over; false when it did not reach flash (the caller answers 04
/// and keeps the staged values).
pub async fn save(
    shared: &Shared,
    store: &mut Option<ConfigStore<StoreFlash>>,
    config: &Config,
) -> bool {
    shared.p1_quiet.reset();
    let _ = with_timeout(QUIET_WAIT, shared.p1_quiet.wait()).await;
    let _ = with_timeout(BUS_WAIT, bus_quiet(shared)).await;
    match store {
        Some(store) => store.save(config).await.is_ok(),
        None => false,
    }
}

/// Returns when the control tick that the telegram woke has run, the RS485 task has
/// started the exchange it asked for, and no exchange is on the bus any more.
async fn bus_quiet(shared: &Shared) {
    loop {
        if shared.bus_busy() {
            // Re-checked after the wake: the task may start the next exchange at once.
            shared.bus_idle.wait().await;
        } else if shared.wake_control.signaled() || shared.decision.signaled() {
            // The tick, or the RS485 task after it, has yet to run: both are ready,
            // so one round of the executor lets them start the exchange.
            embassy_futures::yield_now().await;
        } else {
            return;
        }
    }
}
