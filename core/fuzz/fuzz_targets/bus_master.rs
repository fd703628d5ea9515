//! The RS485 master (Terra AC driver + gateway) on arbitrary bus bytes, host frames and
//! times: never panics, never a deadline in the past, every forwarded request answered
//! exactly once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p1lb_core::bus_master::{BusMaster, MasterEvent};
use p1lb_core::config::Config;
use p1lb_core::modbus::{LineConfig, MAX_ADU};

include!("../../tests/support/bus_master_driver.rs");

fuzz_target!(|data: &[u8]| run(data));
