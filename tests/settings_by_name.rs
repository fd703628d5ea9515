//! Settings are named, never numbered: no Rust source of the workspace or the firmware
//! reads or writes a setting or a register of the map (1000–1199) with an address
//! literal, as in `config.get(1036)`, `config.set(1031, 192)` or `raw(1010)`. A typo in
//! such a number compiles and silently reads the wrong register (or 0); the names of
//! `p1lb_core::config::address` and `p1lb_core::registers::address`, and the typed
//! accessors of `Config` (`charger_max_ma()`, `set_rs485_baud(..)`), do not.
//!
//! The public register interface keeps its numbers where it is the subject: a Modbus
//! client writing 1010 (`map.write(1010, ..)`, `write_register(1010, ..)`) is not
//! matched, only the accessor-like calls `raw(`, `get(`, `set(` and `setting(`.

use std::fs;
use std::path::{Path, PathBuf};

/// The source trees scanned, relative to the workspace root.
const TREES: &[&str] = &[
    "core/src",
    "core/tests",
    "core/fuzz",
    "src",
    "tests",
    "firmware/src",
    "tools",
    "xtask/src",
    "benches",
];

/// Calls that take a setting's or a register's address.
const CALLS: &[&str] = &["raw", "get", "set", "setting"];

/// This file: it spells the pattern out in its own tests.
const SELF: &str = "tests/settings_by_name.rs";

fn main_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, skipping build output.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `line` without its `//` comment (a `//` inside a string literal is kept).
fn code_of(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

/// The 1-based line numbers in `source` where one of [`CALLS`] takes an address
/// literal of 1000–1199 as its first argument (whitespace and line breaks between the
/// parenthesis and the number allowed; comments ignored).
fn offences(source: &str) -> Vec<usize> {
    // The code, comments blanked, and the line each byte is on.
    let mut code = String::new();
    let mut line_of = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let c = code_of(line);
        code.push_str(c);
        code.push('\n');
        line_of.extend(std::iter::repeat_n(n + 1, c.len() + 1));
    }
    let b = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut found = Vec::new();
    for call in CALLS {
        let mut from = 0;
        while let Some(at) = code[from..].find(call).map(|p| p + from) {
            from = at + call.len();
            if at > 0 && ident(b[at - 1]) {
                continue;
            }
            let mut i = at + call.len();
            if b.get(i) != Some(&b'(') {
                continue;
            }
            i += 1;
            while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
                i += 1;
            }
            let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            let number = &code[i..i + digits];
            let next = b.get(i + digits).copied().unwrap_or(b' ');
            let is_map_address =
                digits == 4 && (number.starts_with("10") || number.starts_with("11"));
            if is_map_address && !ident(next) {
                found.push(line_of[at]);
            }
        }
    }
    found.sort_unstable();
    found.dedup();
    found
}

#[test]
fn the_scanner_finds_literal_addresses_and_nothing_else() {
    let bad =
        "let a = c.get(1036);\nc.set(\n    1031,\n    192,\n);\nx.raw(1010)\nsetting(1190);\n";
    assert_eq!(offences(bad), vec![1, 2, 6, 7]);
    let good = "c.get(address::METER_EMULATION_ADDRESS);\nc.set(10, 1);\nc.set(10100, 1);\n\
                map.write(1010, &[1]);\nc.offset(1010);\nc.get(1010_u32.into())\n\
                // c.get(1010) in a comment\nlet s = \"tcp://x\"; // c.set(1031, 1)\n\
                c.get(2000);\nc.get(0x1010);\n";
    // `1010_u32` continues the number (an identifier character): not an address.
    assert_eq!(offences(good), Vec::<usize>::new());
}

#[test]
fn no_setting_is_read_or_written_by_a_literal_address() {
    let root = main_dir();
    let mut files = Vec::new();
    for tree in TREES {
        rust_files(&root.join(tree), &mut files);
    }
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("core/src/config.rs")),
        "the scan found no sources under {}",
        root.display()
    );
    let mut report = String::new();
    for file in &files {
        let relative = file.strip_prefix(&root).unwrap_or(file);
        if relative == Path::new(SELF) {
            continue;
        }
        let Ok(source) = fs::read_to_string(file) else {
            continue;
        };
        let lines: Vec<&str> = source.lines().collect();
        for n in offences(&source) {
            let text = lines.get(n - 1).map_or("", |l| l.trim());
            report.push_str(&format!("{}:{n}: {text}\n", relative.display()));
        }
    }
    assert!(
        report.is_empty(),
        "settings read or written by a numeric address; use the names of \
         p1lb_core::config::address / registers::address or Config's typed accessors:\n{report}"
    );
}
