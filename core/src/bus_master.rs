//! The RS485 bus in the `master` role, sans-IO: the Terra AC drivers' exchanges and
//! the gateway's forwarded requests, one at a time, over the core's RTU [`Client`],
//! with replies framed by the 3.5-character silence ([`SilenceFramer`]).
//!
//! The daemon (tokio serial port) and the firmware (embassy UART with a driver-enable
//! pin) run the same loop around it:
//! 1. [`BusMaster::poll_transmit`]: bytes to put on the bus now (a forwarded request
//!    first, since a host waits on it, then the next driver's exchange);
//! 2. [`BusMaster::on_bytes`]: bytes read from the bus;
//! 3. [`BusMaster::poll`]: what finished ([`MasterEvent`]);
//! 4. sleep until [`BusMaster::poll_timeout`] or more bytes or a new request.
//!
//! # Several chargers
//! The bus carries n = [`Config::chargers`] Terra AC chargers (setting 1037, 1 … 8):
//! charger k (0-based here; charger k + 1 in the register map) answers at
//! [`Config::address_of`]`(k)` = 1030 + k. The master runs one [`TerraAc`] driver per
//! charger, each with its own schedule (setup, limit writes, status polls, retries),
//! and the products pass each charger's value to send ([`BusMaster::poll_transmit`]
//! takes all n). One exchange is on the bus at a time:
//! - **round-robin among due drivers**: after charger k's exchange the search for the
//!   next due one starts at k + 1, so a driver that is due waits for at most one
//!   exchange of each other charger. A silent charger, whose every exchange runs all
//!   its reply timeouts and retries ([`longest_exchange`]) and which is due again
//!   [`abb::RETRY`] after each failure, gets its turn like the others and no more: it
//!   never keeps their limit writes and polls from going out between its own.
//! - forwarded requests alternate with the drivers' exchanges as before: after a
//!   forwarded exchange the next due driver exchange (whichever charger's turn it is)
//!   goes before the next forwarded one.
//! - so a due driver waits at most for the exchange on the bus and then, per other
//!   charger due before it, that charger's exchange and one forwarded exchange: with
//!   m silent chargers and a host keeping the gateway busy with requests nobody
//!   answers, (2m + 1) × [`longest_exchange`]; without forwarded requests, m ×
//!   [`longest_exchange`]. Each charger must hear from us within its communication
//!   timeout ([`abb::COMM_TIMEOUT_S`], 30 s) or it runs at its fallback share (below)
//!   until it does: at 9600 baud (2.3 s per silent exchange, polls every 2 s) that
//!   holds with all 7 others silent, or with up to 5 silent and such a host; on
//!   slower lines with several silent chargers it may not.
//!
//! **Fallback share.** Each charger is configured (0x4109) with the current it falls
//! back to on its own when we go silent. With n chargers they all fall back at once,
//! so each gets an n-th of the fallback limit 1021: floor(1021 / n), and the charger
//! takes it rounded down to whole amps (0x4109 is in amps), so together they never
//! draw more than 1021. The driver's [`DriverConfig::fallback_ma`] is that share; a
//! share under 6 A pauses the car (IEC 61851) while we are gone, the safe side. With
//! one charger it is 1021 as before.
//!
//! **Changed settings.** A save that changes the charger count or address
//! ([`BusMaster::follow_saved`]) adds and removes drivers: a charger whose address is
//! still on the bus keeps its driver and its state (configured, limit written, status)
//! under its possibly new index; a new address gets a new driver that configures its
//! charger first. A changed count changes every charger's fallback share, which each
//! kept driver writes again ([`TerraAc::apply_config`]). An exchange on the bus for a
//! charger that went away ends as usual; its result is dropped.
//!
//! With one charger the master behaves exactly as it did before it drove several (the
//! same exchanges at the same instants), except that a charger moved to a new address
//! is now taken for a new one and configured again.
//!
//! Time is a [`crate::time::Instant`] on any clock (the drivers read it to the
//! millisecond, [`DRIVER_RESOLUTION`]). Never panics: every frame is checked by the
//! client and the gateway; every time, however far it jumps, is taken (saturating
//! arithmetic); every charger index is checked.

use crate::abb::{self, DriverConfig, TerraAc};
use crate::config::{Config, MAX_CHARGERS};
use crate::modbus::{
    Client, ClientConfig, Gateway, LineConfig, MAX_ADU, Request, SilenceFramer, Submitted, Turn,
};
use crate::time::{Duration, Instant};

/// What finished on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterEvent {
    /// One of charger `k`'s driver exchanges finished (or timed out): its view changed
    /// ([`BusMaster::driver`]`(k)`). `fresh` when a status read just succeeded (the
    /// charger's currents are new).
    Charger {
        /// The charger (0-based: charger 1, at address 1030, is 0). For the result
        /// of an exchange with a charger that a save took off the bus meanwhile, the
        /// index it had, with `fresh` false and no driver changed:
        /// [`BusMaster::driver`]`(k)` is then another charger's driver, or `None`.
        k: usize,
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

/// A driver exchange on the bus: whose, to which address, and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    k: usize,
    address: u8,
    request: abb::Request,
}

/// The master's state: the drivers, client, gateway and the reply framer.
#[derive(Debug, Clone)]
pub struct BusMaster {
    /// One driver per charger; the first `chargers` are on the bus.
    drivers: [TerraAc; MAX_CHARGERS],
    /// Each driver's charger address.
    addresses: [u8; MAX_CHARGERS],
    /// Chargers on the bus, 1 … [`MAX_CHARGERS`].
    chargers: usize,
    /// The charger whose driver is asked first for the next exchange (round-robin).
    turn: usize,
    client: Client,
    gateway: Gateway,
    framer: SilenceFramer,
    pending: Option<Pending>,
    /// A submitted request's answer decided at once (busy, malformed: `Some(len)`
    /// in `answer`; dropped: `Some(0)`), reported by the next [`BusMaster::poll`].
    refused: Option<usize>,
    answer: [u8; MAX_ADU],
    /// A forwarded exchange was started since the drivers' last: the next due driver
    /// exchange goes before the next forwarded one (a host polling through the gateway
    /// never holds back the chargers' limits by more than one exchange each).
    driver_next: bool,
    /// The latest instant the master was given (a driver added by a new configuration
    /// starts then).
    latest: Instant,
    /// The saved configuration it runs with, and its line.
    config: Config,
    line: LineConfig,
}

/// What a product does after [`BusMaster::follow_saved`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedChange {
    /// Nothing it uses changed.
    None,
    /// Taken over (charger count and addresses, fallback, refresh period).
    Applied,
    /// The line changed (1031/1032): reopen the port with it and start a new master
    /// (the exchange on the bus is dropped; its client is answered at once).
    Reopen,
}

/// Each driver's settings from the saved configuration: its share of the fallback
/// limit (floor(1021 / n), see the module documentation) and the refresh period.
fn driver_config(config: &Config) -> DriverConfig {
    let n = u32::try_from(config.chargers()).unwrap_or(1).max(1);
    DriverConfig {
        fallback_ma: config.fallback_ma() / n,
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
/// for the bus at most this long (at 9600 baud the one driver exchange that may go
/// before it, whichever charger's, and its own, with retries, take 4.6 s at most). Still queued then, its client is answered
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

impl BusMaster {
    /// A master for the saved `config` on a line of `line`, started at `now`: one
    /// driver for each of the [`Config::chargers`] chargers.
    pub fn new(config: &Config, line: LineConfig, now: Instant) -> Self {
        let cfg = driver_config(config);
        let start = driver_time(now);
        BusMaster {
            drivers: core::array::from_fn(|_| TerraAc::new(cfg, start)),
            addresses: core::array::from_fn(|k| config.address_of(k)),
            chargers: config.chargers().clamp(1, MAX_CHARGERS),
            turn: 0,
            client: Client::new(client_config(line)),
            gateway: Gateway::new(),
            framer: SilenceFramer::new(line),
            pending: None,
            refused: None,
            answer: [0; MAX_ADU],
            driver_next: false,
            latest: now,
            config: *config,
            line,
        }
    }

    /// Lengthens the silence that ends a reply by `extra`: the receive latency of a
    /// UART that hands bytes over in FIFO chunks ([`LineConfig::fifo_latency`]).
    pub fn widen_silence(&mut self, extra: Duration) {
        self.framer.widen_silence(extra);
    }

    /// A new saved configuration (charger count and addresses, fallback, refresh
    /// period): drivers are added and removed, a charger whose address stays on the
    /// bus keeps its driver's state (see the module documentation).
    pub fn apply_config(&mut self, config: &Config) {
        let cfg = driver_config(config);
        let n = config.chargers().clamp(1, MAX_CHARGERS);
        let old = self.drivers.clone();
        let old_addresses = self.addresses;
        let old_n = self.chargers.min(MAX_CHARGERS);
        let start = driver_time(self.latest);
        for k in 0..MAX_CHARGERS {
            let address = config.address_of(k);
            let kept = old_addresses
                .iter()
                .take(old_n)
                .position(|&a| a == address)
                .and_then(|j| old.get(j));
            let mut driver = match kept {
                Some(d) if k < n => d.clone(),
                _ => TerraAc::new(cfg, start),
            };
            driver.apply_config(cfg);
            if let (Some(slot), Some(a)) = (self.drivers.get_mut(k), self.addresses.get_mut(k)) {
                *slot = driver;
                *a = address;
            }
        }
        self.chargers = n;
        self.turn %= n;
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

    /// The number of chargers on the bus (1 … [`MAX_CHARGERS`]).
    pub fn chargers(&self) -> usize {
        self.chargers
    }

    /// Charger `k`'s driver (0-based; its status and flags, for the register map):
    /// `None` for `k` ≥ [`BusMaster::chargers`].
    pub fn driver(&self, k: usize) -> Option<&TerraAc> {
        self.drivers.get(k).filter(|_| k < self.chargers)
    }

    /// Charger `k`'s address in use (0-based): `None` for `k` ≥
    /// [`BusMaster::chargers`].
    pub fn address_of(&self, k: usize) -> Option<u8> {
        self.addresses.get(k).copied().filter(|_| k < self.chargers)
    }

    /// The Modbus client's counters (frames sent, retries, timeouts, bad frames…).
    pub fn client_stats(&self) -> crate::modbus::ClientStats {
        self.client.stats()
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

    /// The next due driver exchange at `now`, round-robin from the charger whose turn
    /// it is: the charger and the request.
    fn next_due(
        &self,
        now: Instant,
        sent_ma: &[u32; MAX_CHARGERS],
    ) -> Option<(usize, abb::Request)> {
        let n = self.chargers.clamp(1, MAX_CHARGERS);
        let now = driver_time(now);
        (0..n).find_map(|i| {
            let k = (self.turn + i) % n;
            let sent = sent_ma.get(k).copied().unwrap_or(0);
            let req = self.drivers.get(k)?.poll_request(now, sent)?;
            Some((k, req))
        })
    }

    /// True when a request submitted now would be the next on the bus, at
    /// [`BusMaster::poll_transmit`] with the same `now` and `sent_ma`: the bus is
    /// free and no driver goes first. A host's queue hands over its next request
    /// only then, so that a request is never held behind a driver exchange after it
    /// left the queue (while queued, its host can still give up on it).
    pub fn forward_goes_next(&self, now: Instant, sent_ma: &[u32; MAX_CHARGERS]) -> bool {
        self.client.is_idle()
            && self.pending.is_none()
            && !self.gateway_busy()
            && !(self.driver_next && self.next_due(now, sent_ma).is_some())
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
    /// forwarded request first, since a host waits on it, then the next due driver's,
    /// round-robin over the chargers; a limit write sends `sent_ma[k]` — the balancer's
    /// value for charger k — when it is due; after a forwarded exchange the next due
    /// driver exchange goes first, so forwarded requests alternate with the drivers'
    /// and can never starve them). Values for chargers beyond [`BusMaster::chargers`]
    /// are not used.
    pub fn poll_transmit(&mut self, now: Instant, sent_ma: &[u32; MAX_CHARGERS]) -> Option<&[u8]> {
        self.latest = self.latest.max(now);
        if self.client.is_idle() && self.pending.is_none() {
            let due = if self.driver_next {
                self.next_due(now, sent_ma)
            } else {
                None
            };
            let next = match due {
                Some(next) => Some(next),
                None => match self.gateway.next_on_bus(&mut self.client) {
                    Turn::Driver => self.next_due(now, sent_ma),
                    Turn::Forwarded => {
                        self.driver_next = true;
                        None
                    }
                    Turn::Busy => None,
                },
            };
            if let Some((k, request)) = next {
                let address = self.addresses.get(k).copied().unwrap_or(0);
                if self.client.start(address, &Request::from(&request)).is_ok() {
                    self.pending = Some(Pending {
                        k,
                        address,
                        request,
                    });
                    self.driver_next = false;
                    self.turn = (k + 1) % self.chargers.clamp(1, MAX_CHARGERS);
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
        self.latest = self.latest.max(now);
        // The framer takes all the bytes, or none after ending the frame before them.
        while let (_, Some(frame)) = self.framer.feed(now, bytes) {
            self.client.on_frame(now, frame);
        }
    }

    /// What finished by `now`, if anything. A gateway reply is written to `out`.
    pub fn poll(&mut self, now: Instant, out: &mut [u8; MAX_ADU]) -> Option<MasterEvent> {
        self.latest = self.latest.max(now);
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
        if let Some(p) = self.pending.take() {
            // The charger at the exchange's address, wherever a new configuration put
            // it; gone from the bus: the result is dropped.
            let n = self.chargers.min(MAX_CHARGERS);
            let owner = self.addresses[..n].iter().position(|&a| a == p.address);
            let Some(k) = owner else {
                return Some(MasterEvent::Charger {
                    k: p.k,
                    fresh: false,
                });
            };
            if let Some(driver) = self.drivers.get_mut(k) {
                driver.on_response(driver_time(now), p.request, outcome);
            }
            let fresh = matches!(
                (p.request, outcome),
                (abb::Request::Read { .. }, abb::Outcome::Ok(_))
            );
            return Some(MasterEvent::Charger { k, fresh });
        }
        Some(match self.gateway.on_reply(reply, out) {
            Some(n) => MasterEvent::GatewayReply(n),
            None => MasterEvent::GatewayDone,
        })
    }

    /// When to call again at the latest: the client's reply timeout, the end of
    /// a reply (silence), or the drivers' next exchange; [`Instant::MAX`] for never.
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
            // The drivers' deadlines are on their own clock: the wait from its `now`.
            let n = self.chargers.min(MAX_CHARGERS);
            for driver in &self.drivers[..n] {
                let wait = driver.next_deadline() - driver_time(now);
                wake = wake.min(now + wait);
            }
        }
        wake
    }
}
