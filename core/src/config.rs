//! The device configuration: every saved setting of the register map, with the
//! validation shared by the register map (write 1 to 1091), the daemon's TOML file and
//! the firmware's flash store.
//!
//! A setting is defined once, in [`SETTINGS`]: address, name, unit, range, default.
//! [`Config`] stores the values by address; typed accessors give them meaning.
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
}

impl Range {
    /// True when `v` is allowed.
    pub fn contains(&self, v: u16) -> bool {
        match self {
            Range::Span(lo, hi) => (*lo..=*hi).contains(&v),
            Range::OneOf(list) => list.contains(&v),
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

const fn s(
    address: u16,
    name: &'static str,
    title: &'static str,
    unit: &'static str,
    default: u16,
    range: Range,
    rule: Option<&'static str>,
) -> Setting {
    Setting {
        address,
        name,
        title,
        unit,
        default,
        range,
        rule,
    }
}

use crate::modbus::{LineConfig, Parity};
use Range::{OneOf, Span};

/// Every saved setting, in address order. The registers.md contract, as data.
#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    s(1010, "charger_max_current", "Maximum current of the charger", "mA", 16000, Span(6000, 63000), None),
    s(1011, "phases", "Number of phases of the connection", "", 3, OneOf(&[1, 3]), None),
    s(1012, "alarm_current", "Alarm limit current", "mA", 24000, Span(0, 65535), Some("> upper_current")),
    s(1013, "alarm_wait", "Alarm limit wait time", "s", 1, Span(1, 255), None),
    s(1014, "alarm_step", "Alarm limit change amount (decrease)", "mA", 12500, Span(1, 65535), None),
    s(1015, "upper_current", "Upper limit current", "mA", 22000, Span(0, 65535), Some("> lower_current")),
    s(1016, "upper_wait", "Upper limit wait time", "s", 5, Span(1, 255), None),
    s(1017, "upper_step", "Upper limit change amount (decrease)", "mA", 1000, Span(1, 65535), None),
    s(1018, "lower_current", "Lower limit current", "mA", 19000, Span(0, 65535), Some("< upper_current")),
    s(1019, "lower_wait", "Lower limit wait time", "s", 1, Span(1, 255), None),
    s(1020, "lower_step", "Lower limit change amount (increase)", "mA", 1000, Span(1, 65535), None),
    s(1021, "fallback_current", "Fallback limit", "mA", 0, Span(0, 63000), Some("≤ charger_max_current")),
    s(1022, "fallback_time", "Fallback limit time (no valid meter data for this long)", "s", 30, Span(1, 255), None),
    s(1023, "control_mode", "Control mode: 0 stepped, 1 headroom", "", 0, OneOf(&[0, 1]), None),
    s(1024, "grid_source", "Grid current source: 0 auto, 1 current objects only", "", 0, OneOf(&[0, 1]), None),
    s(1025, "charger_min_current", "Charger minimum current; below it the charger is sent 0", "mA", 6000, Span(0, 63000), Some("≤ charger_max_current")),
    s(1030, "charger_address", "Charger Modbus address on RS485 (master role)", "", 1, Span(1, 247), None),
    s(1031, "rs485_baud", "RS485 baud rate / 100", "", 96, OneOf(&[12, 24, 48, 96, 192, 384, 576, 1152]), None),
    s(1032, "rs485_parity", "RS485 parity: 0 none, 1 odd, 2 even", "", 0, Span(0, 2), None),
    s(1033, "setpoint_refresh", "Charger setpoint refresh period", "s", 10, Span(1, 255), None),
    s(1034, "p1_polarity", "P1 input polarity: 0 inverted by the board, 1 invert in the pad", "", 0, OneOf(&[0, 1]), None),
    s(1035, "p1_serial", "P1 serial settings: 0 115200 8N1, 1 9600 7E1", "", 0, OneOf(&[0, 1]), None),
    s(1036, "meter_emulation_address", "Unit address of the emulated ABB EV3 meter; 0 off", "", 0, Span(0, 247), Some("≠ server_address")),
    s(1090, "server_address", "Modbus server address of the device", "", 10, Span(1, 247), None),
];

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

/// Control law (register 1023).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlMode {
    /// The original stepped rules.
    Stepped,
    /// Steps sized from the measured headroom.
    Headroom,
}

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
    /// The value of the setting at `address`.
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
        let setting = &SETTINGS[i];
        if !setting.range.contains(value) {
            return Err(ConfigError::OutOfRange { setting, value });
        }
        self.values[i] = value;
        Ok(())
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
            return fail(1018, "< upper_current (1015)");
        }
        if self.upper_ma() >= self.alarm_ma() {
            return fail(1012, "> upper_current (1015)");
        }
        if self.fallback_ma() > self.charger_max_ma() {
            return fail(1021, "≤ charger_max_current (1010)");
        }
        if self.charger_min_ma() > self.charger_max_ma() {
            return fail(1025, "≤ charger_max_current (1010)");
        }
        let emu = self.raw(1036);
        if emu != 0 && emu == self.raw(1090) {
            return fail(1036, "≠ server_address (1090)");
        }
        Ok(())
    }

    fn raw(&self, address: u16) -> u16 {
        self.get(address).unwrap_or(0)
    }

    /// 1010, mA.
    pub fn charger_max_ma(&self) -> u32 {
        u32::from(self.raw(1010))
    }
    /// 1011: 1 or 3.
    pub fn phases(&self) -> u8 {
        if self.raw(1011) == 1 { 1 } else { 3 }
    }
    /// 1012, mA.
    pub fn alarm_ma(&self) -> u32 {
        u32::from(self.raw(1012))
    }
    /// 1013, s.
    pub fn alarm_wait_s(&self) -> u32 {
        u32::from(self.raw(1013))
    }
    /// 1014, mA.
    pub fn alarm_step_ma(&self) -> u32 {
        u32::from(self.raw(1014))
    }
    /// 1015, mA.
    pub fn upper_ma(&self) -> u32 {
        u32::from(self.raw(1015))
    }
    /// 1016, s.
    pub fn upper_wait_s(&self) -> u32 {
        u32::from(self.raw(1016))
    }
    /// 1017, mA.
    pub fn upper_step_ma(&self) -> u32 {
        u32::from(self.raw(1017))
    }
    /// 1018, mA.
    pub fn lower_ma(&self) -> u32 {
        u32::from(self.raw(1018))
    }
    /// 1019, s.
    pub fn lower_wait_s(&self) -> u32 {
        u32::from(self.raw(1019))
    }
    /// 1020, mA.
    pub fn lower_step_ma(&self) -> u32 {
        u32::from(self.raw(1020))
    }
    /// 1021, mA.
    pub fn fallback_ma(&self) -> u32 {
        u32::from(self.raw(1021))
    }
    /// 1022, s.
    pub fn fallback_s(&self) -> u32 {
        u32::from(self.raw(1022))
    }
    /// 1023.
    pub fn mode(&self) -> ControlMode {
        if self.raw(1023) == 1 {
            ControlMode::Headroom
        } else {
            ControlMode::Stepped
        }
    }
    /// 1024.
    pub fn grid_source(&self) -> crate::p1::GridSource {
        if self.raw(1024) == 1 {
            crate::p1::GridSource::CurrentObjects
        } else {
            crate::p1::GridSource::Auto
        }
    }
    /// 1025, mA.
    pub fn charger_min_ma(&self) -> u32 {
        u32::from(self.raw(1025))
    }
    /// 1033, s.
    pub fn setpoint_refresh_s(&self) -> u32 {
        u32::from(self.raw(1033))
    }
    /// 1090.
    pub fn server_address(&self) -> u8 {
        u8::try_from(self.raw(1090)).unwrap_or(10)
    }
    /// 1034 and 1035: the P1 serial line.
    pub fn p1_line(&self) -> P1Line {
        P1Line {
            dsmr3: self.raw(1035) == 1,
            invert: self.raw(1034) == 1,
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
        let baud = u32::from(config.get(1031).unwrap_or(96)) * 100;
        let parity = match config.get(1032) {
            Some(1) => Parity::Odd,
            Some(2) => Parity::Even,
            _ => Parity::None,
        };
        LineConfig::new(baud, parity, 1)
    }
}
