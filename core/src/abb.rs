//! The ABB Terra AC driver (`master` role): what to write to the charger and what to
//! read from it, and when — without a port or a clock (quinn-proto's shape).
//!
//! The driver owns the schedule; a Modbus client (tokio-modbus in the daemon, the
//! core's RTU client in the firmware) owns the bytes. The loop is:
//!
//! 1. [`TerraAc::poll_request`]`(now, sent_ma)` → the next [`Request`], if one is due;
//! 2. the client performs it (with its own response timeout and retries);
//! 3. [`TerraAc::on_response`]`(now, request, outcome)`;
//! 4. sleep until [`TerraAc::next_deadline`].
//!
//! What it does (abb-terra-ac.md):
//! - at start, and again whenever the charger looks rebooted (its read-back of our
//!   limit or fallback differs from what we wrote), writes the communication timeout
//!   (0x4106) and the fallback current (0x4109, [`DriverConfig::fallback_ma`] rounded
//!   down to whole amps: register 1021, or its share when several chargers fall back
//!   together, see [`crate::bus_master`]), so the charger falls back by itself if we die;
//! - writes the limit (0x4100) when the value to send changes and at least every
//!   refresh period (register 1033);
//! - reads the status block (0x4000–0x4024) every [`POLL`], well inside the
//!   communication timeout, into [`ChargerStatus`] (registers 1110–1114);
//! - three failed exchanges in a row raise "charger not answering" (1003 bit 2); an
//!   exception reply raises "charger answered with an exception" (1003 bit 3) until
//!   the next good exchange.
//!
//! One driver drives one charger and knows nothing of any other: with several chargers
//! on one bus, [`crate::bus_master`] runs one driver each, shares the bus among them and
//! gives each its share of the fallback limit.
//!
//! Never writes 0x4105 (stop) or 0x4103 (lock). Never panics.

use crate::modbus;
use crate::time::{Duration, Instant};

/// The status block read every poll: 0x4000 ..= 0x4024.
pub const STATUS_START: u16 = 0x4000;
/// Registers in the status block.
pub const STATUS_LEN: u16 = 0x25;
/// Set charging current limit, 0.001 A, two registers.
pub const REG_LIMIT: u16 = 0x4100;
/// Communication timeout, s.
pub const REG_TIMEOUT: u16 = 0x4106;
/// Fallback limit after the communication timeout, A.
pub const REG_FALLBACK: u16 = 0x4109;

/// How often the status block is read.
pub const POLL: Duration = Duration::from_secs(2);
/// The communication timeout we configure in the charger (0x4106): well above our
/// polling, short enough that the charger falls back soon if we die.
pub const COMM_TIMEOUT_S: u16 = 30;
/// The charger's read-back of our limit (0x4022) may differ from what it holds by its
/// rounding (whole amps at most): only a difference of this much means it was lost, mA.
pub const LIMIT_READBACK_TOLERANCE_MA: u32 = 1000;
/// Failed exchanges in a row before the charger counts as not answering.
pub const FAILURES_TO_FLAG: u8 = 3;
/// After a failure, wait this long before trying again.
pub const RETRY: Duration = Duration::from_secs(1);

/// One Modbus exchange the driver wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// FC 03 of `len` registers from `start`.
    Read {
        /// First register.
        start: u16,
        /// How many.
        len: u16,
    },
    /// FC 06: one register.
    WriteOne {
        /// The register.
        address: u16,
        /// Its value.
        value: u16,
    },
    /// FC 16: two registers, high word first (the 32-bit limit).
    WriteTwo {
        /// The first register.
        address: u16,
        /// The values, high word first.
        values: [u16; 2],
    },
}

pub use crate::modbus::Outcome;

/// What the charger reports (registers 1110–1114).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChargerStatus {
    /// Charging current L1–L3, mA (0x4010–0x4015).
    pub current_ma: [Option<u32>; 3],
    /// Charging state code (high byte of 0x400D, bits 0–6).
    pub state: Option<u8>,
    /// Error code (0x4008–0x4009), 0 = none.
    pub error: Option<u32>,
    /// The limit the charger applies (0x400E–0x400F), mA.
    pub applied_limit_ma: Option<u32>,
    /// When the block was read.
    pub read_at: Option<Instant>,
}

/// The driver's settings (from the register map).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConfig {
    /// The charger falls back to this (whole amps, rounded down) if we go silent:
    /// register 1021, divided among the chargers that fall back together on one bus
    /// (floor(1021 / n), [`crate::bus_master`]).
    pub fallback_ma: u32,
    /// Register 1033: the limit is re-sent at least this often.
    pub refresh_s: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// Timeout and fallback must be (re)written.
    WriteTimeout,
    WriteFallback,
    Done,
}

/// The driver. See the module documentation.
#[derive(Debug, Clone)]
pub struct TerraAc {
    cfg: DriverConfig,
    setup: Setup,
    /// The limit last written successfully, and when.
    written: Option<(u32, Instant)>,
    next_poll: Instant,
    /// No request before this (after a failure).
    hold_until: Instant,
    failures: u8,
    exception: bool,
    status: ChargerStatus,
}

impl TerraAc {
    /// A driver that starts by configuring the charger.
    pub fn new(cfg: DriverConfig, now: Instant) -> Self {
        TerraAc {
            cfg,
            setup: Setup::WriteTimeout,
            written: None,
            next_poll: now,
            hold_until: now,
            failures: 0,
            exception: false,
            status: ChargerStatus::default(),
        }
    }

    /// New settings (after a 1091 save): the fallback is written again.
    pub fn apply_config(&mut self, cfg: DriverConfig) {
        if cfg.fallback_ma / 1000 != self.cfg.fallback_ma / 1000 {
            self.setup = Setup::WriteTimeout;
        }
        self.cfg = cfg;
    }

    /// How often the limit is re-sent at least (register 1033, at least a second).
    fn refresh(&self) -> Duration {
        Duration::from_secs(u64::from(self.cfg.refresh_s.max(1)))
    }

    /// The fallback current as the charger takes it: whole amps, rounded down.
    pub fn fallback_amps(&self) -> u16 {
        u16::try_from(self.cfg.fallback_ma / 1000).unwrap_or(u16::MAX)
    }

    /// The next exchange due at `now`, given the value the balancer wants sent.
    pub fn poll_request(&self, now: Instant, sent_ma: u32) -> Option<Request> {
        if now < self.hold_until {
            return None;
        }
        match self.setup {
            Setup::WriteTimeout => {
                return Some(Request::WriteOne {
                    address: REG_TIMEOUT,
                    value: COMM_TIMEOUT_S,
                });
            }
            Setup::WriteFallback => {
                return Some(Request::WriteOne {
                    address: REG_FALLBACK,
                    value: self.fallback_amps(),
                });
            }
            Setup::Done => {}
        }
        let due = match self.written {
            None => true,
            Some((v, at)) => v != sent_ma || now - at >= self.refresh(),
        };
        if due {
            return Some(Request::WriteTwo {
                address: REG_LIMIT,
                values: [(sent_ma >> 16) as u16, (sent_ma & 0xFFFF) as u16],
            });
        }
        if now >= self.next_poll {
            return Some(Request::Read {
                start: STATUS_START,
                len: STATUS_LEN,
            });
        }
        None
    }

    /// When to ask [`poll_request`](Self::poll_request) again at the latest (a change
    /// of the value to send is due at once).
    pub fn next_deadline(&self) -> Instant {
        if self.setup != Setup::Done {
            return self.hold_until;
        }
        let refresh = match self.written {
            Some((_, at)) => at + self.refresh(),
            None => self.hold_until,
        };
        refresh.min(self.next_poll).max(self.hold_until)
    }

    /// The result of the exchange for `request`.
    pub fn on_response(&mut self, now: Instant, request: Request, outcome: Outcome<'_>) {
        match outcome {
            Outcome::NoReply => {
                self.failures = self.failures.saturating_add(1);
                self.hold_until = now + RETRY;
                return;
            }
            Outcome::Exception(_) => {
                self.failures = 0;
                self.exception = true;
                self.hold_until = now + RETRY;
                return;
            }
            Outcome::Ok(_) => {
                self.failures = 0;
                self.exception = false;
            }
        }
        match request {
            Request::WriteOne {
                address: REG_TIMEOUT,
                ..
            } => self.setup = Setup::WriteFallback,
            Request::WriteOne {
                address: REG_FALLBACK,
                ..
            } => {
                self.setup = Setup::Done;
                // A (re)configured charger gets the limit again at once.
                self.written = None;
            }
            Request::WriteTwo {
                address: REG_LIMIT,
                values,
            } => {
                let v = (u32::from(values[0]) << 16) | u32::from(values[1]);
                self.written = Some((v, now));
            }
            Request::Read { start, len } if start == STATUS_START && len == STATUS_LEN => {
                if let Outcome::Ok(regs) = outcome {
                    self.take_status(now, regs);
                }
                self.next_poll = now + POLL;
            }
            _ => {}
        }
    }

    fn take_status(&mut self, now: Instant, regs: &[u16]) {
        let word = |addr: u16| regs.get(usize::from(addr - STATUS_START)).copied();
        let long = |addr: u16| Some((u32::from(word(addr)?) << 16) | u32::from(word(addr + 1)?));
        self.status = ChargerStatus {
            current_ma: [long(0x4010), long(0x4012), long(0x4014)],
            state: word(0x400D).map(|w| ((w >> 8) & 0x7F) as u8),
            error: long(0x4008),
            applied_limit_ma: long(0x400E),
            read_at: Some(now),
        };
        // A rebooted charger reads back 32 A and fallback 256: configure it again. It
        // holds no more than its own maximum (0x4006, set by the installer) and may
        // round what it holds: only a read-back a whole step away from that is lost.
        let limit_back = long(0x4022);
        let fallback_back = word(0x4024);
        let rating = long(0x4006).filter(|&r| r > 0);
        let held = |v: u32| rating.map_or(v, |r| v.min(r));
        let limit_lost = matches!(
            (self.written, limit_back),
            (Some((v, _)), Some(b)) if held(v).abs_diff(b) >= LIMIT_READBACK_TOLERANCE_MA
        );
        let fallback_lost = fallback_back.is_some_and(|f| f != self.fallback_amps());
        if limit_lost || fallback_lost {
            self.setup = Setup::WriteTimeout;
        }
    }

    /// What the charger reported last.
    pub fn status(&self) -> &ChargerStatus {
        &self.status
    }

    /// 1003 bit 2: the last three exchanges (or more) failed.
    pub fn not_answering(&self) -> bool {
        self.failures >= FAILURES_TO_FLAG
    }

    /// 1003 bit 3: the last reply was an exception.
    pub fn exception(&self) -> bool {
        self.exception
    }

    /// The limit the charger last confirmed (our write), mA.
    pub fn written_ma(&self) -> Option<u32> {
        self.written.map(|(v, _)| v)
    }
}

impl<'a> From<&'a Request> for modbus::Request<'a> {
    /// The Terra AC driver's exchange as a request: reads are FC 03.
    fn from(r: &'a Request) -> Self {
        match r {
            Request::Read { start, len } => modbus::Request::ReadHolding {
                start: *start,
                quantity: *len,
            },
            Request::WriteOne { address, value } => modbus::Request::WriteSingle {
                address: *address,
                value: *value,
            },
            Request::WriteTwo { address, values } => modbus::Request::WriteMultiple {
                start: *address,
                values: modbus::Words::Native(values),
            },
        }
    }
}
