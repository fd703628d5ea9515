//! The Belgian capacity tariff (issue 17) as the simulator bills a run: the highest
//! clock quarter-hour average import of each calendar month, at least 2.5 kW, at
//! €40.4 per kW per year (Fluvius' 2025 distribution tariff, rounded; the yearly cost
//! is the average of the months' billed peaks times the price). The figures come from
//! the simulated meter's quarters ([`super::meter::Quarter`]): true import energy, the
//! phases netted each second as the meter nets them, export not offsetting import.

use p1lb_core::config::CapacityMode;

use super::meter::Quarter;
use super::time::Stamp;

/// The price of a kW of monthly peak, € per year.
pub const EUR_PER_KW_YEAR: f64 = 40.4;

/// The smallest peak billed, kW.
pub const MIN_BILLED_KW: f64 = 2.5;

/// One calendar month's peak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonthPeak {
    /// The year.
    pub year: i32,
    /// The month, 1–12.
    pub month: u32,
    /// Its highest quarter-hour average import (with the peak already on the meter
    /// before the run, for the start's month), kW.
    pub kw: f64,
}

fn month_of(s: &Stamp) -> (i32, u32) {
    let (y, m, _) = s.local.date();
    (y, m)
}

/// The peak of every calendar month the run touched, in order: the highest quarter
/// average of the month (partial quarters at the run's ends count with the energy the
/// run saw of them, over 15 minutes) and, for the start's month, the peak the meter
/// already had (`earlier_kw`).
pub fn month_peaks(start: Stamp, earlier_kw: f64, quarters: &[Quarter]) -> Vec<MonthPeak> {
    let (year, month) = month_of(&start);
    let mut out = vec![MonthPeak {
        year,
        month,
        kw: earlier_kw,
    }];
    for q in quarters {
        let (y, m) = month_of(&q.start);
        match out.last_mut() {
            Some(p) if (p.year, p.month) == (y, m) => p.kw = p.kw.max(q.average_kw()),
            _ => out.push(MonthPeak {
                year: y,
                month: m,
                kw: q.average_kw(),
            }),
        }
    }
    out
}

/// The capacity part of the yearly bill: the months' billed peaks (at least
/// [`MIN_BILLED_KW`]) averaged, times [`EUR_PER_KW_YEAR`].
pub fn yearly_cost_eur(peaks: &[MonthPeak]) -> f64 {
    if peaks.is_empty() {
        return 0.0;
    }
    let sum: f64 = peaks.iter().map(|p| p.kw.max(MIN_BILLED_KW)).sum();
    sum / peaks.len() as f64 * EUR_PER_KW_YEAR
}

/// Full quarters above the ceiling: `(all, the house's alone)`. The ceiling is the
/// target, or in mode 2 ([`CapacityMode::FollowPeak`]) the larger of the target and
/// the month's peak before the quarter (`earlier_kw` for the start's month, then the
/// run's own quarters). `house_wh[i]` is what the house alone imported in quarter `i`
/// (a car's energy left out): the quarters it puts above the ceiling by itself no
/// controller of the chargers can help.
pub fn over_target(
    mode: CapacityMode,
    target_kw: f64,
    start: Stamp,
    earlier_kw: f64,
    quarters: &[Quarter],
    house_wh: &[f64],
) -> (u32, u32) {
    let mut month = month_of(&start);
    let mut peak = earlier_kw;
    let (mut all, mut house) = (0, 0);
    for (i, q) in quarters.iter().enumerate() {
        if month_of(&q.start) != month {
            month = month_of(&q.start);
            peak = 0.0;
        }
        let ceiling = match mode {
            CapacityMode::FollowPeak => target_kw.max(peak),
            _ => target_kw,
        };
        if q.full() {
            if q.average_kw() > ceiling + 1e-9 {
                all += 1;
            }
            let h = house_wh.get(i).copied().unwrap_or(0.0) * 4.0 / 1000.0;
            if h > ceiling + 1e-9 {
                house += 1;
            }
        }
        peak = peak.max(q.average_kw());
    }
    (all, house)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::DateTime;

    fn q(day: u32, h: u32, m: u32, kwh: f64, seconds: u32) -> Quarter {
        Quarter {
            start: Stamp::of(DateTime::new(2025, 1, day, h, m)),
            import_wh: kwh * 1000.0,
            seconds,
        }
    }

    /// A hand-made run: 31 January 23:30 to 1 February 00:30, a 3 kW month peak
    /// already on the meter.
    #[test]
    fn the_arithmetic_on_a_small_case() {
        let start = Stamp::of(DateTime::new(2025, 1, 31, 23, 30));
        let mut quarters = vec![
            q(31, 23, 30, 0.5, 900), // 2.0 kW
            q(31, 23, 45, 0.9, 900), // 3.6 kW
        ];
        quarters.push(Quarter {
            start: Stamp::of(DateTime::new(2025, 2, 1, 0, 0)),
            import_wh: 700.0, // 2.8 kW
            seconds: 900,
        });
        quarters.push(Quarter {
            start: Stamp::of(DateTime::new(2025, 2, 1, 0, 15)),
            import_wh: 200.0, // 0.8 kW, partial
            seconds: 600,
        });
        let peaks = month_peaks(start, 3.0, &quarters);
        assert_eq!(peaks.len(), 2);
        assert_eq!((peaks[0].month, peaks[0].kw), (1, 3.6));
        assert!((peaks[1].kw - 2.8).abs() < 1e-12);
        // (3.6 + 2.8) / 2 × 40.4 = 129.28 €/year.
        assert!((yearly_cost_eur(&peaks) - 129.28).abs() < 1e-9);
        // Below 2.5 kW the minimum is billed.
        let low = [MonthPeak {
            year: 2025,
            month: 3,
            kw: 1.2,
        }];
        assert!((yearly_cost_eur(&low) - 101.0).abs() < 1e-9);
        let house = [400.0, 800.0, 100.0, 100.0];
        // Target 2.5 kW: 23:45 (3.6) and 00:00 (2.8); the house alone 23:45 (3.2).
        let t = over_target(CapacityMode::Target, 2.5, start, 3.0, &quarters, &house);
        assert_eq!(t, (2, 1));
        // Following the peak: 3.6 > 3.0 counts; in February the peak starts from 0,
        // so 2.8 only has the target 2.5 above it... and counts.
        let f = over_target(CapacityMode::FollowPeak, 2.5, start, 3.0, &quarters, &house);
        assert_eq!(f, (2, 1));
        // Following a 4 kW peak: nothing in January; February's first quarter is
        // over the 2.5 kW target.
        let f = over_target(CapacityMode::FollowPeak, 2.5, start, 4.0, &quarters, &house);
        assert_eq!(f, (1, 0));
    }
}
