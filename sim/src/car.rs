//! The car behind the charger: it follows the charger's setpoint after a delay and a
//! ramp, pauses when the setpoint is 0, charges on one or three phases, and may draw
//! less than it is allowed (on-board charger maximum, battery nearly full).
//!
//! The charger passes the balancer's setpoint on unchanged (IEC 61851 PWM duty cycle);
//! what the car then does, from what was measured on real cars:
//! - it reacts [`CarSpec::delay_ms`] after the charger applied a new limit (about 2 s
//!   on a Terra AC by field reports; scenarios and `p1lb simulate --car-delay` set it),
//! - down fast (20 A/s: any reduction done within a second), up slowly (4 A/s),
//! - a setpoint below the charger minimum (the balancer sends 0) opens the contactor;
//!   charging resumes [`Dynamics::resume_ms`] after a usable setpoint returns,
//! - above [`CarSpec::taper_soc`] the battery accepts less and less, down to 0 at the
//!   target state of charge.
//!
//! A fault window ([`CarSpec::stuck`]) makes the charger ignore every new setpoint:
//! the car goes on with the one in force when the fault began.

use std::collections::VecDeque;

use super::house::Phases;

/// One plug-in: when the car arrives and leaves, and its battery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Session {
    /// Plugged in at, s from the start of the run.
    pub arrive_s: u32,
    /// Unplugged at, s.
    pub leave_s: u32,
    /// State of charge on arrival, 0–1.
    pub soc_start: f64,
    /// Charging stops at this state of charge, 0–1.
    pub soc_target: f64,
}

/// The car and its sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct CarSpec {
    /// The phases it charges on.
    pub phases: Phases,
    /// On-board charger maximum per phase, A.
    pub obc_max_a: f64,
    /// Usable battery capacity, kWh.
    pub battery_kwh: f64,
    /// Above this state of charge the current tapers linearly to 0 at the target.
    pub taper_soc: f64,
    /// Plug-ins, in time order, not overlapping.
    pub sessions: Vec<Session>,
    /// Charger faults: `(from_s, to_s)` windows in which setpoints are ignored.
    pub stuck: Vec<(u32, u32)>,
    /// From the charger applying a new limit to the car starting to follow it, ms.
    pub delay_ms: u64,
}

impl CarSpec {
    /// A common 11 kW car (3 × 16 A) with a 60 kWh battery, plugged in for the whole
    /// run at `soc` (charging to 100 %).
    pub fn three_phase(duration_s: u32, soc: f64) -> CarSpec {
        CarSpec {
            phases: Phases::Three,
            obc_max_a: 16.0,
            battery_kwh: 60.0,
            taper_soc: 0.85,
            sessions: vec![Session {
                arrive_s: 0,
                leave_s: duration_s,
                soc_start: soc,
                soc_target: 1.0,
            }],
            stuck: Vec::new(),
            delay_ms: DEFAULT_DELAY_MS,
        }
    }

    /// Seconds of charger fault in the run.
    pub fn stuck_seconds(&self) -> u32 {
        self.stuck.iter().map(|(a, b)| b.saturating_sub(*a)).sum()
    }
}

/// The car's reaction delay unless a scenario says otherwise, ms: a Terra AC change
/// takes effect in about 2 s (field reports).
pub const DEFAULT_DELAY_MS: u64 = 2000;

/// How fast the car follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dynamics {
    /// From a setpoint change to the car starting to follow, ms.
    pub delay_ms: u64,
    /// Ramp up, A/s.
    pub ramp_up_a_s: f64,
    /// Ramp down, A/s.
    pub ramp_down_a_s: f64,
    /// From a usable setpoint after a pause to current flowing again, ms.
    pub resume_ms: u64,
    /// The charger minimum: below it the car pauses, A.
    pub min_a: f64,
}

impl Dynamics {
    /// The car as it really is: `delay_ms` to react, 4 A/s up, 20 A/s down, 3 s to
    /// resume.
    pub fn real(min_a: f64, delay_ms: u64) -> Dynamics {
        Dynamics {
            delay_ms,
            ramp_up_a_s: 4.0,
            ramp_down_a_s: 20.0,
            resume_ms: 3000,
            min_a,
        }
    }

    /// The oracle's car: the same car, but the setpoint is applied with no delay.
    pub fn oracle(min_a: f64) -> Dynamics {
        Dynamics {
            ..Dynamics::real(min_a, 0)
        }
    }
}

/// A car during a run.
#[derive(Debug, Clone)]
pub struct Car {
    spec: CarSpec,
    dynamics: Dynamics,
    /// Setpoints received, A, with the time they were received.
    commands: VecDeque<(u64, f64)>,
    /// The setpoint the car follows now, A.
    effective: f64,
    /// Current per used phase, A.
    current: f64,
    soc: f64,
    session: Option<Session>,
    /// The contactor is closed (charging, or ramping).
    drawing: bool,
    resume_at_ms: Option<u64>,
    energy_wh: f64,
}

impl Car {
    /// A car, not yet plugged in, with setpoint 0.
    pub fn new(spec: &CarSpec, dynamics: Dynamics) -> Car {
        Car {
            spec: spec.clone(),
            dynamics,
            commands: VecDeque::new(),
            effective: 0.0,
            current: 0.0,
            soc: 0.0,
            session: None,
            drawing: false,
            resume_at_ms: None,
            energy_wh: 0.0,
        }
    }

    /// The charger was told `setpoint_ma` at `now_ms`.
    pub fn command(&mut self, now_ms: u64, setpoint_ma: u32) {
        let a = f64::from(setpoint_ma) / 1000.0;
        let last = self.commands.back().map_or(self.effective, |c| c.1);
        if a != last {
            self.commands.push_back((now_ms, a));
        }
    }

    fn stuck_at(&self, now_ms: u64) -> bool {
        let t = now_ms / 1000;
        self.spec
            .stuck
            .iter()
            .any(|&(a, b)| t >= u64::from(a) && t < u64::from(b))
    }

    /// Advances to `now_ms`, the start of a step of `dt_s` seconds, and draws energy at
    /// the phase voltages `volts` for that step.
    pub fn step(&mut self, now_ms: u64, dt_s: f64, volts: [f64; 3]) {
        let t = (now_ms / 1000) as u32;
        // Plug in / out.
        let session = self
            .spec
            .sessions
            .iter()
            .find(|s| t >= s.arrive_s && t < s.leave_s)
            .copied();
        if session != self.session {
            if let Some(s) = session {
                self.soc = s.soc_start;
            }
            self.session = session;
            self.current = 0.0;
            self.drawing = false;
            self.resume_at_ms = None;
        }
        // The setpoint in force.
        if !self.stuck_at(now_ms) {
            while let Some(&(at, a)) = self.commands.front() {
                if at + self.dynamics.delay_ms <= now_ms {
                    self.effective = a;
                    self.commands.pop_front();
                } else {
                    break;
                }
            }
        }
        let accept = match self.session {
            None => 0.0,
            Some(s) if self.soc >= s.soc_target => 0.0,
            Some(s) => {
                let taper = if self.soc > self.spec.taper_soc {
                    ((s.soc_target - self.soc) / (s.soc_target - self.spec.taper_soc).max(1e-6))
                        .clamp(0.1, 1.0)
                } else {
                    1.0
                };
                self.spec.obc_max_a * taper
            }
        };
        let want = if self.effective < self.dynamics.min_a || self.effective <= 0.0 {
            0.0
        } else {
            self.effective.min(accept)
        };
        let target = if want > 0.0 {
            if !self.drawing {
                let at = *self
                    .resume_at_ms
                    .get_or_insert(now_ms + self.dynamics.resume_ms);
                if now_ms >= at {
                    self.drawing = true;
                    self.resume_at_ms = None;
                }
            }
            if self.drawing { want } else { 0.0 }
        } else {
            self.resume_at_ms = None;
            if self.current <= 0.0 {
                self.drawing = false;
            }
            0.0
        };
        self.current = if target > self.current {
            (self.current + self.dynamics.ramp_up_a_s * dt_s).min(target)
        } else {
            (self.current - self.dynamics.ramp_down_a_s * dt_s).max(target)
        };
        let mut w = 0.0;
        for (v, used) in volts.iter().zip(self.spec.phases.mask()) {
            if used {
                w += v * self.current;
            }
        }
        let wh = w * dt_s / 3600.0;
        self.energy_wh += wh;
        if self.spec.battery_kwh > 0.0 {
            self.soc += wh / 1000.0 / self.spec.battery_kwh;
        }
    }

    /// The car's current per phase now, A.
    pub fn currents(&self) -> [f64; 3] {
        let mut a = [0.0; 3];
        for (out, used) in a.iter_mut().zip(self.spec.phases.mask()) {
            if used {
                *out = self.current;
            }
        }
        a
    }

    /// What the charger's own meter measures of the car now, mA per phase.
    pub fn measured_ma(&self) -> [u32; 3] {
        self.currents()
            .map(|a| (a.max(0.0) * 1000.0).round() as u32)
    }

    /// Energy delivered so far, kWh.
    pub fn energy_kwh(&self) -> f64 {
        self.energy_wh / 1000.0
    }

    /// Plugged in (in a session), full or not.
    pub fn plugged_in(&self) -> bool {
        self.session.is_some()
    }

    /// Plugged in and not yet at its target state of charge.
    pub fn wants_charge(&self) -> bool {
        self.session.is_some_and(|s| self.soc < s.soc_target)
    }

    /// The battery's state of charge, 0–1.
    pub fn soc(&self) -> f64 {
        self.soc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: [f64; 3] = [230.0; 3];

    /// Runs `car` in 0.1 s steps from `from_s` to `to_s`; returns the current at each
    /// tenth of a second.
    fn run(car: &mut Car, from_ms: u64, to_ms: u64) -> Vec<f64> {
        let mut out = Vec::new();
        let mut t = from_ms;
        while t < to_ms {
            car.step(t, 0.1, V);
            out.push(car.currents()[0]);
            t += 100;
        }
        out
    }

    #[test]
    fn follows_after_delay_and_ramps() {
        let spec = CarSpec::three_phase(3600, 0.2);
        let mut car = Car::new(&spec, Dynamics::real(6.0, 1000));
        car.command(0, 16_000);
        let up = run(&mut car, 0, 10_000);
        // Nothing for the delay plus the resume time, then 4 A/s.
        assert_eq!(up[35], 0.0);
        assert!((up[59] - 8.0).abs() < 1e-9, "{}", up[59]);
        assert_eq!(up[99], 16.0);
        // Down to 8 A: unchanged for a second, then within a second.
        car.command(10_000, 8_000);
        let down = run(&mut car, 10_000, 13_000);
        assert_eq!(down[9], 16.0);
        assert_eq!(down[19], 8.0);
        // 0 = pause; then back up after the resume delay.
        car.command(13_000, 0);
        let paused = run(&mut car, 13_000, 16_000);
        assert_eq!(paused[29], 0.0);
        car.command(16_000, 10_000);
        let back = run(&mut car, 16_000, 26_000);
        assert_eq!(back[39], 0.0);
        assert_eq!(back[99], 10.0);
        assert!(car.energy_kwh() > 0.0);
    }

    #[test]
    fn draws_less_than_allowed_when_nearly_full_and_stops_at_target() {
        let mut spec = CarSpec::three_phase(36_000, 0.95);
        spec.battery_kwh = 10.0;
        let mut car = Car::new(&spec, Dynamics::oracle(6.0));
        car.command(0, 16_000);
        let a = run(&mut car, 0, 3_600_000);
        let peak = a.iter().copied().fold(0.0, f64::max);
        assert!(peak < 16.0 * 0.34, "{peak}");
        assert_eq!(*a.last().expect("samples"), 0.0);
        assert!(car.soc() >= 0.999);
    }

    #[test]
    fn a_stuck_charger_ignores_new_setpoints() {
        let mut spec = CarSpec::three_phase(3600, 0.2);
        spec.stuck = vec![(20, 40)];
        let mut car = Car::new(&spec, Dynamics::real(6.0, 1000));
        car.command(0, 16_000);
        run(&mut car, 0, 20_000);
        car.command(20_000, 0);
        let during = run(&mut car, 20_000, 40_000);
        assert!(during.iter().all(|&a| a == 16.0));
        let after = run(&mut car, 40_000, 42_000);
        assert_eq!(*after.last().expect("samples"), 0.0);
    }
}
