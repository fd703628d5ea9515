//! `cargo xtask emulator`: runs the release firmware in rp2040js (npm, pinned to
//! exactly 1.4.1 in `tests/emulator/package-lock.json`) against simulated devices:
//! builds the ELF, installs the Node project with `npm ci` when `node_modules` is
//! missing, then runs every scenario of `tests/emulator/scenarios/` with `node --test`,
//! one process per scenario file, several in parallel.
//!
//! Options: `--no-build` (use the ELF as it is), and scenario file names (or parts of
//! them) to run only those, e.g. `cargo xtask emulator 05 boot2`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{firmware, root, run_cmd};

/// The Node project of the emulator tests.
pub fn project_dir() -> PathBuf {
    root().join("tests/emulator")
}

/// Entry point of `cargo xtask emulator`.
pub fn run(args: &[String]) -> Result<()> {
    let build = !args.iter().any(|a| a == "--no-build");
    let filters: Vec<&String> = args.iter().filter(|a| *a != "--no-build").collect();
    if let Some(a) = filters.iter().find(|a| a.starts_with('-')) {
        bail!("unknown option {a:?} (options: --no-build, scenario names)");
    }
    let start = Instant::now();
    let elf = if build {
        firmware::build()?
    } else {
        firmware::elf_path()?
    };
    if !elf.exists() {
        bail!("no firmware ELF at {}", elf.display());
    }
    let dir = project_dir();
    if !dir.join("node_modules/rp2040js/package.json").exists() {
        run_cmd(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
        )
        .context("installing the emulator's Node packages (needs Node 20 and npm)")?;
    }
    let mut scenarios: Vec<String> = std::fs::read_dir(dir.join("scenarios"))
        .context("listing tests/emulator/scenarios")?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test.js"))
        .filter(|n| filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str())))
        .collect();
    scenarios.sort();
    if scenarios.is_empty() {
        bail!("no scenario matches {filters:?}");
    }
    // One process per file; the emulator is single-threaded.
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut node = Command::new("node");
    node.current_dir(&dir)
        .arg("--test")
        .arg(format!("--test-concurrency={jobs}"))
        .args(scenarios.iter().map(|s| format!("scenarios/{s}")))
        .env("P1LB_FIRMWARE_ELF", &elf);
    run_cmd(&mut node)?;
    let measurements = dir.join("measurements.json");
    if let Ok(text) = std::fs::read_to_string(&measurements) {
        println!("measurements ({}):\n{text}", measurements.display());
    }
    println!(
        "emulator: {} scenario files passed in {:.1} s",
        scenarios.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
