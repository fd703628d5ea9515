//! The RS485 master role as the daemon and the firmware run it: [`BusMaster`] on a
//! simulated bus (bytes at 9600 baud with real silences) with the simulated Terra AC,
//! and [`Device`] taking the charger's status into the register map.

mod common;

use common::terra::Charger;
use p1lb_core::abb::{REG_LIMIT, Request as AbbRequest, STATUS_LEN, STATUS_START};
use p1lb_core::bus_master::{
    BusMaster, FORWARD_WAIT, MasterEvent, SavedChange, forward_result_wait, longest_exchange,
};
use p1lb_core::config::{Config, address};
use p1lb_core::device::Device;
use p1lb_core::modbus::{
    Frame, GATEWAY_NO_RESPONSE, LineConfig, MAX_ADU, Request, Response, SERVER_BUSY, Words,
};
use p1lb_core::registers::Flags;
use p1lb_core::time::Instant;
use proptest::prelude::*;

/// The bus's time line counts microseconds from the start.
fn us(t: u64) -> Instant {
    Instant::from_micros(t)
}

include!("support/bus_master_driver.rs");

/// A bus with the master, the charger at address 1 and a time line in µs.
struct Bus {
    master: BusMaster,
    charger: Charger,
    device: Device,
    now_us: u64,
    /// Every frame the master sent.
    sent: Vec<Vec<u8>>,
    /// Gateway results, in order.
    gateway: Vec<Option<Vec<u8>>>,
    /// Every event, and whether an exchange was on the bus right after it.
    events: Vec<(MasterEvent, bool)>,
    /// A host that submits this again the moment each gateway answer comes (as the
    /// daemon does when the next request already waits in its queue).
    resubmit: Option<Vec<u8>>,
    char_us: u64,
}

impl Bus {
    fn new(config: Config) -> Bus {
        let line = LineConfig::rs485(&config);
        Bus {
            master: BusMaster::new(&config, line, us(0)),
            charger: Charger::new(),
            device: Device::new(config, us(0)),
            now_us: 0,
            sent: Vec::new(),
            gateway: Vec::new(),
            events: Vec::new(),
            resubmit: None,
            char_us: u64::from(line.bits_per_char()) * 1_000_000 / u64::from(line.baud),
        }
    }

    /// Runs the loop the daemon and the firmware run, until `until_us`.
    fn run_until(&mut self, until_us: u64) {
        let mut out = [0u8; MAX_ADU];
        while self.now_us < until_us {
            let sent_ma = self.device.balancer.decision().sent_ma;
            if let Some(tx) = self.master.poll_transmit(us(self.now_us), sent_ma) {
                let tx = tx.to_vec();
                assert!(self.master.exchange_on_bus(), "a request is on the bus");
                // The request on the wire, then the charger's reply after 5 ms,
                // byte by byte.
                self.now_us += self.char_us * tx.len() as u64;
                if let Some(reply) = self.charger.on_frame(1, &tx) {
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
                Some(MasterEvent::Charger { fresh }) => {
                    self.device
                        .on_charger(us(self.now_us), 0, self.master.driver(), fresh);
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
        self.charger
            .writes
            .iter()
            .filter_map(|w| match *w {
                AbbRequest::WriteTwo { address, values } if address == REG_LIMIT => Some(values[0]),
                _ => None,
            })
            .collect()
    }
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
        assert!(!bus.master.driver().not_answering(), "{baud100}");
    }
}

#[test]
fn a_silent_charger_is_flagged_in_1003() {
    let mut bus = Bus::new(Config::default());
    bus.charger.silent = true;
    bus.run_until(30_000_000);
    assert!(bus.master.driver().not_answering());
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
    assert_eq!(master.charger_address(), 3);
    assert_eq!(master.follow_saved(&moved), SavedChange::None);
    let mut faster = moved;
    faster.set(address::RS485_BAUD, 192).unwrap();
    assert_eq!(master.follow_saved(&faster), SavedChange::Reopen);
    // Not taken over: the port is reopened and a new master starts.
    assert_eq!(master.follow_saved(&faster), SavedChange::Reopen);
}
