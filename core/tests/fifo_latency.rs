//! A UART with a receive FIFO (the RP2040's PL011) hands a reply over in chunks: at its
//! interrupt level, and the rest after the 32-bit-period receive timeout. The silence
//! framer must not take the wait for the next chunk as the end of the frame once it is
//! widened by `LineConfig::fifo_latency` (found running the firmware in the
//! emulator: 79-byte Terra AC status replies were cut after the first chunk).

use p1lb_core::modbus::{LineConfig, Parity, SilenceFramer};
use p1lb_core::time::{Duration, Instant};

fn us(t: u64) -> Instant {
    Instant::from_micros(t)
}

/// Feeds `frame` as a FIFO with interrupt level `threshold` delivers it, starting at
/// `t0` µs, polling the framer whenever the reader would wake; returns the frames.
fn deliver(
    framer: &mut SilenceFramer,
    line: LineConfig,
    frame: &[u8],
    threshold: usize,
    t0: u64,
) -> Vec<Vec<u8>> {
    let char_us = line.char_time().total_micros();
    let bit_us = 1_000_000 / u64::from(line.baud);
    let mut out = Vec::new();
    let mut chunks = Vec::new();
    let mut i = 0;
    while i < frame.len() {
        let n = threshold.min(frame.len() - i);
        let last_byte_end = t0 + char_us * (i + n) as u64;
        // A full chunk raises the interrupt with its last byte, a short one 32 bits later.
        let at = if n == threshold {
            last_byte_end
        } else {
            last_byte_end + 32 * bit_us
        };
        chunks.push((at, &frame[i..i + n]));
        i += n;
    }
    let mut now = t0;
    for (at, bytes) in chunks {
        // The reader wakes at the framer's deadline when that comes before the bytes.
        while let Some(d) = framer.deadline().map(Instant::total_micros) {
            if d >= at {
                break;
            }
            now = d;
            if let Some(f) = framer.poll(us(now)) {
                out.push(f.to_vec());
            }
        }
        now = now.max(at);
        let mut rest = bytes;
        while !rest.is_empty() {
            let (used, f) = framer.feed(us(now), rest);
            if let Some(f) = f {
                out.push(f.to_vec());
            }
            rest = &rest[used..];
        }
    }
    if let Some(f) = framer.poll(us(now + 1_000_000)) {
        out.push(f.to_vec());
    }
    out
}

fn reply() -> Vec<u8> {
    (0..79u8).map(|b| b.wrapping_mul(7)).collect()
}

#[test]
fn chunked_reply_is_one_frame_with_the_fifo_latency() {
    for (baud, threshold) in [(9600, 4), (9600, 28), (19200, 4), (115_200, 4), (1200, 28)] {
        let line = LineConfig::new(baud, Parity::None, 1);
        let mut framer = SilenceFramer::new(line);
        framer.widen_silence(line.fifo_latency(threshold as u32));
        let frames = deliver(&mut framer, line, &reply(), threshold, 1_000);
        assert_eq!(frames, vec![reply()], "{baud} baud, FIFO level {threshold}");
    }
}

#[test]
fn chunked_reply_is_cut_without_it() {
    let line = LineConfig::new(9600, Parity::None, 1);
    let mut framer = SilenceFramer::new(line);
    let frames = deliver(&mut framer, line, &reply(), 28, 1_000);
    assert_ne!(
        frames,
        vec![reply()],
        "the plain 3.5-character silence cuts the reply"
    );
}

#[test]
fn latency_is_waiting_characters_plus_the_timeout() {
    let line = LineConfig::new(9600, Parity::None, 1);
    // 3 characters of 10 bits + 32 bits = 62 bits at 9600 baud.
    assert_eq!(
        line.fifo_latency(4),
        Duration::from_micros((62 * 1_000_000u64).div_ceil(9600))
    );
    assert_eq!(
        line.fifo_latency(1),
        Duration::from_micros((32 * 1_000_000u64).div_ceil(9600))
    );
}
