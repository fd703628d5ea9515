//! The status LED: [`p1lb_core::led::is_on`] of the balancer state, on a GPIO pin (BCM
//! numbering) through rppal. Without GPIO (not a Raspberry Pi, no `/dev/gpiomem`, or
//! any rppal error) it logs one warning and ends; nothing else changes. rppal is Linux
//! only: on other systems the task logs the same kind of warning and runs without LED.

use std::sync::Arc;

use super::shared::Shared;

/// Runs forever (without a GPIO, idle: no LED is a steady state, not a task that
/// ended).
#[cfg(target_os = "linux")]
pub async fn run(shared: Arc<Shared>, bcm_pin: u8) {
    use p1lb_core::led;

    let mut pin = match rppal::gpio::Gpio::new().and_then(|g| g.get(bcm_pin)) {
        Ok(p) => p.into_output_low(),
        Err(e) => {
            tracing::warn!("LED: no GPIO here ({e}); running without the status LED");
            return std::future::pending().await;
        }
    };
    tracing::info!("LED: on BCM pin {bcm_pin}");
    loop {
        let now = shared.now();
        let state = shared.core().map.status().state;
        pin.write(led::is_on(state, now).into());
        // The next slot: the next edge of the frame, and a new state within a slot.
        let next = led::next_look(now);
        tokio::time::sleep_until(shared.instant(next)).await;
    }
}

/// Runs forever, idle: the GPIO LED (rppal) is Linux only.
#[cfg(not(target_os = "linux"))]
pub async fn run(shared: Arc<Shared>, bcm_pin: u8) {
    let _ = shared;
    tracing::warn!("LED: GPIO (BCM pin {bcm_pin}) is Linux only; running without the status LED");
    std::future::pending().await
}
