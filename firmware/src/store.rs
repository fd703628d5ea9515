//! The flash: saves (1091) and restores (1092) into the core's [`ConfigStore`]
//! on the last four 4 KiB sectors of the 2 MiB flash. An erase stops code fetch from
//! flash with interrupts off for up to 400 ms, long enough to overrun the P1 UART's
//! FIFO, so a save waits for the quiet gap right after a telegram (at most
//! [`QUIET_WAIT`], for a silent meter).

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

/// The store on its sectors.
pub fn store(
    flash: Flash<'static, FLASH, Blocking, FLASH_SIZE>,
) -> Option<ConfigStore<StoreFlash>> {
    ConfigStore::new(BlockingAsync::new(flash), STORE_OFFSET..FLASH_SIZE as u32)
}

/// Saves `config` in the quiet gap after a telegram; false when it did not reach
/// flash (the caller answers 04 and keeps the staged values).
pub async fn save(
    shared: &Shared,
    store: &mut Option<ConfigStore<StoreFlash>>,
    config: &Config,
) -> bool {
    shared.p1_quiet.reset();
    let _ = with_timeout(QUIET_WAIT, shared.p1_quiet.wait()).await;
    match store {
        Some(store) => store.save(config).await.is_ok(),
        None => false,
    }
}
