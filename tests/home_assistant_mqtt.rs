//! MQTT discovery in a real Home Assistant (2024.3.3, the venv of
//! `tests/home_assistant/setup-venv`, with its MQTT integration's paho-mqtt) through a
//! real broker (Debian's Mosquitto on a free loopback port), against `p1lb run --mqtt`
//! on the built-in simulated house:
//!
//! - the device and one entity per register appear by discovery, nothing copied into
//!   Home Assistant's configuration, with the units of the register table;
//! - values follow the daemon (the telegram counter goes up);
//! - a number set in Home Assistant lands in the register (staged), the save button
//!   writes it into `p1lb.toml`; the charge mode select applies and saves at once;
//! - a broker restart leaves no entity unavailable once both have reconnected (the
//!   availability topic, discovery again on Home Assistant's birth message).
//!
//! Without Home Assistant or Mosquitto the test skips loudly, except under CI.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::broker::{Broker, have_mosquitto};
use common::ha::{Hass, number, venv, wait_states};
use common::{Daemon, free_port, temp_dir};
use p1lb_core::registers::REGISTERS;
use serde_json::{Map, Value, json};
use tokio_modbus::prelude::*;

/// The entity id Home Assistant gives a register's entity (discovery's `object_id`).
fn entity(name: &str) -> String {
    let reg = REGISTERS.iter().find(|r| r.name == name).expect("register");
    let domain = match (reg.access, reg.setting) {
        (p1lb_core::registers::Access::Write, _) => "button",
        (p1lb_core::registers::Access::Read, _) => "sensor",
        _ if select(name) => "select",
        _ => "number",
    };
    format!("{domain}.p1lb_{name}")
}

/// The registers discovery makes selects (from the daemon's own rule).
fn select(name: &str) -> bool {
    let reg = REGISTERS.iter().find(|r| r.name == name).expect("register");
    p1lb::daemon::mqtt::proto::component(reg) == p1lb::daemon::mqtt::proto::Component::Select
}

fn all_entities() -> Vec<String> {
    REGISTERS.iter().map(|r| entity(r.name)).collect()
}

fn unavailable(states: &Map<String, Value>) -> Vec<String> {
    all_entities()
        .into_iter()
        .filter(|e| states.get(e).is_none_or(|s| s["state"] == "unavailable"))
        .collect()
}

async fn read(addr: std::net::SocketAddr, address: u16) -> u16 {
    let mut ctx = tcp::connect_slave(addr, Slave(10)).await.expect("connect");
    ctx.read_holding_registers(address, 1)
        .await
        .expect("transport")
        .expect("reply")[0]
}

fn saved(toml_file: &Path, name: &str) -> Option<i64> {
    let text = std::fs::read_to_string(toml_file).ok()?;
    let doc: toml::Table = text.parse().ok()?;
    doc.get("settings")?.get(name)?.as_integer()
}

#[tokio::test(flavor = "current_thread")]
async fn home_assistant_discovers_the_daemon_over_mqtt() {
    if !have_mosquitto() {
        return;
    }
    let Some(venv) = venv() else { return };
    let dir = temp_dir("ha-mqtt");
    let mut broker = Broker::start(&dir);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let daemon = Daemon::in_dir(&state)
        .args(["--p1", "sim", "--mqtt", &broker.url()])
        .start();

    // Home Assistant with nothing about p1lb in its configuration.
    let ha_dir = dir.join("ha");
    std::fs::create_dir_all(&ha_dir).unwrap();
    let http_port = free_port();
    std::fs::write(
        ha_dir.join("configuration.yaml"),
        format!(
            "homeassistant:\n  name: p1lb test\n  time_zone: UTC\nconfig:\nhttp:\n  \
             server_host: 127.0.0.1\n  server_port: {http_port}\napi:\nlogger:\n  default: info\n"
        ),
    )
    .unwrap();
    let hass = Hass::start(venv, &ha_dir, http_port);
    let api = &hass.api;

    // Its MQTT integration, pointed at the broker (the UI's config flow, over REST).
    let (status, flow) = api.call(
        "POST",
        "/api/config/config_entries/flow",
        Some(&json!({"handler": "mqtt"})),
    );
    assert_eq!(status, 200, "{flow}");
    let id = flow["flow_id"].as_str().expect("flow id").to_owned();
    let (status, done) = api.call(
        "POST",
        &format!("/api/config/config_entries/flow/{id}"),
        Some(&json!({"broker": "127.0.0.1", "port": broker.port})),
    );
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["type"], "create_entry", "{done}");

    // Discovery: every register's entity, available, with its unit.
    let t0 = Instant::now();
    let states = wait_states(
        api,
        &hass.log,
        Duration::from_secs(90),
        "every p1lb entity discovered and available, telegrams counted",
        |s| {
            unavailable(s).is_empty()
                && number(s, "sensor.p1lb_telegrams_valid").is_some_and(|n| n > 0.0)
        },
    );
    eprintln!(
        "hass: {} entities after {:.1} s",
        REGISTERS.len(),
        t0.elapsed().as_secs_f64()
    );
    for (e, unit) in [
        ("number.p1lb_charger_max_current", Some("A")),
        ("sensor.p1lb_grid_current_l1", Some("A")),
        ("sensor.p1lb_voltage_l1", Some("V")),
        ("sensor.p1lb_import_power", Some("W")),
        ("number.p1lb_solar_start_delay", Some("s")),
        ("sensor.p1lb_uptime", Some("s")),
        ("select.p1lb_charge_mode", None),
    ] {
        assert_eq!(
            states[e]["attributes"]["unit_of_measurement"].as_str(),
            unit,
            "{e}: {}",
            states[e]
        );
    }
    assert_eq!(
        number(&states, "number.p1lb_charger_max_current"),
        Some(16.0)
    );
    let attrs = &states["number.p1lb_charger_max_current"]["attributes"];
    assert_eq!(
        (attrs["min"].as_f64(), attrs["max"].as_f64()),
        (Some(6.0), Some(63.0))
    );
    assert_eq!(states["select.p1lb_charge_mode"]["state"], "fast");
    assert_eq!(
        states["select.p1lb_charge_mode"]["attributes"]["options"],
        json!(["fast", "min_solar", "solar_only", "paused"])
    );
    assert_eq!(
        states["sensor.p1lb_voltage_l1"]["attributes"]["device_class"],
        "voltage"
    );

    // Values follow the daemon.
    let before = number(&states, "sensor.p1lb_telegrams_valid").unwrap();
    wait_states(
        api,
        &hass.log,
        Duration::from_secs(20),
        "telegrams_valid goes up",
        |s| number(s, "sensor.p1lb_telegrams_valid").is_some_and(|n| n > before),
    );

    // A number set in Home Assistant: staged in the register, saved by the button.
    let toml = state.join("p1lb.toml");
    api.service(
        "number",
        "set_value",
        json!({"entity_id": "number.p1lb_charger_max_current", "value": 20}),
    );
    wait_states(
        api,
        &hass.log,
        Duration::from_secs(10),
        "the number shows 20 A",
        |s| number(s, "number.p1lb_charger_max_current") == Some(20.0),
    );
    assert_eq!(read(daemon.addr, 1010).await, 20000);
    assert_eq!(
        saved(&toml, "charger_max_current"),
        Some(16000),
        "staged only"
    );
    api.service("button", "press", json!({"entity_id": "button.p1lb_save"}));
    let deadline = Instant::now() + Duration::from_secs(10);
    while saved(&toml, "charger_max_current") != Some(20000) {
        assert!(
            Instant::now() < deadline,
            "save did not reach {}",
            toml.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The charge mode: applied and saved at once.
    api.service(
        "select",
        "select_option",
        json!({"entity_id": "select.p1lb_charge_mode", "option": "solar_only"}),
    );
    wait_states(
        api,
        &hass.log,
        Duration::from_secs(10),
        "charge mode solar_only",
        |s| s.get("select.p1lb_charge_mode").map(|e| &e["state"]) == Some(&json!("solar_only")),
    );
    assert_eq!(read(daemon.addr, 1080).await, 2);
    assert_eq!(saved(&toml, "charge_mode"), Some(2));

    // A broker restart (its retained messages gone): once both are back, no entity is
    // unavailable and the values move again.
    broker.stop();
    let went = wait_states(
        api,
        &hass.log,
        Duration::from_secs(30),
        "entities unavailable",
        |s| !unavailable(s).is_empty(),
    );
    eprintln!(
        "hass: broker down, {} entities unavailable",
        unavailable(&went).len()
    );
    let counted = number(&went, "sensor.p1lb_telegrams_valid").unwrap_or(0.0);
    broker.restart();
    let t1 = Instant::now();
    wait_states(
        api,
        &hass.log,
        Duration::from_secs(90),
        "every p1lb entity available again after the broker restart, values moving",
        |s| {
            unavailable(s).is_empty()
                && number(s, "sensor.p1lb_telegrams_valid").is_some_and(|n| n > counted)
        },
    );
    eprintln!(
        "hass: all available {:.1} s after the broker restart",
        t1.elapsed().as_secs_f64()
    );
    let log = daemon.log_text();
    assert!(log.contains("MQTT: reconnected"), "{log}");
    // Home Assistant's birth message after its own reconnect: discovery again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !daemon.log_text().contains("Home Assistant is online") {
        assert!(
            Instant::now() < deadline,
            "no birth message from Home Assistant:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(unavailable(&api.states()).is_empty());
    drop(hass);
    std::fs::remove_dir_all(&dir).ok();
}
