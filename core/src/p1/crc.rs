//! The CRC of the DSMR 4+/5 footer.

use crc::{CRC_16_ARC, Crc};

const ARC: Crc<u16> = Crc::<u16>::new(&CRC_16_ARC);

/// CRC-16/ARC (poly 0xA001 reflected, init 0), as printed after the `!` of a DSMR 4+,
/// e-MUCS or Smarty telegram; computed over every byte from `/` to `!` inclusive.
pub fn crc16_arc(bytes: &[u8]) -> u16 {
    ARC.checksum(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        // The catalogue check value of CRC-16/ARC.
        assert_eq!(crc16_arc(b"123456789"), 0xBB3D);
    }
}
