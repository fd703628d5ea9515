//! The Home Assistant package (`integrations/home-assistant/p1lb.yaml`) in a real Home
//! Assistant: 2024.3.3 (the newest for Python 3.11) with the modbus integration's own
//! pymodbus, in a virtual environment that `tests/home_assistant/setup-venv` makes from
//! `tests/home_assistant/requirements.txt` (every package pinned) and reuses while the
//! list and the Python are the same: `$P1LB_HA_VENV`, default
//! `target/tmp/ha-venv-2024.3.3`.
//!
//! - Home Assistant's configuration check accepts the committed file, loading every
//!   sensor, number, select and button of the register map; and rejects a broken copy
//!   (so the check can fail).
//! - `hass` itself runs the package against `p1lb run` (the built-in simulated house):
//!   every sensor reads the daemon's value (settings at their defaults, scaled to A/V;
//!   `capacity_charger_power` unavailable while it reads 65535, no bound), and numbers,
//!   selects and buttons called through Home Assistant's REST API write the daemon's
//!   registers (read back over Modbus TCP) and its saved `p1lb.toml`, the capacity
//!   tariff's settings among them; the charge mode, a select of names, lands in 1080
//!   and in `p1lb.toml` at once, without a save (1091), while other settings written
//!   before it stay staged; the solar surplus shows as a power in W and the solar
//!   state by name.
//!
//! Without Python 3.11/3.12 or PyPI the tests skip loudly, except under CI (the
//! environment variable `CI` set), where that is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::ha::{HA_VERSION, Hass, driver, number, python, root, text, venv, wait_states};
use common::{Daemon, free_port, temp_dir};
use p1lb::cli::home_assistant;
use p1lb_core::config::SETTINGS;
use p1lb_core::registers::{Access, REGISTERS, Register, address};
use serde_json::{Value, json};
use tokio_modbus::prelude::*;

/// A Home Assistant configuration folder: `configuration.yaml` with the package folder
/// (plus `extra`), and `packages/p1lb.yaml` = `package`.
fn config_dir(name: &str, package: &str, extra: &str) -> PathBuf {
    let dir = temp_dir(name);
    std::fs::create_dir_all(dir.join("packages")).unwrap();
    std::fs::write(dir.join("packages/p1lb.yaml"), package).unwrap();
    std::fs::write(
        dir.join("configuration.yaml"),
        format!(
            "homeassistant:\n  name: p1lb test\n  time_zone: UTC\n  \
             packages: !include_dir_named packages\n{extra}"
        ),
    )
    .unwrap();
    dir
}

/// `ha_driver.py check DIR`: Home Assistant's configuration check.
fn check(venv: &Path, dir: &Path) -> Output {
    common::output_within(
        Command::new(python(venv))
            .arg(driver())
            .arg("check")
            .arg(dir),
        Duration::from_secs(300),
    )
}

fn is_select(reg: &Register) -> bool {
    home_assistant::is_select(reg)
}

/// The name Home Assistant shows for `raw` in a register with named values (the charge
/// mode's select, the solar state's text sensor).
fn value_name(reg: &Register, raw: u16) -> Option<&'static str> {
    home_assistant::named(reg)?
        .iter()
        .find(|(code, _)| *code == raw)
        .map(|(_, name)| *name)
}

#[test]
fn home_assistant_check_config_accepts_the_package() {
    let Some(venv) = venv() else { return };
    let committed = std::fs::read_to_string(root().join(home_assistant::PATH)).unwrap();
    let dir = config_dir("ha-check", &committed, "");
    let t0 = Instant::now();
    let out = check(venv, &dir);
    eprintln!("check_config: {:.1} s", t0.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "Home Assistant {HA_VERSION} rejects {}:\n{}",
        home_assistant::PATH,
        text(&out)
    );
    let loaded: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("driver output: {e}\n{}", text(&out)));
    let readable = REGISTERS
        .iter()
        .filter(|r| r.access != Access::Write)
        .count();
    let writable = REGISTERS.iter().filter(|r| r.access == Access::ReadWrite);
    let selects = writable.clone().filter(|r| is_select(r)).count();
    let numbers = writable.count() - selects;
    // A text sensor with the name beside each named status register (1128).
    let names = REGISTERS
        .iter()
        .filter(|r| r.access == Access::Read && home_assistant::named(r).is_some())
        .count();
    assert_eq!(names, 1, "solar_state_name");
    assert_eq!(
        loaded,
        json!({"modbus_sensors": readable, "number": numbers, "select": selects, "button": 2,
               "sensor": names}),
        "what Home Assistant loaded from the package"
    );

    // The same check fails on a broken copy: a data type the modbus integration does
    // not know, and an action the script schema of 2024.3 does not know (`action:`
    // replaced `service:` only in 2024.8).
    let broken = committed
        .replacen("data_type: uint16", "data_type: uint17", 1)
        .replacen(
            "- service: modbus.write_register",
            "- action: modbus.write_register",
            1,
        );
    let dir = config_dir("ha-check-broken", &broken, "");
    let out = check(venv, &dir);
    let said = text(&out);
    assert!(!out.status.success(), "a broken package passes:\n{said}");
    assert!(said.contains("uint17"), "{said}");
    assert!(said.contains("Unable to determine action"), "{said}");
}

/// The value Home Assistant should show for `raw` in `reg`, and its unit.
fn shown(reg: &Register, raw: u16) -> (f64, Option<&'static str>) {
    match reg.unit {
        "mA" => (f64::from(raw) / 1000.0, Some("A")),
        "0.01 A" => (f64::from(raw) / 100.0, Some("A")),
        "0.1 V" => (f64::from(raw) / 10.0, Some("V")),
        "W" => (f64::from(raw), Some("W")),
        "s" => (f64::from(raw), Some("s")),
        "10 W" => (f64::from(raw as i16) * 10.0, Some("W")),
        _ => (f64::from(raw), None),
    }
}

async fn read(ctx: &mut tokio_modbus::client::Context, address: u16) -> u16 {
    tokio::time::timeout(
        Duration::from_secs(5),
        ctx.read_holding_registers(address, 1),
    )
    .await
    .expect("reply in time")
    .expect("transport")
    .expect("no exception")[0]
}

/// Waits up to 10 s until register `address` reads `want` (Home Assistant's service
/// call returns once the write is sent; the daemon may apply it a moment later).
async fn await_register(ctx: &mut tokio_modbus::client::Context, address: u16, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let have = read(ctx, address).await;
        if have == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "register {address} = {have}, want {want} (written through Home Assistant)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `[settings]` value `name = N` in the saved file.
fn saved(toml_file: &Path, name: &str) -> Option<u16> {
    let text = std::fs::read_to_string(toml_file).ok()?;
    let doc: toml::Table = text.parse().ok()?;
    doc.get("settings")?
        .get(name)?
        .as_integer()?
        .try_into()
        .ok()
}

#[tokio::test(flavor = "current_thread")]
async fn home_assistant_runs_the_package_against_the_daemon() {
    let Some(venv) = venv() else { return };
    let state = temp_dir("ha-daemon");
    let daemon = Daemon::in_dir(&state).args(["--p1", "sim"]).start();
    let package = home_assistant::yaml_for("127.0.0.1", daemon.addr.port(), 10);
    let http_port = free_port();
    let dir = config_dir(
        "ha-run",
        &package,
        &format!(
            "http:\n  server_host: 127.0.0.1\n  server_port: {http_port}\napi:\n\
             logger:\n  default: info\n"
        ),
    );

    // A long-lived access token, made before the first start; the API answers once
    // Home Assistant has started.
    let t0 = Instant::now();
    let hass = Hass::start(venv, &dir, http_port);
    let (api, log) = (&hass.api, &hass.log);

    // Every sensor has a value from the daemon, and at least one telegram was counted;
    // but the power the capacity budget allows the chargers reads 65535 (no bound) while
    // capacity mode is off (its default): unavailable, not a number.
    let readable: Vec<&Register> = REGISTERS
        .iter()
        .filter(|r| r.access != Access::Write)
        .collect();
    let no_bound = "sensor.p1lb_capacity_charger_power";
    let states = wait_states(
        api,
        log,
        Duration::from_secs(60),
        "every p1lb sensor with a number (1126 unavailable), telegrams_valid > 0",
        |s| {
            readable
                .iter()
                .filter(|r| r.address != address::CAPACITY_CHARGER_POWER)
                .all(|r| number(s, &format!("sensor.p1lb_{}", r.name)).is_some())
                && number(s, "sensor.p1lb_telegrams_valid").is_some_and(|n| n > 0.0)
                && s.get(no_bound).map(|e| &e["state"]) == Some(&json!("unavailable"))
        },
    );
    // The capacity account's measurements: power in W, the seconds left in a quarter.
    for name in [
        "quarter_average_power",
        "quarter_projected_power",
        "month_peak_power",
        "capacity_charger_power",
    ] {
        let attributes = &states[&format!("sensor.p1lb_{name}")]["attributes"];
        assert_eq!(attributes["device_class"], "power", "{name}: {attributes}");
        assert_eq!(attributes["state_class"], "measurement", "{name}");
    }
    let left = number(&states, "sensor.p1lb_quarter_seconds_left").unwrap();
    assert!((0.0..=900.0).contains(&left), "quarter_seconds_left {left}");
    eprintln!(
        "hass: every sensor read after {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // Units, and the settings at the register map's defaults, as sensors and as the
    // numbers/selects that edit them.
    for reg in &readable {
        let entity = format!("sensor.p1lb_{}", reg.name);
        let (_, unit) = shown(reg, 0);
        assert_eq!(
            states[&entity]["attributes"]["unit_of_measurement"].as_str(),
            unit,
            "{entity}"
        );
    }
    for s in SETTINGS {
        let reg = REGISTERS.iter().find(|r| r.address == s.address).unwrap();
        let (want, _) = shown(reg, s.default);
        let sensor = format!("sensor.p1lb_{}", s.name);
        assert_eq!(number(&states, &sensor), Some(want), "{sensor}");
        let editor = if is_select(reg) {
            format!("select.p1lb_{}", s.name)
        } else {
            format!("number.p1lb_{}", s.name)
        };
        match value_name(reg, s.default) {
            Some(name) => assert_eq!(states[&editor]["state"], name, "{editor}"),
            None => assert_eq!(number(&states, &editor), Some(want), "{editor}"),
        }
    }
    // The charge mode: a select of names; the surplus a signed power in W (a
    // measurement); the solar state as a number and by name.
    assert_eq!(
        states["select.p1lb_charge_mode"]["attributes"]["options"],
        json!(["fast", "min_solar", "solar_only", "paused"])
    );
    let surplus = &states["sensor.p1lb_solar_surplus"];
    assert_eq!(
        surplus["attributes"]["unit_of_measurement"], "W",
        "{surplus}"
    );
    assert_eq!(surplus["attributes"]["device_class"], "power", "{surplus}");
    assert_eq!(
        surplus["attributes"]["state_class"], "measurement",
        "{surplus}"
    );
    let surplus_w = number(&states, "sensor.p1lb_solar_surplus").unwrap();
    assert_eq!(
        surplus_w % 10.0,
        0.0,
        "solar_surplus {surplus_w} W: 10 W units"
    );
    let solar_state = REGISTERS
        .iter()
        .find(|r| r.address == address::SOLAR_STATE)
        .unwrap();
    let code = number(&states, "sensor.p1lb_solar_state").unwrap();
    assert!((0.0..=3.0).contains(&code), "solar_state {code}");
    assert_eq!(
        states["sensor.p1lb_solar_state_name"]["state"],
        value_name(solar_state, code as u16).unwrap(),
        "the solar state by name"
    );
    for name in ["solar_start_surplus", "solar_max_import"] {
        let attributes = &states[&format!("sensor.p1lb_{name}")]["attributes"];
        assert_eq!(attributes["unit_of_measurement"], "W", "{name}");
        assert_eq!(attributes["device_class"], "power", "{name}");
    }
    for name in ["solar_start_delay", "solar_stop_delay"] {
        let attributes = &states[&format!("sensor.p1lb_{name}")]["attributes"];
        assert_eq!(attributes["unit_of_measurement"], "s", "{name}");
        assert_eq!(attributes["device_class"], "duration", "{name}");
    }
    for (name, max) in [
        ("solar_start_surplus", 60000.0),
        ("solar_start_delay", 3600.0),
        ("solar_stop_delay", 3600.0),
        ("solar_max_import", 60000.0),
    ] {
        let attributes = &states[&format!("number.p1lb_{name}")]["attributes"];
        assert_eq!(attributes["min"], 0.0, "{name}");
        assert_eq!(attributes["max"], max, "{name}");
        assert_eq!(attributes["step"], 1.0, "{name}");
    }
    // 1000 after boot equals 1010: 16 A.
    assert_eq!(number(&states, "sensor.p1lb_override_cap"), Some(16.0));
    assert_eq!(number(&states, "number.p1lb_override_cap"), Some(16.0));
    let balancer = number(&states, "sensor.p1lb_balancer_state").unwrap();
    assert!(
        [0.0, 1.0, 2.0, 3.0, 4.0].contains(&balancer),
        "balancer state {balancer} is not one of 0–4"
    );
    let sent = number(&states, "sensor.p1lb_sent_current").unwrap();
    assert!((0.0..=16.0).contains(&sent), "sent current {sent} A");
    for l in 1..=3 {
        let v = number(&states, &format!("sensor.p1lb_voltage_l{l}")).unwrap();
        assert!((200.0..=260.0).contains(&v), "voltage L{l} {v} V");
    }
    for b in ["button.p1lb_save", "button.p1lb_restore_defaults"] {
        assert!(states.contains_key(b), "{b} missing");
    }

    // Writes through Home Assistant land in the daemon.
    let mut ctx = daemon.client(10).await;
    let toml_file = state.join("p1lb.toml");
    let staged = |flags: u16| flags & 1 << 5 != 0;

    // The charge mode applies and is saved at once: 1080, then p1lb.toml, without a
    // save (1003 bit 5 stays clear); the select shows it at once, not after the next
    // 30 s poll.
    api.service(
        "select",
        "select_option",
        json!({"entity_id": "select.p1lb_charge_mode", "option": "min_solar"}),
    );
    await_register(&mut ctx, 1080, 1).await;
    assert_eq!(saved(&toml_file, "charge_mode"), Some(1), "saved at once");
    assert!(
        !staged(read(&mut ctx, 1003).await),
        "1003 bit 5: nothing staged"
    );
    wait_states(
        api,
        log,
        Duration::from_secs(10),
        "the charge mode back in Home Assistant",
        |s| s.get("select.p1lb_charge_mode").map(|e| &e["state"]) == Some(&json!("min_solar")),
    );
    // 1.005 A × 1000 is 1004.9999… in floating point: rounded, not truncated.
    api.service(
        "number",
        "set_value",
        json!({"entity_id": "number.p1lb_override_cap", "value": 1.005}),
    );
    await_register(&mut ctx, 1000, 1005).await;
    api.service(
        "number",
        "set_value",
        json!({"entity_id": "number.p1lb_override_cap", "value": 10.5}),
    );
    await_register(&mut ctx, 1000, 10_500).await;
    api.service(
        "number",
        "set_value",
        json!({"entity_id": "number.p1lb_upper_wait", "value": 7}),
    );
    await_register(&mut ctx, 1016, 7).await;
    api.service(
        "select",
        "select_option",
        json!({"entity_id": "select.p1lb_phases", "option": "1"}),
    );
    await_register(&mut ctx, 1011, 1).await;
    // The capacity tariff's settings: numbers in W (and 0–2 for the mode).
    api.service(
        "number",
        "set_value",
        json!({"entity_id": "number.p1lb_capacity_target", "value": 3500}),
    );
    await_register(&mut ctx, 1073, 3500).await;
    api.service(
        "number",
        "set_value",
        json!({"entity_id": "number.p1lb_capacity_margin", "value": 250}),
    );
    await_register(&mut ctx, 1074, 250).await;
    api.service(
        "number",
        "set_value",
        json!({"entity_id": "number.p1lb_capacity_mode", "value": 2}),
    );
    await_register(&mut ctx, 1072, 2).await;
    assert_ne!(read(&mut ctx, 1003).await & 1 << 5, 0, "1003 bit 5: staged");
    // The numbers for the solar settings write W and s as they are (staged).
    api.service(
        "number",
        "set_value",
        json!({"entity_id": "number.p1lb_solar_start_delay", "value": 90}),
    );
    await_register(&mut ctx, 1082, 90).await;
    api.service(
        "number",
        "set_value",
        json!({"entity_id": "number.p1lb_solar_max_import", "value": 400}),
    );
    await_register(&mut ctx, 1084, 400).await;

    // A new charge mode now is saved on its own: the staged settings stay staged, out
    // of the file.
    api.service(
        "select",
        "select_option",
        json!({"entity_id": "select.p1lb_charge_mode", "option": "solar_only"}),
    );
    await_register(&mut ctx, 1080, 2).await;
    assert_eq!(saved(&toml_file, "charge_mode"), Some(2), "saved at once");
    assert!(
        staged(read(&mut ctx, 1003).await),
        "1003 bit 5: still staged"
    );
    assert_eq!(saved(&toml_file, "upper_wait"), Some(5), "not saved yet");
    assert_eq!(
        saved(&toml_file, "solar_start_delay"),
        Some(60),
        "not saved yet"
    );
    assert_eq!(saved(&toml_file, "capacity_mode"), Some(0), "not saved yet");
    assert_eq!(read(&mut ctx, 1016).await, 7, "upper_wait still staged");

    // "save" writes them to the daemon's p1lb.toml.
    api.service("button", "press", json!({"entity_id": "button.p1lb_save"}));
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(&mut ctx, 1003).await & 1 << 5 != 0 {
        assert!(
            Instant::now() < deadline,
            "save pressed, 1003 bit 5 still set"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(saved(&toml_file, "upper_wait"), Some(7));
    assert_eq!(saved(&toml_file, "phases"), Some(1));
    assert_eq!(saved(&toml_file, "capacity_mode"), Some(2));
    assert_eq!(saved(&toml_file, "capacity_target"), Some(3500));
    assert_eq!(saved(&toml_file, "capacity_margin"), Some(250));
    assert_eq!(saved(&toml_file, "solar_start_delay"), Some(90));
    assert_eq!(saved(&toml_file, "solar_max_import"), Some(400));
    assert_eq!(saved(&toml_file, "charge_mode"), Some(2));

    // Home Assistant reads the new values back (asked to poll at once).
    api.service(
        "homeassistant",
        "update_entity",
        json!({"entity_id": ["sensor.p1lb_override_cap", "sensor.p1lb_upper_wait", "sensor.p1lb_phases",
                             "sensor.p1lb_capacity_target", "sensor.p1lb_capacity_mode"]}),
    );
    wait_states(
        api,
        log,
        Duration::from_secs(40),
        "the written values back in Home Assistant",
        |s| {
            number(s, "sensor.p1lb_override_cap") == Some(10.5)
                && number(s, "number.p1lb_override_cap") == Some(10.5)
                && number(s, "number.p1lb_upper_wait") == Some(7.0)
                && s.get("select.p1lb_phases").map(|e| &e["state"]) == Some(&json!("1"))
                && number(s, "sensor.p1lb_capacity_target") == Some(3500.0)
                && number(s, "number.p1lb_capacity_target") == Some(3500.0)
                && number(s, "number.p1lb_capacity_mode") == Some(2.0)
                && s.get("select.p1lb_charge_mode").map(|e| &e["state"])
                    == Some(&json!("solar_only"))
        },
    );

    // "restore defaults" puts the defaults back, in the daemon and in the file.
    api.service(
        "button",
        "press",
        json!({"entity_id": "button.p1lb_restore_defaults"}),
    );
    await_register(&mut ctx, 1016, 5).await;
    await_register(&mut ctx, 1011, 3).await;
    await_register(&mut ctx, 1072, 0).await;
    await_register(&mut ctx, 1073, 2500).await;
    await_register(&mut ctx, 1080, 0).await;
    assert_eq!(saved(&toml_file, "upper_wait"), Some(5));
    assert_eq!(saved(&toml_file, "capacity_target"), Some(2500));
    assert_eq!(saved(&toml_file, "charge_mode"), Some(0));

    // Nothing in Home Assistant's log about the package: no error at all, no warning
    // from the integrations it uses.
    let ha_log = std::fs::read_to_string(log).unwrap_or_default();
    let bad: Vec<&str> = ha_log
        .lines()
        .filter(|l| {
            l.contains(" ERROR ")
                || l.contains(" CRITICAL ")
                || (l.contains(" WARNING ")
                    && [
                        "modbus",
                        "template",
                        "homeassistant.config",
                        "helpers",
                        "p1lb",
                    ]
                    .iter()
                    .any(|w| l.contains(w)))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "Home Assistant logged:\n{}\n\nthe whole log:\n{ha_log}",
        bad.join("\n")
    );

    // Without the daemon, a sensor and the number and select that edit it become
    // unavailable (not a number parsed from "unavailable"), and no template fails.
    drop(ctx);
    drop(daemon);
    let lines_before = ha_log.lines().count();
    api.service(
        "homeassistant",
        "update_entity",
        json!({"entity_id": ["sensor.p1lb_upper_wait", "sensor.p1lb_phases",
                             "sensor.p1lb_charge_mode", "sensor.p1lb_solar_state"]}),
    );
    wait_states(
        api,
        log,
        Duration::from_secs(40),
        "the entities unavailable without the daemon",
        |s| {
            [
                "sensor.p1lb_upper_wait",
                "number.p1lb_upper_wait",
                "sensor.p1lb_phases",
                "select.p1lb_phases",
                "select.p1lb_charge_mode",
                "sensor.p1lb_solar_state_name",
            ]
            .iter()
            .all(|e| s.get(*e).map(|e| &e["state"]) == Some(&json!("unavailable")))
        },
    );
    let ha_log = std::fs::read_to_string(log).unwrap_or_default();
    let bad: Vec<&str> = ha_log
        .lines()
        .skip(lines_before)
        .filter(|l| (l.contains(" ERROR ") || l.contains(" WARNING ")) && l.contains("template"))
        .collect();
    assert!(bad.is_empty(), "without the daemon:\n{}", bad.join("\n"));

    drop(hass);
    eprintln!("hass: whole test {:.1} s", t0.elapsed().as_secs_f64());
}
