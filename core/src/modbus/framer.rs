//! Frame assembly from chunks of bytes, two ways:
//!
//! - [`SilenceFramer`] for a UART (RS485): a frame ends at a silence of 3.5
//!   characters ([`LineConfig::silence`]), as the Modbus RTU specification says.
//!   Fed timestamped chunks; yields the bytes between two silences.
//! - [`LengthFramer`] for byte streams without timing (USB CDC, pipes, TCP-tunnelled
//!   RTU): a frame is as long as its function code's length rules say, and its CRC
//!   must match; on a mismatch one byte is dropped and the hunt goes on, so it
//!   resyncs after garbage. Bytes left incomplete for an idle timeout are given up.
//!
//! Both hold at most `N` bytes (default [`MAX_ADU`], the longest RTU frame) and never
//! allocate. Overflow: the silence framer drops a frame that grows past `N` as a
//! whole (counted in [`FramerStats::overflows`]); the length framer never needs more
//! than `N` bytes, because a length rule asking for more counts as garbage.

use super::crc::crc_ok;
use super::frame::{EXCEPTION_BIT, MAX_ADU, MIN_ADU};
use crate::time::{Duration, Instant};

/// Parity of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// No parity bit.
    None,
    /// Even parity (the Modbus default).
    Even,
    /// Odd parity.
    Odd,
}

/// A serial line's settings, for the character and silence times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineConfig {
    /// Bits per second.
    pub baud: u32,
    /// Parity.
    pub parity: Parity,
    /// Stop bits: 1 or 2 (other values count as 2).
    pub stop_bits: u8,
}

impl LineConfig {
    /// Above this baud rate the silence is fixed at [`LineConfig::FIXED_SILENCE`].
    pub const FIXED_ABOVE_BAUD: u32 = 19_200;
    /// The silence above 19200 baud: 1750 µs.
    pub const FIXED_SILENCE: Duration = Duration::from_micros(1_750);

    /// 8 data bits with the given baud rate, parity and stop bits.
    pub const fn new(baud: u32, parity: Parity, stop_bits: u8) -> Self {
        LineConfig {
            baud,
            parity,
            stop_bits,
        }
    }

    /// Bits per character: start, 8 data, parity, stop.
    pub const fn bits_per_char(&self) -> u32 {
        let parity = match self.parity {
            Parity::None => 0,
            Parity::Even | Parity::Odd => 1,
        };
        let stop = if self.stop_bits <= 1 { 1 } else { 2 };
        1 + 8 + parity + stop
    }

    /// The time `bits` bit periods take on this line, rounded up to the microsecond (a
    /// baud rate of 0 counts as 1). Never overflows: `bits` is at most `u32::MAX`.
    const fn bits_time(&self, bits: u64) -> Duration {
        let baud = if self.baud == 0 { 1 } else { self.baud } as u64;
        // Bits per second to microseconds per bit: the one unit conversion here.
        Duration::from_micros((bits * 1_000_000).div_ceil(baud))
    }

    /// One character's time, rounded up to the microsecond.
    pub const fn char_time(&self) -> Duration {
        self.bits_time(self.bits_per_char() as u64)
    }

    /// How late a UART with a receive FIFO hands bytes over, rounded up: up to
    /// `threshold - 1` characters wait for the FIFO's interrupt level, and the last
    /// few of a frame for the receive timeout (32 bit periods). A reader that sees
    /// bytes only in such chunks must add this to the silence that ends a frame, or
    /// a long frame is cut at the first chunk boundary.
    pub const fn fifo_latency(&self, threshold: u32) -> Duration {
        let waiting = threshold.saturating_sub(1) as u64 * self.bits_per_char() as u64;
        self.bits_time(waiting + 32)
    }

    /// The 3.5-character silence that ends a frame, rounded up to the microsecond;
    /// fixed at 1750 µs above 19200 baud.
    pub const fn silence(&self) -> Duration {
        if self.baud > Self::FIXED_ABOVE_BAUD {
            return Self::FIXED_SILENCE;
        }
        let baud = if self.baud == 0 { 1 } else { self.baud } as u64;
        // 3.5 characters: 7 half characters, in microseconds.
        Duration::from_micros((self.bits_per_char() as u64 * 3_500_000).div_ceil(baud))
    }
}

/// Counters of a framer. Saturating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramerStats {
    /// Frames yielded.
    pub frames: u32,
    /// (silence) Byte runs shorter than [`MIN_ADU`], dropped.
    pub short: u32,
    /// (silence) Frames longer than the buffer, dropped whole.
    pub overflows: u32,
    /// (length) Bytes dropped while hunting for a frame.
    pub dropped_bytes: u32,
    /// (length) Times the idle timeout gave up incomplete bytes.
    pub idle_resyncs: u32,
}

fn inc(c: &mut u32) {
    *c = c.saturating_add(1);
}

/// Frames by 3.5-character silence (UART, RS485). See the module documentation.
///
/// Feed each chunk as it arrives with the time its *last* byte was received; a chunk
/// must not span a silence (a UART driver's idle-line interrupt gives exactly that;
/// one byte per call always works). Call [`poll`](Self::poll) when
/// [`deadline`](Self::deadline) has passed to get the last frame of a burst. The
/// 1.5-character inter-character rule is not enforced (the CRC catches the rest).
#[derive(Debug, Clone)]
pub struct SilenceFramer<const N: usize = MAX_ADU> {
    buf: [u8; N],
    len: usize,
    overflowed: bool,
    /// The previous call yielded `buf[..len]`: clear before going on.
    yielded: bool,
    last: Option<Instant>,
    char_time: Duration,
    silence: Duration,
    stats: FramerStats,
}

impl<const N: usize> SilenceFramer<N> {
    /// A framer for a line with these settings.
    pub fn new(line: LineConfig) -> Self {
        Self::with_times(line.char_time(), line.silence())
    }

    /// A framer with explicit character and silence times.
    pub fn with_times(char_time: Duration, silence: Duration) -> Self {
        SilenceFramer {
            buf: [0; N],
            len: 0,
            overflowed: false,
            yielded: false,
            last: None,
            char_time,
            silence,
            stats: FramerStats::default(),
        }
    }

    /// The silence that ends a frame.
    pub fn silence(&self) -> Duration {
        self.silence
    }

    /// Lengthens the silence that ends a frame by `extra` (a UART's receive
    /// latency, [`LineConfig::fifo_latency`]).
    pub fn widen_silence(&mut self, extra: Duration) {
        self.silence += extra;
    }

    /// Counters.
    pub fn stats(&self) -> FramerStats {
        self.stats
    }

    fn pending(&self) -> bool {
        !self.yielded && (self.len > 0 || self.overflowed)
    }

    fn settle(&mut self) {
        if self.yielded {
            self.yielded = false;
            self.len = 0;
        }
    }

    /// Ends the frame in progress: true when it is to be yielded (`buf[..len]`),
    /// false when it was dropped (too short, overflowed).
    fn finish(&mut self) -> bool {
        if self.overflowed {
            inc(&mut self.stats.overflows);
        } else if self.len < MIN_ADU {
            inc(&mut self.stats.short);
        } else {
            inc(&mut self.stats.frames);
            self.yielded = true;
            return true;
        }
        self.len = 0;
        self.overflowed = false;
        false
    }

    /// Feeds `bytes`, the last of which arrived at `now`. Returns how many bytes
    /// were taken and the frame a silence before them ended, if any; when a frame is
    /// returned no byte was taken: feed the same bytes again.
    pub fn feed(&mut self, now: Instant, bytes: &[u8]) -> (usize, Option<&[u8]>) {
        self.settle();
        if bytes.is_empty() {
            return (0, None);
        }
        if let Some(last) = self.last {
            let span = self.char_time.saturating_mul(bytes.len() as u64 - 1);
            let first = now - span;
            if self.pending() && first - last >= self.silence && self.finish() {
                return (0, Some(&self.buf[..self.len]));
            }
        }
        for &b in bytes {
            match self.buf.get_mut(self.len) {
                Some(slot) => {
                    *slot = b;
                    self.len += 1;
                }
                None => self.overflowed = true,
            }
        }
        self.last = Some(now);
        (bytes.len(), None)
    }

    /// The frame in progress, if the line has been silent long enough at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<&[u8]> {
        self.settle();
        let last = self.last?;
        if self.pending() && now - last >= self.silence && self.finish() {
            return Some(&self.buf[..self.len]);
        }
        None
    }

    /// When [`poll`](Self::poll) would end the frame in progress, if one is.
    pub fn deadline(&self) -> Option<Instant> {
        if self.pending() {
            self.last.map(|t| t + self.silence)
        } else {
            None
        }
    }

    /// Forgets the frame in progress.
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflowed = false;
        self.yielded = false;
    }
}

/// Which side's length rules a [`LengthFramer`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Requests (a server's input): FC 01–08, 11, 12, 15–17, 20–23.
    Requests,
    /// Replies (a client's input): the same codes and exception replies.
    Responses,
}

/// What the length rules say about the bytes at the start of the buffer.
enum Rule {
    /// Not enough bytes to know.
    Need,
    /// Cannot start a frame.
    Invalid,
    /// The frame's length.
    Len(usize),
}

fn rule(direction: Direction, b: &[u8], capacity: usize) -> Rule {
    let (Some(&unit), Some(&function)) = (b.first(), b.get(1)) else {
        return Rule::Need;
    };
    if unit > 247 {
        return Rule::Invalid;
    }
    // Length = `base` + the byte count at `at`.
    let counted = |at: usize, base: usize| match b.get(at) {
        Some(&n) => Rule::Len(base + usize::from(n)),
        None => Rule::Need,
    };
    let r = match direction {
        Direction::Requests => match function {
            1..=6 | 8 => Rule::Len(8),
            7 | 11 | 12 | 17 => Rule::Len(4),
            15 | 16 => counted(6, 9),
            20 | 21 => counted(2, 5),
            22 => Rule::Len(10),
            23 => counted(10, 13),
            _ => Rule::Invalid,
        },
        Direction::Responses => match function {
            f if f & EXCEPTION_BIT != 0 && f != EXCEPTION_BIT => Rule::Len(5),
            1..=4 | 12 | 17 | 20 | 21 | 23 => counted(2, 5),
            5 | 6 | 8 | 11 | 15 | 16 => Rule::Len(8),
            7 => Rule::Len(5),
            22 => Rule::Len(10),
            _ => Rule::Invalid,
        },
    };
    match r {
        Rule::Len(n) if n > capacity => Rule::Invalid,
        r => r,
    }
}

/// Frames a byte stream by function-code length rules and CRC. See the module
/// documentation.
#[derive(Debug, Clone)]
pub struct LengthFramer<const N: usize = MAX_ADU> {
    buf: [u8; N],
    start: usize,
    end: usize,
    /// Bytes of the last yielded frame, dropped at the next call.
    yielded: usize,
    direction: Direction,
    idle: Duration,
    last: Option<Instant>,
    stats: FramerStats,
}

impl<const N: usize> LengthFramer<N> {
    /// A framer for `direction`'s frames that gives up incomplete bytes after
    /// `idle` without new bytes.
    pub fn new(direction: Direction, idle: Duration) -> Self {
        LengthFramer {
            buf: [0; N],
            start: 0,
            end: 0,
            yielded: 0,
            direction,
            idle,
            last: None,
            stats: FramerStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> FramerStats {
        self.stats
    }

    /// Bytes held (not yet a frame).
    pub fn buffered(&self) -> usize {
        self.end - self.start - self.yielded
    }

    /// Forgets everything held.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.yielded = 0;
    }

    fn settle(&mut self) {
        self.start += self.yielded;
        self.yielded = 0;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    fn drop_one(&mut self) {
        self.start += 1;
        inc(&mut self.stats.dropped_bytes);
    }

    /// Hunts for a frame at the start of the held bytes: the range of a complete one
    /// with a good CRC, or `None` when more bytes are needed (or none are held).
    fn scan(&mut self) -> Option<(usize, usize)> {
        loop {
            let avail = &self.buf[self.start..self.end];
            if avail.is_empty() {
                return None;
            }
            match rule(self.direction, avail, N) {
                Rule::Need => return None,
                Rule::Invalid => self.drop_one(),
                Rule::Len(n) if n > avail.len() => return None,
                Rule::Len(n) => {
                    if crc_ok(&avail[..n]) {
                        inc(&mut self.stats.frames);
                        self.yielded = n;
                        return Some((self.start, self.start + n));
                    }
                    self.drop_one();
                }
            }
        }
    }

    fn expired(&self, now: Instant) -> bool {
        match self.last {
            Some(t) => self.start < self.end && now - t >= self.idle,
            None => false,
        }
    }

    /// Gives up the held bytes after the idle timeout: hunts through all of them (a
    /// complete frame may follow the garbage) and drops what is left.
    fn expire(&mut self) -> Option<(usize, usize)> {
        inc(&mut self.stats.idle_resyncs);
        while self.start < self.end {
            if let Some(r) = self.scan() {
                return Some(r);
            }
            if self.start < self.end {
                self.drop_one();
            }
        }
        None
    }

    /// Feeds `bytes` received at `now`. Returns how many were taken and the frame
    /// they completed, if any (the rest is for the next call).
    pub fn feed(&mut self, now: Instant, bytes: &[u8]) -> (usize, Option<&[u8]>) {
        self.settle();
        if !bytes.is_empty() && self.expired(now) {
            if let Some((a, b)) = self.expire() {
                return (0, Some(&self.buf[a..b]));
            }
        }
        for (i, &byte) in bytes.iter().enumerate() {
            if self.end == N {
                // Make room (`scan` never leaves N bytes held).
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == N {
                // Unreachable: a full buffer always yields or drops. Stay total.
                self.drop_one();
                continue;
            }
            self.buf[self.end] = byte;
            self.end += 1;
            self.last = Some(now);
            if let Some((a, b)) = self.scan() {
                return (i + 1, Some(&self.buf[a..b]));
            }
        }
        (bytes.len(), None)
    }

    /// After the idle timeout, a frame found behind garbage, if any; the rest is
    /// dropped.
    pub fn poll(&mut self, now: Instant) -> Option<&[u8]> {
        self.settle();
        if self.expired(now) {
            let (a, b) = self.expire()?;
            return Some(&self.buf[a..b]);
        }
        None
    }

    /// When [`poll`](Self::poll) would give up the held bytes, if any are held.
    pub fn deadline(&self) -> Option<Instant> {
        if self.buffered() > 0 {
            self.last.map(|t| t + self.idle)
        } else {
            None
        }
    }
}
