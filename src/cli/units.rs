//! Register values for people: registers by name or address, values with their units
//! (`22A`, `22000mA`, `5s`, `2min`, `3.5kW`, `3500W`), the charge mode by name
//! (`solar-only`), allowed ranges, the state, mode and flag names — shared by
//! `p1lb config`, `p1lb monitor` and the Home Assistant package.

use std::fmt::Write as _;

use p1lb_core::balancer::State;
use p1lb_core::config::{MAX_CHARGERS, Range};
use p1lb_core::registers::{
    CHARGER_STATUS_WORDS, ChargerFlags, FIRST, REGISTERS, Register, Type, charger_status_address,
    register,
};

use super::device::Failure;

use p1lb_core::config::address::CHARGE_MODE;
use p1lb_core::registers::address::{SOLAR_STATE, SOLAR_SURPLUS};

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

/// Parses `text` into the raw register value of `reg`, converting units; a register
/// whose values have names ([`value_names`]: the modes, the parity, a wiring) also takes
/// them (any case, `-` for `_`), and the charge mode (1080) its aliases
/// ([`parse_charge_mode`]).
pub fn parse_value(reg: &Register, text: &str) -> Result<u16, Failure> {
    let t = text.trim();
    if reg.address == CHARGE_MODE && t.contains(|c: char| c.is_ascii_alphabetic()) {
        return parse_charge_mode(t).ok_or_else(|| {
            let names: Vec<&str> = CHARGE_MODES.iter().map(|(_, n)| *n).collect();
            Failure::usage(format!(
                "{}: unknown charge mode {text:?}; one of {} (or 0 … 3)",
                reg.name,
                names.join(", ")
            ))
        });
    }
    if let Some(names) = value_names(reg) {
        if t.starts_with(|c: char| c.is_ascii_alphabetic()) {
            let wanted = t.replace('-', "_");
            return names
                .iter()
                .find(|(_, n)| n.eq_ignore_ascii_case(&wanted))
                .map(|(code, _)| *code)
                .ok_or_else(|| {
                    let list: Vec<String> =
                        names.iter().map(|(c, n)| format!("{n} ({c})")).collect();
                    Failure::usage(format!(
                        "{}: unknown value {text:?}; one of {}",
                        reg.name,
                        list.join(", ")
                    ))
                });
        }
    }
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
    if reg.address == CHARGE_MODE {
        let names: Vec<String> = CHARGE_MODES
            .iter()
            .map(|(code, name)| format!("{code} {name}"))
            .collect();
        let _ = write!(s, " ({})", names.join(", "));
    }
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

/// The capacity modes (register 1072, `capacity_mode`) by code.
pub const CAPACITY_MODES: [(u16, &str); 3] = [(0, "off"), (1, "target"), (2, "follow_peak")];

/// The name of a capacity mode (register 1072, `capacity_mode`).
pub fn capacity_mode_name(code: u16) -> &'static str {
    name_of(&CAPACITY_MODES, code)
}

/// The control modes (register 1023, `control_mode`) by code.
pub const CONTROL_MODES: [(u16, &str); 2] = [(0, "stepped"), (1, "headroom")];

/// The grid current sources (register 1024, `grid_source`) by code.
pub const GRID_SOURCES: [(u16, &str); 2] = [(0, "auto"), (1, "current_objects")];

/// The RS485 parities (register 1032, `rs485_parity`) by code.
pub const PARITIES: [(u16, &str); 3] = [(0, "none"), (1, "odd"), (2, "even")];

/// The wirings of a charger (`charger{k}_wiring`, 1040 + 3(k−1)) by code.
pub const WIRINGS: [(u16, &str); 7] = [
    (0, "learn"),
    (1, "three_phase"),
    (2, "single_l1"),
    (3, "single_l2"),
    (4, "single_l3"),
    (5, "rotated_1"),
    (6, "rotated_2"),
];

/// The balancer states (register 1002, `balancer_state`) by code.
pub const STATES: [(u16, &str); 5] = [
    (State::Normal as u16, "normal"),
    (State::Lower as u16, "lower"),
    (State::Upper as u16, "upper"),
    (State::Alarm as u16, "alarm"),
    (State::Fallback as u16, "fallback"),
];

fn name_of(names: &[(u16, &'static str)], code: u16) -> &'static str {
    names
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("unknown", |(_, n)| n)
}

/// The names of a register's values, for the registers that are enumerations: the
/// charge, capacity and control modes, the grid source, the RS485 parity, each
/// charger's wiring, the balancer and solar states. The one table of value names
/// (`p1lb config`, `p1lb monitor`, MQTT).
pub fn value_names(reg: &Register) -> Option<&'static [(u16, &'static str)]> {
    use p1lb_core::config::address::{CAPACITY_MODE, CONTROL_MODE, GRID_SOURCE, RS485_PARITY};
    use p1lb_core::registers::address::BALANCER_STATE;
    let names: &'static [(u16, &'static str)] = match reg.address {
        CHARGE_MODE => &CHARGE_MODES,
        CAPACITY_MODE => &CAPACITY_MODES,
        CONTROL_MODE => &CONTROL_MODES,
        GRID_SOURCE => &GRID_SOURCES,
        RS485_PARITY => &PARITIES,
        SOLAR_STATE => &SOLAR_STATES,
        BALANCER_STATE => &STATES,
        _ if is_wiring(reg) => &WIRINGS,
        _ => return None,
    };
    Some(names)
}

/// True for a `charger{k}_wiring` setting.
pub fn is_wiring(reg: &Register) -> bool {
    reg.setting.is_some()
        && reg
            .name
            .strip_prefix("charger")
            .and_then(|r| r.strip_suffix("_wiring"))
            .and_then(|k| k.parse::<usize>().ok())
            .is_some_and(|k| (1..=MAX_CHARGERS).contains(&k))
}

/// How a register's value shows as a Home Assistant entity (the Modbus package and
/// MQTT discovery): the entity's unit, the scale from the raw value (raw × scale), the
/// decimals that scale needs, and the device class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shown {
    /// The entity's unit (`A`, `V`, `W`, `s`), none for a plain number.
    pub unit: Option<&'static str>,
    /// raw × scale is the value in `unit` (none: 1).
    pub scale: Option<f64>,
    /// Decimals worth showing.
    pub precision: u8,
    /// Home Assistant's device class.
    pub device_class: Option<&'static str>,
}

/// How `reg` shows as an entity ([`Shown`]).
pub fn shown(reg: &Register) -> Shown {
    let (unit, scale, precision, device_class) = match reg.unit {
        "mA" => (Some("A"), Some(0.001), 3, Some("current")),
        "0.01 A" => (Some("A"), Some(0.01), 2, Some("current")),
        "0.1 V" => (Some("V"), Some(0.1), 1, Some("voltage")),
        "W" => (Some("W"), None, 0, Some("power")),
        "s" => (Some("s"), None, 0, Some("duration")),
        "10 W" => (Some("W"), Some(10.0), 0, Some("power")),
        _ => (None, None, 0, None),
    };
    Shown {
        unit,
        scale,
        precision,
        device_class,
    }
}

/// The charge modes (register 1080, `charge_mode`) by code, with the names `p1lb
/// config`, `p1lb monitor` and the Home Assistant package use.
pub const CHARGE_MODES: [(u16, &str); 4] = [
    (0, "fast"),
    (1, "min_solar"),
    (2, "solar_only"),
    (3, "paused"),
];

/// The name of a charge mode (register 1080, `charge_mode`).
pub fn charge_mode_name(code: u16) -> &'static str {
    name_of(&CHARGE_MODES, code)
}

/// The code of a charge mode given by name: `fast`, `min-solar` (also `min_solar`,
/// `minimum+solar`, `minimum solar`), `solar` or `solar-only`, `paused` (or `pause`);
/// any case, words joined by `-`, `_`, `+` or spaces; or its number (not checked
/// against the range: the device answers that).
pub fn parse_charge_mode(text: &str) -> Option<u16> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    let lower = t.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(['-', '_', '+', ' '])
        .filter(|w| !w.is_empty())
        .collect();
    let code = match words.as_slice() {
        ["fast"] => 0,
        ["min" | "minimum", "solar"] => 1,
        ["solar"] | ["solar", "only"] => 2,
        ["paused" | "pause"] => 3,
        _ => return None,
    };
    Some(code)
}

/// The solar states (register 1128, `solar_state`) by code.
pub const SOLAR_STATES: [(u16, &str); 4] = [
    (0, "idle"),
    (1, "waiting_to_start"),
    (2, "charging_on_surplus"),
    (3, "waiting_to_stop"),
];

/// The name of a solar state (register 1128, `solar_state`).
pub fn solar_state_name(code: u16) -> &'static str {
    name_of(&SOLAR_STATES, code)
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
    name_of(&STATES, code)
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
        // Every register whose values have names: the modes, states, parity, wirings.
        "" if value_names(reg).is_some() => {
            let name = u16::try_from(raw)
                .ok()
                .zip(value_names(reg))
                .map_or("unknown", |(code, names)| name_of(names, code));
            format!("{raw} ({name})")
        }
        "10 W" if reg.address == SOLAR_SURPLUS => format!("{} W", raw * 10),
        "W" if reg.address == p1lb_core::registers::address::CAPACITY_CHARGER_POWER
            && raw == i64::from(NO_BOUND) =>
        {
            format!("{raw} (no bound)")
        }
        "" => raw.to_string(),
        unit => format!("{raw} {unit}"),
    }
}
