//! The Smarty framer and decrypter on arbitrary bytes: never panics, never yields
//! plaintext from a frame that fails authentication.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p1lb_core::p1::smarty::{SmartyEvent, SmartyKeys, SmartyReader};

const KEYS: SmartyKeys = SmartyKeys {
    key: [0xAA; 16],
    auth_key: [0xBB; 16],
};

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let size = usize::from(split % 61) + 1;
    let mut reader: SmartyReader<600> = SmartyReader::new(KEYS);
    let mut plain = 0u32;
    for chunk in data.chunks(size) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let (used, event) = reader.feed(rest);
            assert!(used <= rest.len());
            if let Some(SmartyEvent::Plaintext(p)) = event {
                assert!(p.len() < 600);
                plain += 1;
            }
            rest = &rest[used..];
        }
    }
    assert_eq!(reader.stats().decrypted, plain);
});
