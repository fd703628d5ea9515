//! The real `p1lb run` in the RS485 master role, as the end-to-end bus tests start and
//! watch it (tests/real_time/: solar_daemon.rs, capacity_daemon.rs, shared_bus.rs,
//! headroom_bus.rs): its `p1lb.toml` ([`write_toml`]), its start on a socat pty
//! ([`start_master`]), the wait for its first limit on the bus, reads of its registers
//! over Modbus TCP ([`read_holding`], [`telegram_counts`]); a meter on a P1 pty printing
//! what a real one does ([`P1Meter`]); and [`PtyRig`], one daemon in a closed loop with
//! one Terra AC and its car ([`OneCharger`]) and such a meter, fed a telegram at a time
//! by the test. [`side_by_side`] runs one scenario for two meters at once.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use p1lb_sim::meter::{Flavour, MeterValues, PhaseValues, write_telegram};
use p1lb_sim::time::{DateTime, Stamp};
use tokio::io::AsyncWriteExt;
use tokio_modbus::client::Context;
use tokio_modbus::prelude::Reader;
use tokio_serial::{SerialPortBuilderExt, SerialStream};

use super::terra_bus::{Car, OneCharger, VOLTS, serve_world};
use super::{Daemon, Pty, lock, temp_dir};

/// Writes `DIR/p1lb.toml` and returns its path: no LED (no GPIO here) and `settings`
/// by name, a `name = value` line each, every other setting at its default.
pub fn write_toml(dir: &Path, settings: &[(&str, u32)]) -> PathBuf {
    let mut text = String::from("[led]\nenabled = false\n\n[settings]\n");
    for (name, value) in settings {
        let _ = writeln!(text, "{name} = {value}");
    }
    let file = dir.join("p1lb.toml");
    std::fs::write(&file, text).expect("write p1lb.toml");
    file
}

/// Starts `p1lb run` with its state in `dir` (its `p1lb.toml`), `--p1 P1 --rs485 RS485
/// --rs485-role master`, off the async runtime (the start blocks), and returns once it
/// listens and its RS485 port is open; a failed start fails the test with its log.
pub async fn start_master(dir: &Path, p1: impl AsRef<OsStr>, rs485: &Path) -> Daemon {
    let dir = dir.to_path_buf();
    let p1 = p1.as_ref().to_os_string();
    let rs485 = rs485.to_path_buf();
    tokio::task::spawn_blocking(move || {
        Daemon::in_dir(&dir)
            .args(["--p1".as_ref(), p1.as_os_str()])
            .args(["--rs485".as_ref(), rs485.as_os_str()])
            .args(["--rs485-role", "master"])
            .log_has("RS485: ")
            .start()
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Waits until the daemon has configured its charger (0x4106, 0x4109, then the limit:
/// 0 with no telegram yet), `written()` true once a limit was written: up to 10 s, else
/// fails the test (`who`: the run, in the message) with the daemon's log.
pub async fn first_limit_written(daemon: &Daemon, who: &str, written: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !written() {
        assert!(
            Instant::now() < deadline,
            "{who}: no limit written to the charger:\n{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Holding registers `start`… of `ctx`, answered within 5 s; anything else fails the
/// test.
pub async fn read_holding(ctx: &mut Context, start: u16, count: u16) -> Vec<u16> {
    tokio::time::timeout(
        Duration::from_secs(5),
        ctx.read_holding_registers(start, count),
    )
    .await
    .expect("answered in time")
    .expect("Modbus TCP")
    .expect("read")
}

/// Registers 1115–1118 of the daemon behind `ctx`: telegrams valid and rejected since
/// boot.
pub async fn telegram_counts(ctx: &mut Context) -> (u32, u32) {
    let t = read_holding(ctx, p1lb_core::registers::address::TELEGRAMS_VALID, 4).await;
    let long = |i: usize| (u32::from(t[i]) << 16) | u32::from(t[i + 1]);
    (long(0), long(2))
}

/// The meter's end of a P1 pty, 115200 8N1.
pub fn open_meter_end(path: &Path) -> SerialStream {
    tokio_serial::new(path.to_string_lossy(), 115_200)
        .open_native_async()
        .expect("the meter's end of the P1 pty opens")
}

/// A short name of `f` for folders: `dsmr5`, `emucs`.
pub fn flavour_tag(f: Flavour) -> &'static str {
    match f {
        Flavour::Dsmr5 => "dsmr5",
        Flavour::Emucs => "emucs",
    }
}

/// One phase as a meter prints it at [`VOLTS`]: its net power `w`, W, as import or
/// export (the other 0), and its current's magnitude `current_ma`, mA.
pub fn phase(w: i32, current_ma: i32) -> PhaseValues {
    PhaseValues {
        voltage_dv: (VOLTS * 10.0) as i32,
        current_ma,
        import_w: w.max(0),
        export_w: (-w).max(0),
    }
}

/// A smart meter's telegrams as a real one prints them, a second apart on its own clock
/// (telegram k at start + k s), tariff 2: its energy registers (tariff 2) integrate the
/// net power it prints (W / 3600 Wh a telegram, printed in whole Wh, import and export
/// apart), its `1.4.0` is the quarter's running average of the import (from the
/// telegram at a quarter's start, 0 there), its `1.6.0` a fixed month peak; the gas and
/// tariff 1 registers stand still. A telegram's power holds until the next one.
pub struct P1Meter {
    /// Its protocol.
    pub flavour: Flavour,
    /// Its clock at telegram 0.
    pub start: DateTime,
    /// Energy registers (tariff 2), Wh.
    import_wh: f64,
    export_wh: f64,
    /// Import of the quarter so far, W·s (for 1.4.0).
    quarter_ws: f64,
    /// The month's peak (1.6.0): when, W.
    peak: (Stamp, u32),
    /// The import register printed in each telegram, Wh.
    pub printed_wh: Vec<u64>,
    /// The net power of the last telegram, W (export negative).
    pub net_w: f64,
}

impl P1Meter {
    /// A `flavour` meter whose clock starts at `start`, its month peak `peak_w` W at
    /// `peak_at`; import 4 861 230 Wh, export 3 405 268 Wh on tariff 2.
    pub fn new(flavour: Flavour, start: DateTime, peak_at: DateTime, peak_w: u32) -> P1Meter {
        P1Meter {
            flavour,
            start,
            import_wh: 4_861_230.0,
            export_wh: 3_405_268.0,
            quarter_ws: 0.0,
            peak: (Stamp::of(peak_at), peak_w),
            printed_wh: Vec::new(),
            net_w: 0.0,
        }
    }

    /// Telegram `k` with `phase` on L1–L3.
    pub fn telegram(&mut self, k: u32, phase: [PhaseValues; 3]) -> Vec<u8> {
        let elapsed = k % 900;
        if elapsed == 0 {
            self.quarter_ws = 0.0;
        }
        let total: f64 = phase
            .iter()
            .map(|p| f64::from(p.import_w - p.export_w))
            .sum();
        self.net_w = total;
        let demand = if elapsed == 0 {
            0
        } else {
            (self.quarter_ws / f64::from(elapsed)).round() as u32
        };
        let printed = self.import_wh.floor() as u64;
        self.printed_wh.push(printed);
        let values = MeterValues {
            time: Stamp::of(self.start.plus(k)),
            tariff: 2,
            import_wh: [6_184_667, printed],
            export_wh: [1_708_286, self.export_wh.floor() as u64],
            phases: 3,
            phase,
            gas_l: 3_133_361,
            gas_time: Stamp::of(self.start),
            average_demand_w: demand,
            peak: self.peak,
            history: None,
        };
        let mut out = Vec::with_capacity(1024);
        write_telegram(&mut out, self.flavour, &values);
        let import = total.max(0.0);
        self.quarter_ws += import;
        self.import_wh += import / 3600.0;
        self.export_wh += (-total).max(0.0) / 3600.0;
        out
    }
}

/// One installation in a closed loop: the real daemon in the RS485 master role (its
/// state and `p1lb.toml` in a scratch folder) on a socat pty with one Terra AC and its
/// car ([`OneCharger`], served there), and a [`P1Meter`] on a second pty (`--p1 PTY`)
/// whose telegrams the test makes from the car's current as it is and sends one at a
/// time. The daemon is killed first when it is dropped.
pub struct PtyRig {
    /// The daemon (its log for failure messages).
    pub daemon: Daemon,
    /// The charger and its car, shared with the task serving them.
    pub world: Arc<Mutex<OneCharger>>,
    /// The meter whose telegrams [`PtyRig::telegram`] makes.
    pub meter: P1Meter,
    /// A Modbus TCP client of the daemon's device, unit 10.
    pub ctx: Context,
    /// The daemon's `p1lb.toml`.
    pub toml: PathBuf,
    port: SerialStream,
    _ptys: (Pty, Pty),
}

impl PtyRig {
    /// Starts it all in a fresh folder `PREFIX-<flavour tag>`: the two ptys, the charger
    /// (rated `max_ma`, `car` behind it; its clock starts here) serving, `p1lb.toml`
    /// with `settings`, the daemon, the meter's end of the P1 pty and a client; returns
    /// once the daemon has written its first limit to the charger.
    pub async fn start(
        prefix: &str,
        settings: &[(&str, u32)],
        max_ma: u32,
        car: Car,
        meter: P1Meter,
    ) -> PtyRig {
        let name = meter.flavour.name();
        let dir = temp_dir(&format!("{prefix}-{}", flavour_tag(meter.flavour)));
        let (rs485_dir, p1_dir) = (dir.join("rs485"), dir.join("p1"));
        for d in [&rs485_dir, &p1_dir] {
            std::fs::create_dir_all(d).expect("pty folder");
        }
        let rs485 = Pty::new(&rs485_dir);
        let p1 = Pty::new(&p1_dir);
        let world = Arc::new(Mutex::new(OneCharger::new(max_ma, car)));
        tokio::spawn(serve_world(
            rs485.b.clone(),
            &[OneCharger::UNIT],
            world.clone(),
        ));
        let toml = write_toml(&dir, settings);
        let daemon = start_master(&dir, &p1.a, &rs485.a).await;
        let port = open_meter_end(&p1.b);
        let ctx = daemon.client(10).await;
        first_limit_written(&daemon, name, || !lock(&world).unit.writes.is_empty()).await;
        PtyRig {
            daemon,
            world,
            meter,
            ctx,
            toml,
            port,
            _ptys: (rs485, p1),
        }
    }

    /// The charger and its car, locked.
    pub fn world(&self) -> MutexGuard<'_, OneCharger> {
        lock(&self.world)
    }

    /// The meter's telegram `k`, its phases made by `phases` from the car's current now
    /// (A a phase; the world brought up to now): when it was made (s of the charger's
    /// clock) and its bytes.
    pub fn telegram(
        &mut self,
        k: u32,
        phases: impl FnOnce(f64) -> [PhaseValues; 3],
    ) -> (f64, Vec<u8>) {
        let mut w = lock(&self.world);
        w.advance();
        let t = w.now_s();
        (t, self.meter.telegram(k, phases(w.unit.car.current)))
    }

    /// Writes `bytes` to the meter's end of the P1 pty.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.port
            .write_all(bytes)
            .await
            .expect("write the telegram");
    }

    /// At `at`, the [`PtyRig::telegram`] `k` of that moment, sent: when it was made and
    /// its bytes.
    pub async fn send_at(
        &mut self,
        at: Instant,
        k: u32,
        phases: impl FnOnce(f64) -> [PhaseValues; 3],
    ) -> (f64, Vec<u8>) {
        tokio::time::sleep_until(at.into()).await;
        let (t, bytes) = self.telegram(k, phases);
        self.send(&bytes).await;
        (t, bytes)
    }

    /// The charger's limit (0x4100, mA) and the car's current (A a phase) now.
    pub fn charger_now(&self) -> (u32, f64) {
        let mut w = lock(&self.world);
        w.advance();
        (w.unit.terra.limit_ma, w.unit.car.current)
    }
}

/// What one meter's run showed: its name, its report, how long it took.
pub struct Outcome {
    pub name: &'static str,
    pub text: String,
    pub wall: Duration,
}

/// Runs `runs` side by side on a runtime of 4 worker threads, prints each finished run's
/// report (also when another failed), then fails with the first failure; last, on
/// success, the total time as `test: N s`.
pub fn side_by_side<F>(test: &str, runs: Vec<F>)
where
    F: Future<Output = Outcome> + Send + 'static,
{
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let wall = Instant::now();
            let handles: Vec<_> = runs.into_iter().map(tokio::spawn).collect();
            let mut outcomes = Vec::new();
            let mut failed = None;
            for h in handles {
                match h.await {
                    Ok(o) => outcomes.push(o),
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            for o in &outcomes {
                eprintln!("\n{} ({:.1} s):\n{}", o.name, o.wall.as_secs_f64(), o.text);
            }
            if let Some(e) = failed {
                std::panic::resume_unwind(e.into_panic());
            }
            eprintln!("{test}: {:.1} s", wall.elapsed().as_secs_f64());
        });
}
