//! The USB-to-RS485 gateway (firmware, `master` role): a request that arrives on the
//! USB Modbus port for another unit is sent on the RS485 bus when the bus is free, and
//! the reply goes back to the host.
//!
//! The bus has one [`Client`] and so one exchange at a time: the charger driver's
//! traffic and forwarded requests never interleave. [`Gateway::next_on_bus`] decides
//! who goes next — a waiting forwarded request first, since a host is waiting on it,
//! then the driver.
//!
//! - A forwarded request that gets no valid reply in time is answered with exception
//!   0x0B (gateway target device failed to respond).
//! - A broadcast (unit 0) write is applied locally by the caller (the server does that)
//!   and forwarded; nobody replies to a broadcast.
//! - One forwarded request at a time: another one arriving while one waits or is on the
//!   bus is answered with exception 06 (server device busy); hosts retry.
//!
//! Never panics: frames are checked before they are kept; replies are rebuilt from the
//! client's validated result.

use super::client::{Client, Reply, StartError};
use super::exception::Exception;
use super::frame::exception_reply;
use super::frame::{BROADCAST, Frame, MAX_ADU, Request, Response, Words};

/// Exception 0x0B: gateway target device failed to respond.
pub const GATEWAY_NO_RESPONSE: u8 = 0x0B;
/// Exception 06: server device busy.
pub const SERVER_BUSY: u8 = 0x06;

/// Who may use the bus now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// The bus is busy with an exchange.
    Busy,
    /// A forwarded request was started on the client.
    Forwarded,
    /// The bus is free for the driver.
    Driver,
}

/// What to do with a request for another unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// Queued for the bus; the reply comes from [`Gateway::on_reply`].
    Queued,
    /// Refused: answer the host with this frame (`len` bytes of the given buffer).
    Answer(usize),
    /// Not a request the gateway forwards (bad frame or function): no answer.
    Dropped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Empty,
    Waiting,
    OnBus,
}

/// The gateway state: at most one forwarded request.
#[derive(Debug, Clone)]
pub struct Gateway {
    frame: [u8; MAX_ADU],
    len: usize,
    slot: Slot,
}

impl Default for Gateway {
    fn default() -> Self {
        Self::new()
    }
}

impl Gateway {
    /// An idle gateway.
    pub const fn new() -> Self {
        Gateway {
            frame: [0; MAX_ADU],
            len: 0,
            slot: Slot::Empty,
        }
    }

    /// True while a forwarded request waits for the bus or is on it.
    pub fn is_busy(&self) -> bool {
        self.slot != Slot::Empty
    }

    /// A request frame from the host for a unit that is not ours. `answer` receives
    /// the reply to send at once when the request is refused.
    pub fn submit(&mut self, frame: &[u8], answer: &mut [u8; MAX_ADU]) -> Submitted {
        let Ok(f) = Frame::new_checked(frame) else {
            return Submitted::Dropped;
        };
        if let Err(e) = Request::parse(f.pdu()) {
            if f.unit() == BROADCAST {
                return Submitted::Dropped;
            }
            let len = exception_reply(f.unit(), f.function(), e.exception(), answer);
            return Submitted::Answer(len);
        }
        if self.slot != Slot::Empty {
            if f.unit() == BROADCAST {
                return Submitted::Dropped;
            }
            let busy = Response::Exception {
                function: f.function(),
                code: SERVER_BUSY,
            };
            return match busy.emit_frame(f.unit(), answer) {
                Ok(n) => Submitted::Answer(n),
                Err(_) => Submitted::Dropped,
            };
        }
        self.frame[..frame.len()].copy_from_slice(frame);
        self.len = frame.len();
        self.slot = Slot::Waiting;
        Submitted::Queued
    }

    /// Whose turn it is on the bus. When a forwarded request waits and the client is
    /// idle, it is started on `client` and [`Turn::Forwarded`] is returned.
    pub fn next_on_bus(&mut self, client: &mut Client) -> Turn {
        if !client.is_idle() {
            return Turn::Busy;
        }
        if self.slot != Slot::Waiting {
            return Turn::Driver;
        }
        let started = match Frame::new_checked(&self.frame[..self.len]) {
            Ok(f) => match Request::parse(f.pdu()) {
                Ok(req) => client.start(f.unit(), &req),
                Err(e) => Err(StartError::Invalid(e)),
            },
            Err(_) => Err(StartError::Busy),
        };
        match started {
            Ok(()) => {
                self.slot = Slot::OnBus;
                Turn::Forwarded
            }
            Err(StartError::Busy) => Turn::Busy,
            Err(StartError::Invalid(_)) => {
                // Checked at submit: cannot happen; drop it rather than block the bus.
                self.slot = Slot::Empty;
                Turn::Driver
            }
        }
    }

    /// The client's result for the forwarded request: the reply frame for the host
    /// in `out` (its length), or `None` for a broadcast (no reply).
    pub fn on_reply(&mut self, reply: Reply<'_>, out: &mut [u8; MAX_ADU]) -> Option<usize> {
        if self.slot != Slot::OnBus {
            return None;
        }
        self.slot = Slot::Empty;
        let f = Frame::new_checked(&self.frame[..self.len]).ok()?;
        let (unit, function) = (f.unit(), f.function());
        if unit == BROADCAST {
            return None;
        }
        let req = Request::parse(f.pdu()).ok()?;
        let response = match (reply, req) {
            (Reply::Registers(r), Request::ReadHolding { .. }) => {
                Response::ReadHolding(Words::Native(r))
            }
            (Reply::Registers(r), Request::ReadInput { .. }) => {
                Response::ReadInput(Words::Native(r))
            }
            (Reply::Written, Request::WriteSingle { address, value }) => {
                Response::WriteSingle { address, value }
            }
            (Reply::Written, Request::WriteMultiple { start, values }) => Response::WriteMultiple {
                start,
                quantity: u16::try_from(values.len()).unwrap_or(0),
            },
            (Reply::Exception(code), _) => Response::Exception { function, code },
            _ => Response::Exception {
                function,
                code: GATEWAY_NO_RESPONSE,
            },
        };
        match response.emit_frame(unit, out) {
            Ok(n) => Some(n),
            Err(_) => Some(exception_reply(
                unit,
                function,
                Exception::ServerDeviceFailure,
                out,
            )),
        }
    }
}
