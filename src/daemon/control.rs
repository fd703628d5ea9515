//! The control task: [`Device::tick`](p1lb_core::device::Device::tick) at
//! [`next_tick`](p1lb_core::balancer::Balancer::next_tick) (once a second), the
//! status registers (1001–1004, 1119–1120, flag bits 0 and 1) and one log line per
//! state change and per fault (appearing or clearing), never one per tick.
//!
//! Under systemd it also feeds the watchdog from this loop ([`Notifier::watchdog`],
//! every [`Notifier::watchdog_interval`], waking for it when that comes before the next
//! tick), but only while the balancer really ticks: when its last due tick is more than
//! [`MAX_TICK_GAP`] old the feeding stops (one error line) and systemd restarts the
//! daemon. A loop that hangs (a blocked runtime thread, a lock never released) stops
//! feeding by itself. A `STATUS=` line goes to systemd when the state or the meter's
//! freshness changes.

use std::sync::Arc;
use std::time::Duration;

use p1lb_core::balancer::{State, TICK};
use p1lb_core::registers::Flags;
use p1lb_core::time::{Duration as CoreDuration, Instant};

use tokio::sync::oneshot;

use super::notify::Notifier;
use super::shared::{PortState, Shared};

/// The watchdog is fed only while the balancer's last due tick is at most this old.
/// Its schedule puts the next tick at most 1.25 s after a tick
/// ([`TICK`] + [`TELEGRAM_GRACE`](p1lb_core::balancer::TELEGRAM_GRACE)).
pub const MAX_TICK_GAP: CoreDuration = TICK.saturating_mul(5);

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

/// What the `STATUS=` line for systemd tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The balancer's state.
    pub state: State,
    /// No valid telegram yet.
    pub first_reading: bool,
    /// The meter data is stale (1003 bit 0).
    pub meter_stale: bool,
    /// The RS485 port.
    pub rs485: PortState,
    /// The charger does not answer (1003 bit 2).
    pub charger_silent: bool,
}

/// The `STATUS=` text for systemd: the balancer's state, the meter data's, and what
/// keeps the limit from reaching the charger (RS485 port closed, charger silent).
pub fn status_text(s: Status) -> String {
    let meter = if s.first_reading {
        "waiting for the first valid telegram"
    } else if s.meter_stale {
        "meter data stale"
    } else {
        "meter data fresh"
    };
    let mut text = format!("balancer {}; P1 {meter}", state_name(s.state));
    if s.rs485 == PortState::Closed {
        text.push_str("; RS485 port not open");
    } else if s.charger_silent {
        text.push_str("; charger not answering");
    }
    text
}

/// Runs forever. Feeds systemd's watchdog through `notifier` when it asks for one;
/// `first_tick` fires after the first tick (the daemon is then ready).
pub async fn run(shared: Arc<Shared>, notifier: Arc<Notifier>, first_tick: oneshot::Sender<()>) {
    let mut first_tick = Some(first_tick);
    let mut last_state: Option<State> = None;
    // At boot there is no reading yet: not a fault to report.
    let mut last_flags = Flags::METER_STALE;
    let mut first_reading = true;
    let mut last_status = None;
    let mut feeder = notifier.watchdog_interval().map(Feeder::new);
    loop {
        // The next tick, or a telegram (which may bring the tick forward), or the
        // watchdog's next feed.
        let mut wake = shared.core().balancer.next_tick();
        if let Some(f) = &feeder {
            wake = wake.min(f.next());
        }
        tokio::select! {
            () = tokio::time::sleep_until(shared.instant(wake)) => {}
            () = shared.wake_control.notified() => {}
        }
        let now = shared.now();
        let (d, flags, due) = {
            let mut device = shared.core();
            let due = now >= device.balancer.next_tick();
            let d = device.tick(now);
            (d, device.map.status().flags, due)
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
        if !last_flags.contains(Flags::READBACK_IMPLAUSIBLE)
            && flags.contains(Flags::READBACK_IMPLAUSIBLE)
        {
            tracing::warn!(
                count = shared.core().balancer.implausible_readbacks(),
                "charger read-back implausible (above what the car can draw, or not seen by the meter): headroom mode uses the meter alone"
            );
        } else if last_flags.contains(Flags::READBACK_IMPLAUSIBLE)
            && !flags.contains(Flags::READBACK_IMPLAUSIBLE)
        {
            tracing::info!("charger read-back plausible again");
        }
        last_flags = flags;
        let status = Status {
            state: d.state,
            first_reading,
            meter_stale: flags.contains(Flags::METER_STALE),
            rs485: shared.rs485(),
            charger_silent: flags.contains(Flags::CHARGER_SILENT),
        };
        if notifier.is_enabled() && last_status != Some(status) {
            notifier.status(&status_text(status));
            last_status = Some(status);
        }
        match feeder.as_mut().map(|f| f.on_pass(now, due)) {
            Some(Feed::Now) => {
                notifier.watchdog();
            }
            Some(Feed::Starving { gap }) => tracing::error!(
                "control: the balancer has not ticked for {gap}: no longer feeding the \
                 systemd watchdog (it will restart the daemon)"
            ),
            Some(Feed::NotYet) | None => {}
        }
        if let Some(tx) = first_tick.take() {
            let _ = tx.send(());
        }
    }
}

/// When the control loop feeds systemd's watchdog: every interval, while the
/// balancer's last due tick is at most [`MAX_TICK_GAP`] old.
#[derive(Debug, Clone)]
pub struct Feeder {
    every: CoreDuration,
    next: Instant,
    last_tick: Instant,
    starving: bool,
}

/// What [`Feeder::on_pass`] asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Send `WATCHDOG=1`.
    Now,
    /// Not due yet.
    NotYet,
    /// Due, but the balancer has not ticked for `gap`: no feed (returned once per
    /// stretch, to be logged; then [`Feed::NotYet`] until it ticks again).
    Starving {
        /// Since the last due tick.
        gap: CoreDuration,
    },
}

impl Feeder {
    /// Feeds every `every` (at least 1 ms), the first time at the first pass.
    pub fn new(every: Duration) -> Feeder {
        Feeder {
            every: CoreDuration::from(every).max(CoreDuration::from_millis(1)),
            next: Instant::ZERO,
            last_tick: Instant::ZERO,
            starving: false,
        }
    }

    /// When the next feed is due (core time): the loop wakes for it.
    pub fn next(&self) -> Instant {
        self.next
    }

    /// One pass of the loop at `now`; `ticked`: the balancer's tick was due and ran.
    pub fn on_pass(&mut self, now: Instant, ticked: bool) -> Feed {
        if ticked {
            self.last_tick = now;
        }
        if now < self.next {
            return Feed::NotYet;
        }
        self.next = now + self.every;
        let gap = now - self.last_tick;
        if gap <= MAX_TICK_GAP {
            self.starving = false;
            Feed::Now
        } else if !self.starving {
            self.starving = true;
            Feed::Starving { gap }
        } else {
            Feed::NotYet
        }
    }
}

fn log_flag(before: Flags, now: Flags, flag: Flags, raised: &str, cleared: &str) {
    match (before.contains(flag), now.contains(flag)) {
        (false, true) => tracing::warn!("{raised}"),
        (true, false) => tracing::info!("{cleared}"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: u64) -> Instant {
        Instant::from_millis(t)
    }

    #[test]
    fn the_watchdog_is_fed_every_interval_while_the_balancer_ticks() {
        let mut f = Feeder::new(Duration::from_millis(500));
        // The first pass feeds.
        assert_eq!(f.on_pass(ms(0), true), Feed::Now);
        assert_eq!(f.next(), ms(500));
        assert_eq!(f.on_pass(ms(300), false), Feed::NotYet);
        assert_eq!(f.on_pass(ms(500), false), Feed::Now);
        assert_eq!(f.on_pass(ms(1000), true), Feed::Now);
        // A late pass: the next feed counts from it, no burst.
        assert_eq!(f.on_pass(ms(2600), true), Feed::Now);
        assert_eq!(f.next(), ms(3100));
    }

    #[test]
    fn the_watchdog_starves_when_the_balancer_stops_ticking_and_recovers() {
        let mut f = Feeder::new(Duration::from_secs(1));
        assert_eq!(f.on_pass(ms(0), true), Feed::Now);
        // The loop runs on (woken for the watchdog), the balancer never ticks again.
        let mut feeds = Vec::new();
        for t in (1000..=9000).step_by(1000) {
            feeds.push(f.on_pass(ms(t), false));
        }
        let gap = MAX_TICK_GAP;
        let fed = feeds.iter().filter(|&&x| x == Feed::Now).count();
        assert_eq!(fed as u64, gap.secs(), "{feeds:?}");
        assert_eq!(
            feeds[fed],
            Feed::Starving {
                gap: gap + CoreDuration::from_secs(1)
            }
        );
        assert!(feeds[fed + 1..].iter().all(|&x| x == Feed::NotYet));
        // It ticks again: fed again.
        assert_eq!(f.on_pass(ms(10_000), true), Feed::Now);
    }

    #[test]
    fn the_status_line_names_what_keeps_the_limit_from_the_charger() {
        let base = Status {
            state: State::Normal,
            first_reading: false,
            meter_stale: false,
            rs485: PortState::Open,
            charger_silent: false,
        };
        assert_eq!(status_text(base), "balancer normal; P1 meter data fresh");
        let silent = Status {
            charger_silent: true,
            ..base
        };
        assert_eq!(
            status_text(silent),
            "balancer normal; P1 meter data fresh; charger not answering"
        );
        let closed = Status {
            rs485: PortState::Closed,
            ..silent
        };
        assert!(status_text(closed).ends_with("; RS485 port not open"));
        let unused = Status {
            rs485: PortState::Unused,
            meter_stale: true,
            ..base
        };
        assert_eq!(status_text(unused), "balancer normal; P1 meter data stale");
    }
}
