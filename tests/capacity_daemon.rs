//! The capacity tariff (issue 17) in the real `p1lb run`: the quarter-hour account runs
//! on the meter's timestamps, so a quarter's 900 telegrams go through a pty in seconds,
//! while the balancer's own waits stay on the device clock.
//!
//! The installation: the daemon in the RS485 master role on a socat pty with one Terra
//! AC (unit 1, rated 16 A, this test's model: 10 ms turnaround, its currents its own
//! measurement of the car once a second) and a three-phase car behind it that follows
//! the applied limit 2 s late, ramps at 4 A/s up and 20 A/s down and draws nothing
//! below 6 A. The P1 feed is a second socat pty (`--p1 PTY`, 115200 8N1). Settings by
//! name in the TOML file: `capacity_mode = 1`, `capacity_target = 8000`,
//! `capacity_margin = 100`, `control_mode = 1` (headroom); every other at its default
//! (upper limit 22 A); no LED.
//!
//! The meter's clock advances one second a telegram from 10:00:00; its import energy
//! registers integrate the power it prints (W / 3600 Wh a telegram, printed in whole Wh
//! as a meter does), and a Belgian e-MUCS meter's 1.4.0 is the quarter's running
//! average:
//! 1. fast (a telegram every [`FAST_MS`] of real time), 10:00:00 → 10:09:59 with the
//!    house at 7.5 kW over three phases (10.9 A a phase, well under the fuse): the fuse
//!    would let the car charge, but the quarter's budget (7.9 kW × 900 s) leaves about
//!    1.1 kW for the chargers over the 301 s left, below a three-phase car's minimum
//!    (6 A × 3 × 230 V ≈ 4.1 kW): 1122 ≈ 1123 ≈ 7500 W, 1125 = 301 (the meter's clock,
//!    not the 3 s of real time), 1126 < 4140 W and the charger held at 0 (its 0x4100,
//!    1001 and 1130);
//! 2. fast, 10:10:00 → 10:15:04 at 500 W (a look at 10:14:59 on the way): the quarter
//!    closes at 10:15:00 and 1124 is its average, (7.5 kW × 600 s + 0.5 kW × 300 s) /
//!    900 s ≈ 5167 W (5164 W by the whole Wh the meter prints) — above the e-MUCS
//!    meter's own 1.6.0 (3 kW, set earlier this month), so the account's own quarter
//!    wins; 1125 = 896; 1122 the new quarter's 4 s (500 W by the e-MUCS 1.4.0, or the
//!    whole Wh of the registers over 4 s when larger: 900 W a Wh). The budget allows
//!    the car from 10:10:00 on, 300 of the meter's seconds, but the balancer's waits
//!    are on the device clock: its first raise comes at least half a second of real
//!    time later (about 1.9 s), and the car, 2 s behind its limit, draws nothing in
//!    the fast parts;
//! 3. real time, a telegram a second for [`PART3_S`] s, the meter's power the house's
//!    500 W plus what the car draws: 1126 ≈ 7.9 kW − 0.5 kW (within 400 W once the car
//!    is steady; while it ramps, the charger's read-back lags the meter and the house's
//!    estimate may be too high for a few telegrams, never so far that the car would
//!    pause); the charger is raised to a usable limit (≥ 6 A) but never above 1126 /
//!    (3 × 230 V) plus the cap's rounding and its 500 mA dead band; 1001, 1130 and the
//!    charger's 0x4100 agree; the car charges.
//!
//! The same runs with a Dutch DSMR 5 meter (no 1.4.0, no 1.6.0), side by side with its
//! own daemon: it works the same from its energy registers (1124 from its own account).
//! The harness checks itself: every telegram valid for the daemon (1115–1118, none
//! dropped or rejected at the fast pace), the car drew nothing during the fast parts
//! (their meter power is the house's alone), the charger configured and nothing odd on
//! the bus.
//!
//! Needs socat: without it the test skips loudly, unless CI is set, then it fails.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::terra_bus::{Car, TerraUnit, serve_units};
use common::{Daemon, Pty, have_socat, temp_dir};
use p1lb_core::balancer::CAPACITY_DEADBAND_MA;
use p1lb_core::modbus::{MAX_ADU, Request, exception_reply};
use p1lb_core::registers::address;
use p1lb_sim::meter::{Flavour, MeterValues, PhaseValues, write_telegram};
use p1lb_sim::time::{DateTime, Stamp};
use tokio::io::AsyncWriteExt;
use tokio_modbus::client::Context;
use tokio_modbus::prelude::Reader;
use tokio_serial::{SerialPortBuilderExt, SerialStream};

/// Real time between two telegrams in the fast parts, ms: part 2's 305 telegrams take
/// about 1.5 s, less than the car's delay, so the car cannot draw before part 3.
const FAST_MS: u64 = 5;
/// Part 1: telegrams 0 … 599 (10:00:00 → 10:09:59).
const PART1_END: u32 = 600;
/// Part 2: telegrams 600 … 904 (10:10:00 → 10:15:04).
const PART2_END: u32 = 905;
/// Part 3: this many telegrams, one a second of real time.
const PART3_S: u32 = 25;
/// The house in part 1, W.
const HOUSE1_W: f64 = 7500.0;
/// The house from part 2 on, W.
const HOUSE2_W: f64 = 500.0;
/// Settings 1073 and 1074, W.
const TARGET_W: u32 = 8000;
const MARGIN_W: u32 = 100;
/// The meter's voltage on every phase, V.
const VOLTS: f64 = 230.0;
/// The charger's minimum (1009's default), A: a three-phase car's minimum power is
/// 3 × 230 V × 6 A.
const MIN_A: f64 = 6.0;
/// The e-MUCS meter's own month peak (1.6.0), W: smaller than the quarter the test
/// makes.
const METER_PEAK_W: u32 = 3000;

const BAUD: u32 = 9600;
const TURNAROUND_MS: u64 = 10;
const UNIT: u8 = 1;
/// The Terra AC's rating, mA.
const TERRA_MAX_MA: u32 = 16_000;
const STEP_S: f64 = 0.01;
/// From a new limit to the car following it, s.
const CAR_DELAY_S: f64 = 2.0;
const CAR_UP_A_S: f64 = 4.0;
const CAR_DOWN_A_S: f64 = 20.0;

/// The charger, its car and what the daemon did on the bus; time in s from `t0`.
#[derive(Debug)]
struct World {
    t0: Instant,
    step: u64,
    /// The charger (its 0x4100 writes, status reads, setup) and its three-phase car.
    unit: TerraUnit,
    /// The charger's last measurement of the car, A a phase.
    measured_a: f64,
    /// The car's largest current so far, A.
    car_max_a: f64,
}

impl World {
    fn new() -> World {
        let car = Car::new([true; 3], CAR_DELAY_S, CAR_UP_A_S, CAR_DOWN_A_S);
        World {
            t0: Instant::now(),
            step: 0,
            unit: TerraUnit::new(TERRA_MAX_MA, car),
            measured_a: 0.0,
            car_max_a: 0.0,
        }
    }

    fn now_s(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// The physics up to now, in 10 ms steps; the charger measures the car at k + 0.4 s.
    fn advance(&mut self) {
        let to = (self.now_s() / STEP_S) as u64;
        while self.step < to {
            if self.step % 100 == 40 {
                self.measured_a = self.unit.car.current;
            }
            self.unit.car.step(self.step as f64 * STEP_S, STEP_S);
            self.car_max_a = self.car_max_a.max(self.unit.car.current);
            self.step += 1;
        }
    }

    fn handle(&mut self, request: &Request<'_>, out: &mut [u8; MAX_ADU]) -> usize {
        self.advance();
        let t = self.now_s();
        let ma = (self.measured_a * 1000.0).round() as u32;
        let phases = if ma > 50 { [ma; 3] } else { [0; 3] };
        let energy_wh = self.unit.car.energy_wh;
        self.unit.answer(UNIT, t, phases, energy_wh, request, out)
    }

    /// The largest limit written in `[from, to)` s, mA (0 when none).
    fn max_write(&self, from: f64, to: f64) -> u32 {
        self.unit
            .writes
            .iter()
            .filter(|&&(t, _)| t >= from && t < to)
            .map(|&(_, ma)| ma)
            .max()
            .unwrap_or(0)
    }
}

fn lock(w: &Mutex<World>) -> MutexGuard<'_, World> {
    w.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The Terra AC on its end of the RS485 pty, until the port closes.
async fn charger(path: PathBuf, world: Arc<Mutex<World>>) {
    let turnaround = Duration::from_millis(TURNAROUND_MS);
    serve_units(&path, BAUD, turnaround, |unit, function, pdu, out| {
        if unit != UNIT {
            return None;
        }
        Some(match Request::parse(pdu) {
            Ok(request) => lock(&world).handle(&request, out),
            Err(e) => exception_reply(UNIT, function, e.exception(), out),
        })
    })
    .await;
}

/// The meter: its clock, energy registers and demand objects.
struct Meter {
    flavour: Flavour,
    start: DateTime,
    /// Import energy, Wh (printed in whole Wh).
    import_wh: f64,
    /// Energy of the quarter so far, W·s (for 1.4.0).
    quarter_ws: f64,
    /// The import register printed in each telegram, Wh.
    printed_wh: Vec<u64>,
    /// The power of the last telegram, W.
    power_w: f64,
}

impl Meter {
    fn new(flavour: Flavour, start: DateTime) -> Meter {
        Meter {
            flavour,
            start,
            import_wh: 4_861_230.0,
            quarter_ws: 0.0,
            printed_wh: Vec::new(),
            power_w: 0.0,
        }
    }

    /// Telegram `k` (the meter's clock at start + k s) with the house at `house_w` and
    /// the car at `car_a` a phase; the power holds until the next telegram.
    fn telegram(&mut self, k: u32, house_w: f64, car_a: f64) -> Vec<u8> {
        let elapsed = k % 900;
        if elapsed == 0 {
            self.quarter_ws = 0.0;
        }
        let amps = house_w / 3.0 / VOLTS + car_a;
        let w = (VOLTS * amps).round() as i32;
        let phase = PhaseValues {
            voltage_dv: (VOLTS * 10.0) as i32,
            current_ma: (amps * 1000.0).round() as i32,
            import_w: w,
            export_w: 0,
        };
        let total = f64::from(3 * w);
        self.power_w = total;
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
            export_wh: [1_708_286, 3_405_268],
            phases: 3,
            phase: [phase; 3],
            gas_l: 3_133_361,
            gas_time: Stamp::of(self.start),
            average_demand_w: demand,
            peak: (Stamp::of(DateTime::new(2025, 1, 7, 18, 45)), METER_PEAK_W),
            history: None,
        };
        let mut out = Vec::with_capacity(1024);
        write_telegram(&mut out, self.flavour, &values);
        self.quarter_ws += total;
        self.import_wh += total / 3600.0;
        out
    }

    /// The quarter's average by the printed registers, telegrams `from` … `to`, W.
    fn quarter_w(&self, from: u32, to: u32) -> f64 {
        let wh = self.printed_wh[to as usize] - self.printed_wh[from as usize];
        wh as f64 * 3600.0 / 900.0
    }
}

/// Registers 1122–1126, 1001, 1130 and 1115–1118 as one read.
#[derive(Debug, Clone, Copy)]
struct Regs {
    average_w: u16,
    projected_w: u16,
    month_peak_w: u16,
    seconds_left: u16,
    allowance_w: u16,
    sent_ma: u16,
    limit_1130: u16,
    /// 1131: charger 1's current on grid L1 as the daemon read it back, 0.01 A.
    readback_ca: u16,
    valid: u32,
    rejected: u32,
}

impl std::fmt::Display for Regs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "1122 {:5} W  1123 {:5} W  1124 {:5} W  1125 {:3} s  1126 {:5} W  \
             1001 {:5} mA  1130 {:5} mA  1131 {:5.2} A  (telegrams {} valid, {} rejected)",
            self.average_w,
            self.projected_w,
            self.month_peak_w,
            self.seconds_left,
            self.allowance_w,
            self.sent_ma,
            self.limit_1130,
            f64::from(self.readback_ca) / 100.0,
            self.valid,
            self.rejected
        )
    }
}

async fn read(ctx: &mut Context, start: u16, count: u16) -> Vec<u16> {
    tokio::time::timeout(
        Duration::from_secs(5),
        ctx.read_holding_registers(start, count),
    )
    .await
    .expect("answered in time")
    .expect("Modbus TCP")
    .expect("read")
}

async fn regs(ctx: &mut Context) -> Regs {
    let q = read(ctx, address::QUARTER_AVERAGE_POWER, 5).await;
    let sent = read(ctx, address::SENT_CURRENT, 1).await;
    let c = read(ctx, address::CHARGER1_LIMIT, 2).await;
    let t = read(ctx, address::TELEGRAMS_VALID, 4).await;
    let long = |i: usize| (u32::from(t[i]) << 16) | u32::from(t[i + 1]);
    Regs {
        average_w: q[0],
        projected_w: q[1],
        month_peak_w: q[2],
        seconds_left: q[3],
        allowance_w: q[4],
        sent_ma: sent[0],
        limit_1130: c[0],
        readback_ca: c[1],
        valid: long(0),
        rejected: long(2),
    }
}

/// The registers once the daemon has taken all `sent` telegrams (within 5 s).
async fn settled(ctx: &mut Context, sent: u32, d: &Daemon) -> Regs {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = regs(ctx).await;
        if r.valid + r.rejected >= sent {
            // The control tick and the bus write that follow the last telegram.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return regs(ctx).await;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon took {} of {sent} telegrams ({} rejected):\n{}",
            r.valid,
            r.rejected,
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The highest current a power allows on three phases at the meter's voltage, mA, as
/// the balancer rounds it (down to 100 mA).
fn cap_ma(w: u16) -> u32 {
    (u32::from(w) * 10_000 / (3 * 2300)) / 100 * 100
}

/// What one meter's run showed.
struct Outcome {
    name: &'static str,
    text: String,
    wall: Duration,
}

/// One meter's run: its daemon, charger, car and feed, the three parts.
async fn run_meter(flavour: Flavour, start: DateTime) -> Outcome {
    let name = flavour.name();
    let wall = Instant::now();
    let dir = temp_dir(&format!("capacity-daemon-{}", flavour_tag(flavour)));
    let (rs485_dir, p1_dir) = (dir.join("rs485"), dir.join("p1"));
    for d in [&rs485_dir, &p1_dir] {
        std::fs::create_dir_all(d).expect("pty folder");
    }
    let rs485 = Pty::new(&rs485_dir);
    let p1 = Pty::new(&p1_dir);
    let world = Arc::new(Mutex::new(World::new()));
    tokio::spawn(charger(rs485.b.clone(), world.clone()));
    std::fs::write(
        dir.join("p1lb.toml"),
        format!(
            "[led]\nenabled = false\n\n[settings]\ncapacity_mode = 1\n\
             capacity_target = {TARGET_W}\ncapacity_margin = {MARGIN_W}\ncontrol_mode = 1\n"
        ),
    )
    .expect("write p1lb.toml");
    let (daemon_dir, rs485_path, p1_path) = (dir.clone(), rs485.a.clone(), p1.a.clone());
    let daemon = tokio::task::spawn_blocking(move || {
        Daemon::in_dir(&daemon_dir)
            .args(["--p1".as_ref(), p1_path.as_os_str()])
            .args(["--rs485".as_ref(), rs485_path.as_os_str()])
            .args(["--rs485-role", "master"])
            .log_has("RS485: ")
            .start()
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let mut port = open_meter_end(&p1.b);
    let mut ctx = daemon.client(10).await;
    let mut meter = Meter::new(flavour, start);
    let mut text = String::new();

    // The daemon configures the charger (0x4106, 0x4109, the limit: 0, no telegram yet).
    let deadline = Instant::now() + Duration::from_secs(10);
    while lock(&world).unit.writes.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{name}: no limit written to the charger:\n{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Part 1, fast: 10:00:00 → 10:09:59 at 7.5 kW.
    let p1_from = lock(&world).now_s();
    feed_fast(&mut port, &mut meter, &world, 0..PART1_END, HOUSE1_W).await;
    let p1_fed = lock(&world).now_s() - p1_from;
    let r1 = settled(&mut ctx, PART1_END, &daemon).await;
    let (limit1, max1) = {
        let w = lock(&world);
        (w.unit.terra.limit_ma, w.max_write(p1_from, w.now_s()))
    };
    let _ = writeln!(
        text,
        "{name} part 1 (10:00:00 → 10:09:59 at 7.5 kW, {p1_from:.2} s → {:.2} s of real \
         time):\n  10:09:59 {r1}\n  \
         charger 0x4100 {limit1} mA (largest written in part 1: {max1} mA)",
        p1_from + p1_fed
    );
    let log = || daemon.log_text();
    assert_eq!(
        (r1.valid, r1.rejected),
        (PART1_END, 0),
        "{name}: telegrams at {FAST_MS} ms\n{text}\n{}",
        log()
    );
    assert!(
        (7400..=7600).contains(&r1.average_w),
        "{name}: 1122\n{text}"
    );
    assert!(
        (7400..=7600).contains(&r1.projected_w),
        "{name}: 1123\n{text}"
    );
    assert!(
        (299..=301).contains(&r1.seconds_left),
        "{name}: 1125 follows the meter's clock\n{text}"
    );
    let min_w = (3.0 * VOLTS * MIN_A) as u16;
    assert!(
        r1.allowance_w < min_w && r1.allowance_w > 500,
        "{name}: 1126 below a three-phase car's minimum ({min_w} W)\n{text}"
    );
    assert!(
        limit1 == 0 && max1 == 0 && r1.sent_ma == 0 && r1.limit_1130 == 0,
        "{name}: the charger held at 0 by the quarter's budget\n{text}"
    );

    // Part 2, fast: 10:10:00 → 10:15:04 at 500 W; the quarter closes at 10:15:00.
    // A look at 10:14:59, the old quarter's last second, on the way.
    let p2_from = lock(&world).now_s();
    feed_fast(&mut port, &mut meter, &world, PART1_END..900, HOUSE2_W).await;
    let r2a = settled(&mut ctx, 900, &daemon).await;
    feed_fast(&mut port, &mut meter, &world, 900..PART2_END, HOUSE2_W).await;
    let p2_fed = lock(&world).now_s() - p2_from;
    let r2 = settled(&mut ctx, PART2_END, &daemon).await;
    let (limit2, max2, car2) = {
        let w = lock(&world);
        (
            w.unit.terra.limit_ma,
            w.max_write(p2_from, w.now_s()),
            w.car_max_a,
        )
    };
    let closed_w = meter.quarter_w(0, 900);
    let elapsed2 = (PART2_END - 1) % 900;
    let own_w = (meter.printed_wh[PART2_END as usize - 1] - meter.printed_wh[900]) as f64 * 3600.0
        / f64::from(elapsed2);
    let _ = writeln!(
        text,
        "{name} part 2 (10:10:00 → 10:15:04 at 0.5 kW, {p2_from:.2} s → {:.2} s):\n  \
         10:14:59 {r2a}\n  10:15:04 {r2}\n  \
         charger 0x4100 {limit2} mA (largest written in part 2: {max2} mA); the closed \
         quarter by the printed registers {closed_w:.0} W; the new quarter's {elapsed2} s by \
         the printed registers {own_w:.0} W",
        p2_from + p2_fed
    );
    assert_eq!(
        (r2.valid, r2.rejected),
        (PART2_END, 0),
        "{name}: telegrams at {FAST_MS} ms\n{text}\n{}",
        log()
    );
    assert!(
        car2 == 0.0,
        "{name}: the car drew {car2:.1} A during the fast parts (their meter power is \
         the house's alone)\n{text}"
    );
    assert!(
        (closed_w - 5166.7).abs() < 10.0 && (f64::from(r2.month_peak_w) - closed_w).abs() <= 5.0,
        "{name}: 1124 is the closed quarter's average\n{text}"
    );
    assert_eq!(
        u32::from(r2.seconds_left),
        900 - elapsed2,
        "{name}: 1125\n{text}"
    );
    // 1122 after 4 s of the quarter: the e-MUCS meter's 1.4.0 gives 500 W; the energy
    // registers alone (DSMR) count whole Wh, 900 W a Wh over 4 s.
    let want = match flavour {
        Flavour::Emucs => own_w.max(HOUSE2_W),
        Flavour::Dsmr5 => own_w,
    };
    assert!(
        (f64::from(r2.average_w) - want).abs() <= 2.0,
        "{name}: 1122 (wanted {want:.0} W)\n{text}"
    );

    // Part 3, real time: a telegram a second, the house's 500 W and the car.
    let mut samples = Vec::new();
    let p3_from = Instant::now();
    let t3 = lock(&world).now_s();
    for i in 0..PART3_S {
        let k = PART2_END + i;
        tokio::time::sleep_until((p3_from + Duration::from_secs(u64::from(i))).into()).await;
        let bytes = {
            let mut w = lock(&world);
            w.advance();
            meter.telegram(k, HOUSE2_W, w.unit.car.current)
        };
        port.write_all(&bytes).await.expect("write the telegram");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let r = regs(&mut ctx).await;
        let (limit, car) = {
            let mut w = lock(&world);
            w.advance();
            (w.unit.terra.limit_ma, w.unit.car.current)
        };
        let _ = writeln!(
            text,
            "  {name} {}  meter {:4.0} W  {r}  0x4100 {limit:5} mA  car {car:4.1} A",
            clock(start.plus(k)),
            meter.power_w
        );
        samples.push((k, r, limit, car));
    }
    let r3 = settled(&mut ctx, PART2_END + PART3_S, &daemon).await;
    let first_usable = lock(&world)
        .unit
        .writes
        .iter()
        .find(|&&(_, ma)| ma >= 6000)
        .map(|&(t, _)| t);
    let after = first_usable.map_or(f64::NAN, |t| t - p2_from);
    let _ = writeln!(
        text,
        "{name}: first usable limit written {after:.2} s of real time after the 10:10:00 \
         telegram (from which the budget allowed it; 10:10:00 → 10:15:04 took \
         {p2_fed:.2} s)"
    );
    // The budget allowed the car from 10:10:00 on (1126 far above its minimum at
    // 10:14:59), 300 of the meter's seconds, but the balancer's waits are on the
    // device clock: no raise within the first half second of real time.
    assert!(
        r2a.allowance_w > 3 * min_w && after >= 0.5,
        "{name}: the first raise {after:.2} s after the budget allowed it\n{text}"
    );
    let (car3, energy3, writes3, setup, unexpected, reads) = {
        let mut w = lock(&world);
        w.advance();
        let from = t3;
        let writes: Vec<(f64, u32)> = w
            .unit
            .writes
            .iter()
            .copied()
            .filter(|&(t, _)| t >= from)
            .collect();
        (
            w.unit.car.current,
            w.unit.car.energy_wh,
            writes,
            w.unit.setup.clone(),
            w.unit.unexpected.clone(),
            w.unit.reads.len(),
        )
    };
    let _ = writeln!(
        text,
        "{name} part 3 (from {t3:.2} s) end: {r3}\n  car {car3:.1} A, {energy3:.1} Wh; limits written in \
         part 3 (s, mA): {writes3:?}\n  setup {setup:?}; {reads} status reads; \
         unexpected {unexpected:?}; {:.1} s",
        wall.elapsed().as_secs_f64()
    );
    assert!(
        unexpected.is_empty() && setup.len() == 2,
        "{name}: the bus\n{text}"
    );
    assert_eq!(r3.rejected, 0, "{name}\n{text}");
    // 1126 ≈ 7.9 kW − 0.5 kW: within 400 W of it once the car has been steady for a
    // while, and never below the car's minimum (the charge is not paused). While the
    // car ramps up, the charger's read-back lags the meter by up to 3 s (measured once
    // a second, polled every 2 s): the house's estimate, the meter less the read-back,
    // is too high for up to 4–5 telegrams, more than the 7-telegram median hides, and
    // 1126 dips (by 550 W in one run; to ~4.4–4.6 kW at the worst alignments, still
    // above the minimum here; on a lower target the same dip pauses the car: core test
    // `a_starting_car_is_not_paused_by_its_own_lagging_read_back`, ignored).
    let aim = f64::from(TARGET_W - MARGIN_W) - HOUSE2_W;
    for (i, (k, r, limit, _)) in samples.iter().enumerate() {
        let w = f64::from(r.allowance_w);
        assert!(
            w >= f64::from(min_w) && w <= aim + 400.0,
            "{name}: 1126 at {} (≈ {aim:.0} W wanted, never below the car's minimum \
             {min_w} W)\n{text}",
            clock(start.plus(*k))
        );
        assert!(
            i < samples.len() - 10 || (w - aim).abs() <= 400.0,
            "{name}: 1126 at {} with the car steady (≈ {aim:.0} W wanted)\n{text}",
            clock(start.plus(*k))
        );
        assert!(
            *limit <= cap_ma(r.allowance_w) + CAPACITY_DEADBAND_MA,
            "{name}: the charger's {limit} mA above what 1126 allows at {}\n{text}",
            clock(start.plus(*k))
        );
        assert!(
            u32::from(r.sent_ma) == *limit && u32::from(r.limit_1130) == *limit,
            "{name}: 1001, 1130 and the charger's 0x4100 differ at {}\n{text}",
            clock(start.plus(*k))
        );
    }
    let most = samples
        .iter()
        .map(|(_, r, ..)| cap_ma(r.allowance_w))
        .max()
        .unwrap_or(0);
    assert!(
        writes3
            .iter()
            .all(|&(_, ma)| ma <= most + CAPACITY_DEADBAND_MA),
        "{name}: a limit written in part 3 above what 1126 allowed ({most} mA)\n{text}"
    );
    let from = samples
        .iter()
        .position(|&(_, _, limit, _)| limit >= 6000)
        .unwrap_or(samples.len());
    assert!(
        samples[from..]
            .iter()
            .all(|&(_, _, limit, _)| limit >= 6000),
        "{name}: the charge paused after it started\n{text}"
    );
    assert!(
        samples.iter().any(|&(_, _, limit, _)| limit >= 6000),
        "{name}: no usable limit in part 3\n{text}"
    );
    assert!(
        car3 >= MIN_A && energy3 > 0.0,
        "{name}: the car charges\n{text}"
    );
    drop(daemon);
    drop((rs485, p1));
    Outcome {
        name,
        text,
        wall: wall.elapsed(),
    }
}

fn flavour_tag(f: Flavour) -> &'static str {
    match f {
        Flavour::Dsmr5 => "dsmr5",
        Flavour::Emucs => "emucs",
    }
}

/// `hh:mm:ss` of the meter's clock.
fn clock(t: DateTime) -> String {
    let s = t.second_of_day();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The meter's end of the P1 pty.
fn open_meter_end(path: &Path) -> SerialStream {
    tokio_serial::new(path.to_string_lossy(), 115_200)
        .open_native_async()
        .expect("the meter's end of the P1 pty opens")
}

/// Telegrams `ks` every [`FAST_MS`] of real time, the house at `house_w` and the car
/// as it is.
async fn feed_fast(
    port: &mut SerialStream,
    meter: &mut Meter,
    world: &Mutex<World>,
    ks: std::ops::Range<u32>,
    house_w: f64,
) {
    let from = Instant::now();
    let first = ks.start;
    for k in ks {
        let at = from + Duration::from_millis(FAST_MS * u64::from(k - first));
        tokio::time::sleep_until(at.into()).await;
        let bytes = {
            let mut w = lock(world);
            w.advance();
            meter.telegram(k, house_w, w.unit.car.current)
        };
        port.write_all(&bytes).await.expect("write the telegram");
    }
}

#[test]
fn the_quarter_hour_account_runs_on_the_meters_clock_in_the_daemon() {
    if !have_socat() {
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let wall = Instant::now();
            // Winter (W) for the Belgian meter, summer (S) for the Dutch one.
            let emucs = tokio::spawn(run_meter(Flavour::Emucs, DateTime::new(2025, 1, 15, 10, 0)));
            let dsmr = tokio::spawn(run_meter(Flavour::Dsmr5, DateTime::new(2025, 6, 12, 10, 0)));
            let mut outcomes = Vec::new();
            for h in [emucs, dsmr] {
                match h.await {
                    Ok(o) => outcomes.push(o),
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            }
            for o in &outcomes {
                eprintln!("\n{} ({:.1} s):\n{}", o.name, o.wall.as_secs_f64(), o.text);
            }
            eprintln!("capacity_daemon: {:.1} s", wall.elapsed().as_secs_f64());
        });
}
