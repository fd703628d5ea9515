//! Regressions of the Modbus client found by fuzzing, replayed with the fuzz target's
//! own driver loop (`core/fuzz/fuzz_targets/rtu_client.rs`).

use p1lb_core::modbus::{Client, ClientConfig, Reply, Request, Words, crc16_modbus};
include!("support/rtu_client_driver.rs");

/// Found by the `rtu_client` fuzz target: garbage held by the stream framer left its
/// idle deadline in the past for several polls, so `poll_timeout` kept answering a
/// time already gone (a driver sleeping until it would spin).
#[test]
fn idle_deadline_is_never_left_in_the_past() {
    let input = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rtu_client_idle_deadline.bin"
    ))
    .expect("regression input");
    run(&input);
}
