//! `cargo xtask dist`: not built yet.

use anyhow::{Result, bail};

/// Entry point of `cargo xtask dist`.
pub fn run(_args: &[String]) -> Result<()> {
    bail!("`cargo xtask dist` is not built yet")
}
