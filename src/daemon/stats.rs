//! Counters the tasks keep for `/metrics` (and whoever else reads them): the P1
//! reader's counters by outcome, the RS485 port's exchanges and their latency. Each is
//! behind its own short-held lock (never the device's, never across an `.await`): an
//! update costs the control loop nothing and the RS485 loop a copy of a few words.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use p1lb_core::modbus::ClientStats;
use p1lb_core::p1::ReaderStats;

/// The upper bounds (seconds) of the RS485 exchange latency histogram's buckets;
/// a last `+Inf` bucket is implied.
pub const LATENCY_BUCKETS_S: [f64; 10] = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0];

/// A Prometheus-style histogram: cumulative when rendered, per bucket here.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket of [`LATENCY_BUCKETS_S`], and above the last.
    pub buckets: [u64; LATENCY_BUCKETS_S.len() + 1],
    /// The sum of the observations, in seconds.
    pub sum_s: f64,
    /// The number of observations.
    pub count: u64,
}

impl Histogram {
    /// Counts one observation.
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS_S
            .iter()
            .position(|&le| s <= le)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        self.buckets[i] = self.buckets[i].saturating_add(1);
        self.sum_s += s;
        self.count = self.count.saturating_add(1);
    }

    /// The cumulative count of each bucket (`le` order), then `+Inf` (= `count`).
    pub fn cumulative(&self) -> [u64; LATENCY_BUCKETS_S.len() + 1] {
        let mut out = self.buckets;
        for i in 1..out.len() {
            out[i] = out[i].saturating_add(out[i - 1]);
        }
        out
    }
}

/// The RS485 port's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rs485Stats {
    /// Master role: exchanges finished (a reply, an exception or silence after the
    /// retries), the charger driver's and the gateway's.
    pub exchanges: u64,
    /// Master role: exchanges with a status read that succeeded.
    pub fresh_reads: u64,
    /// Master role: the time from an exchange's first byte sent to its result.
    pub latency: Histogram,
    /// Master role: the Modbus client's counters (frames sent, retries, timeouts, bad
    /// frames…), summed over the port's openings.
    pub client: ClientStats,
    /// Server role: requests answered (or executed, for a broadcast).
    pub served: u64,
    /// Server role: frames ignored (bad CRC, malformed, refused broadcast).
    pub ignored: u64,
    /// Server role: frames for other units (the emulated meter's not counted).
    pub not_for_us: u64,
    /// Times the port was opened.
    pub opened: u64,
}

/// Everything counted, shared by the tasks.
#[derive(Debug, Default)]
pub struct Stats {
    p1: Mutex<ReaderStats>,
    rs485: Mutex<Rs485Stats>,
}

impl Stats {
    /// The P1 reader's latest counters.
    pub fn p1(&self) -> ReaderStats {
        *lock(&self.p1)
    }

    /// The P1 task reports its reader's counters.
    pub fn set_p1(&self, stats: ReaderStats) {
        *lock(&self.p1) = stats;
    }

    /// The RS485 counters.
    pub fn rs485(&self) -> Rs485Stats {
        *lock(&self.rs485)
    }

    /// The RS485 task updates its counters.
    pub fn update_rs485(&self, f: impl FnOnce(&mut Rs485Stats)) {
        f(&mut lock(&self.rs485));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `a + b`, field by field, saturating: client counters of a port reopened are added
/// to those of its earlier openings.
pub fn add_client(a: ClientStats, b: ClientStats) -> ClientStats {
    ClientStats {
        sent: a.sent.saturating_add(b.sent),
        retries: a.retries.saturating_add(b.retries),
        timeouts: a.timeouts.saturating_add(b.timeouts),
        bad_frames: a.bad_frames.saturating_add(b.bad_frames),
        other_unit: a.other_unit.saturating_add(b.other_unit),
        echoes: a.echoes.saturating_add(b.echoes),
        invalid: a.invalid.saturating_add(b.invalid),
        unexpected: a.unexpected.saturating_add(b.unexpected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_counts_into_buckets_and_accumulates() {
        let mut h = Histogram::default();
        for ms in [5, 10, 40, 40, 700, 9000] {
            h.observe(Duration::from_millis(ms));
        }
        assert_eq!(h.count, 6);
        assert!((h.sum_s - 9.795).abs() < 1e-9);
        let c = h.cumulative();
        assert_eq!(c[0], 2, "≤ 10 ms");
        assert_eq!(c[2], 4, "≤ 50 ms");
        assert_eq!(c[7], 5, "≤ 1 s");
        assert_eq!(c[LATENCY_BUCKETS_S.len()], 6, "+Inf");
    }
}
