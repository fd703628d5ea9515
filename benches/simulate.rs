//! Wall time of a simulated 24 h day (`long-day`: solar, heat pump, meals, two car
//! sessions, every fault; 86 400 real P1 telegrams through the reader) in each control
//! mode, release build.
//!
//! `cargo bench --bench simulate`. Goal: ≤ 1 s per simulated day.

use std::hint::black_box;
use std::time::{Duration, Instant};

use p1lb::cli::simulate::config_for;
use p1lb_core::config::ControlMode;
use p1lb_sim::{runner, scenario};

fn main() {
    let s = scenario::by_name("long-day").expect("the long-day scenario");
    let hours = f64::from(s.duration_s) / 3600.0;
    println!("simulate: {} ({hours:.0} h simulated)", s.name);
    let mut worst = Duration::ZERO;
    for mode in [ControlMode::Stepped, ControlMode::Headroom] {
        let cfg = config_for(&s, &[], mode).expect("valid configuration");
        // One warm-up, then the best of three (and the worst, for the goal).
        black_box(runner::run(&s, &cfg, false));
        let mut best = Duration::MAX;
        let mut slowest = Duration::ZERO;
        let mut telegrams = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let r = black_box(runner::run(&s, &cfg, false));
            let e = t.elapsed();
            best = best.min(e);
            slowest = slowest.max(e);
            telegrams = r.metrics.telegrams_sent;
        }
        let traced = {
            let t = Instant::now();
            black_box(runner::run(&s, &cfg, true));
            t.elapsed()
        };
        worst = worst.max(slowest);
        println!(
            "  {:<9} best {:>7.1} ms, worst {:>7.1} ms, with trace {:>7.1} ms  \
             ({:.0}× real time, {:.2} µs per simulated second, {telegrams} telegrams)",
            runner::mode_name(mode),
            best.as_secs_f64() * 1e3,
            slowest.as_secs_f64() * 1e3,
            traced.as_secs_f64() * 1e3,
            hours * 3600.0 / best.as_secs_f64(),
            best.as_secs_f64() * 1e6 / (hours * 3600.0),
        );
    }
    let ok = worst <= Duration::from_secs(1);
    println!(
        "  goal ≤ 1 s per simulated day: {} (worst run {:.3} s)",
        if ok { "met" } else { "MISSED" },
        worst.as_secs_f64()
    );
}
