//! The CRC of an RTU frame.

use crc::{CRC_16_MODBUS, Crc};

/// On a microcontroller the one-byte table (512 B of flash); on a host slice-by-16.
#[cfg(target_os = "none")]
type Impl = crc::Table<1>;
#[cfg(not(target_os = "none"))]
type Impl = crc::Table<16>;

const MODBUS: Crc<u16, Impl> = Crc::<u16, Impl>::new(&CRC_16_MODBUS);

/// CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF) over `bytes`. On the wire it
/// follows the frame low byte first.
pub fn crc16_modbus(bytes: &[u8]) -> u16 {
    MODBUS.checksum(bytes)
}

/// Appends the CRC of `buf[..len]` at `buf[len..len + 2]`, low byte first, and
/// returns the frame's new length; `None` (and nothing written) when `buf` has no room.
pub fn append_crc(buf: &mut [u8], len: usize) -> Option<usize> {
    let end = len.checked_add(2)?;
    if end > buf.len() {
        return None;
    }
    let crc = crc16_modbus(&buf[..len]);
    buf[len..end].copy_from_slice(&crc.to_le_bytes());
    Some(end)
}

/// True when `frame` is at least 3 bytes long and its last two bytes are the CRC of
/// the others, low byte first.
pub fn crc_ok(frame: &[u8]) -> bool {
    match frame.len().checked_sub(2) {
        Some(n) if n > 0 => crc16_modbus(&frame[..n]).to_le_bytes() == [frame[n], frame[n + 1]],
        _ => false,
    }
}
