//! Streaming telegram framing: bytes in, checked telegrams or counted rejections out.

use super::crc::crc16_arc;
use super::telegram::{Malformed, Telegram};

/// Default telegram buffer: room for the longest telegram seen in the field (a DSMR 5
/// meter with four M-Bus channels and a full 1024-character text message is ~3.3 KB).
pub const DEFAULT_CAPACITY: usize = 4096;

/// The longest line accepted, CR LF included. The longest legitimate line is a DSMR 5
/// text message: 1024 characters hex-encoded (2048) plus the OBIS code and brackets.
pub const MAX_LINE_LEN: usize = 2100;

/// What the footer said about the integrity of an accepted telegram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrcStatus {
    /// The CRC-16 printed after `!` matched (the value printed).
    Ok(u16),
    /// The dialect has no CRC (DSMR 2.2 / 3, some IEC 62056-21 meters): `!` was
    /// followed directly by the line end.
    Absent,
}

/// Why a telegram was rejected. Nothing of a rejected telegram is ever parsed into a
/// reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The CRC printed in the footer does not match the bytes.
    BadCrc {
        /// The CRC the meter printed.
        printed: u16,
        /// The CRC computed over the bytes received.
        computed: u16,
    },
    /// A line was longer than [`MAX_LINE_LEN`].
    LineTooLong,
    /// The telegram did not fit the reader's buffer.
    TelegramTooLong,
    /// A new `/` header arrived before the `!` footer of the telegram in progress.
    Truncated,
    /// The footer was not `!`, up to four upper-case hex digits and the line end, or
    /// `!` did not start a line.
    BadFooter,
    /// A telegram of a dialect that always carries a CRC (it names a DSMR 4+ or e-MUCS
    /// version, or the reader requires one) arrived without one.
    MissingCrc,
    /// The telegram has no CRC and a line is not valid P1 syntax: without a CRC, a line
    /// that does not parse may be line noise, so the whole telegram is refused.
    Malformed(Malformed),
}

impl core::fmt::Display for Rejection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Rejection::BadCrc { printed, computed } => {
                write!(f, "bad CRC: printed {printed:04X}, computed {computed:04X}")
            }
            Rejection::LineTooLong => write!(f, "line longer than {MAX_LINE_LEN} bytes"),
            Rejection::TelegramTooLong => write!(f, "telegram longer than the buffer"),
            Rejection::Truncated => write!(f, "truncated: new header before the footer"),
            Rejection::BadFooter => write!(f, "malformed footer"),
            Rejection::MissingCrc => write!(f, "CRC missing in a DSMR 4+/e-MUCS telegram"),
            Rejection::Malformed(m) => write!(f, "{m}"),
        }
    }
}

impl Rejection {
    /// A short stable name for the reason (used in JSON output and counters).
    pub fn name(&self) -> &'static str {
        match self {
            Rejection::BadCrc { .. } => "bad_crc",
            Rejection::LineTooLong => "line_too_long",
            Rejection::TelegramTooLong => "telegram_too_long",
            Rejection::Truncated => "truncated",
            Rejection::BadFooter => "bad_footer",
            Rejection::MissingCrc => "missing_crc",
            Rejection::Malformed(_) => "malformed",
        }
    }
}

/// Counters of everything the reader has seen, by outcome. Saturating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Telegrams accepted.
    pub valid: u32,
    /// Rejected: CRC mismatch.
    pub bad_crc: u32,
    /// Rejected: a line longer than [`MAX_LINE_LEN`].
    pub line_too_long: u32,
    /// Rejected: longer than the buffer.
    pub telegram_too_long: u32,
    /// Rejected: cut off by the next header.
    pub truncated: u32,
    /// Rejected: malformed footer.
    pub bad_footer: u32,
    /// Rejected: DSMR 4+/e-MUCS telegram without CRC.
    pub missing_crc: u32,
    /// Rejected: a malformed line in a telegram without CRC.
    pub malformed: u32,
    /// Bytes outside any telegram that were not line ends or spaces (line noise, a
    /// meter's trailing junk).
    pub skipped_bytes: u32,
    /// Lines of accepted (CRC-verified) telegrams that are not valid P1 syntax and
    /// were skipped.
    pub skipped_lines: u32,
}

impl ReaderStats {
    /// All rejected telegrams, whatever the reason.
    pub fn rejected(&self) -> u32 {
        self.bad_crc
            .saturating_add(self.line_too_long)
            .saturating_add(self.telegram_too_long)
            .saturating_add(self.truncated)
            .saturating_add(self.bad_footer)
            .saturating_add(self.missing_crc)
            .saturating_add(self.malformed)
    }

    fn count(&mut self, r: Rejection) {
        let c = match r {
            Rejection::BadCrc { .. } => &mut self.bad_crc,
            Rejection::LineTooLong => &mut self.line_too_long,
            Rejection::TelegramTooLong => &mut self.telegram_too_long,
            Rejection::Truncated => &mut self.truncated,
            Rejection::BadFooter => &mut self.bad_footer,
            Rejection::MissingCrc => &mut self.missing_crc,
            Rejection::Malformed(_) => &mut self.malformed,
        };
        *c = c.saturating_add(1);
    }
}

/// One outcome of [`TelegramReader::feed`].
#[derive(Debug)]
pub enum Event<'a> {
    /// A telegram that passed framing, CRC and syntax checks.
    Telegram(Telegram<'a>),
    /// A telegram that was refused; `raw` holds what had been received of it (for
    /// diagnostics only: never parse it).
    Rejected {
        /// Why.
        reason: Rejection,
        /// The bytes received, from `/` on (possibly cut short).
        raw: &'a [u8],
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for `/`, counting what is skipped.
    Hunting,
    /// Skipping the rest of a rejected telegram up to the next `/`.
    Discarding,
    /// Between header and footer.
    Body,
    /// After `!`: up to four hex digits.
    Footer,
    /// After the footer's CR: expecting LF.
    FooterCr,
}

/// The streaming P1 framer. Feed it byte chunks of any size with [`feed`](Self::feed);
/// the result does not depend on how the stream is split.
///
/// `N` is the buffer size: the longest telegram accepted. No heap, no clock.
#[derive(Debug, Clone)]
pub struct TelegramReader<const N: usize = DEFAULT_CAPACITY> {
    buf: [u8; N],
    len: usize,
    line_len: usize,
    state: State,
    digits: u8,
    printed: u16,
    crc_required: bool,
    stats: ReaderStats,
}

impl<const N: usize> Default for TelegramReader<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> TelegramReader<N> {
    /// A reader hunting for the first header.
    pub const fn new() -> Self {
        const { assert!(N >= 64, "a telegram buffer needs at least 64 bytes") };
        Self {
            buf: [0; N],
            len: 0,
            line_len: 0,
            state: State::Hunting,
            digits: 0,
            printed: 0,
            crc_required: false,
            stats: ReaderStats {
                valid: 0,
                bad_crc: 0,
                line_too_long: 0,
                telegram_too_long: 0,
                truncated: 0,
                bad_footer: 0,
                missing_crc: 0,
                malformed: 0,
                skipped_bytes: 0,
                skipped_lines: 0,
            },
        }
    }

    /// Refuse every telegram without a CRC ([`Rejection::MissingCrc`]). Set it when the
    /// port runs at 115200 8N1 (register 1035 = 0): every dialect on that line speed
    /// (DSMR 4/5, e-MUCS, Smarty, the Swedish and other IEC 62056-21 variants) carries
    /// a CRC, so a telegram without one is damaged. Off by default: then only
    /// telegrams naming DSMR ≥ 4 or e-MUCS must carry one (DSMR 2/3 and EasyMeter at
    /// 9600 7E1 have none).
    pub fn set_crc_required(&mut self, required: bool) {
        self.crc_required = required;
    }

    /// The counters so far.
    pub fn stats(&self) -> &ReaderStats {
        &self.stats
    }

    /// Forget any partial telegram (for example after the serial port was reopened)
    /// and hunt for the next header. Counters are kept.
    pub fn reset(&mut self) {
        self.len = 0;
        self.state = State::Hunting;
    }

    /// Consume bytes from `input` until one telegram is complete (accepted or
    /// rejected) or the input is used up. Returns how many bytes were consumed and
    /// the event, if any; call again with the rest of the input.
    ///
    /// ```
    /// # use p1lb_core::p1::{TelegramReader, Event};
    /// let mut reader: TelegramReader = TelegramReader::new();
    /// let mut input: &[u8] = b"/ISk5\\2MT382-1000\r\n\r\n1-0:1.8.1(12345.678*kWh)\r\n!\r\n";
    /// let mut found = 0;
    /// while !input.is_empty() {
    ///     let (used, event) = reader.feed(input);
    ///     if let Some(Event::Telegram(t)) = event {
    ///         found += t.objects().count();
    ///     }
    ///     input = &input[used..];
    /// }
    /// assert_eq!(found, 1);
    /// ```
    pub fn feed<'r>(&'r mut self, input: &[u8]) -> (usize, Option<Event<'r>>) {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Hunting | State::Discarding => {
                    let rest = &input[i..];
                    let pos = rest.iter().position(|&b| b == b'/');
                    let skipped = &rest[..pos.unwrap_or(rest.len())];
                    if self.state == State::Hunting {
                        let junk = skipped
                            .iter()
                            .filter(|&&b| !matches!(b, b'\r' | b'\n' | b' ' | 0))
                            .count();
                        let junk = u32::try_from(junk).unwrap_or(u32::MAX);
                        self.stats.skipped_bytes = self.stats.skipped_bytes.saturating_add(junk);
                    }
                    match pos {
                        None => return (input.len(), None),
                        Some(p) => {
                            i += p;
                            self.begin();
                            self.buf[0] = b'/';
                            self.len = 1;
                            self.line_len = 1;
                            i += 1;
                        }
                    }
                }
                State::Body => {
                    // Copy up to the next byte that needs a decision.
                    let rest = &input[i..];
                    let stop = rest
                        .iter()
                        .position(|&b| matches!(b, b'/' | b'!' | b'\n'))
                        .unwrap_or(rest.len());
                    let run = &rest[..stop];
                    // Whichever limit a byte-by-byte feed would hit first, so that the
                    // reason does not depend on how the stream was split.
                    let line_room = MAX_LINE_LEN.saturating_sub(self.line_len);
                    let buf_room = N.saturating_sub(self.len);
                    if run.len() > line_room.min(buf_room) {
                        let reason = if line_room <= buf_room {
                            Rejection::LineTooLong
                        } else {
                            Rejection::TelegramTooLong
                        };
                        return (i, Some(self.reject(reason, State::Discarding)));
                    }
                    self.buf[self.len..self.len + run.len()].copy_from_slice(run);
                    self.len += run.len();
                    self.line_len += run.len();
                    i += stop;
                    let Some(&b) = input.get(i) else {
                        break;
                    };
                    if b == b'/' {
                        // Do not consume: the new telegram starts here.
                        return (i, Some(self.reject(Rejection::Truncated, State::Hunting)));
                    }
                    if self.len >= N {
                        return (
                            i,
                            Some(self.reject(Rejection::TelegramTooLong, State::Discarding)),
                        );
                    }
                    if b == b'!' && self.line_len != 0 {
                        i += 1;
                        return (
                            i,
                            Some(self.reject(Rejection::BadFooter, State::Discarding)),
                        );
                    }
                    self.buf[self.len] = b;
                    self.len += 1;
                    i += 1;
                    if b == b'\n' {
                        self.line_len = 0;
                    } else {
                        // `!` at the start of a line: the footer.
                        self.state = State::Footer;
                        self.digits = 0;
                        self.printed = 0;
                    }
                }
                State::Footer => {
                    let b = input[i];
                    let digit = match b {
                        b'0'..=b'9' => Some(b - b'0'),
                        b'A'..=b'F' => Some(b - b'A' + 10),
                        _ => None,
                    };
                    match (digit, b) {
                        (Some(d), _) if self.digits < 4 => {
                            self.printed = (self.printed << 4) | u16::from(d);
                            self.digits += 1;
                            i += 1;
                        }
                        (_, b'\r') => {
                            self.state = State::FooterCr;
                            i += 1;
                        }
                        (_, b'\n') => return (i + 1, Some(self.finish())),
                        // A full CRC directly followed by the next header (a meter or
                        // dongle that drops the line end): complete; `/` not consumed.
                        (_, b'/') if self.digits == 4 => return (i, Some(self.finish())),
                        // Not consumed: it may be the `/` of the next telegram.
                        _ => return (i, Some(self.reject(Rejection::BadFooter, State::Hunting))),
                    }
                }
                State::FooterCr => {
                    if input[i] == b'\n' {
                        return (i + 1, Some(self.finish()));
                    }
                    return (i, Some(self.reject(Rejection::BadFooter, State::Hunting)));
                }
            }
        }
        (input.len(), None)
    }

    fn begin(&mut self) {
        self.state = State::Body;
        self.len = 0;
        self.line_len = 0;
    }

    fn reject(&mut self, reason: Rejection, next: State) -> Event<'_> {
        self.stats.count(reason);
        self.state = next;
        let len = core::mem::take(&mut self.len);
        Event::Rejected {
            reason,
            raw: &self.buf[..len],
        }
    }

    fn finish(&mut self) -> Event<'_> {
        self.state = State::Hunting;
        let len = core::mem::take(&mut self.len);
        let bytes = &self.buf[..len];
        let crc = if self.digits == 0 {
            CrcStatus::Absent
        } else {
            let computed = crc16_arc(bytes);
            if computed != self.printed {
                let reason = Rejection::BadCrc {
                    printed: self.printed,
                    computed,
                };
                self.stats.count(reason);
                return Event::Rejected { reason, raw: bytes };
            }
            CrcStatus::Ok(self.printed)
        };
        match Telegram::new_checked(bytes, crc) {
            Ok(t) if crc == CrcStatus::Absent && (self.crc_required || t.requires_crc()) => {
                self.stats.count(Rejection::MissingCrc);
                Event::Rejected {
                    reason: Rejection::MissingCrc,
                    raw: bytes,
                }
            }
            Ok(t) => {
                self.stats.valid = self.stats.valid.saturating_add(1);
                let skipped = u32::try_from(t.skipped_lines()).unwrap_or(u32::MAX);
                self.stats.skipped_lines = self.stats.skipped_lines.saturating_add(skipped);
                Event::Telegram(t)
            }
            Err(m) => {
                let reason = Rejection::Malformed(m);
                self.stats.count(reason);
                Event::Rejected { reason, raw: bytes }
            }
        }
    }
}
