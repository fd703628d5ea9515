//! The RTU client on arbitrary replies at arbitrary times, through both inputs
//! (stream bytes and whole frames): never panics, always ends every request with a
//! result, and a read's registers are as many as asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p1lb_core::modbus::{Client, ClientConfig, Reply, Request, Words, crc16_modbus};

include!("../../tests/support/rtu_client_driver.rs");

fuzz_target!(|data: &[u8]| run(data));
