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
    use super::super::car::{CarSpec, Session};
    use super::super::time::{DateTime, Stamp};
    use p1lb_core::config::CapacityMode;

    /// The capacity oracle on a hand-made run: 2.5 kW target, 100 W margin, a car that
    /// could draw 11 kW, from 17:05 (a 600 s first quarter).
    #[test]
    fn the_capacity_oracle_fills_each_quarter_budget() {
        let mut cfg = Config::default();
        cfg.set_capacity_mode(CapacityMode::Target).expect("mode");
        let mut car = CarSpec::three_phase(3600, 0.5);
        car.battery_kwh = 10.0;
        car.sessions = vec![Session {
            arrive_s: 0,
            leave_s: 3600,
            soc_start: 0.5,
            soc_target: 0.6, // 1 kWh of need
        }];
        let start = DateTime::new(2025, 1, 15, 17, 5);
        let mut o = CapacityOracle::new(&cfg, &[&car], Stamp::of(start), 2000.0);
        for t in 0..3600 {
            let at = Stamp::after(start, t);
            let house_w = match t {
                // 17:05–17:15: 1 kW.
                0..600 => 1000.0,
                // 17:15–17:30: 3 kW, above the budget by itself.
                600..1500 => 3000.0,
                // 17:30–17:45: 2 kW export for 450 s, then 1 kW.
                1500..1950 => -2000.0,
                1950..2400 => 1000.0,
                _ => 500.0,
            };
            o.second(t, at, house_w, &[11_040.0]);
        }
        o.finish();
        let q = o.quarters();
        assert_eq!(q.len(), 5);
        assert_eq!(&q[0].start.dsmr(), b"250115170000W");
        // 600 s × (2400 − 1000) W.
        assert!((q[0].ev_wh - 600.0 * 1400.0 / 3600.0).abs() < 1e-6, "{q:?}");
        assert_eq!(q[1].ev_wh, 0.0);
        assert!((q[1].import_wh - 750.0).abs() < 1e-6);
        // The export absorbed (2 kW × 450 s, 250 Wh, free) plus the budget less the
        // house's import (2400 × 900 − 1000 × 450 W·s, 475 Wh); the import is the
        // budget exactly.
        assert!((q[2].ev_wh - 725.0).abs() < 1e-6, "{q:?}");
        assert!((q[2].import_wh - 600.0).abs() < 1e-6, "{q:?}");
        // Then only the need left (1000 − 233.3 − 725 Wh).
        assert!(
            (q[3].ev_wh - (1000.0 - q[0].ev_wh - 725.0)).abs() < 1e-6,
            "{q:?}"
        );
        assert_eq!(q[4].ev_wh, 0.0);
        assert!((o.energy_kwh() - 1.0).abs() < 1e-9);

        // Following a 6 kW peak the budget is 5.9 kW: 600 s × 4.9 kW in the first
        // quarter, and 2.9 kW × 900 s in the second.
        cfg.set_capacity_mode(CapacityMode::FollowPeak)
            .expect("mode");
        car.battery_kwh = 100.0;
        let mut o = CapacityOracle::new(&cfg, &[&car], Stamp::of(start), 6000.0);
        for t in 0..1500 {
            let house_w = if t < 600 { 1000.0 } else { 3000.0 };
            o.second(t, Stamp::after(start, t), house_w, &[11_040.0]);
        }
        o.finish();
        let q = o.quarters();
        assert!((q[0].ev_wh - 600.0 * 4900.0 / 3600.0).abs() < 1e-6, "{q:?}");
        assert!((q[1].ev_wh - 900.0 * 2900.0 / 3600.0).abs() < 1e-6, "{q:?}");
        assert_eq!(q[1].ceiling_w, 6000.0);
        // Unplugged (no room, 0 W): nothing.
        let mut o = CapacityOracle::new(&cfg, &[&car], Stamp::of(start), 0.0);
        for t in 0..600 {
            o.second(t, Stamp::after(start, t), 0.0, &[0.0]);
        }
        o.finish();
        assert_eq!(o.energy_kwh(), 0.0);
    }

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

/// The capacity oracle (issue 17): the most energy the cars could take in each clock
/// quarter-hour without its average import going above the budget, knowing the whole
/// quarter's house load in advance. Per quarter:
///
/// `EV = F + clamp(B − H, 0, C − F)`, limited by the cars' remaining need, where
/// - `B = (ceiling − margin (1074)) × the quarter's seconds in the run`, the ceiling
///   being the target (1073) or, in mode 2, the larger of the target and the month's
///   peak so far (the peak on the meter before the run, then the oracle's own quarters;
///   back to 0 at a month change);
/// - `H` the house's import energy of the quarter (phases netted each second, as the
///   meter does; export does not offset import);
/// - `C` what the cars could draw over the quarter: each second, each plugged-in car at
///   the fuse oracle's limit for that second (upper limit 1015 less the house on its
///   phases, charger maximum 1010, 0 below the charger minimum 1025; shared among the
///   cars as the core does when there are several), at most its on-board charger's
///   maximum, at the second's voltages;
/// - `F` the part of `C` that absorbs the house's export in the same second (free).
///
/// A car's minimum is respected: it draws at least the minimum or nothing, so a budget
/// smaller than the minimum's power is spent by charging for part of the quarter. The
/// energy is shared among several cars in proportion to what each could draw, none
/// beyond its need (`battery × (target − state of charge on arrival)` per session).
/// The battery's taper above [`super::car::CarSpec::taper_soc`] is not modelled (the
/// oracle is an upper bound), nor an export smaller than a car's minimum (counted as
/// free although the car must import the rest of its minimum to use it).
#[derive(Debug, Clone)]
pub struct CapacityOracle {
    follow_peak: bool,
    target_w: f64,
    margin_w: f64,
    peak_w: f64,
    peak_month: (i32, u32),
    cars: Vec<CapacityCar>,
    open: Option<OpenQuarter>,
    quarters: Vec<OracleQuarter>,
}

#[derive(Debug, Clone)]
struct CapacityCar {
    sessions: Vec<super::car::Session>,
    battery_kwh: f64,
    /// The session the delivered energy is of.
    session: Option<usize>,
    delivered_wh: f64,
    energy_wh: f64,
}

impl CapacityCar {
    fn need_wh(&self) -> f64 {
        match self.session.and_then(|i| self.sessions.get(i)) {
            Some(s) => {
                let need = self.battery_kwh * 1000.0 * (s.soc_target - s.soc_start).max(0.0);
                (need - self.delivered_wh).max(0.0)
            }
            None => 0.0,
        }
    }
}

#[derive(Debug, Clone)]
struct OpenQuarter {
    start: super::time::Stamp,
    seconds: u32,
    house_ws: f64,
    free_ws: f64,
    cap_ws: Vec<f64>,
}

/// One quarter of the capacity oracle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OracleQuarter {
    /// Its start on the meter's clock.
    pub start: super::time::Stamp,
    /// Energy into the cars, Wh.
    pub ev_wh: f64,
    /// The import of the quarter with the oracle's cars, Wh.
    pub import_wh: f64,
    /// The ceiling it was held to (target, or the month's peak in mode 2), W.
    pub ceiling_w: f64,
}

impl CapacityOracle {
    /// The oracle for `cars` (charger 1's first) under `cfg`'s capacity settings
    /// (1072–1074), for a run starting at `start` with the month's peak `month_peak_w`
    /// already on the meter.
    pub fn new(
        cfg: &Config,
        cars: &[&super::car::CarSpec],
        start: super::time::Stamp,
        month_peak_w: f64,
    ) -> Self {
        let (y, m, _) = start.local.date();
        CapacityOracle {
            follow_peak: cfg.capacity_mode() == p1lb_core::config::CapacityMode::FollowPeak,
            target_w: f64::from(cfg.capacity_target_w()),
            margin_w: f64::from(cfg.capacity_margin_w()),
            peak_w: month_peak_w,
            peak_month: (y, m),
            cars: cars
                .iter()
                .map(|c| CapacityCar {
                    sessions: c.sessions.clone(),
                    battery_kwh: c.battery_kwh,
                    session: None,
                    delivered_wh: 0.0,
                    energy_wh: 0.0,
                })
                .collect(),
            open: None,
            quarters: Vec::new(),
        }
    }

    /// Second `t_s` of the run, at `at` on the meter's clock: the house's net power
    /// (W, import positive, all phases) and the most each car could draw in it (W; 0
    /// when it is not plugged in or its room is below its minimum).
    pub fn second(&mut self, t_s: u32, at: super::time::Stamp, house_w: f64, caps_w: &[f64]) {
        if at.local.second_of_day() % 900 == 0 {
            self.close();
        }
        for car in &mut self.cars {
            let now = car
                .sessions
                .iter()
                .position(|s| t_s >= s.arrive_s && t_s < s.leave_s);
            if now.is_some() && now != car.session {
                car.session = now;
                car.delivered_wh = 0.0;
            }
        }
        let n = self.cars.len();
        let q = self.open.get_or_insert_with(|| OpenQuarter {
            start: super::time::Stamp {
                local: at.local.floor_quarter(),
                summer: at.summer,
            },
            seconds: 0,
            house_ws: 0.0,
            free_ws: 0.0,
            cap_ws: vec![0.0; n],
        });
        q.seconds += 1;
        q.house_ws += house_w.max(0.0);
        let mut all = 0.0;
        for (acc, &c) in q.cap_ws.iter_mut().zip(caps_w) {
            *acc += c.max(0.0);
            all += c.max(0.0);
        }
        q.free_ws += all.min((-house_w).max(0.0));
    }

    /// Closes the quarter going on (the end of the run).
    pub fn finish(&mut self) {
        self.close();
    }

    fn close(&mut self) {
        let Some(q) = self.open.take() else {
            return;
        };
        let (y, m, _) = q.start.local.date();
        if (y, m) != self.peak_month {
            self.peak_month = (y, m);
            self.peak_w = 0.0;
        }
        let ceiling_w = if self.follow_peak {
            self.target_w.max(self.peak_w)
        } else {
            self.target_w
        };
        let budget_ws = (ceiling_w - self.margin_w).max(0.0) * f64::from(q.seconds);
        let cap_ws: f64 = q.cap_ws.iter().sum();
        let free_ws = q.free_ws.min(cap_ws);
        let want_ws = free_ws + (budget_ws - q.house_ws).clamp(0.0, cap_ws - free_ws);
        // Share in proportion to what each could draw, within each one's need.
        let mut given = vec![0.0; self.cars.len()];
        let mut left = want_ws;
        for _ in 0..3 {
            let room: Vec<f64> = self
                .cars
                .iter()
                .zip(&q.cap_ws)
                .zip(&given)
                .map(|((car, cap), g)| (car.need_wh() * 3600.0 - g).min(cap - g).max(0.0))
                .collect();
            let total: f64 = room.iter().sum();
            if left <= 1e-9 || total <= 1e-9 {
                break;
            }
            let k = (left / total).min(1.0);
            for (g, r) in given.iter_mut().zip(&room) {
                *g += r * k;
            }
            left = want_ws - given.iter().sum::<f64>();
        }
        let ev_ws: f64 = given.iter().sum();
        for (car, g) in self.cars.iter_mut().zip(&given) {
            car.delivered_wh += g / 3600.0;
            car.energy_wh += g / 3600.0;
        }
        let import_ws = q.house_ws + (ev_ws - free_ws.min(ev_ws));
        let average_w = import_ws / 900.0;
        self.peak_w = self.peak_w.max(average_w);
        self.quarters.push(OracleQuarter {
            start: q.start,
            ev_wh: ev_ws / 3600.0,
            import_wh: import_ws / 3600.0,
            ceiling_w,
        });
    }

    /// Energy into all its cars so far, kWh (closed quarters).
    pub fn energy_kwh(&self) -> f64 {
        self.cars.iter().map(|c| c.energy_wh).sum::<f64>() / 1000.0
    }

    /// Its quarters, oldest first.
    pub fn quarters(&self) -> &[OracleQuarter] {
        &self.quarters
    }
}

/// The solar oracle (issue 18): what cars charging only on surplus could take, knowing
/// the house load and the solar output exactly and acting with no delay. Each second,
/// with `surplus = −(the house's net power)` (solar output less the house's own load,
/// all phases netted, as the meter bills them): each plugged-in car in turn (charger 1's
/// first) charges if the surplus covers its minimum power (1025 on its phases, at the
/// second's voltages), at `min(surplus, its maximum, the fuse room)`, else not at all;
/// its maximum is its on-board charger's, tapered as the car's battery tapers
/// ([`super::car::CarSpec::taper_soc`]), within its charger's (1010/1041…) and the
/// cap (1000); the fuse room is [`limit_ma`]'s (the upper limit less the house on its
/// phases). Limited by each session's need (battery × (target − state of charge on
/// arrival)); a car uses what the ones before it left. It does not ramp or wait to
/// resume: an upper bound.
#[derive(Debug, Clone)]
pub struct SolarOracle {
    cfg: Config,
    cap_ma: u32,
    cars: Vec<SolarCar>,
}

#[derive(Debug, Clone)]
struct SolarCar {
    spec: super::car::CarSpec,
    max_ma: u32,
    session: Option<usize>,
    soc: f64,
    energy_wh: f64,
}

impl SolarOracle {
    /// For `cars` (charger k's at `cars[k]`) under `cfg`, the cap `cap_ma`.
    pub fn new(cfg: &Config, cap_ma: u32, cars: &[&super::car::CarSpec]) -> Self {
        SolarOracle {
            cfg: *cfg,
            cap_ma,
            cars: cars
                .iter()
                .enumerate()
                .map(|(k, c)| SolarCar {
                    spec: (*c).clone(),
                    max_ma: cfg.max_of_ma(k).min(cap_ma),
                    session: None,
                    soc: 0.0,
                    energy_wh: 0.0,
                })
                .collect(),
        }
    }

    /// The second `t` (s) with the house drawing `house_a` (A per phase, the solar
    /// output in it, export negative) at the voltages `volts`; returns the power its
    /// cars take, W.
    pub fn second(&mut self, t: u32, house_a: [f64; 3], volts: [f64; 3]) -> f64 {
        let mut surplus: f64 = -(0..3).map(|p| house_a[p] * volts[p]).sum::<f64>();
        let min_a = f64::from(self.cfg.charger_min_ma()) / 1000.0;
        let mut total = 0.0;
        for car in &mut self.cars {
            let s = &car.spec;
            let session = s
                .sessions
                .iter()
                .position(|x| t >= x.arrive_s && t < x.leave_s);
            if session != car.session {
                car.session = session;
                if let Some(i) = session {
                    car.soc = s.sessions[i].soc_start;
                }
            }
            let Some(x) = session.map(|i| s.sessions[i]) else {
                continue;
            };
            if car.soc >= x.soc_target {
                continue;
            }
            let volts_sum: f64 = volts
                .iter()
                .zip(s.phases.mask())
                .filter(|(_, used)| *used)
                .map(|(v, _)| v)
                .sum();
            let min_w = min_a * volts_sum;
            if surplus <= 0.0 || surplus < min_w {
                continue;
            }
            let taper = if car.soc > s.taper_soc {
                ((x.soc_target - car.soc) / (x.soc_target - s.taper_soc).max(1e-6)).clamp(0.1, 1.0)
            } else {
                1.0
            };
            let fuse_a = f64::from(limit_ma(&self.cfg, self.cap_ma, s.phases, house_a)) / 1000.0;
            if fuse_a <= 0.0 {
                continue;
            }
            let max_a = (s.obc_max_a * taper)
                .min(f64::from(car.max_ma) / 1000.0)
                .min(fuse_a);
            let need_w = (x.soc_target - car.soc) * s.battery_kwh * 1000.0 * 3600.0;
            let w = surplus.min(max_a * volts_sum).min(need_w).max(0.0);
            car.energy_wh += w / 3600.0;
            if s.battery_kwh > 0.0 {
                car.soc += w / 3600.0 / 1000.0 / s.battery_kwh;
            }
            surplus -= w;
            total += w;
        }
        total
    }

    /// Energy into all its cars so far, kWh.
    pub fn energy_kwh(&self) -> f64 {
        self.cars.iter().map(|c| c.energy_wh).sum::<f64>() / 1000.0
    }
}

/// The 1 A-step baseline of issue 18: a SmartEVSE-like solar controller, for the count
/// of limit changes the solar modes are compared with. At each meter reading, with the
/// grid's net power (all phases, import positive):
/// - not charging: minimum + solar starts at the minimum at once; solar only starts at
///   the minimum once the export has been at least the start surplus (1081, or the
///   minimum power of the car's phases when 0) for the start delay (1082);
/// - charging: an export of at least 1 A on the car's phases raises the limit by 1 A
///   (up to the charger's maximum); an import above 1084 lowers it by 1 A (down to the
///   minimum); at the minimum, an import above 1084 lasting the stop delay (1083) pauses
///   a solar-only charge (minimum + solar stays at the minimum);
/// - the fuse rules win: never above the room under the upper limit the house leaves
///   on the car's phases (perfect knowledge: generous), 0 when that is below the
///   minimum.
///
/// It knows the car's phases and whether it is plugged in, and reads the meter exactly.
#[derive(Debug, Clone)]
pub struct StepOneAmp {
    min_ma: u32,
    max_ma: u32,
    solar_only: bool,
    start_w: Option<f64>,
    start_delay_ms: u64,
    stop_delay_ms: u64,
    max_import_w: f64,
    limit_ma: u32,
    surplus_since: Option<u64>,
    import_since: Option<u64>,
    changes: u32,
}

/// The step of the baseline, mA.
pub const STEP_MA: u32 = 1000;

impl StepOneAmp {
    /// For charger 1 under `cfg` (its charge mode: solar only, else minimum + solar).
    pub fn new(cfg: &Config, cap_ma: u32) -> Self {
        let start = cfg.solar_start_surplus_w();
        StepOneAmp {
            min_ma: cfg.charger_min_ma(),
            max_ma: cfg.max_of_ma(0).min(cap_ma),
            solar_only: cfg.charge_mode() == p1lb_core::config::ChargeMode::SolarOnly,
            start_w: (start > 0).then_some(f64::from(start)),
            start_delay_ms: u64::from(cfg.solar_start_delay_s()) * 1000,
            stop_delay_ms: u64::from(cfg.solar_stop_delay_s()) * 1000,
            max_import_w: f64::from(cfg.solar_max_import_w()),
            limit_ma: 0,
            surplus_since: None,
            import_since: None,
            changes: 0,
        }
    }

    /// A reading at `now_ms`: the grid's net power `grid_w` (import positive), the sum
    /// of the voltages of the car's phases, whether a car is plugged in, and the fuse
    /// room (mA, [`limit_ma`]). Returns the limit to send, mA.
    pub fn on_reading(
        &mut self,
        now_ms: u64,
        grid_w: f64,
        car_volts: f64,
        plugged: bool,
        fuse_room_ma: u32,
    ) -> u32 {
        let before = self.limit_ma;
        let surplus = -grid_w;
        let min_w = f64::from(self.min_ma) / 1000.0 * car_volts;
        if !plugged {
            self.limit_ma = 0;
            self.surplus_since = None;
            self.import_since = None;
        } else if self.limit_ma == 0 {
            self.import_since = None;
            if !self.solar_only {
                self.limit_ma = self.min_ma;
            } else if surplus >= self.start_w.unwrap_or(min_w) {
                let since = *self.surplus_since.get_or_insert(now_ms);
                if now_ms - since >= self.start_delay_ms {
                    self.limit_ma = self.min_ma;
                    self.surplus_since = None;
                }
            } else {
                self.surplus_since = None;
            }
        } else if surplus >= car_volts * f64::from(STEP_MA) / 1000.0 {
            self.limit_ma = (self.limit_ma + STEP_MA).min(self.max_ma.max(self.min_ma));
            self.import_since = None;
        } else if -surplus > self.max_import_w {
            if self.limit_ma > self.min_ma {
                self.limit_ma = self.limit_ma.saturating_sub(STEP_MA).max(self.min_ma);
                self.import_since = None;
            } else if self.solar_only {
                let since = *self.import_since.get_or_insert(now_ms);
                if now_ms - since >= self.stop_delay_ms {
                    self.limit_ma = 0;
                    self.import_since = None;
                }
            }
        } else {
            self.import_since = None;
        }
        let sent = if fuse_room_ma < self.min_ma.max(1) {
            0
        } else {
            self.limit_ma.min(fuse_room_ma)
        };
        if sent != before {
            self.changes += 1;
        }
        self.limit_ma = sent;
        sent
    }

    /// Changes of the value sent so far.
    pub fn changes(&self) -> u32 {
        self.changes
    }
}

#[cfg(test)]
mod solar_tests {
    use super::*;
    use crate::car::CarSpec;
    use p1lb_core::config::ChargeMode;

    /// The solar oracle charges on surplus only, at least the minimum or nothing.
    #[test]
    fn the_solar_oracle_charges_on_surplus_from_the_minimum() {
        let cfg = Config::default();
        let car = CarSpec::three_phase(100, 0.2);
        let mut o = SolarOracle::new(&cfg, cfg.charger_max_ma(), &[&car]);
        let v = [230.0; 3];
        // 3 kW of export: below 3 × 6 A × 230 V.
        assert_eq!(o.second(0, [-3000.0 / 690.0; 3], v), 0.0);
        // 5 kW: all of it.
        let w = o.second(1, [-5000.0 / 690.0; 3], v);
        assert!((w - 5000.0).abs() < 1e-6, "{w}");
        // 20 kW: the car's 3 × 16 A.
        let w = o.second(2, [-20_000.0 / 690.0; 3], v);
        assert!((w - 16.0 * 690.0).abs() < 1e-6, "{w}");
        // Importing: nothing.
        assert_eq!(o.second(3, [2.0; 3], v), 0.0);
        assert!((o.energy_kwh() - (5000.0 + 11_040.0) / 3.6e6).abs() < 1e-9);
    }

    /// The 1 A-step baseline: waits the start delay, steps 1 A per reading, pauses after
    /// the stop delay at the minimum; minimum + solar holds the minimum.
    #[test]
    fn the_one_amp_step_baseline() {
        let mut cfg = Config::default();
        cfg.set_charge_mode(ChargeMode::SolarOnly).expect("mode");
        let mut c = StepOneAmp::new(&cfg, cfg.charger_max_ma());
        let room = 16_000;
        // 5 kW of export for 60 s: starts at 6 A after the delay.
        for s in 0..60 {
            assert_eq!(c.on_reading(s * 1000, -5000.0, 690.0, true, room), 0);
        }
        assert_eq!(c.on_reading(60_000, -5000.0, 690.0, true, room), 6000);
        // Export of 1 kW: +1 A per reading.
        assert_eq!(c.on_reading(61_000, -1000.0, 690.0, true, room), 7000);
        assert_eq!(c.on_reading(62_000, -1000.0, 690.0, true, room), 8000);
        // 500 W: holds; an import: -1 A.
        assert_eq!(c.on_reading(63_000, -500.0, 690.0, true, room), 8000);
        assert_eq!(c.on_reading(64_000, 10.0, 690.0, true, room), 7000);
        assert_eq!(c.on_reading(65_000, 10.0, 690.0, true, room), 6000);
        // At the minimum, importing: pauses after 180 s.
        for s in 66..245 {
            assert_eq!(
                c.on_reading(s * 1000, 500.0, 690.0, true, room),
                6000,
                "{s}"
            );
        }
        assert_eq!(c.on_reading(246_000, 500.0, 690.0, true, room), 0);
        assert_eq!(c.changes(), 6);
        // Minimum + solar: the minimum at once, never below it.
        cfg.set_charge_mode(ChargeMode::MinSolar).expect("mode");
        let mut c = StepOneAmp::new(&cfg, cfg.charger_max_ma());
        assert_eq!(c.on_reading(0, 3000.0, 690.0, true, room), 6000);
        for s in 1..400 {
            assert_eq!(c.on_reading(s * 1000, 3000.0, 690.0, true, room), 6000);
        }
        // The fuse wins.
        assert_eq!(c.on_reading(400_000, 3000.0, 690.0, true, 5000), 0);
    }
}
