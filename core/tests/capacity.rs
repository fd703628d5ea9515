//! The capacity tariff's quarter-hour account (`capacity`) and its constraint on the
//! allocator, fed telegrams made from the real Fluvius e-MUCS telegram of
//! `shared/telegrams/` (its clock, energy, demand and power objects rewritten, the CRC
//! recomputed) and read by the real reader.

mod common;

use common::bus_car::{BusCar, step};
use common::fluvius::{Stamp, SteadyMeter};
use p1lb_core::balancer::Balancer;
use p1lb_core::capacity::{Account, ChargerDraw, QUARTER_S, meter_seconds};
use p1lb_core::config::{CapacityMode, Config, ControlMode};
use p1lb_core::p1::{Reading, Timestamp};
use p1lb_core::time::{Duration, Instant};
use proptest::prelude::*;

/// What the chargers draw (W), their minimum (W), settled.
fn draw(draw_w: i64, min_w: u32) -> ChargerDraw {
    ChargerDraw {
        draw_w,
        min_w,
        settled: true,
    }
}

fn capacity_config(mode: CapacityMode, target_w: u32, margin_w: u32) -> Config {
    let mut c = Config::default();
    c.set_capacity_mode(mode).expect("mode");
    c.set_capacity_target_w(target_w).expect("target");
    c.set_capacity_margin_w(margin_w).expect("margin");
    c
}

#[test]
fn the_meter_clock_is_continuous_across_both_dst_changes() {
    let ts = |s: &str| Timestamp::parse(s.as_bytes()).expect("timestamp");
    // Autumn 2026 (25 October): 02:59:59 summer is followed by 02:00:00 winter.
    assert_eq!(
        meter_seconds(&ts("261025020000W")) - meter_seconds(&ts("261025025959S")),
        1
    );
    // Spring 2026 (29 March): 01:59:59 winter is followed by 03:00:00 summer.
    assert_eq!(
        meter_seconds(&ts("260329030000S")) - meter_seconds(&ts("260329015959W")),
        1
    );
    // Quarters are the clock's: 02:15:00 of either hour starts one.
    for s in [
        "261025021500S",
        "261025021500W",
        "260101000000W",
        "260701234500S",
    ] {
        assert_eq!(meter_seconds(&ts(s)).rem_euclid(QUARTER_S), 0, "{s}");
    }
    // Month and year ends.
    assert_eq!(
        meter_seconds(&ts("270101000000W")) - meter_seconds(&ts("261231235959W")),
        1
    );
    assert_eq!(
        meter_seconds(&ts("280301000000W")) - meter_seconds(&ts("280228235959W")),
        86_401 // 2028 is a leap year: 29 February lies between.
    );
}

#[test]
fn a_quarter_is_counted_from_the_energy_registers_at_its_clock_boundaries() {
    let mut a = Account::new();
    // From 10:14:50 (the account starts in a quarter whose start it did not see).
    let mut m = SteadyMeter::new(Stamp::new(2026, 12, 3, 10, 14, 50, false), false);
    for _ in 0..10 {
        a.on_reading(&m.second(1000));
    }
    // No start seen, no 1.4.0: the use of this quarter is unknown.
    assert!(!a.figures().known);
    assert_eq!(a.figures().seconds_left, 1);
    // 10:15:00 … 10:29:59 at 2 kW, then into the next quarter.
    for _ in 0..900 {
        a.on_reading(&m.second(2000));
        let f = a.figures();
        assert!(f.known);
    }
    let f = a.figures();
    assert_eq!(f.seconds_left, 1);
    assert!((1990..=2010).contains(&f.average_w), "{f:?}");
    // 10:30:00: the quarter closed at 2 kW average; the one before counts with the
    // energy seen (10 s at 1 kW: a lower bound, ~11 W), never more.
    a.on_reading(&m.second(500));
    let f = a.figures();
    assert_eq!(f.seconds_left, 900);
    assert!((1990..=2010).contains(&f.month_peak_w), "{f:?}");
    // The projection: nothing used yet, 500 W for the whole quarter.
    assert!((490..=510).contains(&f.projected_w), "{f:?}");
}

#[test]
fn a_meter_silent_across_a_boundary_invents_nothing() {
    let mut a = Account::new();
    let mut m = SteadyMeter::new(Stamp::new(2026, 12, 3, 10, 0, 0, false), false);
    for _ in 0..880 {
        a.on_reading(&m.second(3000));
    }
    assert!(a.figures().known);
    // Silent from 10:14:40 to 10:15:30 (the meter's energy goes on counting).
    for _ in 0..50 {
        m.second(3000);
    }
    a.on_reading(&m.second(3000));
    let f = a.figures();
    // The new quarter's start was not seen: unknown, kept at pace.
    assert!(!f.known, "{f:?}");
    assert_eq!(f.seconds_left, 900 - 30);
    // The quarter before counts with the energy seen: 880 s of 3 kW = ~2.93 kW.
    assert!((2900..=2940).contains(&f.month_peak_w), "{f:?}");
    let cfg = capacity_config(CapacityMode::Target, 2500, 100);
    // At pace: the chargers may draw what keeps the present import under the target.
    assert_eq!(a.allowance_w(&cfg, draw(1000, 1380)), Some(2400 - 2000));
    // The next quarter's start is seen again.
    for _ in 0..(870 + 5) {
        a.on_reading(&m.second(1000));
    }
    assert!(a.figures().known);
}

#[test]
fn the_meter_s_average_demand_covers_a_quarter_whose_start_was_not_seen() {
    let mut a = Account::new();
    let mut m = SteadyMeter::new(Stamp::new(2026, 12, 3, 10, 0, 0, false), true);
    // Boot at 10:05: the meter's 1.4.0 already holds five minutes at 4 kW.
    for _ in 0..300 {
        m.second(4000);
    }
    a.on_reading(&m.second(4000));
    let f = a.figures();
    assert!(f.known);
    assert!((3990..=4010).contains(&f.average_w), "{f:?}");
    // 300 s of 4 kW used 1.2 MJ of the 2.16 MJ budget (2.4 kW × 900 s): 0.96 MJ
    // left over 599 s is 1.60 kW, less the house's 4 kW: nothing for the chargers.
    let cfg = capacity_config(CapacityMode::Target, 2500, 100);
    assert_eq!(a.allowance_w(&cfg, draw(0, 1380)), Some(0));
}

#[test]
fn the_month_peak_starts_again_at_the_month_change_as_the_meter_does() {
    let mut a = Account::new();
    let mut m = SteadyMeter::new(Stamp::new(2026, 11, 30, 23, 30, 0, false), false);
    for _ in 0..1800 {
        a.on_reading(&m.second(3600));
    }
    // 23:59:59: one quarter closed at 3.6 kW (23:30), the last still running.
    assert!((3590..=3610).contains(&a.figures().month_peak_w));
    // 1 December 00:00:00: the 23:45 quarter closes into November, then the month
    // starts again. The meter still prints November's peak for a moment: ignored.
    let mut r = m.second(800);
    r.month_peak = Some(p1lb_core::p1::Peak {
        at: Timestamp::parse(b"261130234500W"),
        power_w: 3600,
    });
    a.on_reading(&r);
    assert_eq!(a.figures().month_peak_w, 0);
    // December's own 1.6.0 counts.
    let mut r = m.second(800);
    r.month_peak = Some(p1lb_core::p1::Peak {
        at: Timestamp::parse(b"261201000000W"),
        power_w: 850,
    });
    a.on_reading(&r);
    assert_eq!(a.figures().month_peak_w, 850);
}

#[test]
fn the_budget_at_the_quarter_s_last_seconds_keeps_the_reaction_reserve() {
    let cfg = capacity_config(CapacityMode::Target, 2500, 100);
    let mut a = Account::new();
    let mut m = SteadyMeter::new(Stamp::new(2026, 12, 3, 10, 0, 0, false), false);
    // 880 s at 2 kW house + 0 car: 1.76 MJ of 2.16 MJ used; 0.40 MJ left for 20 s.
    for _ in 0..881 {
        a.on_reading(&m.second(2000));
    }
    // (The telegram of 10:14:40 is the last: 20 s to go.)
    assert_eq!(a.figures().seconds_left, 20);
    let w = a.allowance_w(&cfg, draw(0, 4140)).expect("on");
    // (400 kJ − 8 s × 4.14 kW) / 20 s − 2 kW ≈ 16.3 kW: charge, the fuse decides.
    assert!((16_000..=16_400).contains(&w), "{w}");
    // With 4 s left and the budget nearly spent, the reserve keeps the car out.
    let mut a = Account::new();
    let mut m = SteadyMeter::new(Stamp::new(2026, 12, 3, 10, 0, 0, false), false);
    for _ in 0..897 {
        a.on_reading(&m.second(2380));
    }
    assert_eq!(a.figures().seconds_left, 4);
    assert!(a.allowance_w(&cfg, draw(0, 4140)).expect("on") < 4140);
    // Mode 2 follows the month's peak: a 6 kW peak pays for 6 kW quarters. 300 s of
    // 5 kW leave nothing of a 2.5 kW target, but (5.9 kW × 900 s − 1.5 MJ) / 600 s
    // − 5 kW ≈ 1.35 kW of a 6 kW peak.
    let mut a = Account::new();
    let mut m = SteadyMeter::new(Stamp::new(2026, 12, 3, 10, 0, 0, false), false);
    for _ in 0..300 {
        let mut r = m.second(5000);
        r.month_peak = Some(p1lb_core::p1::Peak {
            at: Timestamp::parse(b"261201180000W"),
            power_w: 6000,
        });
        a.on_reading(&r);
    }
    assert_eq!(a.allowance_w(&cfg, draw(0, 1380)), Some(0));
    let follow = capacity_config(CapacityMode::FollowPeak, 2500, 100);
    let w = a.allowance_w(&follow, draw(0, 1380)).expect("on");
    assert!((1300..=1400).contains(&w), "{w}");
    // Off: no bound.
    let off = capacity_config(CapacityMode::Off, 2500, 100);
    assert_eq!(a.allowance_w(&off, draw(0, 4140)), None);
}

#[test]
fn a_car_on_a_low_target_charges_in_every_quarter_and_no_quarter_exceeds_it() {
    let mut cfg = capacity_config(CapacityMode::Target, 2500, 100);
    cfg.set_mode(ControlMode::Headroom).expect("mode");
    // An evening house: 400 W, a 2 kW oven for 20 minutes in the second hour.
    let house = |s: u32| if (4000..5200).contains(&s) { 2400 } else { 400 };
    let (_, quarters, car_wh) = run_bus_site(cfg, house, 4 * 3600);
    for (i, q) in quarters.iter().enumerate() {
        assert!(*q <= 2500.0, "quarter {i}: {q:.0} W");
    }
    // The budget is 2.4 kW: the car gets most of 2 kW × 4 h less the oven's 40 min.
    let ideal = 2000.0 * 4.0 - 2000.0 * (1200.0 / 3600.0);
    assert!(car_wh >= 0.9 * ideal, "car {car_wh:.0} Wh of {ideal:.0}");
    // Without capacity mode the same evening peaks at the car's full power.
    let (_, free, _) = run_bus_site(Config::default(), house, 3600);
    assert!(free.iter().any(|q| *q > 5000.0), "{free:?}");
}

/// One charger whose car follows 2 s late, on a site whose house load per phase follows
/// `house_ma`, closed loop: the telegrams and read-backs it saw, and what it sent.
fn closed_loop(cfg: Config, house_ma: impl Fn(u64) -> u32) -> (Vec<(Reading, u32)>, Vec<u32>) {
    let mut b = Balancer::new(cfg, Instant::ZERO);
    let mut m = SteadyMeter::new(Stamp::new(2026, 12, 3, 0, 0, 0, false), true);
    let mut sent = vec![0u32; 3];
    let mut inputs = Vec::new();
    for s in 0..1800u64 {
        let car = sent[sent.len() - 3];
        let r = m.second(i64::from(house_ma(s) + car) * 3 * 2347 / 10_000);
        sent.push(step(&mut b, s, &r, car));
        inputs.push((r, car));
    }
    (inputs, sent[3..].to_vec())
}

#[test]
fn the_fuse_wins_over_capacity() {
    // A house whose load leaves the car between nothing and 16 A of room.
    let house = |s: u64| [2000, 9000, 14_000, 17_000, 4000, 12_000][(s / 200 % 6) as usize];
    for mode in [ControlMode::Stepped, ControlMode::Headroom] {
        let mut free = Config::default();
        free.set_mode(mode).expect("mode");
        let (inputs, fuse) = closed_loop(free, house);
        // A target no quarter reaches: capacity changes nothing.
        let mut huge = capacity_config(CapacityMode::Target, 60_000, 0);
        huge.set_mode(mode).expect("mode");
        assert_eq!(closed_loop(huge, house).1, fuse, "{mode:?}");
        // A target that binds, on the same telegrams and read-backs: never more than
        // the fuse rules give, second by second, and less in all.
        let mut tight = capacity_config(CapacityMode::Target, 6000, 100);
        tight.set_mode(mode).expect("mode");
        let mut b = Balancer::new(tight, Instant::ZERO);
        let mut total = (0u64, 0u64);
        for (s, ((r, car), &f)) in inputs.iter().zip(&fuse).enumerate() {
            let c = step(&mut b, s as u64, r, *car);
            assert!(c <= f, "{mode:?} at {s} s: {c} > {f}");
            total = (total.0 + u64::from(c), total.1 + u64::from(f));
        }
        assert!(total.0 < total.1, "{mode:?}: {total:?}");
    }
}

proptest! {
    /// Any sequence of readings (clocks jumping anywhere, energy counters going back,
    /// absurd demand and peaks): no panic, and the figures stay within their registers'
    /// meaning (seconds left 1–900, the allowance never negative).
    #[test]
    fn hostile_readings_never_panic(
        steps in proptest::collection::vec(
            (0u16..3000, 1u8..13, 1u8..32, 0u8..24, 0u8..60, 0u8..61, any::<Option<bool>>(),
             any::<Option<i64>>(), any::<Option<i64>>(), any::<Option<i64>>(), any::<i64>()),
            1..40),
        chargers_w in any::<i64>(),
        min_w in any::<u32>(),
        mode in 0u16..3,
    ) {
        let mut a = Account::new();
        let mut cfg = Config::default();
        cfg.set(p1lb_core::config::address::CAPACITY_MODE, mode).expect("mode");
        for (y, mo, d, h, mi, s, summer, wh, demand, peak, power) in steps {
            let r = Reading {
                timestamp: Some(Timestamp { year: y, month: mo, day: d, hour: h, minute: mi, second: s, summer }),
                import_wh: p1lb_core::p1::Tariffs { t1: wh, t2: None, total: None },
                average_demand_w: demand,
                month_peak: peak.map(|power_w| p1lb_core::p1::Peak { at: None, power_w }),
                power_import_w: Some(power),
                ..Reading::default()
            };
            a.on_reading(&r);
            let f = a.figures();
            prop_assert!((1..=900).contains(&f.seconds_left));
            let _ = a.allowance_w(&cfg, draw(chargers_w, min_w));
        }
    }
}

/// One three-phase charger on a real bus's schedule: the car follows the value sent 2 s
/// late and ramps at 4 A/s (down at 20 A/s), the charger measures it once a second and
/// the balancer reads that every 2 s. Returns the value sent each second, each complete
/// quarter's average import (W) and the car's energy (Wh).
fn run_bus_site(
    cfg: Config,
    house_w: impl Fn(u32) -> i64,
    seconds: u32,
) -> (Vec<u32>, Vec<f64>, f64) {
    let mut b = Balancer::new(cfg, Instant::ZERO);
    let mut m = SteadyMeter::new(Stamp::new(2026, 12, 3, 0, 0, 0, false), true);
    let mut car = BusCar::new();
    let mut sent = Vec::new();
    let (mut quarters, mut q_j, mut car_wh) = (Vec::new(), 0.0, 0.0);
    for s in 0..seconds {
        let now = Instant::ZERO + Duration::from_secs(u64::from(s));
        car.second();
        let car_w = car.watts();
        let power = house_w(s) + car_w;
        if s > 0 && s % 900 == 0 {
            quarters.push(q_j / 900.0);
            q_j = 0.0;
        }
        q_j += power.max(0) as f64;
        car_wh += car_w as f64 / 3600.0;
        b.on_telegram(now, &m.second(power));
        car.read_back(&mut b, now, 0, s % 2 == 1);
        b.tick(now);
        car.sent(b.sent_of_ma(0));
        sent.push(b.sent_of_ma(0));
    }
    (sent, quarters, car_wh)
}

#[test]
fn a_starting_car_is_not_paused_by_its_own_lagging_read_back() {
    // A budget that carries the car's minimum all along (5.9 kW less a 500 W house): once
    // started it charges without a pause, though its report lags the meter by up to 3 s
    // while it ramps.
    let mut cfg = capacity_config(CapacityMode::Target, 6000, 100);
    cfg.set_mode(ControlMode::Headroom).expect("mode");
    let (sent, quarters, _) = run_bus_site(cfg, |_| 500, 3600);
    let first = sent.iter().position(|&v| v > 0).expect("the car starts");
    assert!(first < 60, "starts at {first} s");
    let pauses = sent[first..].iter().filter(|&&v| v == 0).count();
    assert_eq!(
        pauses, 0,
        "paused for {pauses} s after the start at {first} s"
    );
    for (i, q) in quarters.iter().enumerate() {
        assert!(*q <= 6000.0, "quarter {i}: {q:.0} W");
    }
}

#[test]
fn on_a_bus_a_low_target_means_one_start_a_quarter_and_no_quarter_over() {
    let mut cfg = capacity_config(CapacityMode::Target, 2500, 100);
    cfg.set_mode(ControlMode::Headroom).expect("mode");
    // A house that cycles: 300 W, a fridge's 150 W every 20 minutes, a 1.5 kW kettle.
    let house =
        |s: u32| 300 + if s % 1200 < 600 { 150 } else { 0 } + if s % 3000 < 180 { 1500 } else { 0 };
    let (sent, quarters, car_wh) = run_bus_site(cfg, house, 4 * 3600);
    for (i, q) in quarters.iter().enumerate() {
        assert!(*q <= 2500.0, "quarter {i}: {q:.0} W");
    }
    let starts = sent.windows(2).filter(|w| w[0] == 0 && w[1] > 0).count();
    assert!(starts <= 16 + 1, "{starts} starts in 16 quarters");
    // About 2 kW of the 2.4 kW budget is the car's: ≥ 85 % of it over 4 h.
    assert!(car_wh >= 0.85 * 2000.0 * 4.0 * 0.93, "{car_wh:.0} Wh");
}

#[test]
fn a_new_configuration_keeps_the_capacity_cap() {
    // A charger whose maximum equals the capacity cap of the moment: a new configuration
    // with a higher maximum must not lift the capacity cap with the old maximum (a law's
    // cap equal to its old maximum follows the new one).
    let mut cfg = capacity_config(CapacityMode::Target, 12_000, 100);
    cfg.set_mode(ControlMode::Headroom).expect("mode");
    cfg.set_charger_max_ma(32_000).expect("max");
    let (inputs, _) = closed_loop(cfg, |_| 2000);
    let run_to = |cfg: Config| {
        let mut b = Balancer::new(cfg, Instant::ZERO);
        let mut v = 0;
        for (s, (r, car)) in inputs.iter().enumerate().take(600) {
            v = step(&mut b, s as u64, r, *car);
        }
        (b, v)
    };
    // The capacity cap at 600 s, with room to spare under the fuse.
    let (_, cap) = run_to(cfg);
    assert!((8000..30_000).contains(&cap), "{cap}");
    let mut at_cap = cfg;
    at_cap.set_charger_max_ma(cap).expect("max");
    let (mut b, v) = run_to(at_cap);
    assert_eq!(v, cap);
    b.apply_config(cfg);
    for (s, (r, car)) in inputs.iter().enumerate().skip(600).take(60) {
        let v = step(&mut b, s as u64, r, *car);
        // Within the deadband of what the allowance gives on three 234.7 V phases.
        let allowed = u64::from(b.capacity_allowance_w().expect("on")) * 10_000 / (3 * 2347);
        assert!(
            u64::from(v) <= allowed + 500,
            "{s} s: {v} mA, the allowance {allowed} mA"
        );
    }
}
