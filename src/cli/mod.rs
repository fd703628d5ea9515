//! The commands of the `p1lb` command line other than `run` (the daemon,
//! [`crate::daemon::run`]), one file each, and what they share.
//!
//! - [`config`]: `p1lb config`, registers by name and unit over Modbus.
//! - [`monitor`]: `p1lb monitor`, the live state over Modbus.
//! - [`device`], [`units`]: what those two share: reaching a device, failures and exit
//!   codes; registers by name, values with units, state and flag names.
//! - [`parse`]: `p1lb parse`, decode a recorded P1 stream; [`telegram_json`]: the JSON
//!   contract of `p1lb parse --json`.
//! - [`simulate`]: `p1lb simulate`, runs scenarios and prints, plots and exports them.
//! - [`sim_charger`]: `p1lb sim-charger`, a simulated Terra AC on a serial port.
//! - [`home_assistant`]: the Home Assistant package generated from the register map.

pub mod config;
pub mod device;
pub mod home_assistant;
pub mod monitor;
pub mod parse;
pub mod sim_charger;
pub mod simulate;
pub mod telegram_json;
pub mod units;
