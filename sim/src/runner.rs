//! One run: a scenario under one configuration, second by second, with the real
//! balancer and the real P1 reader in the loop.
//!
//! Each second `t`:
//! 1. the balancer ticks whenever [`Balancer::next_tick`] is due — right after each
//!    valid telegram (see 4.), else by its timer; the yardsticks tick with it;
//! 2. the house load for the second is drawn; the oracle sets its own cars' limits from
//!    it with no delay;
//! 3. the physics runs in ten 0.1 s steps: every car (the run's, the oracle's, the
//!    yardsticks'), the grid current per phase (the house plus every car on its
//!    phases), the fuse, the metrics;
//! 4. at `t` the meter measures and at `t + 0.2 s` its telegram bytes arrive, go through
//!    the products' own P1 input ([`P1Input`]: the reader, the CRC rule) and
//!    `Reading::grid_currents_ma` into [`Balancer::on_reading`], and the tick that
//!    makes due runs at once;
//! 5. the RS485 bus runs beside it ([`ChargerBus`]: the core's bus master, the daemon's
//!    Terra AC driver, a 9600-baud line, the simulated Terra AC at every charger's
//!    address): each charger's value reaches it when the driver writes it, its car
//!    follows its applied limit after the car's delay
//!    ([`CarSpec::delay_ms`](super::car::CarSpec)), its meter measures its car on its
//!    own phases (the wiring, 1040 + 3(k−1), maps grid to charger phases) at
//!    `t + 0.5 s`, it reports charging state 0 with no car plugged in, 2 with one, 4
//!    while it draws, and the driver's status reads (every 2 s) bring all that to
//!    [`Balancer::on_charger`].
//!
//! A scenario with one car on one charger uses the single-charger oracle and
//! yardsticks ([`oracle::limit_ma`], [`oracle::Reactive`]); with several, the oracle and
//! the yardsticks share every phase among the cars with the core's rules
//! ([`oracle::SharedOracle`], [`oracle::SharedReactive`]).

use p1lb_core::balancer::{Balancer, ChargerReading, State};
use p1lb_core::config::{CapacityMode, ChargeMode, Config, ControlMode, MAX_CHARGERS};
use p1lb_core::device::{P1Event, P1Input};
use p1lb_core::time::Instant;

use super::bus::{BusEvent, ChargerBus};
use super::car::{Car, Dynamics};
use super::fuse::Fuse;
use super::house::House;
use super::meter::{Meter, Quarter};
use super::oracle;
use super::scenario::{Load, Scenario};
use super::tariff::{self, MonthPeak};
use super::time::{DAY_S, Stamp};

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
    /// Seconds the charger ignored its limit (every charger's, added).
    pub charger_fault_s: u32,
    /// Per charger (the first [`Metrics::charger_count`]): see [`Metrics::chargers`].
    pub per_charger: [ChargerMetrics; MAX_CHARGERS],
    /// The number of chargers (cars) in the run.
    pub charger_count: usize,
    /// Jain's fairness index `(Σx)² / (n·Σx²)` over the energy of the cars of one
    /// priority that wanted to charge during the run; with several priorities, the
    /// lowest of them; 1.0 for a single car (or none).
    pub fairness: f64,
}

impl Metrics {
    /// Each charger's figures, charger 1 first.
    pub fn chargers(&self) -> &[ChargerMetrics] {
        &self.per_charger[..self.charger_count.min(MAX_CHARGERS)]
    }
}

/// What one charger's car got.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ChargerMetrics {
    /// Energy into its car, kWh.
    pub energy_kwh: f64,
    /// ∫ its car's current per used phase dt, A·h: the current the chargers share.
    pub ampere_hours: f64,
    /// Seconds its car wanted to charge (plugged in, not full) while it was sent 0.
    pub paused_s: u32,
    /// The longest its car waited, paused, while another car of its priority charged
    /// (the wait grows while it is paused and another of its priority is sent a
    /// current, and ends when it is sent one: the core's turn rule), s.
    pub longest_wait_s: u32,
    /// Its priority (1042…).
    pub priority: u8,
    /// The grid phases the balancer had it on at the end of the run.
    pub phases: [bool; 3],
    /// Its wiring was configured or learned by the end of the run.
    pub wiring_known: bool,
    /// Its car wanted to charge at some time in the run.
    pub wanted: bool,
    /// The current wait, s.
    wait_s: u32,
}

/// The hold of the peak-budgeting yardstick, s: headroom mode's
/// [`p1lb_core::balancer::HEADROOM_HOLD_S`].
pub const YARDSTICK_HOLD_S: u32 = p1lb_core::balancer::HEADROOM_HOLD_S as u32;

/// The reactive yardsticks run beside every run, `(hold s, margin mA)`: \[0\] rides every
/// gap with no margin, \[1\] holds the peak as headroom mode does with no margin (the
/// causal bound, [`CAUSAL_BOUND`]), \[2\] rides every gap with headroom mode's margin
/// ([`p1lb_core::balancer::HEADROOM_MARGIN_MA`]), \[3\] holds the peak with that margin
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
    /// The value sent to the charger (several: to all of them, added), A.
    pub sent_a: f32,
    /// The car's current per used phase (several: the highest phase of all cars), A.
    pub car_a: f32,
    /// The oracle's limit (several: all chargers', added), A.
    pub oracle_a: f32,
    /// The oracle car's current per used phase (several: the highest phase of all), A.
    pub oracle_car_a: f32,
    /// The balancer's state.
    pub state: State,
    /// The value sent to each charger (charger 1 first; 0 past the last), A.
    pub sent_each_a: [f32; MAX_CHARGERS],
    /// Each charger's car's current per used phase, A.
    pub car_each_a: [f32; MAX_CHARGERS],
    /// The house load per phase in the second, A.
    pub house_a: [f32; 3],
    /// The solar output in the second, kW.
    pub pv_kw: f32,
    /// The house's surplus in the second (solar output less its own load, all phases
    /// netted; negative: the house imports), kW.
    pub surplus_kw: f32,
    /// Every car together, kW.
    pub ev_kw: f32,
    /// The 1 A-step baseline's car ([`Solar::step1a`]), kW.
    pub step1a_kw: f32,
    /// The surplus as the balancer sees it ([`Balancer::solar`]: what the chargers
    /// report drawing plus the export), kW.
    pub seen_surplus_kw: f32,
}

/// The capacity tariff's figures of a run (issue 17; see [`super::tariff`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capacity {
    /// The capacity mode the balancer ran with (1072); `None` = off.
    pub mode: Option<CapacityMode>,
    /// The target (1073), kW, when the mode is on.
    pub target_kw: Option<f64>,
    /// Every clock quarter the meter measured, with its true import.
    pub quarters: Vec<Quarter>,
    /// What the house alone (no car) imported in each of those quarters, Wh.
    pub house_wh: Vec<f64>,
    /// The peak already on the meter for the start's month, kW.
    pub earlier_peak_kw: f64,
    /// The peak of every calendar month touched (the start's with the earlier peak).
    pub month_peaks: Vec<MonthPeak>,
    /// The highest quarter of the run (energy over 15 minutes; the partial quarters at
    /// the ends count with what the run saw of them), kW.
    pub quarter_peak_kw: f64,
    /// Full quarters above the target (mode 2: above the larger of the target and the
    /// month's peak so far); with the mode on.
    pub quarters_over_target: Option<u32>,
    /// Of the full quarters, those the house alone put above that ceiling.
    pub house_quarters_over_target: Option<u32>,
    /// The capacity oracle's energy ([`oracle::CapacityOracle`]), kWh, with the mode on.
    pub oracle_energy_kwh: Option<f64>,
    /// The run's EV energy as % of the capacity oracle's.
    pub oracle_pct: Option<f64>,
    /// Charger 1's car's sessions that began in the run.
    pub sessions: u32,
    /// Of those, the ones whose need was met (the car reached its target).
    pub sessions_full: u32,
    /// The longest from plug-in to full over those sessions, h; `None` when one of
    /// them never got full (or there was none).
    pub hours_to_full: Option<f64>,
    /// [`tariff::yearly_cost_eur`] of the month peaks, €/year.
    pub cost_eur_per_year: f64,
    /// What the mode saves a year: the same run with 1072 = 0 costs this much more, €
    /// ([`with_saving`]; `None` with the mode off or when not asked).
    pub saving_eur_per_year: Option<f64>,
}

/// The solar charge modes' figures of a run (issue 18), from the simulated physics (not
/// the balancer's view). "Surplus" is the solar output less the house's own load, all
/// phases netted each second as the meters bill them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Solar {
    /// The house has solar panels.
    pub pv: bool,
    /// The solar output, kWh.
    pub pv_kwh: f64,
    /// The house's surplus (its export without the cars), kWh.
    pub surplus_kwh: f64,
    /// The cars' energy covered by the surplus: each 0.1 s, `min(the cars' power,
    /// max(0, surplus))`, kWh.
    pub ev_solar_kwh: f64,
    /// The rest of the cars' energy (from the grid), kWh.
    pub ev_grid_kwh: f64,
    /// Export while a car was plugged in and not full (energy a car could have taken),
    /// kWh.
    pub solar_exported_kwh: f64,
    /// Times a car began to draw current while plugged in (from not drawing to drawing,
    /// the first time included), every car's added.
    pub charge_starts: u32,
    /// Time charger 1's car was plugged in and the surplus covered its minimum power
    /// (1025 on its phases), h: the sun a car could charge on.
    pub sun_h: f64,
    /// Time charger 1's car was plugged in, h.
    pub car_connected_h: f64,
    /// The solar oracle's energy ([`oracle::SolarOracle`]), kWh.
    pub oracle_energy_kwh: f64,
    /// The run's EV energy as % of the solar oracle's (100 when the oracle charged
    /// nothing).
    pub oracle_pct: f64,
    /// Seconds charger 1's car was plugged in and wanted to charge while sent less than
    /// the minimum (1025), outside the fuse rules' excuse (see [`Solar::below_min_fuse_s`]).
    pub below_min_s: u32,
    /// Of the seconds below the minimum, those the fuse rules excuse: the balancer in
    /// state 2–4 (above the upper or alarm limit, fallback) or the house leaving less
    /// than the minimum under the upper limit on the car's phases, in that second or the
    /// 30 s before, or the first 5 s after the car plugged in (the charger's state is
    /// read every 2 s).
    pub below_min_fuse_s: u32,
    /// The 1 A-step baseline on the same day ([`oracle::StepOneAmp`]), with a solar
    /// charge mode (1080 = 1 or 2) and one charger.
    pub step1a: Option<StepFigures>,
    /// Seconds the balancer spent in each solar state (register 1128: idle, waiting to
    /// start, charging on surplus, waiting to stop), as of each second's start.
    pub state_s: [u32; 4],
}

/// What the 1 A-step baseline's twin run got.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepFigures {
    /// Energy into its car, kWh.
    pub energy_kwh: f64,
    /// Of it, covered by the surplus, kWh.
    pub ev_solar_kwh: f64,
    /// Times its car began to draw current while plugged in.
    pub charge_starts: u32,
    /// Changes of the value it sent.
    pub limit_changes: u32,
    /// The same per hour of the run.
    pub limit_changes_per_hour: f64,
}

/// The 1 A-step baseline's twin: its controller, its car (the same spec and delay),
/// its own bus (the same driver and poll schedule) on the same house.
struct StepTwin {
    ctl: oracle::StepOneAmp,
    car: Car,
    bus: ChargerBus,
    events: Vec<(usize, BusEvent)>,
    sent_ma: u32,
    measured_w: f64,
    drawing: bool,
    figures: StepFigures,
}

impl StepTwin {
    fn new(cfg: &Config, cap_ma: u32, spec: &super::car::CarSpec, min_a: f64) -> Self {
        StepTwin {
            ctl: oracle::StepOneAmp::new(cfg, cap_ma),
            car: Car::new(spec, Dynamics::real(min_a, spec.delay_ms)),
            bus: ChargerBus::new(cfg),
            events: Vec::new(),
            sent_ma: 0,
            measured_w: 0.0,
            drawing: false,
            figures: StepFigures::default(),
        }
    }
}

/// The sum of the voltages of `phases`, V.
fn volts_on(phases: super::house::Phases, volts: [f64; 3]) -> f64 {
    volts
        .iter()
        .zip(phases.mask())
        .filter(|(_, used)| *used)
        .map(|(v, _)| v)
        .sum()
}

/// The power of cars drawing `currents` (A per phase) at `volts`, W.
fn power_w(currents: [f64; 3], volts: [f64; 3]) -> f64 {
    currents.iter().zip(volts).map(|(a, v)| a * v).sum()
}

/// [`run`], and with a capacity mode on, the same run with it off beside it for
/// [`Capacity::saving_eur_per_year`].
pub fn with_saving(scenario: &Scenario, config: &Config, trace: bool) -> RunResult {
    let mut off = *config;
    if config.capacity_mode() == CapacityMode::Off
        || off.set_capacity_mode(CapacityMode::Off).is_err()
    {
        return run(scenario, config, trace);
    }
    // The twin beside it, on a thread of its own.
    let (mut r, twin) = std::thread::scope(|scope| {
        let twin = scope.spawn(|| run(scenario, &off, false));
        let r = run(scenario, config, trace);
        (r, twin.join().ok())
    });
    r.capacity.saving_eur_per_year =
        twin.map(|t| t.capacity.cost_eur_per_year - r.capacity.cost_eur_per_year);
    r
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
    /// The capacity tariff's figures.
    pub capacity: Capacity,
    /// Seconds per trace sample: 1, or for runs longer than two days 60 (each sample
    /// then holds the minute's highest currents and lowest limits).
    pub trace_step_s: u32,
    /// The solar charge modes' figures.
    pub solar: Solar,
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

    /// The solar output of the last second, kW (a recording's is unknown: 0).
    fn pv_kw(&self) -> f64 {
        match self {
            HouseNow::Model(h) => h.pv_kw(),
            HouseNow::Recorded(_) => 0.0,
        }
    }

    fn has_pv(&self) -> bool {
        match self {
            HouseNow::Model(h) => h.has_pv(),
            HouseNow::Recorded(_) => false,
        }
    }
}

fn in_windows(w: &[(u32, u32)], t: u32) -> bool {
    w.iter().any(|&(a, b)| t >= a && t < b)
}

/// The oracle of a run: one car with the single-charger oracle, or several sharing.
enum OracleCars {
    One(Car),
    Many(oracle::SharedOracle, Vec<Car>),
}

impl OracleCars {
    /// Sets the limits for the second `now` (ms) of the house load `house_a`; returns
    /// each charger's limit.
    fn command(
        &mut self,
        cfg: &Config,
        cap_ma: u32,
        s: &Scenario,
        now: u64,
        house_a: [f64; 3],
    ) -> Vec<u32> {
        match self {
            OracleCars::One(car) => {
                let ma = oracle::limit_ma(cfg, cap_ma, s.car.phases, house_a);
                car.command(now, ma);
                vec![ma]
            }
            OracleCars::Many(o, cars) => {
                let wants: Vec<bool> = cars.iter().map(Car::plugged_in).collect();
                let limits = o.limits_ma(now, house_a, &wants);
                for (car, &ma) in cars.iter_mut().zip(&limits) {
                    car.command(now, ma);
                }
                limits
            }
        }
    }

    fn cars(&self) -> &[Car] {
        match self {
            OracleCars::One(car) => std::slice::from_ref(car),
            OracleCars::Many(_, cars) => cars,
        }
    }

    fn cars_mut(&mut self) -> &mut [Car] {
        match self {
            OracleCars::One(car) => std::slice::from_mut(car),
            OracleCars::Many(_, cars) => cars,
        }
    }
}

/// A reactive yardstick of a run: one car, or several sharing. (Four per run, in an
/// array: the sizes do not matter.)
#[allow(clippy::large_enum_variant)]
enum Yard {
    One(oracle::Reactive, Car),
    Many(oracle::SharedReactive, Vec<Car>),
}

impl Yard {
    fn on_reading(&mut self, tk: u64, house_a: [f64; 3]) {
        match self {
            Yard::One(ctl, _) => ctl.on_reading(tk, house_a),
            Yard::Many(ctl, _) => ctl.on_reading(tk, house_a),
        }
    }

    fn tick(&mut self, tk: u64) {
        match self {
            Yard::One(ctl, car) => car.command(tk, ctl.tick(tk)),
            Yard::Many(ctl, cars) => {
                let wants: Vec<bool> = cars.iter().map(Car::plugged_in).collect();
                for (car, ma) in cars.iter_mut().zip(ctl.tick(tk, &wants)) {
                    car.command(tk, ma);
                }
            }
        }
    }

    fn cars(&self) -> &[Car] {
        match self {
            Yard::One(_, car) => std::slice::from_ref(car),
            Yard::Many(_, cars) => cars,
        }
    }

    fn cars_mut(&mut self) -> &mut [Car] {
        match self {
            Yard::One(_, car) => std::slice::from_mut(car),
            Yard::Many(_, cars) => cars,
        }
    }
}

/// The cars' currents on each grid phase together, A (the first car's as they are).
fn currents_of(cars: &[Car]) -> [f64; 3] {
    let mut it = cars.iter();
    let mut a = it.next().map_or([0.0; 3], Car::currents);
    for car in it {
        for (x, c) in a.iter_mut().zip(car.currents()) {
            *x += c;
        }
    }
    a
}

fn energy_of(cars: &[Car]) -> f64 {
    cars.iter().map(Car::energy_kwh).sum()
}

/// Charger `k`'s own phases' measurement of a car drawing `car_ma` on the grid phases:
/// its phase j sees the grid phase its wiring puts j on.
fn charger_view(cfg: &Config, k: usize, car_ma: [u32; 3]) -> [u32; 3] {
    let wiring = cfg.wiring_of(k);
    core::array::from_fn(|j| wiring.grid_phase(j).map_or(0, |p| car_ma[p]))
}

/// Jain's index over `energies` (1.0 for none, or all 0).
fn jain(energies: &[f64]) -> f64 {
    let sum: f64 = energies.iter().sum();
    let squares: f64 = energies.iter().map(|x| x * x).sum();
    if energies.is_empty() || squares <= 0.0 {
        1.0
    } else {
        sum * sum / (energies.len() as f64 * squares)
    }
}

/// Runs `scenario` with the balancer configured by `config` (validated by the caller).
/// With `trace`, every second is kept for the plot.
///
/// Every car of the scenario (charger 1's, then [`Scenario::more_cars`]) sits behind its
/// own charger on the one bus; with one car and one charger the yardsticks are the
/// single-charger ones, with several they share per phase ([`oracle::SharedOracle`],
/// [`oracle::SharedReactive`]).
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
    let specs: Vec<&super::car::CarSpec> = s.cars().take(MAX_CHARGERS).collect();
    let n = specs.len();
    let multi = n > 1 || cfg.chargers() > 1;
    let real = |c: &super::car::CarSpec| Car::new(c, Dynamics::real(min_a, c.delay_ms));
    let mut cars: Vec<Car> = specs.iter().map(|c| real(c)).collect();
    let mut bus = ChargerBus::new(&cfg);
    let mut bus_events = Vec::new();
    let seats: Vec<oracle::Seat> = specs
        .iter()
        .enumerate()
        .map(|(k, c)| oracle::Seat::of(&cfg, cap_ma, k, c.phases))
        .collect();
    let mut oracle_cars = if multi {
        OracleCars::Many(
            oracle::SharedOracle::new(&cfg, seats.clone()),
            specs
                .iter()
                .map(|c| Car::new(c, Dynamics::oracle(min_a)))
                .collect(),
        )
    } else {
        OracleCars::One(Car::new(&s.car, Dynamics::oracle(min_a)))
    };
    let mut yard = YARDSTICKS.map(|(hold, margin)| {
        if multi {
            Yard::Many(
                oracle::SharedReactive::new(&cfg, seats.clone(), hold, margin),
                specs.iter().map(|c| real(c)).collect(),
            )
        } else {
            Yard::One(
                oracle::Reactive::new(&cfg, cap_ma, s.car.phases, hold, margin),
                real(&s.car),
            )
        }
    });
    let mut fuse = Fuse::new(s.fuse_a);
    let phases = usize::from(cfg.phases());
    let upper_a = f64::from(cfg.upper_ma()) / 1000.0;

    let mut m = Metrics {
        duration_s: s.duration_s,
        charger_fault_s: specs.iter().map(|c| c.stuck_seconds()).sum(),
        charger_count: n,
        ..Metrics::default()
    };
    for (k, cm) in m.per_charger.iter_mut().enumerate().take(n) {
        cm.priority = cfg.priority_of(k);
    }
    let trace_step_s = if s.duration_s > 2 * DAY_S { 60 } else { 1 };
    let mut samples = Vec::with_capacity(if trace {
        (s.duration_s / trace_step_s) as usize + 1
    } else {
        0
    });
    // The capacity tariff: the house alone per meter quarter, the capacity oracle (with
    // the mode on), when charger 1's car got full in each of its sessions.
    let capacity_mode = cfg.capacity_mode();
    let earlier_peak_w = s.meter.month_peak.map_or(0, |p| p.power_w);
    let mut capacity_oracle = (capacity_mode != CapacityMode::Off).then(|| {
        oracle::CapacityOracle::new(
            &cfg,
            &specs,
            Stamp::after(s.start, 0),
            f64::from(earlier_peak_w),
        )
    });
    let meter_phases = s.meter.phases.min(3);
    let mut house_wh: Vec<f64> = Vec::new();
    let mut full_at: Vec<Option<u32>> = vec![None; s.car.sessions.len()];
    let mut caps_w = vec![0.0; n];
    let mut volts = [230.0; 3];
    // The solar figures: the solar oracle, the 1 A-step baseline's twin (a solar mode,
    // one charger), each car drawing or not, the fuse rules' last cut, the plug-in.
    let solar_mode = matches!(
        cfg.charge_mode(),
        ChargeMode::MinSolar | ChargeMode::SolarOnly
    );
    let mut sol = Solar {
        pv: house.has_pv(),
        ..Solar::default()
    };
    let mut solar_oracle = oracle::SolarOracle::new(&cfg, cap_ma, &specs);
    let mut twin = (solar_mode && !multi).then(|| StepTwin::new(&cfg, cap_ma, &s.car, min_a));
    let mut drawing = vec![false; n];
    let mut fuse_cut_at: Option<u32> = None;
    let mut plugged_at: Option<u32> = None;
    let (mut ev_wh, mut ev_solar_wh, mut exported_wh) = (0.0, 0.0, 0.0);
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
        tick_due(&mut balancer, now, &cars, &mut yard, &mut m);
        let (house_a, recorded_v) = house.load(t);
        let oracle_ma = oracle_cars.command(&cfg, cap_ma, s, now, house_a);
        let oracle_before_kwh = energy_of(oracle_cars.cars());
        let d = balancer.decision();
        let in_fallback = d.state == State::Fallback;
        if in_fallback {
            m.seconds_in_fallback += 1;
        }
        let sent: Vec<u32> = (0..n)
            .map(|k| {
                if k == 0 {
                    d.sent_ma
                } else {
                    balancer.sent_of_ma(k)
                }
            })
            .collect();
        for (k, car) in cars.iter().enumerate() {
            if car.wants_charge() && sent[k] == 0 && oracle_ma.get(k).is_some_and(|&o| o > 0) {
                m.paused_s_oracle_charging += 1;
            }
        }
        charger_seconds(&mut m, &cars, &sent);
        // The solar figures of the second (the voltages of the last).
        let (seen_surplus_w, solar_state) = balancer.solar();
        if let Some(x) = sol.state_s.get_mut(usize::from(solar_state.code())) {
            *x += 1;
        }
        let house_w = power_w(house_a, volts);
        let surplus_w = -house_w;
        sol.pv_kwh += house.pv_kw() / 3600.0;
        sol.surplus_kwh += surplus_w.max(0.0) / 3_600_000.0;
        solar_oracle.second(t, house_a, volts);
        for (j, car) in cars.iter().enumerate() {
            let now_drawing = car.plugged_in() && car.currents().iter().any(|&a| a > 0.0);
            if now_drawing && !drawing[j] {
                sol.charge_starts += 1;
            }
            drawing[j] = now_drawing;
        }
        if let Some(car) = cars.first() {
            if car.plugged_in() {
                sol.car_connected_h += 1.0 / 3600.0;
                let min_w = min_a * volts_on(s.car.phases, volts);
                if surplus_w >= min_w && surplus_w > 0.0 {
                    sol.sun_h += 1.0 / 3600.0;
                }
                let at = *plugged_at.get_or_insert(t);
                let room = oracle::limit_ma(&cfg, cap_ma, s.car.phases, house_a);
                if matches!(d.state, State::Upper | State::Alarm | State::Fallback)
                    || room < cfg.charger_min_ma()
                {
                    fuse_cut_at = Some(t);
                }
                if car.wants_charge() && sent[0] < cfg.charger_min_ma() {
                    let excused =
                        t < at + 5 || fuse_cut_at.is_some_and(|c| t <= c.saturating_add(30));
                    if excused {
                        sol.below_min_fuse_s += 1;
                    } else {
                        sol.below_min_s += 1;
                    }
                }
            } else {
                plugged_at = None;
            }
        }
        if let Some(tw) = &mut twin {
            let now_drawing = tw.car.plugged_in() && tw.car.currents().iter().any(|&a| a > 0.0);
            if now_drawing && !tw.drawing {
                tw.figures.charge_starts += 1;
            }
            tw.drawing = now_drawing;
        }
        let stuck = specs.iter().any(|c| in_windows(&c.stuck, t));
        let mut fault = stuck || in_windows(&s.meter.silent, t);
        let mut measured = [0.0; 3];
        for k in 0..STEPS {
            let tk = now + u64::from(k) * u64::from(1000 / STEPS);
            if k > 0 {
                tick_due(&mut balancer, tk, &cars, &mut yard, &mut m);
            }
            for car in &mut cars {
                car.step(tk, DT_S, volts);
            }
            for car in oracle_cars.cars_mut() {
                car.step(tk, DT_S, volts);
            }
            for (y, ym) in yard.iter_mut().zip(&mut m.reactive) {
                for ycar in y.cars_mut() {
                    ycar.step(tk, DT_S, volts);
                }
                let c = currents_of(y.cars());
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
            for (cm, car) in m.per_charger.iter_mut().zip(&cars) {
                let a = car.currents().iter().copied().fold(0.0, f64::max);
                cm.ampere_hours += a * DT_S / 3600.0;
            }
            let c = currents_of(&cars);
            let grid = [0, 1, 2].map(|p| house_a[p] + c[p]);
            if k == 0 {
                volts = meter.voltages(grid, recorded_v);
                measured = grid;
                if trace {
                    let per_car =
                        |cs: &[Car]| currents_of(cs).iter().copied().fold(0.0, f64::max) as f32;
                    samples.push(Sample {
                        grid_a: grid.map(|a| a as f32),
                        sent_a: if multi {
                            sent.iter().map(|&v| v as f32).sum::<f32>() / 1000.0
                        } else {
                            d.sent_ma as f32 / 1000.0
                        },
                        car_a: if multi {
                            per_car(&cars)
                        } else {
                            c.iter().copied().fold(0.0, f64::max) as f32
                        },
                        oracle_a: 0.0,
                        oracle_car_a: per_car(oracle_cars.cars()),
                        state: d.state,
                        sent_each_a: core::array::from_fn(|j| {
                            sent.get(j).map_or(0.0, |&v| v as f32 / 1000.0)
                        }),
                        car_each_a: core::array::from_fn(|j| {
                            cars.get(j).map_or(0.0, |c| {
                                c.currents().iter().copied().fold(0.0, f64::max) as f32
                            })
                        }),
                        house_a: house_a.map(|a| a as f32),
                        pv_kw: house.pv_kw() as f32,
                        surplus_kw: (-power_w(house_a, volts) / 1000.0) as f32,
                        ev_kw: (power_w(c, volts) / 1000.0) as f32,
                        step1a_kw: twin.as_ref().map_or(0.0, |tw| {
                            (power_w(tw.car.currents(), volts) / 1000.0) as f32
                        }),
                        seen_surplus_kw: seen_surplus_w as f32 / 1000.0,
                    });
                }
            }
            // The solar energy of the step: the cars' power, the part of it the house's
            // surplus covers, the export while a car wants to charge.
            let ev_w = power_w(c, volts);
            let house_w = power_w(house_a, volts);
            ev_wh += ev_w * DT_S / 3600.0;
            ev_solar_wh += ev_w.min((-house_w).max(0.0)) * DT_S / 3600.0;
            if cars.iter().any(Car::wants_charge) {
                exported_wh += (-(house_w + ev_w)).max(0.0) * DT_S / 3600.0;
            }
            if let Some(tw) = &mut twin {
                tw.car.step(tk, DT_S, volts);
                let tc = tw.car.currents();
                let tw_w = power_w(tc, volts);
                tw.figures.ev_solar_kwh += tw_w.min((-house_w).max(0.0)) * DT_S / 3_600_000.0;
                if k == 0 {
                    tw.measured_w = house_w + tw_w;
                }
            }
            if u64::from(k) * 100 == TELEGRAM_AT_MS {
                let before = meter.stats();
                let bytes = meter.second(t, measured, volts);
                let mut telegram = false;
                input.feed(bytes, |event| {
                    if let P1Event::Telegram(reading) = event {
                        telegram = true;
                        if balancer.on_telegram(Instant::from_millis(tk), reading) {
                            for y in &mut yard {
                                y.on_reading(tk, house_a);
                            }
                        }
                        tick_due(&mut balancer, tk, &cars, &mut yard, &mut m);
                    }
                });
                let after = meter.stats();
                fault |= after.corrupted != before.corrupted || after.junk != before.junk;
                // The baseline reads the same telegrams (its own grid, exactly).
                if let Some(tw) = &mut twin {
                    if telegram {
                        let room = oracle::limit_ma(&cfg, cap_ma, s.car.phases, house_a);
                        tw.sent_ma = tw.ctl.on_reading(
                            tk,
                            tw.measured_w,
                            volts_on(s.car.phases, volts),
                            tw.car.plugged_in(),
                            room,
                        );
                    }
                }
            }
            if let Some(tw) = &mut twin {
                if u64::from(k) * 100 == CHARGER_MEASURES_AT_MS {
                    tw.bus
                        .measure_of(0, charger_view(&cfg, 0, tw.car.measured_ma()));
                }
                tw.bus.set_connected(0, tw.car.plugged_in());
                let mut each = [0; MAX_CHARGERS];
                each[0] = tw.sent_ma;
                tw.bus.run_until_each(
                    Instant::from_millis(tk + 1000 / u64::from(STEPS)),
                    &each,
                    &mut tw.events,
                );
                for (_, ev) in tw.events.drain(..) {
                    if let BusEvent::LimitApplied { at, limit_ma } = ev {
                        tw.car.command(at.total_millis(), limit_ma);
                    }
                }
            }
            if u64::from(k) * 100 == CHARGER_MEASURES_AT_MS {
                for (j, car) in cars.iter().enumerate() {
                    bus.measure_of(j, charger_view(&cfg, j, car.measured_ma()));
                }
            }
            for (j, car) in cars.iter().enumerate() {
                bus.set_connected(j, car.plugged_in());
            }
            // The bus to the end of this step, with the values decided so far.
            let d_now = balancer.decision();
            let sent_now: [u32; MAX_CHARGERS] = core::array::from_fn(|j| {
                if j == 0 {
                    d_now.sent_ma
                } else {
                    balancer.sent_of_ma(j)
                }
            });
            bus.run_until_each(
                Instant::from_millis(tk + 1000 / u64::from(STEPS)),
                &sent_now,
                &mut bus_events,
            );
            for (j, ev) in bus_events.drain(..) {
                match ev {
                    BusEvent::LimitApplied { at, limit_ma } => {
                        if let Some(car) = cars.get_mut(j) {
                            car.command(at.total_millis(), limit_ma)
                        }
                    }
                    BusEvent::StatusRead { at } => {
                        if let Some(driver) = bus.master().driver(j) {
                            let st = driver.status();
                            let reading = ChargerReading {
                                current_ma: st.current_ma,
                                state: st.state,
                                silent: driver.not_answering(),
                                exception: driver.exception(),
                            };
                            balancer.on_charger(at, j, &reading, true);
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
            m.oracle_energy_in_fallback_kwh += energy_of(oracle_cars.cars()) - oracle_before_kwh;
        }
        if let Some(last) = samples.last_mut() {
            last.oracle_a = oracle_ma.iter().map(|&v| v as f32).sum::<f32>() / 1000.0;
        }
        if trace_step_s > 1 && t % trace_step_s != 0 && samples.len() > 1 {
            if let Some(x) = samples.pop() {
                if let Some(agg) = samples.last_mut() {
                    merge(agg, &x);
                }
            }
        }
        // The capacity tariff's accounts for the second.
        let house_w: f64 = (0..meter_phases).map(|p| house_a[p] * volts[p]).sum();
        let open = meter.quarters().len();
        if house_wh.len() <= open {
            house_wh.resize(open + 1, 0.0);
        }
        house_wh[open] += house_w.max(0.0) / 3600.0;
        if let Some(o) = &mut capacity_oracle {
            for (k, c) in specs.iter().enumerate() {
                let plugged = c.sessions.iter().any(|x| t >= x.arrive_s && t < x.leave_s);
                let a =
                    (f64::from(oracle_ma.get(k).copied().unwrap_or(0)) / 1000.0).min(c.obc_max_a);
                caps_w[k] = if plugged && a >= min_a && a > 0.0 {
                    c.phases
                        .mask()
                        .iter()
                        .zip(volts)
                        .filter(|(used, _)| **used)
                        .map(|(_, v)| a * v)
                        .sum()
                } else {
                    0.0
                };
            }
            o.second(t, Stamp::after(s.start, t), house_w, &caps_w);
        }
        if let Some(car) = cars.first() {
            if car.plugged_in() && !car.wants_charge() {
                let i = s
                    .car
                    .sessions
                    .iter()
                    .position(|x| t >= x.arrive_s && t < x.leave_s);
                if let Some(slot) = i.and_then(|i| full_at.get_mut(i)) {
                    slot.get_or_insert(t);
                }
            }
        }
    }
    end_episode(episode.take(), &mut m);

    let ms = meter.stats();
    let rs = input.stats();
    m.ev_energy_kwh = energy_of(&cars);
    m.oracle_energy_kwh = energy_of(oracle_cars.cars());
    m.oracle_pct = pct(m.ev_energy_kwh, m.oracle_energy_kwh);
    for (y, ym) in yard.iter().zip(&mut m.reactive) {
        ym.energy_kwh = energy_of(y.cars());
        ym.oracle_pct = pct(ym.energy_kwh, m.oracle_energy_kwh);
    }
    for (k, (cm, car)) in m.per_charger.iter_mut().zip(&cars).enumerate() {
        cm.energy_kwh = car.energy_kwh();
        let view = balancer.charger(k);
        cm.phases = view.phases;
        cm.wiring_known = view.wiring_known;
    }
    m.fairness = fairness(m.chargers());
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
    sol.ev_solar_kwh = ev_solar_wh / 1000.0;
    sol.ev_grid_kwh = (ev_wh - ev_solar_wh).max(0.0) / 1000.0;
    sol.solar_exported_kwh = exported_wh / 1000.0;
    sol.oracle_energy_kwh = solar_oracle.energy_kwh();
    sol.oracle_pct = pct(m.ev_energy_kwh, sol.oracle_energy_kwh);
    sol.step1a = twin.map(|tw| {
        let mut f = tw.figures;
        f.energy_kwh = tw.car.energy_kwh();
        f.limit_changes = tw.ctl.changes();
        f.limit_changes_per_hour = f64::from(f.limit_changes) * 3600.0 / f64::from(s.duration_s);
        f
    });
    let quarters = meter.finish().to_vec();
    if let Some(o) = &mut capacity_oracle {
        o.finish();
    }
    let capacity = capacity_figures(
        s,
        &cfg,
        quarters,
        house_wh,
        &full_at,
        capacity_oracle.as_ref(),
        m.ev_energy_kwh,
    );
    RunResult {
        scenario: s.name.clone(),
        mode: cfg.mode(),
        config: cfg,
        fuse_a: s.fuse_a,
        metrics: m,
        trace: samples,
        car_delay_ms: s.car.delay_ms,
        capacity,
        trace_step_s,
        solar: sol,
    }
}

/// Folds the second `x` into the trace sample `agg` (runs longer than two days): the
/// highest currents, the lowest limits.
fn merge(agg: &mut Sample, x: &Sample) {
    for (a, b) in agg.grid_a.iter_mut().zip(x.grid_a) {
        *a = a.max(b);
    }
    for (a, b) in agg.house_a.iter_mut().zip(x.house_a) {
        *a = a.max(b);
    }
    agg.sent_a = agg.sent_a.min(x.sent_a);
    agg.oracle_a = agg.oracle_a.min(x.oracle_a);
    agg.car_a = agg.car_a.max(x.car_a);
    agg.oracle_car_a = agg.oracle_car_a.max(x.oracle_car_a);
    for (a, b) in agg.sent_each_a.iter_mut().zip(x.sent_each_a) {
        *a = a.min(b);
    }
    for (a, b) in agg.car_each_a.iter_mut().zip(x.car_each_a) {
        *a = a.max(b);
    }
    agg.pv_kw = agg.pv_kw.max(x.pv_kw);
    agg.surplus_kw = agg.surplus_kw.max(x.surplus_kw);
    agg.ev_kw = agg.ev_kw.max(x.ev_kw);
    agg.step1a_kw = agg.step1a_kw.max(x.step1a_kw);
    agg.seen_surplus_kw = agg.seen_surplus_kw.max(x.seen_surplus_kw);
}

/// The capacity figures of a finished run.
fn capacity_figures(
    s: &Scenario,
    cfg: &Config,
    quarters: Vec<Quarter>,
    house_wh: Vec<f64>,
    full_at: &[Option<u32>],
    oracle: Option<&oracle::CapacityOracle>,
    ev_energy_kwh: f64,
) -> Capacity {
    let start = Stamp::after(s.start, 0);
    let earlier_peak_kw = f64::from(s.meter.month_peak.map_or(0, |p| p.power_w)) / 1000.0;
    let month_peaks = tariff::month_peaks(start, earlier_peak_kw, &quarters);
    let quarter_peak_kw = quarters.iter().map(Quarter::average_kw).fold(0.0, f64::max);
    let mode = cfg.capacity_mode();
    let on = mode != CapacityMode::Off;
    let target_kw = on.then(|| f64::from(cfg.capacity_target_w()) / 1000.0);
    let over = target_kw.map(|target| {
        tariff::over_target(mode, target, start, earlier_peak_kw, &quarters, &house_wh)
    });
    let oracle_energy_kwh = oracle.map(oracle::CapacityOracle::energy_kwh);
    // Charger 1's car's sessions that began in the run, and when each got full.
    let mut sessions = 0;
    let mut sessions_full = 0;
    let mut longest: Option<f64> = Some(0.0);
    for (x, full) in s.car.sessions.iter().zip(full_at) {
        if x.arrive_s >= s.duration_s {
            continue;
        }
        sessions += 1;
        match full {
            Some(at) => {
                sessions_full += 1;
                let h = f64::from(at.saturating_sub(x.arrive_s)) / 3600.0;
                longest = longest.map(|l| l.max(h));
            }
            None => longest = None,
        }
    }
    Capacity {
        mode: on.then_some(mode),
        target_kw,
        earlier_peak_kw,
        cost_eur_per_year: tariff::yearly_cost_eur(&month_peaks),
        month_peaks,
        quarter_peak_kw,
        quarters_over_target: over.map(|o| o.0),
        house_quarters_over_target: over.map(|o| o.1),
        oracle_pct: oracle_energy_kwh.map(|o| pct(ev_energy_kwh, o)),
        oracle_energy_kwh,
        sessions,
        sessions_full,
        hours_to_full: if sessions > 0 { longest } else { None },
        quarters,
        house_wh,
        saving_eur_per_year: None,
    }
}

/// The seconds each charger's car was paused, and its wait while another car of its
/// priority charged, for the second whose values are `sent`.
fn charger_seconds(m: &mut Metrics, cars: &[Car], sent: &[u32]) {
    let n = cars.len().min(MAX_CHARGERS);
    let charging: Vec<bool> = (0..n)
        .map(|k| cars[k].wants_charge() && sent[k] > 0)
        .collect();
    for k in 0..n {
        let wants = cars[k].wants_charge();
        let priority = m.per_charger[k].priority;
        let other = (0..n).any(|j| j != k && charging[j] && m.per_charger[j].priority == priority);
        let cm = &mut m.per_charger[k];
        cm.wanted |= wants;
        if !wants || sent[k] > 0 {
            cm.wait_s = 0;
            continue;
        }
        cm.paused_s += 1;
        if other {
            cm.wait_s += 1;
            cm.longest_wait_s = cm.longest_wait_s.max(cm.wait_s);
        }
    }
}

/// Jain's index per priority among the chargers whose car wanted to charge; the lowest.
fn fairness(chargers: &[ChargerMetrics]) -> f64 {
    let mut worst: f64 = 1.0;
    for priority in 0..8u8 {
        let energies: Vec<f64> = chargers
            .iter()
            .filter(|c| c.wanted && c.priority == priority)
            .map(|c| c.energy_kwh)
            .collect();
        worst = worst.min(jain(&energies));
    }
    worst
}

/// Ticks the balancer (and the yardsticks, at the same instants) when its tick is due
/// at `tk`, and commands the yardsticks' cars (the balancer's values go over the bus).
fn tick_due(
    balancer: &mut Balancer,
    tk: u64,
    cars: &[Car],
    yard: &mut [Yard; YARDSTICKS.len()],
    m: &mut Metrics,
) {
    let now = Instant::from_millis(tk);
    if balancer.next_tick() > now {
        return;
    }
    let before: [u32; MAX_CHARGERS] = core::array::from_fn(|k| balancer.sent_of_ma(k));
    let d = balancer.tick(now);
    if d.changed {
        m.limit_changes += 1;
        if cars.len() <= 1 {
            if d.sent_ma == 0 && cars.first().is_some_and(Car::wants_charge) {
                m.pauses += 1;
            }
        } else {
            for (k, car) in cars.iter().enumerate() {
                let sent = balancer.sent_of_ma(k);
                if sent == 0 && before[k] != 0 && car.wants_charge() {
                    m.pauses += 1;
                }
            }
        }
    }
    for y in yard.iter_mut() {
        y.tick(tk);
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

    /// `scenario` cut to its first `minutes`, headroom mode.
    fn short(name: &str, minutes: u32) -> RunResult {
        let mut s = scenario::by_name(name).expect("scenario");
        s.duration_s = minutes * 60;
        for car in std::iter::once(&mut s.car).chain(&mut s.more_cars) {
            for session in &mut car.sessions {
                session.leave_s = session.leave_s.min(s.duration_s);
            }
        }
        run(&s, &config(&s, 1), false)
    }

    /// Two chargers on one bus: each car follows its own charger, the balancer learns
    /// each one's state and phases, the lower priority pauses when L1 holds one
    /// minimum, and the grid carries both cars.
    #[test]
    fn two_chargers_each_car_behind_its_own() {
        let r = short("two-cars-priority", 60);
        let m = r.metrics;
        assert_eq!(m.chargers().len(), 2);
        let [three, single] = [m.chargers()[0], m.chargers()[1]];
        assert!(three.energy_kwh > 1.0 && single.energy_kwh > 0.5, "{m:?}");
        assert_eq!(three.phases, [true; 3]);
        assert_eq!(single.phases, [true, false, false]);
        assert!(three.wiring_known && single.wiring_known);
        assert!((single.priority, three.priority) == (2, 1));
        // The oven on L1 leaves room for one minimum at times: the lower priority
        // pauses, the higher does not wait for it.
        assert!(three.paused_s > single.paused_s + 300, "{m:?}");
        assert_eq!(single.longest_wait_s, 0);
        assert!(m.ev_energy_kwh <= m.oracle_energy_kwh * 1.01);
        assert_eq!(m.fairness, 1.0);
        assert_eq!(m.trips, 0);
    }

    /// Four cars of one priority where two minimums fit at times: they take turns.
    #[test]
    fn four_chargers_take_turns() {
        let r = short("four-cars", 100);
        let m = r.metrics;
        assert_eq!(m.chargers().len(), 4);
        for c in m.chargers() {
            assert!(c.energy_kwh > 1.0, "{c:?}");
            assert!(c.longest_wait_s <= 900, "{c:?}");
        }
        assert!(m.chargers().iter().any(|c| c.longest_wait_s > 60), "{m:?}");
        assert!(m.fairness > 0.95, "{}", m.fairness);
        assert_eq!(m.trips, 0);
    }

    /// One car: one charger entry, fairness 1, the single-charger yardsticks.
    #[test]
    fn one_car_one_entry() {
        let r = short("oven-evening", 2);
        let m = r.metrics;
        assert_eq!(m.chargers().len(), 1);
        assert_eq!(m.fairness, 1.0);
        assert!((m.chargers()[0].energy_kwh - m.ev_energy_kwh).abs() < 1e-12);
        assert_eq!(m.chargers()[0].longest_wait_s, 0);
    }

    /// Found with this simulator: in `two-cars-priority` (headroom, car 2 s late) the
    /// oven on L1 goes off at 2682 s; after the 6 s hold the three-phase car (priority 1)
    /// is admitted again at 2689 s with ~10 A each, the sum sent on L1 is lowered at
    /// 2692 s, and when charger 1's car ramps (2694–2696 s, ahead of its read-back) the
    /// shared L1 law took the rise for house load (it looked at the last change of the
    /// sum sent only): the L1 budget dropped under two minimums and charger 1 was paused
    /// at 2697–2707 s with the house drawing 1.9 A on L1. A shared law now takes a rise
    /// for a car's climb for a while after any charger on its phase was given more.
    #[test]
    fn a_readmitted_car_is_not_paused_again_with_room_to_spare() {
        let s = scenario::by_name("two-cars-priority").expect("scenario");
        let r = run(&s, &config(&s, 1), true);
        let wrongly: Vec<usize> = (2690..2720)
            .filter(|&t| {
                let x = &r.trace[t];
                let quiet = (t - 8..=t).all(|u| r.trace[u].house_a[0] < 4.0);
                quiet && x.sent_each_a[0] == 0.0
            })
            .collect();
        assert!(
            wrongly.is_empty(),
            "charger 1 paused at {wrongly:?} s with L1 quiet"
        );
    }

    #[test]
    fn jain_index() {
        assert_eq!(jain(&[]), 1.0);
        assert_eq!(jain(&[3.0, 3.0, 3.0]), 1.0);
        assert!((jain(&[1.0, 0.0]) - 0.5).abs() < 1e-12);
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
