//! The core's RTU codec against tokio-modbus 0.17, an independent implementation.
//!
//! - Forward: tokio-modbus's RTU client, over `tokio::io::duplex`, against OUR server
//!   (a task that reads the duplex, frames with our `LengthFramer`, serves a
//!   `RegisterMap` and writes the replies). Random FC 03/04/06/16 requests — addresses
//!   in and out of 1000–1199, quantities in and out of the limits, random values — get
//!   the reply tokio-modbus expects: the values or the exception that the same request
//!   gets from a `RegisterMap` called directly, and both maps end up equal.
//! - Reverse: OUR client against tokio-modbus's RTU server. tokio-modbus's plain RTU
//!   server only takes a `tokio_serial::SerialStream` (no duplex), so this uses its
//!   RTU-over-TCP server (same `ServerCodec`, same request/response loop) on
//!   127.0.0.1. Every reply our client parses matches what the tokio-modbus service
//!   answered.

use std::collections::HashMap;
use std::future::Ready;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use p1lb::rtu_io::Clock;
use p1lb_core::config::Config;
use p1lb_core::modbus::{
    Client, ClientConfig, Direction, LengthFramer, MAX_ADU, Reply, Request as OurRequest, Words,
};
use p1lb_core::registers::RegisterMap;
use p1lb_core::server::{ServerAction, serve};
use p1lb_core::time::Duration as CoreDuration;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_modbus::prelude::*;
use tokio_modbus::{ExceptionCode, Request as TmRequest, Response as TmResponse};

/// Our server's address (the default of register 1090).
const UNIT: u8 = 10;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

// ---------------------------------------------------------------- forward

/// Our server on one end of a duplex: until EOF; returns the map.
async fn our_server(mut io: DuplexStream, mut map: RegisterMap) -> RegisterMap {
    let mut framer =
        LengthFramer::<MAX_ADU>::new(Direction::Requests, CoreDuration::from_millis(50));
    let mut buf = [0u8; 512];
    let mut out = [0u8; MAX_ADU];
    let clock = Clock::new();
    loop {
        let n = match io.read(&mut buf).await {
            Ok(0) | Err(_) => return map,
            Ok(n) => n,
        };
        let now = clock.now();
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (used, frame) = framer.feed(now, rest);
            if let Some(frame) = frame {
                let frame = frame.to_vec();
                if let ServerAction::Reply { len, .. } = serve(&mut map, UNIT, &frame, &mut out) {
                    io.write_all(&out[..len]).await.expect("write reply");
                }
            }
            rest = &rest[used..];
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    ReadHolding(u16, u16),
    ReadInput(u16, u16),
    WriteSingle(u16, u16),
    WriteMultiple(u16, Vec<u16>),
}

/// What a request returns: the registers, a write confirmation, or an exception code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Registers(Vec<u16>),
    Written,
    Exception(u8),
}

fn address() -> impl Strategy<Value = u16> {
    prop_oneof![3 => 990u16..1210, 1 => any::<u16>()]
}

/// Values that are often valid for the settings, sometimes not.
fn value() -> impl Strategy<Value = u16> {
    prop_oneof![
        2 => Just(1u16),
        2 => 0u16..=3,
        2 => 5000u16..30000,
        1 => any::<u16>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (address(), 0u16..=130).prop_map(|(a, n)| Op::ReadHolding(a, n)),
        (address(), 0u16..=130).prop_map(|(a, n)| Op::ReadInput(a, n)),
        (address(), value()).prop_map(|(a, v)| Op::WriteSingle(a, v)),
        (address(), prop::collection::vec(value(), 0..=123))
            .prop_map(|(a, v)| Op::WriteMultiple(a, v)),
    ]
}

/// The same request on a map, directly.
fn reference(map: &mut RegisterMap, op: &Op) -> Got {
    let done = |r: Result<(), p1lb_core::registers::Exception>| match r {
        Ok(()) => Got::Written,
        Err(e) => Got::Exception(e.code()),
    };
    match op {
        Op::ReadHolding(a, n) | Op::ReadInput(a, n) => {
            let mut regs = vec![0; usize::from(*n)];
            match map.read(*a, &mut regs) {
                Ok(()) => Got::Registers(regs),
                Err(e) => Got::Exception(e.code()),
            }
        }
        Op::WriteSingle(a, v) => done(map.write(*a, &[*v]).map(|_| ())),
        Op::WriteMultiple(a, v) => done(map.write(*a, v).map(|_| ())),
    }
}

async fn tokio_modbus_call(ctx: &mut client::Context, op: &Op) -> Got {
    let call = async {
        match op {
            Op::ReadHolding(a, n) => ctx
                .read_holding_registers(*a, *n)
                .await
                .map(|r| r.map(Got::Registers)),
            Op::ReadInput(a, n) => ctx
                .read_input_registers(*a, *n)
                .await
                .map(|r| r.map(Got::Registers)),
            Op::WriteSingle(a, v) => ctx
                .write_single_register(*a, *v)
                .await
                .map(|r| r.map(|()| Got::Written)),
            Op::WriteMultiple(a, v) => ctx
                .write_multiple_registers(*a, v)
                .await
                .map(|r| r.map(|()| Got::Written)),
        }
    };
    match tokio::time::timeout(Duration::from_secs(2), call).await {
        Err(_) => panic!("no reply to {op:?}"),
        Ok(Err(e)) => panic!("tokio-modbus refused our reply to {op:?}: {e}"),
        Ok(Ok(Ok(got))) => got,
        Ok(Ok(Err(code))) => Got::Exception(u8::from(code)),
    }
}

fn forward(ops: &[Op]) -> Result<(), TestCaseError> {
    let rt = runtime();
    rt.block_on(async {
        let (client_io, server_io) = tokio::io::duplex(4096);
        let server = tokio::spawn(our_server(server_io, RegisterMap::new(Config::default())));
        let mut ctx = client::rtu::attach_slave(client_io, Slave(UNIT));
        let mut map = RegisterMap::new(Config::default());
        for op in ops {
            let got = tokio_modbus_call(&mut ctx, op).await;
            let expected = reference(&mut map, op);
            prop_assert_eq!(got, expected, "{:?}", op);
        }
        drop(ctx);
        let served = server.await.expect("server task");
        prop_assert_eq!(served, map);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn tokio_modbus_client_against_our_server(ops in prop::collection::vec(op(), 1..12)) {
        forward(&ops)?;
    }
}

#[test]
fn tokio_modbus_client_hand_picked() {
    let ops = [
        Op::ReadHolding(1000, 23),
        Op::ReadInput(1000, 125),
        Op::ReadHolding(1075, 125),
        Op::ReadHolding(1076, 125),
        Op::ReadHolding(1000, 0),
        Op::ReadHolding(1000, 126),
        Op::ReadHolding(999, 1),
        Op::WriteSingle(1011, 2),
        Op::WriteSingle(1001, 1),
        Op::WriteSingle(1000, 9000),
        Op::WriteMultiple(1010, vec![20000, 1]),
        Op::WriteMultiple(1000, vec![]),
        Op::WriteMultiple(1077, vec![0; 123]),
        Op::WriteMultiple(1090, vec![42, 1]),
        Op::ReadHolding(1000, 1),
    ];
    forward(&ops).unwrap();
}

// ---------------------------------------------------------------- reverse

/// A tokio-modbus service: a device whose registers read `address ^ 0x5A5A` until
/// written; addresses from 0xF000 answer 02, the value 0xDEAD answers 03, other
/// function codes 01. It records what it answered last.
#[derive(Clone, Default)]
struct Device {
    regs: Arc<Mutex<HashMap<u16, u16>>>,
    last: Arc<Mutex<Option<Result<TmResponse, ExceptionCode>>>>,
}

impl Device {
    fn answer(&self, req: TmRequest<'static>) -> Result<TmResponse, ExceptionCode> {
        let mut regs = self.regs.lock().unwrap();
        let span_ok = |a: u16, n: usize| u32::from(a) + n as u32 <= 0xF000;
        match req {
            TmRequest::ReadHoldingRegisters(a, n) | TmRequest::ReadInputRegisters(a, n) => {
                if !span_ok(a, usize::from(n)) {
                    return Err(ExceptionCode::IllegalDataAddress);
                }
                let words = (a..a + n)
                    .map(|x| *regs.get(&x).unwrap_or(&(x ^ 0x5A5A)))
                    .collect();
                Ok(if matches!(req, TmRequest::ReadHoldingRegisters(..)) {
                    TmResponse::ReadHoldingRegisters(words)
                } else {
                    TmResponse::ReadInputRegisters(words)
                })
            }
            TmRequest::WriteSingleRegister(a, v) => {
                if !span_ok(a, 1) {
                    return Err(ExceptionCode::IllegalDataAddress);
                }
                if v == 0xDEAD {
                    return Err(ExceptionCode::IllegalDataValue);
                }
                regs.insert(a, v);
                Ok(TmResponse::WriteSingleRegister(a, v))
            }
            TmRequest::WriteMultipleRegisters(a, words) => {
                if !span_ok(a, words.len()) {
                    return Err(ExceptionCode::IllegalDataAddress);
                }
                if words.contains(&0xDEAD) {
                    return Err(ExceptionCode::IllegalDataValue);
                }
                for (x, w) in (a..).zip(words.iter()) {
                    regs.insert(x, *w);
                }
                Ok(TmResponse::WriteMultipleRegisters(a, words.len() as u16))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

impl tokio_modbus::server::Service for Device {
    type Request = TmRequest<'static>;
    type Response = TmResponse;
    type Exception = ExceptionCode;
    type Future = Ready<Result<TmResponse, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let result = self.answer(req);
        *self.last.lock().unwrap() = Some(result.clone());
        std::future::ready(result)
    }
}

/// Our client over a TCP stream: one exchange, driven by real time.
async fn our_exchange(
    stream: &mut TcpStream,
    client: &mut Client,
    unit: u8,
    req: &OurRequest<'_>,
) -> Option<Got> {
    client.start(unit, req).expect("start");
    let clock = Clock::new();
    let mut buf = [0u8; 512];
    loop {
        let now = clock.now();
        if let Some(frame) = client.poll_transmit(now).map(<[u8]>::to_vec) {
            stream.write_all(&frame).await.expect("send");
        }
        if let Some(r) = client.poll_result(now) {
            return match r {
                Reply::Registers(r) => Some(Got::Registers(r.to_vec())),
                Reply::Written => Some(Got::Written),
                Reply::Exception(c) => Some(Got::Exception(c)),
                Reply::NoReply | Reply::Invalid(_) => None,
            };
        }
        let wake = client.poll_timeout().unwrap_or(now);
        let wait = Duration::from(wake - now);
        if let Ok(read) = tokio::time::timeout(wait, stream.read(&mut buf)).await {
            let n = read.expect("read");
            assert!(n > 0, "server closed the connection");
            client.on_bytes(clock.now(), &buf[..n]);
        }
    }
}

fn their_answer(r: &Result<TmResponse, ExceptionCode>) -> Got {
    match r {
        Ok(TmResponse::ReadHoldingRegisters(w)) | Ok(TmResponse::ReadInputRegisters(w)) => {
            Got::Registers(w.clone())
        }
        Ok(TmResponse::WriteSingleRegister(..)) | Ok(TmResponse::WriteMultipleRegisters(..)) => {
            Got::Written
        }
        Ok(other) => panic!("unexpected {other:?}"),
        Err(code) => Got::Exception(u8::from(*code)),
    }
}

struct Reverse {
    rt: Runtime,
    device: Device,
    stream: TcpStream,
}

fn reverse_setup() -> Reverse {
    let rt = runtime();
    let device = Device::default();
    let stream = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio_modbus::server::rtu_over_tcp::Server::new(listener);
        let svc = device.clone();
        tokio::spawn(async move {
            let on_connected = move |stream: TcpStream, _addr| {
                let svc = svc.clone();
                async move { Ok(Some((svc, stream))) }
            };
            let _ = server
                .serve(&on_connected, |e| panic!("tokio-modbus server: {e}"))
                .await;
        });
        TcpStream::connect(addr).await.expect("connect")
    });
    Reverse { rt, device, stream }
}

#[derive(Debug, Clone)]
enum ClientOp {
    ReadHolding(u16, u16),
    ReadInput(u16, u16),
    WriteSingle(u16, u16),
    WriteMultiple(u16, Vec<u16>),
}

fn client_op() -> impl Strategy<Value = ClientOp> {
    let addr = prop_oneof![3 => any::<u16>(), 1 => 0xEF80u16..=0xF000];
    let word = prop_oneof![5 => any::<u16>(), 1 => Just(0xDEADu16)];
    prop_oneof![
        (addr.clone(), 1u16..=125).prop_map(|(a, n)| ClientOp::ReadHolding(a, n)),
        (addr.clone(), 1u16..=125).prop_map(|(a, n)| ClientOp::ReadInput(a, n)),
        (addr.clone(), word.clone()).prop_map(|(a, v)| ClientOp::WriteSingle(a, v)),
        (addr, prop::collection::vec(word, 1..=123))
            .prop_map(|(a, v)| ClientOp::WriteMultiple(a, v)),
    ]
}

fn reverse(r: &mut Reverse, unit: u8, op: &ClientOp) -> Result<(), TestCaseError> {
    let req = match op {
        ClientOp::ReadHolding(a, n) => OurRequest::ReadHolding {
            start: *a,
            quantity: *n,
        },
        ClientOp::ReadInput(a, n) => OurRequest::ReadInput {
            start: *a,
            quantity: *n,
        },
        ClientOp::WriteSingle(a, v) => OurRequest::WriteSingle {
            address: *a,
            value: *v,
        },
        ClientOp::WriteMultiple(a, v) => OurRequest::WriteMultiple {
            start: *a,
            values: Words::Native(v),
        },
    };
    let mut client = Client::new(ClientConfig {
        response_timeout: CoreDuration::from_secs(2),
        retries: 0,
        idle: CoreDuration::from_millis(200),
    });
    *r.device.last.lock().unwrap() = None;
    let got =
        r.rt.block_on(our_exchange(&mut r.stream, &mut client, unit, &req));
    let sent = r.device.last.lock().unwrap().take();
    let sent = sent.expect("tokio-modbus served the request");
    prop_assert_eq!(got, Some(their_answer(&sent)), "{:?}", op);
    Ok(())
}

#[test]
fn our_client_against_tokio_modbus_server() {
    let r = std::cell::RefCell::new(reverse_setup());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(512));
    runner
        .run(&(client_op(), 1u8..=247), |(op, unit)| {
            reverse(&mut r.borrow_mut(), unit, &op)
        })
        .unwrap();
}

#[test]
fn our_client_against_tokio_modbus_server_hand_picked() {
    let mut r = reverse_setup();
    for op in [
        ClientOp::ReadHolding(0, 125),
        ClientOp::ReadInput(0xEFFF, 1),
        ClientOp::ReadHolding(0xEFFF, 2),
        ClientOp::WriteSingle(5, 0xDEAD),
        ClientOp::WriteSingle(5, 7),
        ClientOp::ReadHolding(5, 1),
        ClientOp::WriteMultiple(0, vec![1; 123]),
        ClientOp::WriteMultiple(0xEF90, vec![1; 123]),
    ] {
        reverse(&mut r, 1, &op).unwrap();
    }
}
