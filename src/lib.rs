//! p1lb: the Linux daemon and CLI around `p1lb-core`.
//!
//! - [`run`]: `p1lb run`, the gateway daemon; its tasks are in [`daemon`].
//! - [`cli_config`]: `p1lb config`, registers by name and unit over Modbus.
//! - [`monitor`]: `p1lb monitor`, the live state over Modbus.
//! - [`home_assistant`]: the Home Assistant package generated from the register map.
//! - [`parse`]: `p1lb parse`, decode a recorded P1 stream.
//! - [`telegram_json`]: the JSON contract of `p1lb parse --json`.
//! - [`sim`]: the simulator (house, car, meter, fuse, oracle, scenarios).
//! - [`simulate`]: `p1lb simulate`, runs scenarios and prints, plots and exports them.
//! - [`sim_charger`]: `p1lb sim-charger`, a simulated Terra AC on a serial port.
#![warn(missing_docs)]

pub mod cli_config;
pub mod daemon;
pub mod home_assistant;
pub mod monitor;
pub mod parse;
pub mod rtu_io;
pub mod run;
pub mod sim;
pub mod sim_charger;
pub mod simulate;
pub mod telegram_json;
