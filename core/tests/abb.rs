//! The Terra AC driver against a simulated charger that keeps the register behaviour
//! of abb-terra-ac.md (read-backs, reboot values, exceptions, silence).

mod common;

use common::terra::Charger;
use p1lb_core::abb::{
    COMM_TIMEOUT_S, DriverConfig, Outcome, POLL, REG_FALLBACK, REG_LIMIT, REG_TIMEOUT, Request,
    STATUS_LEN, STATUS_START, TerraAc,
};
use p1lb_core::time::Instant;
use proptest::prelude::*;

/// The tests count time in milliseconds from the driver's start.
fn ms(t: u64) -> Instant {
    Instant::from_millis(t)
}

const POLL_MS: u64 = POLL.total_millis();

/// Runs the driver for `ms` at 100 ms steps with `sent(t)`; returns the exchanges.
fn run(
    d: &mut TerraAc,
    c: &mut Charger,
    from: u64,
    span: u64,
    sent: impl Fn(u64) -> u32,
) -> Vec<(u64, Request)> {
    let mut log = Vec::new();
    let mut t = from;
    while t < from + span {
        while let Some(req) = d.poll_request(ms(t), sent(t)) {
            log.push((t, req));
            match c.exchange(req) {
                Ok(regs) => d.on_response(ms(t), req, Outcome::Ok(&regs)),
                Err(Some(code)) => d.on_response(ms(t), req, Outcome::Exception(code)),
                Err(None) => d.on_response(ms(t), req, Outcome::NoReply),
            }
            t += 20; // one exchange at 9600 baud
        }
        t += 100;
    }
    log
}

fn cfg() -> DriverConfig {
    DriverConfig {
        fallback_ma: 6700,
        refresh_s: 10,
    }
}

fn limit_writes(log: &[(u64, Request)]) -> Vec<(u64, u32)> {
    log.iter()
        .filter_map(|(t, r)| match r {
            Request::WriteTwo {
                address: REG_LIMIT,
                values,
            } => Some((*t, (u32::from(values[0]) << 16) | u32::from(values[1]))),
            _ => None,
        })
        .collect()
}

#[test]
fn start_configures_timeout_and_fallback_then_the_limit() {
    let mut c = Charger::new();
    let mut d = TerraAc::new(cfg(), ms(0));
    let log = run(&mut d, &mut c, 0, 500, |_| 6000);
    let first: Vec<Request> = log.iter().take(4).map(|(_, r)| *r).collect();
    assert_eq!(
        first,
        [
            Request::WriteOne {
                address: REG_TIMEOUT,
                value: COMM_TIMEOUT_S
            },
            Request::WriteOne {
                address: REG_FALLBACK,
                value: 6
            }, // 6.7 A rounded down
            Request::WriteTwo {
                address: REG_LIMIT,
                values: [0, 6000]
            },
            Request::Read {
                start: STATUS_START,
                len: STATUS_LEN
            },
        ]
    );
    assert_eq!(
        (c.timeout_s, c.fallback_a, c.limit_ma),
        (COMM_TIMEOUT_S, 6, 6000)
    );
}

#[test]
fn limit_written_on_change_and_every_refresh_period() {
    let mut c = Charger::new();
    c.rating_ma = u32::MAX; // holds any 32-bit value, to check the encoding
    let mut d = TerraAc::new(cfg(), ms(0));
    let sent = |t: u64| if t < 25_000 { 16_000 } else { 70_000 };
    let log = run(&mut d, &mut c, 0, 40_000, sent);
    let writes = limit_writes(&log);
    let times: Vec<u64> = writes.iter().map(|(t, _)| t / 100 * 100).collect();
    // At start, every 10 s, at the change (25 s), then every 10 s from there.
    assert_eq!(
        writes.iter().filter(|(_, v)| *v == 16_000).count(),
        3,
        "{writes:?}"
    );
    assert!(
        times[0] < 200
            && (10_000..10_200).contains(&times[1])
            && (20_000..20_200).contains(&times[2])
    );
    assert_eq!(writes[3].1, 70_000);
    assert!((25_000..25_200).contains(&writes[3].0), "{writes:?}");
    assert_eq!(c.limit_ma, 70_000, "32-bit value, high word first");
}

#[test]
fn status_read_inside_the_timeout_and_parsed() {
    let mut c = Charger::new();
    c.current_ma = [15_900, 16_100, 0];
    c.state = 4 | 0x80; // charging, below the commanded value
    let mut d = TerraAc::new(cfg(), ms(0));
    let log = run(&mut d, &mut c, 0, 20_000, |_| 16_000);
    let reads: Vec<u64> = log
        .iter()
        .filter(|(_, r)| matches!(r, Request::Read { .. }))
        .map(|(t, _)| *t)
        .collect();
    assert!(reads.len() >= 9);
    for w in reads.windows(2) {
        assert!(w[1] - w[0] <= POLL_MS + 200, "{reads:?}");
        assert!(w[1] - w[0] < u64::from(COMM_TIMEOUT_S) * 1000 / 4);
    }
    let s = d.status();
    assert_eq!(s.current_ma, [Some(15_900), Some(16_100), Some(0)]);
    assert_eq!(s.state, Some(4));
    assert_eq!(s.applied_limit_ma, Some(16_000));
}

#[test]
fn a_rebooted_charger_is_configured_again() {
    let mut c = Charger::new();
    let mut d = TerraAc::new(cfg(), ms(0));
    run(&mut d, &mut c, 0, 5_000, |_| 10_000);
    c.reboot();
    c.writes.clear();
    run(&mut d, &mut c, 5_000, 5_000, |_| 10_000);
    assert_eq!(
        c.writes[..3],
        [
            Request::WriteOne {
                address: REG_TIMEOUT,
                value: COMM_TIMEOUT_S
            },
            Request::WriteOne {
                address: REG_FALLBACK,
                value: 6
            },
            Request::WriteTwo {
                address: REG_LIMIT,
                values: [0, 10_000]
            },
        ]
    );
    assert_eq!((c.fallback_a, c.limit_ma), (6, 10_000));
}

#[test]
fn a_charger_that_clamps_or_rounds_the_limit_is_configured_once() {
    // Rated 16 A by its installer (0x4006), holding whole amps: asked for 20 A it holds
    // 16 A, asked for 10.55 A it holds 10 A. Neither is a reboot.
    for (sent, rating, step) in [(20_000, 16_000, 1), (10_550, 32_000, 1000)] {
        let mut c = Charger::new();
        c.rating_ma = rating;
        c.step_ma = step;
        let mut d = TerraAc::new(cfg(), ms(0));
        run(&mut d, &mut c, 0, 30_000, |_| sent);
        let setups = c
            .writes
            .iter()
            .filter(|w| matches!(w, Request::WriteOne { .. }))
            .count();
        assert_eq!(
            setups, 2,
            "sent {sent}, rating {rating}, step {step}: {:?}",
            c.writes
        );
        // The limit still goes out on its refresh period, not on every poll.
        assert!(limit_writes(&run(&mut d, &mut c, 30_000, 20_000, |_| sent)).len() <= 3);
    }
}

#[test]
fn three_failures_flag_the_charger_silent_and_a_reply_clears_it() {
    let mut c = Charger::new();
    let mut d = TerraAc::new(cfg(), ms(0));
    run(&mut d, &mut c, 0, 3_000, |_| 10_000);
    c.silent = true;
    run(&mut d, &mut c, 3_000, 1_500, |_| 10_000);
    assert!(!d.not_answering(), "two failures are not yet silence");
    run(&mut d, &mut c, 4_500, 2_000, |_| 10_000);
    assert!(d.not_answering());
    c.silent = false;
    run(&mut d, &mut c, 6_500, 3_000, |_| 10_000);
    assert!(!d.not_answering());
}

#[test]
fn exception_is_flagged_until_a_good_exchange() {
    let mut d = TerraAc::new(cfg(), ms(0));
    let req = d.poll_request(ms(0), 0).unwrap();
    d.on_response(ms(0), req, Outcome::Exception(4));
    assert!(d.exception());
    assert_eq!(d.poll_request(ms(500), 0), None, "backs off after an error");
    let req = d.poll_request(ms(1000), 0).unwrap();
    d.on_response(ms(1000), req, Outcome::Ok(&[]));
    assert!(!d.exception());
}

proptest! {
    /// Whatever the charger does (silence, exceptions, reboots, changing setpoints),
    /// the driver never writes anything but 0x4100, 0x4106 and 0x4109, never writes a
    /// limit it was not given, and keeps asking at least every poll period.
    #[test]
    fn only_the_three_writes_and_never_stalls(
        events in proptest::collection::vec((0u8..4, prop_oneof![Just(0u32), 6000u32..32000]), 1..60),
    ) {
        let mut c = Charger::new();
        let mut d = TerraAc::new(cfg(), ms(0));
        let mut t = 0;
        for (ev, sent) in events {
            match ev {
                0 => c.silent = !c.silent,
                1 => c.reboot(),
                _ => {}
            }
            let log = run(&mut d, &mut c, t, 3_000, |_| sent);
            for (_, r) in &log {
                match r {
                    Request::WriteOne { address, .. } => prop_assert!(*address == REG_TIMEOUT || *address == REG_FALLBACK),
                    Request::WriteTwo { address, values } => {
                        prop_assert_eq!(*address, REG_LIMIT);
                        prop_assert_eq!((u32::from(values[0]) << 16) | u32::from(values[1]), sent);
                    }
                    Request::Read { .. } => {}
                }
            }
            prop_assert!(!log.is_empty(), "no exchange in 3 s");
            prop_assert!(d.next_deadline() <= ms(t + 3_000 + POLL_MS + 1_000));
            t += 3_000;
        }
    }
}
