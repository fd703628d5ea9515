//! The capacity tariff's quarter-hour account (settings 1072–1074, status 1122–1126).
//!
//! Belgian (Flemish) households pay for the highest 15-minute average import power of
//! each month. The quarters are the meter's clock quarters (hh:00, :15, :30, :45), the
//! energy is what the meter registers as imported over all phases together (the meter
//! nets the phases at every instant; export in the same quarter does not offset
//! import). This module keeps that account from the telegrams alone, on the meter's
//! clock, and says how much power the chargers may draw so that the quarter ends at or
//! under the target:
//!
//! - [`Account::on_reading`] takes each valid telegram: its timestamp (with the DST
//!   flag), its import energy registers (all tariffs), the present power, and where
//!   the meter prints them the quarter's average demand (`1-0:1.4.0`, e-MUCS) and the
//!   month's peak (`1-0:1.6.0`).
//! - [`Account::allowance_w`] is the power the chargers may draw now: the energy left
//!   in the quarter's budget ((target − margin) × 15 min − used − a reserve for the
//!   reaction time) spread over the seconds left, less what the house draws now.
//!
//! What is not known is never invented:
//! - the energy at a quarter boundary is interpolated between the telegrams on either
//!   side of it, only when they are at most [`MAX_GAP`] apart;
//! - a quarter whose start was not seen (boot, or the meter silent across the boundary)
//!   uses the meter's own `1.4.0` where it prints it; otherwise it is kept *at pace*
//!   for the rest of it (the chargers may draw what keeps the present import at or
//!   under the target), and it counts toward the month's peak only with the energy
//!   seen (a lower bound);
//! - the month's peak is the larger of this account's complete quarters and the
//!   meter's `1.6.0` of the same month, and starts again at the month change on the
//!   meter's clock, as the meter does.
//!
//! Sans-IO and `no_std`; nothing here panics, all arithmetic saturates.

use crate::config::{CapacityMode, Config};
use crate::p1::{Reading, Timestamp};

/// A quarter-hour, s.
pub const QUARTER_S: i64 = 900;

/// Telegrams further apart than this across a quarter boundary: the boundary was
/// missed (the meter was silent) and the energy at it is unknown, s.
pub const MAX_GAP: i64 = 10;

/// The longest a cut takes to show at the meter (the tick, the charger's poll, the
/// car's delay and ramp down), s. The budget keeps this long of the chargers' power in
/// reserve, so that a load switched on in the quarter's last seconds does not overspend
/// it while the chargers come down.
pub const REACTION_S: i64 = 8;

/// A charge paused for the budget starts again only when the allowance exceeds the
/// chargers' minimum power by this share, percent: so that the noise of the house load
/// does not switch the car on and off every few seconds near its minimum.
pub const RESTART_MARGIN_PCT: i64 = 10;

/// The house's own import is taken as the median of this many telegrams' estimates
/// (the meter's import less what the chargers report): a charger's report lags the
/// meter by up to a poll and a measurement, so for a few telegrams after a car starts
/// or stops the difference shows a spike of the car's whole power that is not the
/// house's.
pub const HOUSE_MEDIAN: usize = 7;

/// Seconds on the meter's clock, comparable across the DST change: local time less the
/// offset its flag states (Central European: 1 h in winter, 2 h in summer; without a
/// flag, as DSMR 2/3 print it, winter). Quarters of this count are the meter's clock
/// quarters, since the offsets are whole hours.
pub fn meter_seconds(ts: &Timestamp) -> i64 {
    let days = days_from_civil(i64::from(ts.year), i64::from(ts.month), i64::from(ts.day));
    let local = days * 86_400
        + i64::from(ts.hour) * 3600
        + i64::from(ts.minute) * 60
        + i64::from(ts.second);
    local - if ts.summer == Some(true) { 7200 } else { 3600 }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1–12, any day).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The account's figures (registers 1122–1125).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuarterFigures {
    /// Average import power of the quarter so far, W (1122).
    pub average_w: u32,
    /// The quarter's average if the present power continued to its end, W (1123).
    pub projected_w: u32,
    /// The highest quarter-hour average of this month, W (1124).
    pub month_peak_w: u32,
    /// Seconds left in the quarter (1125).
    pub seconds_left: u32,
    /// The energy used in the quarter is known (its start was seen, or the meter
    /// prints its average demand).
    pub known: bool,
}

/// One telegram's sample of the import energy.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// [`meter_seconds`].
    t: i64,
    /// Import energy, all tariffs, Wh.
    wh: Option<i64>,
}

/// The quarter under way.
#[derive(Debug, Clone, Copy)]
struct Quarter {
    /// Its number: [`meter_seconds`] / [`QUARTER_S`].
    index: i64,
    /// The import energy at its start, Wh, when the start was seen.
    start_wh: Option<i64>,
    /// The import energy when it was first seen (a lower bound of its use from there).
    first_wh: Option<i64>,
}

/// What the chargers draw, as [`Account::allowance_w`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargerDraw {
    /// What they draw now, as they report it, W.
    pub draw_w: i64,
    /// The least a charging car draws (the charger minimum on its phases), W.
    pub min_w: u32,
    /// No charger's value changed for [`REACTION_S`]: their reports show what their
    /// cars draw. While one settles (its car ramping, its report lagging the meter by
    /// up to a poll and a measurement) the meter less the reports is not the house's
    /// import, and the house's estimate is kept as it was.
    pub settled: bool,
}

/// The quarter-hour account. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Account {
    last: Option<Sample>,
    quarter: Option<Quarter>,
    /// (year, month) of the meter's clock.
    month: Option<(u16, u8)>,
    /// The highest quarter of the month by this account, W.
    own_peak_w: u32,
    /// The meter's `1.6.0` of this month, W.
    meter_peak_w: u32,
    /// The meter's `1.4.0` in the latest telegram, W.
    demand_w: Option<u32>,
    /// Net import power now, W (export negative).
    power_w: i64,
    /// The latest telegram had a timestamp.
    timed: bool,
    /// The chargers were allowed at least their minimum (a charge under way).
    charging: bool,
    /// The latest estimates of the house's own import, W (oldest first once full).
    house: [i64; HOUSE_MEDIAN],
    /// How many of `house` are filled.
    house_len: usize,
    /// The allowance given last, W.
    last_w: i64,
}

impl Account {
    /// An account that has seen nothing.
    pub fn new() -> Self {
        Account::default()
    }

    /// A valid telegram. One without a timestamp leaves the quarter unknown (the
    /// chargers are then kept at pace, see [`Account::allowance_w`]).
    pub fn on_reading(&mut self, r: &Reading) {
        self.power_w = r.net_power_w().unwrap_or(0);
        self.demand_w = r
            .average_demand_w
            .map(|w| u32::try_from(w.max(0)).unwrap_or(u32::MAX));
        let Some(ts) = r.timestamp else {
            self.timed = false;
            return;
        };
        self.timed = true;
        let wh = r.import_wh.sum().filter(|&wh| wh >= 0);
        let mut t = meter_seconds(&ts);
        if let Some(last) = self.last {
            // A clock set back (or a DSMR 2/3 meter's autumn hour): time stands still
            // for the account rather than running backwards.
            t = t.max(last.t);
        }
        let index = t.div_euclid(QUARTER_S);
        match self.quarter {
            Some(q) if q.index == index => {}
            Some(q) => {
                let boundary = index.saturating_mul(QUARTER_S);
                let at_boundary = self.last.and_then(|last| {
                    let (w0, w1) = (last.wh?, wh?);
                    (index == q.index + 1 && t - last.t <= MAX_GAP)
                        .then(|| interpolate(last.t, w0, t, w1, boundary))
                });
                self.close(q, at_boundary);
                self.start(index, at_boundary, wh);
            }
            None => {
                // The first telegram: its quarter's start is seen only when it is
                // the start.
                let start = (t == index.saturating_mul(QUARTER_S))
                    .then_some(wh)
                    .flatten();
                self.start(index, start, wh);
            }
        }
        let month = (ts.year, ts.month);
        if self.month != Some(month) {
            if self.month.is_some() {
                self.own_peak_w = 0;
            }
            self.month = Some(month);
        }
        // The meter's peak counts for the month it was set in (a meter may print last
        // month's for a moment after midnight).
        self.meter_peak_w = match r.month_peak {
            Some(p) if p.at.is_none_or(|at| (at.year, at.month) == month) => {
                u32::try_from(p.power_w.max(0)).unwrap_or(u32::MAX)
            }
            _ => 0,
        };
        self.last = Some(Sample { t, wh });
    }

    /// Closes quarter `q`: its average counts toward the month's peak when its use is
    /// known (`end_wh` and its start seen), else with the energy seen (a lower bound).
    fn close(&mut self, q: Quarter, end_wh: Option<i64>) {
        let used = match (q.start_wh, end_wh) {
            (Some(s), Some(e)) => Some(e.saturating_sub(s)),
            _ => match (q.first_wh, self.last.and_then(|l| l.wh)) {
                (Some(f), Some(l)) => Some(l.saturating_sub(f)),
                _ => None,
            },
        };
        if let Some(used) = used {
            let w = used.saturating_mul(3600) / QUARTER_S;
            self.own_peak_w = self
                .own_peak_w
                .max(u32::try_from(w.max(0)).unwrap_or(u32::MAX));
        }
    }

    fn start(&mut self, index: i64, start_wh: Option<i64>, wh: Option<i64>) {
        self.quarter = Some(Quarter {
            index,
            start_wh,
            first_wh: wh,
        });
    }

    /// Seconds since the quarter started (0–899), on the meter's clock.
    fn elapsed(&self) -> Option<i64> {
        let (q, last) = (self.quarter?, self.last?);
        Some((last.t - q.index.saturating_mul(QUARTER_S)).clamp(0, QUARTER_S - 1))
    }

    /// Energy imported in the quarter so far, J: the larger of this account's (start
    /// seen) and the meter's `1.4.0` × the time elapsed.
    pub fn used_j(&self) -> Option<i64> {
        if !self.timed {
            return None;
        }
        let q = self.quarter?;
        let elapsed = self.elapsed()?;
        let own = match (q.start_wh, self.last.and_then(|l| l.wh)) {
            (Some(s), Some(now)) => Some(now.saturating_sub(s).max(0).saturating_mul(3600)),
            _ => None,
        };
        let meter = self.demand_w.map(|d| i64::from(d) * elapsed);
        match (own, meter) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The month's peak so far, W: this account's and the meter's, the larger.
    pub fn month_peak_w(&self) -> u32 {
        self.own_peak_w.max(self.meter_peak_w)
    }

    /// Registers 1122–1125.
    pub fn figures(&self) -> QuarterFigures {
        let elapsed = self.elapsed().unwrap_or(0);
        let left = QUARTER_S - elapsed;
        let used = self.used_j();
        let to_w = |j: i64| u32::try_from((j / QUARTER_S).max(0)).unwrap_or(u32::MAX);
        QuarterFigures {
            average_w: used.map_or(0, |j| {
                u32::try_from((j / elapsed.max(1)).max(0)).unwrap_or(u32::MAX)
            }),
            projected_w: used.map_or(0, |j| {
                to_w(j.saturating_add(self.power_w.max(0).saturating_mul(left)))
            }),
            month_peak_w: self.month_peak_w(),
            seconds_left: u32::try_from(left).unwrap_or(0),
            known: used.is_some(),
        }
    }

    /// The power the chargers may draw now, all together, W; `None` when capacity
    /// mode is off.
    ///
    /// `chargers` says what the chargers draw now (see [`ChargerDraw`]). The house's
    /// own import is the meter's less what they draw (the median of the last
    /// [`HOUSE_MEDIAN`] telegrams' estimates, taken while the chargers are settled).
    /// The budget is `(target − margin) × 15 min` (mode 2: the target is at least the
    /// month's peak), less what the quarter used and [`REACTION_S`] of the chargers'
    /// power; spread over the seconds left, less the house, it is the allowance. When it falls below `min_w` a charge
    /// under way keeps `min_w` as long as the overspend that projects to stays within
    /// half the margin; a paused one starts again at `min_w` plus
    /// [`RESTART_MARGIN_PCT`]. A quarter whose use is not known is kept at pace
    /// (target − margin − house).
    pub fn allowance_w(&mut self, cfg: &Config, chargers: ChargerDraw) -> Option<u32> {
        let ChargerDraw {
            draw_w: chargers_w,
            min_w,
            settled,
        } = chargers;
        let mode = cfg.capacity_mode();
        if mode == CapacityMode::Off {
            self.charging = false;
            return None;
        }
        let mut target = i64::from(cfg.capacity_target_w());
        if mode == CapacityMode::FollowPeak {
            target = target.max(i64::from(self.month_peak_w()));
        }
        let margin = i64::from(cfg.capacity_margin_w());
        let aim = (target - margin).max(0);
        let chargers_w = chargers_w.max(0);
        let house = self.house_w(self.power_w.saturating_sub(chargers_w), settled);
        let min_w = i64::from(min_w);
        let left_s = QUARTER_S - self.elapsed().unwrap_or(0);
        let allowance = match self.used_j() {
            Some(used) => {
                let reserve = chargers_w.max(min_w).saturating_mul(REACTION_S);
                let left = aim
                    .saturating_mul(QUARTER_S)
                    .saturating_sub(used)
                    .saturating_sub(reserve);
                (left / left_s.max(1)).saturating_sub(house)
            }
            None => aim.saturating_sub(house),
        };
        // Half the margin's energy over the quarter, and at least a watt-hour.
        let tolerance = (margin.saturating_mul(QUARTER_S) / 2).max(3600);
        let restart = min_w.saturating_mul(100 + RESTART_MARGIN_PCT) / 100;
        let w = if allowance >= min_w && (self.charging || allowance >= restart) {
            self.charging = true;
            allowance
        } else if self.charging
            && min_w.saturating_sub(allowance).saturating_mul(left_s) <= tolerance
        {
            min_w
        } else {
            self.charging = false;
            allowance.min(min_w.saturating_sub(1))
        };
        // In the quarter's last seconds a raise would only show in the next one (the car
        // follows later): hold. And a charge the next quarter cannot carry on (its budget
        // at the present house load is under the minimum) stops now, on the reserve, so
        // that the car is off when the next quarter starts rather than its delay later.
        let w = if left_s <= REACTION_S {
            let next_quarter = aim.saturating_sub(house);
            if next_quarter < restart {
                self.charging = false;
                0
            } else {
                w.min(self.last_w)
            }
        } else {
            w
        };
        self.last_w = w;
        Some(u32::try_from(w.max(0)).unwrap_or(u32::MAX))
    }

    /// Adds the latest estimate of the house's import (unless the chargers are not
    /// `settled` and there is one already) and returns the median of the last
    /// [`HOUSE_MEDIAN`].
    fn house_w(&mut self, estimate: i64, settled: bool) -> i64 {
        if !settled && self.house_len > 0 {
            // (Kept as it was.)
        } else if self.house_len < HOUSE_MEDIAN {
            self.house[self.house_len] = estimate;
            self.house_len += 1;
        } else {
            self.house.rotate_left(1);
            self.house[HOUSE_MEDIAN - 1] = estimate;
        }
        let mut sorted = self.house;
        let filled = &mut sorted[..self.house_len];
        filled.sort_unstable();
        filled[filled.len() / 2]
    }
}

/// The energy at `t` between samples `(t0, w0)` and `(t1, w1)`, rounded down, Wh.
fn interpolate(t0: i64, w0: i64, t1: i64, w1: i64, t: i64) -> i64 {
    if t1 <= t0 {
        return w0;
    }
    let span = t1 - t0;
    let into = (t - t0).clamp(0, span);
    w0.saturating_add(w1.saturating_sub(w0).saturating_mul(into) / span)
}
