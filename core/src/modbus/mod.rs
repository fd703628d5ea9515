//! Modbus RTU: our own codec (the crates probed panicked or mis-decoded, see
//! `dependencies.md`), for the firmware's RS485 and USB ports and the daemon.
//!
//! The layers, bottom up (smoltcp's `wire` shape):
//!
//! 1. [`crc16_modbus`]: the frame check (CRC-16/MODBUS, sent low byte first).
//! 2. [`Frame`]: a checked, zero-copy view over one RTU frame (address, PDU, CRC);
//!    [`Request`] and [`Response`]: the PDUs of FC 03, 04, 06, 16 and exception
//!    replies, with strict `parse` and `emit`.
//! 3. [`SilenceFramer`] (UART: a frame ends at 3.5 characters of silence) and
//!    [`LengthFramer`] (streams: function-code length rules, CRC, resync after
//!    garbage): chunks of bytes in, frames out, in bounded buffers.
//! 4. [`serve`]: a server over the [`RegisterMap`](crate::registers::RegisterMap)
//!    (FC 03/04 read, 06/16 write, exceptions, broadcast, other addresses);
//!    [`Client`]: a sans-IO client with response timeout, retries and strict reply
//!    validation, whose [`Reply`] becomes the Terra AC driver's
//!    [`Outcome`](crate::abb::Outcome).
//! 5. [`Gateway`]: requests from the USB port for other units go on the RS485 bus
//!    between the driver's exchanges (never interleaved); replies, or exception 0x0B,
//!    go back.
//!
//! Never panics: every function here takes arbitrary bytes, chunkings and times and
//! answers with a value, an error or silence — never a panic, an overflow or an
//! out-of-bounds access (property-tested in `core/tests/modbus_codec.rs`, fuzzed by
//! `core/fuzz/fuzz_targets/rtu_*.rs`, and checked against tokio-modbus in
//! `tests/modbus_rtu_oracle.rs`). No heap.

mod client;
mod crc;
mod frame;
mod framer;
mod gateway;
mod server;

pub use client::{Client, ClientConfig, ClientStats, Reply, ResponseError, StartError};
pub use crc::{append_crc, crc_ok, crc16_modbus};
pub use frame::{
    BROADCAST, EXCEPTION_BIT, Frame, FrameError, MAX_ADU, MAX_READ_QUANTITY, MAX_WRITE_QUANTITY,
    MIN_ADU, PduError, READ_HOLDING, READ_INPUT, Request, Response, WRITE_MULTIPLE, WRITE_SINGLE,
    Words,
};
pub use framer::{Direction, FramerStats, LengthFramer, LineConfig, Parity, SilenceFramer};
pub use gateway::{GATEWAY_NO_RESPONSE, Gateway, SERVER_BUSY, Submitted, Turn};
pub use server::{Ignored, ServerAction, exception_reply, serve};
