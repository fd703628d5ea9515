//! The RS485 bus between the balancer and the chargers as the daemon has it: the core's
//! [`BusMaster`] (the same Terra AC drivers, poll schedule, client timeouts and retries
//! the daemon and the firmware run) talking to the simulated Terra AC
//! ([`TerraSim`], the one `p1lb sim-charger` serves) over a byte-timed 9600 8N1 line:
//! one charger (the simulator's runner), or as many as the configuration has (1037),
//! each at its own address with its own measured currents ([`ChargerBus::measure_of`],
//! [`ChargerBus::run_until_each`]).
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
use p1lb_core::config::{Config, MAX_CHARGERS};
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

/// One simulated charger on the line.
#[derive(Debug)]
struct Unit {
    charger: TerraSim,
    /// Its Modbus address.
    address: u8,
}

/// The line, its master and the chargers on it.
#[derive(Debug)]
pub struct ChargerBus {
    master: BusMaster,
    /// Charger k (0-based) of the configuration, at its address.
    units: Vec<Unit>,
    char_time: Duration,
    now: Instant,
    /// A request on its way to the chargers: when its last byte arrives, and the bytes.
    to_charger: Option<(Instant, Vec<u8>)>,
    /// A reply on its way to the master: when its last byte arrives, and the bytes.
    to_master: Option<(Instant, Vec<u8>)>,
    /// Exchanges the master started.
    exchanges: u32,
}

impl ChargerBus {
    /// A 9600 8N1 line with the configured chargers (1037, one by default), charger k
    /// at its address (1030 + k), each a [`TerraSim`] as after a reboot; the drivers
    /// start at [`Instant::ZERO`].
    pub fn new(config: &Config) -> ChargerBus {
        let line = LineConfig::new(9600, Parity::None, 1);
        let master = BusMaster::new(config, line, Instant::ZERO);
        let units = (0..master.chargers())
            .filter_map(|k| master.address_of(k))
            .map(|address| Unit {
                charger: TerraSim::new(),
                address,
            })
            .collect();
        ChargerBus {
            master,
            units,
            char_time: line.char_time(),
            now: Instant::ZERO,
            to_charger: None,
            to_master: None,
            exchanges: 0,
        }
    }

    /// The number of chargers on the line.
    pub fn chargers(&self) -> usize {
        self.units.len()
    }

    /// Charger 1's meter measures what its car draws now (mA per phase, each
    /// saturated to what the registers hold); it reports this until the next call.
    pub fn measure(&mut self, ma: [u32; 3]) {
        self.measure_of(0, ma);
    }

    /// Charger `k`'s (0-based) meter measures what its car draws now, as
    /// [`ChargerBus::measure`]; nothing for a charger not on the line.
    pub fn measure_of(&mut self, k: usize, ma: [u32; 3]) {
        if let Some(u) = self.units.get_mut(k) {
            u.charger.measured_ma = Some(ma);
        }
    }

    /// The limit charger 1 applies (last 0x4100 written), mA.
    pub fn applied_ma(&self) -> u32 {
        self.applied_of_ma(0).unwrap_or(0)
    }

    /// The limit charger `k` (0-based) applies, mA; `None` for a charger not on the
    /// line.
    pub fn applied_of_ma(&self, k: usize) -> Option<u32> {
        self.charger(k).map(|c| c.limit_ma)
    }

    /// Charger `k` (0-based): its registers.
    pub fn charger(&self, k: usize) -> Option<&TerraSim> {
        self.units.get(k).map(|u| &u.charger)
    }

    /// Cuts charger `k` (0-based) from the line (`true`: it hears and answers
    /// nothing, as when powered off) or connects it again, its registers as they were
    /// ([`TerraSim::silent`]).
    pub fn set_silent(&mut self, k: usize, silent: bool) {
        if let Some(u) = self.units.get_mut(k) {
            u.charger.silent = silent;
        }
    }

    /// Whether a car is plugged into charger `k` (0-based): its charging state reads 2
    /// or 4 with one, 0 without ([`TerraSim::car_connected`]).
    pub fn set_connected(&mut self, k: usize, connected: bool) {
        if let Some(u) = self.units.get_mut(k) {
            u.charger.car_connected = connected;
        }
    }

    /// The master (its drivers' view of the chargers: status, flags).
    pub fn master(&self) -> &BusMaster {
        &self.master
    }

    /// Exchanges started so far.
    pub fn exchanges(&self) -> u32 {
        self.exchanges
    }

    /// Runs the bus up to `until` with the balancer's value to send `sent_ma` to charger
    /// 1 (any other gets 0), appending what happened at charger 1 to `events` in time
    /// order.
    pub fn run_until(&mut self, until: Instant, sent_ma: u32, events: &mut Vec<BusEvent>) {
        let mut sent = [0; MAX_CHARGERS];
        sent[0] = sent_ma;
        let mut each = Vec::new();
        self.run_until_each(until, &sent, &mut each);
        events.extend(each.into_iter().filter(|&(k, _)| k == 0).map(|(_, e)| e));
    }

    /// Runs the bus up to `until` with each charger's value to send (`sent_ma[k]` for
    /// charger k, 0-based), appending what happened to `events` in time order, each
    /// with its charger.
    pub fn run_until_each(
        &mut self,
        until: Instant,
        sent_ma: &[u32; MAX_CHARGERS],
        events: &mut Vec<(usize, BusEvent)>,
    ) {
        let mut out = [0u8; MAX_ADU];
        loop {
            let now = self.now;
            // Deliveries due: every charger on the line hears the request; the one at
            // its address answers (addresses are distinct).
            if let Some((at, bytes)) = self.to_charger.take_if(|(at, _)| *at <= now) {
                for (k, unit) in self.units.iter_mut().enumerate() {
                    let before = unit.charger.limit_ma;
                    let mut reply = [0u8; MAX_ADU];
                    let mut log = None;
                    let answered = unit
                        .charger
                        .answer(unit.address, &bytes, &mut reply, &mut log)
                        .filter(|&n| n > 0);
                    if let Some(n) = answered {
                        let end = at + TURNAROUND + self.char_time.saturating_mul(n as u64);
                        self.to_master = Some((end, reply[..n].to_vec()));
                    }
                    if unit.charger.limit_ma != before || log.as_deref().is_some_and(is_limit_write)
                    {
                        events.push((
                            k,
                            BusEvent::LimitApplied {
                                at,
                                limit_ma: unit.charger.limit_ma,
                            },
                        ));
                    }
                }
            }
            if let Some((at, bytes)) = self.to_master.take_if(|(at, _)| *at <= now) {
                self.master.on_bytes(at, &bytes);
            }
            while let Some(ev) = self.master.poll(now, &mut out) {
                if let MasterEvent::Charger { k, fresh: true } = ev {
                    events.push((
                        k,
                        BusEvent::StatusRead {
                            at: now.round_down(Duration::from_millis(1)),
                        },
                    ));
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
        let st = bus.master().driver(0).expect("charger 1").status();
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
        let st = bus.master().driver(0).expect("charger 1").status();
        assert_eq!(st.current_ma, [Some(u32::MAX); 3]);
    }

    fn three_chargers() -> ChargerBus {
        let mut cfg = Config::default();
        cfg.set_charger_count(3).unwrap();
        cfg.set_charger_address(4).unwrap();
        let mut bus = ChargerBus::new(&cfg);
        for k in 0..3u32 {
            bus.measure_of(k as usize, [6_000 + 1_000 * k; 3]);
        }
        bus
    }

    /// Three simulated chargers at 4, 5 and 6 on the one line: each takes its own
    /// limit and reports its own currents, and each one's status reads are reported
    /// with its index.
    #[test]
    fn several_chargers_take_their_own_limits_at_their_own_addresses() {
        let mut bus = three_chargers();
        assert_eq!(bus.chargers(), 3);
        let sent: [u32; MAX_CHARGERS] = core::array::from_fn(|k| 8_000 + 1_000 * k as u32);
        let mut ev = Vec::new();
        bus.run_until_each(Instant::from_secs(10), &sent, &mut ev);
        for (k, &value) in sent.iter().enumerate().take(3) {
            assert_eq!(bus.applied_of_ma(k), Some(value), "charger {k}");
            let applied: Vec<u32> = ev
                .iter()
                .filter_map(|(j, e)| match e {
                    BusEvent::LimitApplied { limit_ma, .. } if *j == k => Some(*limit_ma),
                    _ => None,
                })
                .collect();
            assert_eq!(applied, [value], "charger {k}");
            let reads = ev
                .iter()
                .filter(|(j, e)| *j == k && matches!(e, BusEvent::StatusRead { .. }))
                .count();
            assert!((4..=6).contains(&reads), "charger {k}: {reads} reads");
            let ma = 6_000 + 1_000 * k as u32;
            let driver = bus.master().driver(k).unwrap();
            assert_eq!(driver.status().current_ma, [Some(ma); 3]);
            assert_eq!(bus.master().address_of(k), Some(4 + k as u8));
        }
        assert_eq!(bus.applied_of_ma(3), None);
        // The single-charger view of the same line: charger 1's events only.
        let mut one = Vec::new();
        bus.run_until(Instant::from_secs(21), 7_000, &mut one);
        assert_eq!(bus.applied_ma(), 7_000);
        assert_eq!(bus.applied_of_ma(1), Some(0));
        let applied = one
            .iter()
            .filter(|e| matches!(e, BusEvent::LimitApplied { .. }))
            .count();
        assert_eq!(applied, 2, "7 A, then its refresh: {one:?}");
    }

    /// One of three simulated chargers cut from the line: its driver flags it, the
    /// others are still read every 2 s or so and keep their limits.
    #[test]
    fn a_silent_charger_does_not_stop_the_others() {
        let mut bus = three_chargers();
        bus.set_silent(1, true);
        let mut ev = Vec::new();
        bus.run_until_each(Instant::from_secs(40), &[9_000; MAX_CHARGERS], &mut ev);
        assert!(bus.master().driver(1).unwrap().not_answering());
        assert_eq!(bus.applied_of_ma(1), Some(32_000), "never written");
        for k in [0, 2] {
            assert!(!bus.master().driver(k).unwrap().not_answering());
            assert_eq!(bus.applied_of_ma(k), Some(9_000));
            let reads: Vec<u64> = ev
                .iter()
                .filter_map(|(j, e)| match e {
                    BusEvent::StatusRead { at } if *j == k => Some(at.total_millis()),
                    _ => None,
                })
                .collect();
            assert!(reads.len() >= 10, "charger {k}: {reads:?}");
            for w in reads.windows(2) {
                assert!(w[1] - w[0] < 5_000, "charger {k}: {reads:?}");
            }
        }
        // Back on the line: configured and written.
        bus.set_silent(1, false);
        bus.run_until_each(Instant::from_secs(50), &[9_000; MAX_CHARGERS], &mut ev);
        assert!(!bus.master().driver(1).unwrap().not_answering());
        assert_eq!(bus.applied_of_ma(1), Some(9_000));
        assert_eq!(bus.charger(1).map(|c| c.fallback_a), Some(0));
    }
}
