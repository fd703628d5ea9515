//! The balancer (control law and allocator) on arbitrary sites, grid currents, charger
//! read-backs, caps, configurations and times: never panics, every charger's value is 0
//! or between the minimum and its maximum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p1lb_core::balancer::Balancer;
use p1lb_core::config::Config;

include!("../../tests/support/balancer_driver.rs");

fuzz_target!(|data: &[u8]| run(data));
