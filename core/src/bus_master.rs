//! The RS485 bus in the `master` role, sans-IO: the Terra AC driver's exchanges and
//! the gateway's forwarded requests, one at a time, over the core's RTU [`Client`],
//! with replies framed by the 3.5-character silence ([`SilenceFramer`]).
//!
//! The daemon (tokio serial port) and the firmware (embassy UART with a driver-enable
//! pin) run the same loop around it:
//! 1. [`BusMaster::poll_transmit`]: bytes to put on the bus now (a forwarded request
//!    first, since a host waits on it, then the driver's next exchange);
//! 2. [`BusMaster::on_bytes`]: bytes read from the bus;
//! 3. [`BusMaster::poll`]: what finished ([`MasterEvent`]);
//! 4. sleep until [`BusMaster::poll_timeout`] or more bytes or a new request.
//!
//! Time is a [`crate::time::Instant`] on any clock (the driver reads it to the
//! millisecond, [`DRIVER_RESOLUTION`]). Never panics: every frame is checked by the
//! client and the gateway; every time, however far it jumps, is taken (saturating
//! arithmetic).

use crate::abb::{self, DriverConfig, TerraAc};
use crate::config::Config;
use crate::modbus::{
    Client, ClientConfig, Gateway, LineConfig, MAX_ADU, Request, SilenceFramer, Submitted, Turn,
};
use crate::time::{Duration, Instant};

/// What finished on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterEvent {
    /// One of the driver's exchanges finished (or timed out): its view changed.
    /// `fresh` when a status read just succeeded (the charger's currents are new).
    Charger {
        /// A status read succeeded.
        fresh: bool,
    },
    /// The forwarded request's reply for the host: `len` bytes of the `out` buffer
    /// given to [`BusMaster::poll`] (exception 0x0B when the target stayed silent).
    GatewayReply(usize),
    /// The forwarded request needs no reply: a broadcast finished, or the frame was
    /// not one the gateway forwards (bad frame or function).
    GatewayDone,
}

/// The master's state: driver, client, gateway and the reply framer.
#[derive(Debug, Clone)]
pub struct BusMaster {
    driver: TerraAc,
    client: Client,
    gateway: Gateway,
    framer: SilenceFramer,
    pending: Option<abb::Request>,
    address: u8,
    /// A submitted request's answer decided at once (busy, malformed: `Some(len)`
    /// in `answer`; dropped: `Some(0)`), reported by the next [`BusMaster::poll`].
    refused: Option<usize>,
    answer: [u8; MAX_ADU],
    /// A forwarded exchange was started since the driver's last: the driver's next due
    /// exchange goes before the next forwarded one (a host polling through the gateway
    /// never holds back the charger's limit by more than one exchange).
    driver_next: bool,
    /// The saved configuration it runs with, and its line.
    config: Config,
    line: LineConfig,
}

/// What a product does after [`BusMaster::follow_saved`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedChange {
    /// Nothing it uses changed.
    None,
    /// Taken over (charger address, fallback, refresh period).
    Applied,
    /// The line changed (1031/1032): reopen the port with it and start a new master
    /// (the exchange on the bus is dropped; its client is answered at once).
    Reopen,
}

/// The driver's settings from the saved configuration.
fn driver_config(config: &Config) -> DriverConfig {
    DriverConfig {
        fallback_ma: config.fallback_ma(),
        refresh_s: config.setpoint_refresh_s(),
    }
}

/// The client's timing on `line`: the reply timeout (500 ms) runs from the end of the
/// request to the end of the reply, so it also covers the longest reply's time on the
/// wire (at 1200 baud a Terra AC status reply alone takes 0.66 s).
pub fn client_config(line: LineConfig) -> ClientConfig {
    let base = ClientConfig::default();
    let longest_reply = line.char_time().saturating_mul(MAX_ADU as u64);
    ClientConfig {
        response_timeout: base.response_timeout + longest_reply,
        ..base
    }
}

/// The longest one exchange can take on `line`: every attempt's reply timeout
/// (each runs from the attempt's first byte; see [`client_config`]). A host whose
/// request left its queue when [`BusMaster::forward_goes_next`] said so waits this
/// long (and a margin) for its result rather than give up while its retries go out.
pub fn longest_exchange(line: LineConfig) -> Duration {
    let client = client_config(line);
    client.response_timeout * (u32::from(client.retries) + 1)
}

/// The gateway's abandon policy, the same in both products: a forwarded request waits
/// for the bus at most this long (at 9600 baud the driver's exchange before it and its
/// own, with retries, take 4.6 s at most). Still queued then, its client is answered
/// 0x0B and it is never sent; already on the bus, its client waits for the exchange's
/// result ([`forward_result_wait`]).
pub const FORWARD_WAIT: Duration = Duration::from_secs(5);

/// How long the client of a forwarded request that went on the bus waits for its
/// result: every attempt ([`longest_exchange`]) and a second's margin.
pub fn forward_result_wait(line: LineConfig) -> Duration {
    longest_exchange(line) + Duration::from_secs(1)
}

/// The Terra AC driver's clock resolution: its schedule (polls, retries, refreshes) runs
/// on whole milliseconds, as it always has, while the client and the framer see every
/// microsecond (character timing). Its exchanges fall on the same instants as before
/// the core had [`Instant`]s, so the simulator's results are unchanged.
pub const DRIVER_RESOLUTION: Duration = Duration::from_millis(1);

/// `now` on the driver's clock.
fn driver_time(now: Instant) -> Instant {
    now.round_down(DRIVER_RESOLUTION)
}

/// The charger's Modbus address (register 1030).
fn charger_address(config: &Config) -> u8 {
    config.charger_address()
}

impl BusMaster {
    /// A master for the saved `config` on a line of `line`, started at `now`.
    pub fn new(config: &Config, line: LineConfig, now: Instant) -> Self {
        BusMaster {
            driver: TerraAc::new(driver_config(config), driver_time(now)),
            client: Client::new(client_config(line)),
            gateway: Gateway::new(),
            framer: SilenceFramer::new(line),
            pending: None,
            address: charger_address(config),
            refused: None,
            answer: [0; MAX_ADU],
            driver_next: false,
            config: *config,
            line,
        }
    }

    /// Lengthens the silence that ends a reply by `extra`: the receive latency of a
    /// UART that hands bytes over in FIFO chunks ([`LineConfig::fifo_latency`]).
    pub fn widen_silence(&mut self, extra: Duration) {
        self.framer.widen_silence(extra);
    }

    /// A new saved configuration (charger address, fallback, refresh period).
    pub fn apply_config(&mut self, config: &Config) {
        self.driver.apply_config(driver_config(config));
        self.address = charger_address(config);
        self.config = *config;
    }

    /// Follows the saved configuration `saved` (call on every turn of the product's
    /// loop): a changed line asks for the port to be reopened, anything else is applied.
    /// One rule for the daemon and the firmware.
    pub fn follow_saved(&mut self, saved: &Config) -> SavedChange {
        if *saved == self.config {
            SavedChange::None
        } else if LineConfig::rs485(saved) != self.line {
            SavedChange::Reopen
        } else {
            self.apply_config(saved);
            SavedChange::Applied
        }
    }

    /// The charger driver (its status and flags, for the register map).
    pub fn driver(&self) -> &TerraAc {
        &self.driver
    }

    /// The charger's address in use.
    pub fn charger_address(&self) -> u8 {
        self.address
    }

    /// True while a forwarded request waits, is on the bus or its answer is not yet
    /// polled: submit the next one after its [`MasterEvent`] (another would be
    /// answered 06, busy).
    pub fn gateway_busy(&self) -> bool {
        self.gateway.is_busy() || self.refused.is_some()
    }

    /// True from the moment an exchange starts (its request goes out at this
    /// [`BusMaster::poll_transmit`]; retries included) until [`BusMaster::poll`] reports
    /// its result — a broadcast's at the first poll after its last byte: the bus is in
    /// use. Work that stops the CPU (a flash erase) waits for it to end, or the reply is
    /// lost. A request answered without the bus (06, malformed) does not count.
    pub fn exchange_on_bus(&self) -> bool {
        !self.client.is_idle()
    }

    /// True when a request submitted now would be the next on the bus, at
    /// [`BusMaster::poll_transmit`] with the same `now` and `sent_ma`: the bus is
    /// free and the driver does not go first. A host's queue hands over its next request
    /// only then, so that a request is never held behind a driver exchange after it
    /// left the queue (while queued, its host can still give up on it).
    pub fn forward_goes_next(&self, now: Instant, sent_ma: u32) -> bool {
        self.client.is_idle()
            && self.pending.is_none()
            && !self.gateway_busy()
            && !(self.driver_next
                && self
                    .driver
                    .poll_request(driver_time(now), sent_ma)
                    .is_some())
    }

    /// A request from the host for another unit. Exactly one
    /// [`MasterEvent::GatewayReply`] or [`MasterEvent::GatewayDone`] follows from
    /// [`BusMaster::poll`]: the target's reply, 0x0B on silence, 06 when busy, 03
    /// when malformed (see [`Gateway::submit`]).
    pub fn submit(&mut self, frame: &[u8]) {
        let refused = match self.gateway.submit(frame, &mut self.answer) {
            Submitted::Queued => return,
            Submitted::Answer(n) => n,
            Submitted::Dropped => 0,
        };
        // One answer pending at a time: a request submitted while one waits is
        // dropped rather than overwrite it.
        if self.refused.is_none() {
            self.refused = Some(refused);
        }
    }

    /// Bytes to send now, if any: starts the next exchange when the bus is free (a
    /// forwarded request first, since a host waits on it, then the driver's, which
    /// writes `sent_ma` — the balancer's value — when it is due; but after a forwarded
    /// exchange the driver's due one goes first, so forwarded requests alternate with
    /// the driver's and can never starve it).
    pub fn poll_transmit(&mut self, now: Instant, sent_ma: u32) -> Option<&[u8]> {
        if self.client.is_idle() && self.pending.is_none() {
            let due = if self.driver_next {
                self.driver.poll_request(driver_time(now), sent_ma)
            } else {
                None
            };
            let req = match due {
                Some(req) => Some(req),
                None => match self.gateway.next_on_bus(&mut self.client) {
                    Turn::Driver => self.driver.poll_request(driver_time(now), sent_ma),
                    Turn::Forwarded => {
                        self.driver_next = true;
                        None
                    }
                    Turn::Busy => None,
                },
            };
            if let Some(req) = req {
                if self
                    .client
                    .start(self.address, &Request::from(&req))
                    .is_ok()
                {
                    self.pending = Some(req);
                    self.driver_next = false;
                }
            }
        }
        let tx = self.client.poll_transmit(now)?;
        // Our own echo and anything before it are not a reply.
        self.framer.clear();
        Some(tx)
    }

    /// Bytes read from the bus.
    pub fn on_bytes(&mut self, now: Instant, bytes: &[u8]) {
        // The framer takes all the bytes, or none after ending the frame before them.
        while let (_, Some(frame)) = self.framer.feed(now, bytes) {
            self.client.on_frame(now, frame);
        }
    }

    /// What finished by `now`, if anything. A gateway reply is written to `out`.
    pub fn poll(&mut self, now: Instant, out: &mut [u8; MAX_ADU]) -> Option<MasterEvent> {
        if let Some(n) = self.refused.take() {
            if n == 0 {
                return Some(MasterEvent::GatewayDone);
            }
            let n = n.min(MAX_ADU);
            out[..n].copy_from_slice(&self.answer[..n]);
            return Some(MasterEvent::GatewayReply(n));
        }
        if let Some(frame) = self.framer.poll(now) {
            self.client.on_frame(now, frame);
        }
        let reply = self.client.poll_result(now)?;
        let outcome = reply.outcome();
        if let Some(req) = self.pending.take() {
            self.driver.on_response(driver_time(now), req, outcome);
            let fresh = matches!(
                (req, outcome),
                (abb::Request::Read { .. }, abb::Outcome::Ok(_))
            );
            return Some(MasterEvent::Charger { fresh });
        }
        Some(match self.gateway.on_reply(reply, out) {
            Some(n) => MasterEvent::GatewayReply(n),
            None => MasterEvent::GatewayDone,
        })
    }

    /// When to call again at the latest: the client's reply timeout, the end of
    /// a reply (silence), or the driver's next exchange; [`Instant::MAX`] for never.
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        if self.refused.is_some() {
            return now;
        }
        let mut wake = Instant::MAX;
        if let Some(t) = self.client.poll_timeout() {
            wake = wake.min(t);
        }
        if let Some(t) = self.framer.deadline() {
            wake = wake.min(t);
        }
        if self.pending.is_none() && self.client.is_idle() {
            // The driver's deadline is on its own clock: the wait from its `now`.
            let wait = self.driver.next_deadline() - driver_time(now);
            wake = wake.min(now + wait);
        }
        wake
    }
}
