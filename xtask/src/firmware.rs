//! `cargo xtask firmware`: not built yet.

use anyhow::{Result, bail};

/// Entry point of `cargo xtask firmware`.
pub fn run(_args: &[String]) -> Result<()> {
    bail!("`cargo xtask firmware` is not built yet")
}
