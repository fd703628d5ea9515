//! p1lb: the Linux daemon and CLI around `p1lb-core`.
//!
//! - [`daemon`]: `p1lb run`, the gateway daemon ([`daemon::run`]) and its tasks.
//! - [`cli`]: the other commands (`config`, `monitor`, `parse`, `simulate`,
//!   `sim-charger`, `home-assistant`), one file each, and what they share.
//!
//! The simulator is its own crate, `p1lb-sim` (`sim/`), used by the daemon (the
//! built-in simulation) and the CLI (`p1lb simulate`, `p1lb sim-charger`).
//! - [`rtu_io`]: the core's Modbus RTU codec on tokio byte streams, for the daemon's
//!   RS485 port and the simulated charger.
#![warn(missing_docs)]

pub mod cli;
pub mod daemon;
pub mod rtu_io;
