//! The release firmware on an emulated RP2040 (issue 7): runs `cargo xtask emulator`
//! (rp2040js 1.4.1 under Node, the scenarios of `tests/emulator/scenarios/`), so the
//! README's test command covers it. Skips loudly without `node` and `npm`, except
//! under CI, where that is a failure.

use std::path::Path;
use std::process::{Command, Stdio};

/// True when `tool` runs; else skips loudly (false), or panics under CI.
fn have(tool: &str, args: &[&str], install: &str) -> bool {
    let ok = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = format!("{tool} is not available ({install}): SKIPPING the emulator scenarios");
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
            panic!("{msg} — not allowed under CI");
        }
        eprintln!("\n!!!!!!!! {msg} !!!!!!!!\n");
    }
    ok
}

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
