//! # p1lb-core
//!
//! The shared, sans-IO core of p1lb: everything that decides something lives here and
//! is tested on the host; the Linux daemon and the RP2040 firmware only move bytes and
//! time in and out of it.
//!
//! - [`time`]: [`time::Instant`] and [`time::Duration`], the clock every entry point is
//!   fed (microseconds, saturating arithmetic); it imports nothing from the core.
//! - [`p1`]: the P1 smart-meter telegram reader (framing, CRC, syntax, dialects) and the
//!   fixed-point model of one reading.
//! - [`config`]: the saved settings as data (one table), with their validation.
//! - `config_store` (feature `flash-store`): the configuration on NOR flash, power-cut safe.
//! - [`abb`]: the ABB Terra AC driver (master role): what to write and read, and when.
//! - [`balancer`]: the control law (stepped and headroom modes), fed readings and time.
//! - [`device`]: the register map and the balancer as one value, with the entry points
//!   every product calls (telegram, tick, register write, charger status).
//! - [`bus_master`]: the RS485 master role sans-IO: the Terra AC driver and the gateway
//!   sharing one RTU client.
//! - [`capacity`]: the capacity tariff's quarter-hour account (settings 1072–1074).
//! - [`solar`]: the charge modes (setting 1080): the surplus and the start/stop timers.
//! - [`led`]: the status LED pattern as a function of state and time.
//! - [`meter_emulation`]: an ABB EV3-style meter served from P1 readings (server role).
//! - [`registers`]: the public Modbus register map as data, with the read and write
//!   entry points (staged settings, save, override cap, status).
//! - [`modbus`]: the Modbus RTU codec: frames, exceptions, framers, a sans-IO client and
//!   the gateway; it depends on nothing else here.
//! - [`server`]: the register map's Modbus server (one frame in, the reply out).
//!
//! `no_std`, no heap. Nothing in this crate panics on input from outside: every parser
//! here takes arbitrary bytes and answers with a value or an error (fuzzed, see
//! `core/fuzz/`).
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub mod abb;
pub mod balancer;
pub mod bus_master;
pub mod capacity;
pub mod config;
#[cfg(feature = "flash-store")]
pub mod config_store;
pub mod device;
pub mod led;
pub mod meter_emulation;
pub mod modbus;
pub mod p1;
pub mod registers;
pub mod server;
pub mod solar;
pub mod time;
pub mod write_path;
