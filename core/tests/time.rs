//! Adversarial time: what uses the clock — the balancer, the device, the LED, the Terra
//! AC driver, the bus master — fed instants near both ends of the clock, going
//! backwards and jumping by years never panics (these tests run in debug builds, with
//! overflow checks on), and keeps its deadlines answerable.
//!
//! On the code before `time::Instant` (times as bare `u64` milliseconds), the driver
//! overflowed: `TerraAc::on_response` added `RETRY_MS`/`POLL_MS` to `now_ms` unchecked
//! (`the_driver_survives_a_failure_at_the_end_of_the_clock` panicked with "attempt to
//! add with overflow" at abb.rs `now_ms + RETRY_MS`).

use p1lb_core::abb::{DriverConfig, Outcome, Request, TerraAc};
use p1lb_core::balancer::Balancer;
use p1lb_core::bus_master::BusMaster;
use p1lb_core::config::{Config, ControlMode, MAX_CHARGERS};
use p1lb_core::device::Device;
use p1lb_core::led;
use p1lb_core::modbus::{LineConfig, MAX_ADU};
use p1lb_core::registers::State;
use p1lb_core::time::{Duration, Instant};
use proptest::prelude::*;

/// Instants that matter: the ends of the clock, near them, and anywhere.
fn instant() -> impl Strategy<Value = Instant> {
    prop_oneof![
        Just(Instant::ZERO),
        Just(Instant::MAX),
        (0u64..10_000_000).prop_map(|d| Instant::MAX - Duration::from_micros(d)),
        (0u64..10_000_000).prop_map(Instant::from_micros),
        any::<u64>().prop_map(Instant::from_micros),
    ]
}

fn currents() -> impl Strategy<Value = [Option<i32>; 3]> {
    prop::array::uniform3(prop::option::of(-100_000i32..100_000))
}

fn headroom() -> Config {
    let mut c = Config::default();
    c.set_mode(ControlMode::Headroom).expect("headroom mode");
    c
}

#[derive(Debug, Clone)]
enum Op {
    Reading([Option<i32>; 3]),
    Charger([Option<u32>; 3]),
    Tick,
}

fn op() -> impl Strategy<Value = (Instant, Op)> {
    (
        instant(),
        prop_oneof![
            currents().prop_map(Op::Reading),
            prop::array::uniform3(prop::option::of(any::<u32>())).prop_map(Op::Charger),
            Just(Op::Tick),
        ],
    )
}

#[test]
fn the_driver_survives_a_failure_at_the_end_of_the_clock() {
    let mut d = TerraAc::new(
        DriverConfig {
            fallback_ma: 6_000,
            refresh_s: 10,
        },
        Instant::ZERO,
    );
    let req = d.poll_request(Instant::MAX, 6_000).expect("setup is due");
    d.on_response(Instant::MAX, req, Outcome::NoReply);
    assert_eq!(d.next_deadline(), Instant::MAX);
    d.on_response(Instant::MAX, req, Outcome::Exception(4));
    let status = Request::Read {
        start: p1lb_core::abb::STATUS_START,
        len: p1lb_core::abb::STATUS_LEN,
    };
    let regs = [0u16; p1lb_core::abb::STATUS_LEN as usize];
    d.on_response(Instant::MAX, status, Outcome::Ok(&regs));
    let _ = d.poll_request(Instant::ZERO, 0);
    let _ = d.next_deadline();
}

proptest! {
    #[test]
    fn the_balancer_and_the_device_take_any_instants(
        start in instant(),
        stepped in any::<bool>(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let config = if stepped { Config::default() } else { headroom() };
        let mut b = Balancer::new(config, start);
        let mut device = Device::new(config, start);
        for (t, op) in ops {
            match op {
                Op::Reading(i) => {
                    b.on_reading(t, i);
                    device.balancer.on_reading(t, i);
                }
                Op::Charger(c) => {
                    b.on_charger_currents(t, c);
                    device.balancer.on_charger_currents(t, c);
                }
                Op::Tick => {
                    let d = b.tick(t);
                    prop_assert!(d.sent_ma <= config.charger_max_ma());
                    device.tick(t);
                    device.on_rejected(t);
                }
            }
            let _ = (b.is_stale(t), b.seconds_since_reading(t), b.next_tick());
        }
    }

    #[test]
    fn the_led_takes_any_instant(t in instant()) {
        for state in [State::Normal, State::Lower, State::Upper, State::Alarm, State::Fallback] {
            let look = led::next_look(t);
            prop_assert!(look > t || look == Instant::MAX);
            prop_assert!(look - t <= led::SLOT);
            prop_assert!(led::next_change(state, t) >= look);
            let _ = led::is_on(state, t);
        }
    }

    #[test]
    fn the_driver_takes_any_instants(
        start in instant(),
        steps in prop::collection::vec((instant(), 0u8..3, any::<u32>()), 1..40),
    ) {
        let mut d = TerraAc::new(DriverConfig { fallback_ma: 6_000, refresh_s: 10 }, start);
        let regs = [0u16; p1lb_core::abb::STATUS_LEN as usize];
        for (t, outcome, sent) in steps {
            if let Some(req) = d.poll_request(t, sent) {
                let outcome = match outcome {
                    0 => Outcome::NoReply,
                    1 => Outcome::Exception(2),
                    _ => Outcome::Ok(&regs),
                };
                d.on_response(t, req, outcome);
            }
            let _ = d.next_deadline();
        }
    }

    /// The bus master at instants that jump around, the bytes of a reply arriving near
    /// the end of the clock, and its deadline asked for at each.
    #[test]
    fn the_bus_master_takes_any_instants(
        start in instant(),
        chargers in 1..=8u8,
        steps in prop::collection::vec((instant(), prop::collection::vec(any::<u8>(), 0..12)), 1..40),
    ) {
        let mut config = Config::default();
        config.set_charger_count(chargers).unwrap();
        let mut m = BusMaster::new(&config, LineConfig::rs485(&config), start);
        let mut out = [0u8; MAX_ADU];
        for (t, bytes) in steps {
            let _ = m.poll_transmit(t, &[6_000; MAX_CHARGERS]);
            m.on_bytes(t, &bytes);
            while m.poll(t, &mut out).is_some() {}
            let wake = m.poll_timeout(t);
            prop_assert!(wake >= t || wake == Instant::MAX || m.exchange_on_bus());
        }
    }
}
