//! `p1lb config` and `p1lb monitor` against a real `p1lb run --p1 sim` over Modbus TCP.
//! Every daemon is killed when its test ends (a guard with `Drop`).

mod common;

use common::{BIN, Daemon, free_addr, temp_dir};

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// A running `p1lb run --p1 sim --rs485 sim`; killed on drop.
fn start(state_dir: &Path) -> Daemon {
    Daemon::in_dir(state_dir)
        .args(["--p1", "sim", "--rs485", "sim"])
        .start()
}

/// `p1lb config --device tcp://… ARGS`.
fn config(d: &Daemon, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["config", "--device", &d.device()])
        .args(args)
        .output()
        .expect("p1lb config runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn list_get_set_save_defaults_and_errors() {
    let dir = temp_dir("config");
    let d = start(&dir);

    let out = config(&d, &["list"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("1010 "))
        .unwrap_or_else(|| panic!("no 1010 line:\n{stdout}"));
    assert!(
        line.contains("charger_max_current") && line.contains("16000 mA") && line.ends_with("RW"),
        "{line}"
    );
    assert!(stdout.contains("1091 "), "{stdout}");

    // Set / get round trip, with units and either separator.
    let out = config(&d, &["set", "upper-current", "21A"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = config(&d, &["get", "upper_current"]);
    assert_eq!(text(&out).0.trim(), "upper_current = 21000 mA");
    let out = config(&d, &["set", "upper_wait", "7s"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        text(&config(&d, &["get", "upper-wait"])).0.trim(),
        "upper_wait = 7 s"
    );

    // Out of range: the device answers 03, the message names the range; exit 1.
    let out = config(&d, &["set", "charger_max_current", "5A"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("out of range") && stderr.contains("6000 … 63000"),
        "{stderr}"
    );
    // A unit that does not fit, or an unknown name: usage, exit 2, nothing sent.
    for args in [
        &["set", "upper_wait", "5A"][..],
        &["get", "no_such_register"],
        &["set", "voltage_l1", "230"],
    ] {
        let out = config(&d, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {:?}", text(&out));
    }

    // Save persists into the state dir's TOML.
    let out = config(&d, &["save"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let toml = fs::read_to_string(dir.join("p1lb.toml")).unwrap();
    assert!(toml.contains("upper_current = 21000"), "{toml}");
    assert!(toml.contains("upper_wait = 7"), "{toml}");

    // An inconsistent set: save answers 03 with the rule that fails.
    let out = config(&d, &["set", "lower_current", "21A"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = config(&d, &["save"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lower_current"), "{stderr}");

    // Defaults: back to 22000 in the file.
    let out = config(&d, &["defaults"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let toml = fs::read_to_string(dir.join("p1lb.toml")).unwrap();
    assert!(toml.contains("upper_current = 22000"), "{toml}");
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_device_that_is_not_there_exits_1() {
    let out = Command::new(BIN)
        .args(["config", "--device"])
        .arg(format!("tcp://{}", free_addr()))
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
}

#[test]
fn monitor_json_gives_one_object_per_sample() {
    let dir = temp_dir("monitor");
    let d = start(&dir);
    let out = Command::new(BIN)
        .args(["monitor", "--device", &d.device()])
        .args(["--json", "--count", "2", "--interval", "200ms"])
        .output()
        .expect("p1lb monitor runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        for key in [
            "state",
            "state_code",
            "sent_current_ma",
            "flags",
            "flag_names",
            "grid_current_a",
            "voltage_v",
            "telegrams_valid",
            "telegrams_rejected",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {line}");
        }
        assert_eq!(v["grid_current_a"].as_array().unwrap().len(), 3);
        assert_eq!(v["override_cap_ma"], 16000);
    }
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}
