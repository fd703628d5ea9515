//! Shared by the daemon's integration tests: scratch folders and ports, what to write
//! to every writable register, and how to read mbpoll's output.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use p1lb_core::config::SETTINGS;

/// A fresh, empty temporary folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "p1lb-test-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A TCP port free on the loopback interface right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Every writable register with a value to write (≠ its default where the range allows)
/// and, where the range leaves room, a value that must be refused with exception 03.
pub fn write_plan() -> Vec<(u16, u16, Option<u16>)> {
    use p1lb_core::config::Range;
    let mut plan = vec![(1000u16, 10_000u16, None)]; // the override cap: any value
    for s in SETTINGS {
        let (good, bad) = match s.range {
            Range::Span(lo, hi) => (
                if s.default < hi {
                    s.default + 1
                } else {
                    s.default - 1
                }
                .clamp(lo, hi),
                hi.checked_add(1).or(lo.checked_sub(1)),
            ),
            Range::OneOf(list) => (
                list.iter()
                    .copied()
                    .find(|&v| v != s.default)
                    .unwrap_or(s.default),
                (0..=u16::MAX).find(|v| !list.contains(v)),
            ),
        };
        plan.push((s.address, good, bad));
    }
    plan
}

pub fn plan_arg() -> String {
    write_plan()
        .iter()
        .map(|(a, g, b)| match b {
            Some(b) => format!("{a}:{g}:{b}"),
            None => format!("{a}:{g}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// mbpoll's `[addr]: value` lines.
pub fn mbpoll_values(text: &str) -> Vec<(u16, u16)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (addr, value) = l.strip_prefix('[')?.split_once("]:")?;
            let v: i32 = value.split_whitespace().next()?.parse().ok()?;
            Some((addr.parse().ok()?, v as u16))
        })
        .collect()
}
