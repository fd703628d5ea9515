//! A recorded P1 stream as the house load (`p1lb simulate --p1-log FILE`).
//!
//! The bytes go through the real [`TelegramReader`]; each valid telegram gives the grid
//! current per phase (signed, as the balancer would see it) and the voltages. The
//! recording is taken as the house without the simulated car: its grid current is the
//! house load, and the simulated car is added on top. Telegrams are spaced by their
//! timestamps where those advance by 1–60 s, else one second apart; the load holds
//! between telegrams, and the recording repeats when the run is longer than it.

use p1lb_core::p1::{Event, GridSource, Reading, TelegramReader};

use super::meter::Flavour;
use super::time::DateTime;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at_s: u32,
    current_a: [f64; 3],
    voltage_v: Option<[f64; 3]>,
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
        while !rest.is_empty() {
            let (used, event) = reader.feed(rest);
            rest = &rest[used..];
            let Some(Event::Telegram(t)) = event else {
                continue;
            };
            let r = Reading::parse(&t);
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
