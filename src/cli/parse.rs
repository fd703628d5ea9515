//! `p1lb parse FILE|-`: decode a recorded (or live) P1 stream and print every
//! telegram, its CRC verdict and the rejection counters.

use std::io::{Read, Write};

use anyhow::{Context, Result};
use p1lb_core::p1::smarty::{SmartyEvent, SmartyKeys, SmartyReader, SmartyStats};
use p1lb_core::p1::{CrcStatus, Event, GridSource, ReaderStats, Reading, TelegramReader};

use crate::cli::telegram_json;

/// How to print.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    /// One JSON object per line per telegram (counters go to stderr).
    pub json: bool,
    /// Decrypt Luxembourg Smarty frames with these keys first.
    pub smarty: Option<SmartyKeys>,
    /// Refuse telegrams without a CRC (a 115200 8N1 line: DSMR 4/5, e-MUCS, Smarty,
    /// Nordic).
    pub require_crc: bool,
}

/// What a run found.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    /// The telegram reader's counters.
    pub reader: ReaderStats,
    /// The Smarty decrypter's counters, when keys were given.
    pub smarty: Option<SmartyStats>,
}

/// Reads `input` to its end in chunks, printing each telegram to `out` as it
/// completes; the counters go to `out` (table) or `diag` (JSON).
pub fn run(
    mut input: impl Read,
    mut out: impl Write,
    mut diag: impl Write,
    opts: ParseOptions,
) -> Result<Summary> {
    let mut reader: TelegramReader = TelegramReader::new();
    reader.set_crc_required(opts.require_crc);
    let mut smarty = opts.smarty.map(SmartyReader::<4096>::new);
    let mut printer = Printer {
        n: 0,
        json: opts.json,
    };
    let mut chunk = vec![0u8; 8192];
    loop {
        let got = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading the P1 input"),
        };
        let mut data = &chunk[..got];
        while !data.is_empty() {
            match smarty.as_mut() {
                None => {
                    let used = feed_telegrams(&mut reader, data, &mut printer, &mut out)?;
                    data = &data[used..];
                }
                Some(s) => {
                    let (used, event) = s.feed(data);
                    data = &data[used..];
                    match event {
                        Some(SmartyEvent::Plaintext(plain)) => {
                            let mut p = plain;
                            while !p.is_empty() {
                                let used = feed_telegrams(&mut reader, p, &mut printer, &mut out)?;
                                p = &p[used..];
                            }
                            // A frame holds one whole telegram: nothing carries over.
                            reader.reset();
                        }
                        Some(SmartyEvent::Rejected(r)) => printer.smarty_rejected(&mut out, r)?,
                        None => {}
                    }
                }
            }
        }
    }
    let summary = Summary {
        reader: *reader.stats(),
        smarty: smarty.map(|s| *s.stats()),
    };
    if opts.json {
        write_counters(&mut diag, &summary)?;
    } else {
        write_counters(&mut out, &summary)?;
    }
    Ok(summary)
}

/// Feeds one slice, printing what completes; returns the bytes consumed.
fn feed_telegrams(
    reader: &mut TelegramReader,
    data: &[u8],
    printer: &mut Printer,
    out: &mut impl Write,
) -> Result<usize> {
    let (used, event) = reader.feed(data);
    match event {
        Some(Event::Telegram(t)) => {
            printer.n += 1;
            if printer.json {
                writeln!(out, "{}", telegram_json::accepted(&t))?;
            } else {
                printer.table(out, &t)?;
            }
        }
        Some(Event::Rejected { reason, raw }) => {
            printer.n += 1;
            if printer.json {
                writeln!(out, "{}", telegram_json::rejected(&reason, raw))?;
            } else {
                let header = raw
                    .split(|&b| b == b'\r' || b == b'\n')
                    .next()
                    .unwrap_or(&[]);
                writeln!(
                    out,
                    "telegram {}: REJECTED ({reason}), header {}\n",
                    printer.n,
                    String::from_utf8_lossy(header)
                )?;
            }
        }
        None => {}
    }
    Ok(used)
}

struct Printer {
    n: usize,
    json: bool,
}

impl Printer {
    fn smarty_rejected(
        &mut self,
        out: &mut impl Write,
        r: p1lb_core::p1::smarty::SmartyRejection,
    ) -> Result<()> {
        self.n += 1;
        if self.json {
            let j = serde_json::json!({
                "valid": false, "crc": "absent", "reason": "smarty", "detail": r.to_string(), "header": ""
            });
            writeln!(out, "{j}")?;
        } else {
            writeln!(out, "frame {}: REJECTED ({r})\n", self.n)?;
        }
        Ok(())
    }

    fn table(&self, out: &mut impl Write, t: &p1lb_core::p1::Telegram<'_>) -> Result<()> {
        let crc = match t.crc() {
            CrcStatus::Ok(c) => format!("CRC ok ({c:04X})"),
            CrcStatus::Absent => "no CRC (DSMR 2/3 dialect)".to_string(),
        };
        writeln!(
            out,
            "telegram {}: valid, {crc}, header {}",
            self.n,
            String::from_utf8_lossy(t.header())
        )?;
        for o in t.objects() {
            let values: Vec<&str> = o.values().map(|v| v.text()).collect();
            writeln!(out, "  {:<14} {}", o.obis.to_string(), values.join(" | "))?;
        }
        let r = Reading::parse(t);
        let fmt = |x: Option<i32>| x.map_or("-".to_string(), |v| v.to_string());
        let g = r.grid_currents_ma(GridSource::Auto);
        writeln!(
            out,
            "  grid current (mA, import +): L1 {}  L2 {}  L3 {}",
            fmt(g[0]),
            fmt(g[1]),
            fmt(g[2])
        )?;
        if t.skipped_lines() > 0 {
            writeln!(out, "  ({} unreadable lines skipped)", t.skipped_lines())?;
        }
        writeln!(out)?;
        Ok(())
    }
}

fn write_counters(out: &mut impl Write, s: &Summary) -> Result<()> {
    let r = &s.reader;
    writeln!(
        out,
        "valid {}, rejected {} (bad_crc {}, truncated {}, bad_footer {}, missing_crc {}, malformed {}, line_too_long {}, telegram_too_long {}), skipped bytes {}, skipped lines {}",
        r.valid,
        r.rejected(),
        r.bad_crc,
        r.truncated,
        r.bad_footer,
        r.missing_crc,
        r.malformed,
        r.line_too_long,
        r.telegram_too_long,
        r.skipped_bytes,
        r.skipped_lines
    )?;
    if let Some(sm) = &s.smarty {
        writeln!(
            out,
            "smarty frames: decrypted {}, rejected {}",
            sm.decrypted, sm.rejected
        )?;
    }
    Ok(())
}

/// Parses a 16-byte key given as 32 hex digits.
pub fn parse_key(s: &str) -> Result<[u8; 16]> {
    let s = s.trim();
    anyhow::ensure!(
        s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "a key is 32 hex digits (16 bytes), got {:?}",
        s
    );
    let mut key = [0u8; 16];
    for (i, k) in key.iter_mut().enumerate() {
        *k = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)?;
    }
    Ok(key)
}
