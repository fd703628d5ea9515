//! The chart: one panel per run (rows: scenarios, columns: modes), each showing the
//! grid current per phase, the limit sent to the charger, the oracle's limit, the fuse
//! rating and the balancer's lower / upper / alarm thresholds over time. A run with a
//! capacity target (1072 ≠ 0) gets a strip below: the meter's quarter-hour averages
//! (kW, import), the target and, in mode 2, the ceiling the month's peak sets. A run in
//! a solar charge mode (1080 = 1 or 2) gets a strip of its own: the solar output, the
//! house's surplus (output less its own load), the surplus as the balancer sees it
//! (register 1127), the car's power, the car's minimum power and the 1 A-step
//! baseline's car on the same day. SVG, drawn with `plotters` (text as
//! SVG `<text>`, so no font file is needed).

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;

use p1lb_core::config::ChargeMode;

use super::runner::{RunResult, Sample, mode_name};

/// Panel size, px.
const PANEL: (u32, u32) = (960, 400);
/// Room on the right of each panel for the legend, px.
const LEGEND_W: u32 = 130;
/// At most this many points per series (longer runs are bucketed: the highest current
/// and the lowest limit in each bucket, so that peaks and pauses stay visible).
const MAX_POINTS: usize = 2400;

const L1: RGBColor = RGBColor(214, 39, 40);
const L2: RGBColor = RGBColor(44, 160, 44);
const L3: RGBColor = RGBColor(31, 119, 180);
const FUSE: RGBColor = RGBColor(120, 0, 0);
const ALARM: RGBColor = RGBColor(255, 127, 14);
const UPPER: RGBColor = RGBColor(148, 103, 189);
const LOWER: RGBColor = RGBColor(23, 190, 207);
const ORACLE: RGBColor = RGBColor(160, 160, 160);
const QUARTER: RGBColor = RGBColor(31, 119, 180);
const TARGET: RGBColor = RGBColor(214, 39, 40);
const PV: RGBColor = RGBColor(255, 127, 14);
const SURPLUS: RGBColor = RGBColor(44, 160, 44);
const STEP1A: RGBColor = RGBColor(170, 170, 170);
const SEEN: RGBColor = RGBColor(148, 103, 189);

/// Writes the chart of `runs` to `path`.
pub fn write_svg(path: &Path, runs: &[RunResult]) -> Result<()> {
    let svg = render(runs)?;
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

/// The chart of `runs` as SVG text.
pub fn render(runs: &[RunResult]) -> Result<String> {
    let mut modes: Vec<_> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
        if !modes.contains(&r.mode) {
            modes.push(r.mode);
        }
        if !names.contains(&r.scenario.as_str()) {
            names.push(&r.scenario);
        }
    }
    let cols = modes.len().max(1);
    let rows = names.len().max(1);
    let size = (PANEL.0 * cols as u32, PANEL.1 * rows as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
        let panels = root.split_evenly((rows, cols));
        for r in runs {
            let row = names.iter().position(|n| *n == r.scenario).unwrap_or(0);
            let col = modes.iter().position(|m| *m == r.mode).unwrap_or(0);
            if let Some(area) = panels.get(row * cols + col) {
                let solar = matches!(
                    r.config.charge_mode(),
                    ChargeMode::MinSolar | ChargeMode::SolarOnly
                );
                match (r.capacity.target_kw.is_some(), solar) {
                    (true, false) => {
                        let (top, bottom) = area.split_vertically(PANEL.1 * 62 / 100);
                        panel(&top, r).map_err(|e| anyhow!("plot: {e}"))?;
                        quarters(&bottom, r).map_err(|e| anyhow!("plot: {e}"))?;
                    }
                    (false, true) => {
                        let (top, bottom) = area.split_vertically(PANEL.1 * 55 / 100);
                        panel(&top, r).map_err(|e| anyhow!("plot: {e}"))?;
                        sun(&bottom, r).map_err(|e| anyhow!("plot: {e}"))?;
                    }
                    (true, true) => {
                        let (top, rest) = area.split_vertically(PANEL.1 * 50 / 100);
                        let (middle, bottom) = rest.split_vertically(PANEL.1 * 20 / 100);
                        panel(&top, r).map_err(|e| anyhow!("plot: {e}"))?;
                        quarters(&middle, r).map_err(|e| anyhow!("plot: {e}"))?;
                        sun(&bottom, r).map_err(|e| anyhow!("plot: {e}"))?;
                    }
                    (false, false) => panel(area, r).map_err(|e| anyhow!("plot: {e}"))?,
                }
            }
        }
        root.present().map_err(|e| anyhow!("plot: {e}"))?;
    }
    Ok(svg)
}

/// One bucket of samples reduced to a point: time (s), highest grid current per phase,
/// lowest sent limit, lowest oracle limit. Each sample covers `step_s` seconds.
fn buckets(trace: &[Sample], step_s: u32) -> Vec<(f64, [f64; 3], f64, f64)> {
    let size = trace.len().div_ceil(MAX_POINTS).max(1);
    trace
        .chunks(size)
        .enumerate()
        .map(|(i, c)| {
            let mut g = [f64::MIN; 3];
            let (mut sent, mut oracle) = (f64::MAX, f64::MAX);
            for s in c {
                for (g, x) in g.iter_mut().zip(s.grid_a) {
                    *g = g.max(f64::from(x));
                }
                sent = sent.min(f64::from(s.sent_a));
                oracle = oracle.min(f64::from(s.oracle_a));
            }
            (
                (i * size) as f64 * f64::from(step_s.max(1)),
                g,
                sent,
                oracle,
            )
        })
        .collect()
}

/// One line of a panel: label, colour, width, dashed, points.
type Series = (String, RGBColor, u32, bool, Vec<(f64, f64)>);

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn panel(area: &Area<'_>, r: &RunResult) -> Result<(), Box<dyn std::error::Error>> {
    let m = &r.metrics;
    let pts = buckets(&r.trace, r.trace_step_s);
    let hours = m.duration_s > 4 * 3600;
    let (unit, scale) = if hours { ("h", 3600.0) } else { ("min", 60.0) };
    let x_max = f64::from(m.duration_s) / scale;
    let phases = usize::from(r.config.phases());
    let lo = pts
        .iter()
        .flat_map(|p| p.1[..phases].iter().copied())
        .fold(0.0f64, f64::min);
    let hi = pts
        .iter()
        .flat_map(|p| p.1[..phases].iter().copied())
        .fold(r.fuse_a, f64::max);
    let y = (lo - 2.0).floor()..(hi + 4.0).ceil();
    let caption = format!(
        "{} — {}: {:.1} % of oracle, {:.1} s above upper, {:.1} s above fuse, {} trip(s)",
        r.scenario,
        mode_name(r.mode),
        m.oracle_pct,
        m.seconds_over_upper,
        m.seconds_over_fuse,
        m.trips
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .margin_right(LEGEND_W)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..x_max, y)?;
    chart
        .configure_mesh()
        .x_desc(format!("time ({unit})"))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("current per phase (A)")
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .label_style(("sans-serif", 12))
        .draw()?;

    let at = |t: f64| t / scale;
    let flat = |v: f64| vec![(0.0, v), (x_max, v)];
    let a = |ma: u32| f64::from(ma) / 1000.0;
    let mut series: Vec<Series> = Vec::new();
    for (p, color) in [L1, L2, L3].into_iter().enumerate().take(phases) {
        let pts = pts.iter().map(|q| (at(q.0), q.1[p])).collect();
        series.push((format!("L{} grid", p + 1), color, 1, false, pts));
    }
    let oracle = pts.iter().map(|q| (at(q.0), q.3)).collect();
    series.push(("oracle limit".into(), ORACLE, 1, false, oracle));
    let sent = pts.iter().map(|q| (at(q.0), q.2)).collect();
    series.push(("limit sent".into(), BLACK, 2, false, sent));
    series.push(("fuse rating".into(), FUSE, 2, true, flat(r.fuse_a)));
    series.push((
        "alarm (1012)".into(),
        ALARM,
        1,
        true,
        flat(a(r.config.alarm_ma())),
    ));
    series.push((
        "upper (1015)".into(),
        UPPER,
        1,
        true,
        flat(a(r.config.upper_ma())),
    ));
    series.push((
        "lower (1018)".into(),
        LOWER,
        1,
        true,
        flat(a(r.config.lower_ma())),
    ));
    for (_, color, width, dashed, pts) in &series {
        let style = color.stroke_width(*width);
        if *dashed {
            chart.draw_series(DashedLineSeries::new(pts.iter().copied(), 6, 4, style))?;
        } else {
            chart.draw_series(LineSeries::new(pts.iter().copied(), style))?;
        }
    }
    // The legend, in the panel's right margin.
    let (w, _) = area.dim_in_pixel();
    let x = w as i32 - LEGEND_W as i32 + 8;
    for (i, (label, color, width, dashed, _)) in series.iter().enumerate() {
        let y = 40 + 18 * i as i32;
        let style = color.stroke_width((*width).max(2));
        if *dashed {
            for k in 0..3 {
                let x0 = x + k * 8;
                area.draw(&PathElement::new(vec![(x0, y), (x0 + 5, y)], style))?;
            }
        } else {
            area.draw(&PathElement::new(vec![(x, y), (x + 21, y)], style))?;
        }
        let font = ("sans-serif", 12).into_font().color(&BLACK);
        area.draw(&Text::new(label.clone(), (x + 28, y - 6), font))?;
    }
    Ok(())
}

/// The capacity strip of a run: each clock quarter's average import (kW, a step per
/// quarter), the target (1073) and the month peaks' ceiling in mode 2.
fn quarters(area: &Area<'_>, r: &RunResult) -> Result<(), Box<dyn std::error::Error>> {
    let c = &r.capacity;
    let m = &r.metrics;
    let hours = m.duration_s > 4 * 3600;
    let scale = if hours { 3600.0 } else { 60.0 };
    let x_max = f64::from(m.duration_s) / scale;
    let target = c.target_kw.unwrap_or(0.0);
    let mut steps = Vec::with_capacity(2 * c.quarters.len());
    let mut t = 0.0;
    for q in &c.quarters {
        let kw = q.average_kw();
        steps.push((t / scale, kw));
        t += f64::from(q.seconds);
        steps.push((t / scale, kw));
    }
    let hi = steps
        .iter()
        .map(|p| p.1)
        .fold(target.max(c.earlier_peak_kw), f64::max);
    let caption = format!(
        "quarter-hour import: peak {:.2} kW, target {:.1} kW, {} full quarter(s) over it",
        c.quarter_peak_kw,
        target,
        c.quarters_over_target.unwrap_or(0)
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 13))
        .margin(10)
        .margin_right(LEGEND_W)
        .x_label_area_size(30)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..x_max, 0.0..(hi * 1.1 + 0.5))?;
    chart
        .configure_mesh()
        .y_desc("kW")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .label_style(("sans-serif", 11))
        .draw()?;
    chart.draw_series(LineSeries::new(steps, QUARTER.stroke_width(2)))?;
    let flat = |v: f64| vec![(0.0, v), (x_max, v)];
    chart.draw_series(DashedLineSeries::new(
        flat(target),
        6,
        4,
        TARGET.stroke_width(2),
    ))?;
    if c.mode == Some(p1lb_core::config::CapacityMode::FollowPeak) {
        chart.draw_series(DashedLineSeries::new(
            flat(c.earlier_peak_kw),
            3,
            3,
            ORACLE.stroke_width(1),
        ))?;
    }
    let (w, _) = area.dim_in_pixel();
    let x = w as i32 - LEGEND_W as i32 + 8;
    let font = ("sans-serif", 12).into_font().color(&BLACK);
    let mut labels = vec![("quarter avg", QUARTER), ("target (1073)", TARGET)];
    if c.mode == Some(p1lb_core::config::CapacityMode::FollowPeak) {
        labels.push(("peak before run", ORACLE));
    }
    for (i, (label, color)) in labels.into_iter().enumerate() {
        let y = 30 + 18 * i as i32;
        area.draw(&PathElement::new(
            vec![(x, y), (x + 21, y)],
            color.stroke_width(2),
        ))?;
        area.draw(&Text::new(label, (x + 28, y - 6), font.clone()))?;
    }
    Ok(())
}

/// The solar strip of a run: the solar output, the house's surplus, the balancer's
/// surplus, the car's power, the 1 A-step baseline's car and the car's minimum power,
/// kW (each bucket's mean).
fn sun(area: &Area<'_>, r: &RunResult) -> Result<(), Box<dyn std::error::Error>> {
    let m = &r.metrics;
    let sol = &r.solar;
    let hours = m.duration_s > 4 * 3600;
    let scale = if hours { 3600.0 } else { 60.0 };
    let x_max = f64::from(m.duration_s) / scale;
    let size = r.trace.len().div_ceil(MAX_POINTS).max(1);
    let step = f64::from(r.trace_step_s.max(1));
    let mean = |f: &dyn Fn(&Sample) -> f32| -> Vec<(f64, f64)> {
        r.trace
            .chunks(size)
            .enumerate()
            .map(|(i, c)| {
                let sum: f64 = c.iter().map(|x| f64::from(f(x))).sum();
                ((i * size) as f64 * step / scale, sum / c.len() as f64)
            })
            .collect()
    };
    let pv = mean(&|x| x.pv_kw);
    let surplus = mean(&|x| x.surplus_kw);
    let ev = mean(&|x| x.ev_kw);
    let step1a = mean(&|x| x.step1a_kw);
    let seen = mean(&|x| x.seen_surplus_kw);
    let min_kw = f64::from(r.config.charger_min_ma()) / 1000.0 * 230.0 * phases_of_car(r) / 1000.0;
    let hi = pv
        .iter()
        .chain(&ev)
        .chain(&step1a)
        .chain(&surplus)
        .map(|p| p.1)
        .fold(min_kw, f64::max);
    let lo = surplus.iter().map(|p| p.1).fold(0.0, f64::min);
    let ev_total = sol.ev_solar_kwh + sol.ev_grid_kwh;
    let caption = format!(
        "solar: {:.1} kWh of the car's {:.1} from surplus, {:.1} % of the solar oracle, {} start(s), \
         {:.1} limit changes/h (1 A-step: {})",
        sol.ev_solar_kwh,
        ev_total,
        sol.oracle_pct,
        sol.charge_starts,
        m.limit_changes_per_hour,
        sol.step1a
            .map_or("-".into(), |x| format!("{:.1}", x.limit_changes_per_hour)),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 13))
        .margin(10)
        .margin_right(LEGEND_W)
        .x_label_area_size(30)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..x_max, (lo - 0.5).floor()..(hi + 0.5).ceil())?;
    chart
        .configure_mesh()
        .y_desc("kW")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .label_style(("sans-serif", 11))
        .draw()?;
    let flat = vec![(0.0, min_kw), (x_max, min_kw)];
    chart.draw_series(DashedLineSeries::new(flat, 6, 4, LOWER.stroke_width(1)))?;
    chart.draw_series(LineSeries::new(step1a, STEP1A.stroke_width(1)))?;
    chart.draw_series(LineSeries::new(pv, PV.stroke_width(1)))?;
    chart.draw_series(LineSeries::new(surplus, SURPLUS.stroke_width(1)))?;
    chart.draw_series(DashedLineSeries::new(seen, 3, 3, SEEN.stroke_width(1)))?;
    chart.draw_series(LineSeries::new(ev, BLACK.stroke_width(2)))?;
    let (w, _) = area.dim_in_pixel();
    let x = w as i32 - LEGEND_W as i32 + 8;
    let font = ("sans-serif", 12).into_font().color(&BLACK);
    let labels = [
        ("solar output", PV),
        ("surplus", SURPLUS),
        ("balancer's surplus", SEEN),
        ("car", BLACK),
        ("1 A-step car", STEP1A),
        ("car minimum", LOWER),
    ];
    for (i, (label, color)) in labels.into_iter().enumerate() {
        let y = 30 + 18 * i as i32;
        area.draw(&PathElement::new(
            vec![(x, y), (x + 21, y)],
            color.stroke_width(2),
        ))?;
        area.draw(&Text::new(label, (x + 28, y - 6), font.clone()))?;
    }
    Ok(())
}

/// The number of phases charger 1's car draws on, as the balancer had it at the end
/// (all of the connection's when it never learned them).
fn phases_of_car(r: &RunResult) -> f64 {
    let n = r
        .metrics
        .chargers()
        .first()
        .map_or(0, |c| c.phases.iter().filter(|&&p| p).count());
    if n == 0 {
        f64::from(r.config.phases())
    } else {
        n as f64
    }
}
