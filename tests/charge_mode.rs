//! The charge mode's write path end to end (register 1080, issue 18): through the real
//! `p1lb run` and a real Modbus client (Debian's mbpoll), over Modbus TCP and over
//! Modbus RTU (the RS485 server role on a socat pty).
//!
//! - A write of 1080 applies at once and is saved without 1091: when the write's reply
//!   arrives the register reads the new mode, `p1lb.toml` already has
//!   `charge_mode = N`, and 1003 bit 5 (unsaved changes) stays clear.
//! - It applies at the next tick: a charge under way paused (3) is sent 0 (1001) within
//!   a tick or two, in state 0 (the LED's normal frame).
//! - A restart of the daemon keeps it.
//! - A setting staged before (or in the same FC 16 request as) the 1080 write stays
//!   staged: not in the file, 1003 bit 5 set, the register reading the staged value
//!   until a restart drops it.
//! - A refused value (1080 = 4, or an FC 16 request with one bad value) answers
//!   exception 03 and changes nothing: not the register, not the file.
//!
//! Needs mbpoll (and socat for the RTU test): without them a test skips loudly, unless
//! `CI` is set, then it fails. Every daemon is killed when its test ends.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, Pty, have, have_socat, mbpoll_values, temp_dir};

/// How mbpoll reaches the daemon: Modbus TCP on a port, or Modbus RTU on a pty.
#[derive(Clone, Copy)]
enum Link<'a> {
    Tcp(u16),
    Rtu(&'a Path),
}

/// mbpoll, unit 10, holding registers from `start` (0-based addresses): reads `count`
/// registers when `write` is empty, else writes `write` (FC 06 for one value, FC 16 for
/// several). Whether it exited 0, and its output.
fn mbpoll(link: Link, start: u16, count: u16, write: &[u16]) -> (bool, String) {
    let mut cmd = Command::new("mbpoll");
    match link {
        Link::Tcp(port) => cmd.args(["-m", "tcp", "-p", &port.to_string()]),
        Link::Rtu(_) => cmd.args([
            "-m", "rtu", "-b", "9600", "-P", "none", "-d", "8", "-s", "1",
        ]),
    };
    cmd.args(["-a", "10", "-t", "4", "-0", "-1", "-o", "2"])
        .args(["-r", &start.to_string()]);
    if write.is_empty() {
        cmd.args(["-c", &count.to_string()]);
    }
    match link {
        Link::Tcp(_) => cmd.arg("127.0.0.1"),
        Link::Rtu(pty) => cmd.arg(pty),
    };
    cmd.args(write.iter().map(u16::to_string));
    let out = common::output_within(&mut cmd, Duration::from_secs(30));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// One register's value, read with mbpoll.
fn read(link: Link, address: u16) -> u16 {
    let (ok, text) = mbpoll(link, address, 1, &[]);
    assert!(ok, "read {address}: {text}");
    match mbpoll_values(&text).as_slice() {
        [(a, v)] if *a == address => *v,
        other => panic!("read {address}: {other:?} in {text}"),
    }
}

/// 1003 bit 5: staged changes not saved yet.
fn unsaved(link: Link) -> bool {
    read(link, 1003) & 1 << 5 != 0
}

/// A write that must be accepted.
fn write(link: Link, address: u16, values: &[u16]) {
    let (ok, text) = mbpoll(link, address, 0, values);
    assert!(ok, "write {address} = {values:?}: {text}");
}

/// A write that must be refused with exception 03.
fn refused(link: Link, address: u16, values: &[u16]) {
    let (ok, text) = mbpoll(link, address, 0, values);
    assert!(!ok, "write {address} = {values:?} was accepted: {text}");
    assert!(
        text.to_lowercase().contains("illegal data value"),
        "write {address} = {values:?}: not exception 03: {text}"
    );
}

/// The `[settings]` value `name = N` in the TOML file (`None`: no such line).
fn saved(file: &Path, name: &str) -> Option<u16> {
    let text = fs::read_to_string(file).ok()?;
    let doc: toml::Table = text.parse().ok()?;
    doc.get("settings")?
        .get(name)?
        .as_integer()?
        .try_into()
        .ok()
}

fn file_text(file: &Path) -> String {
    fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The whole sequence on one link: `start` starts (or restarts) the daemon on the same
/// state folder, `link` reaches the one it returned.
fn the_charge_mode_applies_and_persists_at_once(
    dir: &Path,
    start: &dyn Fn() -> Daemon,
    link: &dyn Fn(&Daemon) -> Link<'static>,
) {
    let toml = dir.join("p1lb.toml");
    let d = start();
    let l = link(&d);
    assert_eq!(read(l, 1080), 0, "fast by default");
    assert!(!unsaved(l), "nothing staged at start");

    // Applied and saved by the write itself: by the time the reply is here.
    write(l, 1080, &[2]);
    assert_eq!(saved(&toml, "charge_mode"), Some(2), "{}", file_text(&toml));
    assert!(
        file_text(&toml)
            .lines()
            .any(|line| line == "charge_mode = 2"),
        "{}",
        file_text(&toml)
    );
    assert_eq!(read(l, 1080), 2);
    assert!(!unsaved(l), "1003 bit 5 clear: 1080 needs no save");
    assert_eq!(
        saved(&toml, "upper_current"),
        Some(22000),
        "the rest as it was"
    );

    // Refused values change nothing, in the map or in the file.
    let before = file_text(&toml);
    refused(l, 1080, &[4]);
    refused(l, 1080, &[65535]);
    // FC 16: a good mode with a bad start delay (3601 s) is refused whole.
    refused(l, 1080, &[3, 0, 3601]);
    assert_eq!(read(l, 1080), 2);
    assert_eq!(read(l, 1082), 60);
    assert!(!unsaved(l));
    assert_eq!(file_text(&toml), before, "the file untouched");

    // A setting staged before the mode changes stays staged: out of the file.
    write(l, 1015, &[21000]);
    assert!(unsaved(l));
    write(l, 1080, &[3]);
    assert_eq!(saved(&toml, "charge_mode"), Some(3), "{}", file_text(&toml));
    assert_eq!(saved(&toml, "upper_current"), Some(22000), "not saved");
    assert_eq!(read(l, 1015), 21000, "still staged");
    assert_eq!(read(l, 1080), 3);
    assert!(unsaved(l), "1003 bit 5: upper_current still staged");
    // The same in one FC 16 request: the mode is saved, the start surplus staged.
    write(l, 1080, &[1, 4200]);
    assert_eq!(saved(&toml, "charge_mode"), Some(1), "{}", file_text(&toml));
    assert_eq!(saved(&toml, "solar_start_surplus"), Some(0), "not saved");
    assert_eq!(read(l, 1081), 4200, "staged");
    assert!(unsaved(l));
    // Writing the mode it already has leaves the file as it is.
    let before = file_text(&toml);
    write(l, 1080, &[1]);
    assert_eq!(file_text(&toml), before);
    assert!(unsaved(l));

    // A restart keeps the mode and drops what was only staged.
    drop(d);
    let d = start();
    let l = link(&d);
    assert_eq!(read(l, 1080), 1, "the mode after a restart");
    assert_eq!(read(l, 1015), 22000, "the staged upper limit is gone");
    assert_eq!(read(l, 1081), 0, "the staged start surplus is gone");
    assert!(!unsaved(l), "nothing staged after a restart");

    // A save (1091) after a mode change saves the staged settings and keeps the mode.
    write(l, 1083, &[240]);
    write(l, 1080, &[2]);
    assert_eq!(saved(&toml, "solar_stop_delay"), Some(180), "not saved yet");
    write(l, 1091, &[1]);
    assert!(!unsaved(l));
    assert_eq!(saved(&toml, "solar_stop_delay"), Some(240));
    assert_eq!(saved(&toml, "charge_mode"), Some(2));
    // Restore defaults (1092): fast again, in the file too.
    write(l, 1092, &[1]);
    assert_eq!(read(l, 1080), 0);
    assert_eq!(saved(&toml, "charge_mode"), Some(0));
    drop(d);
}

#[test]
fn charge_mode_over_modbus_tcp_applies_and_persists_at_once() {
    if !have("mbpoll", &["-V"], "apt-get install -y mbpoll") {
        return;
    }
    let dir = temp_dir("charge-mode-tcp");
    let start = || {
        Daemon::in_dir(&dir)
            .args(["--p1", "sim", "--rs485", "sim"])
            .start()
    };
    the_charge_mode_applies_and_persists_at_once(&dir, &start, &|d| Link::Tcp(d.addr.port()));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn charge_mode_over_modbus_rtu_applies_and_persists_at_once() {
    if !have_socat() || !have("mbpoll", &["-V"], "apt-get install -y mbpoll") {
        return;
    }
    let dir = temp_dir("charge-mode-rtu");
    let pty = Pty::new(&dir);
    // The pty's far end for mbpoll, for as long as the test runs.
    let far: &'static Path = Box::leak(pty.b.clone().into_boxed_path());
    let start = || {
        Daemon::in_dir(&dir)
            .args(["--p1", "sim", "--rs485"])
            .args([&pty.a])
            .log_has("RS485: ")
            .start()
    };
    the_charge_mode_applies_and_persists_at_once(&dir, &start, &|_| Link::Rtu(far));
    drop(pty);
    let _ = fs::remove_dir_all(&dir);
}

/// A charge mode whose save fails (the file cannot be replaced: a folder stands where
/// the temporary file goes) answers exception 04, as a failed 1091 does: the file keeps
/// the old mode, the new one is left staged (1003 bit 5) and the next save takes it.
#[test]
fn a_charge_mode_whose_save_fails_answers_04_and_stays_staged() {
    if !have("mbpoll", &["-V"], "apt-get install -y mbpoll") {
        return;
    }
    let dir = temp_dir("charge-mode-fail");
    let toml = dir.join("p1lb.toml");
    let d = Daemon::in_dir(&dir).args(["--p1", "sim"]).start();
    let l = Link::Tcp(d.addr.port());
    write(l, 1080, &[1]);
    assert_eq!(saved(&toml, "charge_mode"), Some(1));
    let before = file_text(&toml);

    let blocker = dir.join(".p1lb.toml.tmp");
    fs::create_dir(&blocker).expect("a folder in the temporary file's place");
    let (ok, text) = mbpoll(l, 1080, 0, &[2]);
    assert!(!ok, "1080 = 2 accepted without its save: {text}");
    assert!(
        text.to_lowercase().contains("failure"),
        "not exception 04: {text}\n{}",
        d.log_text()
    );
    assert_eq!(file_text(&toml), before, "the file keeps the old mode");
    assert_eq!(read(l, 1080), 2, "the new mode reads back, staged");
    assert!(unsaved(l), "1003 bit 5: the mode is staged");

    fs::remove_dir(&blocker).expect("the folder removed");
    write(l, 1091, &[1]);
    assert_eq!(saved(&toml, "charge_mode"), Some(2));
    assert!(!unsaved(l));
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}

/// Paused applies at once: a charge under way (the built-in simulation's car on the
/// simulated Terra AC) is sent 0 within 2 s of the write's reply, with the balancer in
/// state 0 (the LED's normal frame), and no save was needed.
#[test]
fn paused_stops_a_charge_under_way_at_the_next_tick() {
    if !have("mbpoll", &["-V"], "apt-get install -y mbpoll") {
        return;
    }
    let dir = temp_dir("charge-mode-paused");
    let d = Daemon::in_dir(&dir)
        .args(["--p1", "sim", "--rs485", "sim"])
        .start();
    let l = Link::Tcp(d.addr.port());
    let wait = |what: &str, secs: u64, ok: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !ok() {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {secs} s\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // The limit steps up from 0 after boot: charging once it reaches the minimum.
    wait("charging at the minimum or more", 30, &|| {
        read(l, 1001) >= 6000
    });
    write(l, 1080, &[3]);
    let paused = Instant::now();
    wait("1001 = 0 after 1080 = 3", 2, &|| read(l, 1001) == 0);
    eprintln!("1080 = 3 → 1001 = 0 after {:?}", paused.elapsed());
    wait("state 0 while paused", 3, &|| read(l, 1002) == 0);
    assert!(!unsaved(l));
    assert_eq!(saved(&dir.join("p1lb.toml"), "charge_mode"), Some(3));
    // It stays paused.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(read(l, 1001), 0, "still paused");
    }
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}
