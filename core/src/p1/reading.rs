//! The parsed model of one telegram, in fixed-point integers.
//!
//! Units: energy in Wh, power in W, voltage in 0.1 V (dV), current in mA. A value
//! whose unit is not the one its object must carry (a current in kW, say) is not
//! used and is counted in [`Reading::unit_errors`]; a value printed without a unit
//! is taken in the object's standard unit (some meters omit it).

use super::telegram::{Obis, Object, Telegram};
use super::value::{Decimal, Timestamp, Unit, Value};

/// M-Bus channels kept (DSMR allows four: gas, water, heat, …).
pub const MAX_MBUS_CHANNELS: usize = 4;

/// The equipment identifier as printed (hex-encoded ASCII in DSMR 4+).
pub type MeterId = heapless::String<96>;

/// Energy registers of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tariffs {
    /// Tariff 1 (NL/BE: low / night), `x.8.1`.
    pub t1: Option<i64>,
    /// Tariff 2 (NL/BE: normal / day), `x.8.2`.
    pub t2: Option<i64>,
    /// Total, `x.8.0` where the meter prints it (Smarty, EasyMeter, Nordic).
    pub total: Option<i64>,
}

impl Tariffs {
    /// The total: `x.8.0` where printed, else T1 + T2.
    pub fn sum(&self) -> Option<i64> {
        self.total.or_else(|| match (self.t1, self.t2) {
            (None, None) => None,
            (a, b) => a.unwrap_or(0).checked_add(b.unwrap_or(0)),
        })
    }
}

/// One phase as measured by the meter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseReading {
    /// Voltage, 0.1 V (`1-0:32/52/72.7.0`).
    pub voltage_dv: Option<i32>,
    /// Current magnitude as printed, mA (`1-0:31/51/71.7.0`; unsigned on every meter).
    pub current_ma: Option<i32>,
    /// Active power imported, W (`1-0:21/41/61.7.0`).
    pub power_import_w: Option<i32>,
    /// Active power exported, W (`1-0:22/42/62.7.0`).
    pub power_export_w: Option<i32>,
}

/// Which objects the signed grid current comes from (register 1024).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GridSource {
    /// Signed current from per-phase power and voltage where the telegram has them,
    /// else the current objects (signed by the phase's power direction when known).
    #[default]
    Auto,
    /// The current objects only, as printed (unsigned: counted as import).
    CurrentObjects,
}

/// Lowest voltage (0.1 V) trusted for a power ÷ voltage current: below it the phase
/// is taken as not measured.
const MIN_VOLTAGE_DV: i32 = 500;

impl PhaseReading {
    /// Import − export power, W, where at least one of them is known.
    pub fn signed_power_w(&self) -> Option<i32> {
        match (self.power_import_w, self.power_export_w) {
            (None, None) => None,
            (i, e) => Some(i.unwrap_or(0).saturating_sub(e.unwrap_or(0))),
        }
    }

    /// The grid current of this phase, mA, import positive (see [`GridSource`]).
    ///
    /// The rule, for [`GridSource::Auto`]:
    /// 1. power and voltage known (voltage ≥ 50 V): `(import − export) / voltage`,
    ///    rounded to the mA — finer than the whole amperes most meters print, and
    ///    signed;
    /// 2. else the current object, negated when the phase's power shows export;
    /// 3. else unknown.
    pub fn grid_current_ma(&self, source: GridSource) -> Option<i32> {
        if source == GridSource::Auto {
            if let (Some(p), Some(v)) = (self.signed_power_w(), self.voltage_dv) {
                if v >= MIN_VOLTAGE_DV {
                    // I[mA] = P[W] / (v[dV] / 10) * 1000 = P * 10_000 / v
                    let num = i64::from(p) * 10_000;
                    let den = i64::from(v);
                    let q = (num + num.signum() * den / 2) / den;
                    return i32::try_from(q).ok();
                }
            }
            let i = self.current_ma?;
            return Some(match self.signed_power_w() {
                Some(p) if p < 0 => -i,
                _ => i,
            });
        }
        self.current_ma
    }
}

/// The monthly peak of the Belgian capacity tariff (`1-0:1.6.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peak {
    /// When the peak quarter-hour occurred.
    pub at: Option<Timestamp>,
    /// The peak average demand, W.
    pub power_w: i64,
}

/// The latest reading of one M-Bus device (gas, water, heat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MbusReading {
    /// The channel (OBIS B field, 1–4).
    pub channel: u8,
    /// Device type (`0-n:24.1.0`: 3 gas, 7 water, 4 heat, …).
    pub device_type: Option<u16>,
    /// When the device was last read.
    pub timestamp: Option<Timestamp>,
    /// The meter value exactly as printed (m3, GJ, …).
    pub value: Option<Decimal>,
    /// Its unit.
    pub unit: Option<Unit>,
}

/// Everything the balancer and the register map use from one telegram.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    /// DSMR version (`1-3:0.2.8`, e.g. 50) or e-MUCS version (`0-0:96.1.4`, e.g. 50217).
    pub version: Option<u32>,
    /// Equipment identifier: the first of `0-0:96.1.1`, `0-0:96.1.0` (E.ON Hungary),
    /// `0-0:96.1.255` / `1-0:0.0.0` (EasyMeter).
    pub meter_id: Option<MeterId>,
    /// Time of the reading (`0-0:1.0.0`).
    pub timestamp: Option<Timestamp>,
    /// Active tariff (`0-0:96.14.0`).
    pub tariff: Option<u16>,
    /// Energy imported, Wh (`1-0:1.8.x`).
    pub import_wh: Tariffs,
    /// Energy exported, Wh (`1-0:2.8.x`).
    pub export_wh: Tariffs,
    /// Total power imported, W (`1-0:1.7.0`).
    pub power_import_w: Option<i64>,
    /// Total power exported, W (`1-0:2.7.0`).
    pub power_export_w: Option<i64>,
    /// L1, L2, L3.
    pub phases: [PhaseReading; 3],
    /// Belgian current average demand (quarter-hour), W (`1-0:1.4.0`).
    pub average_demand_w: Option<i64>,
    /// Belgian peak of the month (`1-0:1.6.0`).
    pub month_peak: Option<Peak>,
    /// Belgian current limit of the limiter, mA (`1-0:31.4.0`; 999 A = no limit).
    pub current_limit_ma: Option<i64>,
    /// Breaker / limiter state (`0-0:96.3.10`): true = closed (power on).
    pub breaker_closed: Option<bool>,
    /// M-Bus devices, by channel.
    pub mbus: heapless::Vec<MbusReading, MAX_MBUS_CHANNELS>,
    /// Values ignored because their unit did not fit their object.
    pub unit_errors: u8,
}

const fn e(c: u8, d: u8, e_: u8) -> Obis {
    Obis::new(1, 0, c, d, e_)
}

impl Reading {
    /// Builds the model from a checked telegram. Objects not listed in the field docs
    /// are ignored.
    pub fn parse(t: &Telegram<'_>) -> Reading {
        let mut r = Reading::default();
        for o in t.objects() {
            r.take(&o);
        }
        r
    }

    /// The signed grid current per phase, mA (see [`PhaseReading::grid_current_ma`]).
    pub fn grid_currents_ma(&self, source: GridSource) -> [Option<i32>; 3] {
        self.phases.map(|p| p.grid_current_ma(source))
    }

    /// Net import power, W (export negative): `1.7.0 − 2.7.0` where printed, else the
    /// sum of the phases' signed powers where any is printed, else `None`.
    pub fn net_power_w(&self) -> Option<i64> {
        match (self.power_import_w, self.power_export_w) {
            (None, None) => self
                .phases
                .iter()
                .filter_map(|p| p.signed_power_w())
                .map(i64::from)
                .reduce(i64::saturating_add),
            (i, e) => Some(i.unwrap_or(0).saturating_sub(e.unwrap_or(0))),
        }
    }

    fn take(&mut self, o: &Object<'_>) {
        let v0 = o.value(0);
        let obis = o.obis;
        match obis {
            x if x == Obis::new(1, 3, 0, 2, 8) || x == Obis::new(0, 0, 96, 1, 4) => {
                self.version = v0.and_then(|v| v.text().parse().ok());
            }
            x if (x == Obis::new(0, 0, 96, 1, 1)
                || x == Obis::new(0, 0, 96, 1, 0)
                || x == Obis::new(0, 0, 96, 1, 255)
                || x == Obis::new(1, 0, 0, 0, 0))
                && self.meter_id.is_none() =>
            {
                self.meter_id = v0.and_then(|v| MeterId::try_from(v.text()).ok());
            }
            x if x == Obis::new(0, 0, 1, 0, 0) => self.timestamp = v0.and_then(|v| v.timestamp()),
            x if x == Obis::new(0, 0, 96, 14, 0) => {
                self.tariff = v0.and_then(|v| v.text().parse().ok());
            }
            x if x == Obis::new(0, 0, 96, 3, 10) => {
                self.breaker_closed = match v0.map(|v| v.text()) {
                    Some("1") => Some(true),
                    Some("0") => Some(false),
                    _ => None,
                };
            }
            x if x == e(1, 8, 0) => self.import_wh.total = self.scaled(v0, ENERGY),
            x if x == e(1, 8, 1) => self.import_wh.t1 = self.scaled(v0, ENERGY),
            x if x == e(1, 8, 2) => self.import_wh.t2 = self.scaled(v0, ENERGY),
            x if x == e(2, 8, 0) => self.export_wh.total = self.scaled(v0, ENERGY),
            x if x == e(2, 8, 1) => self.export_wh.t1 = self.scaled(v0, ENERGY),
            x if x == e(2, 8, 2) => self.export_wh.t2 = self.scaled(v0, ENERGY),
            x if x == e(1, 7, 0) => self.power_import_w = self.scaled(v0, POWER),
            x if x == e(2, 7, 0) => self.power_export_w = self.scaled(v0, POWER),
            x if x == e(1, 4, 0) => self.average_demand_w = self.scaled(v0, POWER),
            x if x == e(1, 6, 0) => {
                let at = v0.and_then(|v| v.timestamp());
                self.month_peak = self
                    .scaled(o.last_value(), POWER)
                    .map(|power_w| Peak { at, power_w });
            }
            x if x == e(31, 4, 0) => self.current_limit_ma = self.scaled(v0, CURRENT),
            Obis {
                a: 1,
                b: 0,
                c,
                d: 7,
                e: 0,
                f: 255,
            } => self.take_phase(c, v0),
            Obis {
                a: 0,
                b: ch @ 1..=4,
                ..
            } => self.take_mbus(ch, o),
            _ => {}
        }
    }

    fn take_phase(&mut self, c: u8, v: Option<Value<'_>>) {
        let (phase, what) = match c {
            21 | 22 | 31 | 32 => (0, c - 20),
            41 | 42 | 51 | 52 => (1, c - 40),
            61 | 62 | 71 | 72 => (2, c - 60),
            _ => return,
        };
        let small = |x: Option<i64>| x.and_then(|x| i32::try_from(x).ok());
        match what {
            1 => self.phases[phase].power_import_w = small(self.scaled(v, POWER)),
            2 => self.phases[phase].power_export_w = small(self.scaled(v, POWER)),
            11 => self.phases[phase].current_ma = small(self.scaled(v, CURRENT)),
            12 => self.phases[phase].voltage_dv = small(self.scaled(v, VOLTAGE)),
            _ => {}
        }
    }

    fn take_mbus(&mut self, ch: u8, o: &Object<'_>) {
        let obis = o.obis;
        let is = |c, d, e_| obis.eq_any_channel(&Obis::new(0, 0, c, d, e_));
        let mut slot = match self.mbus.iter().position(|m| m.channel == ch) {
            Some(i) => self.mbus[i],
            None => MbusReading {
                channel: ch,
                device_type: None,
                timestamp: None,
                value: None,
                unit: None,
            },
        };
        if is(24, 1, 0) {
            slot.device_type = o.value(0).and_then(|v| v.text().parse().ok());
        } else if is(24, 2, 1) || is(24, 2, 3) {
            // (timestamp)(value*unit)
            slot.timestamp = o.value(0).and_then(|v| v.timestamp());
            let reading = o.value(1).and_then(|v| v.number());
            slot.value = reading.map(|(d, _)| d);
            slot.unit = reading.and_then(|(_, u)| u).map(Unit::parse);
        } else if is(24, 3, 0) {
            // DSMR 2/3: (timestamp)(…)(…)(…)(obis)(unit) then (value) on the next line.
            slot.timestamp = o.value(0).and_then(|v| v.timestamp());
            slot.unit = o.value(5).map(|v| Unit::parse(v.text()));
            slot.value = o.value(6).and_then(|v| v.decimal());
        } else {
            return;
        }
        match self.mbus.iter_mut().find(|m| m.channel == ch) {
            Some(m) => *m = slot,
            // Full: channels beyond the fourth are ignored.
            None => {
                let _ = self.mbus.push(slot);
            }
        }
    }

    /// The value converted to the quantity's fixed-point unit, or `None` (counting a
    /// unit error) when its unit is not one of the quantity's.
    fn scaled(&mut self, v: Option<Value<'_>>, q: Quantity) -> Option<i64> {
        let (d, unit) = v?.number()?;
        let shift = match unit {
            None => Some(q.default_shift),
            Some(u) => {
                let u = Unit::parse(u);
                q.units.iter().find(|(x, _)| *x == u).map(|&(_, s)| s)
            }
        };
        match shift {
            Some(s) => d.to_scaled(s),
            None => {
                self.unit_errors = self.unit_errors.saturating_add(1);
                None
            }
        }
    }
}

/// A physical quantity: the units it may be printed in and the power of ten that
/// brings each to the model's fixed-point unit.
struct Quantity {
    units: &'static [(Unit, u8)],
    default_shift: u8,
}

const ENERGY: Quantity = Quantity {
    units: &[(Unit::KiloWattHour, 3), (Unit::WattHour, 0)],
    default_shift: 3,
};
const POWER: Quantity = Quantity {
    units: &[(Unit::KiloWatt, 3), (Unit::Watt, 0)],
    default_shift: 3,
};
const CURRENT: Quantity = Quantity {
    units: &[(Unit::Ampere, 3)],
    default_shift: 3,
};
const VOLTAGE: Quantity = Quantity {
    units: &[(Unit::Volt, 1)],
    default_shift: 1,
};
