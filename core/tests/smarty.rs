//! Luxembourg Smarty: decrypting the real sample gives the plaintext sample byte for
//! byte; wrong keys and corrupt frames give nothing.

mod common;

use common::sample;
use p1lb_core::p1::smarty::{
    SmartyEvent, SmartyKeys, SmartyReader, SmartyRejection, decrypt_frame,
};
use p1lb_core::p1::{Event, TelegramReader};

const KEYS: SmartyKeys = SmartyKeys {
    key: [0xAA; 16],
    auth_key: [0xBB; 16],
};

fn frame() -> Vec<u8> {
    sample("lu-smarty-sagemcom-t210dr-encrypted.bin")
}

fn plain() -> Vec<u8> {
    sample("lu-smarty-sagemcom-t210dr-plain.txt")
}

/// Feeds `chunks` and returns the plaintexts and rejections, in order.
fn run(
    reader: &mut SmartyReader,
    chunks: impl IntoIterator<Item = Vec<u8>>,
) -> Vec<Result<Vec<u8>, SmartyRejection>> {
    let mut out = Vec::new();
    for chunk in chunks {
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let (used, event) = reader.feed(rest);
            rest = &rest[used..];
            match event {
                Some(SmartyEvent::Plaintext(p)) => out.push(Ok(p.to_vec())),
                Some(SmartyEvent::Rejected(r)) => out.push(Err(r)),
                None => {}
            }
        }
    }
    out
}

#[test]
fn decrypts_to_the_plaintext_sample() {
    let mut f = frame();
    let p = decrypt_frame(&mut f, &KEYS).expect("authenticates");
    assert_eq!(p, &plain()[..]);
    // And the plaintext is a valid telegram with 18 objects.
    let mut reader: TelegramReader = TelegramReader::new();
    let (_, ev) = reader.feed(p);
    match ev {
        Some(Event::Telegram(t)) => assert_eq!(t.objects().count(), 18),
        other => panic!("{other:?}"),
    }
}

#[test]
fn streaming_any_split() {
    let mut stream = b"\x00\x11noise".to_vec();
    for _ in 0..3 {
        stream.extend_from_slice(&frame());
    }
    for size in [1, 2, 7, 13, 64, 511, 4096] {
        let mut reader = SmartyReader::new(KEYS);
        let out = run(&mut reader, stream.chunks(size).map(<[u8]>::to_vec));
        assert_eq!(out, vec![Ok(plain()); 3], "chunks of {size}");
        assert_eq!(reader.stats().decrypted, 3);
    }
}

#[test]
fn wrong_key_gives_nothing() {
    let keys = SmartyKeys {
        key: [0xAB; 16],
        ..KEYS
    };
    let mut reader = SmartyReader::new(keys);
    assert_eq!(
        run(&mut reader, [frame()]),
        [Err(SmartyRejection::AuthFailed)]
    );
    let keys = SmartyKeys {
        auth_key: [0; 16],
        ..KEYS
    };
    let mut reader = SmartyReader::new(keys);
    assert_eq!(
        run(&mut reader, [frame()]),
        [Err(SmartyRejection::AuthFailed)]
    );
}

#[test]
fn every_bit_flip_after_the_header_fails_authentication() {
    let f = frame();
    // Bytes 0..13 are the prelude (DB, title length, title, 82, length): flips there
    // give BadHeader/BadLength or a wrong IV; everything after is authenticated.
    for i in 0..f.len() {
        for bit in 0..8 {
            let mut g = f.clone();
            g[i] ^= 1 << bit;
            let mut reader = SmartyReader::new(KEYS);
            // Good frames after it: a flipped length may swallow some of them.
            let mut stream = g;
            for _ in 0..5 {
                stream.extend_from_slice(&frame());
            }
            let out = run(&mut reader, [stream]);
            assert!(
                !out.iter().any(|o| o.as_ref().is_ok_and(|p| *p != plain())),
                "byte {i} bit {bit}: a corrupt frame gave plaintext"
            );
            // A flip in the title (the IV) can only fail authentication.
            if i >= 2 {
                assert!(
                    out.first().is_some_and(Result::is_err),
                    "byte {i} bit {bit}: {out:?}"
                );
            }
        }
    }
}

#[test]
fn oversized_length_is_refused() {
    let mut f = frame();
    f[11] = 0xFF; // length 0xFFF2: larger than the buffer
    let mut reader = SmartyReader::new(KEYS);
    let out = run(&mut reader, [f, frame()]);
    assert_eq!(out[0], Err(SmartyRejection::BadLength));
}
