//! The RS485 bus between the balancer and the charger as the daemon has it: the core's
//! [`BusMaster`] (the same Terra AC driver, poll schedule, client timeouts and retries
//! the daemon and the firmware run) talking to the simulated Terra AC
//! ([`TerraSim`], the one `p1lb sim-charger` serves) over a byte-timed 9600 8N1 line.
//!
//! What this makes the simulator see, as a real installation does:
//! - the limit reaches the charger only when the driver writes it: after the exchange
//!   on the bus, if any, has ended, plus the write's own time on the wire;
//! - the charger's currents reach the balancer only when the driver reads the status
//!   block ([`p1lb_core::abb::POLL`]), and they are what the charger's own meter
//!   measured at its last measurement ([`ChargerBus::measure`]), not what the car draws
//!   at the moment of the telegram;
//! - a charger that reports nonsense is read as it would be (the reported registers go
//!   through the driver and the device unchanged).

use p1lb_core::bus_master::{BusMaster, MasterEvent};
use p1lb_core::config::Config;
use p1lb_core::modbus::{LineConfig, MAX_ADU, Parity};
use p1lb_core::time::{Duration, Instant};

use super::charger::TerraSim;

/// The charger's reply starts this long after the end of the request (its Modbus
/// turnaround).
pub const TURNAROUND: Duration = Duration::from_millis(20);

/// What happened on the bus while it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusEvent {
    /// The charger took a new limit (0x4100) at `at`.
    LimitApplied {
        /// When the write reached the charger.
        at: Instant,
        /// The limit, mA.
        limit_ma: u32,
    },
    /// The driver finished a status read at `at`: the charger's currents are new.
    StatusRead {
        /// When the reply was taken, to the millisecond (the simulator's time line, as
        /// the balancer has always been given it).
        at: Instant,
    },
}

/// The line, its master and the charger on it.
#[derive(Debug)]
pub struct ChargerBus {
    master: BusMaster,
    charger: TerraSim,
    address: u8,
    char_time: Duration,
    now: Instant,
    /// A request on its way to the charger: when its last byte arrives, and the bytes.
    to_charger: Option<(Instant, Vec<u8>)>,
    /// A reply on its way to the master: when its last byte arrives, and the bytes.
    to_master: Option<(Instant, Vec<u8>)>,
    /// Exchanges the master started.
    exchanges: u32,
}

impl ChargerBus {
    /// A 9600 8N1 line with the charger at the configured address (1030), the driver
    /// starting at [`Instant::ZERO`].
    pub fn new(config: &Config) -> ChargerBus {
        let line = LineConfig::new(9600, Parity::None, 1);
        let master = BusMaster::new(config, line, Instant::ZERO);
        ChargerBus {
            address: master.charger_address(),
            master,
            charger: TerraSim::new(),
            char_time: line.char_time(),
            now: Instant::ZERO,
            to_charger: None,
            to_master: None,
            exchanges: 0,
        }
    }

    /// The charger's meter measures what the car draws now (mA per phase, each
    /// saturated to what the registers hold); it reports this until the next call.
    pub fn measure(&mut self, ma: [u32; 3]) {
        self.charger.measured_ma = Some(ma);
    }

    /// The limit the charger applies (last 0x4100 written), mA.
    pub fn applied_ma(&self) -> u32 {
        self.charger.limit_ma
    }

    /// The master (its driver's view of the charger: status, flags).
    pub fn master(&self) -> &BusMaster {
        &self.master
    }

    /// Exchanges started so far.
    pub fn exchanges(&self) -> u32 {
        self.exchanges
    }

    /// Runs the bus up to `until` with the balancer's value to send `sent_ma`,
    /// appending what happened to `events` in time order.
    pub fn run_until(&mut self, until: Instant, sent_ma: u32, events: &mut Vec<BusEvent>) {
        let mut out = [0u8; MAX_ADU];
        loop {
            let now = self.now;
            // Deliveries due.
            if let Some((at, bytes)) = self.to_charger.take_if(|(at, _)| *at <= now) {
                let before = self.charger.limit_ma;
                let mut reply = [0u8; MAX_ADU];
                let mut log = None;
                let answered = self
                    .charger
                    .answer(self.address, &bytes, &mut reply, &mut log)
                    .filter(|&n| n > 0);
                if let Some(n) = answered {
                    let end = at + TURNAROUND + self.char_time.saturating_mul(n as u64);
                    self.to_master = Some((end, reply[..n].to_vec()));
                }
                if self.charger.limit_ma != before || log.as_deref().is_some_and(is_limit_write) {
                    events.push(BusEvent::LimitApplied {
                        at,
                        limit_ma: self.charger.limit_ma,
                    });
                }
            }
            if let Some((at, bytes)) = self.to_master.take_if(|(at, _)| *at <= now) {
                self.master.on_bytes(at, &bytes);
            }
            while let Some(ev) = self.master.poll(now, &mut out) {
                if let MasterEvent::Charger { fresh: true } = ev {
                    events.push(BusEvent::StatusRead {
                        at: now.round_down(Duration::from_millis(1)),
                    });
                }
            }
            if let Some(tx) = self.master.poll_transmit(now, sent_ma) {
                let end = now + self.char_time.saturating_mul(tx.len() as u64);
                self.to_charger = Some((end, tx.to_vec()));
                self.exchanges += 1;
            }
            let mut next = self.master.poll_timeout(now);
            for (at, _) in [&self.to_charger, &self.to_master].into_iter().flatten() {
                next = next.min(*at);
            }
            let next = next.max(now + Duration::from_micros(1));
            if next > until {
                self.now = until.max(now);
                return;
            }
            self.now = next;
        }
    }
}

fn is_limit_write(log: &str) -> bool {
    log.starts_with("write 0x4100")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_writes_the_limit_and_polls_every_two_seconds() {
        let cfg = Config::default();
        let mut bus = ChargerBus::new(&cfg);
        bus.measure([7_000; 3]);
        let mut ev = Vec::new();
        bus.run_until(Instant::from_secs(10), 8_000, &mut ev);
        assert_eq!(bus.applied_ma(), 8_000);
        let reads: Vec<u64> = ev
            .iter()
            .filter_map(|e| match e {
                BusEvent::StatusRead { at } => Some(at.total_millis()),
                _ => None,
            })
            .collect();
        assert!((4..=6).contains(&reads.len()), "{reads:?}");
        for w in reads.windows(2) {
            assert!((2000..2200).contains(&(w[1] - w[0])), "{reads:?}");
        }
        let st = bus.master().driver().status();
        assert_eq!(st.current_ma, [Some(7_000); 3]);
        // A new value goes out at once (the bus is idle between polls).
        ev.clear();
        bus.run_until(Instant::from_millis(10_500), 10_000, &mut ev);
        let applied = ev.iter().find_map(|e| match e {
            BusEvent::LimitApplied { at, limit_ma } => Some((at.total_millis(), *limit_ma)),
            _ => None,
        });
        let (at, ma) = applied.expect("written");
        assert_eq!(ma, 10_000);
        assert!(at < 10_150, "{at}");
    }

    #[test]
    fn absurd_currents_are_read_as_reported() {
        let mut bus = ChargerBus::new(&Config::default());
        bus.measure([u32::MAX; 3]);
        let mut ev = Vec::new();
        bus.run_until(Instant::from_secs(3), 0, &mut ev);
        let st = bus.master().driver().status();
        assert_eq!(st.current_ma, [Some(u32::MAX); 3]);
    }
}
