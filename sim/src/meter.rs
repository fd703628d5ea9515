//! The smart meter: every second, real P1 telegram bytes with a correct CRC-16, in the
//! DSMR 5 (Dutch ESMR 5, Sagemcom T210-D) or e-MUCS 1.7 (Belgian, Fluvius) format,
//! exactly as those meters print them (`tests/telegrams/nl-esmr50-*`, `be-emucs171-*`).
//!
//! The values: per-phase voltage (0.1 V; the grid sags under load), current (DSMR: whole
//! amperes; e-MUCS: two decimals; unsigned, as every meter prints it) and power import /
//! export (W resolution), totals, energy registers per tariff, gas, and for e-MUCS the
//! quarter-hour average demand and the month's peak.
//!
//! The meter's clock is local time with its DST flag ([`Stamp::after`]): a run of days
//! crosses midnight, month ends and the DST changes as a real meter's does. The e-MUCS
//! demand objects follow Fluvius' meters: 1-0:1.4.0 is the import of the clock quarter
//! (hh:00/15/30/45) so far, averaged over the seconds of it elapsed; 1-0:1.6.0 is the
//! highest full quarter's average of the calendar month with the time the quarter ended,
//! reset at the month change (to 0 kW, stamped with the month's first second) after the
//! month's last quarter closed; 0-0:98.1.0 (optional, [`MeterSpec::history`]) lists the
//! peaks of the past months, newest first, at most 13. Every closed quarter is kept
//! ([`Meter::quarters`]) with its true import energy, for the capacity metrics.
//!
//! Faults: silent windows (no bytes at all), telegrams corrupted on the line (one bit
//! flipped somewhere between `/` and the end of the CRC: the reader must reject each
//! one), and junk bytes between telegrams.

use super::rng::Rng;
use super::time::{DateTime, Stamp};
use p1lb_core::p1::crc16_arc;

/// The telegram format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Dutch DSMR 5.0 (ESMR 5, Sagemcom T210-D): currents in whole amperes.
    Dsmr5,
    /// Belgian e-MUCS 1.7 (Fluvius): currents with two decimals, demand objects.
    Emucs,
}

impl Flavour {
    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Dsmr5 => "DSMR 5",
            Flavour::Emucs => "e-MUCS",
        }
    }
}

/// One phase as the meter prints it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseValues {
    /// Voltage, 0.1 V.
    pub voltage_dv: i32,
    /// Current magnitude, mA (printed rounded to 1 A or 0.01 A).
    pub current_ma: i32,
    /// Active power imported, W.
    pub import_w: i32,
    /// Active power exported, W.
    pub export_w: i32,
}

/// Everything one telegram says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterValues {
    /// The meter's clock.
    pub time: Stamp,
    /// Active tariff, 1 or 2.
    pub tariff: u8,
    /// Energy imported, Wh, tariff 1 and 2.
    pub import_wh: [u64; 2],
    /// Energy exported, Wh, tariff 1 and 2.
    pub export_wh: [u64; 2],
    /// Phases printed: 1 (L1 only) or 3.
    pub phases: usize,
    /// L1–L3.
    pub phase: [PhaseValues; 3],
    /// Gas meter, dm³ (litres), and when the gas meter was last read.
    pub gas_l: u64,
    /// When the gas meter was last read (every 5 minutes).
    pub gas_time: Stamp,
    /// e-MUCS: the running quarter-hour average demand, W.
    pub average_demand_w: u32,
    /// e-MUCS: the month's peak quarter-hour, W, and when it ended.
    pub peak: (Stamp, u32),
    /// e-MUCS 0-0:98.1.0, when printed: the past months' peaks, newest first.
    pub history: Option<Vec<PastPeak>>,
}

/// One past month in 0-0:98.1.0: when its period ended (the next month's first
/// second), when its peak quarter ended, and the peak, W.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastPeak {
    /// The end of the month (00:00:00 of the next month's first day).
    pub month_end: Stamp,
    /// When the month's peak quarter ended.
    pub at: Stamp,
    /// The month's peak, W.
    pub power_w: u32,
}

/// The month's peak already on the meter when a run starts: a quarter of the start's
/// month (day, hour and minute it ended) and its average, W.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarlierPeak {
    /// Day of the start's month, 1–31.
    pub day: u32,
    /// Hour the quarter ended.
    pub hour: u32,
    /// Minute the quarter ended.
    pub minute: u32,
    /// Its average import, W.
    pub power_w: u32,
}

/// One clock quarter-hour the meter measured in a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quarter {
    /// Its start on the meter's clock (hh:00, :15, :30 or :45).
    pub start: Stamp,
    /// Energy imported in it (all phases netted each second, as the meter does;
    /// export does not offset import), Wh, unrounded.
    pub import_wh: f64,
    /// Seconds of it inside the run (900 for a full quarter).
    pub seconds: u32,
}

impl Quarter {
    /// Its average import power as billed (energy over 15 minutes), kW.
    pub fn average_kw(&self) -> f64 {
        self.import_wh * 4.0 / 1000.0
    }

    /// All 900 seconds of it were in the run.
    pub fn full(&self) -> bool {
        self.seconds >= 900
    }
}

/// The meter's faults.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterSpec {
    /// The format.
    pub flavour: Flavour,
    /// Phases of the connection (the meter prints L1 only on a single-phase one).
    pub phases: usize,
    /// `(from_s, to_s)` windows in which the meter sends nothing.
    pub silent: Vec<(u32, u32)>,
    /// Probability that a telegram gets a bit flipped on the line.
    pub corrupt_prob: f64,
    /// Probability of a burst of junk bytes before a telegram.
    pub junk_prob: f64,
    /// The month's peak before the run (e-MUCS 1-0:1.6.0), if any.
    pub month_peak: Option<EarlierPeak>,
    /// e-MUCS: print 0-0:98.1.0, the past months' peaks.
    pub history: bool,
}

impl MeterSpec {
    /// A healthy meter.
    pub fn healthy(flavour: Flavour, phases: usize) -> MeterSpec {
        MeterSpec {
            flavour,
            phases,
            silent: Vec::new(),
            corrupt_prob: 0.0,
            junk_prob: 0.0,
            month_peak: Some(EarlierPeak {
                day: 1,
                hour: 18,
                minute: 45,
                power_w: 2589,
            }),
            history: false,
        }
    }
}

/// What the meter sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeterStats {
    /// Telegrams put on the line.
    pub sent: u32,
    /// Of those, corrupted on the line.
    pub corrupted: u32,
    /// Seconds the meter was silent.
    pub silent_s: u32,
    /// Bursts of junk bytes.
    pub junk: u32,
}

/// Grid impedance seen from the meter, Ω: the voltage sags by this times the current.
const GRID_OHM: f64 = 0.25;

/// A meter during a run.
#[derive(Debug, Clone)]
pub struct Meter {
    spec: MeterSpec,
    start: DateTime,
    rng: Rng,
    fault_rng: Rng,
    offset_v: [f64; 3],
    import_wh: [f64; 2],
    export_wh: [f64; 2],
    gas_l: f64,
    quarter: (f64, u32),
    average_w: u32,
    peak: (Stamp, u32),
    /// The calendar month the peak is of.
    peak_month: (i32, u32),
    history: Vec<PastPeak>,
    /// The quarter going on: its start and true import, Wh.
    open: Option<(Stamp, f64, u32)>,
    quarters: Vec<Quarter>,
    buf: Vec<u8>,
    stats: MeterStats,
}

impl Meter {
    /// A meter for a run starting at `start`.
    pub fn new(spec: &MeterSpec, start: DateTime, seed: u64) -> Meter {
        let mut rng = Rng::stream(seed, 3);
        let offset_v = [0; 3].map(|_| rng.range(0.0, 6.0));
        let (y, m, _) = start.date();
        let peak = match spec.month_peak {
            Some(p) => (
                Stamp::of(DateTime::new(y, m, p.day, p.hour, p.minute)),
                p.power_w,
            ),
            None => (Stamp::of(DateTime::new(y, m, 1, 0, 0)), 0),
        };
        Meter {
            spec: spec.clone(),
            start,
            rng,
            fault_rng: Rng::stream(seed, 4),
            offset_v,
            import_wh: [6_184_667.0, 4_762_136.0],
            export_wh: [1_708_286.0, 3_405_268.0],
            gas_l: 3_133_361.0,
            quarter: (0.0, 0),
            average_w: 0,
            peak,
            peak_month: (y, m),
            history: Vec::new(),
            open: None,
            quarters: Vec::new(),
            buf: Vec::with_capacity(2048),
            stats: MeterStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> MeterStats {
        self.stats
    }

    /// The quarters closed so far, oldest first (see [`Meter::finish`]).
    pub fn quarters(&self) -> &[Quarter] {
        &self.quarters
    }

    /// The month's peak now (1-0:1.6.0): when its quarter ended, W.
    pub fn month_peak(&self) -> (Stamp, u32) {
        self.peak
    }

    /// The past months' peaks (0-0:98.1.0), newest first.
    pub fn history(&self) -> &[PastPeak] {
        &self.history
    }

    /// The end of the run: closes the quarter going on (partial unless its 900 s are
    /// in) and returns every quarter.
    pub fn finish(&mut self) -> &[Quarter] {
        if let Some((start, import_wh, seconds)) = self.open.take() {
            self.quarters.push(Quarter {
                start,
                import_wh,
                seconds,
            });
        }
        &self.quarters
    }

    /// The phase voltages, V, at the given grid currents: the supply's own level (or
    /// the recorded one, `base`) less the sag across the grid impedance, plus noise.
    pub fn voltages(&mut self, grid_a: [f64; 3], base: Option<[f64; 3]>) -> [f64; 3] {
        let mut v = [0.0; 3];
        for p in 0..3 {
            let noise = 0.15 * self.rng.normal();
            v[p] = match base {
                Some(b) => b[p],
                None => 229.0 + self.offset_v[p] - GRID_OHM * grid_a[p] + noise,
            };
        }
        v
    }

    /// One second at the given grid currents (A, import positive) and voltages:
    /// accumulates the registers and returns the bytes put on the line (empty while
    /// silent).
    pub fn second(&mut self, t_s: u32, grid_a: [f64; 3], volts: [f64; 3]) -> &[u8] {
        let time = Stamp::after(self.start, t_s);
        let values = self.measure(time, grid_a, volts);
        self.buf.clear();
        if self.spec.silent.iter().any(|&(a, b)| t_s >= a && t_s < b) {
            self.stats.silent_s += 1;
            return &self.buf;
        }
        if self.spec.junk_prob > 0.0 && self.fault_rng.chance(self.spec.junk_prob) {
            let n = 1 + self.fault_rng.below(6);
            for _ in 0..n {
                self.buf.push(self.fault_rng.next_u64() as u8);
            }
            self.stats.junk += 1;
        }
        let at = self.buf.len();
        write_telegram(&mut self.buf, self.spec.flavour, &values);
        self.stats.sent += 1;
        if self.spec.corrupt_prob > 0.0 && self.fault_rng.chance(self.spec.corrupt_prob) {
            // Between `/` and the last CRC digit (the CR LF after it is not covered).
            let span = (self.buf.len() - 2 - at) as u64;
            let i = at + self.fault_rng.below(span) as usize;
            self.buf[i] ^= 1 << self.fault_rng.below(8);
            self.stats.corrupted += 1;
        }
        &self.buf
    }

    fn measure(&mut self, stamp: Stamp, grid_a: [f64; 3], volts: [f64; 3]) -> MeterValues {
        let time = stamp.local;
        let mut phase = [PhaseValues::default(); 3];
        let mut total_w = 0i64;
        for p in 0..self.spec.phases.min(3) {
            let v_dv = (volts[p] * 10.0).round() as i32;
            let w = (f64::from(v_dv) / 10.0 * grid_a[p]).round() as i32;
            phase[p] = PhaseValues {
                voltage_dv: v_dv,
                current_ma: (grid_a[p].abs() * 1000.0).round() as i32,
                import_w: w.max(0),
                export_w: (-w).max(0),
            };
            total_w += i64::from(w);
        }
        let tariff = tariff(self.spec.flavour, time);
        let ti = usize::from(tariff - 1);
        let wh = total_w as f64 / 3600.0;
        if wh >= 0.0 {
            self.import_wh[ti] += wh;
        } else {
            self.export_wh[ti] -= wh;
        }
        // Gas: a little cooking and hot water.
        self.gas_l += 0.01;
        // Quarter-hour average demand (import), e-MUCS 1.4.0 / 1.6.0.
        let sod = time.second_of_day();
        if sod % 900 == 0 && self.quarter.1 > 0 {
            if self.average_w > self.peak.1 {
                self.peak = (stamp, self.average_w);
            }
            self.quarter = (0.0, 0);
        }
        let (y, m, d) = time.date();
        if sod % 900 == 0 && (y, m) != self.peak_month {
            // The month's last quarter is in: its peak goes to the history, the new
            // month starts from nothing.
            let month_start = Stamp {
                local: DateTime::new(y, m, 1, 0, 0),
                summer: stamp.summer,
            };
            self.history.insert(
                0,
                PastPeak {
                    month_end: month_start,
                    at: self.peak.0,
                    power_w: self.peak.1,
                },
            );
            self.history.truncate(13);
            self.peak = (month_start, 0);
            self.peak_month = (y, m);
        }
        if sod % 900 == 0 || self.open.is_none() {
            if let Some((start, import_wh, seconds)) = self.open.take() {
                self.quarters.push(Quarter {
                    start,
                    import_wh,
                    seconds,
                });
            }
            let start = Stamp {
                local: DateTime::new(y, m, d, 0, 0).plus(sod - sod % 900),
                summer: stamp.summer,
            };
            self.open = Some((start, 0.0, 0));
        }
        if let Some(q) = &mut self.open {
            q.1 += wh.max(0.0);
            q.2 += 1;
        }
        self.quarter.0 += total_w.max(0) as f64;
        self.quarter.1 += 1;
        self.average_w = (self.quarter.0 / f64::from(self.quarter.1)).round() as u32;
        // The gas meter is read every five minutes.
        let gas_time = Stamp {
            local: DateTime::new(y, m, d, 0, 0).plus(sod - sod % 300),
            summer: stamp.summer,
        };
        MeterValues {
            time: stamp,
            tariff,
            import_wh: self.import_wh.map(|x| x as u64),
            export_wh: self.export_wh.map(|x| x as u64),
            phases: self.spec.phases.min(3),
            phase,
            gas_l: self.gas_l as u64,
            gas_time,
            average_demand_w: self.average_w,
            peak: self.peak,
            history: self.spec.history.then(|| self.history.clone()),
        }
    }
}

/// The tariff in force: NL prints 1 for low (nights and weekends) and 2 for normal; BE
/// prints 1 for day and 2 for night.
fn tariff(flavour: Flavour, time: DateTime) -> u8 {
    let h = time.second_of_day() / 3600;
    let day = (7..23).contains(&h) && time.weekday() < 5;
    match (flavour, day) {
        (Flavour::Dsmr5, true) | (Flavour::Emucs, false) => 2,
        _ => 1,
    }
}

/// Appends `v / 10^frac` as `int` integer digits (zero-padded), a dot and `frac`
/// decimals (no dot when `frac` is 0). Values too large for the width print in full.
fn num(out: &mut Vec<u8>, v: u64, int: usize, frac: usize) {
    let mut digits = [0u8; 24];
    let mut n = 0;
    let mut x = v;
    while x > 0 || n < int + frac {
        digits[n] = b'0' + (x % 10) as u8;
        x /= 10;
        n += 1;
        if n == digits.len() {
            break;
        }
    }
    for i in (0..n).rev() {
        out.push(digits[i]);
        if i == frac && frac > 0 {
            out.push(b'.');
        }
    }
}

fn line(out: &mut Vec<u8>, obis: &[u8]) {
    out.extend_from_slice(obis);
    out.push(b'(');
}

fn end(out: &mut Vec<u8>, unit: &[u8]) {
    out.extend_from_slice(unit);
    out.extend_from_slice(b")\r\n");
}

/// A number object: `obis(value*unit)`.
fn obj(out: &mut Vec<u8>, obis: &[u8], v: u64, int: usize, frac: usize, unit: &[u8]) {
    line(out, obis);
    num(out, v, int, frac);
    end(out, unit);
}

const VOLTAGE: [&[u8]; 3] = [b"1-0:32.7.0", b"1-0:52.7.0", b"1-0:72.7.0"];
const CURRENT: [&[u8]; 3] = [b"1-0:31.7.0", b"1-0:51.7.0", b"1-0:71.7.0"];
const IMPORT: [&[u8]; 3] = [b"1-0:21.7.0", b"1-0:41.7.0", b"1-0:61.7.0"];
const EXPORT: [&[u8]; 3] = [b"1-0:22.7.0", b"1-0:42.7.0", b"1-0:62.7.0"];
const SAGS: [&[u8]; 3] = [b"1-0:32.32.0", b"1-0:52.32.0", b"1-0:72.32.0"];
const SWELLS: [&[u8]; 3] = [b"1-0:32.36.0", b"1-0:52.36.0", b"1-0:72.36.0"];

fn kw(w: i64) -> u64 {
    w.clamp(0, 99_999) as u64
}

/// Appends one complete telegram, `/` to CRC and CR LF, in the given format.
pub fn write_telegram(out: &mut Vec<u8>, flavour: Flavour, v: &MeterValues) {
    let start = out.len();
    let n = v.phases.min(3);
    let ph = &v.phase[..n];
    let total: i64 = ph
        .iter()
        .map(|p| i64::from(p.import_w) - i64::from(p.export_w))
        .sum();
    let energy = |out: &mut Vec<u8>| {
        obj(out, b"1-0:1.8.1", v.import_wh[0], 6, 3, b"*kWh");
        obj(out, b"1-0:1.8.2", v.import_wh[1], 6, 3, b"*kWh");
        obj(out, b"1-0:2.8.1", v.export_wh[0], 6, 3, b"*kWh");
        obj(out, b"1-0:2.8.2", v.export_wh[1], 6, 3, b"*kWh");
    };
    let stamp = |out: &mut Vec<u8>, obis: &[u8], t: &Stamp| {
        line(out, obis);
        out.extend_from_slice(&t.dsmr());
        end(out, b"");
    };
    match flavour {
        Flavour::Dsmr5 => {
            out.extend_from_slice(b"/Ene5\\T210-D ESMR5.0\r\n\r\n1-3:0.2.8(50)\r\n");
            stamp(out, b"0-0:1.0.0", &v.time);
            out.extend_from_slice(b"0-0:96.1.1(4530303438303030303332303631353139)\r\n");
            energy(out);
            obj(out, b"0-0:96.14.0", u64::from(v.tariff), 4, 0, b"");
            obj(out, b"1-0:1.7.0", kw(total), 2, 3, b"*kW");
            obj(out, b"1-0:2.7.0", kw(-total), 2, 3, b"*kW");
            out.extend_from_slice(
                b"0-0:96.7.21(00082)\r\n0-0:96.7.9(00021)\r\n\
                  1-0:99.97.0(1)(0-0:96.7.19)(220416174436S)(0000001183*s)\r\n",
            );
            for s in &SAGS[..n] {
                obj(out, s, 7, 5, 0, b"");
            }
            for s in &SWELLS[..n] {
                obj(out, s, 0, 5, 0, b"");
            }
            out.extend_from_slice(b"0-0:96.13.0()\r\n");
            for (p, o) in ph.iter().zip(VOLTAGE) {
                obj(out, o, p.voltage_dv.max(0) as u64, 3, 1, b"*V");
            }
            for (p, o) in ph.iter().zip(CURRENT) {
                // Whole amperes, rounded.
                let a = (i64::from(p.current_ma.max(0)) + 500) / 1000;
                obj(out, o, a as u64, 3, 0, b"*A");
            }
            for (p, o) in ph.iter().zip(IMPORT) {
                obj(out, o, kw(p.import_w.into()), 2, 3, b"*kW");
            }
            for (p, o) in ph.iter().zip(EXPORT) {
                obj(out, o, kw(p.export_w.into()), 2, 3, b"*kW");
            }
            out.extend_from_slice(
                b"0-1:24.1.0(003)\r\n0-1:96.1.0(4730303539303033383434303238393139)\r\n",
            );
            line(out, b"0-1:24.2.1");
            out.extend_from_slice(&v.gas_time.dsmr());
            out.extend_from_slice(b")(");
            num(out, v.gas_l, 5, 3);
            end(out, b"*m3");
        }
        Flavour::Emucs => {
            out.extend_from_slice(
                b"/FLU5\\253769484_A\r\n\r\n0-0:96.1.4(50217)\r\n\
                  0-0:96.1.1(3153414733313031303231363035)\r\n",
            );
            stamp(out, b"0-0:1.0.0", &v.time);
            energy(out);
            obj(
                out,
                b"1-0:1.4.0",
                u64::from(v.average_demand_w),
                2,
                3,
                b"*kW",
            );
            line(out, b"1-0:1.6.0");
            out.extend_from_slice(&v.peak.0.dsmr());
            out.extend_from_slice(b")(");
            num(out, u64::from(v.peak.1), 2, 3);
            end(out, b"*kW");
            if let Some(history) = &v.history {
                line(out, b"0-0:98.1.0");
                num(out, history.len() as u64, 1, 0);
                out.extend_from_slice(b")(1-0:1.6.0)(1-0:1.6.0)");
                for p in history {
                    out.push(b'(');
                    out.extend_from_slice(&p.month_end.dsmr());
                    out.extend_from_slice(b")(");
                    out.extend_from_slice(&p.at.dsmr());
                    out.extend_from_slice(b")(");
                    num(out, u64::from(p.power_w), 2, 3);
                    out.extend_from_slice(b"*kW)");
                }
                out.extend_from_slice(b"\r\n");
            }
            obj(out, b"0-0:96.14.0", u64::from(v.tariff), 4, 0, b"");
            obj(out, b"1-0:1.7.0", kw(total), 2, 3, b"*kW");
            obj(out, b"1-0:2.7.0", kw(-total), 2, 3, b"*kW");
            for (p, o) in ph.iter().zip(IMPORT) {
                obj(out, o, kw(p.import_w.into()), 2, 3, b"*kW");
            }
            for (p, o) in ph.iter().zip(EXPORT) {
                obj(out, o, kw(p.export_w.into()), 2, 3, b"*kW");
            }
            for (p, o) in ph.iter().zip(VOLTAGE) {
                obj(out, o, p.voltage_dv.max(0) as u64, 3, 1, b"*V");
            }
            for (p, o) in ph.iter().zip(CURRENT) {
                // Hundredths of an ampere, rounded.
                let ca = (i64::from(p.current_ma.max(0)) + 5) / 10;
                obj(out, o, ca as u64, 3, 2, b"*A");
            }
            out.extend_from_slice(
                b"0-0:96.3.10(1)\r\n0-0:17.0.0(999.9*kW)\r\n1-0:31.4.0(999*A)\r\n\
                  0-0:96.13.0()\r\n0-1:24.1.0(003)\r\n\
                  0-1:96.1.1(37464C4F32313139303333373333)\r\n0-1:24.4.0(1)\r\n",
            );
            line(out, b"0-1:24.2.3");
            out.extend_from_slice(&v.gas_time.dsmr());
            out.extend_from_slice(b")(");
            num(out, v.gas_l, 5, 3);
            end(out, b"*m3");
        }
    }
    out.push(b'!');
    let crc = crc16_arc(&out[start..]);
    for shift in [12, 8, 4, 0] {
        out.push(b"0123456789ABCDEF"[usize::from((crc >> shift) & 0xF)]);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use p1lb_core::p1::{CrcStatus, Event, GridSource, Reading, TelegramReader};

    fn values(phases: usize) -> MeterValues {
        let t = Stamp::of(DateTime::new(2025, 1, 15, 17, 30));
        MeterValues {
            time: t,
            tariff: 2,
            import_wh: [6_184_667, 4_762_136],
            export_wh: [4_708_286, 11_405_268],
            phases,
            phase: [
                PhaseValues {
                    voltage_dv: 2318,
                    current_ma: 23_456,
                    import_w: 5437,
                    export_w: 0,
                },
                PhaseValues {
                    voltage_dv: 2344,
                    current_ma: 7_004,
                    import_w: 0,
                    export_w: 1642,
                },
                PhaseValues {
                    voltage_dv: 2299,
                    current_ma: 505,
                    import_w: 116,
                    export_w: 0,
                },
            ],
            gas_l: 3_133_361,
            gas_time: Stamp::of(DateTime::new(2025, 1, 15, 17, 25)),
            average_demand_w: 2351,
            peak: (Stamp::of(DateTime::new(2025, 1, 9, 13, 45)), 2589),
            history: None,
        }
    }

    /// Feeds `bytes` through the real reader; returns the readings and CRC verdicts.
    fn read(bytes: &[u8]) -> (Vec<(Reading, CrcStatus)>, u32) {
        let mut reader: TelegramReader = TelegramReader::new();
        let mut rest = bytes;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let (used, ev) = reader.feed(rest);
            rest = &rest[used..];
            if let Some(Event::Telegram(t)) = ev {
                out.push((Reading::parse(&t), t.crc()));
            }
        }
        (out, reader.stats().rejected())
    }

    #[test]
    fn dsmr5_round_trips_through_the_reader() {
        let v = values(3);
        let mut buf = Vec::new();
        write_telegram(&mut buf, Flavour::Dsmr5, &v);
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("/Ene5\\T210-D ESMR5.0\r\n\r\n1-3:0.2.8(50)\r\n"));
        assert!(text.contains("0-0:1.0.0(250115173000W)\r\n"), "{text}");
        assert!(text.contains("1-0:31.7.0(023*A)\r\n"), "{text}");
        assert!(text.contains("1-0:52.7.0(234.4*V)\r\n"), "{text}");
        assert!(text.contains("1-0:42.7.0(01.642*kW)\r\n"), "{text}");
        let (got, rejected) = read(&buf);
        assert_eq!(rejected, 0);
        assert_eq!(got.len(), 1);
        let (r, crc) = &got[0];
        assert!(matches!(crc, CrcStatus::Ok(_)));
        assert_eq!(r.version, Some(50));
        assert_eq!(r.import_wh.t1, Some(6_184_667));
        assert_eq!(r.export_wh.t2, Some(11_405_268));
        assert_eq!(r.tariff, Some(2));
        assert_eq!(r.power_import_w, Some(5437 - 1642 + 116));
        for (p, want) in r.phases.iter().zip(v.phase) {
            assert_eq!(p.voltage_dv, Some(want.voltage_dv));
            assert_eq!(p.power_import_w, Some(want.import_w));
            assert_eq!(p.power_export_w, Some(want.export_w));
            // Whole amperes.
            assert_eq!(
                p.current_ma,
                Some((want.current_ma + 500) / 1000 * 1000),
                "{want:?}"
            );
        }
        // The balancer's signed current from power and voltage: within 3 mA.
        let g = r.grid_currents_ma(GridSource::Auto);
        let want = [
            5437 * 10_000 / 2318,
            -1642 * 10_000 / 2344,
            116 * 10_000 / 2299,
        ];
        for (g, w) in g.iter().zip(want) {
            assert!((g.expect("current") - w).abs() <= 3, "{g:?} {w}");
        }
    }

    #[test]
    fn emucs_round_trips_with_two_decimals_and_demand() {
        let v = values(3);
        let mut buf = Vec::new();
        write_telegram(&mut buf, Flavour::Emucs, &v);
        let text = String::from_utf8_lossy(&buf);
        assert!(text.contains("1-0:31.7.0(023.46*A)\r\n"), "{text}");
        assert!(text.contains("1-0:71.7.0(000.51*A)\r\n"), "{text}");
        let (got, rejected) = read(&buf);
        assert_eq!(rejected, 0);
        let (r, crc) = &got[0];
        assert!(matches!(crc, CrcStatus::Ok(_)));
        assert_eq!(r.version, Some(50217));
        assert_eq!(r.phases[0].current_ma, Some(23_460));
        assert_eq!(r.phases[1].current_ma, Some(7_000));
        assert_eq!(r.phases[2].current_ma, Some(510));
        assert_eq!(r.average_demand_w, Some(2351));
        assert_eq!(r.month_peak.map(|p| p.power_w), Some(2589));
        assert_eq!(r.breaker_closed, Some(true));
        for (p, want) in r.phases.iter().zip(v.phase) {
            assert_eq!(p.voltage_dv, Some(want.voltage_dv));
            assert_eq!(p.power_export_w, Some(want.export_w));
        }
    }

    #[test]
    fn single_phase_meter_prints_l1_only() {
        let v = values(1);
        let mut buf = Vec::new();
        write_telegram(&mut buf, Flavour::Dsmr5, &v);
        let text = String::from_utf8_lossy(&buf);
        assert!(!text.contains("1-0:51.7.0") && !text.contains("1-0:72.7.0"));
        let (got, _) = read(&buf);
        let g = got[0].0.grid_currents_ma(GridSource::Auto);
        assert!(g[0].is_some() && g[1].is_none() && g[2].is_none());
    }

    #[test]
    fn the_model_meter_every_second_and_its_faults() {
        let spec = MeterSpec {
            flavour: Flavour::Dsmr5,
            phases: 3,
            silent: vec![(10, 20)],
            corrupt_prob: 0.3,
            junk_prob: 0.2,
            ..MeterSpec::healthy(Flavour::Dsmr5, 3)
        };
        let mut m = Meter::new(&spec, DateTime::new(2025, 1, 15, 17, 0), 9);
        let mut stream = Vec::new();
        for t in 0..200 {
            let grid = [10.0, -5.0, 1.0];
            let v = m.voltages(grid, None);
            stream.extend_from_slice(m.second(t, grid, v));
        }
        let s = m.stats();
        assert_eq!(s.silent_s, 10);
        assert_eq!(s.sent, 190);
        assert!(s.corrupted > 30 && s.junk > 20, "{s:?}");
        let (got, rejected) = read(&stream);
        // Every corrupted telegram is refused; every clean one is accepted.
        assert_eq!(got.len() as u32, s.sent - s.corrupted);
        assert!(rejected >= s.corrupted / 2, "{rejected} {s:?}");
        for (r, _) in &got {
            let g = r.grid_currents_ma(GridSource::Auto);
            assert!((g[0].expect("L1") - 10_000).abs() < 10, "{g:?}");
            assert!((g[1].expect("L2") + 5_000).abs() < 10, "{g:?}");
        }
    }

    /// Export as the real meters print it (issue 18): 1.7.0 zero and 2.7.0 the net
    /// export of all phases; each phase's 21.7.0/22.7.0 (and 41/42, 61/62) by its own
    /// direction; the currents unsigned (the reader signs them from the per-phase
    /// powers); 2.8.x counting up and 1.8.x standing still; e-MUCS's 1.4.0 counts no
    /// import. L1 and L2 export (an inverter and no load), L3 imports.
    #[test]
    fn export_is_printed_as_the_meters_do() {
        for flavour in [Flavour::Dsmr5, Flavour::Emucs] {
            let spec = MeterSpec::healthy(flavour, 3);
            let mut m = Meter::new(&spec, DateTime::new(2025, 6, 18, 12, 0), 1);
            let grid = [-10.0, -8.0, 3.0];
            let first = m.second(0, grid, [230.0; 3]).to_vec();
            for t in 1..3599 {
                m.second(t, grid, [230.0; 3]);
            }
            let last = m.second(3599, grid, [230.0; 3]).to_vec();
            let text = String::from_utf8_lossy(&first).into_owned();
            let has = |s: &str| text.contains(s);
            assert!(
                has("1-0:1.7.0(00.000*kW)") && has("1-0:2.7.0(03.450*kW)"),
                "{text}"
            );
            assert!(
                has("1-0:21.7.0(00.000*kW)") && has("1-0:22.7.0(02.300*kW)"),
                "{text}"
            );
            assert!(
                has("1-0:41.7.0(00.000*kW)") && has("1-0:42.7.0(01.840*kW)"),
                "{text}"
            );
            assert!(
                has("1-0:61.7.0(00.690*kW)") && has("1-0:62.7.0(00.000*kW)"),
                "{text}"
            );
            let l1 = match flavour {
                Flavour::Dsmr5 => "1-0:31.7.0(010*A)",
                Flavour::Emucs => "1-0:31.7.0(010.00*A)",
            };
            assert!(has(l1), "{text}");
            let (a, _) = read(&first);
            let (b, _) = read(&last);
            let (a, b) = (&a[0].0, &b[0].0);
            assert_eq!((a.power_import_w, a.power_export_w), (Some(0), Some(3450)));
            // Unsigned current objects; the signed grid current from the powers.
            assert_eq!(a.phases[0].current_ma, Some(10_000));
            let g = a.grid_currents_ma(GridSource::Auto);
            assert_eq!(g, [Some(-10_000), Some(-8_000), Some(3_000)]);
            let unsigned = a.grid_currents_ma(GridSource::CurrentObjects);
            assert_eq!(unsigned, [Some(10_000), Some(8_000), Some(3_000)]);
            // An hour of 3.45 kW: 3.45 kWh more exported (to the Wh the meter prints),
            // nothing imported.
            let exported = b.export_wh.sum().expect("2.8.x") - a.export_wh.sum().expect("2.8.x");
            assert!((3448..=3450).contains(&exported), "{flavour:?}: {exported}");
            assert_eq!(a.import_wh, b.import_wh);
            if flavour == Flavour::Emucs {
                assert_eq!(b.average_demand_w, Some(0));
            }
        }
    }

    /// The month's peak is reset at the month change, after the month's last quarter;
    /// the quarters follow the clock; 98.1.0 lists the past month; the reader reads it.
    #[test]
    fn the_peak_resets_at_the_month_change() {
        let mut spec = MeterSpec::healthy(Flavour::Emucs, 3);
        spec.month_peak = Some(EarlierPeak {
            day: 20,
            hour: 19,
            minute: 30,
            power_w: 4000,
        });
        spec.history = true;
        let mut m = Meter::new(&spec, DateTime::new(2025, 1, 31, 23, 0), 1);
        let mut telegrams = Vec::new();
        for t in 0..7200 {
            // 10 A on L1 before midnight, 5 A after; L2 exports 2 A (not netted
            // against the quarter: the meter nets the phases each second).
            let a = if t < 3600 { 10.0 } else { 5.0 };
            let grid = [a, -2.0, 0.0];
            let bytes = m.second(t, grid, [230.0; 3]).to_vec();
            if [3599, 3600, 4500, 7199].contains(&t) {
                telegrams.push(bytes);
            }
        }
        let q = m.finish().to_vec();
        assert_eq!(q.len(), 8);
        assert!(q.iter().all(Quarter::full));
        assert_eq!(&q[4].start.dsmr(), b"250201000000W");
        // (10 A − 2 A) × 230 V = 1.84 kW; after midnight 0.69 kW.
        assert!((q[3].average_kw() - 1.84).abs() < 0.001, "{q:?}");
        assert!((q[4].average_kw() - 0.69).abs() < 0.001, "{q:?}");
        assert_eq!(m.history().len(), 1);
        assert_eq!(m.history()[0].power_w, 4000);
        assert_eq!(m.month_peak().1, 690);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        // 23:59:59: January's peak, no history yet.
        assert!(text(&telegrams[0]).contains("1-0:1.6.0(250120193000W)(04.000*kW)"));
        assert!(text(&telegrams[0]).contains("0-0:98.1.0(0)(1-0:1.6.0)(1-0:1.6.0)\r\n"));
        // 00:00:00: reset, January in the history.
        let t = text(&telegrams[1]);
        assert!(t.contains("1-0:1.6.0(250201000000W)(00.000*kW)"), "{t}");
        assert!(
            t.contains(
                "0-0:98.1.0(1)(1-0:1.6.0)(1-0:1.6.0)(250201000000W)(250120193000W)(04.000*kW)"
            ),
            "{t}"
        );
        // 00:15:00: the first quarter of February is its peak.
        assert!(text(&telegrams[2]).contains("1-0:1.6.0(250201001500W)(00.690*kW)"));
        for b in &telegrams {
            let (got, rejected) = read(b);
            assert_eq!((got.len(), rejected), (1, 0));
            assert!(matches!(got[0].1, CrcStatus::Ok(_)));
        }
        let (got, _) = read(&telegrams[3]);
        assert_eq!(got[0].0.month_peak.map(|p| p.power_w), Some(690));
        assert_eq!(got[0].0.average_demand_w, Some(690));
    }

    /// Across the end of summer time the hour 02:00–03:00 has eight quarters, four `S`
    /// and four `W`, each full; across its start an hour has none.
    #[test]
    fn quarters_follow_the_clock_across_dst() {
        let spec = MeterSpec::healthy(Flavour::Emucs, 3);
        let mut m = Meter::new(&spec, DateTime::new(2025, 10, 26, 1, 30), 1);
        for t in 0..3 * 3600 {
            m.second(t, [1.0; 3], [230.0; 3]);
        }
        let q = m.finish();
        let starts: Vec<String> = q
            .iter()
            .map(|q| String::from_utf8_lossy(&q.start.dsmr()[6..]).into_owned())
            .collect();
        assert_eq!(
            starts,
            [
                "013000S", "014500S", "020000S", "021500S", "023000S", "024500S", "020000W",
                "021500W", "023000W", "024500W", "030000W", "031500W"
            ]
        );
        assert!(q.iter().all(Quarter::full));
        let mut m = Meter::new(&spec, DateTime::new(2025, 3, 30, 1, 30), 1);
        for t in 0..3600 {
            m.second(t, [1.0; 3], [230.0; 3]);
        }
        let q = m.finish();
        let starts: Vec<String> = q
            .iter()
            .map(|q| String::from_utf8_lossy(&q.start.dsmr()[6..]).into_owned())
            .collect();
        assert_eq!(starts, ["013000W", "014500W", "030000S", "031500S"]);
    }
}
