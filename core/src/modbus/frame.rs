//! The wire format: a checked zero-copy view over one RTU frame ([`Frame`]) and the
//! parsed request and response PDUs ([`Request`], [`Response`]) with `parse` / `emit`
//! (smoltcp's `Packet` / `Repr` split).

use super::crc::{append_crc, crc16_modbus};
use super::exception::Exception;

/// The longest RTU frame (address, PDU of at most 253 bytes, CRC).
pub const MAX_ADU: usize = 256;
/// The shortest RTU frame: address, function code, CRC.
pub const MIN_ADU: usize = 4;
/// The broadcast address: writes apply on every server, nobody replies.
pub const BROADCAST: u8 = 0;
/// The most registers one FC 03 / FC 04 request may ask for.
pub const MAX_READ_QUANTITY: u16 = 125;
/// The most registers one FC 16 request may carry.
pub const MAX_WRITE_QUANTITY: u16 = 123;

/// FC 03: read holding registers.
pub const READ_HOLDING: u8 = 0x03;
/// FC 04: read input registers.
pub const READ_INPUT: u8 = 0x04;
/// FC 06: write one register.
pub const WRITE_SINGLE: u8 = 0x06;
/// FC 16: write several registers.
pub const WRITE_MULTIPLE: u8 = 0x10;
/// Set in the function code of an exception reply.
pub const EXCEPTION_BIT: u8 = 0x80;

/// Why bytes are not an RTU frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer than [`MIN_ADU`] bytes.
    TooShort,
    /// More than [`MAX_ADU`] bytes.
    TooLong,
    /// The last two bytes are not the CRC of the others.
    BadCrc {
        /// The CRC the frame carries.
        received: u16,
        /// The CRC computed over the bytes.
        computed: u16,
    },
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::TooShort => write!(f, "frame shorter than {MIN_ADU} bytes"),
            FrameError::TooLong => write!(f, "frame longer than {MAX_ADU} bytes"),
            FrameError::BadCrc { received, computed } => {
                write!(
                    f,
                    "bad CRC: received {received:04X}, computed {computed:04X}"
                )
            }
        }
    }
}

/// Why a PDU does not parse (or a [`Request`] / [`Response`] cannot be emitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PduError {
    /// No function code.
    Empty,
    /// A function code this codec does not handle (a server answers exception 01).
    UnsupportedFunction(u8),
    /// The PDU is longer or shorter than its function code and fields say.
    Length,
    /// A register quantity of 0, or above 125 (read) / 123 (write).
    Quantity,
    /// A byte count that is not twice the quantity (request), or is 0, odd or above
    /// 250 (read reply).
    ByteCount,
    /// (emit only) The output buffer is too small.
    BufferTooSmall,
}

impl PduError {
    /// The exception a server answers to a well-framed request with this error:
    /// 01 for an unsupported function, 03 for everything else.
    pub fn exception(self) -> Exception {
        match self {
            PduError::UnsupportedFunction(_) => Exception::IllegalFunction,
            _ => Exception::IllegalDataValue,
        }
    }
}

impl core::fmt::Display for PduError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PduError::Empty => write!(f, "empty PDU"),
            PduError::UnsupportedFunction(fc) => write!(f, "unsupported function {fc:#04x}"),
            PduError::Length => write!(f, "PDU length does not match its fields"),
            PduError::Quantity => write!(f, "register quantity out of range"),
            PduError::ByteCount => write!(f, "byte count does not match the quantity"),
            PduError::BufferTooSmall => write!(f, "output buffer too small"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FrameError {}
#[cfg(feature = "std")]
impl std::error::Error for PduError {}

/// A checked view over the bytes of one RTU frame: `address, function, data…, CRC
/// (low byte first)`. [`Frame::new_checked`] checks the length and the CRC; the
/// accessors then never fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    bytes: &'a [u8],
}

impl<'a> Frame<'a> {
    /// `bytes` as a frame: 4 to 256 bytes with a valid CRC.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, FrameError> {
        if bytes.len() < MIN_ADU {
            return Err(FrameError::TooShort);
        }
        if bytes.len() > MAX_ADU {
            return Err(FrameError::TooLong);
        }
        let n = bytes.len() - 2;
        let received = u16::from_le_bytes([bytes[n], bytes[n + 1]]);
        let computed = crc16_modbus(&bytes[..n]);
        if received != computed {
            return Err(FrameError::BadCrc { received, computed });
        }
        Ok(Frame { bytes })
    }

    /// The server address (0 for a broadcast).
    pub fn unit(&self) -> u8 {
        self.bytes[0]
    }

    /// The function code (with [`EXCEPTION_BIT`] set in an exception reply).
    pub fn function(&self) -> u8 {
        self.bytes[1]
    }

    /// The PDU: function code and data, without address and CRC (at least one byte).
    pub fn pdu(&self) -> &'a [u8] {
        &self.bytes[1..self.bytes.len() - 2]
    }

    /// The CRC the frame carries.
    pub fn crc(&self) -> u16 {
        let n = self.bytes.len() - 2;
        u16::from_le_bytes([self.bytes[n], self.bytes[n + 1]])
    }

    /// The whole frame.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Register values: either big-endian bytes of a parsed PDU (zero-copy) or words to
/// emit. Equality compares the values, whatever the representation.
#[derive(Debug, Clone, Copy)]
pub enum Words<'a> {
    /// Big-endian pairs as on the wire (an even number of bytes).
    Be(&'a [u8]),
    /// Values.
    Native(&'a [u16]),
}

impl<'a> Words<'a> {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Words::Be(b) => b.len() / 2,
            Words::Native(w) => w.len(),
        }
    }

    /// True when there is no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `index`.
    pub fn get(&self, index: usize) -> Option<u16> {
        match self {
            Words::Be(b) => {
                let i = index.checked_mul(2)?;
                Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
            }
            Words::Native(w) => w.get(index).copied(),
        }
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + 'a {
        let copy = *self;
        (0..copy.len()).filter_map(move |i| copy.get(i))
    }

    /// Copies the values into the start of `out`; returns how many were copied (the
    /// smaller of both lengths).
    pub fn copy_to(&self, out: &mut [u16]) -> usize {
        let mut n = 0;
        for (slot, v) in out.iter_mut().zip(self.iter()) {
            *slot = v;
            n += 1;
        }
        n
    }
}

impl PartialEq for Words<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Words<'_> {}

/// A request PDU of the supported function codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// FC 03.
    ReadHolding {
        /// First register (PDU address, zero-based).
        start: u16,
        /// How many, 1 … 125.
        quantity: u16,
    },
    /// FC 04.
    ReadInput {
        /// First register.
        start: u16,
        /// How many, 1 … 125.
        quantity: u16,
    },
    /// FC 06.
    WriteSingle {
        /// The register.
        address: u16,
        /// Its new value.
        value: u16,
    },
    /// FC 16.
    WriteMultiple {
        /// First register.
        start: u16,
        /// The values, 1 … 123 of them.
        values: Words<'a>,
    },
}

fn be(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// Writes `bytes` at the start of `out`.
fn put(out: &mut [u8], bytes: &[u8]) -> Result<(), PduError> {
    out.get_mut(..bytes.len())
        .ok_or(PduError::BufferTooSmall)?
        .copy_from_slice(bytes);
    Ok(())
}

/// Writes `words` big-endian from `out[at]`.
fn put_words(out: &mut [u8], at: usize, words: &Words<'_>) -> Result<(), PduError> {
    let end = at + 2 * words.len();
    let dst = out.get_mut(at..end).ok_or(PduError::BufferTooSmall)?;
    for (pair, v) in dst.chunks_exact_mut(2).zip(words.iter()) {
        pair.copy_from_slice(&v.to_be_bytes());
    }
    Ok(())
}

/// `unit`, then the PDU `emit` writes, then the CRC, into `out`.
fn emit_frame(
    unit: u8,
    out: &mut [u8],
    emit: impl FnOnce(&mut [u8]) -> Result<usize, PduError>,
) -> Result<usize, PduError> {
    let (first, rest) = out.split_first_mut().ok_or(PduError::BufferTooSmall)?;
    *first = unit;
    let n = emit(rest)?;
    append_crc(out, n + 1).ok_or(PduError::BufferTooSmall)
}

fn read_quantity_ok(quantity: u16) -> bool {
    (1..=MAX_READ_QUANTITY).contains(&quantity)
}

fn write_quantity_ok(quantity: usize) -> bool {
    (1..=usize::from(MAX_WRITE_QUANTITY)).contains(&quantity)
}

impl<'a> Request<'a> {
    /// Parses a request PDU (function code first). Strict: the exact length, a
    /// quantity of 1 … 125 (read) or 1 … 123 (write) and a byte count of twice the
    /// quantity are required.
    pub fn parse(pdu: &'a [u8]) -> Result<Self, PduError> {
        let (&function, data) = pdu.split_first().ok_or(PduError::Empty)?;
        match function {
            READ_HOLDING | READ_INPUT => {
                if data.len() != 4 {
                    return Err(PduError::Length);
                }
                let (start, quantity) = (be(data, 0), be(data, 2));
                if !read_quantity_ok(quantity) {
                    return Err(PduError::Quantity);
                }
                Ok(if function == READ_HOLDING {
                    Request::ReadHolding { start, quantity }
                } else {
                    Request::ReadInput { start, quantity }
                })
            }
            WRITE_SINGLE => {
                if data.len() != 4 {
                    return Err(PduError::Length);
                }
                Ok(Request::WriteSingle {
                    address: be(data, 0),
                    value: be(data, 2),
                })
            }
            WRITE_MULTIPLE => {
                if data.len() < 5 {
                    return Err(PduError::Length);
                }
                let (start, quantity, count) = (be(data, 0), be(data, 2), usize::from(data[4]));
                if !write_quantity_ok(usize::from(quantity)) {
                    return Err(PduError::Quantity);
                }
                if count != 2 * usize::from(quantity) {
                    return Err(PduError::ByteCount);
                }
                if data.len() != 5 + count {
                    return Err(PduError::Length);
                }
                Ok(Request::WriteMultiple {
                    start,
                    values: Words::Be(&data[5..]),
                })
            }
            other => Err(PduError::UnsupportedFunction(other)),
        }
    }

    /// The function code.
    pub fn function(&self) -> u8 {
        match self {
            Request::ReadHolding { .. } => READ_HOLDING,
            Request::ReadInput { .. } => READ_INPUT,
            Request::WriteSingle { .. } => WRITE_SINGLE,
            Request::WriteMultiple { .. } => WRITE_MULTIPLE,
        }
    }

    /// Writes the PDU at the start of `out`; returns its length. A quantity that
    /// [`parse`](Self::parse) would refuse is refused here too.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, PduError> {
        match *self {
            Request::ReadHolding { start, quantity } | Request::ReadInput { start, quantity } => {
                if !read_quantity_ok(quantity) {
                    return Err(PduError::Quantity);
                }
                let [s0, s1] = start.to_be_bytes();
                let [q0, q1] = quantity.to_be_bytes();
                put(out, &[self.function(), s0, s1, q0, q1])?;
                Ok(5)
            }
            Request::WriteSingle { address, value } => {
                let [a0, a1] = address.to_be_bytes();
                let [v0, v1] = value.to_be_bytes();
                put(out, &[WRITE_SINGLE, a0, a1, v0, v1])?;
                Ok(5)
            }
            Request::WriteMultiple { start, ref values } => {
                let n = values.len();
                if !write_quantity_ok(n) {
                    return Err(PduError::Quantity);
                }
                let [s0, s1] = start.to_be_bytes();
                let [q0, q1] = (n as u16).to_be_bytes();
                put(out, &[WRITE_MULTIPLE, s0, s1, q0, q1, (2 * n) as u8])?;
                put_words(out, 6, values)?;
                Ok(6 + 2 * n)
            }
        }
    }

    /// Writes the whole RTU frame for server `unit` (address, PDU, CRC) into `out`;
    /// returns its length.
    pub fn emit_frame(&self, unit: u8, out: &mut [u8]) -> Result<usize, PduError> {
        emit_frame(unit, out, |rest| self.emit(rest))
    }
}

/// A reply PDU of the supported function codes, or an exception reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response<'a> {
    /// FC 03: the registers read (1 … 125).
    ReadHolding(Words<'a>),
    /// FC 04: the registers read (1 … 125).
    ReadInput(Words<'a>),
    /// FC 06: the echo of the request.
    WriteSingle {
        /// The register written.
        address: u16,
        /// The value written.
        value: u16,
    },
    /// FC 16: first register and quantity written.
    WriteMultiple {
        /// First register written.
        start: u16,
        /// How many, 1 … 123.
        quantity: u16,
    },
    /// An exception reply.
    Exception {
        /// The request's function code (without [`EXCEPTION_BIT`]), 1 … 127.
        function: u8,
        /// The exception code.
        code: u8,
    },
}

impl<'a> Response<'a> {
    /// Parses a reply PDU (function code first). Strict: exact length; a read reply's
    /// byte count must be even and 2 … 250; a write reply's quantity 1 … 123.
    pub fn parse(pdu: &'a [u8]) -> Result<Self, PduError> {
        let (&function, data) = pdu.split_first().ok_or(PduError::Empty)?;
        if function & EXCEPTION_BIT != 0 {
            let function = function & !EXCEPTION_BIT;
            if function == 0 {
                return Err(PduError::UnsupportedFunction(EXCEPTION_BIT));
            }
            return match data {
                [code] => Ok(Response::Exception {
                    function,
                    code: *code,
                }),
                _ => Err(PduError::Length),
            };
        }
        match function {
            READ_HOLDING | READ_INPUT => {
                let (&count, values) = data.split_first().ok_or(PduError::Length)?;
                let count = usize::from(count);
                if count == 0 || count % 2 != 0 || count > 2 * usize::from(MAX_READ_QUANTITY) {
                    return Err(PduError::ByteCount);
                }
                if values.len() != count {
                    return Err(PduError::Length);
                }
                let words = Words::Be(values);
                Ok(if function == READ_HOLDING {
                    Response::ReadHolding(words)
                } else {
                    Response::ReadInput(words)
                })
            }
            WRITE_SINGLE => {
                if data.len() != 4 {
                    return Err(PduError::Length);
                }
                Ok(Response::WriteSingle {
                    address: be(data, 0),
                    value: be(data, 2),
                })
            }
            WRITE_MULTIPLE => {
                if data.len() != 4 {
                    return Err(PduError::Length);
                }
                let quantity = be(data, 2);
                if !write_quantity_ok(usize::from(quantity)) {
                    return Err(PduError::Quantity);
                }
                Ok(Response::WriteMultiple {
                    start: be(data, 0),
                    quantity,
                })
            }
            other => Err(PduError::UnsupportedFunction(other)),
        }
    }

    /// The function code on the wire (with [`EXCEPTION_BIT`] for an exception).
    pub fn function(&self) -> u8 {
        match self {
            Response::ReadHolding(_) => READ_HOLDING,
            Response::ReadInput(_) => READ_INPUT,
            Response::WriteSingle { .. } => WRITE_SINGLE,
            Response::WriteMultiple { .. } => WRITE_MULTIPLE,
            Response::Exception { function, .. } => function | EXCEPTION_BIT,
        }
    }

    /// Writes the PDU at the start of `out`; returns its length. What
    /// [`parse`](Self::parse) would refuse is refused here too.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, PduError> {
        match *self {
            Response::ReadHolding(ref words) | Response::ReadInput(ref words) => {
                let n = words.len();
                if n == 0 || n > usize::from(MAX_READ_QUANTITY) {
                    return Err(PduError::Quantity);
                }
                put(out, &[self.function(), (2 * n) as u8])?;
                put_words(out, 2, words)?;
                Ok(2 + 2 * n)
            }
            Response::WriteSingle { address, value } => {
                let [a0, a1] = address.to_be_bytes();
                let [v0, v1] = value.to_be_bytes();
                put(out, &[WRITE_SINGLE, a0, a1, v0, v1])?;
                Ok(5)
            }
            Response::WriteMultiple { start, quantity } => {
                if !write_quantity_ok(usize::from(quantity)) {
                    return Err(PduError::Quantity);
                }
                let [s0, s1] = start.to_be_bytes();
                let [q0, q1] = quantity.to_be_bytes();
                put(out, &[WRITE_MULTIPLE, s0, s1, q0, q1])?;
                Ok(5)
            }
            Response::Exception { function, code } => {
                if function == 0 || function & EXCEPTION_BIT != 0 {
                    return Err(PduError::UnsupportedFunction(function));
                }
                put(out, &[function | EXCEPTION_BIT, code])?;
                Ok(2)
            }
        }
    }

    /// Writes the whole RTU frame from server `unit` into `out`; returns its length.
    pub fn emit_frame(&self, unit: u8, out: &mut [u8]) -> Result<usize, PduError> {
        emit_frame(unit, out, |rest| self.emit(rest))
    }
}

/// Writes the exception reply of server `unit` to a request with `function` into
/// `out`; returns its length (5). Also what the driver sends when a save failed (04).
pub fn exception_reply(unit: u8, function: u8, e: Exception, out: &mut [u8; MAX_ADU]) -> usize {
    let r = Response::Exception {
        function: function & !EXCEPTION_BIT,
        code: e.code(),
    };
    // Only a function of 0 can fail; answer it as 0x80 by hand.
    r.emit_frame(unit, out).unwrap_or_else(|_| {
        out[..3].copy_from_slice(&[unit, EXCEPTION_BIT, e.code()]);
        super::crc::append_crc(out, 3).unwrap_or(3)
    })
}
