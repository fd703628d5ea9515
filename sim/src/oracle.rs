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
use p1lb_core::config::{Config, MAX_CHARGERS};
use p1lb_core::time::Instant;

use super::house::Phases;
use p1lb_core::balancer::share::{Candidate, Turns};

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

/// One car of a multi-charger yardstick: what the sharing needs to know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    /// The grid phases the car draws on (the truth: the yardsticks know the wiring).
    pub phases: [bool; 3],
    /// Its charger's maximum (1041…, capped by 1000), mA.
    pub max_ma: u32,
    /// Its charger's priority (1042…).
    pub priority: u8,
}

impl Seat {
    /// Charger `k` (0-based) of `cfg` with a car on `car_phases`, under the cap `cap_ma`.
    pub fn of(cfg: &Config, cap_ma: u32, k: usize, car_phases: Phases) -> Seat {
        Seat {
            phases: car_phases.mask(),
            max_ma: cfg.max_of_ma(k).min(cap_ma),
            priority: cfg.priority_of(k),
        }
    }
}

/// The upper limit the chargers share under, mA: 1015, or the site maximum 1026 when
/// set below it (as the balancer's laws apply it).
pub fn shared_upper_ma(cfg: &Config) -> u32 {
    let (upper, site) = (cfg.upper_ma(), cfg.site_max_ma());
    if site != 0 && site < upper {
        site
    } else {
        upper
    }
}

/// The configuration of one phase's budget for several chargers: no minimum (the
/// sharing's), at most every charger's maximum together, under the site maximum.
fn phase_config(cfg: &Config, capacity_ma: u32) -> Config {
    let mut c = *cfg;
    let _ = c.set_charger_min_ma(0);
    let _ = c.set_charger_max_ma(capacity_ma.clamp(6000, 63000));
    let upper = shared_upper_ma(cfg);
    if upper < cfg.upper_ma() {
        let _ = c.set_upper_ma(upper);
    }
    c
}

/// The shares of `budget` (mA per grid phase) among `seats` (`wants`: a car is
/// plugged in), with the core's rules (see [`p1lb_core::balancer::share`]).
fn shares(
    turns: &mut Turns,
    now_ms: u64,
    budget: [u32; 3],
    min_ma: u32,
    seats: &[Seat],
    wants: &[bool],
) -> Vec<u32> {
    let cands: Vec<Candidate> = seats
        .iter()
        .zip(wants)
        .take(MAX_CHARGERS)
        .map(|(s, &w)| Candidate {
            phases: s.phases,
            max_ma: s.max_ma,
            priority: s.priority,
            wants: w,
            reserved_ma: 0,
            weight_dv: 0,
        })
        .collect();
    // (No power budget: the weights do not matter.)
    let out = turns.share(
        Instant::from_millis(now_ms),
        budget,
        u64::MAX,
        min_ma,
        &cands,
    );
    (0..seats.len())
        .map(|k| out.get(k).map_or(0, |s| s.sent_ma))
        .collect()
}

/// The oracle for several chargers: each second, every phase's room under the upper
/// limit (or the site maximum) for the house load of that second exactly, shared among
/// the cars that are plugged in with the core's rules (the charger minimum, priority,
/// turns, water-filling), and applied to identical cars with no delay.
#[derive(Debug, Clone)]
pub struct SharedOracle {
    cfg: Config,
    seats: Vec<Seat>,
    turns: Turns,
}

impl SharedOracle {
    /// For `seats` (charger k's car at `seats[k]`).
    pub fn new(cfg: &Config, seats: Vec<Seat>) -> Self {
        SharedOracle {
            cfg: *cfg,
            seats,
            turns: Turns::new(Instant::ZERO),
        }
    }

    /// The limits for the second `now_ms` with the house drawing `house_a`; `wants[k]`:
    /// car k is plugged in.
    pub fn limits_ma(&mut self, now_ms: u64, house_a: [f64; 3], wants: &[bool]) -> Vec<u32> {
        let upper = i64::from(shared_upper_ma(&self.cfg));
        let n = usize::from(self.cfg.phases());
        let budget: [u32; 3] = core::array::from_fn(|p| {
            if p < n {
                let house = (house_a[p] * 1000.0).round() as i64;
                u32::try_from((upper - house).max(0)).unwrap_or(0)
            } else {
                u32::MAX / 4
            }
        });
        shares(
            &mut self.turns,
            now_ms,
            budget,
            self.cfg.charger_min_ma(),
            &self.seats,
            wants,
        )
    }
}

/// A reactive yardstick for several chargers (the causal bound of a multi-charger run):
/// each grid phase's budget is a [`Reactive`] of its own over that phase's house load
/// as of each valid telegram (the same hold of the peak, gap riding, stale-data,
/// fallback and raise-wait rules as the single-charger yardstick, the margin it is
/// given, the upper limit or the site maximum), and the budgets are shared among the
/// plugged-in cars with the core's rules at each tick (minimum, priority, turns,
/// water-filling). It knows the wiring and whether each car is plugged in, never
/// misjudges the cars' draw, and is held to no time above the upper limit or the fuse.
#[derive(Debug, Clone)]
pub struct SharedReactive {
    phases: [Reactive; 3],
    cfg: Config,
    seats: Vec<Seat>,
    turns: Turns,
}

impl SharedReactive {
    /// At boot: every budget 0; `hold_s` and `margin_ma` as for [`Reactive::new`].
    pub fn new(cfg: &Config, seats: Vec<Seat>, hold_s: u32, margin_ma: u32) -> Self {
        let capacity = seats
            .iter()
            .map(|s| s.max_ma)
            .fold(0u32, u32::saturating_add);
        let pcfg = phase_config(cfg, capacity);
        let cap = pcfg.charger_max_ma();
        let phase = |p: usize| Reactive::new(&pcfg, cap, Phases::One(p), hold_s, margin_ma);
        SharedReactive {
            phases: [phase(0), phase(1), phase(2)],
            cfg: *cfg,
            seats,
            turns: Turns::new(Instant::ZERO),
        }
    }

    /// A valid telegram arrived at `now_ms`, measured while the house drew `house_a`.
    pub fn on_reading(&mut self, now_ms: u64, house_a: [f64; 3]) {
        for r in &mut self.phases {
            r.on_reading(now_ms, house_a);
        }
    }

    /// The values for each charger at the tick `now_ms`, mA; `wants[k]`: car k is
    /// plugged in.
    pub fn tick(&mut self, now_ms: u64, wants: &[bool]) -> Vec<u32> {
        let budget: [u32; 3] = core::array::from_fn(|p| self.phases[p].tick(now_ms));
        shares(
            &mut self.turns,
            now_ms,
            budget,
            self.cfg.charger_min_ma(),
            &self.seats,
            wants,
        )
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
