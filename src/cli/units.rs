//! Register values for people: registers by name or address, values with their units
//! (`22A`, `22000mA`, `5s`, `2min`, `3.5kW`, `3500W`), allowed ranges, the state, mode
//! and flag names — shared by `p1lb config` and `p1lb monitor`.

use std::fmt::Write as _;

use p1lb_core::balancer::State;
use p1lb_core::config::{MAX_CHARGERS, Range};
use p1lb_core::registers::{
    CHARGER_STATUS_WORDS, ChargerFlags, FIRST, REGISTERS, Register, Type, charger_status_address,
    register,
};

use super::device::Failure;

/// The register called `name` (`-` or `_` between words, any case, `…-limit` for
/// `…_current`) or at that address.
pub fn find_register(name: &str) -> Result<&'static Register, Failure> {
    let key = name.trim().to_ascii_lowercase().replace('-', "_");
    if let Ok(address) = key.parse::<u16>() {
        return register(address)
            .filter(|r| r.address == address)
            .ok_or_else(|| Failure::usage(format!("no register at address {address}")));
    }
    let alias = key
        .strip_suffix("_limit")
        .map(|stem| format!("{stem}_current"));
    REGISTERS
        .iter()
        .find(|r| r.name == key || alias.as_deref() == Some(r.name))
        .ok_or_else(|| {
            let names: Vec<&str> = REGISTERS.iter().map(|r| r.name).collect();
            Failure::usage(format!(
                "unknown register {name:?}; known: {}",
                names.join(", ")
            ))
        })
}

/// Parses `text` into the raw register value of `reg`, converting units.
pub fn parse_value(reg: &Register, text: &str) -> Result<u16, Failure> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(t.len());
    let (num, unit) = (t[..split].trim(), t[split..].trim());
    let v: f64 = num.parse().map_err(|_| {
        Failure::usage(format!(
            "{}: {text:?} is not a number (with an optional unit)",
            reg.name
        ))
    })?;
    let scale = match (reg.unit, unit) {
        (_, "") => 1.0,
        ("mA", "mA" | "ma") => 1.0,
        ("mA", "A" | "a") => 1000.0,
        ("s", "s") => 1.0,
        ("s", "ms") => 0.001,
        ("s", "min") => 60.0,
        ("W", "W" | "w") => 1.0,
        ("W", "kW" | "kw" | "KW") => 1000.0,
        _ => {
            let want = match reg.unit {
                "mA" => "mA or A",
                "s" => "s, ms or min",
                "W" => "W or kW",
                "" => "no unit",
                other => other,
            };
            return Err(Failure::usage(format!(
                "{}: unit {unit:?} does not fit this register (it takes {want})",
                reg.name
            )));
        }
    };
    let raw = v * scale;
    if (raw - raw.round()).abs() > 1e-6 {
        return Err(Failure::usage(format!(
            "{}: {text:?} is not a whole number of {}",
            reg.name,
            if reg.unit.is_empty() {
                "units"
            } else {
                reg.unit
            }
        )));
    }
    let raw = raw.round();
    if !(0.0..=65535.0).contains(&raw) {
        return Err(Failure::usage(format!(
            "{}: {text:?} does not fit a register (0 … 65535{})",
            reg.name,
            unit_suffix(reg.unit)
        )));
    }
    Ok(raw as u16)
}

pub(crate) fn unit_suffix(unit: &str) -> String {
    if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    }
}

/// The allowed values of a setting, as text (`6000 … 63000 mA (6 A … 63 A)`).
pub fn range_text(reg: &Register) -> Option<String> {
    let setting = reg.setting?;
    let mut s = match setting.range {
        Range::Span(lo, hi) => {
            let mut s = format!("{lo} … {hi}{}", unit_suffix(setting.unit));
            match setting.unit {
                "mA" => {
                    let _ = write!(s, " ({} A … {} A)", amps(lo), amps(hi));
                }
                "W" => {
                    let _ = write!(s, " ({} kW … {} kW)", kilowatts(lo), kilowatts(hi));
                }
                _ => {}
            }
            s
        }
        Range::ZeroOr(lo, hi) => {
            let mut s = format!("0 or {lo} … {hi}{}", unit_suffix(setting.unit));
            match setting.unit {
                "mA" => {
                    let _ = write!(s, " (0 or {} A … {} A)", amps(lo), amps(hi));
                }
                "W" => {
                    let _ = write!(s, " (0 or {} kW … {} kW)", kilowatts(lo), kilowatts(hi));
                }
                _ => {}
            }
            s
        }
        Range::OneOf(list) => {
            let vals: Vec<String> = list.iter().map(u16::to_string).collect();
            format!("one of {}{}", vals.join(", "), unit_suffix(setting.unit))
        }
    };
    if let Some(rule) = setting.rule {
        let _ = write!(s, "; {rule}");
    }
    Some(s)
}

fn amps(ma: u16) -> String {
    let a = f64::from(ma) / 1000.0;
    format!("{a}")
}

fn kilowatts(w: u16) -> String {
    let kw = f64::from(w) / 1000.0;
    format!("{kw}")
}

/// `capacity_charger_power` (1126) reads this when the capacity budget puts no bound
/// on the chargers (capacity mode off, or nothing known yet).
pub const NO_BOUND: u16 = u16::MAX;

/// The name of a capacity mode (register 1072, `capacity_mode`).
pub fn capacity_mode_name(code: u16) -> &'static str {
    use p1lb_core::config::{CapacityMode, SettingKind};
    const MODES: [(CapacityMode, &str); 3] = [
        (CapacityMode::Off, "off"),
        (CapacityMode::Target, "target"),
        (CapacityMode::FollowPeak, "follow_peak"),
    ];
    MODES
        .iter()
        .find(|(m, _)| CapacityMode::encode(*m) == Some(code))
        .map_or("unknown", |(_, n)| n)
}

/// The names of the bits of register 1003.
pub const FLAG_NAMES: [&str; 8] = [
    "meter_stale",
    "crc_failures",
    "charger_silent",
    "charger_exception",
    "defaults_in_use",
    "unsaved_changes",
    "watchdog_reset",
    "readback_implausible",
];

/// The names of the bits of a charger's flags (`charger{k}_flags`, 1135 + 6(k−1)), in
/// bit order: as [`ChargerFlags`].
pub const CHARGER_FLAGS: [(ChargerFlags, &str); 5] = [
    (ChargerFlags::NOT_ANSWERING, "silent"),
    (ChargerFlags::EXCEPTION, "exception"),
    (ChargerFlags::PAUSED, "paused"),
    (ChargerFlags::WIRING_KNOWN, "wiring_known"),
    (ChargerFlags::CAR_CONNECTED, "car_connected"),
];

/// The named bits set in a charger's flags (unknown bits as `bitN`).
pub fn charger_flag_names(flags: ChargerFlags) -> Vec<String> {
    (0..16)
        .filter(|b| flags.bits() & (1 << b) != 0)
        .map(|b| {
            CHARGER_FLAGS
                .iter()
                .find(|(f, _)| f.bits() == 1 << b)
                .map_or_else(|| format!("bit{b}"), |(_, n)| (*n).to_owned())
        })
        .collect()
}

/// True for a `charger{k}_flags` register (the last of each charger's status block).
pub fn is_charger_flags(reg: &Register) -> bool {
    (0..MAX_CHARGERS).any(|k| {
        charger_status_address(k).map(|a| a + CHARGER_STATUS_WORDS - 1) == Some(reg.address)
    })
}

/// The named bits set in a 1003 value (unknown bits as `bitN`).
pub fn flag_names(bits: u16) -> Vec<String> {
    (0..16)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| {
            FLAG_NAMES
                .get(b)
                .map_or_else(|| format!("bit{b}"), |s| (*s).to_owned())
        })
        .collect()
}

/// The name of a balancer state code (register 1002).
pub fn state_name(code: u16) -> &'static str {
    const STATES: [(State, &str); 5] = [
        (State::Normal, "normal"),
        (State::Lower, "lower"),
        (State::Upper, "upper"),
        (State::Alarm, "alarm"),
        (State::Fallback, "fallback"),
    ];
    STATES
        .iter()
        .find(|(s, _)| s.code() == code)
        .map_or("unknown", |(_, n)| n)
}

/// A register's value from the words read at 1000 onwards: signed, 32-bit combined.
pub fn raw_value(reg: &Register, words: &[u16]) -> i64 {
    let i = usize::from(reg.address - FIRST);
    let w = |k: usize| words.get(i + k).copied().unwrap_or(0);
    match reg.ty {
        Type::U16 => i64::from(w(0)),
        Type::I16 => i64::from(w(0) as i16),
        Type::U32 => i64::from(u32::from(w(0)) << 16 | u32::from(w(1))),
    }
}

/// A value with its unit, scaled where the unit says so (`12.34 A`, `230.1 V`).
pub fn format_value(reg: &Register, raw: i64) -> String {
    match reg.unit {
        "0.01 A" => format!("{:.2} A", raw as f64 / 100.0),
        "0.1 V" => format!("{:.1} V", raw as f64 / 10.0),
        "bits" => {
            let names = if is_charger_flags(reg) {
                charger_flag_names(ChargerFlags::from_bits_retain(raw as u16))
            } else {
                flag_names(raw as u16)
            };
            if names.is_empty() {
                format!("0x{raw:04x}")
            } else {
                format!("0x{raw:04x} ({})", names.join(", "))
            }
        }
        "" if reg.address == p1lb_core::registers::address::BALANCER_STATE => {
            format!("{raw} ({})", state_name(raw as u16))
        }
        "" if reg.address == p1lb_core::config::address::CAPACITY_MODE => {
            format!("{raw} ({})", capacity_mode_name(raw as u16))
        }
        "W" if reg.address == p1lb_core::registers::address::CAPACITY_CHARGER_POWER
            && raw == i64::from(NO_BOUND) =>
        {
            format!("{raw} (no bound)")
        }
        "" => raw.to_string(),
        unit => format!("{raw} {unit}"),
    }
}
