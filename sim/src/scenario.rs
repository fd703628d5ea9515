//! The named scenarios: a house, a car, a meter, a fuse and the faults, for a stretch
//! of simulated time. Each is deterministic for its seed.

use super::car::{CarSpec, Session};
use super::house::{Event, HouseSpec, Kind, Pattern, Phases, Solar};
use super::meter::{EarlierPeak, Flavour, MeterSpec};
use super::pv::{Pv, Sky};
use super::replay::Recording;
use super::rng::Rng;
use super::time::{DAY_S, DateTime, Stamp};
use p1lb_core::config::address;

/// Where the house load comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// The house model.
    Model(HouseSpec),
    /// A recorded P1 stream.
    Recorded(Recording),
}

/// One scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The name used on the command line and in JSON.
    pub name: String,
    /// One line for people.
    pub about: String,
    /// Simulated time, s.
    pub duration_s: u32,
    /// The meter's clock at the start.
    pub start: DateTime,
    /// The seed of every random draw.
    pub seed: u64,
    /// The house.
    pub load: Load,
    /// The car and its sessions, behind charger 1.
    pub car: CarSpec,
    /// The cars behind chargers 2, 3 … (each on its own charger and phases; empty for
    /// a single charger). The scenario's settings give the charger count (1037) and each
    /// charger's wiring, maximum and priority.
    pub more_cars: Vec<CarSpec>,
    /// The meter and its faults.
    pub meter: MeterSpec,
    /// The main fuse's rating per phase, A.
    pub fuse_a: f64,
    /// Settings this installation needs (address, value), applied over the defaults
    /// before a `--config` file.
    pub settings: Vec<(u16, u16)>,
}

impl Scenario {
    /// The same scenario with its car's first session plugged in from the start (the
    /// daemon's built-in simulation: whoever runs it sees the loop close at once).
    pub fn plugged_in_at_start(mut self) -> Scenario {
        for car in std::iter::once(&mut self.car).chain(&mut self.more_cars) {
            if let Some(first) = car.sessions.first_mut() {
                first.arrive_s = 0;
            }
        }
        self
    }

    /// Every car, charger 1's first.
    pub fn cars(&self) -> impl Iterator<Item = &CarSpec> {
        std::iter::once(&self.car).chain(&self.more_cars)
    }

    /// The same scenario over `days` days (at least one) from its start: its first day
    /// as it is, then each later day's house and cars drawn from it with a seed of
    /// their own (`Rng::stream(seed, 1000 + day)`). Every appliance use and car session
    /// of the first 24 h comes back each day at the same clock time (the house's jitter
    /// on top), its current and length varied by ±10–15 %; washing machine, oven and
    /// kettles are skipped on some days; on Saturdays and Sundays the morning's uses
    /// come 75 minutes later, a lunch is cooked at 12:30 (an induction hob) and the car
    /// stays plugged in until 10:00 when it would leave earlier. Each session's arrival
    /// and departure move by up to ±30 and ±20 minutes and its state of charge on
    /// arrival by ±0.08. The injected faults (meter silences, a stuck charger) stay on
    /// the first day. A recorded house repeats as it does for any length.
    pub fn over_days(&self, days: u32) -> Scenario {
        let days = days.max(1);
        let mut out = self.clone();
        out.duration_s = days.saturating_mul(DAY_S);
        let single = match &self.load {
            Load::Model(spec) => spec.base_a[1] <= 0.0 && spec.base_a[2] <= 0.0,
            Load::Recorded(r) => r.phases == 1,
        };
        // The meter's (and the household's) clock: across a DST change a day's uses
        // keep their clock time.
        let day_of = |t: u32| Stamp::after(self.start, t).local;
        let weekend = |t: u32| day_of(t).weekday() >= 5;
        let same_clock = |t0: u32, d: u32| {
            let t = t0 + d * DAY_S;
            let then = Stamp::after(self.start, t0).summer;
            let now = Stamp::after(self.start, t).summer;
            (i64::from(t) + 3600 * (i64::from(then) - i64::from(now))).max(0) as u32
        };
        if let Load::Model(spec) = &mut out.load {
            let first: Vec<Event> = spec
                .events
                .iter()
                .filter(|e| e.start_s < DAY_S)
                .copied()
                .collect();
            for d in 1..days {
                let mut rng = Rng::stream(self.seed, 1000 + u64::from(d));
                for e in &first {
                    let skip = match e.kind {
                        Kind::WashingMachine | Kind::Oven => 0.25,
                        Kind::Kettle => 0.15,
                        Kind::Hob | Kind::HeatPump => 0.0,
                    };
                    let skipped = rng.chance(skip);
                    let amps = e.amps * rng.range(0.9, 1.1);
                    let length = rng.range(0.85, 1.15);
                    if skipped {
                        continue;
                    }
                    let mut start_s = same_clock(e.start_s, d);
                    let hour = day_of(start_s).hour_f();
                    if weekend(start_s) && (6.0..12.0).contains(&hour) {
                        start_s += 75 * MIN;
                    }
                    spec.events.push(Event {
                        start_s,
                        amps,
                        duration_s: (f64::from(e.duration_s) * length) as u32,
                        ..*e
                    });
                }
                // Lunch on the weekend day(s) of this 24 h window.
                for h in 0..24 {
                    let t = same_clock(h * HOUR, d);
                    let clock = day_of(t);
                    if weekend(t) && clock.second_of_day() / HOUR == 12 {
                        let at = t - clock.second_of_day() % HOUR + 30 * MIN;
                        let phases = if single {
                            Phases::One(0)
                        } else {
                            Phases::Two(0, 1)
                        };
                        spec.events
                            .push(Event::hob(at, 25 * MIN, phases, rng.range(4.5, 6.0)));
                    }
                }
            }
            // (One day is the scenario's own: its events in their order, which the
            // house's jitter follows.)
            if days > 1 {
                spec.events.sort_by_key(|e| e.start_s);
            }
        }
        let seed = self.seed;
        let duration = out.duration_s;
        for (k, car) in std::iter::once(&mut out.car)
            .chain(&mut out.more_cars)
            .enumerate()
        {
            let first: Vec<Session> = car
                .sessions
                .iter()
                .filter(|s| s.arrive_s < DAY_S)
                .copied()
                .collect();
            let mut sessions = car.sessions.clone();
            for d in 1..days {
                let mut rng = Rng::stream(seed, 1000 + u64::from(d) + 100_000 * (k as u64 + 1));
                for s in &first {
                    let arrive_j = rng.range(-1800.0, 1800.0) as i64;
                    let leave_j = rng.range(-1200.0, 1200.0) as i64;
                    let soc = s.soc_start + rng.range(-0.08, 0.08);
                    let shift = |t: u32, j: i64| (i64::from(same_clock(t, d)) + j).max(0) as u32;
                    let mut leave = shift(s.leave_s, leave_j);
                    let clock = day_of(leave);
                    if weekend(leave) && clock.hour_f() < 10.0 && clock.hour_f() > 4.0 {
                        leave += 10 * HOUR - clock.second_of_day();
                    }
                    let after = sessions.last().map_or(0, |p: &Session| p.leave_s);
                    let arrive = shift(s.arrive_s, arrive_j).max(after);
                    let leave = leave.min(duration);
                    if leave > arrive {
                        sessions.push(Session {
                            arrive_s: arrive,
                            leave_s: leave,
                            soc_start: soc.clamp(0.02, (s.soc_target - 0.05).max(0.02)),
                            soc_target: s.soc_target,
                        });
                    }
                }
            }
            car.sessions = sessions;
        }
        out.about = format!("{} (over {days} days)", self.about);
        out
    }

    /// Sets every car's delay (from its charger applying a limit to the car following
    /// it), ms.
    pub fn set_car_delay_ms(&mut self, delay_ms: u64) {
        for car in std::iter::once(&mut self.car).chain(&mut self.more_cars) {
            car.delay_ms = delay_ms;
        }
    }
}

/// Every scenario name, in the order `--scenario all` runs them.
pub const NAMES: &[&str] = &[
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
    "capacity-evening",
    "capacity-follow-peak",
    "capacity-1phase-40a",
    "solar-sunny",
    "solar-clouds",
    "solar-winter",
    "solar-1phase",
    "solar-3phase",
    "solar-evening-min",
];

/// The scenarios of the solar charge modes (issue 18): solar only (1080 = 2), but
/// `solar-evening-min`, minimum + solar (1080 = 1).
pub const SOLAR: &[&str] = &[
    "solar-sunny",
    "solar-clouds",
    "solar-winter",
    "solar-1phase",
    "solar-3phase",
    "solar-evening-min",
];

/// The scenarios with a capacity target (1072 ≠ 0): the issue 17 goals apply.
pub const CAPACITY: &[&str] = &[
    "capacity-evening",
    "capacity-follow-peak",
    "capacity-1phase-40a",
];

/// The scenario run when none is named.
pub const DEFAULT: &str = "evening-peak";

const MIN: u32 = 60;
const HOUR: u32 = 3600;

/// The scenario called `name`.
pub fn by_name(name: &str) -> Option<Scenario> {
    Some(match name {
        "evening-peak" => evening_peak(),
        "solar-day" => solar_day(),
        "single-phase-car" => single_phase_car(),
        "meter-dropout" => meter_dropout(),
        "noisy-line" => noisy_line(),
        "long-day" => long_day(),
        "single-phase-home" => single_phase_home(),
        "oven-evening" => oven_evening(),
        "kitchen-l2-l3" => kitchen_l2_l3(),
        "rotated-wiring" => rotated_wiring(),
        "two-cars-priority" => two_cars_priority(),
        "four-cars" => four_cars(),
        "capacity-evening" => capacity_evening(),
        "capacity-follow-peak" => capacity_follow_peak(),
        "capacity-1phase-40a" => capacity_1phase_40a(),
        "solar-sunny" => solar_sunny(),
        "solar-clouds" => solar_clouds(),
        "solar-winter" => solar_winter(),
        "solar-1phase" => solar_1phase(),
        "solar-3phase" => solar_3phase(),
        "solar-evening-min" => solar_evening_min(),
        _ => return None,
    })
}

/// Every scenario.
pub fn all() -> Vec<Scenario> {
    NAMES.iter().filter_map(|n| by_name(n)).collect()
}

fn three_phase_house(events: Vec<Event>, solar: Option<Solar>) -> HouseSpec {
    HouseSpec {
        base_a: [1.2, 0.9, 1.0],
        fridge: Some(0),
        events,
        jitter_s: 5 * MIN,
        solar,
        pv: None,
    }
}

/// A winter weekday evening, 17:00–20:00, 3 × 25 A: heat pump, kettles, an oven on L1,
/// an induction hob on L2 + L3, a washing machine; an 11 kW car plugged in at 17:10.
fn evening_peak() -> Scenario {
    let d = 3 * HOUR;
    let mut car = CarSpec::three_phase(d, 0.25);
    car.sessions[0].arrive_s = 10 * MIN;
    Scenario {
        name: "evening-peak".into(),
        about: "winter evening 17:00–20:00: cooking, kettles, heat pump, washing; 11 kW car".into(),
        duration_s: d,
        start: DateTime::new(2025, 1, 15, 17, 0),
        seed: 1,
        load: Load::Model(three_phase_house(
            vec![
                Event::heat_pump(0, 40 * MIN, Phases::Three, 3.0),
                Event::kettle(20 * MIN, 0),
                Event::oven(35 * MIN, 55 * MIN, 0),
                Event::hob(50 * MIN, 35 * MIN, Phases::Two(1, 2), 12.0),
                Event::heat_pump(100 * MIN, 40 * MIN, Phases::Three, 3.0),
                Event::washing_machine(100 * MIN, 2),
                Event::kettle(112 * MIN, 1),
                Event::kettle(150 * MIN, 0),
            ],
            None,
        )),
        car,
        more_cars: Vec::new(),
        meter: MeterSpec::healthy(Flavour::Dsmr5, 3),
        fuse_a: 25.0,
        settings: Vec::new(),
    }
}

/// A sunny June day with clouds, 10:00–14:00: 8 kWp on a three-phase inverter, so the
/// house mostly exports; passing clouds are sudden load steps; above 80 % the car's
/// battery accepts less and less.
fn solar_day() -> Scenario {
    let d = 4 * HOUR;
    let mut car = CarSpec::three_phase(d, 0.5);
    car.battery_kwh = 77.0;
    car.taper_soc = 0.8;
    Scenario {
        name: "solar-day".into(),
        about: "June 10:00–14:00, 8 kWp solar, passing clouds; the car tapers above 80 %".into(),
        duration_s: d,
        start: DateTime::new(2025, 6, 18, 10, 0),
        seed: 2,
        load: Load::Model(three_phase_house(
            vec![
                Event::washing_machine(30 * MIN, 0),
                Event::heat_pump(60 * MIN, 45 * MIN, Phases::Three, 3.5),
                Event::kettle(90 * MIN, 1),
                Event::hob(120 * MIN, 30 * MIN, Phases::Two(0, 1), 12.0),
                Event::kettle(200 * MIN, 2),
            ],
            Some(Solar {
                peak_kw: 7.5,
                phases: Phases::Three,
                sunrise_h: 5.5,
                sunset_h: 22.0,
                clouds_per_hour: 6.0,
            }),
        )),
        car,
        more_cars: Vec::new(),
        meter: MeterSpec::healthy(Flavour::Dsmr5, 3),
        fuse_a: 25.0,
        settings: Vec::new(),
    }
}

/// A single-phase car (7.4 kW on-board charger, limited to the charger's 16 A) on L1 of
/// a three-phase connection, with the kitchen on L1 too; the hob loads L2 + L3, which
/// the car does not use.
fn single_phase_car() -> Scenario {
    let d = 2 * HOUR;
    let mut car = CarSpec::three_phase(d, 0.3);
    car.phases = Phases::One(0);
    car.obc_max_a = 32.0;
    car.battery_kwh = 40.0;
    Scenario {
        name: "single-phase-car".into(),
        about: "single-phase car on L1 of a 3 × 25 A connection, kitchen on L1, hob on L2+L3"
            .into(),
        duration_s: d,
        start: DateTime::new(2025, 2, 5, 18, 0),
        seed: 3,
        load: Load::Model(three_phase_house(
            vec![
                Event::kettle(10 * MIN, 0),
                Event::oven(20 * MIN, 50 * MIN, 0),
                Event::hob(30 * MIN, 30 * MIN, Phases::Two(1, 2), 13.0),
                Event::heat_pump(75 * MIN, 30 * MIN, Phases::Three, 3.0),
                Event::kettle(90 * MIN, 0),
                Event::washing_machine(95 * MIN, 1),
            ],
            None,
        )),
        car,
        more_cars: Vec::new(),
        meter: MeterSpec::healthy(Flavour::Dsmr5, 3),
        fuse_a: 25.0,
        settings: Vec::new(),
    }
}

/// The P1 cable drops out three times: 15 s (shorter than the fallback time), 90 s and
/// 120 s (the balancer falls back to the fallback limit, 0 by default, and steps up
/// again when the meter returns).
fn meter_dropout() -> Scenario {
    let d = 2 * HOUR;
    let mut meter = MeterSpec::healthy(Flavour::Dsmr5, 3);
    meter.silent = vec![
        (20 * MIN, 20 * MIN + 15),
        (45 * MIN, 45 * MIN + 90),
        (80 * MIN, 80 * MIN + 120),
    ];
    Scenario {
        name: "meter-dropout".into(),
        about: "meter silent for 15 s, 90 s and 120 s during an evening (fallback after 30 s)"
            .into(),
        duration_s: d,
        start: DateTime::new(2025, 1, 20, 19, 0),
        seed: 4,
        load: Load::Model(HouseSpec {
            jitter_s: 2 * MIN,
            ..three_phase_house(
                vec![
                    Event::heat_pump(0, 50 * MIN, Phases::Three, 3.0),
                    Event::kettle(10 * MIN, 0),
                    Event::hob(25 * MIN, 15 * MIN, Phases::Two(1, 2), 11.0),
                    Event::kettle(60 * MIN, 1),
                    Event::oven(90 * MIN, 25 * MIN, 0),
                ],
                None,
            )
        }),
        car: CarSpec::three_phase(d, 0.3),
        more_cars: Vec::new(),
        meter,
        fuse_a: 25.0,
        settings: Vec::new(),
    }
}

/// A Belgian e-MUCS meter on a noisy P1 line: 15 % of the telegrams get a bit flipped
/// (each must be rejected by the CRC), 5 % are preceded by junk bytes.
fn noisy_line() -> Scenario {
    let d = HOUR;
    let mut meter = MeterSpec::healthy(Flavour::Emucs, 3);
    meter.corrupt_prob = 0.15;
    meter.junk_prob = 0.05;
    Scenario {
        name: "noisy-line".into(),
        about: "e-MUCS meter, 15 % of telegrams corrupted on the line, junk between them".into(),
        duration_s: d,
        start: DateTime::new(2025, 3, 12, 18, 30),
        seed: 5,
        load: Load::Model(three_phase_house(
            vec![
                Event::kettle(5 * MIN, 0),
                Event::hob(15 * MIN, 25 * MIN, Phases::Two(1, 2), 12.0),
                Event::oven(20 * MIN, 35 * MIN, 0),
                Event::kettle(50 * MIN, 2),
            ],
            None,
        )),
        car: CarSpec::three_phase(d, 0.4),
        more_cars: Vec::new(),
        meter,
        fuse_a: 25.0,
        settings: Vec::new(),
    }
}

/// A whole May day with everything: solar, the heat pump cycling, breakfast, lunch and
/// dinner, washing and dishwashing, two car sessions (overnight and evening), two meter
/// dropouts, 1 % corrupted telegrams, and 90 s in which the charger ignores its limit.
fn long_day() -> Scenario {
    let d = 24 * HOUR;
    let h = |hh: u32, mm: u32| hh * HOUR + mm * MIN;
    let mut events = Vec::new();
    // The heat pump: 25 min in every 75 at night, less by day.
    let mut t = 0;
    while t < d {
        let day = (h(9, 0)..h(18, 0)).contains(&t);
        events.push(Event::heat_pump(
            t,
            if day { 15 * MIN } else { 25 * MIN },
            Phases::Three,
            3.0,
        ));
        t += 75 * MIN;
    }
    events.extend([
        Event::kettle(h(7, 5), 0),
        Event::kettle(h(7, 40), 1),
        Event::washing_machine(h(9, 30), 2),
        Event::hob(h(12, 15), 20 * MIN, Phases::Two(0, 1), 12.0),
        Event::kettle(h(15, 30), 0),
        Event::kettle(h(17, 45), 2),
        Event::oven(h(18, 0), 50 * MIN, 0),
        Event::hob(h(18, 25), 30 * MIN, Phases::Two(1, 2), 12.0),
        Event::kettle(h(19, 20), 1),
        Event::washing_machine(h(21, 0), 2),
        Event::kettle(h(22, 10), 0),
    ]);
    let car = CarSpec {
        sessions: vec![
            Session {
                arrive_s: 0,
                leave_s: h(7, 30),
                soc_start: 0.45,
                soc_target: 0.9,
            },
            Session {
                arrive_s: h(18, 15),
                leave_s: d,
                soc_start: 0.1,
                soc_target: 0.9,
            },
        ],
        stuck: vec![(h(19, 0), h(19, 0) + 90)],
        battery_kwh: 77.0,
        ..CarSpec::three_phase(d, 0.0)
    };
    let mut meter = MeterSpec::healthy(Flavour::Dsmr5, 3);
    meter.silent = vec![(h(3, 0), h(3, 1)), (h(14, 0), h(14, 0) + 45)];
    meter.corrupt_prob = 0.01;
    meter.junk_prob = 0.002;
    Scenario {
        name: "long-day".into(),
        about: "24 h in May: solar, heat pump, meals, washing, two car sessions, every fault"
            .into(),
        duration_s: d,
        start: DateTime::new(2025, 5, 14, 0, 0),
        seed: 6,
        load: Load::Model(HouseSpec {
            jitter_s: 10 * MIN,
            ..three_phase_house(
                events,
                Some(Solar {
                    peak_kw: 5.5,
                    phases: Phases::Three,
                    sunrise_h: 6.0,
                    sunset_h: 21.5,
                    clouds_per_hour: 3.0,
                }),
            )
        }),
        car,
        more_cars: Vec::new(),
        meter,
        fuse_a: 25.0,
        settings: Vec::new(),
    }
}

/// A single-phase home: 1 × 40 A, the whole house and a 7.4 kW car (32 A) on L1; the
/// balancer's thresholds are set for that connection (upper 36 A, alarm 38 A, lower
/// 33 A, charger maximum 32 A).
fn single_phase_home() -> Scenario {
    let d = 2 * HOUR;
    let car = CarSpec {
        phases: Phases::One(0),
        obc_max_a: 32.0,
        battery_kwh: 45.0,
        ..CarSpec::three_phase(d, 0.2)
    };
    Scenario {
        name: "single-phase-home".into(),
        about: "1 × 40 A: house and a 7.4 kW car on one phase; limits set for 40 A".into(),
        duration_s: d,
        start: DateTime::new(2025, 11, 5, 17, 30),
        seed: 7,
        load: Load::Model(HouseSpec {
            base_a: [1.8, 0.0, 0.0],
            fridge: Some(0),
            events: vec![
                Event::heat_pump(0, 30 * MIN, Phases::One(0), 7.0),
                Event::kettle(15 * MIN, 0),
                Event::oven(30 * MIN, 45 * MIN, 0),
                Event::hob(40 * MIN, 25 * MIN, Phases::One(0), 14.0),
                Event::kettle(85 * MIN, 0),
                Event::washing_machine(95 * MIN, 0),
            ],
            jitter_s: 3 * MIN,
            solar: None,
            pv: None,
        }),
        car,
        more_cars: Vec::new(),
        meter: MeterSpec::healthy(Flavour::Dsmr5, 1),
        fuse_a: 40.0,
        settings: vec![
            (address::CHARGER_MAX_CURRENT, 32_000),
            (address::PHASES, 1),
            (address::ALARM_CURRENT, 38_000),
            (address::UPPER_CURRENT, 36_000),
            (address::LOWER_CURRENT, 33_000),
        ],
    }
}

/// The evening in which headroom mode was seen to collapse on a real bus (issue 14):
/// 150 s, 3 × 25 A, a steady 9 A three-phase load, 2 A more on L3, and an oven on L1 whose
/// thermostat switches 10 A (on at 70 s for 40 s, then off): about 10 A of room under the
/// 22 A upper limit while the oven is off. The car is plugged in throughout.
fn oven_evening() -> Scenario {
    let d = 150;
    let steady = |phases, amps| Event {
        kind: Kind::HeatPump,
        start_s: 0,
        duration_s: d,
        phases,
        amps,
        pattern: Pattern::Steady,
    };
    Scenario {
        name: "oven-evening".into(),
        about: "150 s: 9 A on every phase, 2 A more on L3, an oven's 10 A on L1 at 70–110 s".into(),
        duration_s: d,
        start: DateTime::new(2025, 1, 15, 18, 0),
        seed: 8,
        load: Load::Model(HouseSpec {
            base_a: [1.0, 0.9, 1.0],
            fridge: None,
            events: vec![
                steady(Phases::Three, 9.0),
                steady(Phases::One(2), 2.0),
                Event {
                    kind: Kind::Oven,
                    start_s: 70,
                    duration_s: 80,
                    phases: Phases::One(0),
                    amps: 10.0,
                    pattern: Pattern::Cycle {
                        lead_s: 0,
                        on_s: 40,
                        off_s: 50,
                        low: 0.0,
                    },
                },
            ],
            jitter_s: 0,
            solar: None,
            pv: None,
        }),
        car: CarSpec::three_phase(d, 0.3),
        more_cars: Vec::new(),
        meter: MeterSpec::healthy(Flavour::Dsmr5, 3),
        fuse_a: 25.0,
        settings: Vec::new(),
    }
}

/// A single-phase car on L1 (16 A charger, wiring 0: learned from the charger's own
/// currents) with the kitchen on the other phases: an oven on L3 and an induction hob
/// on L2 + L3, the washing machine on L2; only kettles and the base load on L1. Once the
/// balancer has learned that the car uses L1 alone, the kitchen does not touch its
/// limit.
fn kitchen_l2_l3() -> Scenario {
    let d = 2 * HOUR;
    let mut car = CarSpec::three_phase(d, 0.3);
    car.phases = Phases::One(0);
    car.obc_max_a = 32.0;
    car.battery_kwh = 40.0;
    Scenario {
        name: "kitchen-l2-l3".into(),
        about: "single-phase car on L1, wiring learned; oven on L3, hob on L2+L3, kettles on L1"
            .into(),
        duration_s: d,
        start: DateTime::new(2025, 2, 12, 17, 30),
        seed: 9,
        load: Load::Model(three_phase_house(
            vec![
                Event::kettle(12 * MIN, 0),
                Event::oven(20 * MIN, 50 * MIN, 2),
                Event::hob(40 * MIN, 30 * MIN, Phases::Two(1, 2), 8.0),
                Event::heat_pump(75 * MIN, 30 * MIN, Phases::Three, 3.0),
                Event::kettle(85 * MIN, 0),
                Event::washing_machine(90 * MIN, 1),
                Event::kettle(100 * MIN, 0),
            ],
            None,
        )),
        car,
        more_cars: Vec::new(),
        meter: MeterSpec::healthy(Flavour::Dsmr5, 3),
        fuse_a: 25.0,
        settings: Vec::new(),
    }
}

/// A three-phase charger wired rotated (1040 = 5: its L1/L2/L3 on grid L2/L3/L1) with a
/// single-phase car, which therefore charges on grid L2; the oven and the hob load L1
/// (and L3), kettles and the washing machine L2. The balancer must learn that the car
/// uses the charger's L1 and limit it by grid L2 only.
fn rotated_wiring() -> Scenario {
    let d = 2 * HOUR;
    let mut car = CarSpec::three_phase(d, 0.3);
    car.phases = Phases::One(1);
    car.obc_max_a = 32.0;
    car.battery_kwh = 40.0;
    Scenario {
        name: "rotated-wiring".into(),
        about: "charger wired L2/L3/L1 (1040 = 5), single-phase car lands on L2; oven, hob on L1"
            .into(),
        duration_s: d,
        start: DateTime::new(2025, 3, 4, 18, 0),
        seed: 10,
        load: Load::Model(three_phase_house(
            vec![
                Event::oven(10 * MIN, 45 * MIN, 0),
                Event::kettle(15 * MIN, 1),
                Event::hob(62 * MIN, 25 * MIN, Phases::Two(0, 2), 12.0),
                Event::washing_machine(30 * MIN, 1),
                Event::kettle(95 * MIN, 1),
                Event::heat_pump(90 * MIN, 30 * MIN, Phases::Three, 3.0),
            ],
            None,
        )),
        car,
        more_cars: Vec::new(),
        meter: MeterSpec::healthy(Flavour::Dsmr5, 3),
        fuse_a: 25.0,
        settings: vec![(address::CHARGER1_WIRING, 5)],
    }
}

/// Two chargers on a 3 × 25 A connection: charger 1 three-phase (wiring 1, priority 1),
/// an 11 kW car plugged in throughout; charger 2 single-phase on L1 (wiring 2, priority
/// 2: it charges first), a 16 A car arriving after 15 min. The oven and kettles on L1
/// leave room for one car's minimum there at times; the hob on L2 + L3.
fn two_cars_priority() -> Scenario {
    let d = 3 * HOUR;
    let first = CarSpec::three_phase(d, 0.3);
    let mut second = CarSpec::three_phase(d, 0.2);
    second.phases = Phases::One(0);
    second.battery_kwh = 50.0;
    second.sessions[0].arrive_s = 15 * MIN;
    Scenario {
        name: "two-cars-priority".into(),
        about: "3 × 25 A, a three-phase car (priority 1) and a single-phase car on L1 (priority 2)"
            .into(),
        duration_s: d,
        start: DateTime::new(2025, 1, 22, 17, 0),
        seed: 11,
        load: Load::Model(three_phase_house(
            vec![
                Event::heat_pump(0, 40 * MIN, Phases::Three, 3.0),
                Event::kettle(20 * MIN, 0),
                Event::oven(30 * MIN, 60 * MIN, 0),
                Event::hob(55 * MIN, 30 * MIN, Phases::Two(1, 2), 11.0),
                Event::kettle(100 * MIN, 0),
                Event::washing_machine(110 * MIN, 0),
                Event::kettle(150 * MIN, 2),
            ],
            None,
        )),
        car: first,
        more_cars: vec![second],
        meter: MeterSpec::healthy(Flavour::Dsmr5, 3),
        fuse_a: 25.0,
        settings: vec![
            (address::CHARGER_COUNT, 2),
            (address::CHARGER1_WIRING, 1),
            (address::CHARGER1_PRIORITY, 1),
            (address::CHARGER2_WIRING, 2),
            (address::CHARGER2_PRIORITY, 2),
        ],
    }
}

/// Four chargers on a 3 × 40 A connection (upper 36 A, alarm 39 A, lower 33 A), four
/// identical 11 kW cars of equal priority plugged in throughout, wiring learned. A heat
/// pump, an oven on L1, an induction hob on L2 + L3, kettles and a washing machine: at
/// times the room on a phase holds only two cars' minimum, so the cars take turns.
fn four_cars() -> Scenario {
    let d = 3 * HOUR;
    let car = CarSpec::three_phase(d, 0.2);
    Scenario {
        name: "four-cars".into(),
        about: "3 × 40 A, four 11 kW cars of equal priority; kitchen and heat pump leave room \
                for two at times"
            .into(),
        duration_s: d,
        start: DateTime::new(2025, 12, 10, 17, 0),
        seed: 12,
        load: Load::Model(three_phase_house(
            vec![
                Event::heat_pump(0, 150 * MIN, Phases::Three, 6.0),
                Event::kettle(10 * MIN, 0),
                Event::oven(25 * MIN, 70 * MIN, 0),
                Event::hob(40 * MIN, 40 * MIN, Phases::Two(1, 2), 12.0),
                Event::kettle(75 * MIN, 1),
                Event::washing_machine(100 * MIN, 2),
                Event::kettle(130 * MIN, 0),
            ],
            None,
        )),
        car: car.clone(),
        more_cars: vec![car.clone(), car.clone(), car],
        meter: MeterSpec::healthy(Flavour::Dsmr5, 3),
        fuse_a: 40.0,
        settings: vec![
            (address::CHARGER_COUNT, 4),
            (address::ALARM_CURRENT, 39_000),
            (address::UPPER_CURRENT, 36_000),
            (address::LOWER_CURRENT, 33_000),
        ],
    }
}

/// A Flemish household on a Fluvius e-MUCS meter (3 × 25 A, gas heating, cooking on
/// induction) with a capacity target of 2.5 kW (1072 = 1, 1073 = 2500 W, 1074 = 100 W):
/// 24 h from Wednesday 15 January 17:00. A kettle at 17:45, the hob (two zones on L2 +
/// L3) from 18:15 for 35 minutes, a kettle at 19:20, the washing machine at 20:30, a
/// kettle at 22:00, breakfast kettles at 07:05 and 07:20, one at 16:00. An 11 kW car
/// (3 × 16 A) plugs in at 18:00 needing 22.2 kWh (60 kWh battery, 40 → 77 %) and
/// leaves at 07:30. Its minimum (3 × 6 A, 4.1 kW) is above the budget of 2.4 kW: it
/// can only charge part of each quarter. The month's peak before the run: 2.3 kW on
/// the 6th at 07:45.
fn capacity_evening() -> Scenario {
    let d = 24 * HOUR;
    let h = |hh: u32, mm: u32| ((hh + 24 - 17) % 24) * HOUR + mm * MIN;
    let car = CarSpec {
        battery_kwh: 60.0,
        sessions: vec![Session {
            arrive_s: h(18, 0),
            leave_s: h(7, 30),
            soc_start: 0.40,
            soc_target: 0.77,
        }],
        ..CarSpec::three_phase(d, 0.4)
    };
    let mut meter = MeterSpec::healthy(Flavour::Emucs, 3);
    meter.history = true;
    meter.month_peak = Some(EarlierPeak {
        day: 6,
        hour: 7,
        minute: 45,
        power_w: 2300,
    });
    Scenario {
        name: "capacity-evening".into(),
        about: "e-MUCS, 3 × 25 A, 2.5 kW capacity target; cooking 18–19 h; 11 kW car 18:00–07:30 \
                needing 22 kWh"
            .into(),
        duration_s: d,
        start: DateTime::new(2025, 1, 15, 17, 0),
        seed: 13,
        load: Load::Model(HouseSpec {
            base_a: [0.7, 0.5, 0.6],
            fridge: Some(0),
            events: vec![
                Event::kettle(h(17, 45), 0),
                Event::hob(h(18, 15), 35 * MIN, Phases::Two(1, 2), 5.0),
                Event::kettle(h(19, 20), 0),
                Event::washing_machine(h(20, 30), 2),
                Event::kettle(h(22, 0), 1),
                Event::kettle(h(7, 5), 0),
                Event::kettle(h(7, 20), 1),
                Event::kettle(h(16, 0), 2),
            ],
            jitter_s: 5 * MIN,
            solar: None,
            pv: None,
        }),
        car,
        more_cars: Vec::new(),
        meter,
        fuse_a: 25.0,
        settings: vec![
            (address::CAPACITY_MODE, 1),
            (address::CAPACITY_TARGET, 2500),
            (address::CAPACITY_MARGIN, 100),
        ],
    }
}

/// "Follow the peak" (1072 = 2, target 2.5 kW): a cold week set a 6 kW peak this month
/// (the heat pump and the oven on the 8th at 07:45), so charging up to it costs nothing
/// more. 3 × 25 A, e-MUCS, a heat pump cycling (3 A per phase, 25 minutes in 75), an
/// oven and the hob from 18:00, washing at 21:00. 24 h from Wednesday 22 January 17:00;
/// an 11 kW car plugs in at 18:00 needing 30 kWh (25 → 75 % of 60 kWh), leaves at 07:30.
fn capacity_follow_peak() -> Scenario {
    let d = 24 * HOUR;
    let h = |hh: u32, mm: u32| ((hh + 24 - 17) % 24) * HOUR + mm * MIN;
    let mut events = Vec::new();
    let mut t = 0;
    while t < d {
        events.push(Event::heat_pump(t, 25 * MIN, Phases::Three, 3.0));
        t += 75 * MIN;
    }
    events.extend([
        Event::kettle(h(17, 40), 0),
        Event::oven(h(18, 0), 50 * MIN, 0),
        Event::hob(h(18, 25), 30 * MIN, Phases::Two(1, 2), 7.0),
        Event::kettle(h(19, 15), 1),
        Event::washing_machine(h(21, 0), 2),
        Event::kettle(h(7, 0), 0),
        Event::kettle(h(16, 30), 2),
    ]);
    let car = CarSpec {
        battery_kwh: 60.0,
        sessions: vec![Session {
            arrive_s: h(18, 0),
            leave_s: h(7, 30),
            soc_start: 0.25,
            soc_target: 0.75,
        }],
        ..CarSpec::three_phase(d, 0.25)
    };
    let mut meter = MeterSpec::healthy(Flavour::Emucs, 3);
    meter.history = true;
    meter.month_peak = Some(EarlierPeak {
        day: 8,
        hour: 7,
        minute: 45,
        power_w: 6000,
    });
    Scenario {
        name: "capacity-follow-peak".into(),
        about: "e-MUCS, follow the month's 6 kW peak (target 2.5 kW); heat pump, oven, hob; \
                11 kW car 18:00–07:30 needing 30 kWh"
            .into(),
        duration_s: d,
        start: DateTime::new(2025, 1, 22, 17, 0),
        seed: 14,
        load: Load::Model(three_phase_house(events, None)),
        car,
        more_cars: Vec::new(),
        meter,
        fuse_a: 25.0,
        settings: vec![
            (address::CAPACITY_MODE, 2),
            (address::CAPACITY_TARGET, 2500),
            (address::CAPACITY_MARGIN, 100),
        ],
    }
}

/// A single-phase home (1 × 40 A, limits as `single-phase-home`) on an e-MUCS meter
/// with a 3.5 kW capacity target (1072 = 1, margin 100 W): 24 h from Wednesday
/// 22 October 17:00 (so `--days 30` crosses the end of summer time and a month end). The
/// hob on L1 from 18:30, kettles, the washing machine at 20:00; a 7.4 kW single-phase car
/// (32 A) plugs in at 18:30 needing 18 kWh (30 → 70 % of 45 kWh), leaves at 07:00.
fn capacity_1phase_40a() -> Scenario {
    let d = 24 * HOUR;
    let h = |hh: u32, mm: u32| ((hh + 24 - 17) % 24) * HOUR + mm * MIN;
    let car = CarSpec {
        phases: Phases::One(0),
        obc_max_a: 32.0,
        battery_kwh: 45.0,
        sessions: vec![Session {
            arrive_s: h(18, 30),
            leave_s: h(7, 0),
            soc_start: 0.30,
            soc_target: 0.70,
        }],
        ..CarSpec::three_phase(d, 0.3)
    };
    let mut meter = MeterSpec::healthy(Flavour::Emucs, 1);
    meter.history = true;
    meter.month_peak = Some(EarlierPeak {
        day: 9,
        hour: 19,
        minute: 15,
        power_w: 3100,
    });
    let mut settings = single_phase_home().settings;
    settings.extend([
        (address::CAPACITY_MODE, 1),
        (address::CAPACITY_TARGET, 3500),
        (address::CAPACITY_MARGIN, 100),
    ]);
    Scenario {
        name: "capacity-1phase-40a".into(),
        about: "e-MUCS, 1 × 40 A, 3.5 kW capacity target; hob, washing; 7.4 kW car 18:30–07:00 \
                needing 18 kWh"
            .into(),
        duration_s: d,
        start: DateTime::new(2025, 10, 22, 17, 0),
        seed: 15,
        load: Load::Model(HouseSpec {
            base_a: [1.6, 0.0, 0.0],
            fridge: Some(0),
            events: vec![
                Event::kettle(h(17, 50), 0),
                Event::hob(h(18, 30), 30 * MIN, Phases::One(0), 7.0),
                Event::washing_machine(h(20, 0), 0),
                Event::kettle(h(21, 30), 0),
                Event::kettle(h(7, 10), 0),
                Event::kettle(h(15, 45), 0),
            ],
            jitter_s: 5 * MIN,
            solar: None,
            pv: None,
        }),
        car,
        more_cars: Vec::new(),
        meter,
        fuse_a: 40.0,
        settings,
    }
}

/// A house in the daytime (3 × 25 A, gas heating): base load, the fridge on L1, the
/// given appliances, solar panels.
fn day_house(events: Vec<Event>, pv: Pv) -> HouseSpec {
    HouseSpec {
        base_a: [0.9, 0.7, 0.8],
        fridge: Some(0),
        events,
        jitter_s: 5 * MIN,
        solar: None,
        pv: Some(pv),
    }
}

/// A day at home: washing at 10:00 (L1), coffee, lunch on the hob at 12:30 (L2 + L3),
/// the dishwasher at 13:30 (L2), the heat pump heating water at 14:00, kettles; `h(hh,
/// mm)` is the run's second of that clock time.
fn day_at_home(h: impl Fn(u32, u32) -> u32) -> Vec<Event> {
    vec![
        Event::washing_machine(h(10, 0), 0),
        Event::kettle(h(10, 40), 1),
        Event::hob(h(12, 30), 20 * MIN, Phases::Two(1, 2), 6.0),
        Event::washing_machine(h(13, 30), 1),
        Event::heat_pump(h(14, 0), 40 * MIN, Phases::Three, 2.0),
        Event::kettle(h(15, 30), 2),
    ]
}

/// The settings of a solar-only charge (1080 = 2; the start, stop and import settings
/// at their defaults: 60 s, 180 s, 0 W).
fn solar_only() -> Vec<(u16, u16)> {
    vec![(address::CHARGE_MODE, 2)]
}

/// A big car needing more than the sun gives: 77 kWh from 20 % to full, plugged in
/// from `arrive_s` to `leave_s`.
fn solar_car(d: u32, arrive_s: u32, leave_s: u32) -> CarSpec {
    let mut car = CarSpec::three_phase(d, 0.2);
    car.battery_kwh = 77.0;
    car.sessions[0].arrive_s = arrive_s;
    car.sessions[0].leave_s = leave_s;
    car
}

/// A clear June Wednesday, 09:00–17:00: 8 kWp facing south (a 7.2 kW three-phase
/// inverter), a day at home; an 11 kW car plugged in at 09:30 needing 60 kWh, solar only.
fn solar_sunny() -> Scenario {
    let d = 8 * HOUR;
    let h = |hh: u32, mm: u32| (hh - 9) * HOUR + mm * MIN;
    Scenario {
        name: "solar-sunny".into(),
        about: "clear June day 09–17 h, 8 kWp; 11 kW car from 09:30 needing 60 kWh; solar only"
            .into(),
        duration_s: d,
        start: DateTime::new(2025, 6, 18, 9, 0),
        seed: 21,
        load: Load::Model(day_house(day_at_home(h), Pv::south(8.0, Sky::clear()))),
        car: solar_car(d, h(9, 30), d),
        more_cars: Vec::new(),
        meter: MeterSpec::healthy(Flavour::Dsmr5, 3),
        fuse_a: 25.0,
        settings: solar_only(),
    }
}

/// A June day of passing cumulus, 10:00–16:00: the sun behind a cloud 40 % of the time
/// (clouds of 90 s in the median, tens of seconds to minutes), 8 kWp on a 7.2 kW
/// inverter, so the surplus jumps between ~0 and ~6 kW within seconds; an 11 kW car
/// plugged in throughout needing 60 kWh, solar only.
fn solar_clouds() -> Scenario {
    let d = 6 * HOUR;
    let h = |hh: u32, mm: u32| (hh - 10) * HOUR + mm * MIN;
    Scenario {
        name: "solar-clouds".into(),
        about: "June 10–16 h, passing clouds (40 % shade), 8 kWp: surplus 0–6 kW in seconds; \
                11 kW car; solar only"
            .into(),
        duration_s: d,
        start: DateTime::new(2025, 6, 25, 10, 0),
        seed: 22,
        load: Load::Model(day_house(
            day_at_home(|hh, mm| h(hh, mm).min(d - 1)),
            Pv::south(8.0, Sky::clouds(0.4, 90.0)),
        )),
        car: solar_car(d, 0, d),
        more_cars: Vec::new(),
        meter: MeterSpec::healthy(Flavour::Dsmr5, 3),
        fuse_a: 25.0,
        settings: solar_only(),
    }
}

/// A January day with little sun, 09:00–15:30 (e-MUCS): overcast but for broken clouds
/// from 11:00 to 13:30, 10 kWp: the surplus reaches an 11 kW car's minimum (3 × 6 A,
/// 4.1 kW) only in the brightest minutes around noon; solar only.
fn solar_winter() -> Scenario {
    let d = 6 * HOUR + 30 * MIN;
    let h = |hh: u32, mm: u32| (hh - 9) * HOUR + mm * MIN;
    let sky = Sky {
        cover: vec![(0.0, 1.0), (11.0, 0.35), (13.5, 1.0)],
        shade_median_s: 120.0,
        shade: (0.1, 0.3),
    };
    Scenario {
        name: "solar-winter".into(),
        about: "January 09:00–15:30, overcast, broken clouds 11:00–13:30, 10 kWp; 11 kW car; \
                solar only"
            .into(),
        duration_s: d,
        start: DateTime::new(2025, 1, 22, 9, 0),
        seed: 23,
        load: Load::Model(day_house(
            vec![
                Event::kettle(h(9, 20), 0),
                Event::washing_machine(h(10, 15), 2),
                Event::hob(h(12, 15), 20 * MIN, Phases::Two(1, 2), 6.0),
                Event::kettle(h(14, 45), 1),
            ],
            Pv::south(10.0, sky),
        )),
        car: solar_car(d, 0, d),
        more_cars: Vec::new(),
        meter: MeterSpec::healthy(Flavour::Emucs, 3),
        fuse_a: 25.0,
        settings: solar_only(),
    }
}

/// An April day of clouds (30 % shade, 2 min in the median), 10:00–16:00, 6 kWp on a
/// three-phase inverter: a surplus of 1–5 kW, above a single-phase car's minimum (6 A,
/// 1.4 kW) most of the time, above a three-phase car's (4.1 kW) at the brightest.
fn april_day(name: &str, about: &str, car: CarSpec) -> Scenario {
    let d = 6 * HOUR;
    let h = |hh: u32, mm: u32| ((hh - 10) * HOUR + mm * MIN).min(d - 1);
    Scenario {
        name: name.into(),
        about: about.into(),
        duration_s: d,
        start: DateTime::new(2025, 4, 16, 10, 0),
        seed: 24,
        load: Load::Model(day_house(
            day_at_home(h),
            Pv::south(6.0, Sky::clouds(0.3, 120.0)),
        )),
        car,
        more_cars: Vec::new(),
        meter: MeterSpec::healthy(Flavour::Dsmr5, 3),
        fuse_a: 25.0,
        settings: solar_only(),
    }
}

/// `april_day` with a single-phase car on L1 (16 A, 3.7 kW; 40 kWh from 15 %).
fn solar_1phase() -> Scenario {
    let d = 6 * HOUR;
    let car = CarSpec {
        phases: Phases::One(0),
        obc_max_a: 32.0,
        battery_kwh: 40.0,
        ..CarSpec::three_phase(d, 0.15)
    };
    april_day(
        "solar-1phase",
        "April 10–16 h, clouds, 6 kWp; single-phase car on L1 (16 A) needing 34 kWh; solar only",
        car,
    )
}

/// `april_day` with an 11 kW three-phase car (60 kWh from 20 %): the same sun, a
/// minimum three times as high.
fn solar_3phase() -> Scenario {
    let d = 6 * HOUR;
    april_day(
        "solar-3phase",
        "April 10–16 h, clouds, 6 kWp; 11 kW three-phase car needing 48 kWh; solar only",
        CarSpec::three_phase(d, 0.2),
    )
}

/// A June evening, 16:00–21:00, minimum + solar (1080 = 1): 8 kWp going down behind
/// passing clouds (25 % shade); an 11 kW car plugs in at 16:15 and charges at least its
/// minimum, more from the surplus; the oven at 18:00 and kettles on L1 put the house
/// alone above the upper limit there at times (the fuse rules then win), the hob on L2
/// + L3, washing at 19:30.
fn solar_evening_min() -> Scenario {
    let d = 5 * HOUR;
    let h = |hh: u32, mm: u32| (hh - 16) * HOUR + mm * MIN;
    let mut car = solar_car(d, h(16, 15), d);
    car.battery_kwh = 60.0;
    car.sessions[0].soc_start = 0.3;
    Scenario {
        name: "solar-evening-min".into(),
        about: "June 16–21 h, minimum + solar, 8 kWp setting behind clouds; 11 kW car from \
                16:15; cooking on L1 above the upper limit at times"
            .into(),
        duration_s: d,
        start: DateTime::new(2025, 6, 18, 16, 0),
        seed: 25,
        load: Load::Model(day_house(
            vec![
                Event::kettle(h(16, 30), 0),
                Event::oven(h(18, 0), 50 * MIN, 0),
                Event::kettle(h(18, 20), 0),
                Event::hob(h(18, 30), 25 * MIN, Phases::Two(1, 2), 10.0),
                Event::kettle(h(18, 45), 0),
                Event::washing_machine(h(19, 30), 2),
            ],
            Pv::south(8.0, Sky::clouds(0.25, 90.0)),
        )),
        car,
        more_cars: Vec::new(),
        meter: MeterSpec::healthy(Flavour::Dsmr5, 3),
        fuse_a: 25.0,
        settings: vec![(address::CHARGE_MODE, 1)],
    }
}

/// A scenario from a recorded P1 stream: the recording is the house (repeated to fill
/// at least an hour), an 11 kW car (single-phase and 1 × 40 A settings when the meter
/// is single-phase) charges on top, the meter speaks the recording's format. A Belgian
/// (e-MUCS) recording runs with capacity mode on (1072 = 1, the default target 2.5 kW
/// and margin, which `--config` may change): the run shows what it would have done
/// (and, beside it, the same run with the mode off), the meter starting from the
/// month's peak the recording's first telegram printed (when of the same month).
pub fn replay(name: &str, rec: Recording) -> Scenario {
    let d = rec.length_s().max(HOUR);
    let single = rec.phases == 1;
    let start = rec.start.unwrap_or(DateTime::new(2025, 1, 15, 17, 0));
    let emucs = rec.flavour == Flavour::Emucs;
    let mut meter = MeterSpec::healthy(rec.flavour, rec.phases);
    if emucs {
        meter.month_peak = rec.month_peak.map(|(first, _)| {
            let at = first.at.map(|s| s.local).filter(|t| {
                let (y, m, _) = t.date();
                let (sy, sm, _) = start.date();
                (y, m) == (sy, sm)
            });
            let (day, sod) = at.map_or((1, 0), |t| (t.date().2, t.second_of_day()));
            EarlierPeak {
                day,
                hour: sod / 3600,
                minute: sod / 60 % 60,
                power_w: if at.is_some() {
                    u32::try_from(first.power_w).unwrap_or(0)
                } else {
                    0
                },
            }
        });
    }
    let mut settings = if single {
        single_phase_home().settings
    } else {
        Vec::new()
    };
    if emucs {
        settings.push((address::CAPACITY_MODE, 1));
    }
    let mut car = CarSpec::three_phase(d, 0.3);
    if single {
        car.phases = Phases::One(0);
        car.obc_max_a = 32.0;
    }
    Scenario {
        name: format!("p1-log:{name}"),
        about: format!(
            "recorded P1 stream, {} telegram(s) over {} s, repeated to {} s",
            rec.telegrams(),
            rec.length_s(),
            d
        ),
        duration_s: d,
        start,
        seed: 0,
        meter,
        load: Load::Recorded(rec),
        car,
        more_cars: Vec::new(),
        fuse_a: if single { 40.0 } else { 25.0 },
        settings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_resolves_and_has_a_sensible_length() {
        assert!(NAMES.len() >= 6);
        for n in NAMES {
            let s = by_name(n).expect(n);
            assert_eq!(s.name, *n);
            assert!((150..=24 * HOUR).contains(&s.duration_s));
        }
        assert!(by_name("nope").is_none());
        assert!(NAMES.contains(&DEFAULT));
    }
}
