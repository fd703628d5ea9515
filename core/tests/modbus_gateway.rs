//! The USB-to-RS485 gateway: forwarded requests reach the bus between the driver's
//! exchanges, replies come back byte for byte, silence becomes exception 0x0B.

mod common;

use common::terra::Charger;
use p1lb_core::abb::{self, DriverConfig, REG_LIMIT, TerraAc};
use p1lb_core::time::Instant;

fn us(t: u64) -> Instant {
    Instant::from_micros(t)
}

fn ms(t: u64) -> Instant {
    Instant::from_millis(t)
}
use p1lb_core::modbus::{
    Client, ClientConfig, GATEWAY_NO_RESPONSE, Gateway, MAX_ADU, Request, Response, SERVER_BUSY,
    Submitted, Turn, Words,
};

fn frame(unit: u8, req: &Request<'_>) -> Vec<u8> {
    let mut buf = [0u8; MAX_ADU];
    let n = req.emit_frame(unit, &mut buf).unwrap();
    buf[..n].to_vec()
}

fn reply(unit: u8, resp: &Response<'_>) -> Vec<u8> {
    let mut buf = [0u8; MAX_ADU];
    let n = resp.emit_frame(unit, &mut buf).unwrap();
    buf[..n].to_vec()
}

/// Submits `req` for `unit`, runs it over the bus with `bus` answering (or not), and
/// returns what the host gets.
fn forward(req: &[u8], bus: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Option<Vec<u8>> {
    let mut gw = Gateway::new();
    let mut client = Client::new(ClientConfig::default());
    let mut answer = [0u8; MAX_ADU];
    assert_eq!(gw.submit(req, &mut answer), Submitted::Queued);
    assert_eq!(gw.next_on_bus(&mut client), Turn::Forwarded);
    assert_eq!(
        gw.next_on_bus(&mut client),
        Turn::Busy,
        "one exchange at a time"
    );
    let mut now = 0u64;
    loop {
        if let Some(sent) = client.poll_transmit(us(now)) {
            let sent = sent.to_vec();
            assert_eq!(sent, req, "forwarded byte for byte");
            if let Some(r) = bus(&sent) {
                client.on_frame(us(now + 20_000), &r);
            }
        }
        if let Some(result) = client.poll_result(us(now)) {
            let mut out = [0u8; MAX_ADU];
            let n = gw.on_reply(result, &mut out);
            assert!(!gw.is_busy());
            return n.map(|n| out[..n].to_vec());
        }
        now += 50_000;
        assert!(now < 10_000_000, "the exchange never ended");
    }
}

#[test]
fn read_is_forwarded_and_the_reply_relayed() {
    let req = frame(
        1,
        &Request::ReadHolding {
            start: 0x4000,
            quantity: 2,
        },
    );
    let regs = [0x1234u16, 0xABCD];
    let want = reply(1, &Response::ReadHolding(Words::Native(&regs)));
    let got = forward(&req, |_| Some(want.clone()));
    assert_eq!(got, Some(want));
}

#[test]
fn writes_and_exceptions_are_relayed() {
    let values = [0u16, 16_000];
    let req = frame(
        1,
        &Request::WriteMultiple {
            start: 0x4100,
            values: Words::Native(&values),
        },
    );
    let want = reply(
        1,
        &Response::WriteMultiple {
            start: 0x4100,
            quantity: 2,
        },
    );
    assert_eq!(forward(&req, |_| Some(want.clone())), Some(want));

    let req = frame(
        1,
        &Request::WriteSingle {
            address: 0x4106,
            value: 30,
        },
    );
    let want = reply(
        1,
        &Response::WriteSingle {
            address: 0x4106,
            value: 30,
        },
    );
    assert_eq!(forward(&req, |_| Some(want.clone())), Some(want));

    let req = frame(
        1,
        &Request::ReadHolding {
            start: 0x9000,
            quantity: 1,
        },
    );
    let exc = reply(
        1,
        &Response::Exception {
            function: 3,
            code: 2,
        },
    );
    assert_eq!(forward(&req, |_| Some(exc.clone())), Some(exc));
}

#[test]
fn silence_is_exception_0x0b() {
    let req = frame(
        7,
        &Request::ReadHolding {
            start: 0x4000,
            quantity: 1,
        },
    );
    let want = reply(
        7,
        &Response::Exception {
            function: 3,
            code: GATEWAY_NO_RESPONSE,
        },
    );
    assert_eq!(forward(&req, |_| None), Some(want));
}

#[test]
fn broadcast_is_forwarded_and_not_answered() {
    let req = frame(
        0,
        &Request::WriteSingle {
            address: 0x4100,
            value: 6000,
        },
    );
    assert_eq!(forward(&req, |_| None), None);
}

#[test]
fn a_second_request_while_one_waits_is_busy() {
    let mut gw = Gateway::new();
    let mut answer = [0u8; MAX_ADU];
    let a = frame(
        1,
        &Request::ReadHolding {
            start: 0x4000,
            quantity: 1,
        },
    );
    let b = frame(
        2,
        &Request::ReadHolding {
            start: 0x4000,
            quantity: 1,
        },
    );
    assert_eq!(gw.submit(&a, &mut answer), Submitted::Queued);
    let Submitted::Answer(n) = gw.submit(&b, &mut answer) else {
        panic!("busy expected");
    };
    assert_eq!(
        answer[..n],
        reply(
            2,
            &Response::Exception {
                function: 3,
                code: SERVER_BUSY
            }
        )
    );
}

#[test]
fn bad_requests_are_answered_or_dropped_never_forwarded() {
    let mut gw = Gateway::new();
    let mut answer = [0u8; MAX_ADU];
    // Quantity 0 (CRC valid): exception 03 at once.
    let mut q0 = vec![1, 3, 0x40, 0, 0, 0];
    let crc = p1lb_core::modbus::crc16_modbus(&q0).to_le_bytes();
    q0.extend_from_slice(&crc);
    let Submitted::Answer(n) = gw.submit(&q0, &mut answer) else {
        panic!("exception expected");
    };
    assert_eq!(
        answer[..n],
        reply(
            1,
            &Response::Exception {
                function: 3,
                code: 3
            }
        )
    );
    // Bad CRC: dropped.
    let mut bad = frame(
        1,
        &Request::ReadHolding {
            start: 0x4000,
            quantity: 1,
        },
    );
    bad[3] ^= 1;
    assert_eq!(gw.submit(&bad, &mut answer), Submitted::Dropped);
    assert!(!gw.is_busy());
}

#[test]
fn the_driver_gets_the_bus_when_no_request_waits() {
    let mut gw = Gateway::new();
    let mut client = Client::new(ClientConfig::default());
    assert_eq!(gw.next_on_bus(&mut client), Turn::Driver);
    client
        .start(
            1,
            &Request::ReadHolding {
                start: 0x4000,
                quantity: 37,
            },
        )
        .unwrap();
    let mut answer = [0u8; MAX_ADU];
    let req = frame(
        5,
        &Request::ReadHolding {
            start: 0,
            quantity: 1,
        },
    );
    assert_eq!(gw.submit(&req, &mut answer), Submitted::Queued);
    // The driver's exchange is on the bus: the forwarded request waits for it.
    assert_eq!(gw.next_on_bus(&mut client), Turn::Busy);
    client.cancel();
    assert_eq!(gw.next_on_bus(&mut client), Turn::Forwarded);
}

/// Who started the exchange on the bus.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Owner {
    Driver(abb::Request),
    Host,
}

/// The firmware's RS485 loop in miniature: the Terra AC driver and the gateway share
/// one client on a bus with a simulated charger; the host asks every 700 ms.
#[test]
fn forwarded_requests_never_interleave_with_the_charger_traffic() {
    let mut charger = Charger::new();
    charger.current_ma = [15_900, 16_100, 0];
    let mut driver = TerraAc::new(
        DriverConfig {
            fallback_ma: 6000,
            refresh_s: 10,
        },
        ms(0),
    );
    let mut client = Client::new(ClientConfig::default());
    let mut gw = Gateway::new();
    let host_req = frame(
        1,
        &Request::ReadHolding {
            start: abb::STATUS_START,
            quantity: abb::STATUS_LEN,
        },
    );
    let mut bus: Vec<(u64, bool, Vec<u8>)> = Vec::new(); // (ms, is request, bytes)
    let mut host_replies: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut owner: Option<Owner> = None;
    let mut answer = [0u8; MAX_ADU];
    for step in 0..12_000u64 {
        let now_ms = step * 10;
        let now_us = ms(now_ms).total_micros();
        charger.silent = (80_000..100_000).contains(&now_ms);
        if now_ms % 700 == 0 && !gw.is_busy() {
            assert_eq!(gw.submit(&host_req, &mut answer), Submitted::Queued);
        }
        if owner.is_none() {
            match gw.next_on_bus(&mut client) {
                Turn::Forwarded => owner = Some(Owner::Host),
                Turn::Driver => {
                    if let Some(r) = driver.poll_request(ms(now_ms), 16_000) {
                        client.start(1, &Request::from(&r)).unwrap();
                        owner = Some(Owner::Driver(r));
                    }
                }
                Turn::Busy => {}
            }
        }
        if let Some(tx) = client.poll_transmit(us(now_us)) {
            let tx = tx.to_vec();
            bus.push((now_ms, true, tx.clone()));
            if let Some(rx) = charger.on_frame(1, &tx) {
                bus.push((now_ms, false, rx.clone()));
                client.on_frame(us(now_us + 5_000), &rx);
            }
        }
        if let Some(result) = client.poll_result(us(now_us + 5_000)) {
            match owner.take() {
                Some(Owner::Driver(r)) => driver.on_response(ms(now_ms), r, result.outcome()),
                Some(Owner::Host) => {
                    let mut out = [0u8; MAX_ADU];
                    let n = gw.on_reply(result, &mut out).expect("a reply for the host");
                    host_replies.push((now_ms, out[..n].to_vec()));
                }
                None => panic!("a result without an exchange"),
            }
        }
    }
    // Never two requests on the bus without the reply (or the timeout) in between.
    for w in bus.windows(2) {
        if w[0].1 && w[1].1 {
            assert!(w[1].0 >= w[0].0 + 500, "interleaved at {} ms", w[1].0);
        }
    }
    // The host got the charger's currents while it answered, and 0x0B while silent.
    // The status block's words 0x10–0x15 are the charger's currents (32-bit, mA).
    let currents = |r: &[u8]| {
        r.len() == 3 + 2 * usize::from(abb::STATUS_LEN) + 2
            && r[1] == 3
            && r[3 + 0x20..3 + 0x2C] == [0, 0, 0x3E, 0x1C, 0, 0, 0x3E, 0xE4, 0, 0, 0, 0]
    };
    let no_answer = reply(
        1,
        &Response::Exception {
            function: 3,
            code: GATEWAY_NO_RESPONSE,
        },
    );
    let ok = host_replies.iter().filter(|(_, r)| currents(r)).count();
    let silent = host_replies
        .iter()
        .filter(|(t, r)| *r == no_answer && (80_000..102_000).contains(t))
        .count();
    assert!(ok > 100, "{ok} answered reads");
    assert!(silent >= 3, "{silent} 0x0B replies");
    assert_eq!(
        ok + silent,
        host_replies.len(),
        "every reply is one of the two"
    );
    // The periodic 0x4100 write kept its period (10 s) while the charger answered.
    let writes: Vec<u64> = bus
        .iter()
        .filter(|(t, req, b)| {
            *req && *t < 80_000
                && b.len() > 3
                && b[1] == 16
                && u16::from_be_bytes([b[2], b[3]]) == REG_LIMIT
        })
        .map(|(t, _, _)| *t)
        .collect();
    assert!(writes.len() >= 8, "{writes:?}");
    for w in writes.windows(2) {
        assert!(
            w[1] - w[0] <= 10_000 + 1_000,
            "0x4100 gap {} ms",
            w[1] - w[0]
        );
    }
    assert!(
        !driver.not_answering(),
        "the charger answers again at the end"
    );
}
