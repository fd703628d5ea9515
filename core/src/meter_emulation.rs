//! An ABB EV3-style three-phase meter, served from P1 readings (rs485 role `server`,
//! register 1036), so that a Terra AC configured as *primary with an external meter*
//! can run its own load management (meter-emulation.md).
//!
//! Holding registers, FC 03, multi-register values big-endian (high word first). The
//! values come from the latest valid reading; objects the P1 meter does not send read
//! 0, frequency reads 50.00 Hz and power factor 1.000. When the data is stale (no valid
//! telegram for the fallback time, register 1022) the meter does not answer at all —
//! [`EmulatedMeter::read`] returns `None` — so the charger applies its own meter-loss
//! fallback instead of balancing on old numbers.
//!
//! Never panics: any start and length are answered with values, exception 02, or
//! silence.

use crate::p1::{GridSource, Reading};
use crate::registers::Exception;

/// What the emulated meter shows: one reading, in the meter's units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeterSnapshot {
    /// Voltage per phase, 0.1 V.
    pub voltage_dv: [u32; 3],
    /// Current magnitude per phase, 0.01 A.
    pub current_ca: [u32; 3],
    /// Active power per phase, 0.01 W, import positive.
    pub power_cw: [i32; 3],
    /// Total active power, 0.01 W, import positive.
    pub total_power_cw: i32,
    /// Energy imported, 0.1 Wh (the EV3's 0.0001 kWh).
    pub import_dwh: u64,
    /// Energy exported, 0.1 Wh.
    pub export_dwh: u64,
}

impl MeterSnapshot {
    /// The snapshot of a reading. Currents: the finer of power ÷ voltage and the
    /// current objects (as [`GridSource::Auto`]), as magnitudes.
    pub fn from_reading(r: &Reading) -> Self {
        let mut s = MeterSnapshot::default();
        let grid = r.grid_currents_ma(GridSource::Auto);
        for (i, p) in r.phases.iter().enumerate() {
            s.voltage_dv[i] = p
                .voltage_dv
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0);
            s.current_ca[i] = grid[i].map_or(0, |ma| ma.unsigned_abs() / 10);
            s.power_cw[i] = p.signed_power_w().map_or(0, |w| w.saturating_mul(100));
        }
        let total = match (r.power_import_w, r.power_export_w) {
            (None, None) => s.power_cw.iter().map(|&p| i64::from(p)).sum(),
            (i, e) => (i.unwrap_or(0) - e.unwrap_or(0)).saturating_mul(100),
        };
        s.total_power_cw =
            i32::try_from(total).unwrap_or(if total < 0 { i32::MIN } else { i32::MAX });
        let dwh = |wh: Option<i64>| {
            wh.and_then(|v| u64::try_from(v).ok())
                .map_or(0, |v| v.saturating_mul(10))
        };
        s.import_dwh = dwh(r.import_wh.sum());
        s.export_dwh = dwh(r.export_wh.sum());
        s
    }
}

/// The serial number the emulated meter reports (0x0402, 3 registers).
pub const SERIAL: [u16; 3] = [0x5031, 0x4C42, 0x0001]; // "P1LB" 0001
/// Firmware version text (0x8908, 8 registers, ASCII).
pub const FIRMWARE: &[u8; 16] = b"p1lb-emulation  ";
/// Type designation (0x8960, 4 registers, ASCII).
pub const TYPE_DESIGNATION: &[u8; 8] = b"EV3 012 ";

/// One value of the map: its first register and length in registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    start: u16,
    len: u16,
}

const fn f(start: u16, len: u16) -> Field {
    Field { start, len }
}

/// Every address the meter answers, in order.
const MAP: &[Field] = &[
    f(0x0402, 3),
    f(0x5000, 4),
    f(0x5004, 4),
    f(0x5008, 4),
    f(0x5460, 4),
    f(0x5464, 4),
    f(0x5468, 4),
    f(0x546C, 4),
    f(0x5470, 4),
    f(0x5474, 4),
    f(0x5478, 4),
    f(0x547C, 4),
    f(0x5480, 4),
    f(0x5B00, 2),
    f(0x5B02, 2),
    f(0x5B04, 2),
    f(0x5B0C, 2),
    f(0x5B0E, 2),
    f(0x5B10, 2),
    f(0x5B14, 2),
    f(0x5B16, 2),
    f(0x5B18, 2),
    f(0x5B1A, 2),
    f(0x5B2C, 1),
    f(0x5B3A, 1),
    f(0x5B3B, 1),
    f(0x5B3C, 1),
    f(0x5B3D, 1),
    f(0x8908, 8),
    f(0x8960, 4),
    f(0x8A13, 4),
];

/// The emulated meter: the latest snapshot and whether it may be shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmulatedMeter {
    snapshot: Option<MeterSnapshot>,
}

impl EmulatedMeter {
    /// A meter with no data yet (it stays silent).
    pub const fn new() -> Self {
        EmulatedMeter { snapshot: None }
    }

    /// A new valid reading.
    pub fn update(&mut self, snapshot: MeterSnapshot) {
        self.snapshot = Some(snapshot);
    }

    /// The data went stale (fallback time without a valid telegram): stop answering.
    pub fn invalidate(&mut self) {
        self.snapshot = None;
    }

    /// The snapshot shown, if any.
    pub fn snapshot(&self) -> Option<&MeterSnapshot> {
        self.snapshot.as_ref()
    }

    /// FC 03 of `out.len()` registers from `start`: `None` = do not answer (no fresh
    /// data); exception 02 for an address outside the map, 03 for a bad quantity.
    pub fn read(&self, start: u16, out: &mut [u16]) -> Option<Result<(), Exception>> {
        let s = self.snapshot.as_ref()?;
        if out.is_empty() || out.len() > 125 {
            return Some(Err(Exception::IllegalDataValue));
        }
        for (k, slot) in out.iter_mut().enumerate() {
            let Some(addr) = u16::try_from(k).ok().and_then(|k| start.checked_add(k)) else {
                return Some(Err(Exception::IllegalDataAddress));
            };
            match word(s, addr) {
                Some(w) => *slot = w,
                None => return Some(Err(Exception::IllegalDataAddress)),
            }
        }
        Some(Ok(()))
    }
}

/// The register at `addr`, or `None` outside the map.
fn word(s: &MeterSnapshot, addr: u16) -> Option<u16> {
    let field = MAP
        .iter()
        .find(|f| (f.start..f.start + f.len).contains(&addr))?;
    let k = usize::from(addr - field.start);
    let be = |v: u64, words: usize| -> u16 {
        // Word k of a big-endian value of `words` registers.
        let shift = 16 * (words - 1 - k);
        (v >> shift) as u16
    };
    let phase = |base: u16, step: u16| usize::from((field.start - base) / step);
    Some(match field.start {
        0x0402 => SERIAL[k],
        0x5000 => be(s.import_dwh, 4),
        0x5004 => be(s.export_dwh, 4),
        0x5008 => be(
            (s.import_dwh as i64).wrapping_sub(s.export_dwh as i64) as u64,
            4,
        ),
        0x5460..=0x5480 => 0, // per-phase energies: not in P1
        0x5B00..=0x5B04 => be(u64::from(s.voltage_dv[phase(0x5B00, 2)]), 2),
        0x5B0C..=0x5B10 => be(u64::from(s.current_ca[phase(0x5B0C, 2)]), 2),
        0x5B14 => be(u64::from(s.total_power_cw as u32), 2),
        0x5B16..=0x5B1A => be(u64::from(s.power_cw[phase(0x5B16, 2)] as u32), 2),
        0x5B2C => 5000,
        0x5B3A..=0x5B3D => 1000,
        0x8908 => u16::from_be_bytes([FIRMWARE[2 * k], FIRMWARE[2 * k + 1]]),
        0x8960 => u16::from_be_bytes([TYPE_DESIGNATION[2 * k], TYPE_DESIGNATION[2 * k + 1]]),
        _ => 0, // 0x8A13 error flags: none
    })
}
