//! p1lb: the Linux daemon and CLI around `p1lb-core`.
//!
//! - [`run`]: `p1lb run`, the gateway daemon; its tasks are in [`daemon`].
//! - [`parse`]: `p1lb parse`, decode a recorded P1 stream.
//! - [`telegram_json`]: the JSON contract of `p1lb parse --json`.
//! - [`sim`]: the simulator (house, car, meter, fuse, oracle, scenarios).
//! - [`simulate`]: `p1lb simulate`, runs scenarios and prints, plots and exports them.
#![warn(missing_docs)]

pub mod daemon;
pub mod parse;
pub mod run;
pub mod sim;
pub mod simulate;
pub mod telegram_json;
