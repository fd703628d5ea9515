//! Shared helpers for the reader's integration tests: the sample corpus and a
//! feed-everything driver.
#![allow(dead_code)]

pub mod bus_car;
pub mod fluvius;
pub mod terra;

use p1lb_core::p1::{Event, Rejection, Telegram, TelegramReader};

/// The sample telegrams from real meters, copied verbatim from `shared/telegrams/`.
pub fn telegram_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/telegrams")
}

/// The bytes of one sample.
pub fn sample(name: &str) -> Vec<u8> {
    let path = telegram_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every plaintext sample (`*.txt`), sorted by name.
pub fn text_samples() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(telegram_dir())
        .expect("telegram dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

/// What one telegram came out as: the accepted bytes, or the rejection reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted(Vec<u8>),
    Rejected(Rejection),
}

/// Feeds `chunks` in order and collects every outcome.
pub fn feed_chunks<'a>(
    reader: &mut TelegramReader,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for chunk in chunks {
        let mut rest = chunk;
        let mut stalls = 0;
        while !rest.is_empty() {
            let (used, event) = reader.feed(rest);
            match event {
                Some(Event::Telegram(t)) => out.push(Outcome::Accepted(t.as_bytes().to_vec())),
                Some(Event::Rejected { reason, .. }) => out.push(Outcome::Rejected(reason)),
                None => assert_eq!(used, rest.len(), "no event must mean all input used"),
            }
            // A rejection may leave the next header unconsumed, once.
            stalls = if used == 0 { stalls + 1 } else { 0 };
            assert!(stalls < 2, "feed made no progress");
            rest = &rest[used..];
        }
    }
    out
}

/// Feeds everything at once.
pub fn feed_all(bytes: &[u8]) -> (Vec<Outcome>, p1lb_core::p1::ReaderStats) {
    let mut reader = TelegramReader::new();
    let out = feed_chunks(&mut reader, [bytes]);
    (out, *reader.stats())
}

/// The lines of one file's section (`## file`) of a sample index (INDEX.md, README.md).
pub fn index_section(index: &str, file: &str) -> Vec<String> {
    let mut lines = index.lines().skip_while(|l| *l != format!("## {file}"));
    assert!(lines.next().is_some(), "{file} has no section in the index");
    lines
        .take_while(|l| !l.starts_with("## "))
        .map(str::to_string)
        .collect()
}

/// The `- \`obis\` (groups)` lines of a section.
pub fn listed_objects(section: &[String]) -> Vec<(String, String)> {
    section
        .iter()
        .filter_map(|line| line.strip_prefix("- `"))
        .map(|rest| {
            let (obis, groups) = rest.split_once("` ").expect("- `obis` (groups)");
            (obis.to_string(), groups.to_string())
        })
        .collect()
}

/// The number as printed without leading zeros, computed independently of `Decimal`.
pub fn strip_leading_zeros(printed: &str) -> String {
    let s = printed.trim_start_matches('0');
    if s.is_empty() || s.starts_with('.') {
        format!("0{s}")
    } else {
        s.to_string()
    }
}

/// Every listed object is in the telegram with its groups exactly as printed, and each
/// number with a unit prints back as the meter printed it (leading zeros dropped).
pub fn check_objects(file: &str, t: &Telegram<'_>, want: &[(String, String)]) {
    for (obis, groups) in want {
        let o = t
            .objects()
            .find(|o| o.obis.to_string() == *obis)
            .unwrap_or_else(|| panic!("{file}: {obis} missing"));
        let printed: String = o
            .values()
            .map(|v| format!("({})", String::from_utf8_lossy(v.raw())))
            .collect();
        assert_eq!(&printed, groups, "{file}: {obis}");
        for v in o.values() {
            if let Some((d, Some(_))) = v.number() {
                let num = v.text().split('*').next().unwrap_or("");
                assert_eq!(d.to_string(), strip_leading_zeros(num), "{file}: {obis}");
            }
        }
    }
}
