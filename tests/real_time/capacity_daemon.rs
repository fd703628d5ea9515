//! The capacity tariff (issue 17) in the real `p1lb run`: the quarter-hour account runs
//! on the meter's timestamps, so a quarter's 900 telegrams go through a pty in seconds,
//! while the balancer's own waits stay on the device clock.
//!
//! The installation: the daemon in the RS485 master role on a socat pty with one Terra
//! AC (unit 1, rated 16 A, the shared bus model: 10 ms turnaround, its currents its own
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

use crate::common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::have_socat;
use common::master_rig::{
    Outcome, P1Meter, PtyRig, phase, read_holding, side_by_side, telegram_counts,
};
use common::terra_bus::{Car, VOLTS};
use p1lb_core::balancer::ALLOWANCE_DEADBAND_MA;
use p1lb_core::registers::address;
use p1lb_sim::meter::{Flavour, PhaseValues};
use p1lb_sim::time::DateTime;
use tokio_modbus::client::Context;

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
/// The charger's minimum (1009's default), A: a three-phase car's minimum power is
/// 3 × 230 V × 6 A.
const MIN_A: f64 = 6.0;
/// The e-MUCS meter's own month peak (1.6.0), W: smaller than the quarter the test
/// makes.
const METER_PEAK_W: u32 = 3000;

/// The Terra AC's rating, mA.
const TERRA_MAX_MA: u32 = 16_000;
/// From a new limit to the car following it, s.
const CAR_DELAY_S: f64 = 2.0;
const CAR_UP_A_S: f64 = 4.0;
const CAR_DOWN_A_S: f64 = 20.0;

/// The grid on each phase with the house at `house_w` (balanced) and the car at `car_a`
/// a phase: import only.
fn phases(house_w: f64, car_a: f64) -> [PhaseValues; 3] {
    let amps = house_w / 3.0 / VOLTS + car_a;
    let w = (VOLTS * amps).round() as i32;
    [phase(w, (amps * 1000.0).round() as i32); 3]
}

/// The quarter's average by the registers `meter` printed, telegrams `from` … `to`, W.
fn quarter_w(meter: &P1Meter, from: u32, to: u32) -> f64 {
    let wh = meter.printed_wh[to as usize] - meter.printed_wh[from as usize];
    wh as f64 * 3600.0 / 900.0
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

async fn regs(ctx: &mut Context) -> Regs {
    let q = read_holding(ctx, address::QUARTER_AVERAGE_POWER, 5).await;
    let sent = read_holding(ctx, address::SENT_CURRENT, 1).await;
    let c = read_holding(ctx, address::CHARGER1_LIMIT, 2).await;
    let (valid, rejected) = telegram_counts(ctx).await;
    Regs {
        average_w: q[0],
        projected_w: q[1],
        month_peak_w: q[2],
        seconds_left: q[3],
        allowance_w: q[4],
        sent_ma: sent[0],
        limit_1130: c[0],
        readback_ca: c[1],
        valid,
        rejected,
    }
}

/// The registers once the daemon has taken all `sent` telegrams (within 5 s).
async fn settled(rig: &mut PtyRig, sent: u32) -> Regs {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = regs(&mut rig.ctx).await;
        if r.valid + r.rejected >= sent {
            // The control tick and the bus write that follow the last telegram.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return regs(&mut rig.ctx).await;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon took {} of {sent} telegrams ({} rejected):\n{}",
            r.valid,
            r.rejected,
            rig.daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The highest current a power allows on three phases at the meter's voltage, mA, as
/// the balancer rounds it (down to 100 mA).
fn cap_ma(w: u16) -> u32 {
    (u32::from(w) * 10_000 / (3 * 2300)) / 100 * 100
}

/// One meter's run: its daemon, charger, car and feed, the three parts.
async fn run_meter(flavour: Flavour, start: DateTime) -> Outcome {
    let name = flavour.name();
    let wall = Instant::now();
    let settings = [
        ("capacity_mode", 1),
        ("capacity_target", TARGET_W),
        ("capacity_margin", MARGIN_W),
        ("control_mode", 1),
    ];
    let car = Car::new([true; 3], CAR_DELAY_S, CAR_UP_A_S, CAR_DOWN_A_S);
    let peak_at = DateTime::new(2025, 1, 7, 18, 45);
    let meter = P1Meter::new(flavour, start, peak_at, METER_PEAK_W);
    // The daemon configures the charger (0x4106, 0x4109, the limit: 0, no telegram yet).
    let mut rig = PtyRig::start("capacity-daemon", &settings, TERRA_MAX_MA, car, meter).await;
    let mut text = String::new();

    // Part 1, fast: 10:00:00 → 10:09:59 at 7.5 kW.
    let p1_from = rig.world().now_s();
    feed_fast(&mut rig, 0..PART1_END, HOUSE1_W).await;
    let p1_fed = rig.world().now_s() - p1_from;
    let r1 = settled(&mut rig, PART1_END).await;
    let (limit1, max1) = {
        let w = rig.world();
        (w.unit.terra.limit_ma, w.max_write(p1_from, w.now_s()))
    };
    let _ = writeln!(
        text,
        "{name} part 1 (10:00:00 → 10:09:59 at 7.5 kW, {p1_from:.2} s → {:.2} s of real \
         time):\n  10:09:59 {r1}\n  \
         charger 0x4100 {limit1} mA (largest written in part 1: {max1} mA)",
        p1_from + p1_fed
    );
    assert_eq!(
        (r1.valid, r1.rejected),
        (PART1_END, 0),
        "{name}: telegrams at {FAST_MS} ms\n{text}\n{}",
        rig.daemon.log_text()
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
    let p2_from = rig.world().now_s();
    feed_fast(&mut rig, PART1_END..900, HOUSE2_W).await;
    let r2a = settled(&mut rig, 900).await;
    feed_fast(&mut rig, 900..PART2_END, HOUSE2_W).await;
    let p2_fed = rig.world().now_s() - p2_from;
    let r2 = settled(&mut rig, PART2_END).await;
    let (limit2, max2, car2) = {
        let w = rig.world();
        (
            w.unit.terra.limit_ma,
            w.max_write(p2_from, w.now_s()),
            w.car_max_a,
        )
    };
    let meter = &rig.meter;
    let closed_w = quarter_w(meter, 0, 900);
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
        rig.daemon.log_text()
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
    let t3 = rig.world().now_s();
    for i in 0..PART3_S {
        let k = PART2_END + i;
        let at = p3_from + Duration::from_secs(u64::from(i));
        rig.send_at(at, k, |car_a| phases(HOUSE2_W, car_a)).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let r = regs(&mut rig.ctx).await;
        let (limit, car) = rig.charger_now();
        let _ = writeln!(
            text,
            "  {name} {}  meter {:4.0} W  {r}  0x4100 {limit:5} mA  car {car:4.1} A",
            clock(start.plus(k)),
            rig.meter.net_w
        );
        samples.push((k, r, limit, car));
    }
    let r3 = settled(&mut rig, PART2_END + PART3_S).await;
    let first_usable = rig
        .world()
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
        let mut w = rig.world();
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
            *limit <= cap_ma(r.allowance_w) + ALLOWANCE_DEADBAND_MA,
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
            .all(|&(_, ma)| ma <= most + ALLOWANCE_DEADBAND_MA),
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
    drop(rig);
    Outcome {
        name,
        text,
        wall: wall.elapsed(),
    }
}

/// `hh:mm:ss` of the meter's clock.
fn clock(t: DateTime) -> String {
    let s = t.second_of_day();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Telegrams `ks` every [`FAST_MS`] of real time, the house at `house_w` and the car
/// as it is.
async fn feed_fast(rig: &mut PtyRig, ks: std::ops::Range<u32>, house_w: f64) {
    let from = Instant::now();
    let first = ks.start;
    for k in ks {
        let at = from + Duration::from_millis(FAST_MS * u64::from(k - first));
        rig.send_at(at, k, |car_a| phases(house_w, car_a)).await;
    }
}

#[test]
fn the_quarter_hour_account_runs_on_the_meters_clock_in_the_daemon() {
    if !have_socat() {
        return;
    }
    // Winter (W) for the Belgian meter, summer (S) for the Dutch one.
    side_by_side(
        "capacity_daemon",
        vec![
            run_meter(Flavour::Emucs, DateTime::new(2025, 1, 15, 10, 0)),
            run_meter(Flavour::Dsmr5, DateTime::new(2025, 6, 12, 10, 0)),
        ],
    );
}
