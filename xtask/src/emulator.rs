//! `cargo xtask emulator`: not built yet.

use anyhow::{Result, bail};

/// Entry point of `cargo xtask emulator`.
pub fn run(_args: &[String]) -> Result<()> {
    bail!("`cargo xtask emulator` is not built yet")
}
