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
//! 4. [`Client`]: a sans-IO client with response timeout, retries and strict reply
//!    validation, whose [`Reply`] comes to an [`Outcome`] (the Terra AC driver's);
//!    [`exception_reply`] and [`Exception`] for servers (the register map's server is
//!    [`crate::server`], above this layer).
//! 5. [`Gateway`]: requests from the USB port for other units go on the RS485 bus
//!    between the driver's exchanges (never interleaved); replies, or exception 0x0B,
//!    go back.
//!
//! The codec knows frames, exceptions and lines, nothing of the register map, the
//! settings or the Terra AC: it imports nothing from the rest of the crate
//! (`core/tests/layers.rs` checks it).
//!
//! Never panics: every function here takes arbitrary bytes, chunkings and times and
//! answers with a value, an error or silence — never a panic, an overflow or an
//! out-of-bounds access (property-tested in `core/tests/modbus_codec.rs`, fuzzed by
//! `core/fuzz/fuzz_targets/rtu_*.rs`, and checked against tokio-modbus in
//! `tests/modbus_rtu_oracle.rs`). No heap.

mod client;
mod crc;
mod exception;
mod frame;
mod framer;
mod gateway;

pub use client::{Client, ClientConfig, ClientStats, Outcome, Reply, ResponseError, StartError};
pub use crc::{append_crc, crc_ok, crc16_modbus};
pub use exception::Exception;
pub use frame::{
    BROADCAST, EXCEPTION_BIT, Frame, FrameError, MAX_ADU, MAX_READ_QUANTITY, MAX_WRITE_QUANTITY,
    MIN_ADU, PduError, READ_HOLDING, READ_INPUT, Request, Response, WRITE_MULTIPLE, WRITE_SINGLE,
    Words, exception_reply,
};
pub use framer::{Direction, FramerStats, LengthFramer, LineConfig, Parity, SilenceFramer};
pub use gateway::{GATEWAY_NO_RESPONSE, Gateway, SERVER_BUSY, Submitted, Turn};
