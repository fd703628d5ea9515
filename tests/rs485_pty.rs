//! The RS485 port of `p1lb run` end to end on a socat pty pair: the server role read
//! and written by mbpoll, by pymodbus (tests/pymodbus_client.py) and by tokio-modbus's
//! RTU client (the emulated meter); the master role driving `p1lb sim-charger`.
//!
//! Needs `socat` (and `mbpoll`, `pymodbus` for their tests): without them a test
//! skips with a loud message, unless the environment variable `CI` is set, then it
//! fails. Every child process is killed when its test ends (guards with `Drop`).

mod common;

use common::{
    BIN, Daemon, Guard, Pty, have, have_socat, mbpoll_values, plan_arg, temp_dir, write_plan,
};
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use p1lb_core::config::SETTINGS;
use tokio_modbus::client::{Context, rtu};
use tokio_modbus::prelude::*;

const EXAMPLE: &str = include_str!("../config/p1lb.toml");

/// `p1lb run --p1 sim --rs485 PTY --state-dir DIR --modbus-tcp 127.0.0.1:<free> EXTRA`,
/// listening, with its RS485 port open; killed on drop.
fn start(dir: &Path, rs485: &Path, extra: &[&str]) -> Daemon {
    start_p1(dir, "sim", rs485, extra)
}

/// As [`start`] with the P1 source `p1`.
fn start_p1(dir: &Path, p1: &str, rs485: &Path, extra: &[&str]) -> Daemon {
    Daemon::in_dir(dir)
        .args(["--p1", p1, "--rs485"])
        .args([rs485])
        .args(extra)
        .log_has("RS485: ")
        .start()
}

fn defaults(from: u16, to: u16) -> Vec<u16> {
    (from..=to)
        .map(|a| {
            SETTINGS
                .iter()
                .find(|s| s.address == a)
                .map_or(0, |s| s.default)
        })
        .collect()
}

fn mbpoll(pty: &Path, unit: u8, start: u16, count: u16, write: Option<u16>) -> (bool, String) {
    let mut cmd = Command::new("mbpoll");
    cmd.args([
        "-m", "rtu", "-b", "9600", "-P", "none", "-d", "8", "-s", "1",
    ])
    .args(["-a", &unit.to_string(), "-r", &start.to_string()])
    .args(["-0", "-1", "-o", "2"]);
    match write {
        Some(v) => cmd.arg(pty).arg(v.to_string()),
        None => cmd.args(["-c", &count.to_string()]).arg(pty),
    };
    let out = cmd.output().expect("mbpoll runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn server_role_with_mbpoll() {
    if !have_socat() || !have("mbpoll", &["-V"], "apt-get install -y mbpoll") {
        return;
    }
    let dir = temp_dir("mbpoll");
    let pty = Pty::new(&dir);
    let d = start(&dir, &pty.a, &[]);
    let (ok, text) = mbpoll(&pty.b, 10, 1000, 23, None);
    assert!(ok, "mbpoll read failed:\n{text}\n{}", d.log_text());
    let values = mbpoll_values(&text);
    assert_eq!(values.len(), 23, "{text}");
    let settings: Vec<u16> = values[10..].iter().map(|&(_, v)| v).collect();
    assert_eq!(settings, defaults(1010, 1022), "{text}");
    // Every writable register written and read back (staged); out of range: 03.
    for (address, good, bad) in write_plan() {
        let (ok, text) = mbpoll(&pty.b, 10, address, 1, Some(good));
        assert!(ok, "mbpoll write {address} = {good} failed:\n{text}");
        let (ok, text) = mbpoll(&pty.b, 10, address, 1, None);
        assert!(ok, "{text}");
        assert_eq!(mbpoll_values(&text), vec![(address, good)], "{text}");
        if let Some(bad) = bad {
            let (ok, text) = mbpoll(&pty.b, 10, address, 1, Some(bad));
            assert!(!ok, "{address} = {bad} was accepted:\n{text}");
            assert!(text.to_lowercase().contains("illegal data value"), "{text}");
        }
    }
    // All of 1000–1199 (FC 03 reads at most 125 registers: two requests).
    let (ok1, t1) = mbpoll(&pty.b, 10, 1000, 125, None);
    let (ok2, t2) = mbpoll(&pty.b, 10, 1125, 75, None);
    assert!(ok1 && ok2, "{t1}{t2}");
    assert_eq!(mbpoll_values(&t1).len() + mbpoll_values(&t2).len(), 200);
    // Still serving after garbage on the line.
    fs::write(&pty.b, [0x55u8; 300]).expect("garbage written");
    std::thread::sleep(Duration::from_millis(50));
    let (ok, text) = mbpoll(&pty.b, 10, 1010, 1, None);
    assert!(ok, "not serving after garbage:\n{text}");
}

#[test]
fn server_role_with_pymodbus() {
    if !have_socat() {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pymodbus_client.py");
    let probe = Command::new("python3")
        .args(["-c", "import pymodbus, serial"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        let msg = "pymodbus (with pyserial) is not installed (pip install pymodbus pyserial): \
                   SKIPPING this test";
        assert!(
            std::env::var_os("CI").is_none(),
            "{msg} — not allowed under CI"
        );
        eprintln!("\n!!!!!!!! {msg} !!!!!!!!\n");
        return;
    }
    let dir = temp_dir("pymodbus");
    let pty = Pty::new(&dir);
    let d = start(&dir, &pty.a, &[]);
    let expected: Vec<String> = defaults(1010, 1022).iter().map(|v| v.to_string()).collect();
    // Over RTU on the pty, then over Modbus TCP.
    let tcp = d.addr.to_string();
    for (kind, target) in [("rtu", pty.b.to_string_lossy().into_owned()), ("tcp", tcp)] {
        let out = Command::new("python3")
            .arg(&script)
            .args([kind, &target, "10", &expected.join(","), &plan_arg()])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "pymodbus {kind} failed:\n{}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            d.log_text()
        );
    }
}

/// FC 03 of `n` registers from `start`, `None` when no answer comes `within` (or the
/// transport fails).
async fn read_within(
    ctx: &mut Context,
    start: u16,
    n: u16,
    within: Duration,
) -> Option<Result<Vec<u16>, ExceptionCode>> {
    match tokio::time::timeout(within, ctx.read_holding_registers(start, n)).await {
        Ok(Ok(r)) => Some(r),
        _ => None,
    }
}

/// [`read_within`] 2 s: over RTU on a pty, where silence means no answer.
async fn rtu_read(
    ctx: &mut Context,
    start: u16,
    n: u16,
) -> Option<Result<Vec<u16>, ExceptionCode>> {
    read_within(ctx, start, n, Duration::from_secs(2)).await
}

#[test]
fn emulated_meter_shows_the_p1_values() {
    if !have_socat() {
        return;
    }
    let dir = temp_dir("meter");
    let text = EXAMPLE.replace("meter_emulation_address = 0", "meter_emulation_address = 1");
    assert_ne!(text, EXAMPLE, "the example has meter_emulation_address = 0");
    fs::write(dir.join("p1lb.toml"), text).expect("config");
    let pty = Pty::new(&dir);
    let d = start(&dir, &pty.a, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let port =
            tokio_serial::SerialStream::open(&tokio_serial::new(pty.b.to_string_lossy(), 9600))
                .expect("pty b opens");
        let mut meter = rtu::attach_slave(port, Slave(1));
        let mut tcp = d.client(10).await;
        let deadline = Instant::now() + Duration::from_secs(12);
        let mut last = String::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "the meter never matched the map: {last}\n{}",
                d.log_text()
            );
            let before = tcp
                .read_holding_registers(1100, 6)
                .await
                .expect("tcp")
                .expect("read");
            // One value block per request, as the charger does (the gaps between
            // them are outside the map: exception 02).
            let v = rtu_read(&mut meter, 0x5B00, 6).await;
            let a = rtu_read(&mut meter, 0x5B0C, 6).await;
            let after = tcp
                .read_holding_registers(1100, 6)
                .await
                .expect("tcp")
                .expect("read");
            let (Some(Ok(v)), Some(Ok(a))) = (&v, &a) else {
                // No telegram yet: the meter is silent.
                last = format!("meter: {v:?} {a:?}");
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            };
            let volts = [v[1], v[3], v[5]];
            let amps = [a[1], a[3], a[5]];
            let matches = |map: &[u16]| {
                let v = [map[3], map[4], map[5]];
                let a = [0, 1, 2].map(|i| (map[i] as i16).unsigned_abs());
                v == volts && a == amps
            };
            if volts.iter().all(|&v| v > 2000) && (matches(&before) || matches(&after)) {
                break;
            }
            last = format!("meter V {volts:?} A {amps:?}, map {before:?} / {after:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Energies and per-phase powers come from the telegram too (not in the map).
        let energy = rtu_read(&mut meter, 0x5000, 4).await;
        let Some(Ok(e)) = energy else {
            panic!("energy: {energy:?}");
        };
        let wh = e.iter().fold(0u64, |acc, &w| (acc << 16) | u64::from(w));
        assert!(wh > 0, "import energy from the telegram");
        let power = rtu_read(&mut meter, 0x5B16, 6).await;
        assert!(
            matches!(&power, Some(Ok(p)) if p.iter().any(|&w| w != 0)),
            "{power:?}"
        );
        // Outside the map: exception 02.
        let r = rtu_read(&mut meter, 0x6000, 1).await;
        assert_eq!(r, Some(Err(ExceptionCode::IllegalDataAddress)));
        // The register map still answers at 10 on the same line.
        meter.set_slave(Slave(10));
        let r = rtu_read(&mut meter, 1036, 1).await;
        assert_eq!(r, Some(Ok(vec![1])));
        // A save over RTU persists into the TOML file, as over TCP.
        for (reg, value) in [(1013, 3), (1091, 1)] {
            let r = tokio::time::timeout(
                Duration::from_secs(3),
                meter.write_single_register(reg, value),
            )
            .await;
            assert!(matches!(r, Ok(Ok(Ok(())))), "write {reg} = {value}: {r:?}");
        }
        let saved = fs::read_to_string(dir.join("p1lb.toml")).expect("config");
        assert!(saved.contains("alarm_wait = 3"), "{saved}");
    });
}

#[test]
fn master_role_drives_the_sim_charger() {
    if !have_socat() {
        return;
    }
    let dir = temp_dir("master");
    let pty = Pty::new(&dir);
    let mut charger = Command::new(BIN)
        .args(["sim-charger", "--serial"])
        .arg(&pty.b)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sim-charger starts");
    let stdout = charger.stdout.take().expect("stdout");
    let _charger = Guard(charger);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let d = start(&dir, &pty.a, &["--rs485-role", "master"]);
    let mut lines = Vec::new();
    let mut limits = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(14);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(v) = line
                .strip_prefix("write 0x4100 = ")
                .and_then(|v| v.strip_suffix(" mA"))
            {
                limits.push(v.parse::<u32>().expect("a number"));
            }
            lines.push(line);
            // 0, then the minimum and at least two steps up.
            if limits.iter().filter(|&&v| v >= 8000).count() > 0 {
                break;
            }
        }
    }
    let all = lines.join("\n");
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("write 0x4106 = ")),
        "{all}\n{}",
        d.log_text()
    );
    assert!(
        lines.get(1).is_some_and(|l| l == "write 0x4109 = 0 A"),
        "{all}"
    );
    assert!(
        limits.len() >= 3,
        "too few limit writes:\n{all}\n{}",
        d.log_text()
    );
    // Never between 0 and the minimum; the stepped ramp: 0, then ≥ 6000 rising by
    // 1000 mA per step.
    assert!(limits.iter().all(|&v| v == 0 || v >= 6000), "{all}");
    let ramp: Vec<u32> = limits.iter().copied().skip_while(|&v| v == 0).collect();
    assert!(ramp.len() >= 2, "{all}");
    assert!(
        ramp.windows(2).all(|w| w[1] == w[0] || w[1] == w[0] + 1000),
        "not a 1000 mA ramp:\n{all}"
    );
    // 1110–1112 show the sim charger's currents (it draws its limit up to 16 A).
    runtime().block_on(charger_currents_shown(&d, Duration::from_secs(5)));
}

/// Waits until 1110–1112 show the sim charger's currents (6–16 A, the same on every
/// phase) with no charger fault in 1003 (bits 2, 3); fails after `within`.
async fn charger_currents_shown(d: &Daemon, within: Duration) {
    let mut tcp = d.client(10).await;
    let deadline = Instant::now() + within;
    loop {
        let r = tcp
            .read_holding_registers(1110, 3)
            .await
            .expect("tcp")
            .expect("read");
        let flags = tcp
            .read_holding_registers(1003, 1)
            .await
            .expect("tcp")
            .expect("read")[0];
        if (600..=1600).contains(&r[0]) && r[0] == r[1] && r[1] == r[2] && flags & 0b1100 == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "1110-1112 = {r:?}, 1003 = {flags:#b}\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A charger whose replies arrive in two chunks 12 ms apart (a USB-serial adapter's
/// latency timer; 3.5 characters at 9600 baud are 4 ms): the master still reads its
/// status (1110–1112 filled, no fault flag) because it waits `READ_LATENCY_US` more.
#[test]
fn master_role_reads_replies_that_arrive_in_chunks() {
    if !have_socat() {
        return;
    }
    let dir = temp_dir("master-chunks");
    let pty = Pty::new(&dir);
    let _charger = Guard(
        Command::new(BIN)
            .args(["sim-charger", "--chunk-gap-ms", "12", "--serial"])
            .arg(&pty.b)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sim-charger starts"),
    );
    let d = start(&dir, &pty.a, &["--rs485-role", "master"]);
    runtime().block_on(charger_currents_shown(&d, Duration::from_secs(12)));
}

/// `p1lb sim-charger --serial PTY`, killed on drop, and its stdout lines.
fn sim_charger(pty: &Path) -> (Guard, mpsc::Receiver<String>) {
    let mut charger = Command::new(BIN)
        .args(["sim-charger", "--serial"])
        .arg(pty)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sim-charger starts");
    let stdout = charger.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Guard(charger), rx)
}

/// The limit of a sim-charger `write 0x4100 = N mA` line.
fn limit_of(line: &str) -> Option<u32> {
    line.strip_prefix("write 0x4100 = ")?
        .strip_suffix(" mA")?
        .parse()
        .ok()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// [`read_within`] 8 s: over TCP, where a forwarded request may wait for the bus.
async fn tcp_read(
    ctx: &mut Context,
    start: u16,
    n: u16,
) -> Option<Result<Vec<u16>, ExceptionCode>> {
    read_within(ctx, start, n, Duration::from_secs(8)).await
}

#[test]
fn master_role_gateway_forwards_modbus_tcp_to_the_bus() {
    if !have_socat() {
        return;
    }
    let dir = temp_dir("gateway");
    let pty = Pty::new(&dir);
    let (charger, rx) = sim_charger(&pty.b);
    let d = start(&dir, &pty.a, &["--rs485-role", "master"]);
    // Wait for the first limit write.
    let mut limits = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while limits.is_empty() {
        assert!(
            Instant::now() < deadline,
            "no limit written:\n{}",
            d.log_text()
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            limits.extend(limit_of(&line));
        }
    }
    let rt = runtime();
    rt.block_on(async {
        let mut ctx = d.client(1).await;
        let r = tcp_read(&mut ctx, 0x4000, 0x25).await;
        let Some(Ok(block)) = r else {
            panic!("forwarded read: {r:?}\n{}", d.log_text());
        };
        assert_eq!(block.len(), 0x25);
        // The sim charger's identity words and its read-back of the limit.
        assert_eq!(&block[..4], &[0x0122, 0x0001, 0x2625, 0x0001]);
        limits.extend(rx.try_iter().filter_map(|l| limit_of(&l)));
        let readback = (u32::from(block[0x22]) << 16) | u32::from(block[0x23]);
        assert!(
            limits.contains(&readback),
            "0x4022 = {readback}, limits written {limits:?}"
        );
        // The device itself still answers at 10 on the same connection's server.
        let mut own = d.client(10).await;
        assert!(matches!(tcp_read(&mut own, 1000, 1).await, Some(Ok(_))));
        // Nobody on the bus: exception 0x0B.
        drop(charger);
        let started = Instant::now();
        let r = tcp_read(&mut ctx, 0x4000, 0x25).await;
        assert_eq!(
            r,
            Some(Err(ExceptionCode::GatewayTargetDevice)),
            "{}",
            d.log_text()
        );
        assert!(started.elapsed() < Duration::from_secs(6));
        assert!(matches!(tcp_read(&mut own, 1000, 1).await, Some(Ok(_))));
    });
}

/// A P1 source over TCP that the test controls: every connection gets the seed
/// telegram once a second until `stop` is set; then silence (the connection stays).
struct P1Feed {
    addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// When the last telegram was written.
    last: std::sync::Arc<std::sync::Mutex<Option<Instant>>>,
}

impl P1Feed {
    fn start() -> P1Feed {
        let telegram: &'static [u8] = include_bytes!("telegrams/nl-esmr50-sagemcom-t210d-seed.txt");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let last = std::sync::Arc::new(std::sync::Mutex::new(None));
        let (stop2, last2) = (stop.clone(), last.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (stop, last) = (stop2.clone(), last2.clone());
                std::thread::spawn(move || {
                    use std::io::Write as _;
                    loop {
                        if stop.load(Ordering::SeqCst) {
                            // Silent, but the connection stays open a while.
                            std::thread::sleep(Duration::from_secs(60));
                            return;
                        }
                        if stream.write_all(telegram).is_err() {
                            return;
                        }
                        *last.lock().unwrap() = Some(Instant::now());
                        std::thread::sleep(Duration::from_secs(1));
                    }
                });
            }
        });
        P1Feed { addr, stop, last }
    }

    fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// Stops writing; returns when the last telegram went out.
    fn stop(&self) -> Instant {
        self.stop.store(true, Ordering::SeqCst);
        self.last.lock().unwrap().expect("a telegram was written")
    }
}

/// The example configuration with a 3 s fallback time and a 6 A fallback limit (and
/// `extra` replacements).
fn fallback_config(dir: &Path, extra: &[(&str, &str)]) {
    let mut text = EXAMPLE
        .replace("fallback_time = 30", "fallback_time = 3")
        .replace("fallback_current = 0", "fallback_current = 6000");
    for (from, to) in extra {
        assert!(text.contains(from), "the example has {from}");
        text = text.replace(from, to);
    }
    assert!(text.contains("fallback_time = 3\n") && text.contains("fallback_current = 6000\n"));
    fs::write(dir.join("p1lb.toml"), text).expect("config");
}

#[test]
fn master_role_falls_back_when_the_p1_telegrams_stop() {
    if !have_socat() {
        return;
    }
    let dir = temp_dir("fallback-master");
    fallback_config(&dir, &[]);
    let feed = P1Feed::start();
    let pty = Pty::new(&dir);
    let (_charger, rx) = sim_charger(&pty.b);
    let d = start_p1(&dir, &feed.url(), &pty.a, &["--rs485-role", "master"]);
    // Telegrams flow: the limit ramps above the fallback limit.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut lines = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no ramp above 6 A:\n{}\n{}",
            lines.join("\n"),
            d.log_text()
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let up = limit_of(&line).is_some_and(|v| v >= 7000);
            lines.push(line);
            if up {
                break;
            }
        }
    }
    let last = feed.stop();
    // Within the fallback time + 2 ticks: the fallback limit.
    let deadline = last + Duration::from_secs(5) + Duration::from_millis(300);
    loop {
        assert!(
            Instant::now() < deadline,
            "no fallback write:\n{}\n{}",
            lines.join("\n"),
            d.log_text()
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let fallback = limit_of(&line) == Some(6000);
            lines.push(line);
            if fallback {
                break;
            }
        }
    }
    let after = last.elapsed();
    assert!(
        after >= Duration::from_millis(2500),
        "fallback too early ({after:?}):\n{}",
        lines.join("\n")
    );
    runtime().block_on(async {
        let mut tcp = d.client(10).await;
        let r = tcp_read(&mut tcp, 1002, 1).await;
        assert_eq!(r, Some(Ok(vec![4])), "{}", d.log_text());
    });
}

#[test]
fn server_role_meter_goes_silent_when_the_p1_telegrams_stop() {
    if !have_socat() {
        return;
    }
    let dir = temp_dir("fallback-server");
    fallback_config(
        &dir,
        &[("meter_emulation_address = 0", "meter_emulation_address = 1")],
    );
    let feed = P1Feed::start();
    let pty = Pty::new(&dir);
    let d = start_p1(&dir, &feed.url(), &pty.a, &[]);
    runtime().block_on(async {
        let port =
            tokio_serial::SerialStream::open(&tokio_serial::new(pty.b.to_string_lossy(), 9600))
                .expect("pty b opens");
        let mut rtu = rtu::attach_slave(port, Slave(1));
        // While telegrams flow the meter answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(Ok(v)) = rtu_read(&mut rtu, 0x5B00, 2).await {
                assert_eq!(v.len(), 2);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the meter never answered:\n{}",
                d.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let last = feed.stop();
        let mut tcp = d.client(10).await;
        loop {
            let r = tcp_read(&mut tcp, 1002, 1).await;
            if r == Some(Ok(vec![4])) {
                break;
            }
            assert!(
                last.elapsed() < Duration::from_millis(5300),
                "no fallback: 1002 = {r:?}\n{}",
                d.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // In fallback the meter is silent; the register map still answers at 10.
        assert_eq!(rtu_read(&mut rtu, 0x5B00, 2).await, None);
        rtu.set_slave(Slave(10));
        assert!(matches!(rtu_read(&mut rtu, 1022, 1).await, Some(Ok(v)) if v == vec![3]));
    });
}

#[test]
fn kernel_rs485_mode_refused_on_a_pty_is_a_warning_and_the_port_serves() {
    if !have_socat() {
        return;
    }
    let dir = temp_dir("kernel-rs485");
    let text = EXAMPLE.replace("kernel_rs485 = false", "kernel_rs485 = true");
    assert_ne!(text, EXAMPLE, "the example has kernel_rs485 = false");
    fs::write(dir.join("p1lb.toml"), text).expect("config");
    let pty = Pty::new(&dir);
    let d = start(&dir, &pty.a, &[]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.log_text().contains("kernel RS485 mode refused") {
        assert!(Instant::now() < deadline, "no warning:\n{}", d.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    runtime().block_on(async {
        let port =
            tokio_serial::SerialStream::open(&tokio_serial::new(pty.b.to_string_lossy(), 9600))
                .expect("pty b opens");
        let mut rtu = rtu::attach_slave(port, Slave(10));
        let r = rtu_read(&mut rtu, 1010, 1).await;
        assert_eq!(r, Some(Ok(defaults(1010, 1010))), "{}", d.log_text());
        let mut tcp = d.client(10).await;
        assert!(matches!(tcp_read(&mut tcp, 1000, 1).await, Some(Ok(_))));
    });
    assert!(
        !d.log_text().contains("failed"),
        "the port failed:\n{}",
        d.log_text()
    );
}

/// A P1 source over TCP that drops the connection: the daemon reconnects (with
/// backoff) and the telegrams flow again.
#[test]
fn p1_over_tcp_reconnects_after_the_source_drops() {
    let telegram: &'static [u8] = include_bytes!("telegrams/nl-esmr50-sagemcom-t210d-seed.txt");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let accepted2 = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let n = accepted2.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                use std::io::Write as _;
                // The first connection sends two telegrams and hangs up.
                let count = if n == 0 { 2 } else { 1000 };
                for _ in 0..count {
                    if stream.write_all(telegram).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            });
        }
    });
    let dir = temp_dir("p1-reconnect");
    let d = start_p1(&dir, &format!("tcp://{addr}"), Path::new("sim"), &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tcp = d.client(10).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = tcp
                .read_holding_registers(1115, 2)
                .await
                .expect("tcp")
                .expect("read");
            let valid = (u32::from(r[0]) << 16) | u32::from(r[1]);
            if valid >= 5 && accepted.load(Ordering::SeqCst) >= 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "valid {valid}, connections {}\n{}",
                accepted.load(Ordering::SeqCst),
                d.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// The gateway when the bus cannot keep up: forwarded writes to a unit nobody answers
/// (three tries each, ~2.3 s), six at once. One is on the bus, four wait (the sixth is
/// answered 06 at once); a request still queued after 5 s is answered 0x0B and never
/// goes on the bus — a write must not land after its client was told it failed — while
/// one already on the bus gets its exchange's result (0x0B here).
#[test]
fn master_role_gateway_never_sends_a_request_its_client_gave_up_on() {
    if !have_socat() {
        return;
    }
    let dir = temp_dir("gateway-stale");
    let pty = Pty::new(&dir);
    // Everything the daemon puts on the bus, read at the other end of the line.
    let bus = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    {
        let bus = bus.clone();
        let mut line = fs::File::open(&pty.b).expect("open the pty's other end");
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = std::io::Read::read(&mut line, &mut buf) {
                if n == 0 {
                    break;
                }
                bus.lock().expect("bus").extend_from_slice(&buf[..n]);
            }
        });
    }
    let d = start(&dir, &pty.a, &["--rs485-role", "master"]);
    let rt = runtime();
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for value in 1..=6u16 {
            let mut ctx = d.client(5).await;
            tasks.push(tokio::spawn(async move {
                let r = tokio::time::timeout(
                    Duration::from_secs(15),
                    ctx.write_single_register(0x0001, value),
                )
                .await;
                (value, r.map(|r| r.map_err(|e| e.to_string())))
            }));
            // In this order on the queue.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("joined"));
        }
        out
    });
    // Every client got an answer: 0x0B (nobody answered, or it gave up) or 06 (full).
    for (value, r) in &results {
        let Ok(Ok(r)) = r else {
            panic!("write {value}: {r:?}\n{}", d.log_text());
        };
        assert!(
            matches!(
                r,
                Err(ExceptionCode::GatewayTargetDevice | ExceptionCode::ServerDeviceBusy)
            ),
            "write {value}: {r:?}"
        );
    }
    // Long enough for any queued request to have gone on the bus (3 × 2.3 s).
    std::thread::sleep(Duration::from_secs(8));
    let seen = bus.lock().expect("bus").clone();
    let on_bus: Vec<u16> = (1..=6u16)
        .filter(|&v| {
            let mut f = vec![5, 0x06, 0x00, 0x01];
            f.extend(v.to_be_bytes());
            let crc = p1lb_core::modbus::crc16_modbus(&f);
            f.extend(crc.to_le_bytes());
            seen.windows(f.len()).any(|w| w == f.as_slice())
        })
        .collect();
    // The first write went on the bus at once (or after a driver exchange), the next
    // ones taken while their clients still waited, each after its exchange and one of
    // the driver's (2.3 s each: nobody answers the charger's address either); the fourth
    // and fifth were abandoned by their turn. A client whose request was taken waits
    // for its result (up to two exchanges and a second past its 5 s). Without the check all five went on the bus, one after
    // another, long after their clients had been told they failed.
    assert!(on_bus.contains(&1), "{on_bus:?}\n{}", d.log_text());
    assert!(
        !on_bus.contains(&4) && !on_bus.contains(&5),
        "writes sent after their clients gave up: {on_bus:?}"
    );
}

/// A save that changes the RS485 line (1031 baud / 100) over Modbus TCP reopens the
/// port with it, in both roles (a pty carries bytes at any rate, so the log line that
/// names the rate the port was opened at is what shows it).
#[test]
fn a_saved_baud_rate_reopens_the_port_in_both_roles() {
    if !have_socat() {
        return;
    }
    for role in ["server", "master"] {
        let dir = temp_dir(&format!("reopen-{role}"));
        let pty = Pty::new(&dir);
        let d = start(&dir, &pty.a, &["--rs485-role", role]);
        assert!(
            d.log_text().contains("open at 9600 baud"),
            "{}",
            d.log_text()
        );
        let rt = runtime();
        rt.block_on(async {
            let mut ctx = d.client(10).await;
            let w = ctx.write_single_register(1031, 192).await;
            assert!(matches!(w, Ok(Ok(()))), "{w:?}");
            let s = ctx.write_single_register(1091, 1).await;
            assert!(matches!(s, Ok(Ok(()))), "{s:?}");
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while !d.log_text().contains("open at 19200 baud") {
            assert!(
                Instant::now() < deadline,
                "{role}: not reopened at 19200 baud\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
