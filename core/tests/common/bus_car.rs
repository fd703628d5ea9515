//! A charger and its car on a real bus's schedule, for closed-loop tests of the
//! balancer: the car follows the value sent 2 s late and ramps up at 4 A/s (down at
//! 20 A/s); the charger measures it once a second and the balancer reads that every
//! 2 s, so a read-back is a measurement a second old.

use p1lb_core::balancer::{Balancer, ChargerReading};
use p1lb_core::p1::Reading;
use p1lb_core::time::{Duration, Instant};

/// One charger and its car (three-phase, all phases alike, or single-phase on the
/// charger's L1).
#[derive(Debug, Clone)]
pub struct BusCar {
    /// The car charges on the charger's L1 only.
    single_phase: bool,
    /// The values sent, one a second, the last three (the car follows the oldest).
    sent: [u32; 3],
    /// What the car draws, mA.
    car_ma: f64,
    /// What the charger measured at the last second, mA.
    measured: u32,
}

impl Default for BusCar {
    fn default() -> Self {
        BusCar::new()
    }
}

impl BusCar {
    /// A car that draws nothing and was sent nothing.
    pub fn new() -> Self {
        BusCar {
            single_phase: false,
            sent: [0; 3],
            car_ma: 0.0,
            measured: 0,
        }
    }

    /// A single-phase car (on the charger's L1).
    pub fn single_phase() -> Self {
        BusCar {
            single_phase: true,
            ..BusCar::new()
        }
    }

    /// The next second: the car moves toward what was sent 2 s ago. Returns what it
    /// draws now, mA per phase.
    pub fn second(&mut self) -> f64 {
        let target = f64::from(self.sent[0]);
        self.car_ma = if target < 6000.0 {
            (self.car_ma - 20_000.0).max(0.0)
        } else if target > self.car_ma {
            (self.car_ma + 4000.0).min(target)
        } else {
            (self.car_ma - 20_000.0).max(target)
        };
        self.car_ma
    }

    /// What the car draws at 230 V, W.
    pub fn watts(&self) -> i64 {
        let phases = if self.single_phase { 1.0 } else { 3.0 };
        (self.car_ma * phases * 230.0 / 1000.0) as i64
    }

    /// After the telegram of the second: when `due`, the balancer reads charger `k`
    /// (what it measured a second ago); then the charger measures the car.
    pub fn read_back(&mut self, b: &mut Balancer, now: Instant, k: usize, due: bool) {
        if due {
            b.on_charger(
                now,
                k,
                &ChargerReading {
                    current_ma: if self.single_phase {
                        [Some(self.measured), Some(0), Some(0)]
                    } else {
                        [Some(self.measured); 3]
                    },
                    state: Some(2),
                    ..Default::default()
                },
                true,
            );
        }
        self.measured = self.car_ma as u32;
    }

    /// After the tick: the value sent this second, mA.
    pub fn sent(&mut self, ma: u32) {
        self.sent = [self.sent[1], self.sent[2], ma];
    }
}

/// Feeds second `s`'s telegram and a fresh read-back of `car_ma` on every phase of
/// charger 1, and ticks: the value sent (open loop: the same inputs to two balancers).
pub fn step(b: &mut Balancer, s: u64, r: &Reading, car_ma: u32) -> u32 {
    let now = Instant::ZERO + Duration::from_secs(s);
    b.on_telegram(now, r);
    b.on_charger(
        now,
        0,
        &ChargerReading {
            current_ma: [Some(car_ma); 3],
            state: Some(2),
            ..Default::default()
        },
        true,
    );
    b.tick(now);
    b.sent_of_ma(0)
}
