//! Properties of the reader: split invariance, bit-flip detection, no panics.

mod common;

use common::{Outcome, feed_all, feed_chunks, text_samples};
use p1lb_core::p1::{Event, GridSource, Reading, TelegramReader};
use proptest::prelude::*;

/// The samples whose dialect carries a CRC.
fn crc_samples() -> Vec<(String, Vec<u8>)> {
    text_samples()
        .into_iter()
        .filter(|(_, b)| {
            let bang = b.iter().rposition(|&c| c == b'!').unwrap();
            b[bang + 1].is_ascii_hexdigit()
        })
        .collect()
}

/// Every single-bit flip of every byte of every CRC-protected sample — header, body,
/// CRC digits and the final CR LF — is rejected: no telegram is accepted. Exhaustive
/// (not sampled): 44 384 flipped telegrams.
#[test]
fn every_single_bit_flip_is_rejected() {
    let samples = crc_samples();
    assert!(
        samples.len() >= 7,
        "CRC-protected samples: {}",
        samples.len()
    );
    let mut flips = 0;
    for (name, bytes) in &samples {
        assert_eq!(feed_all(bytes).1.valid, 1, "{name} itself must be valid");
        // The sample ends at its footer's LF.
        let end = bytes.iter().rposition(|&b| b == b'\n').unwrap() + 1;
        let telegram = &bytes[..end];
        for i in 0..telegram.len() {
            for bit in 0..8 {
                let mut t = telegram.to_vec();
                t[i] ^= 1 << bit;
                let (out, stats) = feed_all(&t);
                assert!(
                    !out.iter().any(|o| matches!(o, Outcome::Accepted(_))),
                    "{name}: flip of bit {bit} in byte {i} ({:?}) accepted",
                    telegram[i] as char
                );
                assert_eq!(stats.valid, 0);
                flips += 1;
            }
        }
    }
    assert!(flips > 40_000, "{flips}");
}

/// A flipped bit followed by a good telegram: the corrupt one is refused and the
/// reader is back in step for the next (resync at `/`).
#[test]
fn resyncs_after_any_single_bit_flip() {
    let (_, seed) = crc_samples()
        .into_iter()
        .find(|(n, _)| n.contains("seed"))
        .unwrap();
    for i in 0..seed.len() {
        for bit in 0..8 {
            let mut t = seed.clone();
            t[i] ^= 1 << bit;
            // Half a second of silence on a real line: at most a lost telegram.
            t.extend_from_slice(&seed);
            let (_, stats) = feed_all(&t);
            assert_eq!(stats.valid, 1, "flip of bit {bit} in byte {i}");
        }
    }
}

fn corpus_stream() -> Vec<u8> {
    let mut s = Vec::new();
    for (_, b) in text_samples() {
        s.extend_from_slice(&b);
        s.extend_from_slice(b"\x00garbage\r\n");
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The outcome does not depend on how the stream is split.
    #[test]
    fn split_invariance(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
                        corrupt in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4)) {
        let mut stream = corpus_stream();
        for (at, byte) in &corrupt {
            let i = at.index(stream.len());
            stream[i] = *byte;
        }
        let (whole, _) = feed_all(&stream);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let chunks: Vec<&[u8]> = points.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
        let mut reader = TelegramReader::new();
        let split = feed_chunks(&mut reader, chunks);
        prop_assert_eq!(whole, split);
    }

    /// Byte at a time equals all at once, for every sample.
    #[test]
    fn byte_at_a_time(_x in 0..1u8) {
        let stream = corpus_stream();
        let (whole, _) = feed_all(&stream);
        let mut reader = TelegramReader::new();
        let bytes = feed_chunks(&mut reader, stream.chunks(1));
        prop_assert_eq!(&whole, &bytes);
        prop_assert_eq!(reader.stats().valid as usize, text_samples().len());
    }

    /// Arbitrary bytes never panic, and the counters add up.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let (out, stats) = feed_all(&bytes);
        let accepted = out.iter().filter(|o| matches!(o, Outcome::Accepted(_))).count();
        prop_assert_eq!(stats.valid as usize, accepted);
        prop_assert_eq!(stats.rejected() as usize, out.len() - accepted);
    }

    /// Telegram-shaped noise (P1 alphabet, real fragments) never panics, and whatever
    /// is accepted parses into a model without overflow.
    #[test]
    fn telegram_shaped_noise(parts in proptest::collection::vec(
        prop_oneof![
            Just(b"/".to_vec()), Just(b"!".to_vec()), Just(b"\r\n".to_vec()),
            Just(b"(".to_vec()), Just(b")".to_vec()), Just(b"*".to_vec()),
            Just(b"1-0:31.7.0".to_vec()), Just(b"0-1:24.2.1".to_vec()),
            Just(b"(999999999999999999*kW)".to_vec()), Just(b"(-99999.9999*A)".to_vec()),
            Just(b"(000000000000S)".to_vec()), Just(b"(0.0*V)".to_vec()),
            "[0-9A-F.:*-]{1,12}".prop_map(|s| s.into_bytes()),
        ], 0..200)) {
        let bytes: Vec<u8> = parts.concat();
        let mut reader: TelegramReader = TelegramReader::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (used, event) = reader.feed(rest);
            rest = &rest[used..];
            if let Some(Event::Telegram(t)) = event {
                let r = Reading::parse(&t);
                let _ = r.grid_currents_ma(GridSource::Auto);
                let _ = r.import_wh.sum();
            }
        }
    }
}
