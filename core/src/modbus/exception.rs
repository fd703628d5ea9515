//! Modbus exception codes: what a server answers instead of a reply.

/// A Modbus exception, as a server answers a request it refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Exception {
    /// 01: the function code is not supported (for the framing layer).
    IllegalFunction = 1,
    /// 02: an address of the request does not exist on the server, or is not writable.
    IllegalDataAddress = 2,
    /// 03: a bad quantity, a value out of range or an inconsistent configuration.
    IllegalDataValue = 3,
    /// 04: the device failed to carry out the request (for example the save failed).
    ServerDeviceFailure = 4,
}

impl Exception {
    /// The exception code sent on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl core::fmt::Display for Exception {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let text = match self {
            Exception::IllegalFunction => "illegal function",
            Exception::IllegalDataAddress => "illegal data address",
            Exception::IllegalDataValue => "illegal data value",
            Exception::ServerDeviceFailure => "server device failure",
        };
        write!(f, "exception {:02}: {text}", self.code())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Exception {}
