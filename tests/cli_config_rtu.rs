//! `p1lb config` and `p1lb monitor` over Modbus RTU: a serial device (one end of a
//! socat pty pair) to `p1lb run --rs485 <other end>` in the server role.
//!
//! Needs `socat`: without it the test skips with a loud message, unless `CI` is set,
//! then it fails. Every child process is killed when the test ends.

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Guard, have_socat};

const BIN: &str = env!("CARGO_BIN_EXE_p1lb");

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
    let dir: PathBuf = std::env::temp_dir().join(format!("p1lb-cli-rtu-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("pty-a"), dir.join("pty-b"));
    let _socat = Guard(
        Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(a.exists() && b.exists()) {
        assert!(Instant::now() < deadline, "socat made no ptys");
        std::thread::sleep(Duration::from_millis(20));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let log = dir.join("daemon.log");
    let mut daemon = Guard(
        Command::new(BIN)
            .args(["run", "--p1", "sim", "--modbus-tcp"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--rs485")
            .arg(&a)
            .arg("--state-dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("p1lb starts"),
    );
    let log_text = || fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log_text().contains("RS485: ") {
        if let Ok(Some(status)) = daemon.0.try_wait() {
            panic!("p1lb run exited ({status}):\n{}", log_text());
        }
        assert!(Instant::now() < deadline, "RS485 not open:\n{}", log_text());
        std::thread::sleep(Duration::from_millis(50));
    }

    let out = config(&b, &["list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        log_text()
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("1010 ") && l.contains("16000 mA")),
        "{stdout}"
    );
    assert!(config(&b, &["set", "upper-limit", "21A"]).status.success());
    let out = config(&b, &["get", "upper_current"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "upper_current = 21000 mA"
    );
    let out = config(&b, &["set", "charger_max_current", "5A"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("6000 … 63000"));

    let out = Command::new(BIN)
        .arg("monitor")
        .arg("--device")
        .arg(&b)
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
    }
    drop(daemon);
    let _ = fs::remove_dir_all(&dir);
}
