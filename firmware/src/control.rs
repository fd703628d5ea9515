//! The control task: [`Device::tick`] once a second and the watchdog, fed only here
//! (a stuck executor or a stuck control loop resets the board; 1003 bit 6 says so
//! after the reset). And the LED task: the core's frame for the balancer's state on
//! GPIO 25.
//!
//! Which resets count as "watchdog reset" (1003 bit 6): the watchdog's REASON
//! register alone cannot tell, because the RP2040 boot ROM reboots through the same
//! watchdog timer — after every UF2 copy (`watchdog_reboot(0, …)`, which writes 0 to
//! SCRATCH4), after `reset_usb_boot` and for RAM images (which write its vector magic
//! 0xb007c0d3 to SCRATCH4). REASON then reads "timer" although our watchdog never
//! fired, so every firmware update would look like a crash. As pico-sdk does
//! (`watchdog_enable` / `watchdog_enable_caused_reboot`), [`start_watchdog`] writes
//! [`WATCHDOG_MAGIC`] to SCRATCH4 before arming the timer, and
//! [`watchdog_caused_reset`] is true only when REASON is set *and* SCRATCH4 still
//! holds that magic. The watchdog block is not reset by its own reset (its scratch
//! registers survive; a power-on or RUN-pin reset clears them and REASON), and every
//! boot-ROM reboot overwrites SCRATCH4 before it arms the timer, so the magic is seen
//! after a reset by our watchdog and after nothing else. It is written again at every
//! boot, as the watchdog starts.
//!
//! [`Device::tick`]: p1lb_core::device::Device::tick

use embassy_futures::select::select;
use embassy_rp::gpio::Output;
use embassy_rp::watchdog::Watchdog;
use embassy_time::{Duration, Timer};
use p1lb_core::led;

use crate::shared::{Shared, at, core_now};

/// The watchdog's timeout: a few missed ticks.
pub const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(4);

/// Written to watchdog SCRATCH4 while our watchdog runs: pico-sdk's
/// `WATCHDOG_NON_REBOOT_MAGIC`, so a tool that knows pico-sdk reads it alike.
pub const WATCHDOG_MAGIC: u32 = 0x6ab7_3121;

/// The scratch register that holds [`WATCHDOG_MAGIC`] (the boot ROM's reboot
/// overwrites it).
const MAGIC_SCRATCH: usize = 4;

/// Whether the last reset was our watchdog's timeout rather than a power-on or a
/// boot-ROM reboot (see the module documentation). Read before [`start_watchdog`].
pub fn watchdog_caused_reset(watchdog: &mut Watchdog) -> bool {
    watchdog.reset_reason().is_some() && watchdog.get_scratch(MAGIC_SCRATCH) == WATCHDOG_MAGIC
}

/// Marks SCRATCH4 as ours and starts the watchdog: from here a hang resets the board.
pub fn start_watchdog(watchdog: &mut Watchdog) {
    watchdog.set_scratch(MAGIC_SCRATCH, WATCHDOG_MAGIC);
    watchdog.start(WATCHDOG_TIMEOUT);
}

/// Runs forever.
#[embassy_executor::task]
pub async fn run(shared: &'static Shared, mut watchdog: Watchdog) {
    loop {
        // The next tick, or a telegram (which may bring the tick forward).
        let next = shared.device(|d| d.balancer.next_tick());
        select(Timer::at(at(next)), shared.wake_control.wait()).await;
        let now = core_now();
        if shared.device(|d| d.tick(now)).changed {
            shared.decision.signal(());
        }
        watchdog.feed(WATCHDOG_TIMEOUT);
    }
}

/// Drives the LED forever.
#[embassy_executor::task]
pub async fn led(shared: &'static Shared, mut pin: Output<'static>) {
    loop {
        let now = core_now();
        let state = shared.device(|d| d.map.status().state);
        if led::is_on(state, now) {
            pin.set_high();
        } else {
            pin.set_low();
        }
        // The next slot: the next edge of the frame, and a new state within a slot.
        let next = led::next_look(now);
        Timer::at(at(next)).await;
    }
}
