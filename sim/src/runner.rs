//! One run: a scenario under one configuration, second by second, with the real
//! balancer and the real P1 reader in the loop.
//!
//! Each second `t`:
//! 1. the balancer ticks whenever [`Balancer::next_tick_ms`] is due — right after each
//!    valid telegram (see 4.), else by its timer; the yardsticks tick with it;
//! 2. the house load for the second is drawn; the oracle sets its own car's limit from
//!    it with no delay;
//! 3. the physics runs in ten 0.1 s steps: both cars, the grid current per phase (house
//!    + car), the fuse, the metrics;
//! 4. at `t` the meter measures and at `t + 0.2 s` its telegram bytes arrive, go through
//!    the products' own P1 input ([`P1Input`]: the reader, the CRC rule) and
//!    `Reading::grid_currents_ma` into [`Balancer::on_reading`], and the tick that
//!    makes due runs at once;
//! 5. the RS485 bus runs beside it ([`ChargerBus`]: the core's bus master, the daemon's
//!    Terra AC driver, a 9600-baud line, the simulated Terra AC): the value to send
//!    reaches the charger when the driver writes it, the car follows the charger's
//!    applied limit after its delay ([`CarSpec::delay_ms`](super::car::CarSpec)), the
//!    charger's meter measures the car at `t + 0.5 s` and the driver's status reads
//!    (every 2 s) bring that measurement to [`Balancer::on_charger_currents`].

use p1lb_core::balancer::{Balancer, State};
use p1lb_core::config::{Config, ControlMode};
use p1lb_core::device::{P1Event, P1Input};
use p1lb_core::time::Instant;

use super::bus::{BusEvent, ChargerBus};
use super::car::{Car, Dynamics};
use super::fuse::Fuse;
use super::house::House;
use super::meter::Meter;
use super::oracle;
use super::scenario::{Load, Scenario};

/// Physics steps per second.
pub const STEPS: u32 = 10;
const DT_S: f64 = 1.0 / STEPS as f64;
/// When in the second the telegram arrives (115200 baud, ~1 KB) and the charger is
/// read back, ms.
const TELEGRAM_AT_MS: u64 = 200;
/// When in the second the charger's own meter measures the car, ms.
const CHARGER_MEASURES_AT_MS: u64 = 500;

/// What a run measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metrics {
    /// Simulated time, s.
    pub duration_s: u32,
    /// Energy into the car, kWh.
    pub ev_energy_kwh: f64,
    /// Energy into the oracle's car, kWh.
    pub oracle_energy_kwh: f64,
    /// The reactive yardsticks ([`super::oracle::Reactive`]), as in [`YARDSTICKS`].
    pub reactive: [Yardstick; YARDSTICKS.len()],
    /// Energy the oracle's car took in the seconds the rules held this run's balancer in
    /// fallback (state 4), kWh: out of reach of any controller that obeys them.
    pub oracle_energy_in_fallback_kwh: f64,
    /// `ev / oracle`, % (100 when the oracle charged nothing).
    pub oracle_pct: f64,
    /// The causal bound, % of the oracle: the "hold the peak" yardstick ([`YARDSTICKS`]
    /// [`CAUSAL_BOUND`]): perfect knowledge of the house as of each telegram, the same
    /// car, delay and rules, no margin.
    pub causal_bound_pct: f64,
    /// The same yardstick with headroom mode's 0.3 A margin below the upper limit, % of
    /// the oracle ([`CAUSAL_BOUND_MARGIN`]).
    pub causal_bound_margin_pct: f64,
    /// Charger read-backs the balancer found implausible.
    pub implausible_readbacks: u32,
    /// Time the highest phase current (configured phases) was above the upper limit, s.
    pub seconds_over_upper: f64,
    /// Time any phase was above the fuse rating, s.
    pub seconds_over_fuse: f64,
    /// ∫ (highest phase current − rating)⁺ dt, A·s.
    pub ampere_seconds_over_fuse: f64,
    /// Separate stretches above the fuse rating.
    pub over_fuse_episodes: u32,
    /// The longest stretch above the fuse rating untouched by an injected fault (meter
    /// silent, telegram lost on the line, charger stuck), s: the balancer's reaction to
    /// a load step.
    pub longest_over_fuse_s: f64,
    /// Time above the fuse rating in stretches touched by an injected fault, s.
    pub fault_seconds_over_fuse: f64,
    /// Time the house alone (no car) was above the fuse rating, s: no balancer helps.
    pub house_seconds_over_fuse: f64,
    /// The highest phase current, A.
    pub max_phase_current_a: f64,
    /// Changes of the value sent to the charger.
    pub limit_changes: u32,
    /// The same per simulated hour.
    pub limit_changes_per_hour: f64,
    /// Times the charger was sent 0 (pause) while the car wanted to charge.
    pub pauses: u32,
    /// Seconds the car was held paused (sent 0) although the oracle let it charge.
    pub paused_s_oracle_charging: u32,
    /// Ticks in state 4 (fallback), s.
    pub seconds_in_fallback: u32,
    /// Fuse trips (thermal model, see [`super::fuse`]).
    pub trips: u32,
    /// The hottest the fuse got, % of its trip threshold.
    pub max_fuse_heat_pct: f64,
    /// Telegrams the meter sent.
    pub telegrams_sent: u32,
    /// Of those, corrupted on the line.
    pub telegrams_corrupted: u32,
    /// Telegrams the reader accepted.
    pub telegrams_valid: u32,
    /// Telegrams the reader rejected (CRC, framing).
    pub telegrams_rejected: u32,
    /// Seconds the meter was silent.
    pub meter_silent_s: u32,
    /// Seconds the charger ignored its limit.
    pub charger_fault_s: u32,
}

/// The hold of the peak-budgeting yardstick, s: headroom mode's
/// [`p1lb_core::balancer::HEADROOM_HOLD_S`].
pub const YARDSTICK_HOLD_S: u32 = p1lb_core::balancer::HEADROOM_HOLD_S as u32;

/// The reactive yardsticks run beside every run, `(hold s, margin mA)`: [0] rides every
/// gap with no margin, [1] holds the peak as headroom mode does with no margin (the
/// causal bound, [`CAUSAL_BOUND`]), [2] rides every gap with headroom mode's margin
/// ([`p1lb_core::balancer::HEADROOM_MARGIN_MA`]), [3] holds the peak with that margin
/// ([`CAUSAL_BOUND_MARGIN`]).
pub const YARDSTICKS: [(u32, u32); 4] = [
    (0, 0),
    (YARDSTICK_HOLD_S, 0),
    (0, p1lb_core::balancer::HEADROOM_MARGIN_MA),
    (YARDSTICK_HOLD_S, p1lb_core::balancer::HEADROOM_MARGIN_MA),
];

/// The yardstick that is the causal bound (`causal_bound_pct`): hold the peak, no margin.
pub const CAUSAL_BOUND: usize = 1;

/// The causal bound with headroom mode's margin (`causal_bound_margin_pct`).
pub const CAUSAL_BOUND_MARGIN: usize = 3;

/// What a reactive yardstick's car got, and what it cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Yardstick {
    /// Energy into its car, kWh.
    pub energy_kwh: f64,
    /// Of the oracle's, %.
    pub oracle_pct: f64,
    /// Time its grid current (highest configured phase) was above the upper limit, s.
    pub seconds_over_upper: f64,
    /// Time any phase of its grid was above the fuse rating, s.
    pub seconds_over_fuse: f64,
    /// The longest stretch above the fuse rating (faults included), s.
    pub longest_over_fuse_s: f64,
    /// The stretch above the fuse rating going on, s.
    stretch_s: f64,
}

/// One second of a run, for the plot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Grid current per phase at the start of the second, A.
    pub grid_a: [f32; 3],
    /// The value sent to the charger, A.
    pub sent_a: f32,
    /// The car's current per used phase, A.
    pub car_a: f32,
    /// The oracle's limit, A.
    pub oracle_a: f32,
    /// The oracle car's current per used phase, A.
    pub oracle_car_a: f32,
    /// The balancer's state.
    pub state: State,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The scenario's name.
    pub scenario: String,
    /// The control mode.
    pub mode: ControlMode,
    /// The configuration the balancer ran with.
    pub config: Config,
    /// The fuse rating, A.
    pub fuse_a: f64,
    /// The measurements.
    pub metrics: Metrics,
    /// Second by second, when asked for.
    pub trace: Vec<Sample>,
    /// The car's delay in this run, ms.
    pub car_delay_ms: u64,
}

/// The name of a control mode as used on the command line and in JSON.
pub fn mode_name(mode: ControlMode) -> &'static str {
    match mode {
        ControlMode::Stepped => "stepped",
        ControlMode::Headroom => "headroom",
    }
}

enum HouseNow<'a> {
    Model(Box<House>),
    Recorded(&'a super::replay::Recording),
}

impl HouseNow<'_> {
    fn load(&mut self, t: u32) -> ([f64; 3], Option<[f64; 3]>) {
        match self {
            HouseNow::Model(h) => (h.load(t), None),
            HouseNow::Recorded(r) => r.load(t),
        }
    }
}

fn in_windows(w: &[(u32, u32)], t: u32) -> bool {
    w.iter().any(|&(a, b)| t >= a && t < b)
}

/// Runs `scenario` with the balancer configured by `config` (validated by the caller).
/// With `trace`, every second is kept for the plot.
pub fn run(scenario: &Scenario, config: &Config, trace: bool) -> RunResult {
    let s = scenario;
    let cfg = *config;
    let mut house = match &s.load {
        Load::Model(spec) => {
            HouseNow::Model(Box::new(House::new(spec, s.start, s.duration_s, s.seed)))
        }
        Load::Recorded(r) => HouseNow::Recorded(r),
    };
    let mut meter = Meter::new(&s.meter, s.start, s.seed);
    // The products' P1 input on a 115200 8N1 line (DSMR 5, e-MUCS): every telegram
    // carries a CRC.
    let mut input = P1Input::new();
    let mut balancer = Balancer::new(cfg, Instant::ZERO);
    let cap_ma = balancer.cap_ma();
    let min_a = f64::from(cfg.charger_min_ma()) / 1000.0;
    let mut car = Car::new(&s.car, Dynamics::real(min_a, s.car.delay_ms));
    let mut bus = ChargerBus::new(&cfg);
    let mut bus_events = Vec::new();
    let mut oracle_car = Car::new(&s.car, Dynamics::oracle(min_a));
    let mut yard = YARDSTICKS.map(|(hold, margin)| {
        (
            oracle::Reactive::new(&cfg, cap_ma, s.car.phases, hold, margin),
            Car::new(&s.car, Dynamics::real(min_a, s.car.delay_ms)),
        )
    });
    let mut fuse = Fuse::new(s.fuse_a);
    let phases = usize::from(cfg.phases());
    let upper_a = f64::from(cfg.upper_ma()) / 1000.0;
    let source = cfg.grid_source();

    let mut m = Metrics {
        duration_s: s.duration_s,
        charger_fault_s: s.car.stuck_seconds(),
        ..Metrics::default()
    };
    let mut samples = Vec::with_capacity(if trace { s.duration_s as usize } else { 0 });
    let mut volts = [230.0; 3];
    // The current stretch above the fuse rating: (length, touched by a fault).
    let mut episode: Option<(f64, bool)> = None;
    let end_episode = |e: Option<(f64, bool)>, m: &mut Metrics| {
        if let Some((len, fault)) = e {
            m.over_fuse_episodes += 1;
            if fault {
                m.fault_seconds_over_fuse += len;
            } else {
                m.longest_over_fuse_s = m.longest_over_fuse_s.max(len);
            }
        }
    };

    for t in 0..s.duration_s {
        let now = u64::from(t) * 1000;
        // 1. The tick, when due: the balancer's timer, or right after a telegram (see
        // 4.); the car gets each new value when it is decided.
        tick_due(&mut balancer, now, &car, &mut yard, &mut m);
        let (house_a, recorded_v) = house.load(t);
        let oracle_ma = oracle::limit_ma(&cfg, cap_ma, s.car.phases, house_a);
        oracle_car.command(now, oracle_ma);
        let oracle_before_kwh = oracle_car.energy_kwh();
        let d = balancer.decision();
        let in_fallback = d.state == State::Fallback;
        if in_fallback {
            m.seconds_in_fallback += 1;
        }
        if car.wants_charge() && d.sent_ma == 0 && oracle_ma > 0 {
            m.paused_s_oracle_charging += 1;
        }
        let stuck = in_windows(&s.car.stuck, t);
        let mut fault = stuck || in_windows(&s.meter.silent, t);
        let mut measured = [0.0; 3];
        for k in 0..STEPS {
            let tk = now + u64::from(k) * u64::from(1000 / STEPS);
            if k > 0 {
                tick_due(&mut balancer, tk, &car, &mut yard, &mut m);
            }
            car.step(tk, DT_S, volts);
            oracle_car.step(tk, DT_S, volts);
            for ((_, ycar), ym) in yard.iter_mut().zip(&mut m.reactive) {
                ycar.step(tk, DT_S, volts);
                let c = ycar.currents();
                let grid = [0, 1, 2].map(|p| house_a[p] + c[p]);
                if grid[..phases].iter().any(|&a| a > upper_a) {
                    ym.seconds_over_upper += DT_S;
                }
                if grid.iter().any(|a| a.abs() > s.fuse_a) {
                    ym.seconds_over_fuse += DT_S;
                    ym.stretch_s += DT_S;
                    ym.longest_over_fuse_s = ym.longest_over_fuse_s.max(ym.stretch_s);
                } else {
                    ym.stretch_s = 0.0;
                }
            }
            let c = car.currents();
            let grid = [0, 1, 2].map(|p| house_a[p] + c[p]);
            if k == 0 {
                volts = meter.voltages(grid, recorded_v);
                measured = grid;
                if trace {
                    samples.push(Sample {
                        grid_a: grid.map(|a| a as f32),
                        sent_a: d.sent_ma as f32 / 1000.0,
                        car_a: c.iter().copied().fold(0.0, f64::max) as f32,
                        oracle_a: 0.0,
                        oracle_car_a: oracle_car.currents().iter().copied().fold(0.0, f64::max)
                            as f32,
                        state: d.state,
                    });
                }
            }
            if u64::from(k) * 100 == TELEGRAM_AT_MS {
                let before = meter.stats();
                let bytes = meter.second(t, measured, volts);
                input.feed(bytes, |event| {
                    if let P1Event::Telegram(reading) = event {
                        let grid_ma = reading.grid_currents_ma(source);
                        if balancer.on_reading(Instant::from_millis(tk), grid_ma) {
                            for (ctl, _) in &mut yard {
                                ctl.on_reading(tk, house_a);
                            }
                        }
                        tick_due(&mut balancer, tk, &car, &mut yard, &mut m);
                    }
                });
                let after = meter.stats();
                fault |= after.corrupted != before.corrupted || after.junk != before.junk;
            }
            if u64::from(k) * 100 == CHARGER_MEASURES_AT_MS {
                bus.measure(car.measured_ma());
            }
            // The bus to the end of this step, with the value decided so far.
            bus.run_until(
                Instant::from_millis(tk + 1000 / u64::from(STEPS)),
                balancer.decision().sent_ma,
                &mut bus_events,
            );
            for ev in bus_events.drain(..) {
                match ev {
                    BusEvent::LimitApplied { at, limit_ma } => {
                        car.command(at.total_millis(), limit_ma)
                    }
                    BusEvent::StatusRead { at } => {
                        if let Some(driver) = bus.master().driver(0) {
                            balancer.on_charger_currents(at, driver.status().current_ma);
                        }
                    }
                }
            }
            if fuse.step(grid, DT_S) {
                m.trips = fuse.trips();
            }
            let highest = grid[..phases].iter().copied().fold(f64::MIN, f64::max);
            if highest > upper_a {
                m.seconds_over_upper += DT_S;
            }
            let peak = grid.iter().map(|a| a.abs()).fold(0.0, f64::max);
            m.max_phase_current_a = m.max_phase_current_a.max(peak);
            if peak > s.fuse_a {
                m.seconds_over_fuse += DT_S;
                m.ampere_seconds_over_fuse += (peak - s.fuse_a) * DT_S;
                let e = episode.get_or_insert((0.0, fault));
                e.0 += DT_S;
                e.1 |= fault;
            } else {
                end_episode(episode.take(), &mut m);
            }
            if house_a.iter().any(|a| a.abs() > s.fuse_a) {
                m.house_seconds_over_fuse += DT_S;
            }
        }
        if in_fallback {
            m.oracle_energy_in_fallback_kwh += oracle_car.energy_kwh() - oracle_before_kwh;
        }
        if let Some(last) = samples.last_mut() {
            last.oracle_a = oracle_ma as f32 / 1000.0;
        }
    }
    end_episode(episode.take(), &mut m);

    let ms = meter.stats();
    let rs = input.stats();
    m.ev_energy_kwh = car.energy_kwh();
    m.oracle_energy_kwh = oracle_car.energy_kwh();
    m.oracle_pct = pct(m.ev_energy_kwh, m.oracle_energy_kwh);
    for ((_, ycar), ym) in yard.iter().zip(&mut m.reactive) {
        ym.energy_kwh = ycar.energy_kwh();
        ym.oracle_pct = pct(ym.energy_kwh, m.oracle_energy_kwh);
    }
    m.causal_bound_pct = m.reactive[CAUSAL_BOUND].oracle_pct;
    m.causal_bound_margin_pct = m.reactive[CAUSAL_BOUND_MARGIN].oracle_pct;
    m.implausible_readbacks = balancer.implausible_readbacks();
    m.limit_changes_per_hour = f64::from(m.limit_changes) * 3600.0 / f64::from(s.duration_s);
    m.trips = fuse.trips();
    m.max_fuse_heat_pct = fuse.max_heat_pct();
    m.telegrams_sent = ms.sent;
    m.telegrams_corrupted = ms.corrupted;
    m.meter_silent_s = ms.silent_s;
    m.telegrams_valid = rs.valid;
    m.telegrams_rejected = rs.rejected();
    RunResult {
        scenario: s.name.clone(),
        mode: cfg.mode(),
        config: cfg,
        fuse_a: s.fuse_a,
        metrics: m,
        trace: samples,
        car_delay_ms: s.car.delay_ms,
    }
}

/// Ticks the balancer (and the yardsticks, at the same instants) when its tick is due
/// at `tk`, and commands the yardsticks' cars (the balancer's value goes over the bus).
fn tick_due(
    balancer: &mut Balancer,
    tk: u64,
    car: &Car,
    yard: &mut [(oracle::Reactive, Car); YARDSTICKS.len()],
    m: &mut Metrics,
) {
    let now = Instant::from_millis(tk);
    if balancer.next_tick() > now {
        return;
    }
    let d = balancer.tick(now);
    if d.changed {
        m.limit_changes += 1;
        if d.sent_ma == 0 && car.wants_charge() {
            m.pauses += 1;
        }
    }
    for (ctl, car) in yard.iter_mut() {
        car.command(tk, ctl.tick(tk));
    }
}

/// `part / whole`, % (100 when the whole is nothing).
fn pct(part: f64, whole: f64) -> f64 {
    if whole > 1e-9 {
        100.0 * part / whole
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario;
    use p1lb_core::config::address;

    fn config(s: &Scenario, mode: u16) -> Config {
        let mut c = Config::default();
        for &(a, v) in &s.settings {
            c.set(a, v).expect("scenario setting");
        }
        c.set(address::CONTROL_MODE, mode).expect("mode");
        c.validate().expect("valid");
        c
    }

    #[test]
    fn same_seed_same_result_and_another_seed_differs() {
        let s = scenario::by_name("noisy-line").expect("scenario");
        let a = run(&s, &config(&s, 1), true);
        let b = run(&s, &config(&s, 1), true);
        assert_eq!(a.metrics, b.metrics);
        assert_eq!(a.trace, b.trace);
        let mut other = s.clone();
        other.seed += 100;
        let c = run(&other, &config(&other, 1), false);
        assert_ne!(a.metrics, c.metrics);
    }

    #[test]
    fn the_device_path_sees_every_clean_telegram() {
        let s = scenario::by_name("evening-peak").expect("scenario");
        let r = run(&s, &config(&s, 1), false);
        let m = r.metrics;
        assert_eq!(m.telegrams_sent, s.duration_s);
        assert_eq!(m.telegrams_valid, s.duration_s);
        assert_eq!(m.telegrams_rejected, 0);
        assert!(m.ev_energy_kwh > 1.0 && m.oracle_pct > 50.0 && m.oracle_pct <= 101.0);
        assert_eq!(m.seconds_in_fallback, 0);
    }
}
