//! The named scenarios: a house, a car, a meter, a fuse and the faults, for a stretch
//! of simulated time. Each is deterministic for its seed.

use super::car::{CarSpec, Session};
use super::house::{Event, HouseSpec, Kind, Pattern, Phases, Solar};
use super::meter::{Flavour, MeterSpec};
use super::replay::Recording;
use super::time::DateTime;
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

/// A scenario from a recorded P1 stream: the recording is the house (repeated to fill
/// at least an hour), an 11 kW car (single-phase and 1 × 40 A settings when the meter
/// is single-phase) charges on top, the meter speaks the recording's format.
pub fn replay(name: &str, rec: Recording) -> Scenario {
    let d = rec.length_s().max(HOUR);
    let single = rec.phases == 1;
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
        start: rec.start.unwrap_or(DateTime::new(2025, 1, 15, 17, 0)),
        seed: 0,
        meter: MeterSpec::healthy(rec.flavour, rec.phases),
        load: Load::Recorded(rec),
        car,
        more_cars: Vec::new(),
        fuse_a: if single { 40.0 } else { 25.0 },
        settings: if single {
            single_phase_home().settings
        } else {
            Vec::new()
        },
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
