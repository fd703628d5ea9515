//! `p1lb run` end to end: the real binary with the built-in simulated meter, talked to
//! over Modbus TCP by tokio-modbus's client (and by mbpoll when it is installed).
//! Every daemon is killed when its test ends (a guard with `Drop`).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{
    BIN, Daemon, defaults_1000_1022, have, mbpoll_tcp, mbpoll_values, temp_dir, write_plan,
};
use tokio_modbus::client::Context;
use tokio_modbus::prelude::*;

/// `p1lb run --p1 sim --modbus-tcp 127.0.0.1:<free> --state-dir DIR`, ready to accept
/// connections; killed on drop.
fn start(state_dir: &Path) -> Daemon {
    Daemon::in_dir(state_dir).args(["--p1", "sim"]).start()
}

async fn read(ctx: &mut Context, start: u16, n: u16) -> Result<Vec<u16>, ExceptionCode> {
    tokio::time::timeout(Duration::from_secs(5), ctx.read_holding_registers(start, n))
        .await
        .expect("reply in time")
        .expect("transport")
}

async fn write(ctx: &mut Context, address: u16, value: u16) -> Result<(), ExceptionCode> {
    tokio::time::timeout(
        Duration::from_secs(5),
        ctx.write_single_register(address, value),
    )
    .await
    .expect("reply in time")
    .expect("transport")
}

#[tokio::test]
async fn serves_the_defaults_stages_writes_and_refuses_bad_values() {
    let dir = temp_dir("defaults");
    let d = start(&dir);
    let mut ctx = d.client(10).await;
    let words = read(&mut ctx, 1000, 23).await.expect("read 1000–1022");
    for (address, value) in defaults_1000_1022() {
        assert_eq!(
            words[usize::from(address - 1000)],
            value,
            "register {address}"
        );
    }
    // Write and read back a setting: staged (1003 bit 5), not saved.
    write(&mut ctx, 1016, 7).await.expect("write 1016");
    assert_eq!(read(&mut ctx, 1016, 1).await.unwrap(), [7]);
    assert_eq!(read(&mut ctx, 1003, 1).await.unwrap()[0] & 1 << 5, 1 << 5);
    // Out of range: exception 03, nothing changes.
    assert_eq!(
        write(&mut ctx, 1016, 300).await,
        Err(ExceptionCode::IllegalDataValue)
    );
    assert_eq!(read(&mut ctx, 1016, 1).await.unwrap(), [7]);
    // FC 16 as a whole: one bad value refuses all.
    let r = ctx.write_multiple_registers(1019, &[2, 0]).await.unwrap();
    assert_eq!(r, Err(ExceptionCode::IllegalDataValue));
    assert_eq!(read(&mut ctx, 1019, 1).await.unwrap(), [1]);
    // Read-only register, outside the map.
    assert_eq!(
        write(&mut ctx, 1001, 1).await,
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        read(&mut ctx, 999, 2).await,
        Err(ExceptionCode::IllegalDataAddress)
    );
    // The whole map reads, in two requests.
    assert_eq!(read(&mut ctx, 1000, 100).await.unwrap().len(), 100);
    assert_eq!(read(&mut ctx, 1100, 100).await.unwrap().len(), 100);
    // Another unit id: nobody behind this gateway.
    let mut other = d.client(42).await;
    assert_eq!(
        read(&mut other, 1000, 1).await,
        Err(ExceptionCode::GatewayTargetDevice)
    );
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn telegrams_from_the_simulated_meter_reach_the_balancer() {
    let dir = temp_dir("telegrams");
    let d = start(&dir);
    let mut ctx = d.client(10).await;
    let deadline = Instant::now() + Duration::from_secs(8);
    let status = loop {
        let s = read(&mut ctx, 1100, 22).await.unwrap();
        let valid = u32::from(s[15]) << 16 | u32::from(s[16]);
        if valid >= 2 {
            break s;
        }
        assert!(Instant::now() < deadline, "no telegram:\n{}", d.log_text());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(&status[17..19], [0, 0], "no telegram rejected");
    for v in &status[3..6] {
        assert!((2000..2500).contains(v), "voltage {v} (0.1 V)");
    }
    let head = read(&mut ctx, 1001, 4).await.unwrap();
    assert!(head[0] <= 16000, "1001 = {}", head[0]);
    assert!(head[1] <= 2, "1002 = {} (boot: stepping up)", head[1]);
    assert_eq!(head[2] & 1, 0, "1003 = {:#x}: meter fresh", head[2]);
    assert!(head[3] <= 2, "1004 = {}", head[3]);
    let log = d.log_text();
    assert!(log.contains("first valid telegram"), "{log}");
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_save_rewrites_the_settings_in_the_file_and_a_restart_comes_up_with_them() {
    let dir = temp_dir("save");
    let path = dir.join("p1lb.toml");
    // A hand edit the save must keep.
    {
        let d = start(&dir);
        drop(d);
        let text = fs::read_to_string(&path).expect("state file created");
        let edited = text.replace(
            "upper_wait = 5",
            "# hand-written note about the wait\nupper_wait = 5 # seconds",
        );
        fs::write(&path, edited).unwrap();
    }
    let d = start(&dir);
    let mut ctx = d.client(10).await;
    write(&mut ctx, 1016, 9).await.unwrap();
    write(&mut ctx, 1090, 11).await.unwrap();
    write(&mut ctx, 1091, 1).await.expect("save");
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("# hand-written note about the wait\nupper_wait = 9 # seconds\n"),
        "{text}"
    );
    assert!(text.contains("server_address = 11"), "{text}");
    assert!(text.contains("# 1016: Upper limit wait time, s."), "{text}");
    assert!(text.contains("[modbus_tcp]\n# Modbus TCP server"), "{text}");
    // The new address is in force after the reply: 10 is gone, 11 answers.
    assert_eq!(
        read(&mut ctx, 1016, 1).await,
        Err(ExceptionCode::GatewayTargetDevice)
    );
    let mut ctx = d.client(11).await;
    assert_eq!(read(&mut ctx, 1003, 1).await.unwrap()[0] & 1 << 5, 0);
    // An inconsistent set is refused at save (03) and nothing is written.
    write(&mut ctx, 1018, 23000).await.unwrap();
    assert_eq!(
        write(&mut ctx, 1091, 1).await,
        Err(ExceptionCode::IllegalDataValue)
    );
    assert!(
        fs::read_to_string(&path)
            .unwrap()
            .contains("lower_current = 19000")
    );
    drop(d);

    let d = start(&dir);
    let mut ctx = d.client(11).await;
    assert_eq!(read(&mut ctx, 1016, 1).await.unwrap(), [9]);
    assert_eq!(read(&mut ctx, 1018, 1).await.unwrap(), [19000]);
    assert_eq!(read(&mut ctx, 1090, 1).await.unwrap(), [11]);
    // Restore defaults (1092) saves too.
    write(&mut ctx, 1092, 1).await.unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains("upper_wait = 5 # seconds"), "{text}");
    assert!(text.contains("server_address = 10"), "{text}");
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn read_only_refuses_writes_with_exception_01() {
    let dir = temp_dir("readonly");
    let path = dir.join("ro.toml");
    fs::write(&path, "[modbus_tcp]\nread_only = true\n").unwrap();
    let d = Daemon::in_dir(&dir)
        .config(&path)
        .args(["--p1", "sim"])
        .start();
    let mut ctx = d.client(10).await;
    assert_eq!(
        write(&mut ctx, 1016, 7).await,
        Err(ExceptionCode::IllegalFunction)
    );
    assert_eq!(read(&mut ctx, 1016, 1).await.unwrap(), [5]);
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_config_file_stops_the_daemon_with_the_key_and_range() {
    let dir = temp_dir("bad");
    let cases = [
        (
            "[settings]\nlower_wait = 300\n",
            &["lower_wait", "1 … 255"][..],
        ),
        (
            "[settings]\nlower_current = 23000\n",
            &["lower_current", "upper_current"][..],
        ),
        ("[settings]\nupper_wiat = 3\n", &["upper_wiat"][..]),
        (
            "[settings]\ncharger_count = 2\ncharger1_max_current = 3000\n",
            &["charger1_max_current", "0 or 6000 … 63000"][..],
        ),
        ("[modbus_tcp]\nlisten = \"nowhere\"\n", &["listen"][..]),
    ];
    for (i, (text, words)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad{i}.toml"));
        fs::write(&path, text).unwrap();
        let out = Command::new(BIN)
            .args(["run", "--modbus-tcp", "127.0.0.1:0", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .expect("p1lb runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started on {text:?}: {err}");
        for w in *words {
            assert!(err.contains(w), "{text:?}: no {w:?} in {err}");
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

/// mbpoll (Debian) over Modbus TCP: the defaults, every writable register written and
/// read back, out of range → exception 03, and all of 1000–1199.
#[test]
fn mbpoll_over_tcp() {
    if !have("mbpoll", &["-V"], "apt-get install -y mbpoll") {
        return;
    }
    let dir = temp_dir("mbpoll");
    let d = start(&dir);
    let port = d.addr.port();
    let mbpoll = |start, count, write| mbpoll_tcp(port, start, count, write);
    let (ok, text) = mbpoll(1000, 23, None);
    assert!(ok, "{text}");
    for (address, value) in defaults_1000_1022() {
        let line = format!("[{address}]: \t{value}\n");
        assert!(text.contains(&line), "no {line:?} in {text}");
    }
    for (address, good, bad) in write_plan() {
        let (ok, text) = mbpoll(address, 1, Some(good));
        assert!(ok, "write {address} = {good}: {text}");
        let (ok, text) = mbpoll(address, 1, None);
        assert!(ok, "{text}");
        assert_eq!(mbpoll_values(&text), vec![(address, good)], "{text}");
        if let Some(bad) = bad {
            let (ok, text) = mbpoll(address, 1, Some(bad));
            assert!(!ok, "{address} = {bad} was accepted: {text}");
            assert!(text.to_lowercase().contains("illegal data value"), "{text}");
        }
    }
    let (ok1, t1) = mbpoll(1000, 125, None);
    let (ok2, t2) = mbpoll(1125, 75, None);
    assert!(ok1 && ok2, "{t1}{t2}");
    assert_eq!(mbpoll_values(&t1).len() + mbpoll_values(&t2).len(), 200);
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}

/// The master role with its RS485 port missing (the adapter unplugged): forwarded
/// requests are answered at once — 0x0B, or 06 (busy, retry) when a burst fills the
/// queue before the RS485 task drains it — none waits for the 5 s timeout, and one at
/// a time every request gets 0x0B: the queue is never left full of requests waiting
/// for a port that is not there (nor kept to go on the bus when it comes back).
#[tokio::test]
async fn gateway_without_its_port_answers_at_once() {
    let dir = temp_dir("gateway-noport");
    let missing = dir.join("no-such-adapter");
    let d = Daemon::in_dir(&dir)
        .args(["--p1", "sim", "--rs485-role", "master", "--rs485"])
        .args([&missing])
        .start();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for value in 1..=8u16 {
        let mut ctx = d.client(1).await;
        tasks.push(tokio::spawn(async move {
            (value, write(&mut ctx, 0x4100, value).await)
        }));
    }
    for t in tasks {
        let (value, r) = t.await.expect("joined");
        assert!(
            matches!(
                r,
                Err(ExceptionCode::GatewayTargetDevice | ExceptionCode::ServerDeviceBusy)
            ),
            "write {value}: {r:?}\n{}",
            d.log_text()
        );
    }
    let mut ctx = d.client(1).await;
    for value in 9..=16u16 {
        assert_eq!(
            write(&mut ctx, 0x4100, value).await,
            Err(ExceptionCode::GatewayTargetDevice),
            "write {value}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered after {:?}",
        started.elapsed()
    );
}

/// The newcomer's view (`--rs485 sim`, what the built-in simulation runs): a simulated
/// Terra AC with a car on an in-process RS485 bus, driven in the master role. `p1lb
/// monitor` (the real CLI, over Modbus TCP) shows the loop close: the limit goes up, the
/// charger reports the car charging at it, and the simulated meter's grid currents
/// carry the car's draw on top of the house. The Modbus TCP gateway reaches the
/// simulated charger at unit 1 (mbpoll, when installed, as the README shows it).
#[test]
fn the_simulated_charger_closes_the_loop_and_the_gateway_reaches_it() {
    let dir = temp_dir("sim-loop");
    let d = Daemon::in_dir(&dir)
        .args(["--p1", "sim", "--rs485", "sim"])
        .start();
    let mut monitor = Command::new(BIN)
        .args([
            "monitor",
            "--device",
            &d.device(),
            "--json",
            "--count",
            "45",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("p1lb monitor starts");
    let stdout = monitor.stdout.take().expect("piped");
    let mut seen = Vec::new();
    let mut closed = None;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.expect("monitor's output");
        let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object a line");
        let amps = |key: &str| -> Vec<f64> {
            v[key]
                .as_array()
                .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
                .unwrap_or_default()
        };
        let (charger, grid) = (amps("charger_current_a"), amps("grid_current_a"));
        let sent = v["sent_current_ma"].as_u64().unwrap_or(0);
        seen.push(format!(
            "sent {sent} mA, charger {charger:?} A, grid {grid:?} A"
        ));
        // Charging at what it was sent (within a step), with the meter showing it.
        let charging = charger.len() == 3
            && grid.len() == 3
            && charger
                .iter()
                .all(|&c| c >= 6.0 && c * 1000.0 <= sent as f64 + 100.0)
            && grid.iter().zip(&charger).all(|(g, c)| g >= c);
        if charging {
            closed = Some(line);
            break;
        }
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    assert!(
        closed.is_some(),
        "the car never charged in 45 s:\n{}\n{}",
        seen.join("\n"),
        d.log_text()
    );
    if have("mbpoll", &["-V"], "apt-get install -y mbpoll") {
        // The README's command: the charger's serial number register, through the
        // gateway, answered by the simulated Terra AC.
        let out = Command::new("mbpoll")
            .args(["-m", "tcp", "-0", "-1", "-a", "1", "-r", "16384", "-c", "2"])
            .args(["-p", &d.addr.port().to_string(), "-o", "3", "127.0.0.1"])
            .stdin(Stdio::null())
            .output()
            .expect("mbpoll runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert_eq!(
            mbpoll_values(&text),
            vec![(16384, 0x0122), (16385, 1)],
            "{text}"
        );
    }
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}
