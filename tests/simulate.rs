//! `p1lb simulate` as a user runs it: the real binary, every scenario, the JSON
//! contract, the chart, a recorded P1 stream, and the errors; and, through the library,
//! the yardsticks that say how much of the oracle's energy a causal balancer can reach.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use p1lb::cli::simulate::config_for;
use p1lb_core::config::ControlMode;
use p1lb_sim::runner::{self, Metrics};
use p1lb_sim::scenario;
use serde_json::Value;

/// The contract's keys, in order, at the start of every entry.
const KEYS: &[&str] = &[
    "name",
    "mode",
    "ev_energy_kwh",
    "oracle_energy_kwh",
    "oracle_pct",
    "seconds_over_upper",
    "seconds_over_fuse",
    "max_phase_current_a",
    "limit_changes_per_hour",
    "seconds_in_fallback",
    "trips",
];

const SCENARIOS: &[&str] = &[
    "evening-peak",
    "solar-day",
    "single-phase-car",
    "meter-dropout",
    "noisy-line",
    "long-day",
    "single-phase-home",
    "oven-evening",
    "kitchen-l2-l3",
    "rotated-wiring",
    "two-cars-priority",
    "four-cars",
];

/// The scenarios of the single-charger control law's criteria (issues 3 and 14): the
/// first eight, one three-phase connection's charger each (the wiring 0 default).
const SINGLE: &[&str] = &[
    "evening-peak",
    "solar-day",
    "single-phase-car",
    "meter-dropout",
    "noisy-line",
    "long-day",
    "single-phase-home",
    "oven-evening",
];

/// The scenarios with several chargers.
const SHARED: &[&str] = &["two-cars-priority", "four-cars"];

/// The capacity tariff's scenarios (issue 17), after the others in `--scenario all`.
const CAPACITY: &[&str] = &[
    "capacity-evening",
    "capacity-follow-peak",
    "capacity-1phase-40a",
];

/// The solar charge modes' scenarios (issue 18), after the capacity ones in
/// `--scenario all`: solar only, but `solar-evening-min` (minimum + solar).
const SOLAR: &[&str] = &[
    "solar-sunny",
    "solar-clouds",
    "solar-winter",
    "solar-1phase",
    "solar-3phase",
    "solar-evening-min",
];

/// The solar keys, in order, at the end of every entry (after the capacity keys).
const SOLAR_KEYS: &[&str] = &[
    "charge_mode",
    "pv_kwh",
    "surplus_kwh",
    "ev_solar_kwh",
    "ev_grid_kwh",
    "ev_solar_pct",
    "solar_exported_kwh",
    "charge_starts",
    "sun_h",
    "starts_per_30min_sun",
    "car_connected_h",
    "solar_oracle_energy_kwh",
    "solar_oracle_pct",
    "below_min_s",
    "below_min_fuse_s",
    "step1a_energy_kwh",
    "step1a_ev_solar_pct",
    "step1a_charge_starts",
    "step1a_limit_changes",
    "step1a_limit_changes_per_hour",
    "solar_state_s",
];

/// The capacity keys, in order, at the end of every entry but for the solar keys.
const CAPACITY_KEYS: &[&str] = &[
    "quarter_peak_kw",
    "month_peak_kw",
    "capacity_mode",
    "capacity_target_kw",
    "quarters_over_target",
    "house_quarters_over_target",
    "quarters_full",
    "capacity_oracle_energy_kwh",
    "capacity_oracle_pct",
    "car_sessions",
    "car_sessions_full",
    "hours_to_full",
    "capacity_cost_eur_per_year",
    "capacity_saving_eur_per_year",
];

fn p1lb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_p1lb"))
        .args(args)
        .output()
        .expect("run p1lb")
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("p1lb-sim-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

/// Every scenario in both modes, once for all tests (the slowest part: 171 h simulated,
/// besides the capacity scenarios' twins without the mode and the solar scenarios' 1 A-step
/// baselines).
fn all() -> &'static Vec<Value> {
    static ALL: OnceLock<Vec<Value>> = OnceLock::new();
    ALL.get_or_init(|| {
        let doc = json(&p1lb(&["simulate", "--scenario", "all", "--json"]));
        doc["scenarios"]
            .as_array()
            .expect("scenarios array")
            .clone()
    })
}

fn entry<'a>(runs: &'a [Value], name: &str, mode: &str) -> &'a Value {
    runs.iter()
        .find(|r| r["name"] == name && r["mode"] == mode)
        .unwrap_or_else(|| panic!("no {name} / {mode}"))
}

#[test]
fn every_scenario_in_both_modes_with_the_contract_keys_in_order() {
    let runs = all();
    assert_eq!(
        runs.len(),
        (SCENARIOS.len() + CAPACITY.len() + SOLAR.len()) * 2
    );
    for name in SCENARIOS {
        for mode in ["stepped", "headroom"] {
            let r = entry(runs, name, mode);
            let keys: Vec<&str> = r
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(&keys[..KEYS.len()], KEYS, "{name} {mode}");
            for k in &KEYS[2..] {
                assert!(r[k].is_number(), "{name} {mode} {k}: {}", r[k]);
            }
        }
    }
}

#[test]
fn numbers_are_sane() {
    for r in all() {
        let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
        let what = format!("{} {}", r["name"], r["mode"]);
        let pct = f("oracle_pct");
        // (A solar-only charge may find no sun worth starting for.)
        let solar_only = r["charge_mode"] == "solar-only";
        assert!(
            (pct > 0.0 || solar_only) && pct <= 101.0,
            "{what}: oracle_pct {pct}"
        );
        assert!(
            (f("ev_energy_kwh") > 0.0 || solar_only) && f("oracle_energy_kwh") > 0.0,
            "{what}"
        );
        let d = f("duration_s");
        for k in [
            "seconds_over_upper",
            "seconds_over_fuse",
            "seconds_in_fallback",
        ] {
            assert!((0.0..=d).contains(&f(k)), "{what}: {k}");
        }
        assert!(
            f("seconds_over_fuse") <= f("seconds_over_upper") + 1e-9,
            "{what}"
        );
        assert!(f("max_phase_current_a") > 5.0 && f("max_phase_current_a") < 100.0);
        assert!(f("limit_changes_per_hour") >= 0.0);
        // The house alone never overloads the fuse: what is above it is the car's.
        assert_eq!(f("house_seconds_over_fuse"), 0.0, "{what}");
        // Every telegram the meter put on the line is accounted for.
        let sent = f("telegrams_sent");
        assert!(f("telegrams_valid") <= sent);
        assert!(f("telegrams_valid") >= sent - f("telegrams_corrupted") - f("telegrams_rejected"));
    }
}

#[test]
fn headroom_mode_never_trips_the_fuse() {
    for r in all().iter().filter(|r| r["mode"] == "headroom") {
        assert_eq!(r["trips"], 0, "{r}");
    }
}

/// registers.md: headroom mode "must never exceed the upper limit for longer than the
/// stepped mode would, and must never react more slowly to an alarm" — and it reacts to
/// each load step within 3 s (the reaction a causal controller can give: one telegram
/// period, one tick, the car's delay).
#[test]
fn headroom_mode_is_never_worse_than_stepped_above_the_limits() {
    let runs = all();
    for name in SCENARIOS {
        let s = entry(runs, name, "stepped");
        let h = entry(runs, name, "headroom");
        let f = |r: &Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        assert!(
            f(h, "seconds_over_upper") <= f(s, "seconds_over_upper"),
            "{name}: above upper {} s headroom vs {} s stepped",
            f(h, "seconds_over_upper"),
            f(s, "seconds_over_upper")
        );
        assert!(
            f(h, "seconds_over_fuse") <= f(s, "seconds_over_fuse"),
            "{name}"
        );
        assert!(
            f(h, "longest_over_fuse_s") <= 3.0,
            "{name}: {}",
            f(h, "longest_over_fuse_s")
        );
        assert!(
            f(h, "ev_energy_kwh") >= f(s, "ev_energy_kwh") * 0.999,
            "{name}: less energy"
        );
    }
}

#[test]
fn meter_dropout_falls_back_and_others_do_not() {
    let runs = all();
    for mode in ["stepped", "headroom"] {
        let d = entry(runs, "meter-dropout", mode);
        let s = d["seconds_in_fallback"].as_u64().expect("integer");
        // 90 s and 120 s of silence with a 30 s fallback time.
        assert!((140..=160).contains(&s), "{d}");
        assert_eq!(entry(runs, "evening-peak", mode)["seconds_in_fallback"], 0);
    }
}

#[test]
fn noisy_line_telegrams_are_rejected_and_counted() {
    for mode in ["stepped", "headroom"] {
        let r = entry(all(), "noisy-line", mode);
        let corrupted = r["telegrams_corrupted"].as_u64().expect("n");
        let rejected = r["telegrams_rejected"].as_u64().expect("n");
        let valid = r["telegrams_valid"].as_u64().expect("n");
        let sent = r["telegrams_sent"].as_u64().expect("n");
        assert!(corrupted > 300, "{r}");
        assert!(rejected >= corrupted, "{r}");
        // No corrupted telegram got through.
        assert!(valid <= sent - corrupted, "{r}");
        assert_eq!(entry(all(), "evening-peak", mode)["telegrams_rejected"], 0);
    }
}

#[test]
fn the_same_seed_gives_the_same_output_and_another_seed_differs() {
    let args = [
        "simulate",
        "--scenario",
        "noisy-line",
        "--mode",
        "headroom",
        "--json",
    ];
    let a = p1lb(&args);
    let b = p1lb(&args);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    let mut other = args.to_vec();
    other.extend(["--seed", "42"]);
    let c = p1lb(&other);
    assert!(c.status.success());
    assert_ne!(a.stdout, c.stdout);
}

#[test]
fn the_chart_is_written_as_svg() {
    let dir = scratch("plot");
    let path = dir.join("out.svg");
    let out = p1lb(&[
        "simulate",
        "--scenario",
        "noisy-line",
        "--plot",
        path.to_str().expect("utf-8 path"),
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let svg = std::fs::read_to_string(&path).expect("svg written");
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..80]
    );
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("<polyline") || svg.contains("<path"));
    for label in [
        "noisy-line",
        "stepped",
        "headroom",
        "fuse rating",
        "limit sent",
        "time (min)",
    ] {
        assert!(svg.contains(label), "{label}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn with_no_arguments_the_default_scenario_runs_in_both_modes_and_is_plotted() {
    let dir = scratch("default");
    let out = Command::new(env!("CARGO_BIN_EXE_p1lb"))
        .arg("simulate")
        .current_dir(&dir)
        .output()
        .expect("run p1lb");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Mode: stepped") && text.contains("Mode: headroom"),
        "{text}"
    );
    assert!(text.contains("evening-peak"), "{text}");
    assert!(dir.join("simulation.svg").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_recorded_p1_stream_is_the_house() {
    let seed = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/telegrams/nl-esmr50-sagemcom-t210d-seed.txt");
    let doc = json(&p1lb(&[
        "simulate",
        "--p1-log",
        seed.to_str().expect("utf-8 path"),
        "--json",
    ]));
    let runs = doc["scenarios"].as_array().expect("array");
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert_eq!(r["name"], "p1-log:nl-esmr50-sagemcom-t210d-seed.txt");
        // A quiet house (0.1 and 0.2 kW): the car charges at full power.
        let pct = r["oracle_pct"].as_f64().expect("pct");
        assert!(pct > 90.0 && pct <= 101.0, "{r}");
        assert!(r["ev_energy_kwh"].as_f64().expect("kWh") > 9.0, "{r}");
        assert_eq!(r["trips"], 0);
    }
    // A file with no telegram is an error.
    let dir = scratch("p1log");
    let junk = dir.join("junk.txt");
    std::fs::write(&junk, b"no telegram here\r\n").expect("write");
    let out = p1lb(&["simulate", "--p1-log", junk.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no valid telegram"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_config_file_applies_and_a_bad_one_is_a_clear_error() {
    let dir = scratch("config");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p.to_string_lossy().into_owned()
    };
    let good = write(
        "good.toml",
        "# tighter limits\nupper_current = 20000\nlower_current = 17000\n",
    );
    let doc = json(&p1lb(&[
        "simulate",
        "--scenario",
        "noisy-line",
        "--mode",
        "headroom",
        "--config",
        &good,
        "--json",
    ]));
    assert_eq!(doc["scenarios"][0]["upper_limit_a"].as_f64(), Some(20.0));

    let cases = [
        (
            "range.toml",
            "phases = 2\n",
            "phases (1011) = 2 is out of range: allowed [1, 3]",
        ),
        (
            "big.toml",
            "upper_current = 70000\n",
            "upper_current (1015) = 70000 is out of range: allowed 0 … 65535 mA",
        ),
        (
            "unknown.toml",
            "upper_curent = 22000\n",
            "unknown setting `upper_curent`",
        ),
        (
            "type.toml",
            "alarm_wait = \"1\"\n",
            "alarm_wait (1013) must be an integer",
        ),
        (
            "rule.toml",
            "lower_current = 23000\n",
            "lower_current (1018) must be < upper_current (1015)",
        ),
        ("syntax.toml", "upper_current = = 1\n", "--config"),
    ];
    for (name, text, want) in cases {
        let path = write(name, text);
        let out = p1lb(&[
            "simulate",
            "--scenario",
            "noisy-line",
            "--config",
            &path,
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{name}: {err}");
        assert!(err.contains(name), "{name}: the file is named: {err}");
        assert!(out.stdout.is_empty(), "{name}");
    }
    let out = p1lb(&["simulate", "--config", "/nonexistent/p1lb.toml", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let out = p1lb(&["simulate", "--scenario", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}

/// The 97 % goal of issue 3, where a causal balancer can reach it under the rules:
/// these scenarios reach it in headroom mode (with no trip and ≤ 3 s above the fuse per
/// step, checked above), the others are held to what they reach now on a real bus (the
/// charger read every 2 s, the car 2 s late).
#[test]
fn headroom_reaches_97_percent_of_the_oracle_where_it_can() {
    let runs = all();
    for name in ["solar-day", "single-phase-car", "long-day"] {
        let pct = entry(runs, name, "headroom")["oracle_pct"]
            .as_f64()
            .expect("pct");
        assert!(pct >= 97.0, "{name}: {pct} % of the oracle");
    }
    for (name, floor) in [
        ("evening-peak", 96.4),
        ("single-phase-home", 95.7),
        ("meter-dropout", 94.2),
        ("noisy-line", 93.4),
        ("oven-evening", 92.8),
    ] {
        let pct = entry(runs, name, "headroom")["oracle_pct"]
            .as_f64()
            .expect("pct");
        assert!(pct >= floor, "{name}: {pct} % of the oracle, was ≥ {floor}");
    }
}

/// Every scenario in headroom mode through the library, for the yardsticks, with the
/// car `delay_ms` late.
fn headroom_metrics_at(delay_ms: u64) -> Vec<(&'static str, Metrics)> {
    SINGLE
        .iter()
        .map(|&name| {
            let mut s = scenario::by_name(name).expect("scenario");
            s.set_car_delay_ms(delay_ms);
            let cfg = config_for(&s, &[], ControlMode::Headroom).expect("config");
            (name, runner::run(&s, &cfg, false).metrics)
        })
        .collect()
}

/// [`headroom_metrics_at`] with the scenarios' own delay (2 s), once for all tests.
fn headroom_metrics() -> &'static Vec<(&'static str, Metrics)> {
    static RUNS: OnceLock<Vec<(&'static str, Metrics)>> = OnceLock::new();
    RUNS.get_or_init(|| headroom_metrics_at(p1lb_sim::car::DEFAULT_DELAY_MS))
}

/// What no balancer can beat, and why 97 % is out of reach in some scenarios.
///
/// - Forced fallback: in `meter-dropout` the rules hold every balancer at the fallback
///   limit (0 A by default) for 152 s; the oracle, knowing the house, charges through
///   them. That alone is ≥ 2.4 % of the oracle's energy: no balancer that obeys the
///   rules gets above 97.6 %.
/// - Without a forecast: the reactive yardstick that rides every gap (perfect knowledge
///   of the house as of each valid telegram, the real delays) gets ~100 % (97.3 % with
///   the dropouts) — the delay itself costs no energy — but only by overshooting at the
///   end of every short gap of a pulsing load: minutes above the fuse rating. The
///   yardstick that, like headroom mode, holds a pulsing load's peak (and rides long
///   gaps at once), with perfect knowledge and no margin, stays below 97 % in
///   `meter-dropout` and `noisy-line`: 97 % there needs a forecast of when each short
///   gap ends.
#[test]
fn the_yardsticks_bound_what_a_causal_balancer_can_reach() {
    for (name, m) in headroom_metrics() {
        let [ride_all, hold, ride_margin, hold_margin] = m.reactive;
        // Headroom mode is a causal balancer: never above the yardsticks that know the
        // house exactly and keep no margin.
        assert!(
            m.oracle_pct <= ride_all.oracle_pct + 0.1,
            "{name}: {} vs ride-all {}",
            m.oracle_pct,
            ride_all.oracle_pct
        );
        assert!(
            m.oracle_pct <= hold.oracle_pct + 0.1,
            "{name}: {} vs hold {}",
            m.oracle_pct,
            hold.oracle_pct
        );
        // The margin costs energy: the same policy with headroom's margin gets less.
        assert!(
            ride_margin.oracle_pct <= ride_all.oracle_pct + 0.05,
            "{name}: ride with margin {} vs ride-all {}",
            ride_margin.oracle_pct,
            ride_all.oracle_pct
        );
        assert!(
            hold_margin.oracle_pct <= hold.oracle_pct + 0.05,
            "{name}: hold with margin {} vs hold {}",
            hold_margin.oracle_pct,
            hold.oracle_pct
        );
    }
    let get = |n: &str| {
        headroom_metrics()
            .iter()
            .find(|(name, _)| *name == n)
            .map(|(_, m)| *m)
            .expect("scenario")
    };
    let dropout = get("meter-dropout");
    let forced = 100.0 * dropout.oracle_energy_in_fallback_kwh / dropout.oracle_energy_kwh;
    assert!(
        forced >= 2.4,
        "oracle energy in forced fallback: {forced} %"
    );
    assert!(100.0 - forced < 97.6);
    // Even riding every gap with perfect knowledge, a balancer that keeps headroom mode's
    // margin below the upper limit stays below 97 % there.
    assert!(
        dropout.reactive[2].oracle_pct < 97.0,
        "meter-dropout, ride every gap with the margin: {:?}",
        dropout.reactive[2]
    );
    for n in ["meter-dropout", "noisy-line"] {
        let m = get(n);
        assert!(m.reactive[1].oracle_pct < 97.0, "{n}: {:?}", m.reactive[1]);
        // The price of riding the short gaps instead: minutes above the fuse rating.
        assert!(
            m.reactive[0].seconds_over_fuse > 100.0
                && m.reactive[0].seconds_over_fuse > 4.0 * m.seconds_over_fuse,
            "{n}: {:?}",
            m.reactive[0]
        );
    }
}

/// Issue 14's energy criterion, settled: the causal bound ("hold the peak": perfect
/// knowledge of the house as of each telegram, the same car, delay and bus, the same
/// rules) with headroom mode's 0.3 A margin below the upper limit. Headroom mode, which
/// only sees the meter and a charger read every 2 s, reaches it within 0.5 points in
/// every scenario for a car 1 or 2 s late, and within 0.6 for a car 3 s late (the one
/// miss: `noisy-line`, 0.54 points, where 15 % of the telegrams are lost and a raise's
/// answer waits for the next pair of a telegram and a read-back).
///
/// The same yardstick without the margin (`causal_bound_pct`) is out of reach within
/// the rules: it sits on the upper limit and spends longer above it than stepped mode
/// in every scenario with a busy kitchen, which registers.md forbids headroom mode.
#[test]
fn headroom_reaches_the_causal_bound_on_a_real_bus_for_every_car_delay() {
    for delay_ms in [1000, 2000, 3000] {
        let runs = if delay_ms == p1lb_sim::car::DEFAULT_DELAY_MS {
            headroom_metrics().clone()
        } else {
            headroom_metrics_at(delay_ms)
        };
        let slack = if delay_ms < 3000 { 0.5 } else { 0.6 };
        for (name, m) in &runs {
            let bound = m.causal_bound_margin_pct;
            assert!(
                m.oracle_pct >= bound - slack,
                "{name}, car {delay_ms} ms late: headroom {:.2} % vs causal bound {bound:.2} %",
                m.oracle_pct
            );
            assert_eq!(m.trips, 0, "{name} {delay_ms}");
            // The reaction to a load step: the car's delay, a telegram, a second to
            // come down.
            let reaction_s = delay_ms as f64 / 1000.0 + 1.0;
            assert!(
                m.longest_over_fuse_s <= reaction_s,
                "{name} {delay_ms}: {} s above the fuse in one stretch",
                m.longest_over_fuse_s
            );
        }
    }
    for (name, m) in headroom_metrics() {
        let s = entry(all(), name, "stepped");
        let f = |k: &str| s[k].as_f64().unwrap_or(f64::NAN);
        let no_margin = m.reactive[runner::CAUSAL_BOUND];
        if [
            "evening-peak",
            "noisy-line",
            "long-day",
            "single-phase-home",
        ]
        .contains(name)
        {
            assert!(
                no_margin.seconds_over_upper > f("seconds_over_upper"),
                "{name}: the no-margin bound {} s above the upper limit, stepped {} s",
                no_margin.seconds_over_upper,
                f("seconds_over_upper")
            );
        }
    }
}

/// Issue 14: the evening in which headroom mode collapsed on a real bus (the charger's
/// currents read on the driver's 2 s schedule, lagging the meter; the car following
/// 1–3 s late): it charges far more than stepped mode, with less time above the fuse
/// and no trip. (Before the fix: 70.6 / 17.8 / 23.6 % of the oracle at 1 / 2 / 3 s,
/// stepped 86.3 / 43.5 / 45.8 %.)
#[test]
fn headroom_holds_on_a_real_bus_for_every_car_delay() {
    for delay_ms in [1000, 2000, 3000] {
        let mut s = scenario::by_name("oven-evening").expect("scenario");
        s.car.delay_ms = delay_ms;
        let run = |mode| {
            let cfg = config_for(&s, &[], mode).expect("config");
            runner::run(&s, &cfg, false).metrics
        };
        let (st, hr) = (run(ControlMode::Stepped), run(ControlMode::Headroom));
        let what = format!(
            "delay {delay_ms} ms: headroom {:.1} % (causal bound with margin {:.1} %), stepped {:.1} %",
            hr.oracle_pct, hr.causal_bound_margin_pct, st.oracle_pct
        );
        assert!(hr.oracle_pct >= hr.causal_bound_margin_pct - 0.5, "{what}");
        assert!(hr.ev_energy_kwh >= st.ev_energy_kwh * 1.05, "{what}");
        assert_eq!(hr.trips, 0, "{what}");
        assert!(
            hr.seconds_over_fuse <= st.seconds_over_fuse,
            "{what}: {} s above the fuse vs stepped {} s",
            hr.seconds_over_fuse,
            st.seconds_over_fuse
        );
        assert_eq!(hr.implausible_readbacks, 0, "{what}");
    }
}

/// Every entry has one `chargers` entry per charger (`energy_kwh`, `paused_s`,
/// `longest_wait_s` first) and `fairness`; a single charger's is the run's car.
#[test]
fn every_entry_has_its_chargers_and_fairness() {
    for r in all() {
        let what = format!("{} {}", r["name"], r["mode"]);
        let chargers = r["chargers"].as_array().expect("chargers");
        let want = match r["name"].as_str() {
            Some("two-cars-priority") => 2,
            Some("four-cars") => 4,
            _ => 1,
        };
        assert_eq!(chargers.len(), want, "{what}");
        for c in chargers {
            let keys: Vec<&str> = c
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                &keys[..3],
                ["energy_kwh", "paused_s", "longest_wait_s"],
                "{what}"
            );
            // Every car charges (`oven-evening` lasts 150 s; a solar-only charge may
            // find no sun worth starting for).
            let floor = if want > 1 { 1.0 } else { 0.05 };
            assert!(
                c["energy_kwh"].as_f64().expect("kWh") > floor || r["charge_mode"] == "solar-only",
                "{what}: {c}"
            );
        }
        let fairness = r["fairness"].as_f64().expect("fairness");
        assert!(fairness > 0.0 && fairness <= 1.0, "{what}");
        if want == 1 {
            assert_eq!(fairness, 1.0, "{what}");
            assert_eq!(chargers[0]["longest_wait_s"], 0, "{what}");
            let (a, b) = (
                chargers[0]["energy_kwh"].as_f64(),
                r["ev_energy_kwh"].as_f64(),
            );
            assert!((a.expect("kWh") - b.expect("kWh")).abs() < 0.0011, "{what}");
        }
        assert!(r["causal_bound_pct"].is_number(), "{what}");
    }
}

/// The wiring learned: a single-phase car on L1 (wiring 0) with the kitchen on L2/L3,
/// and one behind a rotated three-phase charger (1040 = 5) landing on L2, are limited by
/// their own phase only — a balancer that watched every phase (or took the charger's L1
/// for grid L1) would pause them whenever the oven or the hob is on.
#[test]
fn a_learned_or_rotated_wiring_limits_the_car_by_its_own_phase() {
    for (name, phase) in [("kitchen-l2-l3", "L1"), ("rotated-wiring", "L2")] {
        for mode in ["stepped", "headroom"] {
            let r = entry(all(), name, mode);
            assert_eq!(r["chargers"][0]["phases"], phase, "{name} {mode}");
            let pct = r["oracle_pct"].as_f64().expect("pct");
            assert!(pct >= 98.0, "{name} {mode}: {pct} % of the oracle");
            assert_eq!(r["trips"], 0);
            assert!(
                r["longest_over_fuse_s"].as_f64().expect("s") <= 3.0,
                "{name} {mode}"
            );
        }
    }
}

/// Several chargers: every car charges, no car waits longer than 15 minutes while
/// another of its priority charges (and in `four-cars` they do take turns), equal
/// priorities share the energy fairly, the higher priority gets more of the shared
/// current and pauses far less, and the grid is no longer above the fuse than the
/// causal bound's own cars are (the reaction to each load step, ≤ 3 s).
#[test]
fn several_chargers_share_by_priority_and_turns() {
    for mode in ["stepped", "headroom"] {
        let four = entry(all(), "four-cars", mode);
        let chargers = four["chargers"].as_array().expect("chargers");
        let waits: Vec<u64> = chargers
            .iter()
            .map(|c| c["longest_wait_s"].as_u64().expect("s"))
            .collect();
        assert!(waits.iter().all(|&w| w <= 900), "{mode}: {waits:?}");
        assert!(
            waits.iter().any(|&w| w >= 300),
            "{mode}: turns taken: {waits:?}"
        );
        let fairness = four["fairness"].as_f64().expect("fairness");
        assert!(fairness >= 0.98, "{mode}: fairness {fairness}");
        assert_eq!(four["trips"], 0);

        let two = entry(all(), "two-cars-priority", mode);
        let c = two["chargers"].as_array().expect("chargers");
        let f = |k: usize, key: &str| c[k][key].as_f64().expect("number");
        assert_eq!(
            (c[0]["priority"].as_u64(), c[1]["priority"].as_u64()),
            (Some(1), Some(2))
        );
        assert!(
            f(1, "ampere_hours") > f(0, "ampere_hours") * 1.1,
            "{mode}: priority 2 {} A·h, priority 1 {} A·h",
            f(1, "ampere_hours"),
            f(0, "ampere_hours")
        );
        assert!(f(1, "paused_s") * 5.0 < f(0, "paused_s"), "{mode}: {c:?}");
        assert_eq!(c[0]["phases"], "L1L2L3");
        assert_eq!(c[1]["phases"], "L1");
    }
    for name in SHARED {
        let mut s = scenario::by_name(name).expect("scenario");
        s.set_car_delay_ms(p1lb_sim::car::DEFAULT_DELAY_MS);
        let cfg = config_for(&s, &[], ControlMode::Headroom).expect("config");
        let m = runner::run(&s, &cfg, false).metrics;
        let bound = m.reactive[runner::CAUSAL_BOUND];
        // A causal balancer: never above the yardstick that knows the house exactly.
        assert!(m.oracle_pct <= bound.oracle_pct + 0.1, "{name}: {m:?}");
        assert!(
            m.oracle_pct >= 90.0,
            "{name}: {} % of the oracle",
            m.oracle_pct
        );
        assert!(
            m.seconds_over_fuse <= bound.seconds_over_fuse * 1.1 + 5.0,
            "{name}: {} s above the fuse, the causal bound's cars {} s",
            m.seconds_over_fuse,
            bound.seconds_over_fuse
        );
        assert!(
            m.longest_over_fuse_s <= 3.0,
            "{name}: {}",
            m.longest_over_fuse_s
        );
        assert_eq!(m.house_seconds_over_fuse, 0.0, "{name}");
    }
}

/// Every entry ends with the capacity keys, in order, then the solar keys; without a
/// capacity mode the target, the quarters over it, the oracle and the saving are `null`
/// and the rest is measured all the same.
#[test]
fn every_entry_has_the_capacity_keys() {
    for r in all() {
        let keys: Vec<&str> = r
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let capacity_end = keys.len() - SOLAR_KEYS.len();
        assert_eq!(
            &keys[capacity_end - CAPACITY_KEYS.len()..capacity_end],
            CAPACITY_KEYS,
            "{}",
            r["name"]
        );
        let capacity = CAPACITY.iter().any(|n| r["name"] == *n);
        assert!(r["quarter_peak_kw"].as_f64().expect("peak") > 0.0, "{r}");
        let months = r["month_peak_kw"].as_array().expect("months");
        assert_eq!(months.len(), 1, "{r}");
        let cost = r["capacity_cost_eur_per_year"].as_f64().expect("cost");
        assert!(cost >= 2.5 * 40.4 - 1e-9, "{r}");
        for k in [
            "capacity_target_kw",
            "quarters_over_target",
            "capacity_oracle_pct",
            "capacity_saving_eur_per_year",
        ] {
            assert_eq!(r[k].is_null(), !capacity, "{} {k}: {}", r["name"], r[k]);
        }
    }
    for name in CAPACITY {
        for mode in ["stepped", "headroom"] {
            let r = entry(all(), name, mode);
            // A day from 17:00: 96 full quarters, one car session.
            assert_eq!(r["quarters_full"], 96, "{r}");
            assert_eq!(r["car_sessions"], 1, "{r}");
            // The capacity oracle meets the car's need overnight.
            let oracle = r["capacity_oracle_energy_kwh"].as_f64().expect("oracle");
            assert!(oracle > 17.9, "{r}");
            // The house alone stays under the target (the goals below are the car's).
            assert_eq!(r["house_quarters_over_target"], 0, "{r}");
        }
    }
}

/// The goals of issue 17 for every capacity scenario: no full quarter above the target
/// (in `capacity-follow-peak`: above the month's 6 kW peak), at least 95 % of the
/// capacity oracle's energy, and in `capacity-evening` the car full before it leaves
/// at 07:30 (13.5 h after it plugs in); and a saving against the same run with
/// capacity mode off. (Without the controller the car charges at full power on top of
/// the house: quarters of 8–13.5 kW.)
#[test]
fn capacity_goals() {
    let mut missed = Vec::new();
    for name in CAPACITY {
        for mode in ["stepped", "headroom"] {
            let r = entry(all(), name, mode);
            if r["quarters_over_target"] != 0 {
                missed.push(format!(
                    "{name} {mode}: {} quarter(s) over",
                    r["quarters_over_target"]
                ));
            }
            let pct = r["capacity_oracle_pct"].as_f64().expect("pct");
            if pct < 95.0 {
                missed.push(format!("{name} {mode}: {pct} % of the capacity oracle"));
            }
            let saving = r["capacity_saving_eur_per_year"].as_f64().expect("saving");
            if saving <= 0.0 {
                missed.push(format!("{name} {mode}: saves {saving} €/year"));
            }
        }
    }
    for mode in ["stepped", "headroom"] {
        let r = entry(all(), "capacity-evening", mode);
        let full = r["hours_to_full"].as_f64();
        if !full.is_some_and(|h| h <= 13.5) {
            missed.push(format!("capacity-evening {mode}: full after {full:?} h"));
        }
    }
    assert!(missed.is_empty(), "{missed:#?}");
}

/// A month of days from the library: each day drawn anew (weekends different), the
/// car's sessions repeated, the clock across the end of summer time and a month end.
#[test]
fn a_run_of_days_varies_its_days_and_crosses_dst_and_the_month() {
    use p1lb_sim::house::Kind;
    use p1lb_sim::scenario::Load;
    use p1lb_sim::time::{DAY_S, Stamp};
    let s = scenario::by_name("capacity-1phase-40a").expect("scenario");
    let m = s.over_days(30);
    assert_eq!(m.duration_s, 30 * DAY_S);
    assert_eq!(m.car.sessions.len(), 30);
    assert_eq!(m.car.sessions[0], s.car.sessions[0]);
    for w in m.car.sessions.windows(2) {
        assert!(w[0].leave_s <= w[1].arrive_s, "{w:?}");
    }
    let Load::Model(house) = &m.load else {
        panic!("a modelled house");
    };
    // Lunch on Saturdays and Sundays only (25 and 26 October, 1 and 2 November …).
    let lunches: Vec<Stamp> = house
        .events
        .iter()
        .filter(|e| e.kind == Kind::Hob)
        .map(|e| Stamp::after(m.start, e.start_s))
        .filter(|t| (12.0..13.0).contains(&t.local.hour_f()))
        .collect();
    assert!(lunches.len() >= 8, "{lunches:?}");
    assert!(lunches.iter().all(|t| t.local.weekday() >= 5));
    // Not every day is the same: washing on some days only.
    let washes = house
        .events
        .iter()
        .filter(|e| e.kind == Kind::WashingMachine)
        .count();
    assert!((15..30).contains(&washes), "{washes}");
    // The meter's clock at the end: 30 days on, an hour earlier (summer time ended).
    let end = Stamp::after(m.start, m.duration_s);
    assert_eq!(&end.dsmr(), b"251121160000W");
}

/// A Belgian recording (made here with the simulator's own meter: an hour of 2.3 kW
/// from 17:00) replayed: its quarters from its 1.8.x, its 1.4.0 and 1.6.0, and the run
/// with capacity mode on, as the mode would have done, beside the same run with it off.
#[test]
fn an_emucs_recording_reports_its_quarters_and_the_capacity_mode() {
    use p1lb_sim::meter::{Flavour, Meter, MeterSpec};
    use p1lb_sim::time::DateTime;
    let mut spec = MeterSpec::healthy(Flavour::Emucs, 3);
    spec.history = true;
    let mut meter = Meter::new(&spec, DateTime::new(2025, 1, 15, 17, 0), 3);
    let mut bytes = Vec::new();
    for t in 0..3600 {
        // 2.3 kW, then 4.6 kW in the third quarter.
        let a = if (1800..2700).contains(&t) {
            20.0 / 3.0
        } else {
            10.0 / 3.0
        };
        bytes.extend_from_slice(meter.second(t, [a; 3], [230.0; 3]));
    }
    let dir = scratch("emucs-log");
    let path = dir.join("be.txt");
    std::fs::write(&path, &bytes).expect("write");
    let doc = json(&p1lb(&[
        "simulate",
        "--p1-log",
        path.to_str().expect("utf-8"),
        "--mode",
        "headroom",
        "--json",
    ]));
    let r = &doc["scenarios"][0];
    let rec = &r["recording"];
    let q = rec["quarters"].as_array().expect("quarters");
    assert_eq!(q.len(), 4, "{rec}");
    assert_eq!(q[0]["start"], "250115170000W");
    // Full: the first three (the last has no next quarter to end it).
    assert_eq!(rec["full_quarters"], 3, "{rec}");
    let avg = |i: usize| q[i]["average_kw"].as_f64().expect("kW");
    let demand = |i: usize| q[i]["demand_1_4_0_kw"].as_f64().expect("kW");
    assert!(
        (avg(0) - 2.3).abs() < 0.01 && (avg(2) - 4.6).abs() < 0.01,
        "{rec}"
    );
    assert!(
        (demand(0) - 2.3).abs() < 0.01 && (demand(2) - 4.6).abs() < 0.01,
        "{rec}"
    );
    assert!((rec["quarter_peak_kw"].as_f64().expect("kW") - 4.6).abs() < 0.01);
    // 1.6.0: 2.589 kW before (the model meter's), 4.6 kW once the third quarter ended.
    assert_eq!(rec["month_peak_kw_at_start"], 2.589);
    let end = rec["month_peak_kw_at_end"].as_f64().expect("kW");
    assert!((end - 4.6).abs() < 0.01, "{rec}");
    // The run: capacity mode on at the default 2.5 kW target, the saving beside it.
    assert_eq!(r["capacity_mode"], "target");
    assert_eq!(r["capacity_target_kw"], 2.5);
    assert!(r["capacity_saving_eur_per_year"].is_number(), "{r}");
    assert!(r["capacity_oracle_pct"].is_number(), "{r}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A solar scenario's goal figures from a run through the library: % of the EV's energy
/// from surplus, % of the solar oracle, starts, sun hours, limit changes per hour and the
/// 1 A-step baseline's.
fn solar_figures(r: &runner::RunResult) -> [f64; 6] {
    let s = &r.solar;
    let ev = s.ev_solar_kwh + s.ev_grid_kwh;
    let from_sun = if ev > 1e-9 {
        100.0 * s.ev_solar_kwh / ev
    } else {
        100.0
    };
    [
        from_sun,
        s.oracle_pct,
        f64::from(s.charge_starts),
        s.sun_h,
        r.metrics.limit_changes_per_hour,
        s.step1a.map_or(f64::NAN, |x| x.limit_changes_per_hour),
    ]
}

/// The goals of issue 18 for solar only, on `what`'s figures ([`solar_figures`]):
/// ≥ 95 % of the EV's energy from surplus, ≥ 90 % of the solar oracle's energy, limit
/// changes per hour at most half the 1 A-step baseline's on the same day, and with
/// `clouds` at most one start per 30 minutes of sun (the first start allowed).
/// The goals that conflict on a day whose surplus drops under a three-phase car's
/// minimum again and again (≥ 95 % from surplus and at most a start per 30 min of sun:
/// every cloud is either imported through at the minimum or a start; issue 18 is blocked
/// on which wins) are checked only where `strict`; the misses of the others are printed.
fn solar_only_misses(
    what: &str,
    f: [f64; 6],
    strict: bool,
    missed: &mut Vec<String>,
    conflicting: &mut Vec<String>,
) {
    let [from_sun, oracle, starts, sun_h, changes, step1a] = f;
    let conflict = if strict { &mut *missed } else { conflicting };
    if from_sun < 95.0 {
        conflict.push(format!(
            "{what}: {from_sun:.1} % of the EV's energy from surplus"
        ));
    }
    if starts > (2.0 * sun_h).max(1.0) {
        conflict.push(format!("{what}: {starts} starts in {sun_h:.2} h of sun"));
    }
    if oracle < 90.0 {
        missed.push(format!(
            "{what}: {oracle:.1} % of the solar oracle's energy"
        ));
    }
    // (A missing baseline, NaN, is a miss too.)
    if changes.is_nan() || step1a.is_nan() || changes > step1a / 2.0 {
        missed.push(format!(
            "{what}: {changes:.1} limit changes/h, the 1 A-step baseline {step1a:.1}/h"
        ));
    }
}

/// Every entry ends with the solar keys; a solar scenario's figures add up, from the
/// physics alone (whatever the balancer does): the EV's energy is its surplus part and
/// its grid part, no car takes more surplus than the house has, the sun is the limit
/// (each solar-only car needs more than the solar oracle could give it), the winter day
/// has little sun, and the single-phase car can use far more of the same sun than the
/// three-phase one. The baseline's own figures: it follows the clouds (hundreds of
/// changes an hour) and starts more than once per 30 minutes of sun.
#[test]
fn every_entry_has_the_solar_keys_and_they_add_up() {
    for r in all() {
        let name = r["name"].as_str().expect("name");
        let what = format!("{name} {}", r["mode"]);
        let keys: Vec<&str> = r
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(&keys[keys.len() - SOLAR_KEYS.len()..], SOLAR_KEYS, "{what}");
        let f = |k: &str| {
            r[k].as_f64()
                .unwrap_or_else(|| panic!("{what}: {k} {}", r[k]))
        };
        let solar = SOLAR.contains(&name);
        let want_mode = match name {
            "solar-evening-min" => "min-solar",
            _ if solar => "solar-only",
            _ => "fast",
        };
        assert_eq!(r["charge_mode"], want_mode, "{what}");
        let panels = solar || ["solar-day", "long-day"].contains(&name);
        assert_eq!(r["pv_kwh"].is_number(), panels, "{what}");
        assert_eq!(
            r["step1a_limit_changes_per_hour"].is_number(),
            solar,
            "{what}"
        );
        assert_eq!(
            r["below_min_s"].is_number(),
            want_mode == "min-solar",
            "{what}"
        );
        let ev = f("ev_solar_kwh") + f("ev_grid_kwh");
        assert!(
            (ev - f("ev_energy_kwh")).abs() <= 0.01 * f("ev_energy_kwh") + 0.01,
            "{what}: {ev} vs {}",
            f("ev_energy_kwh")
        );
        assert!(f("ev_solar_kwh") <= f("surplus_kwh") + 0.01, "{what}");
        assert!(
            f("solar_oracle_energy_kwh") <= f("surplus_kwh") + 0.01,
            "{what}"
        );
        if panels {
            assert!(f("surplus_kwh") < f("pv_kwh"), "{what}");
        }
        if !solar {
            continue;
        }
        assert!(f("pv_kwh") > 5.0 && f("car_connected_h") > 4.0, "{what}");
        if want_mode == "solar-only" {
            let s = scenario::by_name(name).expect("scenario");
            let x = s.car.sessions[0];
            let need = s.car.battery_kwh * (x.soc_target - x.soc_start);
            assert!(
                need > f("solar_oracle_energy_kwh") + 5.0,
                "{what}: the car needs {need} kWh, the sun gives {}",
                f("solar_oracle_energy_kwh")
            );
        }
    }
    for mode in ["stepped", "headroom"] {
        let f = |name: &str, k: &str| entry(all(), name, mode)[k].as_f64().expect(k);
        assert!(f("solar-winter", "sun_h") < 1.5 && f("solar-winter", "pv_kwh") < 15.0);
        assert!(
            f("solar-sunny", "sun_h") > 5.0,
            "{}",
            f("solar-sunny", "sun_h")
        );
        assert_eq!(f("solar-1phase", "pv_kwh"), f("solar-3phase", "pv_kwh"));
        assert!(
            f("solar-1phase", "solar_oracle_energy_kwh")
                > 3.0 * f("solar-3phase", "solar_oracle_energy_kwh"),
            "{mode}"
        );
        // The baseline follows every cloud, and restarts after them.
        assert!(f("solar-clouds", "step1a_limit_changes_per_hour") > 100.0);
        assert!(
            f("solar-clouds", "step1a_charge_starts") > 2.0 * f("solar-clouds", "sun_h"),
            "{mode}"
        );
    }
}

/// The clouds day's house: its surplus jumps between ~0 and ~6 kW within seconds, many
/// times an hour.
#[test]
fn the_clouds_day_jumps_between_0_and_6_kw_within_seconds() {
    use p1lb_sim::house::House;
    use p1lb_sim::scenario::Load;
    let s = scenario::by_name("solar-clouds").expect("scenario");
    let Load::Model(spec) = &s.load else {
        panic!("a modelled house");
    };
    let mut house = House::new(spec, s.start, s.duration_s, s.seed);
    let surplus: Vec<f64> = (0..s.duration_s)
        .map(|t| -house.load(t).iter().sum::<f64>() * 230.0 / 1000.0)
        .collect();
    let top = surplus.iter().copied().fold(f64::MIN, f64::max);
    assert!((5.5..7.5).contains(&top), "{top}");
    let jumps = surplus
        .windows(10)
        .filter(|w| {
            let (lo, hi) = w
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            lo < 1.0 && hi > 4.5
        })
        .count();
    // Seconds in a 10 s window spanning < 1 kW and > 4.5 kW: every cloud edge (two per
    // cloud, a few seconds each).
    assert!(jumps > 300, "{jumps}");
}

/// The goals of issue 18 (the simulator's, every solar scenario, both control modes,
/// the car 2 s late on the bus's real schedule; the clouds day also 1 s and 3 s late,
/// headroom mode):
/// solar only — ≥ 95 % of the EV's energy from surplus, ≥ 90 % of the solar oracle's
/// energy, limit changes per hour at most half of the 1 A-step baseline's on the same
/// day, and on the clouds day at most one start per 30 minutes of sun; minimum + solar
/// — the value sent never below the minimum while a car that wants to charge is plugged
/// in, unless the fuse rules cut it ([`runner::Solar::below_min_fuse_s`]).
///
/// All of them on the sunny day; on the days whose surplus keeps dropping under the
/// car's minimum (clouds, winter, and the April day of both cars) the share from surplus
/// and the starts per 30 min of sun are printed, not asserted: with the issue's own start
/// and stop rules (60 s / 180 s) each dip is either imported through at the minimum or a
/// start, so both cannot hold (see the README's "Solar charging" and issue 18's note).
#[test]
fn solar_goals() {
    let mut missed = Vec::new();
    let mut conflicting = Vec::new();
    for name in SOLAR {
        for mode in ["stepped", "headroom"] {
            let r = entry(all(), name, mode);
            let what = format!("{name} {mode}");
            if *name == "solar-evening-min" {
                if r["below_min_s"] != 0 {
                    missed.push(format!("{what}: {} s below the minimum", r["below_min_s"]));
                }
                continue;
            }
            let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            let figures = [
                f("ev_solar_pct"),
                f("solar_oracle_pct"),
                f("charge_starts"),
                f("sun_h"),
                f("limit_changes_per_hour"),
                f("step1a_limit_changes_per_hour"),
            ];
            solar_only_misses(
                &what,
                figures,
                *name == "solar-sunny",
                &mut missed,
                &mut conflicting,
            );
        }
    }
    // (A charge on surplus runs headroom mode whatever 1023 says: one mode here.)
    for delay_ms in [1000, 3000] {
        let mut s = scenario::by_name("solar-clouds").expect("scenario");
        s.set_car_delay_ms(delay_ms);
        let cfg = config_for(&s, &[], ControlMode::Headroom).expect("config");
        let r = runner::run(&s, &cfg, false);
        let what = format!("solar-clouds headroom, car {delay_ms} ms late");
        solar_only_misses(
            &what,
            solar_figures(&r),
            false,
            &mut missed,
            &mut conflicting,
        );
    }
    eprintln!("goals in conflict, not met: {conflicting:#?}");
    assert!(missed.is_empty(), "{missed:#?}");
}
