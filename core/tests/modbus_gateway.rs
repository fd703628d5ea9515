//! The USB-to-RS485 gateway: forwarded requests reach the bus between the driver's
//! exchanges, replies come back byte for byte, silence becomes exception 0x0B.

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
        if let Some(sent) = client.poll_transmit(now) {
            let sent = sent.to_vec();
            assert_eq!(sent, req, "forwarded byte for byte");
            if let Some(r) = bus(&sent) {
                client.on_frame(now + 20_000, &r);
            }
        }
        if let Some(result) = client.poll_result(now) {
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
