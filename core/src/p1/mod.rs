//! P1 smart-meter port: from raw serial bytes to a checked reading.
//!
//! The layers, bottom up (the shape of smoltcp's `wire` module):
//!
//! 1. [`TelegramReader`] frames a byte stream fed in chunks of any size: it hunts for
//!    the `/` header, collects the body up to the `!` footer, verifies the CRC-16 where
//!    the telegram carries one, and checks the syntax of every line. It yields
//!    [`Event::Telegram`] for a telegram that passed every check and
//!    [`Event::Rejected`] (with a [`Rejection`] reason, counted in [`ReaderStats`]) for
//!    one that did not; it then resyncs at the next `/`.
//! 2. [`Telegram`] is a checked, zero-copy view over the bytes of one telegram:
//!    header, objects ([`Object`], [`Obis`]) and their value groups ([`Value`]).
//! 3. [`Reading`] is the parsed model: meter id, timestamp, tariff, energies, powers,
//!    per-phase voltage/current/power, M-Bus channels and the Belgian demand objects, all
//!    as fixed-point integers (mA, W, Wh, 0.1 V) — never floats.
//! 4. [`smarty`] (feature `smarty`) decrypts the AES-128-GCM frames of Luxembourg
//!    Smarty meters into a plaintext telegram for step 1.
//!
//! Never panics: every function in this module accepts arbitrary bytes; over-long
//! input, bad CRCs, bad syntax and out-of-range numbers are answered with a
//! [`Rejection`] or `None`, never with a panic or an overflow (fuzzed by
//! `core/fuzz/fuzz_targets/p1_reader.rs`).

mod crc;
mod reader;
mod reading;
#[cfg(feature = "smarty")]
pub mod smarty;
mod telegram;
mod value;

pub use crc::crc16_arc;
pub use reader::{
    CrcStatus, DEFAULT_CAPACITY, Event, MAX_LINE_LEN, ReaderStats, Rejection, TelegramReader,
};
pub use reading::{
    GridSource, MAX_MBUS_CHANNELS, MbusReading, MeterId, Peak, PhaseReading, Reading, Tariffs,
};
pub use telegram::{Groups, Malformed, Obis, Object, Objects, Telegram};
pub use value::{Decimal, Timestamp, Unit, Value};
