//! The client side (master): one outstanding request at a time, without a port or a
//! clock (quinn-proto's shape). The driver moves bytes and time:
//!
//! 1. [`Client::start`] a request (the Terra AC driver's exchanges become one with
//!    `Request::from`, in `abb`);
//! 2. send what [`Client::poll_transmit`] returns;
//! 3. hand received bytes to [`Client::on_bytes`] (a stream: framed here by length
//!    and CRC) or whole frames to [`Client::on_frame`] (from a
//!    [`SilenceFramer`](super::SilenceFramer));
//! 4. wake at [`Client::poll_timeout`]; collect [`Client::poll_result`].
//!
//! A reply is accepted only from the addressed server, with the request's function,
//! the quantity asked for (read) or the echo of address and value / quantity
//! (write). Frames with a bad CRC, from other addresses or an exact echo of the
//! request (RS485 local echo; except FC 06, whose good reply *is* the echo) are
//! ignored and the wait goes on; a good frame from the server that fails validation
//! ends the attempt. An attempt without a valid reply in time is retried up to
//! [`ClientConfig::retries`] times. A broadcast (address 0) completes when sent.

use super::frame::{
    BROADCAST, Frame, MAX_ADU, MAX_READ_QUANTITY, PduError, Request, Response, WRITE_SINGLE,
};
use super::framer::{Direction, LengthFramer};
use crate::time::{Duration, Instant};

/// Timing and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// How long to wait for a reply after sending.
    pub response_timeout: Duration,
    /// Attempts after the first one.
    pub retries: u8,
    /// [`Client::on_bytes`]: held bytes are given up after this long without more.
    pub idle: Duration,
}

impl Default for ClientConfig {
    /// 500 ms, 2 retries, 20 ms idle.
    fn default() -> Self {
        ClientConfig {
            response_timeout: Duration::from_millis(500),
            retries: 2,
            idle: Duration::from_millis(20),
        }
    }
}

/// Why a reply from the addressed server was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// The PDU does not parse.
    Pdu(PduError),
    /// A function code (or an exception's function) other than the request's.
    FunctionMismatch {
        /// The request's function code.
        expected: u8,
        /// The reply's.
        got: u8,
    },
    /// A read reply with another number of registers than asked for.
    QuantityMismatch {
        /// Registers asked for.
        expected: u16,
        /// Registers in the reply.
        got: u16,
    },
    /// A write reply whose address, value or quantity differs from the request.
    EchoMismatch,
}

/// Why [`Client::start`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    /// A request is outstanding, or its result not collected.
    Busy,
    /// The request cannot be emitted (quantity).
    Invalid(PduError),
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// A read's registers.
    Registers(&'a [u16]),
    /// A write was confirmed (or a broadcast was sent).
    Written,
    /// An exception reply with this code.
    Exception(u8),
    /// No reply in time, after the retries.
    NoReply,
    /// The last attempt got a reply that failed validation, after the retries.
    Invalid(ResponseError),
}

impl<'a> Reply<'a> {
    /// As the Terra AC driver takes it (an invalid reply counts as none).
    pub fn outcome(&self) -> Outcome<'a> {
        match *self {
            Reply::Registers(r) => Outcome::Ok(r),
            Reply::Written => Outcome::Ok(&[]),
            Reply::Exception(c) => Outcome::Exception(c),
            Reply::NoReply | Reply::Invalid(_) => Outcome::NoReply,
        }
    }
}

/// Counters. Saturating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Frames sent (first attempts and retries).
    pub sent: u32,
    /// Retries.
    pub retries: u32,
    /// Attempts that timed out.
    pub timeouts: u32,
    /// Received bytes that were not a frame (length, CRC).
    pub bad_frames: u32,
    /// Good frames for other addresses.
    pub other_unit: u32,
    /// Exact echoes of the request, ignored.
    pub echoes: u32,
    /// Replies that failed validation.
    pub invalid: u32,
    /// Frames received with no request waiting.
    pub unexpected: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Registers(usize),
    Written,
    Exception(u8),
    NoReply,
    Invalid(ResponseError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Send,
    Wait { deadline: Instant },
    Done(Done),
}

fn inc(c: &mut u32) {
    *c = c.saturating_add(1);
}

/// The client. See the module documentation.
#[derive(Debug, Clone)]
pub struct Client {
    cfg: ClientConfig,
    state: State,
    tx: [u8; MAX_ADU],
    tx_len: usize,
    attempts: u8,
    regs: [u16; MAX_READ_QUANTITY as usize],
    rx: LengthFramer<MAX_ADU>,
    stats: ClientStats,
}

impl Client {
    /// An idle client.
    pub fn new(cfg: ClientConfig) -> Self {
        Client {
            cfg,
            state: State::Idle,
            tx: [0; MAX_ADU],
            tx_len: 0,
            attempts: 0,
            regs: [0; MAX_READ_QUANTITY as usize],
            rx: LengthFramer::new(Direction::Responses, cfg.idle),
            stats: ClientStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// True when [`start`](Self::start) would take a request.
    pub fn is_idle(&self) -> bool {
        self.state == State::Idle
    }

    /// Starts `request` to server `unit` (0: broadcast, writes only make sense). It
    /// is sent at the next [`poll_transmit`](Self::poll_transmit).
    pub fn start(&mut self, unit: u8, request: &Request<'_>) -> Result<(), StartError> {
        if self.state != State::Idle {
            return Err(StartError::Busy);
        }
        self.tx_len = request
            .emit_frame(unit, &mut self.tx)
            .map_err(StartError::Invalid)?;
        self.attempts = 0;
        self.state = State::Send;
        Ok(())
    }

    /// Gives up the outstanding request and any uncollected result.
    pub fn cancel(&mut self) {
        self.state = State::Idle;
        self.rx.clear();
    }

    fn unit(&self) -> u8 {
        self.tx[0]
    }

    fn handle_time(&mut self, now: Instant) {
        // Frames found behind garbage at the stream framer's idle timeout: all of them
        // now, so that the idle deadline is not left in the past (a caller sleeping
        // until `poll_timeout` would spin). Each poll takes at least one byte.
        let mut frame = [0u8; MAX_ADU];
        for _ in 0..MAX_ADU {
            let found = self.rx.poll(now).map(|f| {
                frame[..f.len()].copy_from_slice(f);
                f.len()
            });
            match found {
                Some(n) => self.handle_frame(&frame[..n]),
                None => break,
            }
        }
        if let State::Wait { deadline } = self.state {
            if now >= deadline {
                inc(&mut self.stats.timeouts);
                self.fail_attempt(None);
            }
        }
    }

    fn fail_attempt(&mut self, error: Option<ResponseError>) {
        if self.attempts <= self.cfg.retries {
            inc(&mut self.stats.retries);
            self.state = State::Send;
        } else {
            self.state = State::Done(match error {
                Some(e) => Done::Invalid(e),
                None => Done::NoReply,
            });
        }
    }

    /// The frame to send now, if any (once per attempt). Waiting for the reply
    /// starts now.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<&[u8]> {
        self.handle_time(now);
        if self.state != State::Send {
            return None;
        }
        self.attempts = self.attempts.saturating_add(1);
        inc(&mut self.stats.sent);
        self.rx.clear();
        self.state = if self.unit() == BROADCAST {
            State::Done(Done::Written)
        } else {
            State::Wait {
                deadline: now + self.cfg.response_timeout,
            }
        };
        self.tx.get(..self.tx_len)
    }

    /// When to call back at the latest, if anything is pending: the response timeout
    /// or the stream framer's idle timeout; 0 when a frame is to be sent or a result
    /// collected at once.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Wait { deadline } => Some(match self.rx.deadline() {
                Some(idle) => idle.min(deadline),
                None => deadline,
            }),
            State::Send | State::Done(_) => Some(Instant::ZERO),
            State::Idle => None,
        }
    }

    /// Bytes received at `now` from a stream: framed by length and CRC.
    pub fn on_bytes(&mut self, now: Instant, mut bytes: &[u8]) {
        self.handle_time(now);
        let mut frame = [0u8; MAX_ADU];
        loop {
            let (used, got) = self.rx.feed(now, bytes);
            let len = got.map(|f| {
                frame[..f.len()].copy_from_slice(f);
                f.len()
            });
            bytes = bytes.get(used..).unwrap_or(&[]);
            match len {
                Some(n) => self.handle_frame(&frame[..n]),
                None => break,
            }
        }
    }

    /// A whole frame received at `now` (from a silence framer).
    pub fn on_frame(&mut self, now: Instant, frame: &[u8]) {
        self.handle_time(now);
        self.handle_frame(frame);
    }

    fn handle_frame(&mut self, bytes: &[u8]) {
        if !matches!(self.state, State::Wait { .. }) {
            inc(&mut self.stats.unexpected);
            return;
        }
        let Ok(frame) = Frame::new_checked(bytes) else {
            inc(&mut self.stats.bad_frames);
            return;
        };
        if frame.unit() != self.unit() {
            inc(&mut self.stats.other_unit);
            return;
        }
        let sent = self.tx.get(..self.tx_len).unwrap_or(&[]);
        if bytes == sent && frame.function() != WRITE_SINGLE {
            inc(&mut self.stats.echoes);
            return;
        }
        match self.validate(frame.pdu()) {
            Ok(done) => self.state = State::Done(done),
            Err(e) => {
                inc(&mut self.stats.invalid);
                self.fail_attempt(Some(e));
            }
        }
    }

    fn validate(&mut self, pdu: &[u8]) -> Result<Done, ResponseError> {
        let sent = self.tx.get(1..self.tx_len.saturating_sub(2)).unwrap_or(&[]);
        let request = Request::parse(sent).map_err(ResponseError::Pdu)?;
        let response = Response::parse(pdu).map_err(ResponseError::Pdu)?;
        let expected = request.function();
        match (request, response) {
            (_, Response::Exception { function, code }) if function == expected => {
                Ok(Done::Exception(code))
            }
            (Request::ReadHolding { quantity, .. }, Response::ReadHolding(words))
            | (Request::ReadInput { quantity, .. }, Response::ReadInput(words)) => {
                let got = words.len() as u16;
                if got != quantity {
                    return Err(ResponseError::QuantityMismatch {
                        expected: quantity,
                        got,
                    });
                }
                Ok(Done::Registers(words.copy_to(&mut self.regs)))
            }
            (
                Request::WriteSingle { address, value },
                Response::WriteSingle {
                    address: a,
                    value: v,
                },
            ) => {
                if (a, v) == (address, value) {
                    Ok(Done::Written)
                } else {
                    Err(ResponseError::EchoMismatch)
                }
            }
            (
                Request::WriteMultiple { start, values },
                Response::WriteMultiple { start: s, quantity },
            ) => {
                if (s, usize::from(quantity)) == (start, values.len()) {
                    Ok(Done::Written)
                } else {
                    Err(ResponseError::EchoMismatch)
                }
            }
            (_, other) => Err(ResponseError::FunctionMismatch {
                expected,
                got: other.function(),
            }),
        }
    }

    /// The result of the request, once it has ended; the client is then idle.
    pub fn poll_result(&mut self, now: Instant) -> Option<Reply<'_>> {
        self.handle_time(now);
        let State::Done(done) = self.state else {
            return None;
        };
        self.state = State::Idle;
        Some(match done {
            Done::Registers(n) => Reply::Registers(self.regs.get(..n).unwrap_or(&[])),
            Done::Written => Reply::Written,
            Done::Exception(c) => Reply::Exception(c),
            Done::NoReply => Reply::NoReply,
            Done::Invalid(e) => Reply::Invalid(e),
        })
    }
}

/// How an exchange ended: what a [`Reply`] comes to for the one who asked (the Terra
/// AC driver takes it as is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// A good reply; for a read, the registers.
    Ok(&'a [u16]),
    /// An exception reply with this code.
    Exception(u8),
    /// No (valid) reply in time, after the client's retries.
    NoReply,
}
