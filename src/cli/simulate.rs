//! `p1lb simulate`: runs the simulator's scenarios (or a recorded P1 stream) in one or
//! both control modes, faster than real time, and prints a table per mode or the JSON
//! contract; optionally plots every run to one SVG.
//!
//! The JSON contract (stable): one object `{"scenarios": [...]}`, one entry per
//! scenario and mode, with at least the keys `name`, `mode`, `ev_energy_kwh`,
//! `oracle_energy_kwh`, `oracle_pct`, `seconds_over_upper`, `seconds_over_fuse`,
//! `max_phase_current_a`, `limit_changes_per_hour`, `seconds_in_fallback` and `trips`,
//! in that order; more keys follow (see [`json_entry`]), then the capacity tariff's
//! and last the solar charge modes' (both present in every entry, `null` where they do
//! not apply).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use p1lb_core::config::{
    CapacityMode, ChargeMode, Config, ConfigError, ControlMode, Range, SETTINGS, Setting,
    setting_named,
};
use serde_json::{Value, json};

use p1lb_sim::plot;
use p1lb_sim::replay::Recording;
use p1lb_sim::runner::{self, RunResult, mode_name};
use p1lb_sim::scenario::{self, Load, Scenario};

/// Which control modes to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ModeChoice {
    /// Register 1023 = 0: the original stepped rules.
    Stepped,
    /// Register 1023 = 1: steps sized from the measured headroom.
    Headroom,
    /// Both, one after the other.
    #[default]
    Both,
}

impl ModeChoice {
    fn modes(self) -> &'static [ControlMode] {
        match self {
            ModeChoice::Stepped => &[ControlMode::Stepped],
            ModeChoice::Headroom => &[ControlMode::Headroom],
            ModeChoice::Both => &[ControlMode::Stepped, ControlMode::Headroom],
        }
    }
}

/// What to simulate and how to report it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A scenario name or `all`; `None` = the default scenario.
    pub scenario: Option<String>,
    /// Replay this recorded P1 stream as the house instead.
    pub p1_log: Option<PathBuf>,
    /// Control modes to run.
    pub mode: ModeChoice,
    /// A TOML file of `setting_name = value` pairs applied over the defaults.
    pub config: Option<PathBuf>,
    /// Write the SVG chart here.
    pub plot: Option<PathBuf>,
    /// Print the JSON contract instead of tables.
    pub json: bool,
    /// Override every scenario's seed.
    pub seed: Option<u64>,
    /// Override every scenario's car delay (from the charger applying a limit to the
    /// car following it), ms.
    pub car_delay_ms: Option<u64>,
    /// Run every scenario over this many days ([`Scenario::over_days`]).
    pub days: Option<u32>,
}

/// The chart written when no `--plot` is given and the output is the table.
pub const DEFAULT_PLOT: &str = "simulation.svg";

/// Runs what `opts` asks for, printing to `out`; returns the runs. Errors (unreadable
/// file, bad configuration, unknown scenario) name what is wrong.
pub fn run(opts: &Options, mut out: impl Write) -> Result<Vec<RunResult>> {
    let overrides = match &opts.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --config {}", path.display()))?;
            parse_settings(&text).map_err(|e| anyhow!("--config {}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    let mut scenarios = match (&opts.p1_log, opts.scenario.as_deref()) {
        (Some(path), _) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading --p1-log {}", path.display()))?;
            // The grid source the recording is read with: the configured one.
            let mut probe = Config::default();
            for (s, v) in &overrides {
                probe
                    .set(s.address, *v)
                    .map_err(|e| anyhow!("--config: {e}"))?;
            }
            let rec = Recording::parse(&bytes, probe.grid_source())
                .map_err(|e| anyhow!("--p1-log {}: {e}", path.display()))?;
            let name = path
                .file_name()
                .map_or_else(|| "stdin".into(), |n| n.to_string_lossy().into_owned());
            vec![scenario::replay(&name, rec)]
        }
        (None, None) => vec![by_name(scenario::DEFAULT)?],
        (None, Some("all")) => scenario::all(),
        (None, Some(name)) => vec![by_name(name)?],
    };
    if let Some(seed) = opts.seed {
        for s in &mut scenarios {
            s.seed = seed;
        }
    }
    if let Some(days) = opts.days {
        scenarios = scenarios.iter().map(|s| s.over_days(days)).collect();
    }
    if let Some(delay) = opts.car_delay_ms {
        for s in &mut scenarios {
            s.set_car_delay_ms(delay);
        }
    }
    let plot_path = match (&opts.plot, opts.json) {
        (Some(p), _) => Some(p.clone()),
        (None, false) => Some(PathBuf::from(DEFAULT_PLOT)),
        (None, true) => None,
    };

    let started = Instant::now();
    let mut runs = Vec::new();
    for s in &scenarios {
        for &mode in opts.mode.modes() {
            let cfg = config_for(s, &overrides, mode)
                .map_err(|e| anyhow!("{}{e}", config_origin(opts.config.as_deref())))?;
            runs.push(runner::with_saving(s, &cfg, plot_path.is_some()));
        }
    }
    let wall = started.elapsed();

    if opts.json {
        let entries: Vec<Value> = runs
            .iter()
            .map(|r| {
                let mut e = json_entry(r);
                if let (Value::Object(map), Some(rec)) = (&mut e, recording_of(&scenarios, r)) {
                    map.insert("recording".into(), recording_entry(rec));
                }
                e
            })
            .collect();
        let doc = json!({ "scenarios": entries });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        print_tables(&mut out, &scenarios, &runs, opts.mode)?;
        let hours: f64 = runs
            .iter()
            .map(|r| f64::from(r.metrics.duration_s) / 3600.0)
            .sum();
        writeln!(
            out,
            "\n{hours:.1} h simulated in {:.2} s of wall time ({:.0}× real time).",
            wall.as_secs_f64(),
            hours * 3600.0 / wall.as_secs_f64().max(1e-6)
        )?;
    }
    if let Some(path) = plot_path {
        plot::write_svg(&path, &runs)?;
        if opts.json {
            eprintln!("p1lb: wrote {}", path.display());
        } else {
            writeln!(out, "Chart: {}", path.display())?;
        }
    }
    Ok(runs)
}

/// The recording a run replayed, if it did.
fn recording_of<'a>(scenarios: &'a [Scenario], r: &RunResult) -> Option<&'a Recording> {
    scenarios
        .iter()
        .find(|s| s.name == r.scenario)
        .and_then(|s| match &s.load {
            Load::Recorded(rec) => Some(rec),
            Load::Model(_) => None,
        })
}

/// What a recording shows of the capacity tariff, from its own registers: each clock
/// quarter (its start as the meter prints it, the import from the 1.8.x deltas, the
/// average, the last 1.4.0, whether the recording holds all of it), the highest full
/// quarter, and the month's peak (1.6.0) at the recording's start and end.
fn recording_entry(rec: &Recording) -> Value {
    let quarters: Vec<Value> = rec
        .quarters
        .iter()
        .map(|q| {
            json!({
                "start": String::from_utf8_lossy(&q.start.dsmr()),
                "import_kwh": q.import_wh.map(|wh| wh as f64 / 1000.0),
                "average_kw": q.average_kw().map(|x| round(x, 3)),
                "demand_1_4_0_kw": q.demand_w.map(|w| w as f64 / 1000.0),
                "telegrams": q.telegrams,
                "full": q.full,
            })
        })
        .collect();
    let full_peak = rec
        .quarters
        .iter()
        .filter(|q| q.full)
        .filter_map(|q| q.average_kw())
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let peak = |p: &p1lb_sim::replay::RecordedPeak| p.power_w as f64 / 1000.0;
    json!({
        "quarters": quarters,
        "full_quarters": rec.quarters.iter().filter(|q| q.full).count(),
        "quarter_peak_kw": full_peak.map(|x| round(x, 3)),
        "month_peak_kw_at_start": rec.month_peak.map(|(a, _)| peak(&a)),
        "month_peak_kw_at_end": rec.month_peak.map(|(_, b)| peak(&b)),
    })
}

fn by_name(name: &str) -> Result<Scenario> {
    scenario::by_name(name).ok_or_else(|| {
        anyhow!(
            "unknown scenario `{name}`; known: {}, all",
            scenario::NAMES.join(", ")
        )
    })
}

fn config_origin(path: Option<&Path>) -> String {
    match path {
        Some(p) => format!("--config {}: ", p.display()),
        None => String::new(),
    }
}

/// The balancer's configuration for a run: the defaults, the scenario's installation
/// settings, the file's settings, then the control mode; validated.
pub fn config_for(
    s: &Scenario,
    overrides: &[(&'static Setting, u16)],
    mode: ControlMode,
) -> Result<Config, ConfigError> {
    let mut cfg = Config::default();
    for &(address, value) in &s.settings {
        cfg.set(address, value)?;
    }
    for (setting, value) in overrides {
        cfg.set(setting.address, *value)?;
    }
    cfg.set_mode(mode)?;
    cfg.validate()?;
    Ok(cfg)
}

fn range_text(s: &Setting) -> String {
    let r = match s.range {
        Range::Span(lo, hi) => format!("allowed {lo} … {hi}"),
        Range::OneOf(list) => format!("allowed {list:?}"),
        Range::ZeroOr(lo, hi) => format!("allowed 0 or {lo} … {hi}"),
    };
    if s.unit.is_empty() {
        r
    } else {
        format!("{r} {}", s.unit)
    }
}

/// Parses a settings file: TOML `setting_name = integer` pairs (the names of
/// [`SETTINGS`]). Each value is checked against its setting's range here; the
/// cross-checks come when the configuration is assembled ([`config_for`]).
pub fn parse_settings(text: &str) -> Result<Vec<(&'static Setting, u16)>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
    let mut out = Vec::new();
    for (key, value) in &table {
        let setting = setting_named(key).ok_or_else(|| {
            let names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
            format!("unknown setting `{key}`; known: {}", names.join(", "))
        })?;
        let v = value.as_integer().ok_or_else(|| {
            format!(
                "{key} ({}) must be an integer, not {}: {}",
                setting.address,
                value.type_str(),
                range_text(setting)
            )
        })?;
        let v = u16::try_from(v)
            .ok()
            .filter(|v| setting.range.contains(*v))
            .ok_or_else(|| {
                format!(
                    "{key} ({}) = {v} is out of range: {}",
                    setting.address,
                    range_text(setting)
                )
            })?;
        out.push((setting, v));
    }
    Ok(out)
}

fn round(x: f64, decimals: i32) -> f64 {
    let k = 10f64.powi(decimals);
    (x * k).round() / k
}

/// One run in the JSON contract.
pub fn json_entry(r: &RunResult) -> Value {
    let m = &r.metrics;
    let mut entry = json!({
        "name": r.scenario,
        "mode": mode_name(r.mode),
        "ev_energy_kwh": round(m.ev_energy_kwh, 3),
        "oracle_energy_kwh": round(m.oracle_energy_kwh, 3),
        "oracle_pct": round(m.oracle_pct, 2),
        "seconds_over_upper": round(m.seconds_over_upper, 1),
        "seconds_over_fuse": round(m.seconds_over_fuse, 1),
        "max_phase_current_a": round(m.max_phase_current_a, 2),
        "limit_changes_per_hour": round(m.limit_changes_per_hour, 1),
        "seconds_in_fallback": m.seconds_in_fallback,
        "trips": m.trips,
        "duration_s": m.duration_s,
        "fuse_rating_a": r.fuse_a,
        "upper_limit_a": f64::from(r.config.upper_ma()) / 1000.0,
        "ampere_seconds_over_fuse": round(m.ampere_seconds_over_fuse, 1),
        "over_fuse_episodes": m.over_fuse_episodes,
        "longest_over_fuse_s": round(m.longest_over_fuse_s, 1),
        "fault_seconds_over_fuse": round(m.fault_seconds_over_fuse, 1),
        "house_seconds_over_fuse": round(m.house_seconds_over_fuse, 1),
        "max_fuse_heat_pct": round(m.max_fuse_heat_pct, 1),
        "limit_changes": m.limit_changes,
        "pauses": m.pauses,
        "paused_s_oracle_charging": m.paused_s_oracle_charging,
        "telegrams_sent": m.telegrams_sent,
        "telegrams_corrupted": m.telegrams_corrupted,
        "telegrams_valid": m.telegrams_valid,
        "telegrams_rejected": m.telegrams_rejected,
        "meter_silent_s": m.meter_silent_s,
        "charger_fault_s": m.charger_fault_s,
        "causal_bound_pct": round(m.causal_bound_pct, 2),
        "causal_bound_margin_pct": round(m.causal_bound_margin_pct, 2),
        "implausible_readbacks": m.implausible_readbacks,
        "car_delay_s": r.car_delay_ms as f64 / 1000.0,
        "chargers": m.chargers().iter().map(charger_entry).collect::<Vec<_>>(),
        "fairness": round(m.fairness, 3),
    });
    if let (Value::Object(map), Value::Object(more)) = (&mut entry, capacity_entry(&r.capacity)) {
        map.extend(more);
    }
    if let (Value::Object(map), Value::Object(more)) = (&mut entry, solar_entry(r)) {
        map.extend(more);
    }
    entry
}

/// The name of a charge mode (1080) in JSON.
pub fn charge_mode_name(mode: ChargeMode) -> &'static str {
    match mode {
        ChargeMode::Fast => "fast",
        ChargeMode::MinSolar => "min-solar",
        ChargeMode::SolarOnly => "solar-only",
        ChargeMode::Paused => "paused",
    }
}

/// `part / whole`, % (100 when the whole is nothing).
fn pct_of(part: f64, whole: f64) -> f64 {
    if whole > 1e-9 {
        100.0 * part / whole
    } else {
        100.0
    }
}

/// The solar charge modes' keys of a run (every run has them; see the README's "Solar
/// charging"): the charge mode, the solar output and the house's surplus, the cars'
/// energy from the surplus and from the grid, the export while a car could have taken
/// it, the starts and the sun they had, the solar oracle, the seconds below the
/// minimum (minimum + solar only, else `null`), and the 1 A-step baseline on the same
/// day (with a solar mode and one charger, else `null`), and the seconds the balancer
/// spent in each solar state (1128: idle, waiting to start, charging, waiting to stop).
/// `limit_changes_per_hour` (above) and `step1a_limit_changes_per_hour` are both per
/// hour of the run.
fn solar_entry(r: &RunResult) -> Value {
    let s = &r.solar;
    let mode = r.config.charge_mode();
    let ev = s.ev_solar_kwh + s.ev_grid_kwh;
    let step = s.step1a;
    let per_30min_sun = (s.sun_h > 0.0).then(|| f64::from(s.charge_starts) / (2.0 * s.sun_h));
    let min_solar = mode == ChargeMode::MinSolar;
    json!({
        "charge_mode": charge_mode_name(mode),
        "pv_kwh": s.pv.then(|| round(s.pv_kwh, 3)),
        "surplus_kwh": round(s.surplus_kwh, 3),
        "ev_solar_kwh": round(s.ev_solar_kwh, 3),
        "ev_grid_kwh": round(s.ev_grid_kwh, 3),
        "ev_solar_pct": round(pct_of(s.ev_solar_kwh, ev), 2),
        "solar_exported_kwh": round(s.solar_exported_kwh, 3),
        "charge_starts": s.charge_starts,
        "sun_h": round(s.sun_h, 3),
        "starts_per_30min_sun": per_30min_sun.map(|x| round(x, 3)),
        "car_connected_h": round(s.car_connected_h, 3),
        "solar_oracle_energy_kwh": round(s.oracle_energy_kwh, 3),
        "solar_oracle_pct": round(s.oracle_pct, 2),
        "below_min_s": min_solar.then_some(s.below_min_s),
        "below_min_fuse_s": min_solar.then_some(s.below_min_fuse_s),
        "step1a_energy_kwh": step.map(|x| round(x.energy_kwh, 3)),
        "step1a_ev_solar_pct": step.map(|x| round(pct_of(x.ev_solar_kwh, x.energy_kwh).min(100.0), 2)),
        "step1a_charge_starts": step.map(|x| x.charge_starts),
        "step1a_limit_changes": step.map(|x| x.limit_changes),
        "step1a_limit_changes_per_hour": step.map(|x| round(x.limit_changes_per_hour, 1)),
        "solar_state_s": s.state_s,
    })
}

/// The capacity tariff's keys of a run (every run has them; `null` where they do not
/// apply): see the README's "Capacity tariff" section.
fn capacity_entry(c: &runner::Capacity) -> Value {
    json!({
        "quarter_peak_kw": round(c.quarter_peak_kw, 3),
        "month_peak_kw": c.month_peaks.iter().map(|p| round(p.kw, 3)).collect::<Vec<_>>(),
        "capacity_mode": c.mode.map(capacity_mode_name),
        "capacity_target_kw": c.target_kw,
        "quarters_over_target": c.quarters_over_target,
        "house_quarters_over_target": c.house_quarters_over_target,
        "quarters_full": c.quarters.iter().filter(|q| q.full()).count(),
        "capacity_oracle_energy_kwh": c.oracle_energy_kwh.map(|x| round(x, 3)),
        "capacity_oracle_pct": c.oracle_pct.map(|x| round(x, 2)),
        "car_sessions": c.sessions,
        "car_sessions_full": c.sessions_full,
        "hours_to_full": c.hours_to_full.map(|x| round(x, 2)),
        "capacity_cost_eur_per_year": round(c.cost_eur_per_year, 2),
        "capacity_saving_eur_per_year": c.saving_eur_per_year.map(|x| round(x, 2)),
    })
}

/// The name of a capacity mode (1072) in JSON.
fn capacity_mode_name(mode: CapacityMode) -> &'static str {
    match mode {
        CapacityMode::Off => "off",
        CapacityMode::Target => "target",
        CapacityMode::FollowPeak => "follow-peak",
    }
}

/// One charger of a run in the JSON contract: `energy_kwh`, `paused_s`,
/// `longest_wait_s`, then `ampere_hours`, `priority` and `phases` (the grid phases the
/// balancer had it on at the end, as `"L1"`, `"L1L2L3"`).
fn charger_entry(c: &runner::ChargerMetrics) -> Value {
    let phases: String = c
        .phases
        .iter()
        .enumerate()
        .filter(|(_, on)| **on)
        .map(|(p, _)| format!("L{}", p + 1))
        .collect();
    json!({
        "energy_kwh": round(c.energy_kwh, 3),
        "paused_s": c.paused_s,
        "longest_wait_s": c.longest_wait_s,
        "ampere_hours": round(c.ampere_hours, 2),
        "priority": c.priority,
        "phases": phases,
    })
}

/// The headroom-mode goals: ≥ 97 % of the oracle's energy, no trip, and no stretch above
/// the fuse rating longer than the reaction to a load step (3 s).
pub fn goals_met(m: &runner::Metrics) -> bool {
    m.oracle_pct >= 97.0 && m.trips == 0 && m.longest_over_fuse_s <= 3.0
}

fn print_tables(
    out: &mut impl Write,
    scenarios: &[Scenario],
    runs: &[RunResult],
    choice: ModeChoice,
) -> Result<()> {
    writeln!(out, "Scenarios:")?;
    for s in scenarios {
        writeln!(
            out,
            "  {:<18} {:>5.1} h  {}",
            s.name,
            f64::from(s.duration_s) / 3600.0,
            s.about
        )?;
    }
    for &mode in choice.modes() {
        writeln!(out, "\nMode: {}", mode_name(mode))?;
        writeln!(
            out,
            "{:<18} {:>8} {:>9} {:>7} {:>8} {:>7} {:>6} {:>8} {:>8} {:>5} {:>6}",
            "scenario",
            "EV kWh",
            "oracle",
            "%",
            ">upper",
            ">fuse",
            "max A",
            "chg/h",
            "fallbk",
            "trips",
            "worst"
        )?;
        for r in runs.iter().filter(|r| r.mode == mode) {
            let m = &r.metrics;
            writeln!(
                out,
                "{:<18} {:>8.2} {:>9.2} {:>7.1} {:>7.1}s {:>6.1}s {:>6.1} {:>8.1} {:>7}s {:>5} {:>5.1}s",
                r.scenario,
                m.ev_energy_kwh,
                m.oracle_energy_kwh,
                m.oracle_pct,
                m.seconds_over_upper,
                m.seconds_over_fuse,
                m.max_phase_current_a,
                m.limit_changes_per_hour,
                m.seconds_in_fallback,
                m.trips,
                m.longest_over_fuse_s,
            )?;
        }
    }
    let shared: Vec<&RunResult> = runs
        .iter()
        .filter(|r| r.metrics.chargers().len() > 1)
        .collect();
    if !shared.is_empty() {
        writeln!(
            out,
            "\nSeveral chargers (per charger: kWh, paused s, longest wait s, priority):"
        )?;
        for r in shared {
            let each: Vec<String> = r
                .metrics
                .chargers()
                .iter()
                .map(|c| {
                    format!(
                        "{:.2} kWh {} s {} s p{}",
                        c.energy_kwh, c.paused_s, c.longest_wait_s, c.priority
                    )
                })
                .collect();
            writeln!(
                out,
                "  {:<18} {:<8} fairness {:.3}; {}",
                r.scenario,
                mode_name(r.mode),
                r.metrics.fairness,
                each.join(" | ")
            )?;
        }
    }
    let capacity: Vec<&RunResult> = runs
        .iter()
        .filter(|r| r.capacity.target_kw.is_some())
        .collect();
    if !capacity.is_empty() {
        writeln!(
            out,
            "\nCapacity tariff (quarter-hour import; €{}/kW/year, at least {} kW a month):",
            p1lb_sim::tariff::EUR_PER_KW_YEAR,
            p1lb_sim::tariff::MIN_BILLED_KW
        )?;
        writeln!(
            out,
            "{:<22} {:<8} {:>7} {:>7} {:>6} {:>6} {:>8} {:>7} {:>9} {:>8}",
            "scenario",
            "mode",
            "peak kW",
            "target",
            "over",
            "house",
            "% cap.or",
            "h full",
            "€/year",
            "saving"
        )?;
        for r in capacity {
            let c = &r.capacity;
            let opt = |x: Option<f64>, d: usize| x.map_or("-".into(), |x| format!("{x:.d$}"));
            writeln!(
                out,
                "{:<22} {:<8} {:>7.2} {:>7.2} {:>6} {:>6} {:>8} {:>7} {:>9.2} {:>8}",
                r.scenario,
                mode_name(r.mode),
                c.quarter_peak_kw,
                c.target_kw.unwrap_or(0.0),
                c.quarters_over_target.unwrap_or(0),
                c.house_quarters_over_target.unwrap_or(0),
                opt(c.oracle_pct, 1),
                opt(c.hours_to_full, 1),
                c.cost_eur_per_year,
                opt(c.saving_eur_per_year, 2),
            )?;
        }
        writeln!(
            out,
            "peak: the highest quarter; over: full quarters above the target (mode 2: above the \
             month's peak so far when higher); house: of those, the house alone;\n% cap.or: of \
             the capacity oracle's energy; h full: plug-in to full, h; saving: against the same \
             run with 1072 = 0."
        )?;
    }
    let solar: Vec<&RunResult> = runs
        .iter()
        .filter(|r| {
            matches!(
                r.config.charge_mode(),
                ChargeMode::MinSolar | ChargeMode::SolarOnly
            )
        })
        .collect();
    if !solar.is_empty() {
        writeln!(
            out,
            "\nSolar charging (surplus: the solar output less the house's own load, phases netted):"
        )?;
        writeln!(
            out,
            "{:<18} {:<8} {:<10} {:>7} {:>7} {:>6} {:>6} {:>8} {:>8} {:>6} {:>6} {:>7} {:>8}",
            "scenario",
            "mode",
            "charge",
            "EV kWh",
            "solar",
            "grid",
            "% sun",
            "export",
            "% sol.or",
            "starts",
            "sun h",
            "chg/h",
            "1A chg/h"
        )?;
        for r in solar {
            let s = &r.solar;
            let ev = s.ev_solar_kwh + s.ev_grid_kwh;
            writeln!(
                out,
                "{:<18} {:<8} {:<10} {:>7.2} {:>7.2} {:>6.2} {:>6.1} {:>8.2} {:>8.1} {:>6} {:>6.2} {:>7.1} {:>8}",
                r.scenario,
                mode_name(r.mode),
                charge_mode_name(r.config.charge_mode()),
                ev,
                s.ev_solar_kwh,
                s.ev_grid_kwh,
                pct_of(s.ev_solar_kwh, ev),
                s.solar_exported_kwh,
                s.oracle_pct,
                s.charge_starts,
                s.sun_h,
                r.metrics.limit_changes_per_hour,
                s.step1a
                    .map_or("-".into(), |x| format!("{:.1}", x.limit_changes_per_hour)),
            )?;
        }
        writeln!(
            out,
            "solar / grid: the cars' energy the surplus covered / the rest; % sun: the solar \
             share; export: while a car could take it;\n% sol.or: of the solar oracle's \
             energy; starts: times a car began to draw; sun h: the surplus above the car's \
             minimum;\nchg/h, 1A chg/h: limit changes per hour of the run, this balancer and \
             the 1 A-step baseline on the same day."
        )?;
    }
    for s in scenarios {
        if let Load::Recorded(rec) = &s.load {
            let full: Vec<f64> = rec
                .quarters
                .iter()
                .filter(|q| q.full)
                .filter_map(|q| q.average_kw())
                .collect();
            let peak = full.iter().copied().fold(0.0, f64::max);
            writeln!(
                out,
                "\nThe recording's quarters (its own 1.8.x): {} in all, {} full, the highest full \
                 one {:.3} kW{}.",
                rec.quarters.len(),
                full.len(),
                peak,
                rec.month_peak.map_or(String::new(), |(a, b)| format!(
                    "; month peak (1.6.0) {:.3} kW at the start, {:.3} kW at the end",
                    a.power_w as f64 / 1000.0,
                    b.power_w as f64 / 1000.0
                ))
            )?;
        }
    }
    writeln!(
        out,
        "\nEV kWh: energy into the car; oracle: the best possible with perfect knowledge and no \
         delay; %: of the oracle;\n>upper / >fuse: time above the upper limit (1015) / the fuse \
         rating; chg/h: limit changes per hour;\nfallbk: time in fallback; trips: fuse trips \
         (thermal model); worst: longest stretch above the fuse rating\noutside injected faults."
    )?;
    let headroom: Vec<&RunResult> = runs
        .iter()
        .filter(|r| r.mode == ControlMode::Headroom)
        .collect();
    if !headroom.is_empty() {
        let missed: Vec<&str> = headroom
            .iter()
            .filter(|r| !goals_met(&r.metrics))
            .map(|r| r.scenario.as_str())
            .collect();
        if missed.is_empty() {
            writeln!(
                out,
                "Headroom goals (≥ 97 % of oracle, no trip, ≤ 3 s above the fuse per step): met."
            )?;
        } else {
            writeln!(
                out,
                "Headroom goals (≥ 97 % of oracle, no trip, ≤ 3 s above the fuse per step): \
                 missed in {}.",
                missed.join(", ")
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_file_errors_name_the_key_and_range() {
        let ok = parse_settings("upper_current = 21000\ncontrol_mode = 1\n").expect("ok");
        assert_eq!(ok.len(), 2);
        let e = parse_settings("upper_curent = 1").expect_err("unknown");
        assert!(e.contains("unknown setting `upper_curent`"), "{e}");
        let e = parse_settings("phases = 2").expect_err("range");
        assert!(
            e.contains("phases (1011) = 2 is out of range: allowed [1, 3]"),
            "{e}"
        );
        let e = parse_settings("upper_current = 70000").expect_err("range");
        assert!(e.contains("allowed 0 … 65535 mA"), "{e}");
        let e = parse_settings("upper_current = \"22\"").expect_err("type");
        assert!(e.contains("must be an integer"), "{e}");
        assert!(parse_settings("upper_current = ").is_err());
        // Cross-checks when assembled.
        let s = scenario::by_name("evening-peak").expect("scenario");
        let bad = parse_settings("lower_current = 23000").expect("in range");
        let e = config_for(&s, &bad, ControlMode::Headroom).expect_err("inconsistent");
        assert!(e.to_string().contains("lower_current (1018)"), "{e}");
    }
}
