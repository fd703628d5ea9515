//! The Modbus RTU codec: hand-checked frames per function code (the spec's and
//! well-known examples), every malformed case and its error, the server on a
//! RegisterMap, both framers, the client's timeout, retries and validation; and
//! properties: emit → parse round trips, and arbitrary bytes never panic anything
//! while every reply the server emits is a well-formed frame.

use p1lb_core::abb;
use p1lb_core::config::{Config, address};
use p1lb_core::modbus::*;
use p1lb_core::registers::{Exception, RegisterMap};
use p1lb_core::server::{Ignored, ServerAction, serve};
use p1lb_core::time::{Duration, Instant};
use proptest::prelude::*;

/// The bus's time line counts microseconds from the start.
fn us(t: u64) -> Instant {
    Instant::from_micros(t)
}

/// The default server address (register 1090).
const UNIT: u8 = 10;

fn with_crc(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.extend_from_slice(&crc16_modbus(bytes).to_le_bytes());
    v
}

fn req_frame(unit: u8, r: &Request<'_>) -> Vec<u8> {
    let mut out = [0u8; MAX_ADU];
    let n = r.emit_frame(unit, &mut out).expect("emit");
    out[..n].to_vec()
}

fn resp_frame(unit: u8, r: &Response<'_>) -> Vec<u8> {
    let mut out = [0u8; MAX_ADU];
    let n = r.emit_frame(unit, &mut out).expect("emit");
    out[..n].to_vec()
}

// ---------------------------------------------------------------- CRC and frame

#[test]
fn crc_check_value_and_known_frames() {
    assert_eq!(crc16_modbus(b"123456789"), 0x4B37);
    for frame in [
        &[0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD][..],
        &[0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87],
        &[
            0x11, 0x03, 0x06, 0xAE, 0x41, 0x56, 0x52, 0x43, 0x40, 0x49, 0xAD,
        ],
        &[0x01, 0x06, 0x00, 0x01, 0x00, 0x03, 0x98, 0x0B],
        &[
            0x11, 0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02, 0xC6, 0xF0,
        ],
        &[0x11, 0x10, 0x00, 0x01, 0x00, 0x02, 0x12, 0x98],
        &[0x0A, 0x81, 0x02, 0xB0, 0x53],
    ] {
        assert!(crc_ok(frame), "{frame:02X?}");
        let f = Frame::new_checked(frame).expect("checked");
        assert_eq!(f.as_bytes(), frame);
        assert_eq!(f.crc(), crc16_modbus(&frame[..frame.len() - 2]));
    }
    let mut buf = [0u8; 8];
    buf[..6].copy_from_slice(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x0A]);
    assert_eq!(append_crc(&mut buf, 6), Some(8));
    assert_eq!(&buf[6..], &[0xC5, 0xCD], "CRC low byte first");
    assert_eq!(append_crc(&mut buf, 7), None);
    assert!(!crc_ok(&[]) && !crc_ok(&[0x01, 0x02]));
}

#[test]
fn frame_checks_length_and_crc() {
    let f = Frame::new_checked(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD]).unwrap();
    assert_eq!((f.unit(), f.function()), (1, 3));
    assert_eq!(f.pdu(), &[0x03, 0x00, 0x00, 0x00, 0x0A]);
    assert_eq!(Frame::new_checked(&[]), Err(FrameError::TooShort));
    assert_eq!(Frame::new_checked(&[1, 2, 3]), Err(FrameError::TooShort));
    assert_eq!(Frame::new_checked(&[0u8; 257]), Err(FrameError::TooLong));
    assert_eq!(
        Frame::new_checked(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCE]),
        Err(FrameError::BadCrc {
            received: 0xCEC5,
            computed: 0xCDC5
        })
    );
    // The shortest frame: address, function, CRC.
    let short = with_crc(&[0x05, 0x07]);
    assert_eq!(Frame::new_checked(&short).unwrap().pdu(), &[0x07]);
    // The longest.
    let long = with_crc(&[0x01; 254]);
    assert_eq!(Frame::new_checked(&long).unwrap().pdu().len(), 253);
}

// ---------------------------------------------------------------- requests

#[test]
fn fc03_request() {
    let bytes = [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD];
    let r = Request::parse(Frame::new_checked(&bytes).unwrap().pdu()).unwrap();
    assert_eq!(
        r,
        Request::ReadHolding {
            start: 0,
            quantity: 10
        }
    );
    assert_eq!(req_frame(1, &r), bytes);
    let spec = [0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87];
    assert_eq!(
        req_frame(
            0x11,
            &Request::ReadHolding {
                start: 0x6B,
                quantity: 3
            }
        ),
        spec
    );
}

#[test]
fn fc04_request() {
    let r = Request::ReadInput {
        start: 8,
        quantity: 1,
    };
    // Modbus spec example: 04 0008 0001.
    let f = req_frame(0x11, &r);
    assert_eq!(&f[..6], &[0x11, 0x04, 0x00, 0x08, 0x00, 0x01]);
    assert_eq!(Request::parse(&f[1..6]), Ok(r));
}

#[test]
fn fc06_request() {
    let bytes = [0x01, 0x06, 0x00, 0x01, 0x00, 0x03, 0x98, 0x0B];
    let r = Request::parse(&bytes[1..6]).unwrap();
    assert_eq!(
        r,
        Request::WriteSingle {
            address: 1,
            value: 3
        }
    );
    assert_eq!(req_frame(1, &r), bytes);
}

#[test]
fn fc16_request() {
    let bytes = [
        0x11, 0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02, 0xC6, 0xF0,
    ];
    let r = Request::parse(&bytes[1..11]).unwrap();
    let Request::WriteMultiple { start, values } = r else {
        panic!("{r:?}")
    };
    assert_eq!(start, 1);
    assert_eq!(values.iter().collect::<Vec<_>>(), [0x000A, 0x0102]);
    assert_eq!(values, Words::Native(&[0x000A, 0x0102]));
    assert_eq!(req_frame(0x11, &r), bytes);
    // From the Terra AC driver's 32-bit limit write.
    let abb_req = abb::Request::WriteTwo {
        address: 0x4100,
        values: [0, 16000],
    };
    let f = req_frame(1, &Request::from(&abb_req));
    assert_eq!(
        &f[..11],
        &[
            0x01, 0x10, 0x41, 0x00, 0x00, 0x02, 0x04, 0x00, 0x00, 0x3E, 0x80
        ]
    );
}

#[test]
fn malformed_requests() {
    use PduError::*;
    let cases: &[(&[u8], PduError)] = &[
        (&[], Empty),
        (&[0x03, 0x00, 0x00, 0x00], Length),
        (&[0x03, 0x00, 0x00, 0x00, 0x01, 0x00], Length),
        (&[0x03, 0x00, 0x00, 0x00, 0x00], Quantity),
        (&[0x03, 0x00, 0x00, 0x00, 0x7E], Quantity),
        (&[0x04, 0x00, 0x00, 0x00, 0x00], Quantity),
        (&[0x04, 0x00, 0x00, 0xFF, 0xFF], Quantity),
        (&[0x06, 0x00, 0x00, 0x00], Length),
        (&[0x06, 0x00, 0x00, 0x00, 0x00, 0x00], Length),
        (&[0x10, 0x00, 0x00, 0x00, 0x01], Length),
        (&[0x10, 0x00, 0x00, 0x00, 0x00, 0x00], Quantity),
        (&[0x10, 0x00, 0x00, 0x00, 0x7C, 0xF8], Quantity),
        (&[0x10, 0x00, 0x00, 0x00, 0x01, 0x04, 0, 0, 0, 0], ByteCount),
        (&[0x10, 0x00, 0x00, 0x00, 0x02, 0x02, 0, 0], ByteCount),
        (&[0x10, 0x00, 0x00, 0x00, 0x02, 0x04, 0, 0, 0], Length),
        (&[0x10, 0x00, 0x00, 0x00, 0x01, 0x02, 0, 0, 0], Length),
        (&[0x05, 0x00, 0x00, 0xFF, 0x00], UnsupportedFunction(5)),
        (&[0x01], UnsupportedFunction(1)),
        (&[0x83, 0x02], UnsupportedFunction(0x83)),
    ];
    for (pdu, err) in cases {
        assert_eq!(Request::parse(pdu), Err(*err), "{pdu:02X?}");
    }
    // The quantity limits themselves parse.
    assert!(Request::parse(&[0x03, 0x00, 0x00, 0x00, 125]).is_ok());
    let mut max = vec![0x10, 0x00, 0x00, 0x00, 123, 246];
    max.resize(6 + 246, 0);
    assert!(Request::parse(&max).is_ok());
    assert_eq!(
        PduError::UnsupportedFunction(5).exception(),
        Exception::IllegalFunction
    );
    assert_eq!(PduError::ByteCount.exception(), Exception::IllegalDataValue);
}

#[test]
fn emit_refuses_what_parse_refuses() {
    let mut out = [0u8; MAX_ADU];
    let zero = Request::ReadHolding {
        start: 0,
        quantity: 0,
    };
    assert_eq!(zero.emit(&mut out), Err(PduError::Quantity));
    let too_many = [0u16; 124];
    let r = Request::WriteMultiple {
        start: 0,
        values: Words::Native(&too_many),
    };
    assert_eq!(r.emit(&mut out), Err(PduError::Quantity));
    let ok = Request::ReadHolding {
        start: 0,
        quantity: 1,
    };
    assert_eq!(
        ok.emit_frame(1, &mut out[..7]),
        Err(PduError::BufferTooSmall)
    );
    assert_eq!(ok.emit(&mut out[..4]), Err(PduError::BufferTooSmall));
    assert_eq!(ok.emit_frame(1, &mut []), Err(PduError::BufferTooSmall));
    assert_eq!(ok.emit_frame(1, &mut out[..8]), Ok(8));
    let e = Response::Exception {
        function: 0x83,
        code: 2,
    };
    assert_eq!(e.emit(&mut out), Err(PduError::UnsupportedFunction(0x83)));
}

// ---------------------------------------------------------------- responses

#[test]
fn known_responses() {
    let read = [
        0x11, 0x03, 0x06, 0xAE, 0x41, 0x56, 0x52, 0x43, 0x40, 0x49, 0xAD,
    ];
    let r = Response::parse(Frame::new_checked(&read).unwrap().pdu()).unwrap();
    assert_eq!(
        r,
        Response::ReadHolding(Words::Native(&[0xAE41, 0x5652, 0x4340]))
    );
    assert_eq!(resp_frame(0x11, &r), read);

    let input = Response::ReadInput(Words::Native(&[0x000A]));
    let f = resp_frame(0x11, &input);
    assert_eq!(&f[..5], &[0x11, 0x04, 0x02, 0x00, 0x0A]);
    assert_eq!(Response::parse(&f[1..5]), Ok(input));

    let w6 = [0x01, 0x06, 0x00, 0x01, 0x00, 0x03, 0x98, 0x0B];
    assert_eq!(
        Response::parse(&w6[1..6]),
        Ok(Response::WriteSingle {
            address: 1,
            value: 3
        })
    );
    let w16 = [0x11, 0x10, 0x00, 0x01, 0x00, 0x02, 0x12, 0x98];
    let r = Response::parse(&w16[1..6]).unwrap();
    assert_eq!(
        r,
        Response::WriteMultiple {
            start: 1,
            quantity: 2
        }
    );
    assert_eq!(resp_frame(0x11, &r), w16);
    let ex = [0x0A, 0x81, 0x02, 0xB0, 0x53];
    let r = Response::parse(&ex[1..3]).unwrap();
    assert_eq!(
        r,
        Response::Exception {
            function: 1,
            code: 2
        }
    );
    assert_eq!(r.function(), 0x81);
    assert_eq!(resp_frame(0x0A, &r), ex);
}

#[test]
fn malformed_responses() {
    use PduError::*;
    let mut big = vec![0x03, 252];
    big.resize(2 + 252, 0);
    let cases: &[(&[u8], PduError)] = &[
        (&[], Empty),
        (&[0x03], Length),
        (&[0x03, 0x00], ByteCount),
        (&[0x03, 0x01, 0x00], ByteCount),
        (&[0x04, 0x03, 0x00, 0x00, 0x00], ByteCount),
        (&big, ByteCount),
        (&[0x03, 0x02, 0x00], Length),
        (&[0x03, 0x02, 0x00, 0x00, 0x00], Length),
        (&[0x06, 0x00, 0x01, 0x00], Length),
        (&[0x10, 0x00, 0x01, 0x00, 0x00], Quantity),
        (&[0x10, 0x00, 0x01, 0x00, 0x7C], Quantity),
        (&[0x10, 0x00, 0x01, 0x00, 0x01, 0x00], Length),
        (&[0x83], Length),
        (&[0x83, 0x02, 0x00], Length),
        (&[0x80, 0x01], UnsupportedFunction(0x80)),
        (&[0x05, 0x00, 0x00, 0xFF, 0x00], UnsupportedFunction(5)),
    ];
    for (pdu, err) in cases {
        assert_eq!(Response::parse(pdu), Err(*err), "{pdu:02X?}");
    }
}

// ---------------------------------------------------------------- server

fn map() -> RegisterMap {
    RegisterMap::new(Config::default())
}

fn serve_bytes(map: &mut RegisterMap, frame: &[u8]) -> (ServerAction, Vec<u8>) {
    let mut out = [0u8; MAX_ADU];
    let action = serve(map, UNIT, frame, &mut out);
    let reply = match action {
        ServerAction::Reply { len, .. } => out[..len].to_vec(),
        _ => Vec::new(),
    };
    (action, reply)
}

fn exception_frame(function: u8, code: u8) -> Vec<u8> {
    with_crc(&[UNIT, function | 0x80, code])
}

#[test]
fn server_reads_defaults_1000_to_1022() {
    let mut m = map();
    let req = req_frame(
        UNIT,
        &Request::ReadHolding {
            start: 1000,
            quantity: 23,
        },
    );
    let (action, reply) = serve_bytes(&mut m, &req);
    assert!(matches!(
        action,
        ServerAction::Reply {
            exception: None,
            ..
        }
    ));
    let f = Frame::new_checked(&reply).unwrap();
    assert_eq!((f.unit(), f.function(), f.pdu()[1]), (UNIT, 3, 46));
    let Ok(Response::ReadHolding(words)) = Response::parse(f.pdu()) else {
        panic!("{reply:02X?}")
    };
    let got: Vec<u16> = words.iter().collect();
    let mut expected = [0u16; 23];
    m.read(1000, &mut expected).unwrap();
    assert_eq!(got, expected);
    // Hand-checked defaults: cap = charger max, no telegram yet, settings.
    assert_eq!(got[0], 16000, "1000 override cap");
    assert_eq!(got[4], 65535, "1004 seconds since telegram");
    assert_eq!(&got[5..10], &[0; 5], "1005-1009 reserved");
    assert_eq!(&got[10..13], &[16000, 3, 24000], "1010-1012");
    assert_eq!(got[22], 30, "1022 fallback time");
    // FC 04 mirrors FC 03.
    let req4 = req_frame(
        UNIT,
        &Request::ReadInput {
            start: 1000,
            quantity: 23,
        },
    );
    let (_, reply4) = serve_bytes(&mut m, &req4);
    assert_eq!(reply4[1], 4);
    assert_eq!(reply4[2..reply4.len() - 2], reply[2..reply.len() - 2]);
}

#[test]
fn server_exceptions() {
    let mut m = map();
    // Invalid value (phases = 2) → 03.
    let (a, reply) = serve_bytes(
        &mut m,
        &req_frame(
            UNIT,
            &Request::WriteSingle {
                address: 1011,
                value: 2,
            },
        ),
    );
    assert_eq!(reply, exception_frame(6, 3));
    assert!(matches!(
        a,
        ServerAction::Reply {
            exception: Some(Exception::IllegalDataValue),
            ..
        }
    ));
    // Read-only (1001) → 02, by FC 06 and FC 16.
    let (_, reply) = serve_bytes(
        &mut m,
        &req_frame(
            UNIT,
            &Request::WriteSingle {
                address: 1001,
                value: 1,
            },
        ),
    );
    assert_eq!(reply, exception_frame(6, 2));
    let (_, reply) = serve_bytes(
        &mut m,
        &req_frame(
            UNIT,
            &Request::WriteMultiple {
                start: 1000,
                values: Words::Native(&[100, 200]),
            },
        ),
    );
    assert_eq!(reply, exception_frame(16, 2));
    // Read outside the map → 02.
    let (_, reply) = serve_bytes(
        &mut m,
        &req_frame(
            UNIT,
            &Request::ReadHolding {
                start: 0,
                quantity: 10,
            },
        ),
    );
    assert_eq!(reply, exception_frame(3, 2));
    // FC 05 → 01 (hand-checked frame).
    let fc05 = [0x0A, 0x05, 0x03, 0xE8, 0xFF, 0x00, 0x0D, 0x31];
    let (_, reply) = serve_bytes(&mut m, &fc05);
    assert_eq!(reply, exception_frame(5, 1));
    // Well-framed but malformed requests → 03.
    for pdu in [
        &[0x03, 0x03, 0xE8, 0x00, 0x00][..],
        &[0x03, 0x03, 0xE8, 0x00, 0x7E],
        &[0x10, 0x03, 0xE8, 0x00, 0x01, 0x04, 0, 0, 0, 0],
        &[0x10, 0x03, 0xE8, 0x00, 0x00, 0x00],
        &[0x06, 0x03, 0xE8, 0x00],
    ] {
        let mut frame = vec![UNIT];
        frame.extend_from_slice(pdu);
        let (_, reply) = serve_bytes(&mut m, &with_crc(&frame));
        assert_eq!(reply, exception_frame(pdu[0], 3), "{pdu:02X?}");
    }
    assert_eq!(m, map(), "refused requests change nothing");
}

#[test]
fn server_silences_and_forwards() {
    let mut m = map();
    let good = req_frame(
        UNIT,
        &Request::ReadHolding {
            start: 1000,
            quantity: 1,
        },
    );
    let mut bad = good.clone();
    bad[7] ^= 1;
    let (a, r) = serve_bytes(&mut m, &bad);
    assert!(matches!(
        a,
        ServerAction::Ignored(Ignored::Frame(FrameError::BadCrc { .. }))
    ));
    assert!(r.is_empty());
    let (a, _) = serve_bytes(&mut m, &good[..3]);
    assert_eq!(
        a,
        ServerAction::Ignored(Ignored::Frame(FrameError::TooShort))
    );
    let other = req_frame(
        11,
        &Request::ReadHolding {
            start: 1000,
            quantity: 1,
        },
    );
    assert_eq!(
        serve_bytes(&mut m, &other).0,
        ServerAction::NotForUs { unit: 11 }
    );
    // A reply (exception bit) addressed to us is not a request.
    let (a, _) = serve_bytes(&mut m, &with_crc(&[UNIT, 0x83, 0x02]));
    assert_eq!(a, ServerAction::Ignored(Ignored::NotARequest(0x83)));
    let (a, _) = serve_bytes(&mut m, &with_crc(&[UNIT, 0x00, 0x02]));
    assert_eq!(a, ServerAction::Ignored(Ignored::NotARequest(0)));
}

#[test]
fn server_broadcast_writes_apply_without_reply() {
    let mut m = map();
    let mut out = [0xEEu8; MAX_ADU];
    let w = req_frame(
        BROADCAST,
        &Request::WriteMultiple {
            start: 1000,
            values: Words::Native(&[9000]),
        },
    );
    let a = serve(&mut m, UNIT, &w, &mut out);
    let ServerAction::Broadcast(Ok(outcome)) = a else {
        panic!("{a:?}")
    };
    assert_eq!(outcome.cap_ma, Some(9000));
    assert_eq!(m.cap_ma(), 9000);
    assert!(out.iter().all(|&b| b == 0xEE), "nothing written to out");
    let w6 = req_frame(
        BROADCAST,
        &Request::WriteSingle {
            address: 1013,
            value: 7,
        },
    );
    assert!(matches!(
        serve(&mut m, UNIT, &w6, &mut out),
        ServerAction::Broadcast(Ok(_))
    ));
    assert_eq!(m.staged().get(address::ALARM_WAIT), Some(7));
    // Broadcast read, or refused write: silence too.
    let r = req_frame(
        BROADCAST,
        &Request::ReadHolding {
            start: 1000,
            quantity: 1,
        },
    );
    assert_eq!(
        serve(&mut m, UNIT, &r, &mut out),
        ServerAction::Broadcast(Err(Exception::IllegalFunction))
    );
    let bad = req_frame(
        BROADCAST,
        &Request::WriteSingle {
            address: 1001,
            value: 7,
        },
    );
    assert_eq!(
        serve(&mut m, UNIT, &bad, &mut out),
        ServerAction::Broadcast(Err(Exception::IllegalDataAddress))
    );
    assert!(out.iter().all(|&b| b == 0xEE));
}

#[test]
fn server_save_and_address_change_reach_the_caller() {
    let mut m = map();
    let w = req_frame(
        UNIT,
        &Request::WriteMultiple {
            start: 1090,
            values: Words::Native(&[42, 1]),
        },
    );
    let (a, reply) = serve_bytes(&mut m, &w);
    let ServerAction::Reply {
        outcome,
        exception: None,
        ..
    } = a
    else {
        panic!("{a:?}")
    };
    let save = outcome.save.expect("save");
    assert_eq!(save.new_server_address, Some(42));
    assert_eq!(reply, with_crc(&[UNIT, 0x10, 0x04, 0x42, 0x00, 0x02]));
    // The save failed: the driver answers 04 instead.
    let mut out = [0u8; MAX_ADU];
    let n = exception_reply(UNIT, 0x10, Exception::ServerDeviceFailure, &mut out);
    assert_eq!(out[..n], exception_frame(0x10, 4));
}

// ---------------------------------------------------------------- framers

#[test]
fn line_timing() {
    let l = LineConfig::new(9600, Parity::Even, 1);
    assert_eq!(l.bits_per_char(), 11);
    assert_eq!(l.char_time(), Duration::from_micros(1146)); // 11 / 9600 s = 1145.8 µs
    assert_eq!(l.silence(), Duration::from_micros(4011)); // 3.5 × 1145.8 = 4010.4 µs
    assert_eq!(
        LineConfig::new(9600, Parity::None, 1).silence(),
        Duration::from_micros(3646)
    );
    assert_eq!(
        LineConfig::new(9600, Parity::None, 2).silence(),
        Duration::from_micros(4011)
    );
    assert_eq!(
        LineConfig::new(19200, Parity::Even, 1).silence(),
        Duration::from_micros(2006)
    );
    assert_eq!(
        LineConfig::new(19201, Parity::Even, 1).silence(),
        Duration::from_micros(1750)
    );
    assert_eq!(
        LineConfig::new(115200, Parity::None, 1).silence(),
        Duration::from_micros(1750)
    );
    assert_eq!(
        LineConfig::new(0, Parity::None, 1).silence(),
        Duration::from_micros(35_000_000)
    );
}

/// Feeds `bytes` one at a time, `char_us` apart from `t0`; returns the frames and the
/// time of the last byte.
fn feed_bytes(
    f: &mut SilenceFramer,
    t0: u64,
    char_us: u64,
    bytes: &[u8],
    frames: &mut Vec<Vec<u8>>,
) -> u64 {
    let mut t = t0;
    for &b in bytes {
        loop {
            let (used, got) = f.feed(us(t), &[b]);
            if let Some(fr) = got {
                frames.push(fr.to_vec());
            }
            if used == 1 {
                break;
            }
        }
        t += char_us;
    }
    t - char_us
}

fn silence_framer_case(line: LineConfig) {
    let mut f = SilenceFramer::<MAX_ADU>::new(line);
    let c = line.char_time().total_micros();
    let s = line.silence().total_micros();
    let a = req_frame(
        1,
        &Request::ReadHolding {
            start: 0,
            quantity: 10,
        },
    );
    let b = with_crc(&[1, 6, 0, 1, 0, 3]);
    let mut frames = Vec::new();
    let end_a = feed_bytes(&mut f, 1_000, c, &a, &mut frames);
    assert!(frames.is_empty());
    assert_eq!(f.deadline(), Some(us(end_a + s)));
    assert_eq!(f.poll(us(end_a + s - 1)), None, "not yet silent");
    // The next frame starts exactly 3.5 characters later: the first frame ends.
    let end_b = feed_bytes(&mut f, end_a + s, c, &b, &mut frames);
    assert_eq!(frames, vec![a.clone()]);
    assert_eq!(f.poll(us(end_b + s)).map(<[u8]>::to_vec), Some(b.clone()));
    assert_eq!(f.poll(us(end_b + 10 * s)), None, "yielded once");
    // A gap just under 3.5 characters does not split a frame.
    let mut frames = Vec::new();
    let t = end_b + 10 * s;
    let end = feed_bytes(&mut f, t, c, &a[..4], &mut frames);
    let end = feed_bytes(&mut f, end + s - 1, c, &a[4..], &mut frames);
    assert!(frames.is_empty());
    assert_eq!(f.poll(us(end + s)).map(<[u8]>::to_vec), Some(a.clone()));
    // Chunks stamped with their last byte's time work the same.
    let t = end + 10 * s;
    assert_eq!(f.feed(us(t), &a[..5]), (5, None));
    assert_eq!(f.feed(us(t + 3 * c), &a[5..]), (3, None));
    let t2 = t + 3 * c + s + 7 * c;
    assert_eq!(f.feed(us(t2), &b).1.map(<[u8]>::to_vec), Some(a.clone()));
    assert_eq!(f.feed(us(t2), &b), (8, None));
    assert_eq!(f.poll(us(t2 + s)).map(<[u8]>::to_vec), Some(b));
    assert_eq!(f.stats().frames, 5);
}

#[test]
fn silence_framer_9600() {
    silence_framer_case(LineConfig::new(9600, Parity::Even, 1));
}

#[test]
fn silence_framer_115200() {
    let line = LineConfig::new(115_200, Parity::None, 1);
    assert_eq!(line.char_time(), Duration::from_micros(87));
    silence_framer_case(line);
}

#[test]
fn silence_framer_overflow_and_short() {
    let mut f = SilenceFramer::<MAX_ADU>::with_times(
        Duration::from_micros(100),
        Duration::from_micros(350),
    );
    let noise = [0x55u8; 300];
    assert_eq!(f.feed(us(0), &noise), (300, None));
    assert_eq!(
        f.poll(us(1000)),
        None,
        "an overflowed frame is dropped whole"
    );
    assert_eq!(f.stats().overflows, 1);
    assert_eq!(f.feed(us(2000), &[1, 2, 3]), (3, None));
    assert_eq!(f.poll(us(3000)), None);
    assert_eq!(f.stats().short, 1);
    // And then a good frame goes through.
    let a = with_crc(&[1, 6, 0, 1, 0, 3]);
    f.feed(us(4000), &a);
    assert_eq!(f.poll(us(5000)).map(<[u8]>::to_vec), Some(a));
}

fn length_frames(f: &mut LengthFramer, now: u64, mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let (used, got) = f.feed(us(now), bytes);
        if let Some(fr) = got {
            out.push(fr.to_vec());
        }
        bytes = &bytes[used..];
        if bytes.is_empty() && used == 0 || bytes.is_empty() && out.is_empty() {
            break;
        }
        if bytes.is_empty() {
            break;
        }
    }
    out
}

#[test]
fn length_framer_resyncs_after_garbage() {
    let a = req_frame(
        UNIT,
        &Request::ReadHolding {
            start: 1000,
            quantity: 23,
        },
    );
    let b = req_frame(
        UNIT,
        &Request::WriteMultiple {
            start: 1000,
            values: Words::Native(&[1, 2, 3]),
        },
    );
    let mut stream = vec![0xFF, 0x00, 0x13, 0x37, 0x03, 0xAA];
    stream.extend_from_slice(&a);
    stream.extend_from_slice(&[0x0A, 0x03, 0x99]);
    stream.extend_from_slice(&b);
    let mut f = LengthFramer::<MAX_ADU>::new(Direction::Requests, Duration::from_micros(10_000));
    let frames = length_frames(&mut f, 0, &stream);
    assert_eq!(frames, vec![a.clone(), b.clone()]);
    assert!(f.stats().dropped_bytes >= 9);
    // Byte by byte: the same.
    let mut f = LengthFramer::<MAX_ADU>::new(Direction::Requests, Duration::from_micros(10_000));
    let mut frames = Vec::new();
    for byte in &stream {
        frames.extend(length_frames(&mut f, 0, std::slice::from_ref(byte)));
    }
    assert_eq!(frames, vec![a.clone(), b.clone()]);
}

#[test]
fn length_framer_idle_timeout_gives_up_a_false_start() {
    // Garbage that looks like the start of a long FC 16 request, then a good request.
    let a = req_frame(
        UNIT,
        &Request::ReadHolding {
            start: 1000,
            quantity: 1,
        },
    );
    let mut stream = vec![0x0A, 0x10, 0x03, 0xE8, 0x00, 0x30, 0x60];
    stream.extend_from_slice(&a);
    let mut f = LengthFramer::<MAX_ADU>::new(Direction::Requests, Duration::from_micros(5_000));
    assert!(
        length_frames(&mut f, 0, &stream).is_empty(),
        "waits for 105 bytes"
    );
    assert_eq!(f.deadline(), Some(us(5_000)));
    assert_eq!(f.poll(us(4_999)), None);
    assert_eq!(f.poll(us(5_000)).map(<[u8]>::to_vec), Some(a.clone()));
    assert_eq!(f.buffered(), 0);
    assert_eq!(f.stats().idle_resyncs, 1);
    // A partial frame left over is dropped at the timeout, and the next one is clean.
    assert!(length_frames(&mut f, 10_000, &a[..5]).is_empty());
    assert_eq!(length_frames(&mut f, 20_000, &a), vec![a.clone()]);
}

#[test]
fn length_framer_responses() {
    let read = [
        0x11, 0x03, 0x06, 0xAE, 0x41, 0x56, 0x52, 0x43, 0x40, 0x49, 0xAD,
    ];
    let ex = [0x0A, 0x81, 0x02, 0xB0, 0x53];
    let mut stream = vec![0x00];
    stream.extend_from_slice(&ex);
    stream.extend_from_slice(&read);
    let mut f = LengthFramer::<MAX_ADU>::new(Direction::Responses, Duration::from_micros(5_000));
    assert_eq!(
        length_frames(&mut f, 0, &stream),
        vec![ex.to_vec(), read.to_vec()]
    );
}

// ---------------------------------------------------------------- client

fn cfg() -> ClientConfig {
    ClientConfig {
        response_timeout: Duration::from_millis(100),
        retries: 2,
        idle: Duration::from_millis(5),
    }
}

/// The client's reply, owned.
#[derive(Debug, PartialEq)]
enum Got {
    Registers(Vec<u16>),
    Written,
    Exception(u8),
    NoReply,
    Invalid(ResponseError),
}

fn result(c: &mut Client, now: u64) -> Option<Got> {
    c.poll_result(us(now)).map(|r| match r {
        Reply::Registers(r) => Got::Registers(r.to_vec()),
        Reply::Written => Got::Written,
        Reply::Exception(e) => Got::Exception(e),
        Reply::NoReply => Got::NoReply,
        Reply::Invalid(e) => Got::Invalid(e),
    })
}

#[test]
fn client_read_against_the_server() {
    let mut m = map();
    let mut c = Client::new(cfg());
    let req = abb::Request::Read {
        start: 1000,
        len: 23,
    };
    c.start(UNIT, &Request::from(&req)).unwrap();
    assert_eq!(c.start(UNIT, &Request::from(&req)), Err(StartError::Busy));
    let sent = c.poll_transmit(us(0)).unwrap().to_vec();
    assert_eq!(c.poll_transmit(us(0)), None, "sent once");
    let mut out = [0u8; MAX_ADU];
    let ServerAction::Reply { len, .. } = serve(&mut m, UNIT, &sent, &mut out) else {
        panic!()
    };
    // In two chunks, through the stream framer.
    c.on_bytes(us(1_000), &out[..3]);
    assert_eq!(c.poll_result(us(1_000)), None);
    c.on_bytes(us(2_000), &out[3..len]);
    let mut expected = [0u16; 23];
    m.read(1000, &mut expected).unwrap();
    let reply = c.poll_result(us(2_000)).unwrap();
    assert_eq!(reply, Reply::Registers(&expected));
    assert_eq!(reply.outcome(), abb::Outcome::Ok(&expected));
    assert!(c.is_idle());
    // A write, then an exception reply.
    let w = abb::Request::WriteOne {
        address: 1011,
        value: 2,
    };
    c.start(UNIT, &Request::from(&w)).unwrap();
    let sent = c.poll_transmit(us(3_000)).unwrap().to_vec();
    let ServerAction::Reply { len, .. } = serve(&mut m, UNIT, &sent, &mut out) else {
        panic!()
    };
    c.on_frame(us(4_000), &out[..len]);
    let r = c.poll_result(us(4_000)).unwrap();
    assert_eq!(r, Reply::Exception(3));
    assert_eq!(r.outcome(), abb::Outcome::Exception(3));
    let w = abb::Request::WriteTwo {
        address: 1015,
        values: [20000, 2],
    };
    c.start(UNIT, &Request::from(&w)).unwrap();
    let sent = c.poll_transmit(us(5_000)).unwrap().to_vec();
    let ServerAction::Reply { len, .. } = serve(&mut m, UNIT, &sent, &mut out) else {
        panic!()
    };
    c.on_frame(us(6_000), &out[..len]);
    assert_eq!(
        c.poll_result(us(6_000)).unwrap().outcome(),
        abb::Outcome::Ok(&[])
    );
    assert_eq!(m.staged().get(address::UPPER_CURRENT), Some(20000));
}

#[test]
fn client_timeout_and_retries() {
    let mut c = Client::new(cfg());
    c.start(
        1,
        &Request::ReadHolding {
            start: 0,
            quantity: 10,
        },
    )
    .unwrap();
    let mut sends = Vec::new();
    let mut now = 0;
    loop {
        if let Some(f) = c.poll_transmit(us(now)) {
            sends.push((now, f.to_vec()));
        }
        if let Some(r) = result(&mut c, now) {
            assert_eq!(r, Got::NoReply);
            break;
        }
        now = c.poll_timeout().unwrap().total_micros();
    }
    assert_eq!(sends.len(), 3, "first attempt and 2 retries");
    assert_eq!(
        sends.iter().map(|s| s.0).collect::<Vec<_>>(),
        [0, 100_000, 200_000]
    );
    assert!(
        sends
            .iter()
            .all(|s| s.1 == [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD])
    );
    assert_eq!(now, 300_000);
    assert_eq!(c.stats().timeouts, 3);
    assert_eq!(c.stats().retries, 2);
    assert!(c.is_idle() && c.poll_timeout().is_none());

    // A reply after one timeout is taken.
    c.start(
        1,
        &Request::WriteSingle {
            address: 1,
            value: 3,
        },
    )
    .unwrap();
    c.poll_transmit(us(0)).unwrap();
    assert_eq!(c.poll_transmit(us(99_999)), None);
    assert!(c.poll_transmit(us(100_000)).is_some(), "retry");
    c.on_frame(
        us(150_000),
        &[0x01, 0x06, 0x00, 0x01, 0x00, 0x03, 0x98, 0x0B],
    );
    assert_eq!(result(&mut c, 150_000), Some(Got::Written));
}

#[test]
fn client_validation() {
    let read10 = Request::ReadHolding {
        start: 0,
        quantity: 10,
    };
    let setup = |retries: u8| {
        let mut c = Client::new(ClientConfig { retries, ..cfg() });
        c.start(1, &read10).unwrap();
        c.poll_transmit(us(0)).unwrap();
        c
    };
    // Ignored, the wait goes on: bad CRC, other unit, the request's echo, garbage.
    let mut c = setup(0);
    let good = resp_frame(1, &Response::ReadHolding(Words::Native(&[7; 10])));
    let mut bad = good.clone();
    bad[3] ^= 0xFF;
    c.on_frame(us(10), &bad);
    c.on_frame(
        us(20),
        &resp_frame(2, &Response::ReadHolding(Words::Native(&[7; 10]))),
    );
    c.on_frame(us(30), &[0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD]);
    c.on_bytes(us(40), &[0xFF, 0x00, 0x12]);
    assert_eq!(result(&mut c, 50), None);
    let s = c.stats();
    assert_eq!((s.bad_frames, s.other_unit, s.echoes), (1, 1, 1));
    c.on_bytes(us(60), &good);
    assert_eq!(result(&mut c, 60), Some(Got::Registers(vec![7; 10])));

    // Refused: wrong quantity, wrong function, exception of another function, bad echo.
    let cases: Vec<(Request<'static>, Vec<u8>, ResponseError)> = vec![
        (
            read10,
            resp_frame(1, &Response::ReadHolding(Words::Native(&[7; 9]))),
            ResponseError::QuantityMismatch {
                expected: 10,
                got: 9,
            },
        ),
        (
            read10,
            resp_frame(1, &Response::ReadInput(Words::Native(&[7; 10]))),
            ResponseError::FunctionMismatch {
                expected: 3,
                got: 4,
            },
        ),
        (
            read10,
            resp_frame(
                1,
                &Response::Exception {
                    function: 4,
                    code: 2,
                },
            ),
            ResponseError::FunctionMismatch {
                expected: 3,
                got: 0x84,
            },
        ),
        (
            read10,
            with_crc(&[1, 3, 0]),
            ResponseError::Pdu(PduError::ByteCount),
        ),
        (
            Request::WriteSingle {
                address: 1,
                value: 3,
            },
            resp_frame(
                1,
                &Response::WriteSingle {
                    address: 1,
                    value: 4,
                },
            ),
            ResponseError::EchoMismatch,
        ),
        (
            Request::WriteMultiple {
                start: 1,
                values: Words::Native(&[1, 2]),
            },
            resp_frame(
                1,
                &Response::WriteMultiple {
                    start: 1,
                    quantity: 1,
                },
            ),
            ResponseError::EchoMismatch,
        ),
        (
            Request::WriteMultiple {
                start: 1,
                values: Words::Native(&[1, 2]),
            },
            resp_frame(
                1,
                &Response::WriteMultiple {
                    start: 2,
                    quantity: 2,
                },
            ),
            ResponseError::EchoMismatch,
        ),
    ];
    for (req, reply, err) in cases {
        let mut c = Client::new(ClientConfig {
            retries: 1,
            ..cfg()
        });
        c.start(1, &req).unwrap();
        c.poll_transmit(us(0)).unwrap();
        c.on_frame(us(10), &reply);
        assert_eq!(result(&mut c, 10), None, "retried");
        assert!(c.poll_transmit(us(10)).is_some(), "retry at once");
        c.on_frame(us(20), &reply);
        assert_eq!(result(&mut c, 20), Some(Got::Invalid(err)), "{reply:02X?}");
        assert_eq!(c.stats().invalid, 2);
    }
    // Exception decoding.
    let mut c = setup(0);
    c.on_frame(us(10), &with_crc(&[1, 0x83, 0x02]));
    let r = c.poll_result(us(10)).unwrap();
    assert_eq!(r, Reply::Exception(2));
    // Nothing outstanding: counted, ignored.
    c.on_frame(us(10), &good);
    assert_eq!(c.stats().unexpected, 1);
    assert_eq!(c.poll_result(us(10)), None);
}

#[test]
fn client_broadcast_and_invalid_start() {
    let mut c = Client::new(cfg());
    c.start(
        BROADCAST,
        &Request::WriteSingle {
            address: 1000,
            value: 6000,
        },
    )
    .unwrap();
    assert!(c.poll_transmit(us(0)).is_some());
    assert_eq!(result(&mut c, 0), Some(Got::Written));
    assert_eq!(
        c.start(
            1,
            &Request::ReadHolding {
                start: 0,
                quantity: 126
            }
        ),
        Err(StartError::Invalid(PduError::Quantity))
    );
    assert!(c.is_idle());
    c.start(
        1,
        &Request::ReadHolding {
            start: 0,
            quantity: 1,
        },
    )
    .unwrap();
    c.cancel();
    assert!(c.is_idle() && c.poll_transmit(us(0)).is_none());
}

// ---------------------------------------------------------------- properties

fn any_request() -> impl Strategy<Value = (u8, u16, u16, Vec<u16>)> {
    (
        0u8..4,
        any::<u16>(),
        1u16..=125,
        prop::collection::vec(any::<u16>(), 1..=123),
    )
}

fn build<'a>(kind: u8, start: u16, quantity: u16, values: &'a [u16]) -> Request<'a> {
    match kind {
        0 => Request::ReadHolding { start, quantity },
        1 => Request::ReadInput { start, quantity },
        2 => Request::WriteSingle {
            address: start,
            value: quantity,
        },
        _ => Request::WriteMultiple {
            start,
            values: Words::Native(values),
        },
    }
}

/// Every reply a server sends is a good frame from `UNIT` that parses.
fn check_reply(action: &ServerAction, out: &[u8; MAX_ADU]) {
    if let ServerAction::Reply { len, exception, .. } = *action {
        let f = Frame::new_checked(&out[..len]).expect("reply is a good frame");
        assert_eq!(f.unit(), UNIT);
        let r = Response::parse(f.pdu()).expect("reply parses");
        assert_eq!(matches!(r, Response::Exception { .. }), exception.is_some());
    }
}

proptest! {
    #[test]
    fn request_round_trip((kind, start, quantity, values) in any_request(), unit: u8) {
        let req = build(kind, start, quantity, &values);
        let frame = req_frame(unit, &req);
        let f = Frame::new_checked(&frame).unwrap();
        prop_assert_eq!(f.unit(), unit);
        prop_assert_eq!(Request::parse(f.pdu()), Ok(req));
    }

    #[test]
    fn response_round_trip(kind in 0u8..5, a: u16, b in 1u16..=123, values in prop::collection::vec(any::<u16>(), 1..=125), function in 1u8..0x80, code: u8) {
        let resp = match kind {
            0 => Response::ReadHolding(Words::Native(&values)),
            1 => Response::ReadInput(Words::Native(&values)),
            2 => Response::WriteSingle { address: a, value: b },
            3 => Response::WriteMultiple { start: a, quantity: b },
            _ => Response::Exception { function, code },
        };
        let frame = resp_frame(7, &resp);
        let f = Frame::new_checked(&frame).unwrap();
        prop_assert_eq!(Response::parse(f.pdu()), Ok(resp));
    }

    #[test]
    fn parsers_total(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Request::parse(&bytes);
        let _ = Response::parse(&bytes);
        if let Ok(f) = Frame::new_checked(&bytes) {
            let _ = (f.unit(), f.function(), f.pdu(), f.crc());
        }
        // What parses re-emits to the same bytes.
        let mut out = [0u8; 300];
        if let Ok(r) = Request::parse(&bytes) {
            let n = r.emit(&mut out).unwrap();
            prop_assert_eq!(&out[..n], &bytes[..]);
        }
        if let Ok(r) = Response::parse(&bytes) {
            let n = r.emit(&mut out).unwrap();
            prop_assert_eq!(&out[..n], &bytes[..]);
        }
    }

    #[test]
    fn server_on_arbitrary_frames(pdu in prop::collection::vec(any::<u8>(), 0..260), unit in prop::sample::select(vec![0u8, UNIT, 11])) {
        let mut m = map();
        let mut frame = vec![unit];
        frame.extend_from_slice(&pdu);
        let good = with_crc(&frame);
        let mut out = [0u8; MAX_ADU];
        for bytes in [&frame[..], &good[..]] {
            let a = serve(&mut m, UNIT, bytes, &mut out);
            check_reply(&a, &out);
        }
    }

    #[test]
    fn server_on_random_requests((kind, start, quantity, values) in any_request(), near in any::<bool>()) {
        let start = if near { 990 + start % 220 } else { start };
        let req = build(kind, start, quantity, &values);
        let frame = req_frame(UNIT, &req);
        let mut m = map();
        let mut out = [0u8; MAX_ADU];
        let a = serve(&mut m, UNIT, &frame, &mut out);
        check_reply(&a, &out);
        let replied = matches!(a, ServerAction::Reply { .. });
        prop_assert!(replied);
    }

    #[test]
    fn framers_never_panic(chunks in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..40), 0u64..10_000), 0..40)) {
        let mut s = SilenceFramer::<MAX_ADU>::new(LineConfig::new(9600, Parity::Even, 1));
        let mut l = LengthFramer::<MAX_ADU>::new(Direction::Requests, Duration::from_micros(5_000));
        let mut r = LengthFramer::<32>::new(Direction::Responses, Duration::from_micros(5_000));
        let mut m = map();
        let mut out = [0u8; MAX_ADU];
        let mut now = 0u64;
        for (bytes, dt) in &chunks {
            now += dt;
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let (used, frame) = s.feed(us(now), rest);
                if let Some(f) = frame {
                    prop_assert!(f.len() >= MIN_ADU && f.len() <= MAX_ADU);
                    let f = f.to_vec();
                    let a = serve(&mut m, UNIT, &f, &mut out);
                    check_reply(&a, &out);
                }
                rest = &rest[used..];
            }
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let (used, frame) = l.feed(us(now), rest);
                if let Some(f) = frame {
                    prop_assert!(crc_ok(f));
                }
                rest = &rest[used..];
            }
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let (used, frame) = r.feed(us(now), rest);
                if let Some(f) = frame {
                    prop_assert!(crc_ok(f) && f.len() <= 32);
                }
                rest = &rest[used..];
            }
            let _ = (s.poll(us(now)), l.poll(us(now)), r.poll(us(now)));
        }
    }

    #[test]
    fn client_never_panics(chunks in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..40), 0u64..60_000, any::<bool>()), 0..40), kind in 0u8..4, start: u16, quantity in 1u16..=125) {
        let values = [quantity; 2];
        let req = build(kind, start, quantity, &values);
        let mut c = Client::new(cfg());
        let mut now = 0;
        c.start(1, &req).unwrap();
        for (bytes, dt, whole) in &chunks {
            now += dt;
            let _ = c.poll_transmit(us(now));
            if *whole { c.on_frame(us(now), bytes) } else { c.on_bytes(us(now), bytes) }
            if let Some(r) = c.poll_result(us(now)) {
                if let Reply::Registers(regs) = r {
                    prop_assert_eq!(regs.len(), usize::from(quantity));
                }
                c.start(1, &req).unwrap();
            }
        }
    }

    /// The client and the server agree, whatever the request.
    #[test]
    fn client_server_loopback((kind, start, quantity, values) in any_request()) {
        let start = 990 + start % 220;
        let req = build(kind, start, quantity, &values);
        let mut m = map();
        let mut reference = map();
        let mut c = Client::new(cfg());
        c.start(UNIT, &req).unwrap();
        let sent = c.poll_transmit(us(0)).unwrap().to_vec();
        let mut out = [0u8; MAX_ADU];
        let ServerAction::Reply { len, .. } = serve(&mut m, UNIT, &sent, &mut out) else {
            panic!()
        };
        c.on_bytes(us(10), &out[..len]);
        let got = result(&mut c, 10).unwrap();
        let expected = match req {
            Request::ReadHolding { start, quantity } | Request::ReadInput { start, quantity } => {
                let mut regs = vec![0; usize::from(quantity)];
                match reference.read(start, &mut regs) {
                    Ok(()) => Got::Registers(regs),
                    Err(e) => Got::Exception(e.code()),
                }
            }
            Request::WriteSingle { address, value } => match reference.write(address, &[value]) {
                Ok(_) => Got::Written,
                Err(e) => Got::Exception(e.code()),
            },
            Request::WriteMultiple { start, values } => {
                match reference.write(start, &values.iter().collect::<Vec<_>>()) {
                    Ok(_) => Got::Written,
                    Err(e) => Got::Exception(e.code()),
                }
            }
        };
        prop_assert_eq!(got, expected);
        prop_assert_eq!(m, reference);
    }
}
