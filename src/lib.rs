//! p1lb: the Linux daemon and CLI around `p1lb-core`.
//!
//! - [`parse`]: `p1lb parse`, decode a recorded P1 stream.
//! - [`telegram_json`]: the JSON contract of `p1lb parse --json`.
#![warn(missing_docs)]

pub mod parse;
pub mod telegram_json;
