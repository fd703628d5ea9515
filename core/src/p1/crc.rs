//! The CRC of the DSMR 4+/5 footer.

use crc::{CRC_16_ARC, Crc};

/// On a microcontroller the one-byte table (512 B of flash, which stays in the XIP
/// cache); on a host slice-by-16 (8 KB), several times faster.
#[cfg(target_os = "none")]
type Impl = crc::Table<1>;
#[cfg(not(target_os = "none"))]
type Impl = crc::Table<16>;

const ARC: Crc<u16, Impl> = Crc::<u16, Impl>::new(&CRC_16_ARC);

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
        // The same with the one-byte table the firmware uses.
        let small = Crc::<u16, crc::Table<1>>::new(&CRC_16_ARC);
        let mut data = [0u8; 5000];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i * 7 % 256) as u8;
        }
        assert_eq!(small.checksum(&data), crc16_arc(&data));
    }
}
