//! The Modbus TCP → RS485 gateway of the `master` role: a Modbus TCP request for a
//! unit id other than the device's (1090, 0, 255) is turned into an RTU frame and
//! handed to the RS485 master task over a channel ([`Forward`]: the frame and a
//! oneshot for the reply). The master task queues it in the core's
//! [`Gateway`](p1lb_core::modbus::Gateway), which puts it on the bus between the
//! Terra AC driver's exchanges (never interleaved), and sends back the reply frame —
//! exception 0x0B when the target stays silent. The TCP side rebuilds the tokio-modbus
//! response from that frame.
//!
//! Without a master task (server role, or no RS485 port) there is no channel and the
//! TCP server answers 0x0B at once. A request that gets no answer from the master task
//! within [`FORWARD_TIMEOUT`] (the port is being reopened, say) answers 0x0B too. When
//! [`QUEUE`] requests already wait for the bus, another is answered 06 (server device
//! busy) at once, so that a client polling faster than the bus can carry learns it at
//! once instead of after a timeout. (06 rather than 0x0A, "gateway path unavailable":
//! the spec tells a client to retry 06 later, which is what a full queue needs; 0x0A
//! reads as misconfiguration. The core's gateway, which the firmware uses, answers the
//! same.) A request whose client already gave up is dropped when its turn comes, never
//! put on the bus; while the port is closed, every request is answered 0x0B at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use p1lb_core::bus_master::FORWARD_WAIT;

use p1lb_core::modbus::{Frame, MAX_ADU, Request as RtuRequest, Response as RtuResponse, Words};
use tokio::sync::{mpsc, oneshot};
use tokio_modbus::{ExceptionCode, Request, Response};

/// How long a forwarded request may wait for the bus: the core's gateway policy
/// ([`p1lb_core::bus_master::FORWARD_WAIT`], the firmware's too). Still queued then,
/// it is answered 0x0B and never sent; already on the bus, its exchange's result is
/// waited for (see [`forward`]).
pub const FORWARD_TIMEOUT: Duration = Duration::from_micros(FORWARD_WAIT.total_micros());

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

/// One forwarded request: its RTU frame (with CRC), where the reply frame goes, and
/// who has it: still queued, taken for the bus by the master task, or abandoned by
/// its client — decided once, by whichever side comes first.
#[derive(Debug)]
pub struct Forward {
    /// The request frame.
    pub frame: Vec<u8>,
    /// The reply frame; dropped without a reply: exception 0x0B.
    pub reply: oneshot::Sender<Vec<u8>>,
    state: Arc<AtomicU8>,
}

impl Forward {
    /// A request and the handle its client keeps.
    pub fn new(frame: Vec<u8>, reply: oneshot::Sender<Vec<u8>>) -> (Forward, Claim) {
        let state = Arc::new(AtomicU8::new(QUEUED));
        (
            Forward {
                frame,
                reply,
                state: state.clone(),
            },
            Claim(state),
        )
    }

    /// The master task takes it for the bus: false when its client gave up first (it
    /// must never go on the bus: a write would land after its client was told it
    /// failed).
    pub fn take(&self) -> bool {
        !self.reply.is_closed()
            && self
                .state
                .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }
}

/// The client's side of a [`Forward`]'s state.
#[derive(Debug)]
pub struct Claim(Arc<AtomicU8>);

impl Claim {
    /// The client gives up on the request: true when it was still queued (it will
    /// never go on the bus), false when the master task took it already (its result
    /// will come).
    pub fn abandon(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// What [`next_live`] found.
#[derive(Debug)]
pub enum Next {
    /// A request whose client still waits.
    Live(Forward),
    /// None queued now (abandoned ones were dropped).
    Empty,
    /// The channel is closed: nobody forwards any more.
    Closed,
}

/// The next request whose client still waits, if one is queued now, taken for the bus
/// (see [`Forward::take`]); abandoned ones are dropped.
pub fn next_live(rx: &mut GatewayRx) -> Next {
    loop {
        match rx.try_recv() {
            Ok(f) if !f.take() => {}
            Ok(f) => return Next::Live(f),
            Err(mpsc::error::TryRecvError::Empty) => return Next::Empty,
            Err(mpsc::error::TryRecvError::Disconnected) => return Next::Closed,
        }
    }
}

/// Waits `duration` (the RS485 port is closed: backoff before reopening), answering
/// every request that arrives meanwhile 0x0B at once (by dropping it).
pub async fn refuse_for(rx: Option<&mut GatewayRx>, duration: Duration) {
    let Some(rx) = rx else {
        tokio::time::sleep(duration).await;
        return;
    };
    let end = tokio::time::Instant::now() + duration;
    // What waited for the port is refused too.
    while let Next::Live(_) = next_live(rx) {}
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(end) => return,
            f = rx.recv() => {
                if f.is_none() {
                    // Nobody forwards any more.
                    tokio::time::sleep_until(end).await;
                    return;
                }
            }
        }
    }
}

/// The TCP side of the channel.
pub type GatewayTx = mpsc::Sender<Forward>;
/// The master task's side.
pub type GatewayRx = mpsc::Receiver<Forward>;

/// Forwarded requests that may wait for the bus (it carries one at a time, between the
/// Terra AC driver's exchanges).
pub const QUEUE: usize = 4;

/// A new channel ([`QUEUE`] requests may wait).
pub fn channel() -> (GatewayTx, GatewayRx) {
    mpsc::channel(QUEUE)
}

/// The RTU frame of `req` for `unit`: `Err` with the exception to answer when the
/// request is not one the gateway forwards.
pub fn request_frame(unit: u8, req: &Request<'_>) -> Result<Vec<u8>, ExceptionCode> {
    let rtu = match req {
        Request::ReadHoldingRegisters(start, quantity) => RtuRequest::ReadHolding {
            start: *start,
            quantity: *quantity,
        },
        Request::ReadInputRegisters(start, quantity) => RtuRequest::ReadInput {
            start: *start,
            quantity: *quantity,
        },
        Request::WriteSingleRegister(address, value) => RtuRequest::WriteSingle {
            address: *address,
            value: *value,
        },
        Request::WriteMultipleRegisters(start, values) => RtuRequest::WriteMultiple {
            start: *start,
            values: Words::Native(values),
        },
        _ => return Err(ExceptionCode::IllegalFunction),
    };
    let mut out = [0u8; MAX_ADU];
    let n = rtu
        .emit_frame(unit, &mut out)
        .map_err(|_| ExceptionCode::IllegalDataValue)?;
    Ok(out[..n].to_vec())
}

/// The tokio-modbus response of an RTU reply frame.
pub fn response_of(frame: &[u8]) -> Result<Response, ExceptionCode> {
    let f = Frame::new_checked(frame).map_err(|_| ExceptionCode::GatewayTargetDevice)?;
    let r = RtuResponse::parse(f.pdu()).map_err(|_| ExceptionCode::GatewayTargetDevice)?;
    Ok(match r {
        RtuResponse::ReadHolding(w) => Response::ReadHoldingRegisters(w.iter().collect()),
        RtuResponse::ReadInput(w) => Response::ReadInputRegisters(w.iter().collect()),
        RtuResponse::WriteSingle { address, value } => {
            Response::WriteSingleRegister(address, value)
        }
        RtuResponse::WriteMultiple { start, quantity } => {
            Response::WriteMultipleRegisters(start, quantity)
        }
        RtuResponse::Exception { code, .. } => return Err(ExceptionCode::new(code)),
    })
}

/// Forwards `req` for `unit` through the master task and waits for the reply: up to
/// [`FORWARD_TIMEOUT`] while it waits for the bus, then, once taken for the bus, up to
/// `exchange_limit` (the core's `forward_result_wait` on the line) for its
/// result.
pub async fn forward(
    tx: &GatewayTx,
    unit: u8,
    req: &Request<'_>,
    exchange_limit: Duration,
) -> Result<Response, ExceptionCode> {
    let frame = request_frame(unit, req)?;
    let (reply, mut rx) = oneshot::channel();
    let (forward, claim) = Forward::new(frame, reply);
    match tx.try_send(forward) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => return Err(ExceptionCode::ServerDeviceBusy),
        Err(mpsc::error::TrySendError::Closed(_)) => {
            return Err(ExceptionCode::GatewayTargetDevice);
        }
    }
    let reply = match tokio::time::timeout(FORWARD_TIMEOUT, &mut rx).await {
        Ok(r) => r.ok(),
        // Still queued: abandoned, never sent.
        Err(_) if claim.abandon() => None,
        // On the bus: its result comes (its retries would go out anyway).
        Err(_) => tokio::time::timeout(exchange_limit, rx)
            .await
            .ok()
            .and_then(Result::ok),
    };
    match reply {
        Some(frame) => response_of(&frame),
        None => Err(ExceptionCode::GatewayTargetDevice),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    const LIMIT: Duration = Duration::from_secs(3);

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once_and_a_closed_one_0x0b() {
        let (tx, mut rx) = channel();
        let req = Request::ReadHoldingRegisters(0x4000, 2);
        // QUEUE requests wait (nobody serves them yet).
        let waiting: Vec<_> = (0..QUEUE)
            .map(|_| {
                let tx = tx.clone();
                let req = req.clone();
                tokio::spawn(async move { forward(&tx, 1, &req, LIMIT).await })
            })
            .collect();
        while tx.capacity() > 0 {
            tokio::task::yield_now().await;
        }
        let started = tokio::time::Instant::now();
        assert_eq!(
            forward(&tx, 1, &req, LIMIT).await,
            Err(ExceptionCode::ServerDeviceBusy)
        );
        assert!(started.elapsed() < Duration::from_millis(100));
        // The master task answers the waiting ones: each gets its reply.
        let mut out = [0u8; MAX_ADU];
        let n = RtuResponse::ReadHolding(Words::Native(&[1, 2]))
            .emit_frame(1, &mut out)
            .unwrap();
        for _ in 0..QUEUE {
            let f = rx.recv().await.expect("a queued request");
            f.reply.send(out[..n].to_vec()).expect("the caller waits");
        }
        for w in waiting {
            assert_eq!(
                w.await.expect("joined"),
                Ok(Response::ReadHoldingRegisters(vec![1, 2]))
            );
        }
        drop(rx);
        assert_eq!(
            forward(&tx, 1, &req, LIMIT).await,
            Err(ExceptionCode::GatewayTargetDevice)
        );
    }

    #[tokio::test]
    async fn abandoned_requests_are_skipped_and_a_closed_port_refuses_at_once() {
        let (tx, mut rx) = channel();
        // One whose client went away, one whose client gave up on it, then one whose
        // client waits.
        let (reply, gone) = oneshot::channel();
        drop(gone);
        tx.try_send(Forward::new(vec![1], reply).0).unwrap();
        let (reply, _waits_in_vain) = oneshot::channel();
        let (f, claim) = Forward::new(vec![2], reply);
        tx.try_send(f).unwrap();
        assert!(claim.abandon(), "still queued: abandoned");
        let (reply, waits) = oneshot::channel();
        let (f, claim) = Forward::new(vec![3], reply);
        tx.try_send(f).unwrap();
        let Next::Live(f) = next_live(&mut rx) else {
            panic!("the live one");
        };
        assert_eq!(f.frame, vec![3]);
        assert!(!claim.abandon(), "taken for the bus: its result comes");
        assert!(matches!(next_live(&mut rx), Next::Empty));
        drop(f);
        assert!(waits.await.is_err(), "dropped: its client answers 0x0B");
        // While the port is closed, a request is answered 0x0B at once.
        let refusing = tokio::spawn(async move {
            refuse_for(Some(&mut rx), Duration::from_millis(500)).await;
            rx
        });
        let started = tokio::time::Instant::now();
        let req = Request::ReadHoldingRegisters(0x4000, 2);
        assert_eq!(
            forward(&tx, 1, &req, LIMIT).await,
            Err(ExceptionCode::GatewayTargetDevice)
        );
        assert!(started.elapsed() < Duration::from_millis(300));
        let mut rx = refusing.await.unwrap();
        drop(tx);
        assert!(matches!(next_live(&mut rx), Next::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_on_the_bus_is_waited_for_past_the_timeout_a_queued_one_is_not() {
        let (tx, mut rx) = channel();
        let req = Request::WriteSingleRegister(1, 2);
        let client = tokio::spawn({
            let (tx, req) = (tx.clone(), req.clone());
            async move { forward(&tx, 5, &req, LIMIT).await }
        });
        // The master task takes it for the bus; its exchange (a slow line, retries)
        // ends 6 s later, past FORWARD_TIMEOUT: the client still gets the reply.
        let f = loop {
            if let Next::Live(f) = next_live(&mut rx) {
                break f;
            }
            tokio::task::yield_now().await;
        };
        tokio::time::sleep(FORWARD_TIMEOUT + Duration::from_secs(1)).await;
        let mut out = [0u8; MAX_ADU];
        let n = RtuResponse::WriteSingle {
            address: 1,
            value: 2,
        }
        .emit_frame(5, &mut out)
        .unwrap();
        f.reply.send(out[..n].to_vec()).unwrap();
        assert_eq!(
            client.await.unwrap(),
            Ok(Response::WriteSingleRegister(1, 2))
        );
        // One whose turn does not come within FORWARD_TIMEOUT: 0x0B then, and it is
        // never taken for the bus afterwards.
        let started = tokio::time::Instant::now();
        assert_eq!(
            forward(&tx, 5, &req, LIMIT).await,
            Err(ExceptionCode::GatewayTargetDevice)
        );
        assert_eq!(started.elapsed(), FORWARD_TIMEOUT);
        assert!(matches!(next_live(&mut rx), Next::Empty));
    }

    #[test]
    fn requests_become_rtu_frames_and_replies_come_back() {
        let f = request_frame(1, &Request::ReadHoldingRegisters(0x4000, 0x25)).unwrap();
        assert_eq!(&f[..6], &[1, 3, 0x40, 0, 0, 0x25]);
        assert_eq!(f.len(), 8);
        let w = request_frame(
            2,
            &Request::WriteMultipleRegisters(0x4100, Cow::Owned(vec![0, 6000])),
        )
        .unwrap();
        assert_eq!(&w[..7], &[2, 0x10, 0x41, 0, 0, 2, 4]);
        assert_eq!(
            request_frame(1, &Request::ReadCoils(0, 1)),
            Err(ExceptionCode::IllegalFunction)
        );
        assert_eq!(
            request_frame(1, &Request::ReadHoldingRegisters(0, 0)),
            Err(ExceptionCode::IllegalDataValue)
        );
        let mut out = [0u8; MAX_ADU];
        let n = RtuResponse::ReadHolding(Words::Native(&[7, 8]))
            .emit_frame(1, &mut out)
            .unwrap();
        assert_eq!(
            response_of(&out[..n]),
            Ok(Response::ReadHoldingRegisters(vec![7, 8]))
        );
        let n = RtuResponse::Exception {
            function: 3,
            code: 0x0B,
        }
        .emit_frame(1, &mut out)
        .unwrap();
        assert_eq!(
            response_of(&out[..n]),
            Err(ExceptionCode::GatewayTargetDevice)
        );
        assert_eq!(
            response_of(&[1, 2, 3]),
            Err(ExceptionCode::GatewayTargetDevice)
        );
    }
}
