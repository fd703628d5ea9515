//! The device configuration: every saved setting of the register map, with the
//! validation shared by the register map (write 1 to 1091), the daemon's TOML file and
//! the firmware's flash store.
//!
//! A setting is defined once, in the table given to the `settings!` macro below:
//! address, name, title, default, range, rule and the kind of its value
//! ([`SettingKind`]: mA, seconds, a flag, an enum, ...; the unit comes from the kind).
//! From that one table the macro generates [`SETTINGS`] (the data the README table,
//! Home Assistant, the CLI and the TOML file use), the [`address`] constants
//! (`address::CHARGER_MAX_CURRENT`), and [`Config`]'s typed getters and setters
//! (`charger_max_ma() -> u32`, `set_rs485_parity(Parity::Even)`). Code names a
//! setting, never its number: `tests/settings_by_name.rs` fails on `get(1036)`.
//! Never panics: any `u16` may be offered for any setting and is answered with
//! [`ConfigError`] when it does not fit.

/// How a setting's value is checked on its own (before the cross-checks of
/// [`Config::validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// `min ..= max`.
    Span(u16, u16),
    /// One of these values.
    OneOf(&'static [u16]),
    /// 0 (off: the setting's documented default behaviour) or `min ..= max`.
    ZeroOr(u16, u16),
}

impl Range {
    /// True when `v` is allowed.
    pub fn contains(&self, v: u16) -> bool {
        match self {
            Range::Span(lo, hi) => (*lo..=*hi).contains(&v),
            Range::OneOf(list) => list.contains(&v),
            Range::ZeroOr(lo, hi) => v == 0 || (*lo..=*hi).contains(&v),
        }
    }
}

/// One saved setting: a holding register of the public map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The register address (zero-based PDU address).
    pub address: u16,
    /// The snake_case name used in the TOML file, the CLI and Home Assistant.
    pub name: &'static str,
    /// What it means, for people.
    pub title: &'static str,
    /// Unit as shown (`mA`, `s`, or empty).
    pub unit: &'static str,
    /// The value after "restore defaults".
    pub default: u16,
    /// The values accepted on their own.
    pub range: Range,
    /// The rule shown in the documentation where it is not just the range (the
    /// cross-checks of [`Config::validate`]).
    pub rule: Option<&'static str>,
}

use crate::modbus::{LineConfig, Parity};
use crate::p1::GridSource;
use Range::{OneOf, Span, ZeroOr};

/// How a setting's register value reads as a Rust value: the "type and meaning" column
/// of the settings table. The generated accessors of [`Config`] convert with it, so that
/// code names a setting and gets a typed value instead of a register word by address.
///
/// Every kind names its unit (the table's unit column comes from here, so a setting's
/// unit and its accessor's type cannot disagree) and the suffix the getter's name must
/// end with (checked at compile time: `upper_ma` is mA, `upper_wait_s` seconds), which
/// keeps milliamps and seconds apart at every call site without a newtype refactor.
pub trait SettingKind {
    /// The accessors' value type.
    type Value;
    /// The unit shown in the register table (`mA`, `s`, or empty).
    const UNIT: &'static str;
    /// What the getter's name must end with (empty: anything).
    const SUFFIX: &'static str;
    /// The value of a register word. Total: a stored word is always in its setting's
    /// range (every write goes through [`Config::set`]), but no word panics.
    fn decode(raw: u16) -> Self::Value;
    /// The register word of a value, or `None` when no word stands for it (the
    /// setter then answers [`ConfigError::OutOfRange`]).
    fn encode(value: Self::Value) -> Option<u16>;
}

/// A current in milliamps (`u32`, getter names end in `_ma`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ma;

impl SettingKind for Ma {
    type Value = u32;
    const UNIT: &'static str = "mA";
    const SUFFIX: &'static str = "_ma";
    fn decode(raw: u16) -> u32 {
        u32::from(raw)
    }
    fn encode(value: u32) -> Option<u16> {
        u16::try_from(value).ok()
    }
}

/// A duration in whole seconds (`u32`, getter names end in `_s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secs;

impl SettingKind for Secs {
    type Value = u32;
    const UNIT: &'static str = "s";
    const SUFFIX: &'static str = "_s";
    fn decode(raw: u16) -> u32 {
        u32::from(raw)
    }
    fn encode(value: u32) -> Option<u16> {
        u16::try_from(value).ok()
    }
}

/// A Modbus unit address (`u8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit;

impl SettingKind for Unit {
    type Value = u8;
    const UNIT: &'static str = "";
    const SUFFIX: &'static str = "";
    fn decode(raw: u16) -> u8 {
        u8::try_from(raw).unwrap_or(u8::MAX)
    }
    fn encode(value: u8) -> Option<u16> {
        Some(u16::from(value))
    }
}

/// A Modbus unit address where 0 means "off" (`Option<u8>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitOrOff;

impl SettingKind for UnitOrOff {
    type Value = Option<u8>;
    const UNIT: &'static str = "";
    const SUFFIX: &'static str = "";
    fn decode(raw: u16) -> Option<u8> {
        match raw {
            0 => None,
            a => Some(u8::try_from(a).unwrap_or(u8::MAX)),
        }
    }
    fn encode(value: Option<u8>) -> Option<u16> {
        match value {
            None => Some(0),
            Some(0) => None,
            Some(a) => Some(u16::from(a)),
        }
    }
}

/// A 0/1 switch (`bool`, 1 is `true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag;

impl SettingKind for Flag {
    type Value = bool;
    const UNIT: &'static str = "";
    const SUFFIX: &'static str = "";
    fn decode(raw: u16) -> bool {
        raw == 1
    }
    fn encode(value: bool) -> Option<u16> {
        Some(u16::from(value))
    }
}

/// The number of phases, 1 or 3 (`u8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseCount;

impl SettingKind for PhaseCount {
    type Value = u8;
    const UNIT: &'static str = "";
    const SUFFIX: &'static str = "";
    fn decode(raw: u16) -> u8 {
        if raw == 1 { 1 } else { 3 }
    }
    fn encode(value: u8) -> Option<u16> {
        matches!(value, 1 | 3).then_some(u16::from(value))
    }
}

/// A small count or rank (`u8`): the number of chargers, a priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count;

impl SettingKind for Count {
    type Value = u8;
    const UNIT: &'static str = "";
    const SUFFIX: &'static str = "";
    fn decode(raw: u16) -> u8 {
        u8::try_from(raw).unwrap_or(u8::MAX)
    }
    fn encode(value: u8) -> Option<u16> {
        Some(u16::from(value))
    }
}

/// A baud rate in bits per second, stored as bits per second / 100 (`u32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baud;

impl SettingKind for Baud {
    type Value = u32;
    const UNIT: &'static str = "";
    const SUFFIX: &'static str = "_baud";
    fn decode(raw: u16) -> u32 {
        u32::from(raw) * 100
    }
    fn encode(value: u32) -> Option<u16> {
        if value % 100 != 0 {
            return None;
        }
        u16::try_from(value / 100).ok()
    }
}

impl SettingKind for Wiring {
    type Value = Wiring;
    const UNIT: &'static str = "";
    const SUFFIX: &'static str = "";
    fn decode(raw: u16) -> Wiring {
        match raw {
            1 => Wiring::ThreePhase,
            2 => Wiring::Single(0),
            3 => Wiring::Single(1),
            4 => Wiring::Single(2),
            5 => Wiring::Rotated(1),
            6 => Wiring::Rotated(2),
            _ => Wiring::Learn,
        }
    }
    fn encode(value: Wiring) -> Option<u16> {
        match value {
            Wiring::Learn => Some(0),
            Wiring::ThreePhase => Some(1),
            Wiring::Single(p @ 0..=2) => Some(2 + u16::from(p)),
            Wiring::Rotated(1) => Some(5),
            Wiring::Rotated(2) => Some(6),
            _ => None,
        }
    }
}

impl SettingKind for ControlMode {
    type Value = ControlMode;
    const UNIT: &'static str = "";
    const SUFFIX: &'static str = "";
    fn decode(raw: u16) -> ControlMode {
        if raw == 1 {
            ControlMode::Headroom
        } else {
            ControlMode::Stepped
        }
    }
    fn encode(value: ControlMode) -> Option<u16> {
        Some(match value {
            ControlMode::Stepped => 0,
            ControlMode::Headroom => 1,
        })
    }
}

impl SettingKind for GridSource {
    type Value = GridSource;
    const UNIT: &'static str = "";
    const SUFFIX: &'static str = "";
    fn decode(raw: u16) -> GridSource {
        if raw == 1 {
            GridSource::CurrentObjects
        } else {
            GridSource::Auto
        }
    }
    fn encode(value: GridSource) -> Option<u16> {
        Some(match value {
            GridSource::Auto => 0,
            GridSource::CurrentObjects => 1,
        })
    }
}

impl SettingKind for Parity {
    type Value = Parity;
    const UNIT: &'static str = "";
    const SUFFIX: &'static str = "";
    fn decode(raw: u16) -> Parity {
        match raw {
            1 => Parity::Odd,
            2 => Parity::Even,
            _ => Parity::None,
        }
    }
    fn encode(value: Parity) -> Option<u16> {
        Some(match value {
            Parity::None => 0,
            Parity::Odd => 1,
            Parity::Even => 2,
        })
    }
}

/// A power in watts (`u32`, getter names end in `_w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watts;

impl SettingKind for Watts {
    type Value = u32;
    const UNIT: &'static str = "W";
    const SUFFIX: &'static str = "_w";
    fn decode(raw: u16) -> u32 {
        u32::from(raw)
    }
    fn encode(value: u32) -> Option<u16> {
        u16::try_from(value).ok()
    }
}

impl SettingKind for CapacityMode {
    type Value = CapacityMode;
    const UNIT: &'static str = "";
    const SUFFIX: &'static str = "";
    fn decode(raw: u16) -> CapacityMode {
        match raw {
            1 => CapacityMode::Target,
            2 => CapacityMode::FollowPeak,
            _ => CapacityMode::Off,
        }
    }
    fn encode(value: CapacityMode) -> Option<u16> {
        Some(match value {
            CapacityMode::Off => 0,
            CapacityMode::Target => 1,
            CapacityMode::FollowPeak => 2,
        })
    }
}

impl SettingKind for ChargeMode {
    type Value = ChargeMode;
    const UNIT: &'static str = "";
    const SUFFIX: &'static str = "";
    fn decode(raw: u16) -> ChargeMode {
        match raw {
            1 => ChargeMode::MinSolar,
            2 => ChargeMode::SolarOnly,
            3 => ChargeMode::Paused,
            _ => ChargeMode::Fast,
        }
    }
    fn encode(value: ChargeMode) -> Option<u16> {
        Some(match value {
            ChargeMode::Fast => 0,
            ChargeMode::MinSolar => 1,
            ChargeMode::SolarOnly => 2,
            ChargeMode::Paused => 3,
        })
    }
}

/// The position of the setting at `address` in [`SETTINGS`]; a compile error when
/// there is none (used in constants only).
const fn index_of(address: u16) -> usize {
    let mut i = 0;
    while i < SETTINGS.len() {
        if SETTINGS[i].address == address {
            return i;
        }
        i += 1;
    }
    panic!("not a setting's address")
}

/// `a` equals `b` ignoring ASCII case (const, for the table's compile-time checks).
pub(crate) const fn eq_ignore_case(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if !a[i].eq_ignore_ascii_case(&b[i]) {
            return false;
        }
        i += 1;
    }
    true
}

/// `s` ends with `suffix` (const).
const fn ends_with(s: &str, suffix: &str) -> bool {
    let (s, x) = (s.as_bytes(), suffix.as_bytes());
    if x.len() > s.len() {
        return false;
    }
    let mut i = 0;
    while i < x.len() {
        if s[s.len() - x.len() + i] != x[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// `setter` is `set_` followed by `getter` (const).
const fn is_setter_of(setter: &str, getter: &str) -> bool {
    let (s, g) = (setter.as_bytes(), getter.as_bytes());
    if s.len() != g.len() + 4 || !ends_with(setter, getter) {
        return false;
    }
    s[0] == b's' && s[1] == b'e' && s[2] == b't' && s[3] == b'_'
}

/// The settings table, written once: generates [`SETTINGS`], the [`address`]
/// constants, the typed getters and setters of [`Config`], and compile-time checks
/// that tie them together (addresses strictly ascending; each constant is its
/// setting's name in capitals; each setter is `set_` + its getter; each getter's name
/// ends with its kind's unit suffix).
///
/// One row: `address, CONSTANT, "name", "title", Kind: value type, getter / setter,
/// default, range, rule;`. The unit comes from the kind ([`SettingKind::UNIT`]).
macro_rules! settings {
    ($(
        $address:literal, $konst:ident, $name:literal, $title:literal,
        $kind:ident : $value:ty, $getter:ident / $setter:ident,
        $default:literal, $range:expr, $rule:expr;
    )*) => {
        /// Every saved setting, in address order. The registers.md contract, as data.
        pub const SETTINGS: &[Setting] = &[$(
            Setting {
                address: $address,
                name: $name,
                title: $title,
                unit: <$kind as SettingKind>::UNIT,
                default: $default,
                range: $range,
                rule: $rule,
            },
        )*];

        /// The register address of every setting, by name: code names a setting with
        /// these (or with [`Config`]'s typed accessors), never with a number, so a typo
        /// does not compile.
        pub mod address {
            $(
                #[doc = concat!("Register ", stringify!($address), ", `", $name, "`: ", $title, ".")]
                pub const $konst: u16 = $address;
            )*
        }

        $(
            const _: () = {
                assert!(
                    eq_ignore_case(stringify!($konst), $name),
                    concat!("the constant of ", $name, " is not its name in capitals")
                );
                assert!(
                    is_setter_of(stringify!($setter), stringify!($getter)),
                    concat!(stringify!($setter), " is not set_", stringify!($getter))
                );
                assert!(
                    ends_with(stringify!($getter), <$kind as SettingKind>::SUFFIX),
                    concat!(stringify!($getter), " does not end with its unit's suffix")
                );
            };
        )*

        /// The typed accessors, one getter and one setter per setting.
        impl Config {
            $(
                #[doc = concat!(
                    "Setting ", stringify!($address), " (`", $name, "`): ", $title,
                    ". As [`", stringify!($kind), "`]."
                )]
                pub fn $getter(&self) -> $value {
                    const I: usize = index_of($address);
                    <$kind as SettingKind>::decode(self.values[I])
                }

                #[doc = concat!(
                    "Sets setting ", stringify!($address), " (`", $name, "`) after checking ",
                    "it against its own range, as [`Config::set`]."
                )]
                pub fn $setter(&mut self, value: $value) -> Result<(), ConfigError> {
                    const I: usize = index_of($address);
                    self.set_at(I, <$kind as SettingKind>::encode(value))
                }
            )*
        }

        /// Every row's identifiers as written, for the tests of the table.
        #[cfg(test)]
        const ACCESSORS: &[(u16, &str, &str, &str, &str)] = &[$(
            (address::$konst, stringify!($konst), $name, stringify!($getter), stringify!($setter)),
        )*];

        /// A copy of `from` made through the typed accessors only: every getter read,
        /// every setter written (the round-trip test of the generated accessors).
        #[cfg(test)]
        fn through_accessors(from: &Config) -> Result<Config, ConfigError> {
            let mut to = Config::default();
            $( to.$setter(from.$getter())?; )*
            Ok(to)
        }
    };
}

settings! {
    1010, CHARGER_MAX_CURRENT, "charger_max_current", "Maximum current of the charger",
        Ma: u32, charger_max_ma / set_charger_max_ma, 16000, Span(6000, 63000), None;
    1011, PHASES, "phases", "Number of phases of the connection",
        PhaseCount: u8, phases / set_phases, 3, OneOf(&[1, 3]), None;
    1012, ALARM_CURRENT, "alarm_current", "Alarm limit current",
        Ma: u32, alarm_ma / set_alarm_ma, 24000, Span(0, 65535), Some("> upper_current");
    1013, ALARM_WAIT, "alarm_wait", "Alarm limit wait time",
        Secs: u32, alarm_wait_s / set_alarm_wait_s, 1, Span(1, 255), None;
    1014, ALARM_STEP, "alarm_step", "Alarm limit change amount (decrease)",
        Ma: u32, alarm_step_ma / set_alarm_step_ma, 12500, Span(1, 65535), None;
    1015, UPPER_CURRENT, "upper_current", "Upper limit current",
        Ma: u32, upper_ma / set_upper_ma, 22000, Span(0, 65535), Some("> lower_current");
    1016, UPPER_WAIT, "upper_wait", "Upper limit wait time",
        Secs: u32, upper_wait_s / set_upper_wait_s, 5, Span(1, 255), None;
    1017, UPPER_STEP, "upper_step", "Upper limit change amount (decrease)",
        Ma: u32, upper_step_ma / set_upper_step_ma, 1000, Span(1, 65535), None;
    1018, LOWER_CURRENT, "lower_current", "Lower limit current",
        Ma: u32, lower_ma / set_lower_ma, 19000, Span(0, 65535), Some("< upper_current");
    1019, LOWER_WAIT, "lower_wait", "Lower limit wait time",
        Secs: u32, lower_wait_s / set_lower_wait_s, 1, Span(1, 255), None;
    1020, LOWER_STEP, "lower_step", "Lower limit change amount (increase)",
        Ma: u32, lower_step_ma / set_lower_step_ma, 1000, Span(1, 65535), None;
    1021, FALLBACK_CURRENT, "fallback_current", "Fallback limit",
        Ma: u32, fallback_ma / set_fallback_ma, 0, Span(0, 63000), Some("≤ charger_max_current");
    1022, FALLBACK_TIME, "fallback_time", "Fallback limit time (no valid meter data for this long)",
        Secs: u32, fallback_s / set_fallback_s, 30, Span(1, 255), None;
    1023, CONTROL_MODE, "control_mode", "Control mode: 0 stepped, 1 headroom",
        ControlMode: ControlMode, mode / set_mode, 0, OneOf(&[0, 1]), None;
    1024, GRID_SOURCE, "grid_source", "Grid current source: 0 auto, 1 current objects only",
        GridSource: GridSource, grid_source / set_grid_source, 0, OneOf(&[0, 1]), None;
    1025, CHARGER_MIN_CURRENT, "charger_min_current", "Charger minimum current; below it the charger is sent 0",
        Ma: u32, charger_min_ma / set_charger_min_ma, 6000, Span(0, 63000), Some("≤ charger_max_current");
    1026, SITE_MAX_CURRENT, "site_max_current", "Site maximum per phase shared by the chargers; 0 = upper_current only",
        Ma: u32, site_max_ma / set_site_max_ma, 0, ZeroOr(6000, 63000), None;
    1030, CHARGER_ADDRESS, "charger_address", "Charger Modbus address on RS485 (master role)",
        Unit: u8, charger_address / set_charger_address, 1, Span(1, 247), None;
    1031, RS485_BAUD, "rs485_baud", "RS485 baud rate / 100",
        Baud: u32, rs485_baud / set_rs485_baud, 96, OneOf(&[12, 24, 48, 96, 192, 384, 576, 1152]), None;
    1032, RS485_PARITY, "rs485_parity", "RS485 parity: 0 none, 1 odd, 2 even",
        Parity: Parity, rs485_parity / set_rs485_parity, 0, Span(0, 2), None;
    1033, SETPOINT_REFRESH, "setpoint_refresh", "Charger setpoint refresh period",
        Secs: u32, setpoint_refresh_s / set_setpoint_refresh_s, 10, Span(1, 255), None;
    1034, P1_POLARITY, "p1_polarity", "P1 input polarity: 0 inverted by the board, 1 invert in the pad",
        Flag: bool, p1_invert / set_p1_invert, 0, OneOf(&[0, 1]), None;
    1035, P1_SERIAL, "p1_serial", "P1 serial settings: 0 115200 8N1, 1 9600 7E1",
        Flag: bool, p1_dsmr3 / set_p1_dsmr3, 0, OneOf(&[0, 1]), None;
    1036, METER_EMULATION_ADDRESS, "meter_emulation_address", "Unit address of the emulated ABB EV3 meter; 0 off",
        UnitOrOff: Option<u8>, meter_emulation_unit / set_meter_emulation_unit, 0, Span(0, 247), Some("≠ server_address");
    1037, CHARGER_COUNT, "charger_count", "Number of chargers on the RS485 bus, at consecutive addresses from charger_address",
        Count: u8, charger_count / set_charger_count, 1, Span(1, 8), Some("charger_address + charger_count − 1 ≤ 247");
    1040, CHARGER1_WIRING, "charger1_wiring", "Wiring of charger 1: 0 learn, 1 three-phase, 2/3/4 single-phase on L1/L2/L3, 5/6 rotated",
        Wiring: Wiring, charger1_wiring / set_charger1_wiring, 0, Span(0, 6), None;
    1041, CHARGER1_MAX_CURRENT, "charger1_max_current", "Maximum current of charger 1; 0 = charger_max_current",
        Ma: u32, charger1_max_ma / set_charger1_max_ma, 0, ZeroOr(6000, 63000), Some("≥ charger_min_current when set");
    1042, CHARGER1_PRIORITY, "charger1_priority", "Priority of charger 1 when the current does not reach every car's minimum",
        Count: u8, charger1_priority / set_charger1_priority, 1, Span(0, 7), None;
    1043, CHARGER2_WIRING, "charger2_wiring", "Wiring of charger 2: 0 learn, 1 three-phase, 2/3/4 single-phase on L1/L2/L3, 5/6 rotated",
        Wiring: Wiring, charger2_wiring / set_charger2_wiring, 0, Span(0, 6), None;
    1044, CHARGER2_MAX_CURRENT, "charger2_max_current", "Maximum current of charger 2; 0 = charger_max_current",
        Ma: u32, charger2_max_ma / set_charger2_max_ma, 0, ZeroOr(6000, 63000), Some("≥ charger_min_current when set");
    1045, CHARGER2_PRIORITY, "charger2_priority", "Priority of charger 2 when the current does not reach every car's minimum",
        Count: u8, charger2_priority / set_charger2_priority, 1, Span(0, 7), None;
    1046, CHARGER3_WIRING, "charger3_wiring", "Wiring of charger 3: 0 learn, 1 three-phase, 2/3/4 single-phase on L1/L2/L3, 5/6 rotated",
        Wiring: Wiring, charger3_wiring / set_charger3_wiring, 0, Span(0, 6), None;
    1047, CHARGER3_MAX_CURRENT, "charger3_max_current", "Maximum current of charger 3; 0 = charger_max_current",
        Ma: u32, charger3_max_ma / set_charger3_max_ma, 0, ZeroOr(6000, 63000), Some("≥ charger_min_current when set");
    1048, CHARGER3_PRIORITY, "charger3_priority", "Priority of charger 3 when the current does not reach every car's minimum",
        Count: u8, charger3_priority / set_charger3_priority, 1, Span(0, 7), None;
    1049, CHARGER4_WIRING, "charger4_wiring", "Wiring of charger 4: 0 learn, 1 three-phase, 2/3/4 single-phase on L1/L2/L3, 5/6 rotated",
        Wiring: Wiring, charger4_wiring / set_charger4_wiring, 0, Span(0, 6), None;
    1050, CHARGER4_MAX_CURRENT, "charger4_max_current", "Maximum current of charger 4; 0 = charger_max_current",
        Ma: u32, charger4_max_ma / set_charger4_max_ma, 0, ZeroOr(6000, 63000), Some("≥ charger_min_current when set");
    1051, CHARGER4_PRIORITY, "charger4_priority", "Priority of charger 4 when the current does not reach every car's minimum",
        Count: u8, charger4_priority / set_charger4_priority, 1, Span(0, 7), None;
    1052, CHARGER5_WIRING, "charger5_wiring", "Wiring of charger 5: 0 learn, 1 three-phase, 2/3/4 single-phase on L1/L2/L3, 5/6 rotated",
        Wiring: Wiring, charger5_wiring / set_charger5_wiring, 0, Span(0, 6), None;
    1053, CHARGER5_MAX_CURRENT, "charger5_max_current", "Maximum current of charger 5; 0 = charger_max_current",
        Ma: u32, charger5_max_ma / set_charger5_max_ma, 0, ZeroOr(6000, 63000), Some("≥ charger_min_current when set");
    1054, CHARGER5_PRIORITY, "charger5_priority", "Priority of charger 5 when the current does not reach every car's minimum",
        Count: u8, charger5_priority / set_charger5_priority, 1, Span(0, 7), None;
    1055, CHARGER6_WIRING, "charger6_wiring", "Wiring of charger 6: 0 learn, 1 three-phase, 2/3/4 single-phase on L1/L2/L3, 5/6 rotated",
        Wiring: Wiring, charger6_wiring / set_charger6_wiring, 0, Span(0, 6), None;
    1056, CHARGER6_MAX_CURRENT, "charger6_max_current", "Maximum current of charger 6; 0 = charger_max_current",
        Ma: u32, charger6_max_ma / set_charger6_max_ma, 0, ZeroOr(6000, 63000), Some("≥ charger_min_current when set");
    1057, CHARGER6_PRIORITY, "charger6_priority", "Priority of charger 6 when the current does not reach every car's minimum",
        Count: u8, charger6_priority / set_charger6_priority, 1, Span(0, 7), None;
    1058, CHARGER7_WIRING, "charger7_wiring", "Wiring of charger 7: 0 learn, 1 three-phase, 2/3/4 single-phase on L1/L2/L3, 5/6 rotated",
        Wiring: Wiring, charger7_wiring / set_charger7_wiring, 0, Span(0, 6), None;
    1059, CHARGER7_MAX_CURRENT, "charger7_max_current", "Maximum current of charger 7; 0 = charger_max_current",
        Ma: u32, charger7_max_ma / set_charger7_max_ma, 0, ZeroOr(6000, 63000), Some("≥ charger_min_current when set");
    1060, CHARGER7_PRIORITY, "charger7_priority", "Priority of charger 7 when the current does not reach every car's minimum",
        Count: u8, charger7_priority / set_charger7_priority, 1, Span(0, 7), None;
    1061, CHARGER8_WIRING, "charger8_wiring", "Wiring of charger 8: 0 learn, 1 three-phase, 2/3/4 single-phase on L1/L2/L3, 5/6 rotated",
        Wiring: Wiring, charger8_wiring / set_charger8_wiring, 0, Span(0, 6), None;
    1062, CHARGER8_MAX_CURRENT, "charger8_max_current", "Maximum current of charger 8; 0 = charger_max_current",
        Ma: u32, charger8_max_ma / set_charger8_max_ma, 0, ZeroOr(6000, 63000), Some("≥ charger_min_current when set");
    1063, CHARGER8_PRIORITY, "charger8_priority", "Priority of charger 8 when the current does not reach every car's minimum",
        Count: u8, charger8_priority / set_charger8_priority, 1, Span(0, 7), None;
    1072, CAPACITY_MODE, "capacity_mode", "Capacity tariff: 0 off, 1 keep every quarter-hour under capacity_target, 2 follow the month's peak",
        CapacityMode: CapacityMode, capacity_mode / set_capacity_mode, 0, Span(0, 2), None;
    1073, CAPACITY_TARGET, "capacity_target", "Capacity target: the quarter-hour average import power to keep under",
        Watts: u32, capacity_target_w / set_capacity_target_w, 2500, Span(1000, 60000), None;
    1074, CAPACITY_MARGIN, "capacity_margin", "Safety margin kept under the capacity target",
        Watts: u32, capacity_margin_w / set_capacity_margin_w, 100, Span(0, 2000), None;
    1080, CHARGE_MODE, "charge_mode", "Charge mode: 0 fast, 1 minimum + solar, 2 solar only, 3 paused (applies at once, without save)",
        ChargeMode: ChargeMode, charge_mode / set_charge_mode, 0, Span(0, 3), None;
    1081, SOLAR_START_SURPLUS, "solar_start_surplus", "Surplus that starts a solar-only charge; 0 = the car's minimum power",
        Watts: u32, solar_start_surplus_w / set_solar_start_surplus_w, 0, Span(0, 60000), None;
    1082, SOLAR_START_DELAY, "solar_start_delay", "Start delay: the surplus must hold this long",
        Secs: u32, solar_start_delay_s / set_solar_start_delay_s, 60, Span(0, 3600), None;
    1083, SOLAR_STOP_DELAY, "solar_stop_delay", "Stop delay: import above solar_max_import must hold this long before a solar charge pauses",
        Secs: u32, solar_stop_delay_s / set_solar_stop_delay_s, 180, Span(0, 3600), None;
    1084, SOLAR_MAX_IMPORT, "solar_max_import", "Grid import allowed while charging on surplus",
        Watts: u32, solar_max_import_w / set_solar_max_import_w, 0, Span(0, 60000), None;
    1090, SERVER_ADDRESS, "server_address", "Modbus server address of the device",
        Unit: u8, server_address / set_server_address, 10, Span(1, 247), None;
}

// The table is in address order, each address once (the register map relies on it).
const _: () = {
    let mut i = 1;
    while i < SETTINGS.len() {
        assert!(
            SETTINGS[i - 1].address < SETTINGS[i].address,
            "SETTINGS is not in strictly ascending address order"
        );
        i += 1;
    }
};

/// The setting at `address`, if it is one.
pub fn setting(address: u16) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.address == address)
}

/// The setting called `name`, if any.
pub fn setting_named(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// Why a configuration was refused. Names the setting at fault, so that a register
/// write, a TOML file or a flash record can say exactly what is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// Not a setting's address.
    UnknownAddress(u16),
    /// The value is outside the setting's own range.
    OutOfRange {
        /// The setting.
        setting: &'static Setting,
        /// The value offered.
        value: u16,
    },
    /// The value contradicts another setting (for example lower ≥ upper).
    Inconsistent {
        /// The setting at fault.
        setting: &'static Setting,
        /// The rule it breaks.
        rule: &'static str,
    },
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::UnknownAddress(a) => write!(f, "{a} is not a setting"),
            ConfigError::OutOfRange { setting, value } => {
                write!(
                    f,
                    "{} ({}) = {value} is out of range: ",
                    setting.name, setting.address
                )?;
                match setting.range {
                    Range::Span(lo, hi) => write!(f, "allowed {lo} … {hi}")?,
                    Range::OneOf(list) => write!(f, "allowed {list:?}")?,
                    Range::ZeroOr(lo, hi) => write!(f, "allowed 0 or {lo} … {hi}")?,
                }
                if !setting.unit.is_empty() {
                    write!(f, " {}", setting.unit)?;
                }
                Ok(())
            }
            ConfigError::Inconsistent { setting, rule } => {
                write!(f, "{} ({}) must be {rule}", setting.name, setting.address)
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

/// Capacity tariff mode (register 1072).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityMode {
    /// No capacity constraint.
    Off,
    /// Keep every quarter-hour's average import at or under the target (1073).
    Target,
    /// Keep it at or under the larger of the target and the month's peak so far.
    FollowPeak,
}

/// Charge mode (register 1080): what the chargers may draw beyond the fuse and
/// capacity limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeMode {
    /// Only the fuse and capacity limits (round 1's behaviour).
    Fast,
    /// The charger minimum while a car is connected, more from surplus.
    MinSolar,
    /// Charge from surplus only (start and stop delays 1082/1083).
    SolarOnly,
    /// Every charger is sent 0.
    Paused,
}

/// Control law (register 1023).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlMode {
    /// The original stepped rules.
    Stepped,
    /// Steps sized from the measured headroom.
    Headroom,
}

/// How a charger's phases are connected to the grid's (settings 1040 + 3(k−1)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wiring {
    /// Learn which phases the car uses from the charger's own per-phase currents;
    /// until learned, every phase of the connection (charger Lk on grid Lk).
    Learn,
    /// Three-phase, charger L1/L2/L3 on grid L1/L2/L3.
    ThreePhase,
    /// Single-phase on grid phase `0`, `1` or `2` (L1, L2, L3): the charger's L1.
    Single(u8),
    /// Three-phase rotated by 1 (charger L1/L2/L3 on grid L2/L3/L1) or 2 (on grid
    /// L3/L1/L2).
    Rotated(u8),
}

impl Wiring {
    /// The grid phase (0–2) charger phase `charger_phase` (0–2) is connected to, if it
    /// is connected at all (a single-phase charger's L2/L3 are not).
    pub fn grid_phase(self, charger_phase: usize) -> Option<usize> {
        match self {
            Wiring::Learn | Wiring::ThreePhase => (charger_phase < 3).then_some(charger_phase),
            Wiring::Single(p) => (charger_phase == 0).then_some(usize::from(p % 3)),
            Wiring::Rotated(r) => {
                (charger_phase < 3).then_some((charger_phase + usize::from(r)) % 3)
            }
        }
    }
}

/// The address of field `field` (0 wiring, 1 maximum, 2 priority) of charger `k`
/// (0-based): 1040 + 3k + field (an address that is no setting for `k` ≥ 8).
fn per_charger_address(k: usize, field: u16) -> u16 {
    let k = u16::try_from(k.min(usize::from(u16::MAX / 4))).unwrap_or(0);
    address::CHARGER1_WIRING
        .saturating_add(k.saturating_mul(3))
        .saturating_add(field)
}

/// The most chargers one bus carries (setting 1037).
pub const MAX_CHARGERS: usize = 8;

/// A complete configuration: one value per entry of [`SETTINGS`], in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Config {
    values: [u16; SETTINGS.len()],
}

impl Default for Config {
    fn default() -> Self {
        let mut values = [0; SETTINGS.len()];
        let mut i = 0;
        while i < SETTINGS.len() {
            values[i] = SETTINGS[i].default;
            i += 1;
        }
        Config { values }
    }
}

impl Config {
    /// The register word of the setting at `address` (`None`: not a setting). For the
    /// register map and the generic consumers (TOML, CLI, flash record) that go
    /// through [`SETTINGS`]; code that wants one setting uses its typed getter, or
    /// names it with an [`address`] constant.
    pub fn get(&self, address: u16) -> Option<u16> {
        let i = SETTINGS.iter().position(|s| s.address == address)?;
        Some(self.values[i])
    }

    /// Sets one value after checking it against its own range (not the
    /// cross-checks: a staged set may pass through inconsistent states).
    pub fn set(&mut self, address: u16, value: u16) -> Result<(), ConfigError> {
        let i = SETTINGS
            .iter()
            .position(|s| s.address == address)
            .ok_or(ConfigError::UnknownAddress(address))?;
        self.set_at(i, Some(value))
    }

    /// Sets the value of `SETTINGS[i]` if it is in range; `None` is a typed value that
    /// no register word stands for (reported as the word 65535, out of range).
    fn set_at(&mut self, i: usize, value: Option<u16>) -> Result<(), ConfigError> {
        let setting = &SETTINGS[i];
        match value {
            Some(value) if setting.range.contains(value) => {
                self.values[i] = value;
                Ok(())
            }
            value => Err(ConfigError::OutOfRange {
                setting,
                value: value.unwrap_or(u16::MAX),
            }),
        }
    }

    /// Every `(setting, value)` in address order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static Setting, u16)> + '_ {
        SETTINGS.iter().zip(self.values.iter().copied())
    }

    /// Checks the whole set: every value in its range, and the rules between them
    /// (lower < upper < alarm; fallback and charger minimum ≤ charger maximum; the
    /// emulated meter's address differs from the device's).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (setting, value) in self.iter() {
            if !setting.range.contains(value) {
                return Err(ConfigError::OutOfRange { setting, value });
            }
        }
        let fail = |address: u16, rule: &'static str| {
            let setting = setting(address).unwrap_or(&SETTINGS[0]);
            Err(ConfigError::Inconsistent { setting, rule })
        };
        if self.lower_ma() >= self.upper_ma() {
            return fail(address::LOWER_CURRENT, "< upper_current (1015)");
        }
        if self.upper_ma() >= self.alarm_ma() {
            return fail(address::ALARM_CURRENT, "> upper_current (1015)");
        }
        if self.fallback_ma() > self.charger_max_ma() {
            return fail(address::FALLBACK_CURRENT, "≤ charger_max_current (1010)");
        }
        if self.charger_min_ma() > self.charger_max_ma() {
            return fail(address::CHARGER_MIN_CURRENT, "≤ charger_max_current (1010)");
        }
        if self.meter_emulation_unit() == Some(self.server_address()) {
            return fail(address::METER_EMULATION_ADDRESS, "≠ server_address (1090)");
        }
        if u16::from(self.charger_address()) + u16::from(self.charger_count()) > 248 {
            return fail(
                address::CHARGER_COUNT,
                "such that charger_address (1030) + charger_count − 1 ≤ 247",
            );
        }
        for k in 0..MAX_CHARGERS {
            let raw = self.per_charger(k, 1).unwrap_or(0);
            if raw != 0 && u32::from(raw) < self.charger_min_ma() {
                return fail(
                    per_charger_address(k, 1),
                    "0 or ≥ charger_min_current (1025)",
                );
            }
        }
        Ok(())
    }

    /// The wiring of charger `k` (0-based, `k < MAX_CHARGERS`; charger 1 is `k = 0`),
    /// setting 1040 + 3k. [`Wiring::Learn`] for any other `k`.
    pub fn wiring_of(&self, k: usize) -> Wiring {
        self.per_charger(k, 0).map_or(Wiring::Learn, Wiring::decode)
    }

    /// The maximum current of charger `k` (0-based), setting 1041 + 3k, with 0 read
    /// as the charger maximum 1010, mA.
    pub fn max_of_ma(&self, k: usize) -> u32 {
        match self.per_charger(k, 1) {
            Some(raw) if raw != 0 => u32::from(raw),
            _ => self.charger_max_ma(),
        }
    }

    /// The priority of charger `k` (0-based), setting 1042 + 3k (higher first).
    pub fn priority_of(&self, k: usize) -> u8 {
        self.per_charger(k, 2).map_or(1, Count::decode)
    }

    /// Sets the wiring of charger `k` (0-based), as [`Config::set`].
    pub fn set_wiring_of(&mut self, k: usize, wiring: Wiring) -> Result<(), ConfigError> {
        let value = Wiring::encode(wiring).unwrap_or(u16::MAX);
        self.set(per_charger_address(k, 0), value)
    }

    /// Sets the maximum of charger `k` (0-based; 0 = 1010), mA, as [`Config::set`].
    pub fn set_max_of_ma(&mut self, k: usize, ma: u32) -> Result<(), ConfigError> {
        self.set(
            per_charger_address(k, 1),
            u16::try_from(ma).unwrap_or(u16::MAX),
        )
    }

    /// Sets the priority of charger `k` (0-based), as [`Config::set`].
    pub fn set_priority_of(&mut self, k: usize, priority: u8) -> Result<(), ConfigError> {
        self.set(per_charger_address(k, 2), u16::from(priority))
    }

    /// The Modbus address of charger `k` (0-based): 1030 + k.
    pub fn address_of(&self, k: usize) -> u8 {
        let k = u8::try_from(k).unwrap_or(u8::MAX);
        self.charger_address().saturating_add(k)
    }

    /// The number of chargers (1037), 1 … [`MAX_CHARGERS`].
    pub fn chargers(&self) -> usize {
        usize::from(self.charger_count()).clamp(1, MAX_CHARGERS)
    }

    fn per_charger(&self, k: usize, field: u16) -> Option<u16> {
        if k >= MAX_CHARGERS {
            return None;
        }
        self.get(per_charger_address(k, field))
    }

    /// Settings 1034 and 1035: the P1 serial line.
    pub fn p1_line(&self) -> P1Line {
        P1Line {
            dsmr3: self.p1_dsmr3(),
            invert: self.p1_invert(),
        }
    }
}

/// The P1 serial line (settings 1034 and 1035).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct P1Line {
    /// 9600 7E1 (DSMR 2.2/3); otherwise 115200 8N1 (DSMR 4/5, e-MUCS, Smarty).
    pub dsmr3: bool,
    /// Invert the input in the microcontroller's pad (meter wired straight to the pin).
    pub invert: bool,
}

impl P1Line {
    /// Bits per second.
    pub fn baud(&self) -> u32 {
        if self.dsmr3 { 9600 } else { 115_200 }
    }

    /// Whether telegrams without a CRC are refused: every dialect at 115200 has one.
    pub fn crc_required(&self) -> bool {
        !self.dsmr3
    }
}

/// A configuration reads and writes as a map of setting names to values, in address
/// order (`charger_max_current = 16000`). Reading starts from the defaults, so a file
/// may name only what it changes; an unknown name, a value out of its range or an
/// inconsistent set is an error that names the setting and the rule.
#[cfg(feature = "std")]
mod serde_impl {
    use super::{Config, ConfigError, SETTINGS, setting_named};
    use serde::de::{self, MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::fmt;
    use std::format;
    use std::string::{String, ToString};

    impl Serialize for Config {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(SETTINGS.len()))?;
            for (setting, value) in self.iter() {
                map.serialize_entry(setting.name, &value)?;
            }
            map.end()
        }
    }

    struct ConfigVisitor;

    const NAMES: &[&str] = &{
        let mut names = [""; SETTINGS.len()];
        let mut i = 0;
        while i < SETTINGS.len() {
            names[i] = SETTINGS[i].name;
            i += 1;
        }
        names
    };

    impl<'de> Visitor<'de> for ConfigVisitor {
        type Value = Config;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of p1lb setting names to values")
        }

        fn visit_map<M: MapAccess<'de>>(self, mut access: M) -> Result<Config, M::Error> {
            let mut config = Config::default();
            while let Some(key) = access.next_key::<String>()? {
                let setting =
                    setting_named(&key).ok_or_else(|| de::Error::unknown_field(&key, NAMES))?;
                let value: i64 = access.next_value()?;
                let value = u16::try_from(value).map_err(|_| {
                    // Report the value as written, with the setting's own range.
                    let e = ConfigError::OutOfRange { setting, value: 0 }.to_string();
                    let range = e.split_once(": ").map_or("", |(_, r)| r);
                    de::Error::custom(format!(
                        "{} ({}) = {value} is out of range: {range}",
                        setting.name, setting.address
                    ))
                })?;
                config
                    .set(setting.address, value)
                    .map_err(|e| de::Error::custom(e.to_string()))?;
            }
            config
                .validate()
                .map_err(|e| de::Error::custom(e.to_string()))?;
            Ok(config)
        }
    }

    impl<'de> Deserialize<'de> for Config {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Config, D::Error> {
            deserializer.deserialize_map(ConfigVisitor)
        }
    }
}

/// The RS485 line from the settings (the codec's [`LineConfig`] knows nothing of them).
impl LineConfig {
    /// The RS485 line of the saved settings 1031 (baud / 100) and 1032 (0 none, 1
    /// odd, 2 even parity): 8 data bits, 1 stop bit.
    pub fn rs485(config: &Config) -> Self {
        LineConfig::new(config.rs485_baud(), config.rs485_parity(), 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value a setting accepts, or a spread of them for a wide span.
    fn some_values(range: Range, out: &mut [u16; 8]) -> usize {
        match range {
            Range::OneOf(list) => {
                out[..list.len()].copy_from_slice(list);
                list.len()
            }
            Range::Span(lo, hi) => {
                let mid = lo + (hi - lo) / 2;
                let picks = [
                    lo,
                    lo.saturating_add(1).min(hi),
                    mid,
                    hi.saturating_sub(1).max(lo),
                    hi,
                ];
                out[..picks.len()].copy_from_slice(&picks);
                picks.len()
            }
            Range::ZeroOr(lo, hi) => {
                let picks = [0, lo, lo + (hi - lo) / 2, hi];
                out[..picks.len()].copy_from_slice(&picks);
                picks.len()
            }
        }
    }

    #[test]
    fn every_setting_has_exactly_one_constant_and_one_accessor_pair() {
        assert_eq!(ACCESSORS.len(), SETTINGS.len());
        for (setting, &(address, konst, name, getter, setter)) in SETTINGS.iter().zip(ACCESSORS) {
            assert_eq!(address, setting.address, "{konst}");
            assert_eq!(name, setting.name);
            assert!(konst.eq_ignore_ascii_case(name), "{konst} vs {name}");
            assert_eq!(setter.strip_prefix("set_"), Some(getter));
            assert_eq!(
                ACCESSORS.iter().filter(|a| a.3 == getter).count(),
                1,
                "{getter}"
            );
            assert_eq!(
                ACCESSORS.iter().filter(|a| a.0 == address).count(),
                1,
                "{address}"
            );
        }
    }

    #[test]
    fn the_constants_are_the_table_addresses() {
        assert_eq!(address::CHARGER_MAX_CURRENT, 1010);
        assert_eq!(address::CONTROL_MODE, 1023);
        assert_eq!(address::METER_EMULATION_ADDRESS, 1036);
        assert_eq!(address::SERVER_ADDRESS, 1090);
        for &(address, _, name, _, _) in ACCESSORS {
            assert_eq!(setting_named(name).map(|s| s.address), Some(address));
        }
    }

    #[test]
    fn units_come_from_the_accessor_kind() {
        for &(_, _, name, getter, _) in ACCESSORS {
            let unit = setting_named(name).map_or("?", |s| s.unit);
            match unit {
                "mA" => assert!(getter.ends_with("_ma"), "{getter}"),
                "s" => assert!(getter.ends_with("_s"), "{getter}"),
                "W" => assert!(getter.ends_with("_w"), "{getter}"),
                "" => assert!(
                    !getter.ends_with("_ma") && !getter.ends_with("_s") && !getter.ends_with("_w"),
                    "{getter}"
                ),
                other => panic!("unexpected unit {other}"),
            }
        }
    }

    #[test]
    fn defaults_round_trip_through_the_typed_accessors() {
        let d = Config::default();
        assert_eq!(through_accessors(&d), Ok(d));
        assert_eq!(d.charger_max_ma(), 16_000);
        assert_eq!(d.phases(), 3);
        assert_eq!(d.alarm_wait_s(), 1);
        assert_eq!(d.mode(), ControlMode::Stepped);
        assert_eq!(d.grid_source(), GridSource::Auto);
        assert_eq!(d.charger_address(), 1);
        assert_eq!(d.rs485_baud(), 9600);
        assert_eq!(d.rs485_parity(), Parity::None);
        assert!(!d.p1_invert() && !d.p1_dsmr3());
        assert_eq!(d.meter_emulation_unit(), None);
        assert_eq!(d.server_address(), 10);
        for (setting, value) in d.iter() {
            assert_eq!(value, setting.default, "{}", setting.name);
        }
    }

    #[test]
    fn every_accepted_word_round_trips_through_the_typed_accessors() {
        for (i, setting) in SETTINGS.iter().enumerate() {
            let mut values = [0; 8];
            let n = some_values(setting.range, &mut values);
            for &v in &values[..n] {
                let mut c = Config::default();
                assert_eq!(c.set(setting.address, v), Ok(()), "{} = {v}", setting.name);
                let copy = through_accessors(&c);
                assert_eq!(copy, Ok(c), "{} = {v}", setting.name);
                assert_eq!(copy.map(|c| c.values[i]), Ok(v));
            }
        }
    }

    #[test]
    fn typed_setters_check_the_range_and_refuse_what_no_word_means() {
        let mut c = Config::default();
        let out_of_range = |c: Result<(), ConfigError>| match c {
            Err(ConfigError::OutOfRange { setting, value }) => (setting.address, value),
            other => panic!("{other:?}"),
        };
        assert_eq!(out_of_range(c.set_charger_max_ma(70_000)), (1010, u16::MAX));
        assert_eq!(out_of_range(c.set_charger_max_ma(5_000)), (1010, 5_000));
        assert_eq!(out_of_range(c.set_phases(2)), (1011, u16::MAX));
        assert_eq!(out_of_range(c.set_rs485_baud(9_650)), (1031, u16::MAX));
        assert_eq!(out_of_range(c.set_rs485_baud(4_000)), (1031, 40));
        assert_eq!(
            out_of_range(c.set_meter_emulation_unit(Some(0))),
            (1036, u16::MAX)
        );
        assert_eq!(out_of_range(c.set_server_address(0)), (1090, 0));
        assert_eq!(c, Config::default(), "a refused value changes nothing");
        c.set_mode(ControlMode::Headroom).unwrap();
        c.set_rs485_parity(Parity::Even).unwrap();
        c.set_meter_emulation_unit(Some(5)).unwrap();
        assert_eq!(c.get(address::CONTROL_MODE), Some(1));
        assert_eq!(c.get(address::RS485_PARITY), Some(2));
        assert_eq!(c.get(address::METER_EMULATION_ADDRESS), Some(5));
    }
}
