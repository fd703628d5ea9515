//! Shared by the daemon's integration tests: what to write to every writable register
//! and how to read mbpoll's output.
#![allow(dead_code)]

use p1lb_core::config::SETTINGS;

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
