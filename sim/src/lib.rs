//! p1lb-sim, the simulator: deterministic models of a house, a car behind its charger,
//! a smart meter and the main fuse, run faster than real time around the real balancer
//! ([`p1lb_core::balancer`]), the real P1 reader ([`p1lb_core::p1`]) and the real Terra
//! AC driver on a byte-timed bus ([`p1lb_core::bus_master`]). Sans-IO like the core:
//! `p1lb simulate` runs it, the daemon's built-in simulation feeds its house and charger
//! to the real tasks in real time. Depends on the core only, never the reverse.
//!
//! - [`house`]: base load, appliances per phase, solar export; [`pv`]: solar panels
//!   under a sky of the day (by date and hour, passing clouds, one or three phases).
//! - [`charger`]: the Terra AC (registers, answers Modbus RTU frames) the car is behind;
//!   [`bus`]: the RS485 line between it and the core's driver.
//! - [`car`]: follows the charger's setpoint with delay and ramp; pauses; 1 or 3 phases.
//! - [`meter`]: real DSMR 5 / e-MUCS telegram bytes with CRC; silence, corruption.
//! - [`fuse`]: the main breaker's thermal model (IEC 60898-1 points).
//! - [`oracle`]: the best limit with perfect knowledge: the 100 % mark; the causal
//!   yardsticks, for one charger or several ([`p1lb_core::balancer::share`]: the core's sharing rules).
//! - [`scenario`]: the named scenarios; [`replay`]: a recorded P1 stream as the house.
//! - [`runner`]: one run, second by second; [`plot`]: the SVG chart.
//! - [`rng`], [`time`]: the seeded PRNG and the meter's clock.
//! - [`tariff`]: the capacity tariff's arithmetic (month peaks, quarters over the target, the
//!   yearly cost).
#![warn(missing_docs)]

pub mod bus;
pub mod car;
pub mod charger;
pub mod fuse;
pub mod house;
pub mod meter;
pub mod oracle;
pub mod plot;
pub mod pv;
pub mod replay;
pub mod rng;
pub mod runner;
pub mod scenario;
pub mod tariff;
pub mod time;
