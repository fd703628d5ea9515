//! The P1 reader on arbitrary bytes: never panics, the outcome does not depend on
//! how the stream is split, and whatever is accepted parses into a model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p1lb_core::p1::{Event, GridSource, Reading, TelegramReader};

/// A small buffer, so that the length limits are reached too.
type Reader = TelegramReader<1024>;

#[derive(Debug, PartialEq)]
enum Outcome {
    Accepted(Vec<u8>, usize),
    Rejected(&'static str),
}

fn run(reader: &mut Reader, chunks: &mut dyn Iterator<Item = &[u8]>) -> Vec<Outcome> {
    let mut out = Vec::new();
    for chunk in chunks {
        let mut rest = chunk;
        while !rest.is_empty() {
            let (used, event) = reader.feed(rest);
            assert!(used <= rest.len());
            match event {
                Some(Event::Telegram(t)) => {
                    // Everything accepted parses, and every value accessor is total.
                    let r = Reading::parse(&t);
                    let _ = r.grid_currents_ma(GridSource::Auto);
                    let _ = r.grid_currents_ma(GridSource::CurrentObjects);
                    let mut n = 0;
                    for o in t.objects() {
                        for v in o.values() {
                            let _ = (v.number(), v.timestamp(), v.text());
                            if let Some(d) = v.decimal() {
                                let _ = (d.to_scaled(0), d.to_scaled(3), d.to_string());
                            }
                        }
                        n += 1;
                    }
                    out.push(Outcome::Accepted(t.as_bytes().to_vec(), n));
                }
                Some(Event::Rejected { reason, .. }) => out.push(Outcome::Rejected(reason.name())),
                None => assert_eq!(used, rest.len()),
            }
            rest = &rest[used..];
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let size = usize::from(split % 97) + 1;
    let required = split & 0x80 != 0;
    let mut whole_reader = Reader::new();
    whole_reader.set_crc_required(required);
    let whole = run(&mut whole_reader, &mut core::iter::once(data));
    let mut chunked_reader = Reader::new();
    chunked_reader.set_crc_required(required);
    let chunked = run(&mut chunked_reader, &mut data.chunks(size));
    assert_eq!(whole, chunked, "outcome depends on the split (chunks of {size})");
    let stats = chunked_reader.stats();
    let accepted = whole.iter().filter(|o| matches!(o, Outcome::Accepted(..))).count();
    assert_eq!(stats.valid as usize, accepted);
    assert_eq!(stats.rejected() as usize, whole.len() - accepted);
});
