//! `p1lb run` with MQTT against a real broker (Debian's Mosquitto, started by the test
//! on a free loopback port): Home Assistant discovery generated from the register map,
//! states that follow the daemon, writes on `…/set` through the register write path
//! (staged, saved with the save button into the TOML file), refused commands reported
//! on `…/result` and changing nothing, availability and discovery again after a broker
//! restart, and `discovery = false`.

use std::fs;
use std::time::Duration;

mod common;

use common::broker::{Broker, Seen, Sub, have_mosquitto};
use common::{BIN, Daemon, temp_dir};
use p1lb_core::registers::REGISTERS;
use serde_json::Value;

const T: Duration = Duration::from_secs(15);

fn json(s: &Seen) -> Value {
    serde_json::from_str(&s.payload).unwrap_or_else(|e| panic!("{}: {e}: {}", s.topic, s.payload))
}

async fn read(d: &Daemon, address: u16) -> u16 {
    let mut ctx = d.client(10).await;
    use tokio_modbus::prelude::*;
    ctx.read_holding_registers(address, 1)
        .await
        .expect("transport")
        .expect("reply")[0]
}

fn configs(sub: &Sub, after: usize) -> Vec<Seen> {
    sub.seen()
        .into_iter()
        .skip(after)
        .filter(|s| s.topic.starts_with("homeassistant/") && s.topic.ends_with("/config"))
        .collect()
}

fn wait_configs(sub: &Sub, after: usize) -> Vec<Seen> {
    let deadline = std::time::Instant::now() + T;
    loop {
        let c = configs(sub, after);
        if c.len() >= REGISTERS.len() {
            return c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} discovery messages",
            c.len(),
            REGISTERS.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_states_writes_refusals_and_a_broker_restart() {
    if !have_mosquitto() {
        return;
    }
    let dir = temp_dir("mqtt");
    let mut broker = Broker::start(&dir);
    let sub = Sub::all(&broker);
    let d = Daemon::in_dir(&dir)
        .args(["--p1", "sim", "--mqtt", &broker.url()])
        .start();

    // Discovery: one retained config per register, with the table's units.
    sub.wait_for(0, "p1lb/10/status", "online", T);
    let all = wait_configs(&sub, 0);
    assert_eq!(all.len(), REGISTERS.len(), "one config per register");
    assert!(all.iter().all(|s| s.topic.contains("/p1lb_10/")));
    let find = |topic: &str| -> Value {
        json(
            all.iter()
                .find(|s| s.topic == topic)
                .unwrap_or_else(|| panic!("no {topic}")),
        )
    };
    let c = find("homeassistant/number/p1lb_10/charger_max_current/config");
    assert_eq!(c["unit_of_measurement"], "A");
    assert_eq!(
        (c["min"].as_f64(), c["max"].as_f64()),
        (Some(6.0), Some(63.0))
    );
    assert_eq!(c["availability_topic"], "p1lb/10/status");
    let c = find("homeassistant/sensor/p1lb_10/voltage_l1/config");
    assert_eq!(
        (
            c["unit_of_measurement"].as_str(),
            c["device_class"].as_str()
        ),
        (Some("V"), Some("voltage"))
    );
    let c = find("homeassistant/select/p1lb_10/charge_mode/config");
    assert_eq!(c["options"][2], "solar_only");
    find("homeassistant/button/p1lb_10/save/config");

    // States follow the daemon: the simulated meter's telegrams count up.
    sub.wait_for(0, "p1lb/10/charger_max_current", "16.000", T);
    let n = sub.count();
    let first = sub.wait_after(n, T, "telegrams_valid", |s| {
        s.topic == "p1lb/10/telegrams_valid"
    });
    let later = sub.wait_after(n, T, "a later telegrams_valid", |s| {
        s.topic == "p1lb/10/telegrams_valid" && s.payload != first.payload
    });
    assert!(later.payload.parse::<u64>().unwrap() > first.payload.parse::<u64>().unwrap());

    // A write in A: staged (register, state), then saved with the button into the file.
    let n = sub.count();
    broker.publish("p1lb/10/charger_max_current/set", b"20.5", false);
    let r = sub.wait_after(n, T, "result", |s| s.topic == "p1lb/10/result");
    assert_eq!(json(&r)["ok"], true, "{}", r.payload);
    sub.wait_for(n, "p1lb/10/charger_max_current", "20.500", T);
    assert_eq!(read(&d, 1010).await, 20500);
    let toml = dir.join("p1lb.toml");
    assert!(
        fs::read_to_string(&toml)
            .unwrap()
            .contains("\ncharger_max_current = 16000\n")
    );
    let n = sub.count();
    broker.publish("p1lb/10/save/set", b"PRESS", false);
    let r = sub.wait_after(n, T, "result", |s| s.topic == "p1lb/10/result");
    assert_eq!(json(&r)["ok"], true, "{}", r.payload);
    assert!(
        fs::read_to_string(&toml)
            .unwrap()
            .contains("\ncharger_max_current = 20500\n")
    );
    // The charge mode by name applies and persists at once.
    let n = sub.count();
    broker.publish("p1lb/10/charge_mode/set", b"solar_only", false);
    sub.wait_for(n, "p1lb/10/charge_mode", "solar_only", T);
    assert!(
        fs::read_to_string(&toml)
            .unwrap()
            .contains("\ncharge_mode = 2\n")
    );

    // Refused: logged, answered on the result topic, nothing changes.
    let before = fs::read_to_string(&toml).unwrap();
    let long = vec![b'7'; 300];
    let cases: Vec<(&str, &[u8])> = vec![
        ("p1lb/10/charger_max_current/set", b"abc"),
        ("p1lb/10/charger_max_current/set", b"99"),
        ("p1lb/10/charger_max_current/set", b"NaN"),
        ("p1lb/10/charger_max_current/set", b""),
        ("p1lb/10/charger_max_current/set", &long),
        ("p1lb/10/charger_max_current/set", &[0xff, 0xfe, 0x00]),
        ("p1lb/10/charge_mode/set", b"turbo"),
        ("p1lb/10/sent_current/set", b"10"),
        ("p1lb/10/no_such_register/set", b"1"),
    ];
    for (topic, payload) in &cases {
        let n = sub.count();
        broker.publish(topic, payload, false);
        let r = sub.wait_after(n, T, "result", |s| s.topic == "p1lb/10/result");
        let j = json(&r);
        assert_eq!(j["ok"], false, "{topic} {payload:?}: {}", r.payload);
        assert_eq!(j["topic"], *topic);
        assert!(
            j["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{}",
            r.payload
        );
    }
    // upper_current = 10 A is in its range (staged) but below lower_current: the save
    // is refused and the file keeps the old values.
    let n = sub.count();
    broker.publish("p1lb/10/upper_current/set", b"10", false);
    let r = sub.wait_after(n, T, "result", |s| s.topic == "p1lb/10/result");
    assert_eq!(json(&r)["ok"], true, "staged: {}", r.payload);
    let n = sub.count();
    broker.publish("p1lb/10/save/set", b"1", false);
    let r = sub.wait_after(n, T, "result", |s| s.topic == "p1lb/10/result");
    assert_eq!(json(&r)["ok"], false, "inconsistent: {}", r.payload);
    assert_eq!(read(&d, 1010).await, 20500);
    assert_eq!(read(&d, 1080).await, 2);
    assert_eq!(fs::read_to_string(&toml).unwrap(), before);
    let log = d.log_text();
    assert!(log.contains("MQTT: refused"), "{log}");

    // A broker restart (its retained messages gone): back online, discovery again.
    broker.restart();
    let sub = Sub::all(&broker);
    sub.wait_for(0, "p1lb/10/status", "online", Duration::from_secs(40));
    let again = wait_configs(&sub, 0);
    assert!(again.iter().all(|s| s.retained || !s.payload.is_empty()));
    sub.wait_for(0, "p1lb/10/charger_max_current", "20.500", T);
    // Home Assistant's birth message: discovery once more.
    let n = sub.count();
    broker.publish("homeassistant/status", b"online", false);
    let more = wait_configs(&sub, n);
    assert_eq!(more.len(), REGISTERS.len());
    let log = d.log_text();
    assert!(log.contains("MQTT: reconnected"), "{log}");
    fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_off_keeps_the_plain_topics_from_the_toml_section() {
    if !have_mosquitto() {
        return;
    }
    let dir = temp_dir("mqtt-plain");
    let broker = Broker::start(&dir);
    let sub = Sub::all(&broker);
    let file = dir.join("p1lb.toml");
    fs::write(
        &file,
        format!(
            "[p1]\nsource = \"sim\"\n[rs485]\npath = \"sim\"\n[mqtt]\nurl = \"{}\"\n\
             discovery = false\nprefix = \"site/charger\"\n",
            broker.url()
        ),
    )
    .unwrap();
    let _d = Daemon::in_dir(&dir).config(&file).start();
    sub.wait_for(0, "site/charger/status", "online", T);
    sub.wait_for(0, "site/charger/phases", "3", T);
    let n = sub.count();
    broker.publish("site/charger/phases/set", b"1", false);
    sub.wait_for(n, "site/charger/phases", "1", T);
    broker.publish("homeassistant/status", b"online", false);
    std::thread::sleep(Duration::from_secs(2));
    let ha: Vec<Seen> = sub
        .seen()
        .into_iter()
        .filter(|s| s.topic.starts_with("homeassistant/") && s.topic != "homeassistant/status")
        .collect();
    assert!(ha.is_empty(), "{ha:?}");
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_password_file_others_can_read_stops_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("mqtt-pw");
    let pw = dir.join("pw");
    fs::write(&pw, "secret\n").unwrap();
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o640)).unwrap();
    let file = dir.join("p1lb.toml");
    fs::write(
        &file,
        format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\nusername = \"u\"\npassword_file = \"{}\"\n",
            pw.display()
        ),
    )
    .unwrap();
    // Bounded: a daemon that started instead of refusing would run forever.
    let out = common::output_within(
        std::process::Command::new(BIN)
            .args(["run", "--p1", "sim", "--config"])
            .arg(&file),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("readable by group or others") && err.contains("chmod 600"),
        "{err}"
    );
    fs::remove_dir_all(&dir).ok();
}

/// `mqtts://`: TLS (rustls) with the broker's CA named by `SSL_CERT_FILE`; refused
/// (and retried) without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_the_brokers_ca_and_refused_without_it() {
    if !have_mosquitto() {
        return;
    }
    let dir = temp_dir("mqtts");
    let Some(broker) = Broker::start_tls(&dir) else {
        return;
    };
    let sub = Sub::all(&broker);
    let ca = broker.ca.clone().expect("TLS broker");
    let state = dir.join("trusted");
    fs::create_dir_all(&state).unwrap();
    let d = Daemon::in_dir(&state)
        .args(["--p1", "sim", "--mqtt", &broker.url()])
        .env("SSL_CERT_FILE", &ca)
        .start();
    sub.wait_for(0, "p1lb/10/status", "online", T);
    let n = sub.count();
    broker.publish("p1lb/10/charge_mode/set", b"paused", false);
    sub.wait_for(n, "p1lb/10/charge_mode", "paused", T);
    assert!(
        d.log_text()
            .contains("MQTT: connected to mqtts://localhost:")
    );

    // Another CA: the broker's certificate is refused, said in the log, retried.
    let other_ca = dir.join("other-ca.pem");
    let out = common::output_within(
        std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=another CA", "-keyout"])
            .arg(dir.join("other-ca.key"))
            .arg("-out")
            .arg(&other_ca),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{out:?}");
    let state = dir.join("untrusted");
    fs::create_dir_all(&state).unwrap();
    let other = Daemon::in_dir(&state)
        .args(["--p1", "sim", "--mqtt", &broker.url()])
        .env("SSL_CERT_FILE", &other_ca)
        .start();
    let deadline = std::time::Instant::now() + T;
    while !other.log_text().contains("invalid peer certificate") {
        assert!(std::time::Instant::now() < deadline, "{}", other.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!other.log_text().contains("MQTT: connected"));

    // No trusted certificate at all: the start is refused, with the reason.
    // Bounded: a daemon that started instead of refusing would run forever.
    let out = common::output_within(
        std::process::Command::new(BIN)
            .args([
                "run",
                "--p1",
                "sim",
                "--modbus-tcp",
                "127.0.0.1:0",
                "--state-dir",
            ])
            .arg(&state)
            .args(["--mqtt", &broker.url()])
            .env("SSL_CERT_FILE", dir.join("empty.pem"))
            .env("SSL_CERT_DIR", dir.join("no-such-dir")),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no trusted certificate"), "{err}");
    fs::remove_dir_all(&dir).ok();
}
