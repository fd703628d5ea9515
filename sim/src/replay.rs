//! A recorded P1 stream as the house load (`p1lb simulate --p1-log FILE`).
//!
//! The bytes go through the real [`TelegramReader`]; each valid telegram gives the grid
//! current per phase (signed, as the balancer would see it) and the voltages. The
//! recording is taken as the house without the simulated car: its grid current is the
//! house load, and the simulated car is added on top. Telegrams are spaced by their
//! timestamps where those advance by 1–60 s, else one second apart; the load holds
//! between telegrams, and the recording repeats when the run is longer than it.
//!
//! The capacity tariff as the recording shows it ([`Recording::quarters`]): the clock
//! quarters of its timestamps (with their DST flag), each one's import from the deltas
//! of its energy registers (1-0:1.8.1 + 1.8.2, from the first telegram of the quarter
//! to the first of the next) and, from an e-MUCS meter, the last 1-0:1.4.0 it printed in
//! the quarter; and the month's peak (1-0:1.6.0) on the meter at the start and the end.

use p1lb_core::p1::{Event, GridSource, Reading, TelegramReader};

use super::meter::Flavour;
use super::time::{DateTime, Stamp};

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at_s: u32,
    current_a: [f64; 3],
    voltage_v: Option<[f64; 3]>,
}

/// One clock quarter-hour of a recording, as its own registers tell it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordedQuarter {
    /// Its start (hh:00, :15, :30, :45 of the meter's clock).
    pub start: Stamp,
    /// Import in it from the energy registers (first telegram of the quarter to the
    /// first of the next; to the last of its own for the recording's last quarter), Wh.
    pub import_wh: Option<u64>,
    /// The last 1-0:1.4.0 printed in it (the quarter's average so far), W.
    pub demand_w: Option<i64>,
    /// Telegrams in it.
    pub telegrams: u32,
    /// The recording holds all of it: a telegram in its first 10 s, and the next
    /// quarter's first telegram in that one's first 10 s.
    pub full: bool,
}

impl RecordedQuarter {
    /// Its average import (energy over 15 minutes), kW.
    pub fn average_kw(&self) -> Option<f64> {
        self.import_wh.map(|wh| wh as f64 * 4.0 / 1000.0)
    }
}

/// A peak as an e-MUCS meter printed it (1-0:1.6.0): when, and W.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedPeak {
    /// When the peak quarter ended, if printed.
    pub at: Option<Stamp>,
    /// The peak, W.
    pub power_w: i64,
}

/// A parsed recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    samples: Vec<Sample>,
    length_s: u32,
    /// The format of the recorded meter (the simulated meter speaks the same).
    pub flavour: Flavour,
    /// Phases the meter reported (1 or 3).
    pub phases: usize,
    /// The first telegram's timestamp, if it had one.
    pub start: Option<DateTime>,
    /// Telegrams the reader refused in the recording.
    pub rejected: u32,
    /// The clock quarters of the recording (its timestamped telegrams).
    pub quarters: Vec<RecordedQuarter>,
    /// 1-0:1.6.0 in the first and in the last telegram that printed it.
    pub month_peak: Option<(RecordedPeak, RecordedPeak)>,
}

fn stamp_of(ts: &p1lb_core::p1::Timestamp) -> Stamp {
    let local = DateTime::new(
        i32::from(ts.year),
        u32::from(ts.month),
        u32::from(ts.day),
        u32::from(ts.hour),
        u32::from(ts.minute),
    )
    .plus(u32::from(ts.second));
    match ts.summer {
        Some(summer) => Stamp { local, summer },
        None => Stamp::of(local),
    }
}

/// The quarters of `(stamp, import Wh, 1.4.0 W)` telegram readings in time order.
fn quarters_of(readings: &[(Stamp, Option<u64>, Option<i64>)]) -> Vec<RecordedQuarter> {
    let key = |s: &Stamp| (s.local.floor_quarter(), s.summer);
    let mut out: Vec<(RecordedQuarter, Option<u64>, u32)> = Vec::new();
    for (at, import, demand) in readings {
        let into = at.local.second_of_day() % 900;
        match out.last_mut() {
            Some((q, _, _)) if key(&q.start) == key(at) => {
                q.telegrams += 1;
                q.demand_w = demand.or(q.demand_w);
            }
            _ => out.push((
                RecordedQuarter {
                    start: Stamp {
                        local: at.local.floor_quarter(),
                        summer: at.summer,
                    },
                    import_wh: None,
                    demand_w: *demand,
                    telegrams: 1,
                    full: into < 10,
                },
                *import,
                into,
            )),
        }
    }
    // Energy: first register of the next quarter less this one's first; the last
    // quarter to its own last telegram.
    let last_import = readings.iter().rev().find_map(|r| r.1);
    let n = out.len();
    let mut quarters = Vec::with_capacity(n);
    for i in 0..n {
        let (mut q, first, _) = out[i];
        let next = out.get(i + 1);
        let end = match next {
            Some((_, e, _)) => *e,
            None => last_import,
        };
        q.import_wh = match (first, end) {
            (Some(a), Some(b)) if b >= a => Some(b - a),
            _ => None,
        };
        // Adjacent in real time (UTC): across a DST change too.
        let utc = |s: &Stamp| s.local.epoch_s() - if s.summer { 7200 } else { 3600 };
        let adjacent =
            next.is_some_and(|(nq, _, into)| *into < 10 && utc(&nq.start) - utc(&q.start) == 900);
        q.full = q.full && adjacent;
        quarters.push(q);
    }
    quarters
}

impl Recording {
    /// Reads a recorded stream. Fails when it holds no valid telegram with a current.
    pub fn parse(bytes: &[u8], source: GridSource) -> Result<Recording, String> {
        let mut reader: TelegramReader = TelegramReader::new();
        let mut rest = bytes;
        let mut samples: Vec<Sample> = Vec::new();
        let mut last_stamp: Option<i64> = None;
        let mut start = None;
        let mut emucs = false;
        let mut phases = 1;
        let mut at_s = 0u32;
        let mut demand: Vec<(Stamp, Option<u64>, Option<i64>)> = Vec::new();
        let mut peaks: Vec<RecordedPeak> = Vec::new();
        while !rest.is_empty() {
            let (used, event) = reader.feed(rest);
            rest = &rest[used..];
            let Some(Event::Telegram(t)) = event else {
                continue;
            };
            let r = Reading::parse(&t);
            if let Some(ts) = &r.timestamp {
                let import = match (r.import_wh.t1, r.import_wh.t2) {
                    (Some(a), Some(b)) => u64::try_from(a.saturating_add(b)).ok(),
                    _ => None,
                };
                demand.push((stamp_of(ts), import, r.average_demand_w));
            }
            if let Some(p) = r.month_peak {
                peaks.push(RecordedPeak {
                    at: p.at.as_ref().map(stamp_of),
                    power_w: p.power_w,
                });
            }
            let grid = r.grid_currents_ma(source);
            if grid.iter().all(Option::is_none) {
                continue;
            }
            if grid[1].is_some() || grid[2].is_some() {
                phases = 3;
            }
            emucs |= r.version.is_some_and(|v| v >= 10_000);
            let stamp = r.timestamp.map(|ts| {
                DateTime::new(
                    i32::from(ts.year),
                    u32::from(ts.month),
                    u32::from(ts.day),
                    u32::from(ts.hour),
                    u32::from(ts.minute),
                )
                .plus(u32::from(ts.second))
            });
            if start.is_none() {
                start = stamp;
            }
            if !samples.is_empty() {
                let step = match (last_stamp, stamp.map(|s| s.epoch_s())) {
                    (Some(a), Some(b)) if (1..=60).contains(&(b - a)) => (b - a) as u32,
                    _ => 1,
                };
                at_s += step;
            }
            last_stamp = stamp.map(|s| s.epoch_s());
            let volts = r.phases.map(|p| p.voltage_dv);
            let voltage_v = volts
                .iter()
                .take(phases)
                .all(Option::is_some)
                .then(|| volts.map(|v| f64::from(v.unwrap_or(2300)) / 10.0));
            samples.push(Sample {
                at_s,
                current_a: grid.map(|g| f64::from(g.unwrap_or(0)) / 1000.0),
                voltage_v,
            });
        }
        if samples.is_empty() {
            return Err(format!(
                "no valid telegram with a current in it ({} rejected)",
                reader.stats().rejected()
            ));
        }
        Ok(Recording {
            length_s: at_s + 1,
            samples,
            flavour: if emucs {
                Flavour::Emucs
            } else {
                Flavour::Dsmr5
            },
            phases,
            start,
            rejected: reader.stats().rejected(),
            quarters: quarters_of(&demand),
            month_peak: peaks.first().copied().zip(peaks.last().copied()),
        })
    }

    /// Seconds the recording covers.
    pub fn length_s(&self) -> u32 {
        self.length_s
    }

    /// Valid telegrams in it.
    pub fn telegrams(&self) -> usize {
        self.samples.len()
    }

    /// The house load (A per phase) and the recorded voltages at second `t_s` of the
    /// run (the recording repeats).
    pub fn load(&self, t_s: u32) -> ([f64; 3], Option<[f64; 3]>) {
        let t = t_s % self.length_s.max(1);
        let i = self
            .samples
            .partition_point(|s| s.at_s <= t)
            .saturating_sub(1);
        let s = self.samples[i.min(self.samples.len() - 1)];
        (s.current_a, s.voltage_v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sample_telegrams() {
        let seed = include_bytes!("../../tests/telegrams/nl-esmr50-sagemcom-t210d-seed.txt");
        let r = Recording::parse(seed, GridSource::Auto).expect("valid");
        assert_eq!(r.telegrams(), 1);
        assert_eq!(r.flavour, Flavour::Dsmr5);
        assert_eq!(r.phases, 3);
        let (a, v) = r.load(1234);
        // 98 W at 234.0 V on L1.
        assert!((a[0] - 0.419).abs() < 0.001, "{a:?}");
        assert_eq!(v.map(|v| v[0]), Some(234.0));
        let be = include_bytes!("../../tests/telegrams/be-emucs171-fluvius.txt");
        let r = Recording::parse(be, GridSource::Auto).expect("valid");
        assert_eq!(r.flavour, Flavour::Emucs);
        assert!(Recording::parse(b"garbage", GridSource::Auto).is_err());
    }

    #[test]
    fn timestamps_space_the_samples() {
        use super::super::meter::{Meter, MeterSpec};
        let mut m = Meter::new(
            &MeterSpec::healthy(Flavour::Dsmr5, 3),
            DateTime::new(2025, 1, 1, 12, 0),
            1,
        );
        let mut bytes = Vec::new();
        for t in [0u32, 10, 20] {
            let g = [f64::from(t), 1.0, 2.0];
            let v = m.voltages(g, None);
            bytes.extend_from_slice(m.second(t, g, v));
        }
        let r = Recording::parse(&bytes, GridSource::Auto).expect("valid");
        assert_eq!(r.length_s(), 21);
        assert!((r.load(15).0[0] - 10.0).abs() < 0.01);
        assert!((r.load(20).0[0] - 20.0).abs() < 0.01);
        // Repeats.
        assert!((r.load(21 + 5).0[0]).abs() < 0.01);
    }
}
