//! A checked, zero-copy view over the bytes of one telegram.
//!
//! ```text
//! /ISK5\2M550T-1012          header (after `/`)
//!                            empty line
//! 1-0:1.8.1(002130.115*kWh)  object: OBIS reference and one or more (value) groups
//! 0-1:24.3.0(…)(m3)          DSMR 2/3: an object may continue on the next line
//! (00001.001)
//! !56DD                      footer (`!` is the last byte of the view)
//! ```

use super::reader::CrcStatus;
use super::value::Value;

/// Why the bytes of a telegram are not valid P1 syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Does not start with `/`, end with `!`, or the header line is not printable text.
    Header,
    /// The given line (1-based, header = 1) is not `OBIS(value)…` or `(value)…`.
    Line(u16),
}

impl core::fmt::Display for Malformed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Malformed::Header => write!(f, "malformed header"),
            Malformed::Line(n) => write!(f, "malformed line {n}"),
        }
    }
}

/// An OBIS reference `A-B:C.D.E`, optionally `*F` (F = 255 when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Obis {
    /// Medium (0 abstract, 1 electricity, …).
    pub a: u8,
    /// Channel (M-Bus channel for gas/water/heat meters).
    pub b: u8,
    /// Quantity.
    pub c: u8,
    /// Processing.
    pub d: u8,
    /// Tariff / classification.
    pub e: u8,
    /// Historical value; 255 = current (also when not printed).
    pub f: u8,
}

impl Obis {
    /// `A-B:C.D.E` with F = 255.
    pub const fn new(a: u8, b: u8, c: u8, d: u8, e: u8) -> Self {
        Self {
            a,
            b,
            c,
            d,
            e,
            f: 255,
        }
    }

    /// Parses an OBIS reference at the start of `s`; returns it and the bytes used.
    pub fn parse_prefix(s: &[u8]) -> Option<(Obis, usize)> {
        let mut pos = 0;
        let a = field(s, &mut pos, Some(b'-'))?;
        let b = field(s, &mut pos, Some(b':'))?;
        let c = field(s, &mut pos, Some(b'.'))?;
        let d = field(s, &mut pos, Some(b'.'))?;
        let e = field(s, &mut pos, None)?;
        let mut obis = Obis::new(a, b, c, d, e);
        if s.get(pos) == Some(&b'*') {
            pos += 1;
            obis.f = field(s, &mut pos, None)?;
        }
        Some((obis, pos))
    }

    /// Equal ignoring the channel (B): for M-Bus objects, which exist per channel.
    pub fn eq_any_channel(&self, other: &Obis) -> bool {
        Obis { b: 0, ..*self } == Obis { b: 0, ..*other }
    }
}

/// One decimal field of 1–3 digits (≤ 255) at `pos`, then the separator if any.
fn field(s: &[u8], pos: &mut usize, sep: Option<u8>) -> Option<u8> {
    let start = *pos;
    let mut v: u16 = 0;
    while let Some(&b) = s.get(*pos) {
        if !b.is_ascii_digit() || *pos - start >= 3 {
            break;
        }
        v = v * 10 + u16::from(b - b'0');
        *pos += 1;
    }
    if *pos == start {
        return None;
    }
    if let Some(sep) = sep {
        if s.get(*pos) != Some(&sep) {
            return None;
        }
        *pos += 1;
    }
    u8::try_from(v).ok()
}

impl core::fmt::Display for Obis {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}-{}:{}.{}.{}", self.a, self.b, self.c, self.d, self.e)?;
        if self.f != 255 {
            write!(f, "*{}", self.f)?;
        }
        Ok(())
    }
}

/// One COSEM object of a telegram: its OBIS reference and its value groups.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    /// The reference.
    pub obis: Obis,
    groups: &'a [u8],
}

impl<'a> Object<'a> {
    /// The `(…)` groups, in order (continuation lines included).
    pub fn values(&self) -> Groups<'a> {
        Groups { rest: self.groups }
    }

    /// The `i`-th group.
    pub fn value(&self, i: usize) -> Option<Value<'a>> {
        self.values().nth(i)
    }

    /// The last group (the reading, for objects prefixed by timestamps).
    pub fn last_value(&self) -> Option<Value<'a>> {
        self.values().last()
    }

    /// The raw bytes of all groups as printed (brackets included).
    pub fn raw(&self) -> &'a [u8] {
        self.groups
    }
}

/// Iterator over the value groups of an [`Object`].
#[derive(Debug, Clone)]
pub struct Groups<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Groups<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        let open = self.rest.iter().position(|&b| b == b'(')?;
        let after = self.rest.get(open + 1..)?;
        let close = after.iter().position(|&b| b == b')')?;
        let content = &after[..close];
        self.rest = &after[close + 1..];
        Some(Value::new(content))
    }
}

/// A telegram whose framing and syntax have been checked.
#[derive(Debug, Clone, Copy)]
pub struct Telegram<'a> {
    bytes: &'a [u8],
    crc: CrcStatus,
    header_end: usize,
    skipped_lines: usize,
}

impl<'a> Telegram<'a> {
    /// Checks `bytes` (from `/` to `!` inclusive) and builds the view.
    ///
    /// With a verified CRC ([`CrcStatus::Ok`]), lines that are not valid syntax are a
    /// meter's quirk, not line noise: they are skipped (and counted). Without a CRC,
    /// any such line rejects the telegram.
    pub fn new_checked(bytes: &'a [u8], crc: CrcStatus) -> Result<Self, Malformed> {
        if bytes.first() != Some(&b'/') || bytes.last() != Some(&b'!') {
            return Err(Malformed::Header);
        }
        let header_end = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(Malformed::Header)?;
        let header = trim_cr(&bytes[1..header_end]);
        if header.is_empty() || !header.iter().all(|b| (0x20..0x7f).contains(b)) {
            return Err(Malformed::Header);
        }
        let t = Telegram {
            bytes,
            crc,
            header_end,
            skipped_lines: 0,
        };
        let mut skipped = 0;
        for item in t.lines() {
            if let Err(line) = item {
                if crc == CrcStatus::Absent {
                    return Err(Malformed::Line(line));
                }
                skipped += 1;
            }
        }
        Ok(Telegram {
            skipped_lines: skipped,
            ..t
        })
    }

    /// The identification line, without `/` and the line end (e.g. `ISK5\2M550T-1012`).
    pub fn header(&self) -> &'a [u8] {
        trim_cr(&self.bytes[1..self.header_end])
    }

    /// The bytes of the telegram from `/` to `!` inclusive (what the CRC covers).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// What the footer said.
    pub fn crc(&self) -> CrcStatus {
        self.crc
    }

    /// Lines of a CRC-verified telegram that were not valid syntax and are ignored.
    pub fn skipped_lines(&self) -> usize {
        self.skipped_lines
    }

    /// The objects in order of appearance.
    pub fn objects(&self) -> Objects<'a> {
        Objects {
            lines: self.lines(),
        }
    }

    /// The first object with this reference.
    pub fn find(&self, obis: Obis) -> Option<Object<'a>> {
        self.objects().find(|o| o.obis == obis)
    }

    /// True when the telegram names a dialect that always carries a CRC: a DSMR
    /// version (1-3:0.2.8) of 4.0 or later, or an e-MUCS version (0-0:96.1.4).
    pub fn requires_crc(&self) -> bool {
        self.objects().any(|o| {
            let dsmr4 = o.obis == Obis::new(1, 3, 0, 2, 8)
                && o.value(0)
                    .and_then(|v| v.decimal())
                    .is_some_and(|d| d.mantissa() >= 40);
            dsmr4 || o.obis == Obis::new(0, 0, 96, 1, 4)
        })
    }

    fn lines(&self) -> Lines<'a> {
        let body_start = self.header_end + 1;
        let body_end = self.bytes.len() - 1; // before `!`
        Lines {
            body: self.bytes.get(body_start..body_end).unwrap_or(&[]),
            pos: 0,
            line_no: 2,
        }
    }
}

fn trim_cr(s: &[u8]) -> &[u8] {
    s.strip_suffix(b"\r").unwrap_or(s)
}

/// Walks the body in one pass, line by line, joining continuation lines (DSMR 2/3)
/// to their object.
#[derive(Clone)]
struct Lines<'a> {
    body: &'a [u8],
    pos: usize,
    /// The number of the line at `pos` (header = 1).
    line_no: u16,
}

/// A byte allowed inside `(…)`: printable ASCII except the brackets.
fn is_value_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'(' && b != b')'
}

impl<'a> Lines<'a> {
    fn peek(&self) -> Option<u8> {
        self.body.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// Parses `(…)(…)…` at `pos`; returns how many groups. Stops before anything else.
    fn groups(&mut self) -> Option<usize> {
        let mut n = 0;
        loop {
            self.skip_spaces();
            if self.peek() != Some(b'(') {
                return Some(n);
            }
            self.pos += 1;
            let rest = self.body.get(self.pos..).unwrap_or(&[]);
            let len = rest.iter().position(|&b| !is_value_byte(b))?;
            if rest[len] != b')' {
                return None;
            }
            self.pos += len + 1;
            n += 1;
        }
    }

    /// At the end of a line (spaces, CR allowed): consumes the LF and returns true.
    fn end_of_line(&mut self) -> bool {
        self.skip_spaces();
        if self.peek() == Some(b'\r') {
            self.pos += 1;
        }
        match self.peek() {
            None => true,
            Some(b'\n') => {
                self.pos += 1;
                self.line_no = self.line_no.saturating_add(1);
                true
            }
            Some(_) => false,
        }
    }

    /// Skips the rest of a bad line; returns its number.
    fn skip_line(&mut self, no: u16) -> u16 {
        let rest = self.body.get(self.pos..).unwrap_or(&[]);
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.pos += i + 1;
                self.line_no = self.line_no.saturating_add(1);
            }
            None => self.pos = self.body.len(),
        }
        no
    }
}

impl<'a> Iterator for Lines<'a> {
    /// An object, or the number of a line that is not valid syntax.
    type Item = Result<Object<'a>, u16>;

    fn next(&mut self) -> Option<Self::Item> {
        // Blank lines (and leading spaces) are not objects.
        loop {
            match self.peek()? {
                b' ' | b'\r' => self.pos += 1,
                b'\n' => {
                    self.pos += 1;
                    self.line_no = self.line_no.saturating_add(1);
                }
                _ => break,
            }
        }
        let no = self.line_no;
        let Some((obis, used)) = Obis::parse_prefix(&self.body[self.pos..]) else {
            return Some(Err(self.skip_line(no)));
        };
        self.pos += used;
        let start = self.pos;
        if self.groups().is_none_or(|n| n == 0) {
            return Some(Err(self.skip_line(no)));
        }
        let mut end = self.pos;
        if !self.end_of_line() {
            return Some(Err(self.skip_line(no)));
        }
        // Continuation lines: `(…)` alone on the next line.
        loop {
            let save = (self.pos, self.line_no);
            self.skip_spaces();
            if self.peek() != Some(b'(') {
                self.pos = save.0;
                break;
            }
            let ok = self.groups().is_some();
            let cont_end = self.pos;
            if !ok || !self.end_of_line() {
                // Not a clean continuation: left for the next call to report.
                (self.pos, self.line_no) = save;
                break;
            }
            end = cont_end;
        }
        Some(Ok(Object {
            obis,
            groups: &self.body[start..end],
        }))
    }
}

/// Iterator over the objects of a [`Telegram`] (lines that are not valid syntax, only
/// possible in a CRC-verified telegram, are skipped).
#[derive(Clone)]
pub struct Objects<'a> {
    lines: Lines<'a>,
}

impl core::fmt::Debug for Objects<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Objects").finish_non_exhaustive()
    }
}

impl<'a> Iterator for Objects<'a> {
    type Item = Object<'a>;
    fn next(&mut self) -> Option<Object<'a>> {
        loop {
            match self.lines.next()? {
                Ok(o) => return Some(o),
                Err(_) => continue,
            }
        }
    }
}
