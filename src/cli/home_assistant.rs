//! The Home Assistant package `integrations/home-assistant/p1lb.yaml`, generated from
//! the register map ([`REGISTERS`], settings from [`SETTINGS`]):
//!
//! - `modbus:` one TCP hub to the daemon's Modbus TCP server, with a sensor per readable
//!   register (mA → A with scale 0.001, 0.01 A, 0.1 V, W and s as they are, `int16` for
//!   1100–1102, `uint32` for the two-register values, high word first; the read-only
//!   measurements with `state_class: measurement`); `capacity_charger_power` (1126) is
//!   unavailable while it reads 65535 (no bound: capacity mode off), not 65.5 kW;
//!   `solar_surplus` (1127) signed, in W (the register counts 10 W: scale 10);
//! - `template:` a `number` per writable register with a range (a `select` for those
//!   with a list of values, and one with the names for the charge mode, 1080: `fast`,
//!   `min_solar`, `solar_only`, `paused`), showing the sensor and writing with
//!   `modbus.write_register`; a `button` each for save (1091) and restore defaults
//!   (1092); a text `sensor` with the name of each named status value (1128:
//!   `solar_state_name`). Setting writes are staged in the device until "save" is
//!   pressed, except the charge mode, which the device applies and saves at once.
//!
//! The modbus integration has no `select` platform (2024.3 has binary_sensor, climate,
//! cover, fan, light, sensor and switch), so the selects are template selects over the
//! register's sensor, as the other enumerations already were.
//!
//! Written for Home Assistant 2024.3 and later, as `tests/home_assistant_real.rs` runs
//! it (2024.3.3): actions as `service:` (`action:` is 2024.8's name; later releases
//! still take `service:`), select options as one template, no unit on the numbers
//! (2024.3's template numbers refuse `unit_of_measurement`; the sensors carry it), and
//! numbers and selects unavailable while their sensor has no value (else each one logs
//! an error until the sensor's first poll).
//!
//! `p1lb home-assistant` prints it; `tests/home_assistant.rs` checks the committed file
//! (`P1LB_BLESS=1` rewrites it).
//!
//! [`SETTINGS`]: p1lb_core::config::SETTINGS

use std::fmt::Write;

use p1lb_core::config::{Range, address::CHARGE_MODE};
use p1lb_core::registers::{Access, REGISTERS, RESTORE_DEFAULTS, Register, SAVE, address};

use crate::cli::units::{CHARGE_MODES, SOLAR_STATES, shown};

/// The committed file, relative to the repository root.
pub const PATH: &str = "integrations/home-assistant/p1lb.yaml";

/// The hub name used in the file.
pub const HUB: &str = "p1lb";

/// The package for the daemon's default address (127.0.0.1:1502, unit 10).
pub fn yaml() -> String {
    yaml_for("127.0.0.1", 1502, 10)
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn entity(reg: &Register) -> String {
    format!("sensor.{HUB}_{}", reg.name)
}

/// The package for a daemon at `host:port` answering at `unit`.
pub fn yaml_for(host: &str, port: u16, unit: u8) -> String {
    let mut y = String::new();
    let _ = write_yaml(&mut y, host, port, unit);
    y
}

fn write_yaml(y: &mut String, host: &str, port: u16, unit: u8) -> std::fmt::Result {
    writeln!(
        y,
        "# Home Assistant package for p1lb (generated from the register map by\n\
         # `p1lb home-assistant`; do not edit: `P1LB_BLESS=1 cargo test --test home_assistant`\n\
         # regenerates it).\n\
         #\n\
         # Use: copy to /config/packages/p1lb.yaml and in configuration.yaml\n\
         #   homeassistant:\n\
         #     packages: !include_dir_named packages\n\
         # Set host/port to the daemon's [modbus_tcp] listen address (bind it wider than\n\
         # 127.0.0.1 when Home Assistant runs on another machine) and slave to its\n\
         # server_address (1090). Settings written here are staged in the device: press\n\
         # \"p1lb save\" to validate, persist and apply them; the charge mode (select\n\
         # \"p1lb charge_mode\") is applied and saved at once. For Home Assistant 2024.3\n\
         # or later (the project's tests run it in Home Assistant 2024.3.3)."
    )?;
    writeln!(y, "\nmodbus:")?;
    writeln!(y, "  - name: {HUB}")?;
    writeln!(y, "    type: tcp")?;
    writeln!(y, "    host: {host}")?;
    writeln!(y, "    port: {port}")?;
    writeln!(y, "    sensors:")?;
    for reg in REGISTERS.iter().filter(|r| r.access != Access::Write) {
        let s = shown(reg);
        writeln!(y, "      - name: {}", quote(&format!("{HUB} {}", reg.name)))?;
        writeln!(y, "        unique_id: {HUB}_{}", reg.name)?;
        writeln!(y, "        slave: {unit}")?;
        writeln!(y, "        address: {}", reg.address)?;
        writeln!(y, "        input_type: holding")?;
        writeln!(y, "        data_type: {}", reg.ty.as_str())?;
        if let Some(u) = s.unit {
            writeln!(y, "        unit_of_measurement: {u}")?;
        }
        if let Some(scale) = s.scale {
            writeln!(y, "        scale: {scale}")?;
            writeln!(y, "        precision: {}", s.precision)?;
        }
        if let Some(dc) = s.device_class {
            writeln!(y, "        device_class: {dc}")?;
        }
        if reg.setting.is_none() && reg.access == Access::Read && s.device_class.is_some() {
            writeln!(y, "        state_class: measurement")?;
        }
        if let Some(none) = no_value(reg) {
            writeln!(y, "        nan_value: {none}")?;
        }
        writeln!(
            y,
            "        scan_interval: {}",
            if reg.setting.is_some() { 30 } else { 5 }
        )?;
    }

    writeln!(y, "\ntemplate:")?;
    writeln!(y, "  - number:")?;
    for reg in REGISTERS
        .iter()
        .filter(|r| r.access == Access::ReadWrite && !is_select(r))
    {
        let s = shown(reg);
        let scale = s.scale.unwrap_or(1.0);
        let div = (1.0 / scale).round();
        let (lo, hi) = match reg.setting.map(|s| s.range) {
            Some(Range::Span(lo, hi)) => (lo, hi),
            Some(Range::ZeroOr(_, hi)) => (0, hi),
            _ => (0, u16::MAX),
        };
        writeln!(y, "      - name: {}", quote(&format!("{HUB} {}", reg.name)))?;
        writeln!(y, "        unique_id: {HUB}_{}_set", reg.name)?;
        writeln!(y, "        state: \"{{{{ states('{}') }}}}\"", entity(reg))?;
        writeln!(y, "        availability: {}", availability(reg))?;
        writeln!(y, "        min: {}", f64::from(lo) / div)?;
        writeln!(y, "        max: {}", f64::from(hi) / div)?;
        writeln!(y, "        step: {scale}")?;
        writeln!(y, "        set_value:")?;
        write_register(y, unit, reg.address, &raw_template(scale))?;
    }
    writeln!(y, "  - select:")?;
    for reg in REGISTERS.iter().filter(|r| is_select(r)) {
        writeln!(y, "      - name: {}", quote(&format!("{HUB} {}", reg.name)))?;
        writeln!(y, "        unique_id: {HUB}_{}_set", reg.name)?;
        if let Some(names) = named(reg) {
            writeln!(y, "        state: {}", quote(&name_template(reg, names)))?;
            writeln!(y, "        availability: {}", availability(reg))?;
            let options: Vec<String> = names.iter().map(|(_, n)| format!("'{n}'")).collect();
            writeln!(y, "        options: \"{{{{ [{}] }}}}\"", options.join(", "))?;
            writeln!(y, "        select_option:")?;
            let codes: Vec<String> = names.iter().map(|(c, n)| format!("'{n}': {c}")).collect();
            write_register(
                y,
                unit,
                reg.address,
                &format!("{{{{ {{{}}}[option] }}}}", codes.join(", ")),
            )?;
            if reg.address == CHARGE_MODE {
                // It applies at once: read it back now, not at the next poll (30 s), so
                // the select does not show the old mode meanwhile.
                writeln!(y, "          - service: homeassistant.update_entity")?;
                writeln!(y, "            target:")?;
                writeln!(y, "              entity_id: {}", entity(reg))?;
            }
            continue;
        }
        let Some(Range::OneOf(list)) = reg.setting.map(|s| s.range) else {
            continue;
        };
        writeln!(
            y,
            "        state: \"{{{{ states('{}') | int(0) | string }}}}\"",
            entity(reg)
        )?;
        writeln!(y, "        availability: {}", availability(reg))?;
        let options: Vec<String> = list.iter().map(|v| format!("'{v}'")).collect();
        writeln!(y, "        options: \"{{{{ [{}] }}}}\"", options.join(", "))?;
        writeln!(y, "        select_option:")?;
        write_register(y, unit, reg.address, "{{ option | int }}")?;
    }
    writeln!(y, "  - button:")?;
    for (address, name) in [(SAVE, "save"), (RESTORE_DEFAULTS, "restore_defaults")] {
        writeln!(y, "      - name: {}", quote(&format!("{HUB} {name}")))?;
        writeln!(y, "        unique_id: {HUB}_{name}")?;
        writeln!(y, "        press:")?;
        write_register(y, unit, address, "1")?;
    }
    writeln!(y, "  - sensor:")?;
    for reg in REGISTERS
        .iter()
        .filter(|r| r.access == Access::Read && named(r).is_some())
    {
        let Some(names) = named(reg) else { continue };
        writeln!(
            y,
            "      - name: {}",
            quote(&format!("{HUB} {}_name", reg.name))
        )?;
        writeln!(y, "        unique_id: {HUB}_{}_name", reg.name)?;
        writeln!(y, "        state: {}", quote(&name_template(reg, names)))?;
        writeln!(y, "        availability: {}", availability(reg))?;
    }
    Ok(())
}

/// The names of a register's values, for those that have them: the charge mode (1080,
/// a select of names) and the solar state (1128, a text sensor beside its number).
pub fn named(reg: &Register) -> Option<&'static [(u16, &'static str)]> {
    match reg.address {
        CHARGE_MODE => Some(&CHARGE_MODES),
        address::SOLAR_STATE => Some(&SOLAR_STATES),
        _ => None,
    }
}

/// The template showing the name of the value its register's sensor reads (`unknown`
/// for a value without a name).
fn name_template(reg: &Register, names: &[(u16, &str)]) -> String {
    let map: Vec<String> = names.iter().map(|(c, n)| format!("{c}: '{n}'")).collect();
    format!(
        "{{{{ {{{}}}.get(states('{}') | int(-1), 'unknown') }}}}",
        map.join(", "),
        entity(reg)
    )
}

/// The raw value that means "none" for a register: its sensor is unavailable then
/// (the modbus integration's `nan_value`) rather than showing the number.
pub fn no_value(reg: &Register) -> Option<u16> {
    // 1126: no bound on the chargers (capacity mode off, or nothing known yet).
    (reg.address == address::CAPACITY_CHARGER_POWER).then_some(u16::MAX)
}

/// A setting with a list of allowed values, or with names for its values, is a
/// `select`.
pub fn is_select(reg: &Register) -> bool {
    reg.access == Access::ReadWrite
        && (matches!(reg.setting.map(|s| s.range), Some(Range::OneOf(_))) || named(reg).is_some())
}

/// The number or select is available while its register's sensor has a value (else
/// the template would parse "unavailable" as the value).
fn availability(reg: &Register) -> String {
    format!("\"{{{{ has_value('{}') }}}}\"", entity(reg))
}

/// The template turning a number entity's value back into the raw register value.
fn raw_template(scale: f64) -> String {
    if scale == 1.0 {
        // A number entity's value is a float: round, never truncate (6.9999 → 7).
        "{{ value | round(0) | int }}".to_owned()
    } else {
        format!(
            "{{{{ (value * {}) | round(0) | int }}}}",
            (1.0 / scale).round()
        )
    }
}

fn write_register(y: &mut String, unit: u8, address: u16, value: &str) -> std::fmt::Result {
    writeln!(y, "          - service: modbus.write_register")?;
    writeln!(y, "            data:")?;
    writeln!(y, "              hub: {HUB}")?;
    writeln!(y, "              slave: {unit}")?;
    writeln!(y, "              address: {address}")?;
    writeln!(y, "              value: {}", quote(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_readable_register_has_a_sensor_and_every_setting_an_entity() {
        let y = yaml();
        for reg in REGISTERS {
            let sensor = format!("unique_id: {HUB}_{}\n        slave:", reg.name);
            assert_eq!(
                y.contains(&sensor),
                reg.access != Access::Write,
                "{}",
                reg.name
            );
            if reg.setting.is_some() {
                assert!(y.contains(&format!("unique_id: {HUB}_{}_set\n", reg.name)));
            }
        }
        assert!(y.contains("address: 1100\n        input_type: holding\n        data_type: int16"));
        assert!(
            y.contains("address: 1106\n        input_type: holding\n        data_type: uint32")
        );
        assert!(y.contains("scale: 0.001"));
        assert!(!y.contains('\t'));
    }

    fn sensor<'a>(y: &'a str, name: &str) -> &'a str {
        let start = y
            .find(&format!("unique_id: {HUB}_{name}\n"))
            .unwrap_or_else(|| panic!("{name}: no sensor"));
        let end = y[start..].find("- name:").map_or(y.len(), |i| start + i);
        &y[start..end]
    }

    /// The capacity tariff: its account as power (W) and duration (s) measurements,
    /// 1126 unavailable at 65535; its settings as numbers with the table's ranges.
    #[test]
    fn the_capacity_tariff_has_sensors_in_watts_and_numbers_for_its_settings() {
        let y = yaml();
        for (name, address, unit, class) in [
            ("quarter_average_power", 1122, "W", "power"),
            ("quarter_projected_power", 1123, "W", "power"),
            ("month_peak_power", 1124, "W", "power"),
            ("quarter_seconds_left", 1125, "s", "duration"),
            ("capacity_charger_power", 1126, "W", "power"),
        ] {
            let s = sensor(&y, name);
            for want in [
                format!("address: {address}\n"),
                "data_type: uint16\n".to_owned(),
                format!("unit_of_measurement: {unit}\n"),
                format!("device_class: {class}\n"),
                "state_class: measurement\n".to_owned(),
                "scan_interval: 5\n".to_owned(),
            ] {
                assert!(s.contains(&want), "{want}\n{s}");
            }
            assert!(!s.contains("scale:"), "{s}");
            assert_eq!(
                s.contains("nan_value: 65535\n"),
                name == "capacity_charger_power",
                "{s}"
            );
            assert!(
                !y.contains(&format!("{HUB}_{name}_set")),
                "{name}: read only"
            );
        }
        assert_eq!(y.matches("nan_value:").count(), 1);
        // The settings: sensors (no state class), and numbers that write them raw.
        for (name, address, lo, hi, unit) in [
            ("capacity_mode", 1072, 0, 2, None),
            ("capacity_target", 1073, 1000, 60000, Some("W")),
            ("capacity_margin", 1074, 0, 2000, Some("W")),
        ] {
            let s = sensor(&y, name);
            assert!(s.contains(&format!("address: {address}\n")), "{s}");
            assert!(!s.contains("state_class"), "{s}");
            assert!(s.contains("scan_interval: 30\n"), "{s}");
            match unit {
                Some(u) => assert!(
                    s.contains(&format!("unit_of_measurement: {u}\n"))
                        && s.contains("device_class: power\n"),
                    "{s}"
                ),
                None => assert!(!s.contains("unit_of_measurement"), "{s}"),
            }
            let number = sensor(&y, &format!("{name}_set"));
            for want in [
                format!("state: \"{{{{ states('sensor.{HUB}_{name}') }}}}\"\n"),
                format!("min: {lo}\n"),
                format!("max: {hi}\n"),
                "step: 1\n".to_owned(),
                format!("address: {address}\n"),
                "value: \"{{ value | round(0) | int }}\"\n".to_owned(),
            ] {
                assert!(number.contains(&want), "{want}\n{number}");
            }
        }
        let numbers = &y[y.find("  - number:").unwrap()..y.find("  - select:").unwrap()];
        for name in ["capacity_mode", "capacity_target", "capacity_margin"] {
            assert!(numbers.contains(&format!("unique_id: {HUB}_{name}_set\n")));
        }
    }

    /// The solar charge modes: the mode as a select of names that writes the code and
    /// reads it back at once, the start/stop settings as numbers with the table's
    /// ranges, the surplus as a signed power in W (10 W units), the state by name.
    #[test]
    fn the_charge_mode_is_a_select_of_names_and_the_surplus_a_power() {
        let y = yaml();
        let select = sensor(&y, "charge_mode_set");
        let selects = &y[y.find("  - select:").unwrap()..y.find("  - button:").unwrap()];
        assert!(
            selects.contains("unique_id: p1lb_charge_mode_set\n"),
            "{selects}"
        );
        for want in [
            "state: \"{{ {0: 'fast', 1: 'min_solar', 2: 'solar_only', 3: 'paused'}\
             .get(states('sensor.p1lb_charge_mode') | int(-1), 'unknown') }}\"\n",
            "availability: \"{{ has_value('sensor.p1lb_charge_mode') }}\"\n",
            "options: \"{{ ['fast', 'min_solar', 'solar_only', 'paused'] }}\"\n",
            "- service: modbus.write_register\n",
            "address: 1080\n",
            "value: \"{{ {'fast': 0, 'min_solar': 1, 'solar_only': 2, 'paused': 3}[option] }}\"\n",
            "- service: homeassistant.update_entity\n            target:\n              \
             entity_id: sensor.p1lb_charge_mode\n",
        ] {
            assert!(select.contains(want), "{want}\n{select}");
        }
        let numbers = &y[y.find("  - number:").unwrap()..y.find("  - select:").unwrap()];
        assert!(!numbers.contains("charge_mode"), "{numbers}");
        let mode = sensor(&y, "charge_mode");
        assert!(mode.contains("address: 1080\n") && mode.contains("scan_interval: 30\n"));
        assert!(!mode.contains("unit_of_measurement"), "{mode}");

        for (name, address, hi, unit, class) in [
            ("solar_start_surplus", 1081, 60000, "W", "power"),
            ("solar_start_delay", 1082, 3600, "s", "duration"),
            ("solar_stop_delay", 1083, 3600, "s", "duration"),
            ("solar_max_import", 1084, 60000, "W", "power"),
        ] {
            let s = sensor(&y, name);
            for want in [
                format!("address: {address}\n"),
                format!("unit_of_measurement: {unit}\n"),
                format!("device_class: {class}\n"),
            ] {
                assert!(s.contains(&want), "{want}\n{s}");
            }
            assert!(!s.contains("state_class"), "{s}");
            let number = sensor(&y, &format!("{name}_set"));
            for want in [
                "min: 0\n".to_owned(),
                format!("max: {hi}\n"),
                "step: 1\n".to_owned(),
                format!("address: {address}\n"),
                "value: \"{{ value | round(0) | int }}\"\n".to_owned(),
            ] {
                assert!(number.contains(&want), "{want}\n{number}");
            }
        }

        let surplus = sensor(&y, "solar_surplus");
        for want in [
            "address: 1127\n",
            "data_type: int16\n",
            "unit_of_measurement: W\n",
            "scale: 10\n",
            "precision: 0\n",
            "device_class: power\n",
            "state_class: measurement\n",
            "scan_interval: 5\n",
        ] {
            assert!(surplus.contains(want), "{want}\n{surplus}");
        }
        let state = sensor(&y, "solar_state");
        assert!(state.contains("address: 1128\n") && state.contains("data_type: uint16\n"));
        assert!(!state.contains("unit_of_measurement"), "{state}");
        let named = sensor(&y, "solar_state_name");
        assert!(
            y.find("  - sensor:").unwrap() < y.find("unique_id: p1lb_solar_state_name").unwrap()
        );
        for want in [
            "state: \"{{ {0: 'idle', 1: 'waiting_to_start', 2: 'charging_on_surplus', \
             3: 'waiting_to_stop'}.get(states('sensor.p1lb_solar_state') | int(-1), \
             'unknown') }}\"\n",
            "availability: \"{{ has_value('sensor.p1lb_solar_state') }}\"\n",
        ] {
            assert!(named.contains(want), "{want}\n{named}");
        }
        assert!(!y.contains("p1lb_solar_surplus_set") && !y.contains("p1lb_solar_state_set"));
    }

    /// The status of each charger: the limit and the currents in A (measurements), the
    /// state and the flags as plain numbers, read-only (no number entity).
    #[test]
    fn each_charger_has_its_status_sensors_in_amps() {
        let y = yaml();
        let sensor = |name: &str| -> String {
            let start = y
                .find(&format!("unique_id: {HUB}_{name}\n"))
                .unwrap_or_else(|| panic!("{name}: no sensor"));
            let end = y[start..].find("- name:").map_or(y.len(), |i| start + i);
            y[start..end].to_owned()
        };
        for k in 1..=8u16 {
            let base = 1130 + 6 * (k - 1);
            let limit = sensor(&format!("charger{k}_limit"));
            assert!(limit.contains(&format!("address: {base}\n")), "{limit}");
            for want in [
                "unit_of_measurement: A",
                "scale: 0.001",
                "device_class: current",
            ] {
                assert!(limit.contains(want), "{limit}");
            }
            for p in 1..=3 {
                let current = sensor(&format!("charger{k}_current_l{p}"));
                assert!(current.contains(&format!("address: {}\n", base + p)));
                for want in [
                    "unit_of_measurement: A",
                    "scale: 0.01",
                    "state_class: measurement",
                ] {
                    assert!(current.contains(want), "{current}");
                }
            }
            for (field, offset) in [("state", 4), ("flags", 5)] {
                let s = sensor(&format!("charger{k}_{field}"));
                assert!(s.contains(&format!("address: {}\n", base + offset)), "{s}");
                assert!(!s.contains("unit_of_measurement"), "{s}");
            }
            assert!(!y.contains(&format!("{HUB}_charger{k}_limit_set")));
        }
    }
}
