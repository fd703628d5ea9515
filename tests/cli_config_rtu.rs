//! `p1lb config` and `p1lb monitor` over Modbus RTU: a serial device (one end of a
//! socat pty pair) to `p1lb run --rs485 <other end>` in the server role.
//!
//! Needs `socat`: without it the test skips with a loud message, unless `CI` is set,
//! then it fails. Every child process is killed when the test ends.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::{BIN, Daemon, Pty, have_socat, temp_dir};

fn config(device: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("config")
        .arg("--device")
        .arg(device)
        .args(["--timeout", "2s"])
        .args(args)
        .output()
        .expect("p1lb config runs")
}

#[test]
fn config_and_monitor_over_rtu() {
    if !have_socat() {
        return;
    }
    let dir = temp_dir("cli-rtu");
    let pty = Pty::new(&dir);
    let b = &pty.b;
    let daemon = Daemon::in_dir(&dir)
        .args(["--p1", "sim", "--rs485"])
        .args([&pty.a])
        .log_has("RS485: ")
        .start();

    let out = config(b, &["list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log_text()
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("1010 ") && l.contains("16000 mA")),
        "{stdout}"
    );
    assert!(config(b, &["set", "upper-limit", "21A"]).status.success());
    let out = config(b, &["get", "upper_current"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "upper_current = 21000 mA"
    );
    let out = config(b, &["set", "charger_max_current", "5A"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("6000 … 63000"));

    let out = Command::new(BIN)
        .arg("monitor")
        .arg("--device")
        .arg(b)
        .args(["--json", "--count", "2", "--interval", "100ms"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let names = v["flag_names"].as_array().expect("flag_names");
        assert!(names.contains(&"unsaved_changes".into()), "{line}");
        // The chargers' status, read in a second request: one charger by default.
        let chargers = v["chargers"].as_array().expect("chargers");
        assert_eq!(chargers.len(), 1, "{line}");
        assert_eq!(chargers[0]["current_a"].as_array().map(Vec::len), Some(3));
    }
    drop(daemon);
    let _ = fs::remove_dir_all(&dir);
}
