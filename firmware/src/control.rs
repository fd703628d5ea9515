//! The control task: [`Device::tick`] once a second and the watchdog, fed only here
//! (a stuck executor or a stuck control loop resets the board; 1003 bit 6 says so
//! after the reset). And the LED task: the core's frame for the balancer's state on
//! GPIO 25.
//!
//! [`Device::tick`]: p1lb_core::device::Device::tick

use embassy_futures::select::select;
use embassy_rp::gpio::Output;
use embassy_rp::watchdog::Watchdog;
use embassy_time::{Duration, Instant, Timer};
use p1lb_core::led;

use crate::shared::{Shared, now_ms};

/// The watchdog's timeout: a few missed ticks.
pub const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(4);

/// Runs forever.
#[embassy_executor::task]
pub async fn run(shared: &'static Shared, mut watchdog: Watchdog) {
    loop {
        // The next tick, or a telegram (which may bring the tick forward).
        let next = shared.device(|d| d.balancer.next_tick_ms());
        select(
            Timer::at(Instant::from_millis(next)),
            shared.wake_control.wait(),
        )
        .await;
        let now = now_ms();
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
        let now = now_ms();
        let state = shared.device(|d| d.map.status().state);
        if led::is_on(state, now) {
            pin.set_high();
        } else {
            pin.set_low();
        }
        // The next edge of this state's frame; a new state shows within a slot.
        let next = led::next_change_ms(state, now).min(now + led::SLOT_MS);
        Timer::at(Instant::from_millis(next)).await;
    }
}
