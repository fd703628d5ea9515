//! Solar only (issue 18) in the real `p1lb run`, in real time: a charge that starts
//! after the start delay, follows a step of the surplus within 3 s either way, and
//! pauses after the stop delay when the sun goes.
//!
//! The installation: the daemon in the RS485 master role on a socat pty with one Terra
//! AC (unit 1, rated 16 A, the shared bus model: 10 ms turnaround, its currents its own
//! measurement of the car once a second, reported only when the daemon polls it) and a
//! three-phase car behind it that follows the applied limit 2 s late, ramps at 4 A/s
//! up and 20 A/s down and draws nothing below 6 A. The P1 feed is a second socat pty
//! (`--p1 PTY`, 115200 8N1), a telegram a second of real time. Settings by name in the
//! TOML file the daemon starts with: `charge_mode = 3` (paused),
//! `solar_start_delay = 20`, `solar_stop_delay = 30`; every other at its default (start
//! surplus 0: the car's minimum, 6 A × 3 × 230 V ≈ 4.1 kW; import allowed 0 W). No LED.
//!
//! The site, closed loop: a house of 500 W (300 W on L1, 100 W on L2 and L3), a
//! three-phase PV inverter and the car's own draw (from the car model) make the grid
//! power of each phase every second. The meter prints what a real one does with
//! export: `1.7.0` = 0 and `2.7.0` > 0 while the site exports, each phase's import and
//! export (`21.7.0`/`22.7.0` …, one of the two 0), and the phase currents unsigned.
//! Telegram k (one a second from k = 0):
//! 1. k 0–2, paused, the sun at 6.5 kW (6 kW of surplus): 1128 = 0, the charger held at
//!    0 and 1127 ≈ 600 (the surplus shows in any mode). Then a Modbus write of
//!    1080 = 2 (solar only) **without** 1091: 1080 reads 2 at once and the TOML file
//!    says `charge_mode = 2` (persisted);
//! 2. from k = 3 (the first telegram with surplus in solar only): 1128 = 1, the charger
//!    sent 0, until the first usable limit (≥ 6 A) is written between 20 s and 23 s
//!    after that telegram (measured: 21.0–22.0 s: the delay ends at the telegram 20 s
//!    on or, a few ms early, at the next one; the raise comes a telegram after 1128
//!    turns 2, state 1's 1 s wait 1019); then the limit ≈ 6 kW / 690 V ≈ 8.7 A
//!    (within the 500 mA dead band and the 100 mA rounding: 0.6 A);
//! 3. k = 36: 2.5 kW more sun (8.5 kW of surplus, 12.3 A): a limit within 0.6 A of it
//!    written within 3 s of that telegram; k = 46: back to 6.5 kW: a limit within 0.6 A
//!    of 8.7 A within 3 s. 1127 within 10 % of the surplus whenever the car is steady;
//!    never paused, never above the larger surplus's current plus 0.6 A;
//! 4. k = 56: the sun goes (500 W of import without the car): 6 A (the minimum)
//!    written within 3 s, 1128 = 3, and 0 written between 30 s and 33 s after that
//!    telegram; then 1128 = 0, the charger at 0, the car stopped.
//!
//! The same runs with a Dutch DSMR 5 meter (currents in whole amperes, unsigned: the
//! daemon signs them by the phase powers) and a Belgian e-MUCS meter (0.01 A), side by
//! side, each with its own daemon, charger and car (about 95 s of real time together).
//! The harness checks itself: every telegram valid (1115–1118), the charger configured
//! and nothing odd on the bus; 1001, 1130 and the charger's 0x4100 agree.
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
use p1lb_core::config::address::CHARGE_MODE;
use p1lb_core::registers::address;
use p1lb_sim::meter::{Flavour, PhaseValues};
use p1lb_sim::time::DateTime;
use tokio_modbus::client::Context;
use tokio_modbus::prelude::Writer;

/// Settings 1082 and 1083, s.
const START_DELAY_S: u32 = 20;
const STOP_DELAY_S: u32 = 30;
/// The house's own load on L1–L3, W.
const HOUSE_W: [f64; 3] = [300.0, 100.0, 100.0];
/// The PV inverter's output (three-phase, balanced), W.
const PV_W: f64 = 6500.0;
/// The step of the sun in part 3, W.
const PV_STEP_W: f64 = 2500.0;
/// The first telegram after the write of 1080 = 2.
const MODE_AT: u32 = 3;
/// The sun steps up, back down, goes.
const UP_AT: u32 = 36;
const DOWN_AT: u32 = 46;
const DUSK_AT: u32 = 56;
/// Telegrams in all.
const END: u32 = DUSK_AT + STOP_DELAY_S + 6;
/// Within this of a step's telegram, s.
const FOLLOW_S: f64 = 3.0;
/// The dead band and the balancer's 100 mA rounding, mA.
const TOLERANCE_MA: u32 = 600;
/// The charger's minimum (1009's default), mA.
const MIN_MA: u32 = 6000;

/// The Terra AC's rating, mA.
const TERRA_MAX_MA: u32 = 16_000;
/// From a new limit to the car following it, s.
const CAR_DELAY_S: f64 = 2.0;
const CAR_UP_A_S: f64 = 4.0;
const CAR_DOWN_A_S: f64 = 20.0;

/// The sun at telegram `k`, W.
fn pv_w(k: u32) -> f64 {
    match k {
        0..UP_AT => PV_W,
        UP_AT..DOWN_AT => PV_W + PV_STEP_W,
        DOWN_AT..DUSK_AT => PV_W,
        _ => 0.0,
    }
}

/// The surplus at telegram `k` (the sun less the house), W.
fn surplus_w(k: u32) -> f64 {
    pv_w(k) - HOUSE_W.iter().sum::<f64>()
}

/// The current a three-phase car may draw from `w` at the meter's voltage, mA.
fn amps_ma(w: f64) -> u32 {
    (w / (3.0 * VOLTS) * 1000.0).max(0.0) as u32
}

/// The grid on each phase with the sun at `pv_w` and the car at `car_a` a phase: the
/// house, less a third of the sun, plus the car, as import or export; the meter prints
/// the current's magnitude only.
fn phases(pv_w: f64, car_a: f64) -> [PhaseValues; 3] {
    [0, 1, 2].map(|p| {
        let w = (HOUSE_W[p] - pv_w / 3.0 + VOLTS * car_a).round();
        phase(w as i32, (w.abs() / VOLTS * 1000.0).round() as i32)
    })
}

/// The daemon's registers of interest, as one look.
#[derive(Debug, Clone, Copy)]
struct Regs {
    mode: u16,
    sent_ma: u16,
    /// 1127, W (10 W units × 10).
    surplus_w: i32,
    state: u16,
    limit_1130: u16,
    valid: u32,
    rejected: u32,
}

impl std::fmt::Display for Regs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "1080 {}  1127 {:5} W  1128 {}  1001 {:5} mA  1130 {:5} mA  ({} valid, {} rejected)",
            self.mode,
            self.surplus_w,
            self.state,
            self.sent_ma,
            self.limit_1130,
            self.valid,
            self.rejected
        )
    }
}

async fn regs(ctx: &mut Context) -> Regs {
    let mode = read_holding(ctx, CHARGE_MODE, 1).await;
    let sent = read_holding(ctx, address::SENT_CURRENT, 1).await;
    let solar = read_holding(ctx, address::SOLAR_SURPLUS, 2).await;
    let c = read_holding(ctx, address::CHARGER1_LIMIT, 1).await;
    let (valid, rejected) = telegram_counts(ctx).await;
    Regs {
        mode: mode[0],
        sent_ma: sent[0],
        surplus_w: i32::from(solar[0] as i16) * 10,
        state: solar[1],
        limit_1130: c[0],
        valid,
        rejected,
    }
}

/// One second of the run: the look 400 ms after telegram `k`.
#[derive(Debug, Clone, Copy)]
struct Sample {
    k: u32,
    r: Regs,
    /// The charger's 0x4100, mA.
    limit: u32,
    /// The car's current, A a phase.
    car: f64,
}

/// 1127 within 10 % of `want` W.
fn near_surplus(r: &Regs, want: f64) -> bool {
    (f64::from(r.surplus_w) - want).abs() <= want.abs() * 0.1
}

/// One meter's run: its daemon, charger, car and feed.
async fn run_meter(flavour: Flavour) -> Outcome {
    let name = flavour.name();
    let wall = Instant::now();
    let start = DateTime::new(2025, 6, 12, 12, 0);
    let settings = [
        ("charge_mode", 3),
        ("solar_start_delay", START_DELAY_S),
        ("solar_stop_delay", STOP_DELAY_S),
    ];
    let car = Car::new([true; 3], CAR_DELAY_S, CAR_UP_A_S, CAR_DOWN_A_S);
    let meter = P1Meter::new(flavour, start, DateTime::new(2025, 6, 3, 18, 45), 3000);
    // The daemon configures the charger (0x4106, 0x4109, the limit: 0, no telegram yet).
    let mut rig = PtyRig::start("solar-daemon", &settings, TERRA_MAX_MA, car, meter).await;
    let mut text = String::new();

    let mut samples: Vec<Sample> = Vec::new();
    // When each telegram went out, s of the world's clock.
    let mut sent_at: Vec<f64> = Vec::new();
    let mut mode_write = None;
    let from = Instant::now();
    for k in 0..END {
        if k == MODE_AT {
            // Solar only, by a write of 1080 alone: no 1091.
            let t = rig.world().now_s();
            tokio::time::timeout(
                Duration::from_secs(5),
                rig.ctx.write_single_register(CHARGE_MODE, 2),
            )
            .await
            .expect("answered in time")
            .expect("Modbus TCP")
            .expect("1080 = 2 accepted");
            let mode = read_holding(&mut rig.ctx, CHARGE_MODE, 1).await[0];
            let deadline = Instant::now() + Duration::from_secs(2);
            let persisted = loop {
                let file = std::fs::read_to_string(&rig.toml).unwrap_or_default();
                if file.lines().any(|l| l.trim() == "charge_mode = 2") {
                    break true;
                }
                if Instant::now() >= deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let _ = writeln!(
                text,
                "  {name} {t:6.2} s  wrote 1080 = 2 (no 1091): 1080 reads {mode}; \
                 p1lb.toml says charge_mode = 2: {persisted}"
            );
            assert!(
                mode == 2 && persisted,
                "{name}: 1080 applies at once and is persisted\n{text}\n{}\n{}",
                std::fs::read_to_string(&rig.toml).unwrap_or_default(),
                rig.daemon.log_text()
            );
            mode_write = Some(t);
        }
        tokio::time::sleep_until((from + Duration::from_secs(u64::from(k))).into()).await;
        let (t, bytes) = rig.telegram(k, |car_a| phases(pv_w(k), car_a));
        sent_at.push(t);
        if [0, UP_AT - 1, DUSK_AT].contains(&k) {
            check_telegram(name, k, rig.meter.net_w, &bytes, &mut text);
        }
        rig.send(&bytes).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let r = regs(&mut rig.ctx).await;
        let (limit, car) = rig.charger_now();
        let _ = writeln!(
            text,
            "  {name} k {k:2} {:6.2} s  sun {:4.0} W  meter {:6.0} W  {r}  0x4100 {limit:5} mA  \
             car {car:5.2} A",
            sent_at[k as usize],
            pv_w(k),
            rig.meter.net_w
        );
        samples.push(Sample { k, r, limit, car });
    }
    // The control tick and the bus write after the last telegram.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last = regs(&mut rig.ctx).await;
    let (writes, setup, unexpected, reads, car_end, energy) = {
        let mut w = rig.world();
        w.advance();
        (
            w.unit.writes.clone(),
            w.unit.setup.clone(),
            w.unit.unexpected.clone(),
            w.unit.reads.len(),
            w.unit.car.current,
            w.unit.car.energy_wh,
        )
    };
    let _ = writeln!(
        text,
        "  {name} end: {last}\n  limits written (s, mA): {:?}\n  setup {setup:?}; {reads} status \
         reads; unexpected {unexpected:?}; car {car_end:.2} A, {energy:.1} Wh",
        writes
            .iter()
            .map(|&(t, ma)| (format!("{t:.2}"), ma))
            .collect::<Vec<_>>()
    );
    let at = |k: u32| sent_at[k as usize];
    let sample = |k: u32| samples[k as usize];
    let w = rig.world();
    let ctx = |text: &str, what: &str| format!("{name}: {what}\n{text}");

    // The harness: every telegram taken, the charger configured, nothing odd.
    assert_eq!(
        (last.valid, last.rejected),
        (END, 0),
        "{}",
        ctx(&text, "telegrams")
    );
    assert!(
        unexpected.is_empty() && setup.len() == 2,
        "{}",
        ctx(&text, "the bus")
    );
    for s in &samples {
        assert!(
            u32::from(s.r.sent_ma) == s.limit && u32::from(s.r.limit_1130) == s.limit,
            "{}",
            ctx(&text, &format!("1001, 1130 and 0x4100 differ at k {}", s.k))
        );
    }

    // 1127 the surplus (±10 %) at every look, the car ramping or not: the estimate
    // does not chase the car's echo in the meter.
    let worst = samples
        .iter()
        .map(|s| (f64::from(s.r.surplus_w) - surplus_w(s.k)).abs())
        .fold(0.0, f64::max);
    for s in &samples {
        assert!(
            near_surplus(&s.r, surplus_w(s.k)),
            "{}",
            ctx(&text, &format!("1127 at k {}", s.k))
        );
    }

    // 1. Paused, in the sun: nothing sent; the surplus shows.
    for s in &samples[..MODE_AT as usize] {
        assert!(
            s.r.mode == 3 && s.r.state == 0 && s.limit == 0,
            "{}",
            ctx(&text, &format!("paused at k {}", s.k))
        );
    }
    assert!(
        near_surplus(&sample(MODE_AT - 1).r, surplus_w(0)),
        "{}",
        ctx(&text, "1127 while paused")
    );
    assert!(
        mode_write.is_some_and(|t| t < at(MODE_AT)),
        "{}",
        ctx(&text, "the mode write")
    );

    // 2. Solar only: waiting for the start delay, then a usable limit.
    for k in MODE_AT..MODE_AT + START_DELAY_S {
        let s = sample(k);
        assert!(
            s.r.mode == 2 && s.r.state == 1 && s.limit == 0 && s.car == 0.0,
            "{}",
            ctx(&text, &format!("waiting to start at k {k}"))
        );
        assert!(
            near_surplus(&s.r, surplus_w(k)),
            "{}",
            ctx(&text, &format!("1127 at k {k}"))
        );
    }
    let (t_on, on_ma) = w
        .first_write(at(MODE_AT), |ma| ma > 0)
        .unwrap_or_else(|| panic!("{}", ctx(&text, "never started")));
    let start_after = t_on - at(MODE_AT);
    let _ = writeln!(
        text,
        "{name}: started {start_after:.2} s after the first telegram with surplus in solar \
         only ({on_ma} mA; start delay {START_DELAY_S} s)"
    );
    assert!(
        on_ma >= MIN_MA
            && start_after >= f64::from(START_DELAY_S)
            && start_after <= f64::from(START_DELAY_S) + FOLLOW_S,
        "{}",
        ctx(&text, "the start")
    );

    // 3. Charging on surplus: at it, and following its steps within 3 s.
    let follows = |k: u32, ma: u32| ma.abs_diff(amps_ma(surplus_w(k))) <= TOLERANCE_MA;
    let mut step_s = Vec::new();
    for (step, k) in [("up", UP_AT), ("down", DOWN_AT)] {
        // Steady before the step: the limit at the surplus, 1127 the surplus.
        let before = sample(k - 1);
        assert!(
            before.r.state == 2 && follows(k - 1, before.limit) && before.car >= 6.0,
            "{}",
            ctx(&text, &format!("charging at the surplus at k {}", k - 1))
        );
        assert!(
            near_surplus(&before.r, surplus_w(k - 1)),
            "{}",
            ctx(&text, &format!("1127 at k {}", k - 1))
        );
        let (t, ma) = w
            .first_write(at(k), |ma| follows(k, ma))
            .unwrap_or_else(|| panic!("{}", ctx(&text, &format!("the step {step} not followed"))));
        let after = t - at(k);
        step_s.push(after);
        let _ = writeln!(
            text,
            "{name}: step {step} at k {k} ({:.0} → {:.0} W of surplus, {} mA wanted): \
             {ma} mA written {after:.2} s after its telegram",
            surplus_w(k - 1),
            surplus_w(k),
            amps_ma(surplus_w(k))
        );
        assert!(
            after <= FOLLOW_S,
            "{}",
            ctx(&text, &format!("the step {step}"))
        );
    }
    let before = sample(DUSK_AT - 1);
    assert!(
        before.r.state == 2 && follows(DUSK_AT - 1, before.limit),
        "{}",
        ctx(&text, "back at the surplus before dusk")
    );
    assert!(
        near_surplus(&before.r, surplus_w(DUSK_AT - 1)),
        "{}",
        ctx(&text, "1127 before dusk")
    );
    let most = amps_ma(surplus_w(UP_AT)) + TOLERANCE_MA;
    let charging: Vec<u32> = w
        .unit
        .writes
        .iter()
        .filter(|&&(t, _)| t >= t_on && t < at(DUSK_AT))
        .map(|&(_, ma)| ma)
        .collect();
    assert!(
        charging.iter().all(|&ma| (MIN_MA..=most).contains(&ma)),
        "{}",
        ctx(
            &text,
            "the limit while charging on surplus (never paused, never above it)"
        )
    );
    let changes = charging.windows(2).filter(|p| p[0] != p[1]).count();
    // Two steps: one change each, and a correction each at most.
    assert!(changes <= 4, "{}", ctx(&text, "changes of the limit"));

    // 4. The sun goes: the minimum at once, waiting to stop, paused after the delay.
    let (t_min, _) = w
        .first_write(at(DUSK_AT), |_| true)
        .unwrap_or_else(|| panic!("{}", ctx(&text, "nothing written at dusk")));
    let min_after = t_min - at(DUSK_AT);
    let (t_off, _) = w
        .first_write(at(DUSK_AT), |ma| ma == 0)
        .unwrap_or_else(|| panic!("{}", ctx(&text, "never paused")));
    let off_after = t_off - at(DUSK_AT);
    let dusk_writes: Vec<u32> = w
        .unit
        .writes
        .iter()
        .filter(|&&(t, _)| t >= at(DUSK_AT) && t < t_off)
        .map(|&(_, ma)| ma)
        .collect();
    let _ = writeln!(
        text,
        "{name}: the sun gone at k {DUSK_AT}: the minimum written {min_after:.2} s after its \
         telegram (writes until the pause: {dusk_writes:?} mA); 0 written {off_after:.2} s \
         after it (stop delay {STOP_DELAY_S} s); {changes} changes of the limit while \
         charging on surplus"
    );
    assert!(
        min_after <= FOLLOW_S && dusk_writes.iter().all(|&ma| ma == MIN_MA),
        "{}",
        ctx(&text, "the minimum at once")
    );
    for k in DUSK_AT..DUSK_AT + STOP_DELAY_S - 1 {
        let s = sample(k);
        assert!(
            s.r.state == 3 && (k == DUSK_AT || s.limit == MIN_MA),
            "{}",
            ctx(&text, &format!("waiting to stop at k {k}"))
        );
    }
    assert!(
        near_surplus(&sample(DUSK_AT + 10).r, surplus_w(DUSK_AT)),
        "{}",
        ctx(&text, "1127 after dusk")
    );
    assert!(
        off_after >= f64::from(STOP_DELAY_S) && off_after <= f64::from(STOP_DELAY_S) + FOLLOW_S,
        "{}",
        ctx(&text, "the pause")
    );
    assert!(
        w.unit.writes.iter().all(|&(t, ma)| t < t_off || ma == 0)
            && last.state == 0
            && car_end == 0.0,
        "{}",
        ctx(&text, "paused for good, the car stopped")
    );
    drop(w);
    let _ = writeln!(
        text,
        "{name}: start {start_after:.2} s, steps {:.2} s / {:.2} s, minimum {min_after:.2} s, \
         pause {off_after:.2} s; {changes} changes; 1127 off by {worst:.0} W at most; {energy:.1} Wh; \
         {:.1} s",
        step_s[0],
        step_s[1],
        wall.elapsed().as_secs_f64()
    );
    drop(rig);
    Outcome {
        name,
        text,
        wall: wall.elapsed(),
    }
}

/// A telegram prints what a real meter does: with export, `1.7.0` = 0 and `2.7.0` > 0
/// (with import the other way round), each phase's import and export, and no sign
/// anywhere (the currents are magnitudes). Its power lines go into `text`.
fn check_telegram(name: &str, k: u32, net_w: f64, bytes: &[u8], text: &mut String) {
    let t = String::from_utf8_lossy(bytes);
    let value = |obis: &str| -> f64 {
        let line = t
            .lines()
            .find(|l| l.starts_with(obis))
            .unwrap_or_else(|| panic!("{name}: no {obis} in\n{t}"));
        let v = &line[obis.len() + 1..];
        v[..v.find('*').unwrap_or(v.len())]
            .parse()
            .unwrap_or_else(|_| panic!("{name}: {line}"))
    };
    let (import, export) = (value("1-0:1.7.0"), value("1-0:2.7.0"));
    let exporting = net_w < 0.0;
    assert!(
        !t.contains("(-")
            && if exporting {
                import == 0.0 && export > 0.0
            } else {
                import > 0.0 && export == 0.0
            },
        "{name}: telegram {k}:\n{t}"
    );
    let lines: Vec<&str> = t.lines().filter(|l| l.contains(".7.0(")).collect();
    let _ = writeln!(text, "  {name} telegram {k}: {}", lines.join(" "));
}

#[test]
fn solar_only_starts_follows_and_pauses_in_the_daemon() {
    if !have_socat() {
        return;
    }
    side_by_side(
        "solar_daemon",
        vec![run_meter(Flavour::Emucs), run_meter(Flavour::Dsmr5)],
    );
}
