//! The house behind the meter: a base load, appliances switching on and off per phase
//! and, optionally, solar panels exporting. Currents in A per phase, import positive.
//!
//! Everything is decided by the seed: appliance start times and sizes are jittered
//! around the scenario's schedule, the base load wanders, clouds pass. The load does not
//! depend on the balancer, so every control mode (and the oracle) sees the same house.

use super::pv::{Pv, PvRun};
use super::rng::Rng;
use super::time::DateTime;

/// Which phases a load (or the car, or the inverter) uses: indices 0–2 = L1–L3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phases {
    /// One phase.
    One(usize),
    /// Two phases (an induction hob on a 2 × 16 A group).
    Two(usize, usize),
    /// All three.
    Three,
}

impl Phases {
    /// Which of L1–L3 are used.
    pub fn mask(self) -> [bool; 3] {
        let mut m = [false; 3];
        match self {
            Phases::One(a) => m[a.min(2)] = true,
            Phases::Two(a, b) => {
                m[a.min(2)] = true;
                m[b.min(2)] = true;
            }
            Phases::Three => m = [true; 3],
        }
        m
    }

    /// How many phases.
    pub fn count(self) -> usize {
        self.mask().iter().filter(|&&x| x).count()
    }
}

/// An appliance's kind (for labels and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 2.2 kW kettle: a sudden 9.6 A step for two to four minutes.
    Kettle,
    /// Induction hob: a boost, then power pulsing as the zones regulate.
    Hob,
    /// Oven: a preheat, then the thermostat cycling.
    Oven,
    /// Heat pump: an inverter compressor ramping up, then modulating.
    HeatPump,
    /// Washing machine: fill, heat the water, tumble, spin.
    WashingMachine,
}

/// How an appliance's current varies while it runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pattern {
    /// Full current throughout.
    Steady,
    /// Full current for `lead_s`, then `on_s` at full, `off_s` at `low` × full, repeated.
    Cycle {
        /// Steady lead-in (boost, preheat), s.
        lead_s: u32,
        /// On time per cycle, s.
        on_s: u32,
        /// Off time per cycle, s.
        off_s: u32,
        /// Fraction of the full current while "off".
        low: f64,
    },
    /// Ramps up over `ramp_s`, then modulates ±10 % over ten minutes.
    Ramp {
        /// Ramp time, s.
        ramp_s: u32,
    },
    /// A washing programme: 2 min fill, 15 min heating at full current, tumbling, and a
    /// 10 min spin at the end.
    Wash,
}

/// One use of an appliance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// What it is.
    pub kind: Kind,
    /// Start, seconds from the start of the run.
    pub start_s: u32,
    /// How long it runs, s.
    pub duration_s: u32,
    /// Where it is connected.
    pub phases: Phases,
    /// Full current per phase, A.
    pub amps: f64,
    /// How the current varies.
    pub pattern: Pattern,
}

impl Event {
    /// A 2.2 kW kettle on `phase` at `at_s` for three minutes.
    pub fn kettle(at_s: u32, phase: usize) -> Event {
        Event {
            kind: Kind::Kettle,
            start_s: at_s,
            duration_s: 180,
            phases: Phases::One(phase),
            amps: 9.6,
            pattern: Pattern::Steady,
        }
    }

    /// An induction hob on two phases: a 90 s boost at `amps` per phase, then pulsing
    /// (8 s on, 5 s at 35 %) as the pans simmer.
    pub fn hob(at_s: u32, duration_s: u32, phases: Phases, amps: f64) -> Event {
        Event {
            kind: Kind::Hob,
            start_s: at_s,
            duration_s,
            phases,
            amps,
            pattern: Pattern::Cycle {
                lead_s: 90,
                on_s: 8,
                off_s: 5,
                low: 0.35,
            },
        }
    }

    /// A 3 kW oven on `phase`: 10 min preheat, then the thermostat (40 s on, 50 s off).
    pub fn oven(at_s: u32, duration_s: u32, phase: usize) -> Event {
        Event {
            kind: Kind::Oven,
            start_s: at_s,
            duration_s,
            phases: Phases::One(phase),
            amps: 13.0,
            pattern: Pattern::Cycle {
                lead_s: 600,
                on_s: 40,
                off_s: 50,
                low: 0.05,
            },
        }
    }

    /// A heat pump drawing `amps` per phase, ramping up over 90 s.
    pub fn heat_pump(at_s: u32, duration_s: u32, phases: Phases, amps: f64) -> Event {
        Event {
            kind: Kind::HeatPump,
            start_s: at_s,
            duration_s,
            phases,
            amps,
            pattern: Pattern::Ramp { ramp_s: 90 },
        }
    }

    /// A washing machine on `phase`: a 90 min programme heating at 9 A.
    pub fn washing_machine(at_s: u32, phase: usize) -> Event {
        Event {
            kind: Kind::WashingMachine,
            start_s: at_s,
            duration_s: 5400,
            phases: Phases::One(phase),
            amps: 9.0,
            pattern: Pattern::Wash,
        }
    }

    /// The current per used phase at `t_s` (0 outside the run).
    fn current_at(&self, t_s: u32) -> f64 {
        if t_s < self.start_s || t_s - self.start_s >= self.duration_s {
            return 0.0;
        }
        let u = t_s - self.start_s;
        let f = match self.pattern {
            Pattern::Steady => 1.0,
            Pattern::Cycle {
                lead_s,
                on_s,
                off_s,
                low,
            } => {
                if u < lead_s || (u - lead_s) % (on_s + off_s).max(1) < on_s {
                    1.0
                } else {
                    low
                }
            }
            Pattern::Ramp { ramp_s } => {
                let ramp = (f64::from(u) / f64::from(ramp_s.max(1))).min(1.0);
                let wobble = (std::f64::consts::TAU * f64::from(u) / 600.0).sin();
                ramp * (0.9 + 0.1 * wobble)
            }
            Pattern::Wash => {
                let end = self.duration_s;
                if u < 120 {
                    0.03
                } else if u < 1020 {
                    1.0
                } else if u + 600 < end {
                    // Tumbling: the motor reverses every 15 s.
                    if (u / 15) % 2 == 0 { 0.08 } else { 0.04 }
                } else {
                    0.28
                }
            }
        };
        self.amps * f
    }
}

/// Solar panels and their inverter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Solar {
    /// Peak AC power on a clear day, kW.
    pub peak_kw: f64,
    /// The inverter's phases (the power is split evenly).
    pub phases: Phases,
    /// Sunrise and sunset, local hours.
    pub sunrise_h: f64,
    /// Sunset, local hours.
    pub sunset_h: f64,
    /// Passing clouds per hour (each cuts the output by 30–80 % for 0.5–5 min, with
    /// edges of a few seconds: sudden load steps for the balancer).
    pub clouds_per_hour: f64,
}

/// What a modelled house contains.
#[derive(Debug, Clone, PartialEq)]
pub struct HouseSpec {
    /// Base load per phase, A (lights, standby, fridge averaged): it wanders around this.
    pub base_a: [f64; 3],
    /// A fridge compressor (0.7 A, 20 min on in the hour) on this phase.
    pub fridge: Option<usize>,
    /// The appliances' schedule; start times are jittered by the seed.
    pub events: Vec<Event>,
    /// How far the seed may move each start time, ± s.
    pub jitter_s: u32,
    /// Solar panels, if any (the simple model of the older scenarios).
    pub solar: Option<Solar>,
    /// Solar panels under a sky of the day ([`super::pv`]: by date and hour, clouds,
    /// one or three phases), if any.
    pub pv: Option<Pv>,
}

#[derive(Debug, Clone, Copy)]
struct Cloud {
    start_s: f64,
    end_s: f64,
    depth: f64,
    edge_s: f64,
}

/// A modelled house during a run. [`House::load`] must be called once per second, in
/// order (the base load is a random walk).
#[derive(Debug, Clone)]
pub struct House {
    spec: HouseSpec,
    start: DateTime,
    events: Vec<Event>,
    clouds: Vec<Cloud>,
    walk: [f64; 3],
    rng: Rng,
    pv: Option<PvRun>,
    /// The solar output of the last second drawn, kW.
    pv_kw: f64,
}

/// Nominal voltage used to turn power into current, V.
pub const NOMINAL_V: f64 = 230.0;

impl House {
    /// The house for a run starting at `start`, lasting `duration_s`.
    pub fn new(spec: &HouseSpec, start: DateTime, duration_s: u32, seed: u64) -> House {
        let mut rng = Rng::stream(seed, 1);
        let events = spec
            .events
            .iter()
            .map(|e| {
                let j = f64::from(spec.jitter_s);
                let shift = rng.range(-j, j + 1.0).floor();
                let start_s = (f64::from(e.start_s) + shift).max(0.0) as u32;
                Event {
                    start_s,
                    amps: e.amps * rng.range(0.95, 1.05),
                    duration_s: (f64::from(e.duration_s) * rng.range(0.9, 1.1)) as u32,
                    ..*e
                }
            })
            .collect();
        let mut clouds = Vec::new();
        if let Some(s) = spec.solar {
            let mut t = 0.0;
            let rate = s.clouds_per_hour / 3600.0;
            while rate > 0.0 && t < f64::from(duration_s) {
                // Exponential gaps.
                t += -(1.0 - rng.unit()).ln() / rate;
                let dur = rng.range(30.0, 300.0);
                clouds.push(Cloud {
                    start_s: t,
                    end_s: t + dur,
                    depth: rng.range(0.3, 0.8),
                    edge_s: rng.range(3.0, 12.0),
                });
                t += dur;
            }
        }
        House {
            spec: spec.clone(),
            start,
            events,
            clouds,
            walk: [0.0; 3],
            rng: Rng::stream(seed, 2),
            pv: spec
                .pv
                .as_ref()
                .map(|pv| PvRun::new(pv, start, duration_s, Rng::stream(seed, 6))),
            pv_kw: 0.0,
        }
    }

    /// The appliance events as scheduled for this run (after jitter).
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The house's current per phase at second `t_s`, A (negative = export).
    pub fn load(&mut self, t_s: u32) -> [f64; 3] {
        let mut a = [0.0; 3];
        for (p, out) in a.iter_mut().enumerate() {
            // Mean-reverting wander of the base load (σ ≈ 0.25 A).
            self.walk[p] += 0.05 * self.rng.normal() - self.walk[p] / 60.0;
            let base = self.spec.base_a[p];
            if base > 0.0 {
                *out = (base + self.walk[p]).max(0.1);
            }
        }
        if let Some(p) = self.spec.fridge {
            if t_s % 3600 < 1200 {
                a[p.min(2)] += 0.7;
            }
        }
        for e in &self.events {
            let i = e.current_at(t_s);
            if i != 0.0 {
                for (out, used) in a.iter_mut().zip(e.phases.mask()) {
                    if used {
                        *out += i;
                    }
                }
            }
        }
        let mut pv_kw = 0.0;
        if let Some(s) = self.spec.solar {
            let kw = self.solar_kw(&s, t_s);
            pv_kw += kw;
            let per_phase = kw * 1000.0 / NOMINAL_V / s.phases.count() as f64;
            for (out, used) in a.iter_mut().zip(s.phases.mask()) {
                if used {
                    *out -= per_phase;
                }
            }
        }
        if let Some(pv) = &mut self.pv {
            let kw = pv.kw(t_s);
            pv_kw += kw;
            let phases = pv.phases();
            let per_phase = kw * 1000.0 / NOMINAL_V / phases.count() as f64;
            for (out, used) in a.iter_mut().zip(phases.mask()) {
                if used {
                    *out -= per_phase;
                }
            }
        }
        self.pv_kw = pv_kw;
        a
    }

    /// The solar output in the second last drawn by [`House::load`], kW (0 without
    /// panels).
    pub fn pv_kw(&self) -> f64 {
        self.pv_kw
    }

    /// The house has solar panels.
    pub fn has_pv(&self) -> bool {
        self.spec.solar.is_some() || self.pv.is_some()
    }

    fn solar_kw(&self, s: &Solar, t_s: u32) -> f64 {
        let h = self.start.plus(t_s).hour_f();
        let x = (h - s.sunrise_h) / (s.sunset_h - s.sunrise_h);
        if !(0.0..=1.0).contains(&x) {
            return 0.0;
        }
        let clear = s.peak_kw * (std::f64::consts::PI * x).sin().powf(1.3);
        let t = f64::from(t_s);
        let mut shade: f64 = 0.0;
        for c in &self.clouds {
            if t < c.start_s - c.edge_s || t > c.end_s + c.edge_s {
                continue;
            }
            let inn = ((t - c.start_s) / c.edge_s + 0.5).clamp(0.0, 1.0);
            let out = ((c.end_s - t) / c.edge_s + 0.5).clamp(0.0, 1.0);
            shade = shade.max(c.depth * inn.min(out));
        }
        clear * (1.0 - shade)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HouseSpec {
        HouseSpec {
            base_a: [1.0, 1.0, 1.0],
            fridge: Some(0),
            events: vec![
                Event::kettle(100, 0),
                Event::hob(400, 1200, Phases::Two(1, 2), 12.0),
            ],
            jitter_s: 0,
            solar: None,
            pv: None,
        }
    }

    #[test]
    fn events_add_to_their_phases() {
        let mut h = House::new(&spec(), DateTime::new(2025, 1, 15, 17, 0), 3600, 1);
        let before = h.load(50);
        let k = h.events()[0];
        let during = h.load(k.start_s + 10);
        assert!(during[0] - before[0] > 8.0, "{before:?} {during:?}");
        assert!((during[1] - before[1]).abs() < 1.0);
        let hob = h.events()[1];
        let boost = h.load(hob.start_s + 30);
        assert!(
            boost[1] > 10.0 && boost[2] > 10.0 && boost[0] < 3.0,
            "{hob:?} {boost:?}"
        );
    }

    #[test]
    fn solar_exports_around_noon_only() {
        let mut s = spec();
        s.events.clear();
        s.solar = Some(Solar {
            peak_kw: 6.0,
            phases: Phases::Three,
            sunrise_h: 5.5,
            sunset_h: 21.5,
            clouds_per_hour: 0.0,
        });
        let mut h = House::new(&s, DateTime::new(2025, 6, 21, 0, 0), 86_400, 3);
        let mut noon = [0.0; 3];
        let mut night = [0.0; 3];
        for t in 0..86_400 {
            let a = h.load(t);
            if t == 13 * 3600 + 1800 {
                noon = a;
            }
            if t == 2 * 3600 {
                night = a;
            }
        }
        assert!(noon.iter().all(|&a| a < -6.0), "{noon:?}");
        assert!(night.iter().all(|&a| a > 0.0), "{night:?}");
    }
}
