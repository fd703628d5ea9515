//! The oracle: the best limit possible each second, knowing the house load exactly and
//! acting with no delay. Its car (identical to the real one, but following at once)
//! charges the most energy any balancer could within the upper limit: the 100 % mark.
//!
//! `limit = clamp(upper (1015) − highest house phase current, 0, min(1010, 1000))`,
//! and 0 when that is below the charger minimum (1025). "Highest" is over the phases the
//! car charges on (and the connection has, 1011): for a three-phase car that is every
//! phase; a single-phase car is limited only by the house load on its own phase, which
//! is what a perfect balancer could give it.
//!
//! [`Reactive`] is the yardstick for controllers that do not forecast the house load:
//! it knows the house load exactly, but only as of the last valid telegram, sets the
//! oracle's limit for it at each tick, and the real car follows with its real delay — so
//! it sees every load change as the device does (measured at the start of a second,
//! telegram at +0.2 s, tick at +1 s, car at +2 s). It obeys the rules that cost energy
//! (stale data, ≥ 3 s, never raises the limit; 1022 s without a valid telegram means the
//! fallback limit 1021) and is otherwise generous: it never misjudges the car's draw,
//! may jump back up after fallback, and is not held to any time above the upper limit or
//! the fuse rating. Two policies: with no hold it rides every gap of a cycling load
//! (and, one telegram late, overshoots at every gap's end); with a hold it budgets for
//! the load's peak over the last seconds, as headroom mode does. Each bounds what a
//! balancer without a forecast can reach under that policy; with no margin below the
//! upper limit, or with headroom mode's.

use std::collections::VecDeque;

use p1lb_core::balancer;
use p1lb_core::config::Config;

use super::house::Phases;

/// The oracle's limit, mA, for the house currents `house_a` (A per phase).
pub fn limit_ma(cfg: &Config, cap_ma: u32, car_phases: Phases, house_a: [f64; 3]) -> u32 {
    limit_for(
        cfg,
        cap_ma,
        0,
        highest_on_car_phases(cfg, car_phases, house_a),
    )
}

/// The highest house current on the phases the car charges on (and the balancer
/// watches), A; −∞ when none.
fn highest_on_car_phases(cfg: &Config, car_phases: Phases, house_a: [f64; 3]) -> f64 {
    let n = usize::from(cfg.phases());
    house_a
        .iter()
        .zip(car_phases.mask())
        .take(n)
        .filter(|(_, used)| *used)
        .map(|(a, _)| *a)
        .fold(f64::NEG_INFINITY, f64::max)
}

/// The oracle's limit for a highest house current `highest` (A), mA, `margin_ma` below
/// the upper limit.
fn limit_for(cfg: &Config, cap_ma: u32, margin_ma: u32, highest: f64) -> u32 {
    let highest_ma = if highest.is_finite() {
        (highest * 1000.0).round() as i64
    } else {
        // The car is on a phase the balancer does not watch: nothing limits it.
        i64::MIN / 2
    };
    let max = i64::from(cfg.charger_max_ma().min(cap_ma));
    let upper = i64::from(cfg.upper_ma()) - i64::from(margin_ma);
    let limit = (upper - highest_ma).clamp(0, max);
    let limit = u32::try_from(limit).unwrap_or(0);
    if limit < cfg.charger_min_ma() {
        0
    } else {
        limit
    }
}

/// A reactive yardstick: see the module documentation.
#[derive(Debug, Clone)]
pub struct Reactive {
    cfg: Config,
    cap_ma: u32,
    car_phases: Phases,
    hold_s: u32,
    /// How far below the upper limit it aims, mA.
    margin_ma: u32,
    /// Valid readings, newest last: when, and the highest house current (A) on the
    /// phases the car uses; only those within `hold_s` (at least the newest) are kept.
    readings: VecDeque<(u64, f64)>,
    /// When the last valid reading arrived, or boot.
    last_valid_ms: u64,
    limit_ma: u32,
    /// The last load rise (edge of `HEADROOM_EDGE_MA` or more between readings).
    rise_ms: Option<u64>,
    /// The open gap (after a drop): when it began, and whether it is ridden at once.
    gap: Option<(u64, bool)>,
    /// How long the last closed gap lasted.
    last_gap_ms: Option<u64>,
    /// Since when a raise has been wanted (the rules raise only once the room has
    /// held for 1019 s, as state 1's wait).
    raise_since_ms: Option<u64>,
}

impl Reactive {
    /// At boot (time 0): limit 0. With `hold_s` = 0 it sets the limit for the last
    /// reading's house load (it rides every gap of a cycling load); with `hold_s` > 0
    /// for the highest house load of the readings of the last `hold_s` seconds — it
    /// budgets for a cycling load's peak — except in a gap headroom mode rides at once
    /// (the load that dropped was on for `HEADROOM_LONG_MS` or more and the last gap
    /// lasted as long), where only the readings since the gap opened count: headroom
    /// mode's policy, with perfect knowledge. It aims `margin_ma` below the upper limit
    /// (headroom mode keeps [`balancer::HEADROOM_MARGIN_MA`]). Like the balancer it
    /// raises only once the room has held for state 1's wait (1019).
    pub fn new(cfg: &Config, cap_ma: u32, car_phases: Phases, hold_s: u32, margin_ma: u32) -> Self {
        Reactive {
            cfg: *cfg,
            cap_ma,
            car_phases,
            hold_s,
            margin_ma,
            readings: VecDeque::new(),
            last_valid_ms: 0,
            limit_ma: 0,
            rise_ms: None,
            gap: None,
            last_gap_ms: None,
            raise_since_ms: None,
        }
    }

    /// A valid telegram arrived at `now_ms`, measured while the house drew `house_a`.
    pub fn on_reading(&mut self, now_ms: u64, house_a: [f64; 3]) {
        let highest = highest_on_car_phases(&self.cfg, self.car_phases, house_a);
        if let Some(&(_, prev)) = self.readings.back() {
            // Headroom mode's edges and long-gap rule, on the exact load.
            let edge = f64::from(balancer::HEADROOM_EDGE_MA) / 1000.0;
            let long = balancer::HEADROOM_LONG.total_millis();
            if highest - prev >= edge {
                if let Some((start, _)) = self.gap.take() {
                    self.last_gap_ms = Some(now_ms - start);
                }
                self.rise_ms = Some(now_ms);
            } else if prev - highest >= edge {
                let on_long = self.rise_ms.is_some_and(|r| now_ms - r >= long);
                let gaps_long = self.last_gap_ms.is_none_or(|g| g >= long);
                let start = self.gap.map_or(now_ms, |(s, _)| s);
                self.gap = Some((start, on_long && gaps_long));
            }
        }
        self.readings.push_back((now_ms, highest));
        let keep_from = now_ms.saturating_sub(u64::from(self.hold_s) * 1000);
        while self.readings.len() > 1 && self.readings.front().is_some_and(|r| r.0 <= keep_from) {
            self.readings.pop_front();
        }
        self.last_valid_ms = now_ms;
    }

    /// The value sent to the charger at the tick `now_ms`, mA.
    pub fn tick(&mut self, now_ms: u64) -> u32 {
        let silent = now_ms.saturating_sub(self.last_valid_ms);
        self.limit_ma = if silent >= u64::from(self.cfg.fallback_s()) * 1000 {
            self.cfg.fallback_ma().min(self.cap_ma)
        } else {
            match self.readings.back() {
                None => 0,
                Some(&(t, _)) => {
                    // In a gap ridden at once, only the readings since it opened.
                    let since = match self.gap {
                        Some((start, true)) => start,
                        _ => 0,
                    };
                    let peak = self
                        .readings
                        .iter()
                        .filter(|r| r.0 >= since)
                        .map(|r| r.1)
                        .fold(f64::NEG_INFINITY, f64::max);
                    let want = limit_for(&self.cfg, self.cap_ma, self.margin_ma, peak);
                    if want <= self.limit_ma {
                        self.raise_since_ms = None;
                        want
                    } else if now_ms.saturating_sub(t) >= balancer::FRESH.total_millis() {
                        self.limit_ma
                    } else {
                        // A raise once the room has held for state 1's wait (1019).
                        let since = *self.raise_since_ms.get_or_insert(now_ms);
                        let waited = now_ms.saturating_sub(since)
                            + balancer::WAIT_TOLERANCE.total_millis()
                            >= u64::from(self.cfg.lower_wait_s()) * 1000;
                        if waited { want } else { self.limit_ma }
                    }
                }
            }
        };
        if self.limit_ma < self.cfg.charger_min_ma() {
            0
        } else {
            self.limit_ma
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_under_the_upper_limit() {
        let cfg = Config::default();
        let cap = cfg.charger_max_ma();
        assert_eq!(limit_ma(&cfg, cap, Phases::Three, [2.0, 3.0, 1.0]), 16_000);
        assert_eq!(limit_ma(&cfg, cap, Phases::Three, [2.0, 12.5, 1.0]), 9_500);
        // Below the charger minimum: pause.
        assert_eq!(limit_ma(&cfg, cap, Phases::Three, [17.0, 3.0, 1.0]), 0);
        // Export leaves the whole charger.
        assert_eq!(
            limit_ma(&cfg, cap, Phases::Three, [-9.0, -9.0, -9.0]),
            16_000
        );
        // A single-phase car on L1 only minds L1.
        assert_eq!(
            limit_ma(&cfg, cap, Phases::One(0), [8.0, 20.0, 1.0]),
            14_000
        );
        // The override cap.
        assert_eq!(
            limit_ma(&cfg, 10_000, Phases::Three, [1.0, 1.0, 1.0]),
            10_000
        );
    }
}
