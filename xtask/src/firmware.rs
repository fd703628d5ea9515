//! `cargo xtask firmware`: builds the RP2040 release ELF (`firmware/`, its own cargo
//! workspace), converts it to a `.uf2` for BOOTSEL drag-and-drop with `elf2uf2-rs`
//! (crates.io, 2.2, installed with `--no-default-features`), and prints the size report:
//! flash (vector table, boot2, code, read-only data, initialised data) and static RAM
//! (initialised data, zeroed data), failing above the budget (128 KiB flash, 32 KiB RAM).
//!
//! Options: `--no-uf2` (build and size only).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{root, run_cmd};

/// Flash budget of the image (issue 6).
pub const FLASH_BUDGET: u64 = 128 * 1024;
/// Static RAM budget (issue 6).
pub const RAM_BUDGET: u64 = 32 * 1024;

/// The release ELF's path: under the firmware workspace's target directory, as cargo
/// reports it (`CARGO_TARGET_DIR` and `build.target-dir` honoured).
pub fn elf_path() -> Result<PathBuf> {
    let out = Command::new(env_cargo())
        .current_dir(root().join("firmware"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("cannot start cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata in firmware/ failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let dir = json_string(&text, "target_directory")
        .context("cargo metadata named no target_directory")?;
    Ok(PathBuf::from(dir).join("thumbv6m-none-eabi/release/p1lb-firmware"))
}

/// The string value of the first `"key":"…"` in a line of JSON (cargo's output), with
/// its escapes undone.
fn json_string(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut out = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Entry point of `cargo xtask firmware`.
pub fn run(args: &[String]) -> Result<()> {
    let uf2 = !args.iter().any(|a| a == "--no-uf2");
    if let Some(a) = args.iter().find(|a| *a != "--no-uf2") {
        bail!("unknown option {a:?} (options: --no-uf2)");
    }
    let elf = build()?;
    let sizes =
        Sizes::of(&std::fs::read(&elf).with_context(|| format!("reading {}", elf.display()))?)?;
    println!("{}", sizes.report());
    if uf2 {
        let out = elf.with_extension("uf2");
        run_cmd(Command::new("elf2uf2-rs").arg(&elf).arg(&out)).context(
            "converting to UF2 (install the converter: \
             cargo install --locked elf2uf2-rs@2.2.0 --no-default-features)",
        )?;
        let blocks = check_uf2(&out)?;
        println!(
            "UF2 image: {} ({blocks} blocks of 256 bytes)",
            out.display()
        );
    }
    println!("ELF: {}", elf.display());
    sizes.check()
}

/// Builds the release ELF and returns its path.
pub fn build() -> Result<PathBuf> {
    let dir = root().join("firmware");
    // The firmware's .cargo/config.toml (target, linker scripts) applies from its folder.
    run_cmd(
        Command::new(env_cargo())
            .current_dir(&dir)
            .args(["build", "--release"]),
    )?;
    elf_path()
}

fn env_cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Section sizes of an image, by where they live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Bytes in flash: allocated sections with contents (code, constants, the copy of
    /// `.data`, vector table, boot2).
    pub flash: u64,
    /// Bytes of static RAM: `.data`, `.bss`, `.uninit` (the stack comes on top).
    pub ram: u64,
}

impl Sizes {
    /// Reads the section table of a 32-bit little-endian ELF.
    pub fn of(elf: &[u8]) -> Result<Sizes> {
        if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&1) || elf.get(5) != Some(&1) {
            bail!("not a 32-bit little-endian ELF");
        }
        let u16_at = |o: usize| -> Result<u64> {
            let b = elf.get(o..o + 2).context("ELF truncated")?;
            Ok(u64::from(u16::from_le_bytes([b[0], b[1]])))
        };
        let u32_at = |o: usize| -> Result<u64> {
            let b = elf.get(o..o + 4).context("ELF truncated")?;
            Ok(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        };
        let shoff = u32_at(0x20)? as usize;
        let shentsize = u16_at(0x2e)? as usize;
        let shnum = u16_at(0x30)? as usize;
        let (mut flash, mut ram) = (0, 0);
        for i in 0..shnum {
            let sh = shoff + i * shentsize;
            let (kind, flags, addr, size) = (
                u32_at(sh + 4)?,
                u32_at(sh + 8)?,
                u32_at(sh + 12)?,
                u32_at(sh + 20)?,
            );
            const SHF_ALLOC: u64 = 2;
            const SHT_NOBITS: u64 = 8;
            if flags & SHF_ALLOC == 0 || size == 0 {
                continue;
            }
            let in_ram = (0x2000_0000..0x3000_0000).contains(&addr);
            if in_ram {
                ram += size;
            }
            // Contents to load: in flash (RAM sections with contents are copied from
            // flash at start).
            if kind != SHT_NOBITS {
                flash += size;
            }
        }
        Ok(Sizes { flash, ram })
    }

    /// The report printed by the task.
    pub fn report(&self) -> String {
        format!(
            "RP2040 firmware size (release, thumbv6m-none-eabi):\n  flash {:>7} bytes ({:.1} KiB of {} KiB budget)\n  RAM   {:>7} bytes ({:.1} KiB static of {} KiB budget; stack on top)",
            self.flash,
            self.flash as f64 / 1024.0,
            FLASH_BUDGET / 1024,
            self.ram,
            self.ram as f64 / 1024.0,
            RAM_BUDGET / 1024,
        )
    }

    /// Fails above the budget.
    pub fn check(&self) -> Result<()> {
        if self.flash > FLASH_BUDGET || self.ram > RAM_BUDGET {
            bail!("firmware over budget: {}", self.report());
        }
        Ok(())
    }
}

/// Whether `path` looks like a UF2 image for the RP2040: every 512-byte block has the
/// magic numbers and the RP2040 family id, and the blocks are numbered in order.
pub fn check_uf2(path: &Path) -> Result<usize> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.is_empty() || bytes.len() % 512 != 0 {
        bail!("UF2 length {} is not a multiple of 512", bytes.len());
    }
    let blocks = bytes.len() / 512;
    for (i, block) in bytes.chunks(512).enumerate() {
        let word =
            |o: usize| u32::from_le_bytes([block[o], block[o + 1], block[o + 2], block[o + 3]]);
        let ok = word(0) == 0x0A32_4655
            && word(4) == 0x9E5D_5157
            && word(508) == 0x0AB1_6F30
            && word(28) == 0xE48B_FF56
            && word(20) as usize == i
            && word(24) as usize == blocks;
        if !ok {
            bail!("UF2 block {i} is malformed");
        }
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_read_with_their_escapes() {
        let line = r#"{"packages":[],"target_directory":"/tmp/a \"b\"\\c\u00e9","version":1}"#;
        assert_eq!(
            json_string(line, "target_directory").as_deref(),
            Some("/tmp/a \"b\"\\cé")
        );
        assert_eq!(json_string(line, "workspace_root"), None);
        assert_eq!(
            json_string(r#"{"target_directory":"/unterminated"#, "target_directory"),
            None
        );
    }

    /// A minimal ELF32 with the given (type, flags, addr, size) sections.
    fn elf(sections: &[(u32, u32, u32, u32)]) -> Vec<u8> {
        let mut e = vec![0u8; 52];
        e[..6].copy_from_slice(b"\x7fELF\x01\x01");
        e[0x20..0x24].copy_from_slice(&52u32.to_le_bytes());
        e[0x2e..0x30].copy_from_slice(&40u16.to_le_bytes());
        e[0x30..0x32].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        for &(kind, flags, addr, size) in sections {
            let mut sh = [0u8; 40];
            sh[4..8].copy_from_slice(&kind.to_le_bytes());
            sh[8..12].copy_from_slice(&flags.to_le_bytes());
            sh[12..16].copy_from_slice(&addr.to_le_bytes());
            sh[20..24].copy_from_slice(&size.to_le_bytes());
            e.extend_from_slice(&sh);
        }
        e
    }

    #[test]
    fn flash_and_ram_are_counted_by_place_and_kind() {
        let e = elf(&[
            (1, 6, 0x1000_0100, 1000), // .text
            (1, 2, 0x1000_0500, 200),  // .rodata
            (1, 3, 0x2000_0000, 30),   // .data: flash and RAM
            (8, 3, 0x2000_0020, 400),  // .bss: RAM only
            (1, 0, 0, 9999),           // .debug_info: neither
        ]);
        assert_eq!(
            Sizes::of(&e).unwrap(),
            Sizes {
                flash: 1230,
                ram: 430
            }
        );
    }

    #[test]
    fn not_an_elf_is_an_error_not_a_panic() {
        assert!(Sizes::of(b"").is_err());
        assert!(Sizes::of(b"\x7fELF\x02\x01").is_err());
        let mut truncated = elf(&[(1, 6, 0x1000_0100, 1000)]);
        truncated.truncate(60);
        assert!(Sizes::of(&truncated).is_err());
    }

    #[test]
    fn over_budget_fails() {
        assert!(
            Sizes {
                flash: FLASH_BUDGET + 1,
                ram: 0
            }
            .check()
            .is_err()
        );
        assert!(
            Sizes {
                flash: 0,
                ram: RAM_BUDGET + 1
            }
            .check()
            .is_err()
        );
        assert!(
            Sizes {
                flash: FLASH_BUDGET,
                ram: RAM_BUDGET
            }
            .check()
            .is_ok()
        );
    }
}
