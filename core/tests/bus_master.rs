//! The RS485 master role as the daemon and the firmware run it: [`BusMaster`] on a
//! simulated bus (bytes at 9600 baud with real silences) with the simulated Terra AC —
//! one, or several at their own addresses with other units beside them — and [`Device`]
//! taking each charger's status into the register map.

mod common;

use common::terra::Charger;
use p1lb_core::abb::{
    COMM_TIMEOUT_S, POLL, REG_FALLBACK, REG_LIMIT, REG_TIMEOUT, Request as AbbRequest, STATUS_LEN,
    STATUS_START,
};
use p1lb_core::bus_master::{
    BusMaster, FORWARD_WAIT, MasterEvent, SavedChange, forward_result_wait, longest_exchange,
};
use p1lb_core::config::{Config, MAX_CHARGERS, address};
use p1lb_core::device::Device;
use p1lb_core::modbus::{
    Frame, GATEWAY_NO_RESPONSE, LineConfig, MAX_ADU, Request, Response, SERVER_BUSY, Words,
};
use p1lb_core::registers::{ChargerFlags, Flags};
use p1lb_core::time::Instant;
use proptest::prelude::*;

/// The bus's time line counts microseconds from the start.
fn us(t: u64) -> Instant {
    Instant::from_micros(t)
}

include!("support/bus_master_driver.rs");

/// A bus with the master, the charger at address 1, any other units at their own
/// addresses (more chargers, or units the master does not drive) and a time line in µs.
struct Bus {
    master: BusMaster,
    charger: Charger,
    /// The other units on the line, each answering at its address.
    others: Vec<(u8, Charger)>,
    device: Device,
    now_us: u64,
    /// Every frame the master sent.
    sent: Vec<Vec<u8>>,
    /// When each of `sent` went out (its first byte), µs.
    sent_at: Vec<u64>,
    /// Gateway results, in order.
    gateway: Vec<Option<Vec<u8>>>,
    /// Every event, and whether an exchange was on the bus right after it.
    events: Vec<(MasterEvent, bool)>,
    /// A host that submits this again the moment each gateway answer comes (as the
    /// daemon does when the next request already waits in its queue).
    resubmit: Option<Vec<u8>>,
    /// The values to send, charger k's at k, instead of the balancer's.
    sent_ma: Option<[u32; MAX_CHARGERS]>,
    /// Results of exchanges for chargers a save took off the bus.
    dropped: u32,
    char_us: u64,
}

impl Bus {
    fn new(config: Config) -> Bus {
        let line = LineConfig::rs485(&config);
        Bus {
            master: BusMaster::new(&config, line, us(0)),
            charger: Charger::new(),
            others: Vec::new(),
            device: Device::new(config, us(0)),
            now_us: 0,
            sent: Vec::new(),
            sent_at: Vec::new(),
            gateway: Vec::new(),
            events: Vec::new(),
            resubmit: None,
            sent_ma: None,
            dropped: 0,
            char_us: u64::from(line.bits_per_char()) * 1_000_000 / u64::from(line.baud),
        }
    }

    /// A bus with `n` chargers configured (1037) at addresses 1 … n (charger 1 is
    /// `charger`), see [`Bus::with_units`].
    fn with_chargers(mut config: Config, n: u8) -> Bus {
        config.set_charger_count(n).unwrap();
        config.set_charger_address(1).unwrap();
        Bus::with_units(config, n)
    }

    /// A bus with the master for `config` and simulated chargers at addresses
    /// 1 … `units`, each drawing its own current (the one at address a: 5 A + a A on
    /// each phase) and reporting its own charging state (a).
    fn with_units(config: Config, units: u8) -> Bus {
        let mut bus = Bus::new(config);
        for a in 1..=units {
            let mut c = Charger::new();
            c.current_ma = [5_000 + 1_000 * u32::from(a); 3];
            c.state = a;
            if a == 1 {
                bus.charger = c;
            } else {
                bus.others.push((a, c));
            }
        }
        bus
    }

    /// The unit at `address`, if it is on the line.
    fn unit(&self, address: u8) -> Option<&Charger> {
        if address == 1 {
            return Some(&self.charger);
        }
        self.others
            .iter()
            .find_map(|(a, c)| (*a == address).then_some(c))
    }

    /// The unit at `address`, to change, if it is on the line.
    fn unit_mut(&mut self, address: u8) -> Option<&mut Charger> {
        if address == 1 {
            return Some(&mut self.charger);
        }
        self.others
            .iter_mut()
            .find_map(|(a, c)| (*a == address).then_some(c))
    }

    /// The reply of whichever unit on the line `frame` is for.
    fn answer(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        let unit = Frame::new_checked(frame).ok()?.unit();
        self.unit_mut(unit)?.on_frame(unit, frame)
    }

    /// Runs the loop the daemon and the firmware run, until `until_us`.
    fn run_until(&mut self, until_us: u64) {
        let mut out = [0u8; MAX_ADU];
        while self.now_us < until_us {
            let sent_ma = self
                .sent_ma
                .unwrap_or_else(|| core::array::from_fn(|k| self.device.balancer.sent_of_ma(k)));
            if let Some(tx) = self.master.poll_transmit(us(self.now_us), &sent_ma) {
                let tx = tx.to_vec();
                assert!(self.master.exchange_on_bus(), "a request is on the bus");
                self.sent_at.push(self.now_us);
                // The request on the wire, then the unit's reply after 5 ms, byte by
                // byte.
                self.now_us += self.char_us * tx.len() as u64;
                if let Some(reply) = self.answer(&tx) {
                    self.now_us += 5_000;
                    for b in reply {
                        self.now_us += self.char_us;
                        self.master.on_bytes(us(self.now_us), &[b]);
                    }
                }
                self.sent.push(tx);
            }
            let on_bus = self.master.exchange_on_bus();
            let event = self.master.poll(us(self.now_us), &mut out);
            // An exchange's result ends it; an answer given without the bus (busy,
            // malformed) leaves an exchange on the bus as it was.
            match event {
                Some(MasterEvent::Charger { .. }) => assert!(on_bus),
                Some(MasterEvent::GatewayReply(_) | MasterEvent::GatewayDone) => {}
                None => assert_eq!(self.master.exchange_on_bus(), on_bus),
            }
            if matches!(event, Some(MasterEvent::Charger { .. })) || !on_bus {
                assert!(!self.master.exchange_on_bus(), "{event:?} ended it");
            }
            if let Some(e) = event {
                self.events.push((e, self.master.exchange_on_bus()));
            }
            match event {
                Some(MasterEvent::Charger { k, fresh }) => {
                    // The charger named is the one the last frame on the bus was for,
                    // unless a save took that charger off the bus meanwhile.
                    let last = self.sent.last().expect("an exchange was on the bus");
                    let unit = Frame::new_checked(last).unwrap().unit();
                    if self.master.address_of(k) != Some(unit) {
                        assert!(
                            (0..MAX_CHARGERS).all(|j| self.master.address_of(j) != Some(unit)),
                            "charger {k} named for unit {unit}, which is on the bus"
                        );
                        self.dropped += 1;
                        continue;
                    }
                    let driver = self.master.driver(k).expect("a charger on the bus");
                    self.device.on_charger(us(self.now_us), k, driver, fresh);
                    continue;
                }
                Some(MasterEvent::GatewayReply(n)) => {
                    self.gateway.push(Some(out[..n].to_vec()));
                    if let Some(f) = &self.resubmit {
                        self.master.submit(f);
                    }
                    continue;
                }
                Some(MasterEvent::GatewayDone) => {
                    self.gateway.push(None);
                    continue;
                }
                None => {}
            }
            let wake = self.master.poll_timeout(us(self.now_us)).total_micros();
            assert!(wake > self.now_us, "a deadline in the past would spin");
            self.now_us = wake.min(until_us).min(self.now_us + 100_000);
        }
    }

    fn limit_writes(&self) -> Vec<u16> {
        limit_writes(&self.charger)
    }

    /// When the master sent `function` to `unit` since `from_us` (µs, first byte).
    fn times_of(&self, unit: u8, function: u8, from_us: u64) -> Vec<u64> {
        self.sent
            .iter()
            .zip(&self.sent_at)
            .filter(|&(f, &at)| {
                let f = Frame::new_checked(f).unwrap();
                at >= from_us && f.unit() == unit && f.function() == function
            })
            .map(|(_, &at)| at)
            .collect()
    }
}

/// The high words of the limits written to `charger`.
fn limit_writes(charger: &Charger) -> Vec<u16> {
    charger
        .writes
        .iter()
        .filter_map(|w| match *w {
            AbbRequest::WriteTwo { address, values } if address == REG_LIMIT => Some(values[0]),
            _ => None,
        })
        .collect()
}

/// The limits written to `charger`, mA.
fn limits_ma(charger: &Charger) -> Vec<u32> {
    charger
        .writes
        .iter()
        .filter_map(|w| match *w {
            AbbRequest::WriteTwo { address, values } if address == REG_LIMIT => {
                Some((u32::from(values[0]) << 16) | u32::from(values[1]))
            }
            _ => None,
        })
        .collect()
}

/// The setup writes (0x4106, 0x4109) to `charger`, in order.
fn setup_writes(charger: &Charger) -> Vec<(u16, u16)> {
    charger
        .writes
        .iter()
        .filter_map(|w| match *w {
            AbbRequest::WriteOne { address, value }
                if address == REG_TIMEOUT || address == REG_FALLBACK =>
            {
                Some((address, value))
            }
            _ => None,
        })
        .collect()
}

/// The longest gap between consecutive `times` (µs), and the time from `from` to the
/// first and from the last to `to`.
fn longest_gap(times: &[u64], from: u64, to: u64) -> u64 {
    let mut all = vec![from];
    all.extend_from_slice(times);
    all.push(to);
    all.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

fn frame(unit: u8, req: &Request<'_>) -> Vec<u8> {
    let mut buf = [0u8; MAX_ADU];
    let n = req.emit_frame(unit, &mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn the_master_writes_the_limit_and_publishes_the_charger_status() {
    let mut bus = Bus::new(Config::default());
    bus.charger.current_ma = [6_100, 6_200, 6_300];
    bus.charger.state = 4;
    bus.run_until(5_000_000);
    assert!(
        !bus.limit_writes().is_empty(),
        "0x4100 written at start: {:?}",
        bus.charger.writes
    );
    let status = bus.device.map.status();
    assert_eq!(status.charger_ca, [610, 620, 630]);
    assert_eq!(status.charger_state, 4);
    assert!(!status.flags.contains(Flags::CHARGER_SILENT));
}

/// A forwarded request to a unit nobody answers, at every allowed baud rate: its 0x0B
/// comes within [`longest_exchange`] of the moment it went on the bus (what a host
/// that forwarded it waits before it gives up on its result).
#[test]
fn a_silent_exchange_ends_within_the_longest_exchange() {
    for baud100 in [12u16, 24, 48, 96, 192, 384, 576, 1152] {
        let mut config = Config::default();
        config.set(address::RS485_BAUD, baud100).unwrap();
        let mut bus = Bus::new(config);
        bus.run_until(3_000_000);
        // The charger silent from now on: only the forwarded request is timed.
        bus.charger.silent = true;
        let silent = frame(
            7,
            &Request::WriteSingle {
                address: 1,
                value: 2,
            },
        );
        bus.master.submit(&silent);
        let mut sent_at = None;
        let limit = longest_exchange(LineConfig::rs485(&config)).total_micros();
        while bus.gateway.is_empty() {
            let step = bus.now_us + 10_000;
            bus.run_until(step);
            if sent_at.is_none() && bus.sent.contains(&silent) {
                sent_at = Some(bus.now_us);
            }
            assert!(bus.now_us < 3_000_000 + 3 * limit, "{baud100}: no answer");
        }
        let sent_at = sent_at.expect("on the bus");
        let took = bus.now_us - sent_at;
        // The gateway's client (daemon and firmware alike) waits longer than that.
        let wait = forward_result_wait(LineConfig::rs485(&config)).total_micros();
        assert!(
            took < wait,
            "{baud100}: {took} µs, the client waits {wait} µs"
        );
        assert!(
            took <= limit,
            "{} baud: 0x0B {took} µs after the request went out, longest {limit} µs",
            u32::from(baud100) * 100
        );
        assert!(
            took >= limit / 2,
            "{baud100}: {took} µs, longest {limit} µs"
        );
    }
}

/// A host that keeps a forwarded request waiting all the time (polling the charger
/// through the gateway) never holds back the driver: a new limit for the charger goes
/// out after at most the one forwarded exchange on the bus, and its status is still
/// read.
#[test]
fn forwarded_requests_never_starve_the_charger_s_limit() {
    let mut bus = Bus::new(Config::default());
    bus.charger.current_ma = [7_000; 3];
    bus.run_until(3_000_000);
    let poll = frame(
        1,
        &Request::ReadHolding {
            start: STATUS_START,
            quantity: STATUS_LEN,
        },
    );
    let reads_before = bus.sent.iter().filter(|f| **f == poll).count();
    let writes_before = bus.limit_writes().len();
    // 20 s of a host whose next request is there the moment the last is answered.
    let start = bus.gateway.len();
    bus.resubmit = Some(poll.clone());
    bus.master.submit(&poll);
    bus.run_until(bus.now_us + 20_000_000);
    let forwarded = bus.gateway.len() - start;
    assert!(forwarded > 50, "the host got {forwarded} answers");
    // The driver still had its turns: the limit refreshed and the status read (its
    // own reads are the same frame as the host's: more than the host's answers).
    let reads = bus.sent.iter().filter(|f| **f == poll).count() - reads_before;
    assert!(
        reads > forwarded,
        "{reads} status reads on the bus, {forwarded} of them for the host"
    );
    assert!(
        bus.limit_writes().len() > writes_before,
        "no limit write in 20 s of forwarded requests"
    );
}

#[test]
fn every_allowed_baud_rate_reads_the_charger() {
    for baud100 in [12u16, 24, 48, 96, 192, 384, 576, 1152] {
        let mut config = Config::default();
        config.set(address::RS485_BAUD, baud100).unwrap();
        let mut bus = Bus::new(config);
        bus.charger.current_ma = [7_000; 3];
        bus.run_until(20_000_000);
        assert_eq!(
            bus.device.map.status().charger_ca,
            [700; 3],
            "{} baud",
            u32::from(baud100) * 100
        );
        assert!(!bus.master.driver(0).unwrap().not_answering(), "{baud100}");
    }
}

#[test]
fn a_silent_charger_is_flagged_in_1003() {
    let mut bus = Bus::new(Config::default());
    bus.charger.silent = true;
    bus.run_until(30_000_000);
    assert!(bus.master.driver(0).unwrap().not_answering());
    assert!(bus.device.map.flags().contains(Flags::CHARGER_SILENT));
}

fn exception(unit: u8, function: u8, code: u8) -> Vec<u8> {
    let mut buf = [0u8; MAX_ADU];
    let n = Response::Exception { function, code }
        .emit_frame(unit, &mut buf)
        .unwrap();
    buf[..n].to_vec()
}

#[test]
fn forwarded_requests_get_the_reply_busy_or_0x0b() {
    let mut bus = Bus::new(Config::default());
    bus.run_until(3_000_000);
    // A read for the charger, and a second one while the first waits.
    let req = frame(
        1,
        &Request::ReadHolding {
            start: STATUS_START,
            quantity: STATUS_LEN,
        },
    );
    bus.master.submit(&req);
    bus.master.submit(&req);
    assert!(bus.master.gateway_busy());
    bus.run_until(4_000_000);
    assert!(!bus.master.gateway_busy());
    assert_eq!(bus.gateway.len(), 2, "{:?}", bus.gateway);
    // The second is answered at once: 06 (busy).
    assert_eq!(bus.gateway[0], Some(exception(1, 0x03, SERVER_BUSY)));
    // The first went on the bus byte for byte and the charger's reply came back.
    assert!(bus.sent.contains(&req));
    let reply = bus.gateway[1].clone().unwrap();
    let f = Frame::new_checked(&reply).unwrap();
    assert_eq!(f.unit(), 1);
    let block = bus.charger.block();
    assert_eq!(
        Response::parse(f.pdu()).unwrap(),
        Response::ReadHolding(Words::Native(&block))
    );
    // A request for a unit nobody answers: 0x0B.
    let silent = frame(
        7,
        &Request::ReadHolding {
            start: 0,
            quantity: 1,
        },
    );
    bus.master.submit(&silent);
    bus.run_until(8_000_000);
    assert_eq!(
        bus.gateway.last().unwrap().clone(),
        Some(exception(7, 0x03, GATEWAY_NO_RESPONSE))
    );
    // A frame with a bad CRC is not forwarded and gets no answer.
    let mut bad = req.clone();
    *bad.last_mut().unwrap() ^= 1;
    let sent_before = bus.sent.len();
    bus.master.submit(&bad);
    bus.run_until(9_000_000);
    assert_eq!(bus.gateway.last().unwrap(), &None);
    assert!(!bus.sent[sent_before..].contains(&bad));
    // A broadcast goes on the bus and needs no reply.
    let broadcast = frame(
        0,
        &Request::WriteSingle {
            address: 0x4100,
            value: 6,
        },
    );
    let sent_before = bus.sent.len();
    bus.master.submit(&broadcast);
    bus.run_until(10_000_000);
    assert_eq!(bus.gateway.last().unwrap(), &None);
    assert!(bus.sent[sent_before..].contains(&broadcast));
    // The bus is free after each result of an exchange that was on it: the charger's
    // (checked in `run_until`), the forwarded read's, the silent unit's 0x0B and the
    // broadcast's; the 06 for the second read came while the first waited.
    let gateway: Vec<bool> = bus
        .events
        .iter()
        .filter(|(e, _)| !matches!(e, MasterEvent::Charger { .. }))
        .map(|&(_, on_bus)| on_bus)
        .collect();
    assert_eq!(gateway.len(), 5, "{:?}", bus.events);
    assert_eq!(&gateway[1..3], &[false, false], "{:?}", bus.events);
    assert!(!gateway[4], "{:?}", bus.events);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The fuzz target's checks on random inputs (see `support/bus_master_driver.rs`).
    #[test]
    fn arbitrary_bus_bytes_frames_and_times(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        run(&data);
    }
}

#[test]
fn a_garbage_reply_and_a_request_for_the_charger_are_answered() {
    // Submit a read for unit 1 at once, garbage on the bus, time passes.
    let mut data = vec![0u8, 2, 8];
    data.extend(frame(
        1,
        &Request::ReadHolding {
            start: 0,
            quantity: 1,
        },
    ));
    data.extend([3, 0, 1, 5, 0xde, 0xad, 0xbe, 0xef, 0x01, 0, 200, 4, 0]);
    run(&data);
}

/// The gateway's abandon policy, one definition for the daemon and the firmware: 5 s
/// for the bus; once on it, the longest exchange and a second (8.9 s at 1200 baud, the
/// slowest line).
#[test]
fn the_gateway_policy_waits_5_s_for_the_bus_and_the_whole_exchange_on_it() {
    assert_eq!(FORWARD_WAIT.total_millis(), 5_000);
    let mut config = Config::default();
    config.set(address::RS485_BAUD, 12).unwrap();
    let slowest = forward_result_wait(LineConfig::rs485(&config));
    assert_eq!(
        slowest.total_micros(),
        longest_exchange(LineConfig::rs485(&config)).total_micros() + 1_000_000
    );
    assert!(
        (8_800..=9_000).contains(&slowest.total_millis()),
        "{slowest}"
    );
}

/// One rule for both products' master loops: a save that changes the line asks for the
/// port to be reopened; any other change is taken over at once (here: the charger moved
/// to address 3); the same configuration again changes nothing.
#[test]
fn a_save_is_followed_and_a_new_line_reopens() {
    let config = Config::default();
    let mut master = BusMaster::new(&config, LineConfig::rs485(&config), Instant::ZERO);
    assert_eq!(master.follow_saved(&config), SavedChange::None);
    let mut moved = config;
    moved.set(address::CHARGER_ADDRESS, 3).unwrap();
    assert_eq!(master.follow_saved(&moved), SavedChange::Applied);
    assert_eq!(master.address_of(0), Some(3));
    assert_eq!(master.follow_saved(&moved), SavedChange::None);
    let mut faster = moved;
    faster.set(address::RS485_BAUD, 192).unwrap();
    assert_eq!(master.follow_saved(&faster), SavedChange::Reopen);
    // Not taken over: the port is reopened and a new master starts.
    assert_eq!(master.follow_saved(&faster), SavedChange::Reopen);
}

/// The line's longest exchange (a silent unit's: every attempt's reply timeout), µs.
fn longest_us(config: &Config) -> u64 {
    longest_exchange(LineConfig::rs485(config)).total_micros()
}

/// Two and three chargers on one line: each is configured with the timeout and its
/// share of the fallback limit (floor(10 A / n) in whole amps), gets its own limit and
/// is polled every 2 s at its own address; each one's status reaches its registers.
#[test]
fn several_chargers_each_get_their_setup_limit_and_polls_at_their_address() {
    for n in [2u8, 3] {
        let mut config = Config::default();
        config.set_fallback_ma(10_000).unwrap();
        let mut bus = Bus::with_chargers(config, n);
        // Each charger its own value: 8 A, 9 A, 10 A.
        let values: [u32; MAX_CHARGERS] = core::array::from_fn(|k| 8_000 + 1_000 * k as u32);
        bus.sent_ma = Some(values);
        bus.run_until(10_000_000);
        assert_eq!(bus.master.chargers(), usize::from(n));
        let share = 10 / u16::from(n);
        for (k, &value) in values.iter().enumerate().take(usize::from(n)) {
            let a = k as u8 + 1;
            assert_eq!(bus.master.address_of(k), Some(a));
            let c = bus.unit(a).unwrap();
            assert_eq!(
                setup_writes(c),
                [(REG_TIMEOUT, COMM_TIMEOUT_S), (REG_FALLBACK, share)],
                "{n} chargers: charger {a}"
            );
            assert_eq!((c.timeout_s, c.fallback_a), (COMM_TIMEOUT_S, share));
            let limits = limits_ma(c);
            assert_eq!(limits, [value], "{n} chargers: charger {a}");
            assert_eq!(c.limit_ma, value);
            let reads = bus.times_of(a, 0x03, 0);
            assert!(
                (4..=6).contains(&reads.len()),
                "{n} chargers: charger {a} read at {reads:?}"
            );
            for w in reads.windows(2) {
                assert!(
                    (2_000_000..2_500_000).contains(&(w[1] - w[0])),
                    "{n} chargers: charger {a} read at {reads:?}"
                );
            }
            let driver = bus.master.driver(k).unwrap();
            assert!(!driver.not_answering() && !driver.exception());
            let ma = 5_000 + 1_000 * u32::from(a);
            assert_eq!(driver.status().current_ma, [Some(ma); 3]);
            let regs = bus.device.map.status().chargers[k];
            assert_eq!(regs.state, u16::from(a), "{n} chargers: charger {a}");
            assert!(!regs.flags.contains(ChargerFlags::NOT_ANSWERING));
        }
        assert!(bus.master.driver(usize::from(n)).is_none());
        assert_eq!(bus.master.address_of(usize::from(n)), None);
        // Nothing for any other unit, and every result named its charger.
        assert!(bus.sent.iter().all(|f| (1..=n).contains(&f[0])));
        assert_eq!(bus.dropped, 0);
        // Charger 1's own registers as with one charger.
        assert_eq!(bus.device.map.status().charger_ca, [600; 3]);
        assert_eq!(bus.device.map.status().charger_state, 1);
    }
}

/// One of two or three chargers silent (each position in turn): its driver says so
/// (its flag, 1003 bit 2), and the others still get their polls and limit refreshes
/// on time: a live charger waits for at most one exchange of each other charger per
/// turn (the silent one's takes [`longest_exchange`]), and a poll right after its own
/// limit refresh waits for a second turn. The silent one is still tried, and noticed
/// when it answers again.
#[test]
fn a_silent_charger_is_flagged_and_never_holds_back_the_others() {
    for n in [2u8, 3] {
        for silent in 1..=n {
            let config = Config::default();
            let mut bus = Bus::with_chargers(config, n);
            bus.sent_ma = Some([7_000; MAX_CHARGERS]);
            bus.unit_mut(silent).unwrap().silent = true;
            bus.run_until(60_000_000);
            let slow = longest_us(&config);
            // The other live chargers' exchanges, each well under 200 ms at 9600 baud.
            let others = u64::from(n - 2) * 200_000;
            let turn = slow + others;
            for a in 1..=n {
                let k = usize::from(a - 1);
                let driver = bus.master.driver(k).unwrap();
                let flags = bus.device.map.status().chargers[k].flags;
                let case = format!("{n} chargers, {silent} silent: charger {a}");
                if a == silent {
                    assert!(driver.not_answering(), "{case}");
                    assert!(flags.contains(ChargerFlags::NOT_ANSWERING), "{case}");
                    continue;
                }
                assert!(!driver.not_answering(), "{case}");
                assert!(!flags.contains(ChargerFlags::NOT_ANSWERING), "{case}");
                assert_eq!(bus.unit(a).unwrap().limit_ma, 7_000, "{case}");
                // From the end of its setup (well within 5 s) to the end.
                let reads = bus.times_of(a, 0x03, 5_000_000);
                let gap = longest_gap(&reads, 5_000_000, 60_000_000);
                let bound = POLL.total_micros() + 2 * turn + 100_000;
                assert!(
                    gap <= bound,
                    "{case}: polls {gap} µs apart, bound {bound}: {reads:?}"
                );
                assert!(reads.len() >= 12, "{case}: {reads:?}");
                let writes = bus.times_of(a, 0x10, 5_000_000);
                let gap = longest_gap(&writes, 5_000_000, 60_000_000);
                let bound = 10_000_000 + turn + 100_000;
                assert!(
                    gap <= bound,
                    "{case}: limits {gap} µs apart, bound {bound}: {writes:?}"
                );
                assert!(writes.len() >= 5, "{case}: {writes:?}");
            }
            assert!(bus.device.map.flags().contains(Flags::CHARGER_SILENT));
            // It is still tried: it is noticed when it answers again.
            let tried = bus.times_of(silent, 0x06, 30_000_000).len()
                + bus.times_of(silent, 0x10, 30_000_000).len()
                + bus.times_of(silent, 0x03, 30_000_000).len();
            assert!(
                tried >= 3,
                "{n} chargers, {silent} silent: tried {tried} times"
            );
            bus.unit_mut(silent).unwrap().silent = false;
            bus.run_until(70_000_000);
            let k = usize::from(silent - 1);
            assert!(!bus.master.driver(k).unwrap().not_answering());
            assert!(!bus.device.map.flags().contains(Flags::CHARGER_SILENT));
            assert_eq!(bus.unit(silent).unwrap().limit_ma, 7_000);
        }
    }
}

/// Eight chargers on a 1200-baud line, more polling than the line can carry (a status
/// read takes 0.76 s): round-robin gives every charger its turn, so each is polled at
/// least once a round of eight exchanges and hears from the master well within its
/// communication timeout. A master that served the lowest due charger first would
/// never reach charger 8.
#[test]
fn on_a_saturated_line_every_charger_gets_its_turn() {
    let mut config = Config::default();
    config.set(address::RS485_BAUD, 12).unwrap();
    let mut bus = Bus::with_chargers(config, 8);
    bus.sent_ma = Some([6_000; MAX_CHARGERS]);
    bus.run_until(120_000_000);
    // A status read at 1200 baud: 8 + 79 bytes, the turnaround and the silence, under
    // 0.8 s. A charger waits for at most one exchange of each other charger per turn,
    // and a poll right after its own limit refresh for a second turn.
    let round = 8 * 800_000;
    for a in 1..=8u8 {
        let reads = bus.times_of(a, 0x03, 20_000_000);
        let gap = longest_gap(&reads, 20_000_000, 120_000_000);
        assert!(
            gap <= 2 * round,
            "charger {a}: polls {gap} µs apart: {reads:?}"
        );
        assert!(reads.len() >= 100 / 8, "charger {a}: {reads:?}");
        let all: Vec<u64> = bus
            .sent
            .iter()
            .zip(&bus.sent_at)
            .filter(|(f, _)| f[0] == a)
            .map(|(_, &at)| at)
            .collect();
        let gap = longest_gap(&all, 0, 120_000_000);
        assert!(
            gap < u64::from(COMM_TIMEOUT_S) * 1_000_000 / 2,
            "charger {a}: {gap} µs without a frame"
        );
        assert_eq!(bus.unit(a).unwrap().limit_ma, 6_000, "charger {a}");
        assert!(
            !bus.master
                .driver(usize::from(a - 1))
                .unwrap()
                .not_answering()
        );
    }
}

/// With three chargers on the line the gateway still reaches every other unit (one the
/// master does not drive, a charger, a silent address), and a host that keeps it busy
/// all the time never holds back any charger's polls or limit refreshes.
#[test]
fn with_three_chargers_the_gateway_reaches_any_unit_and_starves_none() {
    let mut bus = Bus::with_chargers(Config::default(), 3);
    bus.sent_ma = Some([6_000; MAX_CHARGERS]);
    // A unit the master does not drive, at address 9.
    let mut other = Charger::new();
    other.current_ma = [1_234; 3];
    bus.others.push((9, other));
    bus.run_until(3_000_000);
    let read = |unit: u8| {
        frame(
            unit,
            &Request::ReadHolding {
                start: STATUS_START,
                quantity: STATUS_LEN,
            },
        )
    };
    for unit in [9u8, 2] {
        bus.master.submit(&read(unit));
        bus.run_until(bus.now_us + 2_000_000);
        let reply = bus.gateway.last().unwrap().clone().expect("a reply");
        let f = Frame::new_checked(&reply).unwrap();
        assert_eq!(f.unit(), unit);
        let block = bus.unit(unit).unwrap().block();
        assert_eq!(
            Response::parse(f.pdu()).unwrap(),
            Response::ReadHolding(Words::Native(&block))
        );
    }
    bus.master.submit(&read(7));
    bus.run_until(bus.now_us + 4_000_000);
    assert_eq!(
        bus.gateway.last().unwrap().clone(),
        Some(exception(7, 0x03, GATEWAY_NO_RESPONSE))
    );
    // 20 s of a host whose next request is there the moment the last is answered.
    let from = bus.now_us;
    let answers = bus.gateway.len();
    bus.resubmit = Some(read(9));
    bus.master.submit(&read(9));
    bus.run_until(from + 20_000_000);
    let forwarded = bus.gateway.len() - answers;
    assert!(forwarded > 50, "the host got {forwarded} answers");
    for a in 1..=3u8 {
        let reads = bus.times_of(a, 0x03, from);
        // Polled every 2 s, held back by one forwarded exchange and each other
        // charger's per turn (about 0.1 s each).
        let gap = longest_gap(&reads, from, from + 20_000_000);
        assert!(
            gap < 3_000_000,
            "charger {a}: polls {gap} µs apart: {reads:?}"
        );
        assert!(
            !bus.times_of(a, 0x10, from).is_empty(),
            "charger {a}: no refresh"
        );
    }
    assert_eq!(bus.dropped, 0);
}

/// A save that changes the charger count or the first address adds and removes
/// drivers: one whose address stays on the bus keeps its state (it is not configured
/// again unless its fallback share changed), a new address is configured first, a
/// removed one hears nothing more, and the result of an exchange on the bus for a
/// charger that went away is dropped.
#[test]
fn a_save_adds_and_removes_chargers_and_keeps_those_still_on_the_bus() {
    let mut config = Config::default();
    config.set_fallback_ma(12_000).unwrap();
    config.set_charger_count(1).unwrap();
    let mut bus = Bus::with_units(config, 4);
    bus.sent_ma = Some([6_000; MAX_CHARGERS]);
    bus.run_until(5_000_000);
    let setup = |a: u16| [(REG_TIMEOUT, COMM_TIMEOUT_S), (REG_FALLBACK, a)];
    assert_eq!(setup_writes(bus.unit(1).unwrap()), setup(12));
    assert!(bus.sent.iter().all(|f| f[0] == 1));

    // Three chargers: 4 A each; charger 1 keeps its driver (its status) and writes
    // its new share, chargers 2 and 3 are configured.
    let mut three = config;
    three.set_charger_count(3).unwrap();
    assert_eq!(bus.master.follow_saved(&three), SavedChange::Applied);
    assert_eq!(bus.master.chargers(), 3);
    assert!(bus.master.driver(0).unwrap().status().read_at.is_some());
    assert!(bus.master.driver(1).unwrap().status().read_at.is_none());
    bus.run_until(10_000_000);
    let mut expected = setup(12).to_vec();
    expected.extend(setup(4));
    assert_eq!(setup_writes(bus.unit(1).unwrap()), expected);
    for a in [2, 3] {
        assert_eq!(setup_writes(bus.unit(a).unwrap()), setup(4), "charger {a}");
        assert_eq!(bus.unit(a).unwrap().limit_ma, 6_000, "charger {a}");
    }

    // Two chargers, saved while an exchange with charger 3 is on the bus: its result
    // is dropped and charger 3 hears nothing more; 1 and 2 write their 6 A share.
    while !(bus.master.exchange_on_bus() && bus.sent.last().unwrap()[0] == 3) {
        bus.run_until(bus.now_us + 1_000);
        assert!(bus.now_us < 20_000_000, "no exchange with charger 3");
    }
    let mut two = three;
    two.set_charger_count(2).unwrap();
    assert_eq!(bus.master.follow_saved(&two), SavedChange::Applied);
    assert!(bus.master.driver(2).is_none());
    let saved_at = bus.now_us;
    let to_3 = bus.sent.iter().filter(|f| f[0] == 3).count();
    bus.run_until(saved_at + 5_000_000);
    assert_eq!(bus.dropped, 1);
    assert_eq!(bus.sent.iter().filter(|f| f[0] == 3).count(), to_3);
    for a in [1, 2] {
        assert_eq!(
            setup_writes(bus.unit(a).unwrap()).last(),
            Some(&(REG_FALLBACK, 6)),
            "charger {a}"
        );
    }

    // The chargers moved up one address (2 and 3): charger 2 keeps its driver, now
    // the first, and is not configured again (same share); 3 is configured anew; 1
    // hears nothing more.
    let mut moved = two;
    moved.set_charger_address(2).unwrap();
    let before_2 = setup_writes(bus.unit(2).unwrap()).len();
    let before_3 = setup_writes(bus.unit(3).unwrap()).len();
    let to_1 = bus.sent.iter().filter(|f| f[0] == 1).count();
    let read_2 = bus.master.driver(1).unwrap().status().read_at;
    // Between exchanges.
    while bus.master.exchange_on_bus() {
        bus.run_until(bus.now_us + 1_000);
    }
    assert_eq!(bus.master.follow_saved(&moved), SavedChange::Applied);
    assert_eq!(bus.master.address_of(0), Some(2));
    assert_eq!(bus.master.address_of(1), Some(3));
    assert_eq!(bus.master.driver(0).unwrap().status().read_at, read_2);
    bus.run_until(bus.now_us + 5_000_000);
    assert_eq!(setup_writes(bus.unit(2).unwrap()).len(), before_2);
    assert_eq!(
        setup_writes(bus.unit(3).unwrap())[before_3..],
        setup(6),
        "charger 3 configured at its address again"
    );
    assert_eq!(bus.sent.iter().filter(|f| f[0] == 1).count(), to_1);
    assert!(
        bus.sent.iter().all(|f| f[0] != 4),
        "unit 4 was never a charger"
    );
    assert_eq!(bus.dropped, 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// The fuzz target's checks with two to eight chargers on the bus: arbitrary reply
    /// bytes and timing, host frames, values and saves never make the master panic,
    /// name a charger that is not there, or leave a request unanswered.
    #[test]
    fn several_chargers_on_arbitrary_bus_bytes_frames_and_times(
        count in 2u8..=8,
        address in 0u8..4,
        baud in 0u8..3,
        rest in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut data = vec![(baud << 6) | ((count - 1) << 2) | address];
        data.extend(rest);
        run(&data);
    }
}
