//! The release firmware on an emulated RP2040 (issue 7): runs `cargo xtask emulator`
//! (rp2040js 1.4.1 under Node, the scenarios of `tests/emulator/scenarios/`), so the
//! README's test command covers it. Skips loudly without `node` and `npm`, except
//! under CI, where that is a failure.

mod common;

use std::path::Path;
use std::process::Command;

use common::have;

#[test]
fn firmware_scenarios_on_the_emulated_rp2040() {
    let node = have("node", &["--version"], "install Node.js 20");
    let npm = have("npm", &["--version"], "install npm");
    if !(node && npm) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["xtask", "emulator"])
        .status()
        .expect("cargo xtask emulator runs");
    assert!(status.success(), "cargo xtask emulator failed: {status}");
}
