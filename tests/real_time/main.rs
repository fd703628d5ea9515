//! The real-time tests of the real daemon: each runs `p1lb run` on socat ptys against
//! models of the Terra AC, its car and the meter on the wall clock, for 30–140 s, and
//! spends nearly all of it waiting (together well under a tenth of one core). They live
//! in one test binary so that the test harness runs them side by side (one per core)
//! instead of one binary after another.
//!
//! - [`headroom_bus`]: stepped and headroom mode side by side through a house profile,
//!   against an ideal causal controller.
//! - [`chaos`]: 90 s of random faults with the daemon's invariants checked every second.
//! - [`shared_bus`]: two Terra AC units on one line sharing the connection per phase.
//! - [`solar_daemon`]: a solar-only charge starting, following and pausing.
//! - [`capacity_daemon`]: a capacity-tariff quarter fed through a pty in seconds.

#[path = "../common/mod.rs"]
mod common;

mod capacity_daemon;
mod chaos;
mod headroom_bus;
mod shared_bus;
mod solar_daemon;
