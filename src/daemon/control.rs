//! The control task: [`Device::tick`](p1lb_core::device::Device::tick) at
//! [`next_tick_ms`](p1lb_core::balancer::Balancer::next_tick_ms) (once a second), the
//! status registers (1001–1004, 1119–1120, flag bits 0 and 1) and one log line per
//! state change and per fault (appearing or clearing), never one per tick.

use std::sync::Arc;

use p1lb_core::balancer::State;
use p1lb_core::registers::Flags;

use super::shared::Shared;

/// A state's name for the log.
pub fn state_name(state: State) -> &'static str {
    match state {
        State::Normal => "normal",
        State::Lower => "lower limit (stepping up)",
        State::Upper => "upper limit (stepping down)",
        State::Alarm => "alarm limit (stepping down fast)",
        State::Fallback => "fallback (no valid meter data)",
    }
}

/// Runs forever.
pub async fn run(shared: Arc<Shared>) {
    let mut last_state: Option<State> = None;
    // At boot there is no reading yet: not a fault to report.
    let mut last_flags = Flags::METER_STALE;
    let mut first_reading = true;
    loop {
        // The next tick, or a telegram (which may bring the tick forward).
        let next = shared.core().balancer.next_tick_ms();
        tokio::select! {
            () = tokio::time::sleep_until(shared.instant(next)) => {}
            () = shared.wake_control.notified() => {}
        }
        let now = shared.now_ms();
        let (d, flags) = {
            let mut device = shared.core();
            let d = device.tick(now);
            (d, device.map.status().flags)
        };
        if last_state != Some(d.state) {
            tracing::info!(
                state = d.state.code(),
                sent_ma = d.sent_ma,
                limit_ma = d.limit_ma,
                "balancer: {}",
                state_name(d.state)
            );
            last_state = Some(d.state);
        } else if d.changed {
            tracing::debug!(sent_ma = d.sent_ma, limit_ma = d.limit_ma, "limit changed");
        }
        if d.changed {
            shared.decision.notify_one();
        }
        if first_reading && !flags.contains(Flags::METER_STALE) {
            tracing::info!("P1: first valid telegram");
            first_reading = false;
            last_flags.set(Flags::METER_STALE, false);
        }
        log_flag(
            last_flags,
            flags,
            Flags::METER_STALE,
            "meter data stale (no valid telegram for 3 s)",
            "meter data fresh again",
        );
        log_flag(
            last_flags,
            flags,
            Flags::CRC_FAILURES,
            "telegrams rejected (CRC or framing) in the last minute",
            "no rejected telegram for a minute",
        );
        last_flags = flags;
    }
}

fn log_flag(before: Flags, now: Flags, flag: Flags, raised: &str, cleared: &str) {
    match (before.contains(flag), now.contains(flag)) {
        (false, true) => tracing::warn!("{raised}"),
        (true, false) => tracing::info!("{cleared}"),
        _ => {}
    }
}
