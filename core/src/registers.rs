//! The public Modbus register map (registers.md, interface contract v1): the registers
//! as data, and the read and write entry points that any Modbus framing calls
//! (tokio-modbus in the daemon, the core's own RTU codec in the firmware).
//!
//! - [`REGISTERS`] lists every register of 1000–1199 that has a meaning, in address
//!   order. The saved settings in it come from [`config::SETTINGS`](crate::config::SETTINGS)
//!   (their ranges and defaults are not repeated here); [`markdown_table`] renders it
//!   for the README.
//! - [`RegisterMap`] holds what the registers show: the saved and the staged
//!   [`Config`], the override cap (1000) and the driver-filled [`Status`].
//!   [`RegisterMap::read`] serves FC 03 (and FC 04 if mirrored),
//!   [`RegisterMap::write`] serves FC 06 and FC 16.
//!
//! Writes to settings are staged: reads show the staged value at once, the balancer
//! keeps the saved configuration. Writing 1 to 1091 (or to 1092, after restoring the
//! defaults) asks the driver, through [`WriteOutcome::save`], to persist the staged
//! set; the driver confirms with [`RegisterMap::commit_saved`] once the save
//! succeeded, and answers [`Exception::ServerDeviceFailure`] when it did not (the
//! staged changes then stay, and so does bit 5 of 1003). The charge mode (1080) is the
//! one setting that applies without 1091: a write that changes it asks, through the
//! same [`WriteOutcome::save`], to persist the saved set with the new mode (users
//! switch modes often; other staged changes stay staged).
//!
//! A driver, per request:
//!
//! ```text
//! match map.write(start, values) {
//!     Err(e) => reply_exception(e.code()),
//!     Ok(out) => {
//!         if let Some(cap) = out.cap_ma { balancer.set_cap(cap.into()) }
//!         if let Some(save) = out.save {
//!             if persist(&save.config).is_err() { return reply_exception(4) }
//!             map.commit_saved(save.config);
//!             balancer.apply_config(save.config);
//!         }
//!         reply_ok();
//!         if let Some(a) = out.save.and_then(|s| s.new_server_address) { listen_as(a) }
//!     }
//! }
//! ```
//!
//! Never panics: any start address, any quantity and any values are answered with a
//! value or an [`Exception`]. A rejected request changes nothing: a multi-register
//! write is checked as a whole before any of it is applied. No heap.

use crate::config::{Config, MAX_CHARGERS, Range, SETTINGS, Setting};

/// The first address of the map.
pub const FIRST: u16 = 1000;
/// The last address of the map: every address from [`FIRST`] to here reads.
pub const LAST: u16 = 1199;
/// The most registers one read may ask for (FC 03).
pub const MAX_READ: usize = 125;
/// The most registers one write may carry (FC 16).
pub const MAX_WRITE: usize = 123;

// The commands and the override cap, at the paths they always had.
pub use address::{OVERRIDE_CAP, RESTORE_DEFAULTS, SAVE};

/// Register 1121: major × 256 + minor of this crate's version.
pub const FIRMWARE_VERSION: u16 = (parse_u8(env!("CARGO_PKG_VERSION_MAJOR")) as u16) << 8
    | parse_u8(env!("CARGO_PKG_VERSION_MINOR")) as u16;

const fn parse_u8(s: &str) -> u8 {
    let b = s.as_bytes();
    let mut v: u8 = 0;
    let mut i = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "version part is not a number");
        v = v * 10 + (b[i] - b'0');
        i += 1;
    }
    v
}

pub use crate::modbus::Exception;

/// Who may read or write a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read only; a write answers exception 02.
    Read,
    /// Read and write.
    ReadWrite,
    /// Write only; reads 0.
    Write,
}

impl Access {
    /// `R`, `RW` or `W`, as in the documentation.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "R",
            Access::ReadWrite => "RW",
            Access::Write => "W",
        }
    }
}

/// The type of a register's value: how many words, and signed or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    /// One word, unsigned.
    U16,
    /// One word, two's complement.
    I16,
    /// Two words, unsigned, high word first.
    U32,
}

impl Type {
    /// The number of registers the value takes (1 or 2).
    pub const fn words(self) -> u16 {
        match self {
            Type::U32 => 2,
            Type::U16 | Type::I16 => 1,
        }
    }

    /// True for a two's-complement value.
    pub const fn signed(self) -> bool {
        matches!(self, Type::I16)
    }

    /// `uint16`, `int16` or `uint32`, as in the documentation.
    pub fn as_str(self) -> &'static str {
        match self {
            Type::U16 => "uint16",
            Type::I16 => "int16",
            Type::U32 => "uint32",
        }
    }
}

/// One register (or, for a 32-bit value, one pair) of the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    /// The (first) address, zero-based PDU address.
    pub address: u16,
    /// The snake_case name (for a setting, its TOML name).
    pub name: &'static str,
    /// What it means, for people.
    pub title: &'static str,
    /// Unit as shown (`mA`, `s`, `0.01 A`, or empty).
    pub unit: &'static str,
    /// Who may read or write it.
    pub access: Access,
    /// Its value's type.
    pub ty: Type,
    /// For a saved setting, its entry in [`SETTINGS`] (default, range, rule).
    pub setting: Option<&'static Setting>,
}

impl Register {
    /// True when `address` is one of this register's words.
    pub fn covers(&self, address: u16) -> bool {
        address >= self.address && u32::from(address) < self.end()
    }

    fn end(&self) -> u32 {
        u32::from(self.address) + u32::from(self.ty.words())
    }
}

/// The registers that are not saved settings, written once: generates [`OTHERS`] and
/// their [`address`] constants (each the register's name in capitals, checked at
/// compile time). One row: `address, CONSTANT, "name", access, type, "unit", "title";`.
macro_rules! others {
    ($(
        $address:literal, $konst:ident, $name:literal, $access:ident, $ty:ident,
        $unit:literal, $title:literal;
    )*) => {
        /// The registers that are not saved settings, in address order.
        const OTHERS: &[Register] = &[$(
            Register {
                address: $address,
                name: $name,
                title: $title,
                unit: $unit,
                access: $access,
                ty: $ty,
                setting: None,
            },
        )*];

        /// The address of every register of the map, by name: the saved settings'
        /// (from [`config::address`](crate::config::address)) and the others'. Code
        /// names registers with these, never with a number.
        pub mod address {
            pub use crate::config::address::*;
            $(
                #[doc = concat!("Register ", stringify!($address), ", `", $name, "`.")]
                pub const $konst: u16 = $address;
            )*
        }

        /// Every row's constant and name, for the tests of the table.
        #[cfg(test)]
        const OTHER_NAMES: &[(u16, &str)] = &[$( (address::$konst, $name), )*];

        $(
            const _: () = assert!(
                crate::config::eq_ignore_case(stringify!($konst), $name),
                concat!("the constant of ", $name, " is not its name in capitals")
            );
        )*
    };
}

use Access::{Read as R, ReadWrite as RW, Write as W};
use Type::{I16, U16, U32};

others! {
    1000, OVERRIDE_CAP, "override_cap", RW, U16, "mA",
        "Current cap set by an outside system (\"override\"), 0 … 65535. Takes effect at the next control tick. Not saved; after boot it equals 1010";
    1001, SENT_CURRENT, "sent_current", R, U16, "mA",
        "Charging current limit decided by the balancer (the value sent to the charger)";
    1002, BALANCER_STATE, "balancer_state", R, U16, "",
        "Balancer state 0–4, see below";
    1003, STATUS_FLAGS, "status_flags", R, U16, "bits",
        "Fault and status flags: bit 0 meter data stale; bit 1 telegram CRC failures in the last minute; bit 2 charger not answering; bit 3 charger answered with an exception; bit 4 saved configuration was invalid, defaults in use; bit 5 staged changes not yet saved; bit 6 last reset was by the watchdog; bit 7 charger read-back implausible, headroom mode uses the meter alone";
    1004, SECONDS_SINCE_TELEGRAM, "seconds_since_telegram", R, U16, "s",
        "Seconds since the last valid telegram (saturates at 65535)";
    1091, SAVE, "save", W, U16, "",
        "Write 1: validate, save and apply the staged configuration";
    1092, RESTORE_DEFAULTS, "restore_defaults", W, U16, "",
        "Write 1: restore defaults, save and apply";
    1100, GRID_CURRENT_L1, "grid_current_l1", R, I16, "0.01 A",
        "Grid current L1 as used by the balancer (import positive)";
    1101, GRID_CURRENT_L2, "grid_current_l2", R, I16, "0.01 A",
        "Grid current L2 as used by the balancer (import positive)";
    1102, GRID_CURRENT_L3, "grid_current_l3", R, I16, "0.01 A",
        "Grid current L3 as used by the balancer (import positive)";
    1103, VOLTAGE_L1, "voltage_l1", R, U16, "0.1 V",
        "Voltage L1";
    1104, VOLTAGE_L2, "voltage_l2", R, U16, "0.1 V",
        "Voltage L2";
    1105, VOLTAGE_L3, "voltage_l3", R, U16, "0.1 V",
        "Voltage L3";
    1106, IMPORT_POWER, "import_power", R, U32, "W",
        "Total import power";
    1108, EXPORT_POWER, "export_power", R, U32, "W",
        "Total export power";
    1110, CHARGER_CURRENT_L1, "charger_current_l1", R, U16, "0.01 A",
        "Charger's own current L1, as read back from the charger";
    1111, CHARGER_CURRENT_L2, "charger_current_l2", R, U16, "0.01 A",
        "Charger's own current L2, as read back from the charger";
    1112, CHARGER_CURRENT_L3, "charger_current_l3", R, U16, "0.01 A",
        "Charger's own current L3, as read back from the charger";
    1113, CHARGER_STATE, "charger_state", R, U16, "",
        "Charger charging state as reported by the charger";
    1114, CHARGER_ERROR, "charger_error", R, U16, "",
        "Charger error code as reported by the charger";
    1115, TELEGRAMS_VALID, "telegrams_valid", R, U32, "",
        "Valid telegrams since boot";
    1117, TELEGRAMS_REJECTED, "telegrams_rejected", R, U32, "",
        "Telegrams rejected (CRC or framing) since boot";
    1119, UPTIME, "uptime", R, U32, "s",
        "Uptime";
    1121, FIRMWARE_VERSION, "firmware_version", R, U16, "",
        "Firmware version: major × 256 + minor";
    1122, QUARTER_AVERAGE_POWER, "quarter_average_power", R, U16, "W",
        "Capacity tariff: average import power of the quarter-hour so far";
    1123, QUARTER_PROJECTED_POWER, "quarter_projected_power", R, U16, "W",
        "Capacity tariff: the quarter-hour's average if the present power continued to its end";
    1124, MONTH_PEAK_POWER, "month_peak_power", R, U16, "W",
        "Capacity tariff: the highest quarter-hour average of this month";
    1125, QUARTER_SECONDS_LEFT, "quarter_seconds_left", R, U16, "s",
        "Capacity tariff: seconds left in the quarter-hour";
    1126, CAPACITY_CHARGER_POWER, "capacity_charger_power", R, U16, "W",
        "Capacity tariff: power the capacity budget allows the chargers now (all together; 65535 when capacity mode is off)";
    1127, SOLAR_SURPLUS, "solar_surplus", R, I16, "10 W",
        "Solar: surplus available to the chargers (what they draw plus the export; export positive)";
    1128, SOLAR_STATE, "solar_state", R, U16, "",
        "Solar: 0 idle, 1 waiting to start, 2 charging on surplus, 3 waiting to stop";
    1130, CHARGER1_LIMIT, "charger1_limit", R, U16, "mA",
        "Charger 1: the limit sent to it";
    1131, CHARGER1_CURRENT_L1, "charger1_current_l1", R, U16, "0.01 A",
        "Charger 1: current on grid L1 (read back, wiring applied)";
    1132, CHARGER1_CURRENT_L2, "charger1_current_l2", R, U16, "0.01 A",
        "Charger 1: current on grid L2 (read back, wiring applied)";
    1133, CHARGER1_CURRENT_L3, "charger1_current_l3", R, U16, "0.01 A",
        "Charger 1: current on grid L3 (read back, wiring applied)";
    1134, CHARGER1_STATE, "charger1_state", R, U16, "",
        "Charger 1: its charging state as it reports it";
    1135, CHARGER1_FLAGS, "charger1_flags", R, U16, "bits",
        "Charger 1: flags: bit 0 not answering; bit 1 answered with an exception; bit 2 paused to share the current; bit 3 wiring learned or configured; bit 4 car connected";
    1136, CHARGER2_LIMIT, "charger2_limit", R, U16, "mA",
        "Charger 2: the limit sent to it";
    1137, CHARGER2_CURRENT_L1, "charger2_current_l1", R, U16, "0.01 A",
        "Charger 2: current on grid L1 (read back, wiring applied)";
    1138, CHARGER2_CURRENT_L2, "charger2_current_l2", R, U16, "0.01 A",
        "Charger 2: current on grid L2 (read back, wiring applied)";
    1139, CHARGER2_CURRENT_L3, "charger2_current_l3", R, U16, "0.01 A",
        "Charger 2: current on grid L3 (read back, wiring applied)";
    1140, CHARGER2_STATE, "charger2_state", R, U16, "",
        "Charger 2: its charging state as it reports it";
    1141, CHARGER2_FLAGS, "charger2_flags", R, U16, "bits",
        "Charger 2: flags, bits as in charger1_flags";
    1142, CHARGER3_LIMIT, "charger3_limit", R, U16, "mA",
        "Charger 3: the limit sent to it";
    1143, CHARGER3_CURRENT_L1, "charger3_current_l1", R, U16, "0.01 A",
        "Charger 3: current on grid L1 (read back, wiring applied)";
    1144, CHARGER3_CURRENT_L2, "charger3_current_l2", R, U16, "0.01 A",
        "Charger 3: current on grid L2 (read back, wiring applied)";
    1145, CHARGER3_CURRENT_L3, "charger3_current_l3", R, U16, "0.01 A",
        "Charger 3: current on grid L3 (read back, wiring applied)";
    1146, CHARGER3_STATE, "charger3_state", R, U16, "",
        "Charger 3: its charging state as it reports it";
    1147, CHARGER3_FLAGS, "charger3_flags", R, U16, "bits",
        "Charger 3: flags, bits as in charger1_flags";
    1148, CHARGER4_LIMIT, "charger4_limit", R, U16, "mA",
        "Charger 4: the limit sent to it";
    1149, CHARGER4_CURRENT_L1, "charger4_current_l1", R, U16, "0.01 A",
        "Charger 4: current on grid L1 (read back, wiring applied)";
    1150, CHARGER4_CURRENT_L2, "charger4_current_l2", R, U16, "0.01 A",
        "Charger 4: current on grid L2 (read back, wiring applied)";
    1151, CHARGER4_CURRENT_L3, "charger4_current_l3", R, U16, "0.01 A",
        "Charger 4: current on grid L3 (read back, wiring applied)";
    1152, CHARGER4_STATE, "charger4_state", R, U16, "",
        "Charger 4: its charging state as it reports it";
    1153, CHARGER4_FLAGS, "charger4_flags", R, U16, "bits",
        "Charger 4: flags, bits as in charger1_flags";
    1154, CHARGER5_LIMIT, "charger5_limit", R, U16, "mA",
        "Charger 5: the limit sent to it";
    1155, CHARGER5_CURRENT_L1, "charger5_current_l1", R, U16, "0.01 A",
        "Charger 5: current on grid L1 (read back, wiring applied)";
    1156, CHARGER5_CURRENT_L2, "charger5_current_l2", R, U16, "0.01 A",
        "Charger 5: current on grid L2 (read back, wiring applied)";
    1157, CHARGER5_CURRENT_L3, "charger5_current_l3", R, U16, "0.01 A",
        "Charger 5: current on grid L3 (read back, wiring applied)";
    1158, CHARGER5_STATE, "charger5_state", R, U16, "",
        "Charger 5: its charging state as it reports it";
    1159, CHARGER5_FLAGS, "charger5_flags", R, U16, "bits",
        "Charger 5: flags, bits as in charger1_flags";
    1160, CHARGER6_LIMIT, "charger6_limit", R, U16, "mA",
        "Charger 6: the limit sent to it";
    1161, CHARGER6_CURRENT_L1, "charger6_current_l1", R, U16, "0.01 A",
        "Charger 6: current on grid L1 (read back, wiring applied)";
    1162, CHARGER6_CURRENT_L2, "charger6_current_l2", R, U16, "0.01 A",
        "Charger 6: current on grid L2 (read back, wiring applied)";
    1163, CHARGER6_CURRENT_L3, "charger6_current_l3", R, U16, "0.01 A",
        "Charger 6: current on grid L3 (read back, wiring applied)";
    1164, CHARGER6_STATE, "charger6_state", R, U16, "",
        "Charger 6: its charging state as it reports it";
    1165, CHARGER6_FLAGS, "charger6_flags", R, U16, "bits",
        "Charger 6: flags, bits as in charger1_flags";
    1166, CHARGER7_LIMIT, "charger7_limit", R, U16, "mA",
        "Charger 7: the limit sent to it";
    1167, CHARGER7_CURRENT_L1, "charger7_current_l1", R, U16, "0.01 A",
        "Charger 7: current on grid L1 (read back, wiring applied)";
    1168, CHARGER7_CURRENT_L2, "charger7_current_l2", R, U16, "0.01 A",
        "Charger 7: current on grid L2 (read back, wiring applied)";
    1169, CHARGER7_CURRENT_L3, "charger7_current_l3", R, U16, "0.01 A",
        "Charger 7: current on grid L3 (read back, wiring applied)";
    1170, CHARGER7_STATE, "charger7_state", R, U16, "",
        "Charger 7: its charging state as it reports it";
    1171, CHARGER7_FLAGS, "charger7_flags", R, U16, "bits",
        "Charger 7: flags, bits as in charger1_flags";
    1172, CHARGER8_LIMIT, "charger8_limit", R, U16, "mA",
        "Charger 8: the limit sent to it";
    1173, CHARGER8_CURRENT_L1, "charger8_current_l1", R, U16, "0.01 A",
        "Charger 8: current on grid L1 (read back, wiring applied)";
    1174, CHARGER8_CURRENT_L2, "charger8_current_l2", R, U16, "0.01 A",
        "Charger 8: current on grid L2 (read back, wiring applied)";
    1175, CHARGER8_CURRENT_L3, "charger8_current_l3", R, U16, "0.01 A",
        "Charger 8: current on grid L3 (read back, wiring applied)";
    1176, CHARGER8_STATE, "charger8_state", R, U16, "",
        "Charger 8: its charging state as it reports it";
    1177, CHARGER8_FLAGS, "charger8_flags", R, U16, "bits",
        "Charger 8: flags, bits as in charger1_flags";
}

const fn from_setting(s: &'static Setting) -> Register {
    Register {
        address: s.address,
        name: s.name,
        title: s.title,
        unit: s.unit,
        access: Access::ReadWrite,
        ty: Type::U16,
        setting: Some(s),
    }
}

const COUNT: usize = SETTINGS.len() + OTHERS.len();

/// [`SETTINGS`] and [`OTHERS`] merged in address order; fails to compile when two
/// registers overlap or leave 1000–1199.
const fn merge() -> [Register; COUNT] {
    let mut out = [OTHERS[0]; COUNT];
    let (mut i, mut j, mut k) = (0, 0, 0);
    while k < COUNT {
        let take_setting =
            j == OTHERS.len() || (i < SETTINGS.len() && SETTINGS[i].address < OTHERS[j].address);
        if take_setting {
            out[k] = from_setting(&SETTINGS[i]);
            i += 1;
        } else {
            out[k] = OTHERS[j];
            j += 1;
        }
        let reg = out[k];
        assert!(reg.address >= FIRST, "register below 1000");
        assert!(
            reg.address + reg.ty.words() - 1 <= LAST,
            "register above 1199"
        );
        if k > 0 {
            let prev = out[k - 1];
            assert!(
                prev.address + prev.ty.words() <= reg.address,
                "registers overlap or are out of order"
            );
        }
        k += 1;
    }
    out
}

const MERGED: [Register; COUNT] = merge();

/// Every register of 1000–1199 that has a meaning, in address order: the saved
/// settings of [`SETTINGS`] and the others (override cap, status, commands). Any
/// other address is reserved: it reads 0 and refuses writes.
pub const REGISTERS: &[Register] = &MERGED;

/// The register one of whose words is `address`, if any (1107 gives 1106's entry).
pub fn register(address: u16) -> Option<&'static Register> {
    REGISTERS.iter().find(|r| r.covers(address))
}

/// Registers per charger in the status block: charger k (1 … 8) has
/// `charger{k}_limit` … `charger{k}_flags` at 1130 + 6(k−1) … +5.
pub const CHARGER_STATUS_WORDS: u16 = address::CHARGER2_LIMIT - address::CHARGER1_LIMIT;

// The block is eight runs of the same six registers, in [`ChargerRegs::words`] order.
const _: () = {
    use address::*;
    assert!(CHARGER_STATUS_WORDS == 6);
    let firsts = [
        CHARGER1_LIMIT,
        CHARGER2_LIMIT,
        CHARGER3_LIMIT,
        CHARGER4_LIMIT,
        CHARGER5_LIMIT,
        CHARGER6_LIMIT,
        CHARGER7_LIMIT,
        CHARGER8_LIMIT,
    ];
    assert!(firsts.len() == MAX_CHARGERS);
    let mut k = 0;
    while k < firsts.len() {
        assert!(firsts[k] == CHARGER1_LIMIT + CHARGER_STATUS_WORDS * k as u16);
        k += 1;
    }
    assert!(CHARGER1_CURRENT_L1 == CHARGER1_LIMIT + 1);
    assert!(CHARGER1_CURRENT_L3 == CHARGER1_LIMIT + 3);
    assert!(CHARGER1_STATE == CHARGER1_LIMIT + 4);
    assert!(CHARGER1_FLAGS == CHARGER1_LIMIT + 5);
    assert!(CHARGER8_FLAGS == CHARGER1_LIMIT + CHARGER_STATUS_WORDS * MAX_CHARGERS as u16 - 1);
};

/// The first register of charger `k`'s status (0-based: charger 1, `charger1_limit`
/// at 1130, is `k = 0`), or `None` for `k` ≥ [`MAX_CHARGERS`].
pub fn charger_status_address(k: usize) -> Option<u16> {
    let k = u16::try_from(k)
        .ok()
        .filter(|&k| usize::from(k) < MAX_CHARGERS)?;
    Some(address::CHARGER1_LIMIT + CHARGER_STATUS_WORDS * k)
}

/// The status of one charger, registers 1130 + 6(k−1) … +5 (read-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChargerRegs {
    /// +0: the limit sent to it, mA.
    pub sent_ma: u16,
    /// +1 … +3: its current on grid L1/L2/L3 (the wiring applied), 0.01 A.
    pub grid_ca: [u16; 3],
    /// +4: its charging state as it reports it.
    pub state: u16,
    /// +5: its flags.
    pub flags: ChargerFlags,
}

impl ChargerRegs {
    /// The six register words, +0 … +5.
    pub fn words(&self) -> [u16; CHARGER_STATUS_WORDS as usize] {
        let [l1, l2, l3] = self.grid_ca;
        [self.sent_ma, l1, l2, l3, self.state, self.flags.bits()]
    }

    /// The status from its six register words as read (+0 … +5); unknown flag bits
    /// are kept.
    pub fn from_words(words: [u16; CHARGER_STATUS_WORDS as usize]) -> Self {
        let [sent_ma, l1, l2, l3, state, flags] = words;
        ChargerRegs {
            sent_ma,
            grid_ca: [l1, l2, l3],
            state,
            flags: ChargerFlags::from_bits_retain(flags),
        }
    }
}

bitflags::bitflags! {
    /// The flags of one charger (register 1135 + 6(k−1)).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct ChargerFlags: u16 {
        /// Bit 0: not answering.
        const NOT_ANSWERING = 1 << 0;
        /// Bit 1: answered with an exception.
        const EXCEPTION = 1 << 1;
        /// Bit 2: paused to share the current with the other chargers.
        const PAUSED = 1 << 2;
        /// Bit 3: its wiring is learned or configured.
        const WIRING_KNOWN = 1 << 3;
        /// Bit 4: a car is connected.
        const CAR_CONNECTED = 1 << 4;
    }
}

bitflags::bitflags! {
    /// Register 1003 flags: the register value is [`Flags::bits`], bit numbers as in
    /// the register table. Bits 8–15 are reserved (0); a value read back keeps them
    /// ([`Flags::from_bits_retain`]).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Flags: u16 {
        /// Bit 0: meter data stale.
        const METER_STALE = 1 << 0;
        /// Bit 1: telegram CRC failures in the last minute.
        const CRC_FAILURES = 1 << 1;
        /// Bit 2: charger not answering.
        const CHARGER_SILENT = 1 << 2;
        /// Bit 3: charger answered with an exception.
        const CHARGER_EXCEPTION = 1 << 3;
        /// Bit 4: saved configuration was invalid, defaults in use.
        const DEFAULTS_IN_USE = 1 << 4;
        /// Bit 5: staged changes not yet saved (computed by the map).
        const UNSAVED_CHANGES = 1 << 5;
        /// Bit 6: last reset was by the watchdog.
        const WATCHDOG_RESET = 1 << 6;
        /// Bit 7: the charger's read-back of its currents was implausible (above what
        /// the car can draw, or contradicting the meter): headroom mode uses the meter
        /// alone until it is plausible again (see the balancer's `on_charger_currents`).
        const READBACK_IMPLAUSIBLE = 1 << 7;
    }
}

/// The balancer's state, as register 1002 shows it (and the LED). Defined with the
/// map, below the balancer, which re-exports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// 0: between lower and upper limit (or at the charger maximum); the limit holds.
    Normal = 0,
    /// 1: at or below the lower limit and the limit can still rise.
    Lower = 1,
    /// 2: above the upper limit.
    Upper = 2,
    /// 3: above the alarm limit.
    Alarm = 3,
    /// 4: no valid meter data for the fallback time.
    Fallback = 4,
}

impl State {
    /// The register 1002 value.
    pub fn code(self) -> u16 {
        self as u16
    }
}

/// The read-only values the driver fills in (1001–1004, 1100–1120, 1130–1177). Units
/// as in the register table; values the meter or charger does not send stay 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status {
    /// 1130–1177: each charger's status (six registers per charger from 1130).
    pub chargers: [ChargerRegs; MAX_CHARGERS],
    /// 1001: the value sent to the charger, mA.
    pub sent_ma: u16,
    /// 1002: the balancer state.
    pub state: State,
    /// 1003: the flags. Bit 5 is the map's own (staged ≠ saved) and ignored here.
    pub flags: Flags,
    /// 1004: seconds since the last valid telegram, saturating.
    pub seconds_since_telegram: u16,
    /// 1100–1102: grid current per phase, 0.01 A, import positive.
    pub grid_ca: [i16; 3],
    /// 1103–1105: voltage per phase, 0.1 V.
    pub voltage_dv: [u16; 3],
    /// 1106–1107: total import power, W.
    pub import_w: u32,
    /// 1108–1109: total export power, W.
    pub export_w: u32,
    /// 1110–1112: the charger's own phase currents, 0.01 A.
    pub charger_ca: [u16; 3],
    /// 1113: the charger's charging state, as it reports it.
    pub charger_state: u16,
    /// 1114: the charger's error code, as it reports it.
    pub charger_error: u16,
    /// 1115–1116: valid telegrams since boot.
    pub telegrams_valid: u32,
    /// 1117–1118: telegrams rejected (CRC or framing) since boot.
    pub telegrams_rejected: u32,
    /// 1119–1120: uptime, s.
    pub uptime_s: u32,
    /// 1122–1126: the capacity tariff's quarter-hour account.
    pub capacity: CapacityRegs,
    /// 1127–1128: the solar charge modes.
    pub solar: SolarRegs,
}

/// The solar charge modes' status, registers 1127–1128 (read-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SolarRegs {
    /// 1127: surplus available to the chargers, units of 10 W (export positive).
    pub surplus_10w: i16,
    /// 1128: 0 idle, 1 waiting to start, 2 charging on surplus, 3 waiting to stop.
    pub state: u16,
}

/// The capacity tariff's status, registers 1122–1126 (read-only), W and s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CapacityRegs {
    /// 1122: average import power of the quarter-hour so far, W.
    pub quarter_average_w: u16,
    /// 1123: the quarter's average if the present power continued to its end, W.
    pub quarter_projected_w: u16,
    /// 1124: the highest quarter-hour average of this month, W.
    pub month_peak_w: u16,
    /// 1125: seconds left in the quarter-hour.
    pub seconds_left: u16,
    /// 1126: power the capacity budget allows the chargers now, W (65535: no bound).
    pub charger_power_w: u16,
}

impl Default for CapacityRegs {
    /// Nothing known: zeros, the quarter's full 900 s, no bound on the chargers.
    fn default() -> Self {
        CapacityRegs {
            quarter_average_w: 0,
            quarter_projected_w: 0,
            month_peak_w: 0,
            seconds_left: 900,
            charger_power_w: u16::MAX,
        }
    }
}

impl Default for Status {
    /// At boot: everything 0, the balancer in state 1 (as the balancer starts), no
    /// telegram yet (1004 = 65535).
    fn default() -> Self {
        Status {
            chargers: [ChargerRegs::default(); MAX_CHARGERS],
            sent_ma: 0,
            state: State::Lower,
            flags: Flags::empty(),
            seconds_since_telegram: u16::MAX,
            grid_ca: [0; 3],
            voltage_dv: [0; 3],
            import_w: 0,
            export_w: 0,
            charger_ca: [0; 3],
            charger_state: 0,
            charger_error: 0,
            telegrams_valid: 0,
            telegrams_rejected: 0,
            uptime_s: 0,
            capacity: CapacityRegs::default(),
            solar: SolarRegs::default(),
        }
    }
}

/// What the driver must do after a successful write. Small and `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOutcome {
    /// Register 1000 was written: pass this cap (mA) to
    /// the balancer (`Balancer::set_cap`); it takes effect at the next tick. Not saved.
    pub cap_ma: Option<u16>,
    /// 1091 or 1092 was written with 1 and the staged set is consistent, or the
    /// charge mode (1080, which applies without 1091) changed: persist it, then
    /// confirm with [`RegisterMap::commit_saved`].
    pub save: Option<Save>,
}

/// A configuration to persist and apply (the answer to 1091 or 1092).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Save {
    /// The validated configuration to persist, then apply to the balancer.
    pub config: Config,
    /// The new Modbus server address when it differs from the saved one: switch to it
    /// after the reply to this write has been sent (and only if the save succeeded).
    pub new_server_address: Option<u8>,
}

/// The register map's state: see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterMap {
    saved: Config,
    staged: Config,
    cap_ma: u16,
    status: Status,
}

impl RegisterMap {
    /// The map at boot with the configuration loaded from storage (or the defaults):
    /// nothing staged, the override cap (1000) equal to the charger maximum (1010).
    pub fn new(saved: Config) -> Self {
        RegisterMap {
            saved,
            staged: saved,
            cap_ma: charger_max(&saved),
            status: Status::default(),
        }
    }

    /// The saved configuration (the one the balancer runs).
    pub fn saved(&self) -> &Config {
        &self.saved
    }

    /// The staged configuration (what the setting registers read).
    pub fn staged(&self) -> &Config {
        &self.staged
    }

    /// True when staged settings differ from the saved ones (1003 bit 5).
    pub fn has_unsaved_changes(&self) -> bool {
        self.staged != self.saved
    }

    /// Register 1000, mA.
    pub fn cap_ma(&self) -> u16 {
        self.cap_ma
    }

    /// The driver-filled values.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The driver-filled values, to update.
    pub fn status_mut(&mut self) -> &mut Status {
        &mut self.status
    }

    /// Register 1003: the driver's flags with bit 5 computed from staged ≠ saved.
    pub fn flags(&self) -> Flags {
        let mut f = self.status.flags;
        f.set(Flags::UNSAVED_CHANGES, self.has_unsaved_changes());
        f
    }

    /// Confirms that `config` (from a [`Save`]) was persisted: it becomes the saved
    /// configuration. Staged changes made since stay staged. As in
    /// the balancer's `apply_config`, an override cap equal to the old charger maximum
    /// follows the new one, so that 1000 reads the cap the balancer uses.
    pub fn commit_saved(&mut self, config: Config) {
        if self.cap_ma == charger_max(&self.saved) {
            self.cap_ma = charger_max(&config);
        }
        self.saved = config;
    }

    /// FC 03: reads `out.len()` registers from `start`. Every address of 1000–1199
    /// reads; reserved and write-only ones read 0 (1090 reads the staged server
    /// address). A quantity of 0 or above 125 answers 03; an address outside 1000–1199
    /// answers 02.
    pub fn read(&self, start: u16, out: &mut [u16]) -> Result<(), Exception> {
        if out.is_empty() || out.len() > MAX_READ {
            return Err(Exception::IllegalDataValue);
        }
        check_span(start, out.len())?;
        for (address, word) in (start..).zip(out.iter_mut()) {
            *word = self.word(address);
        }
        Ok(())
    }

    /// FC 06 (one value) and FC 16 (several): writes `values` from `start`.
    ///
    /// A quantity of 0 or above 123 answers 03; an address outside 1000–1199, read-only
    /// or reserved answers 02; a value out of its range, a value other than 1 to 1091
    /// or 1092, or an inconsistent staged set at 1091 answers 03. The values apply in
    /// address order (so settings written together with 1091 are saved by it), but a
    /// refused request changes nothing at all.
    pub fn write(&mut self, start: u16, values: &[u16]) -> Result<WriteOutcome, Exception> {
        if values.is_empty() || values.len() > MAX_WRITE {
            return Err(Exception::IllegalDataValue);
        }
        check_span(start, values.len())?;
        for address in (start..).take(values.len()) {
            match register(address) {
                Some(reg) if reg.access != Access::Read => {}
                _ => return Err(Exception::IllegalDataAddress),
            }
        }
        // Apply to a copy; keep it only when the whole request passed.
        let mut staged = self.staged;
        let mut outcome = WriteOutcome::default();
        let mut mode = None;
        for (address, &value) in (start..).zip(values) {
            match address {
                OVERRIDE_CAP => outcome.cap_ma = Some(value),
                SAVE | RESTORE_DEFAULTS => {
                    if value != 1 {
                        return Err(Exception::IllegalDataValue);
                    }
                    if address == RESTORE_DEFAULTS {
                        staged = Config::default();
                    }
                    staged.validate().map_err(|_| Exception::IllegalDataValue)?;
                    let new_address = staged.server_address();
                    outcome.save = Some(Save {
                        config: staged,
                        new_server_address: (new_address != self.saved.server_address())
                            .then_some(new_address),
                    });
                }
                _ => {
                    staged
                        .set(address, value)
                        .map_err(|_| Exception::IllegalDataValue)?;
                    if address == crate::config::address::CHARGE_MODE {
                        mode = Some(value);
                    }
                }
            }
        }
        // The charge mode (1080) applies at once, without 1091: the saved configuration
        // with the new mode is persisted and committed (other staged changes stay
        // staged). A save in the same request carries it already.
        if let (None, Some(value)) = (outcome.save, mode) {
            let mut config = self.saved;
            if config.get(crate::config::address::CHARGE_MODE) != Some(value) {
                config
                    .set(crate::config::address::CHARGE_MODE, value)
                    .map_err(|_| Exception::IllegalDataValue)?;
                outcome.save = Some(Save {
                    config,
                    new_server_address: None,
                });
            }
        }
        self.staged = staged;
        if let Some(cap) = outcome.cap_ma {
            self.cap_ma = cap;
        }
        Ok(outcome)
    }

    /// The value of one address of 1000–1199.
    fn word(&self, address: u16) -> u16 {
        use self::address::*;
        let s = &self.status;
        match address {
            OVERRIDE_CAP => self.cap_ma,
            SENT_CURRENT => s.sent_ma,
            BALANCER_STATE => s.state.code(),
            STATUS_FLAGS => self.flags().bits(),
            SECONDS_SINCE_TELEGRAM => s.seconds_since_telegram,
            GRID_CURRENT_L1..=GRID_CURRENT_L3 => {
                s.grid_ca[usize::from(address - GRID_CURRENT_L1)] as u16
            }
            VOLTAGE_L1..=VOLTAGE_L3 => s.voltage_dv[usize::from(address - VOLTAGE_L1)],
            CHARGER_CURRENT_L1..=CHARGER_CURRENT_L3 => {
                s.charger_ca[usize::from(address - CHARGER_CURRENT_L1)]
            }
            CHARGER_STATE => s.charger_state,
            CHARGER_ERROR => s.charger_error,
            CHARGER1_LIMIT..=CHARGER8_FLAGS => {
                let i = address - CHARGER1_LIMIT;
                let k = usize::from(i / CHARGER_STATUS_WORDS);
                let field = usize::from(i % CHARGER_STATUS_WORDS);
                s.chargers
                    .get(k)
                    .and_then(|c| c.words().get(field).copied())
                    .unwrap_or(0)
            }
            QUARTER_AVERAGE_POWER => s.capacity.quarter_average_w,
            QUARTER_PROJECTED_POWER => s.capacity.quarter_projected_w,
            MONTH_PEAK_POWER => s.capacity.month_peak_w,
            QUARTER_SECONDS_LEFT => s.capacity.seconds_left,
            CAPACITY_CHARGER_POWER => s.capacity.charger_power_w,
            SOLAR_SURPLUS => s.solar.surplus_10w as u16,
            SOLAR_STATE => s.solar.state,
            // The register (address::FIRMWARE_VERSION) shows the value (self::).
            FIRMWARE_VERSION => self::FIRMWARE_VERSION,
            _ => match self.long(address) {
                // A 32-bit value: high word first.
                Some((first, v)) if address == first => high(v),
                Some((_, v)) => low(v),
                // Settings read staged; commands and reserved addresses read 0.
                None => self.staged.get(address).unwrap_or(0),
            },
        }
    }

    /// The 32-bit register one of whose words is `address`: its first address and
    /// its value.
    fn long(&self, address: u16) -> Option<(u16, u32)> {
        use self::address::{
            EXPORT_POWER, IMPORT_POWER, TELEGRAMS_REJECTED, TELEGRAMS_VALID, UPTIME,
        };
        let s = &self.status;
        [
            (IMPORT_POWER, s.import_w),
            (EXPORT_POWER, s.export_w),
            (TELEGRAMS_VALID, s.telegrams_valid),
            (TELEGRAMS_REJECTED, s.telegrams_rejected),
            (UPTIME, s.uptime_s),
        ]
        .into_iter()
        .find(|&(first, _)| address == first || address == first + 1)
    }
}

fn charger_max(config: &Config) -> u16 {
    u16::try_from(config.charger_max_ma()).unwrap_or(u16::MAX)
}

fn high(v: u32) -> u16 {
    (v >> 16) as u16
}

fn low(v: u32) -> u16 {
    v as u16
}

/// 02 unless `start .. start + len` lies within 1000–1199.
fn check_span(start: u16, len: usize) -> Result<(), Exception> {
    let end = u32::from(start).saturating_add(u32::try_from(len).unwrap_or(u32::MAX));
    if start < FIRST || end > u32::from(LAST) + 1 {
        return Err(Exception::IllegalDataAddress);
    }
    Ok(())
}

/// Writes the register table as Markdown (header and one row per register, in address
/// order), for the README. Settings show their default and valid values from
/// [`SETTINGS`]; the commands show their one valid value, 1.
pub fn markdown_table(out: &mut impl core::fmt::Write) -> core::fmt::Result {
    writeln!(
        out,
        "| Reg | Name | Access | Type | Unit | Default | Valid values | Meaning |"
    )?;
    writeln!(
        out,
        "|-----|------|--------|------|------|---------|--------------|---------|"
    )?;
    for reg in REGISTERS {
        write!(out, "| {}", reg.address)?;
        if reg.ty.words() > 1 {
            write!(out, "–{}", reg.end() - 1)?;
        }
        write!(
            out,
            " | `{}` | {} | {} |",
            reg.name,
            reg.access.as_str(),
            reg.ty.as_str()
        )?;
        cell(out, reg.unit)?;
        match reg.setting {
            Some(setting) => {
                write!(out, " {} | ", setting.default)?;
                match setting.range {
                    Range::Span(lo, hi) => write!(out, "{lo} … {hi}")?,
                    Range::ZeroOr(lo, hi) => write!(out, "0, {lo} … {hi}")?,
                    Range::OneOf(list) => {
                        for (n, v) in list.iter().enumerate() {
                            let sep = if n == 0 { "" } else { ", " };
                            write!(out, "{sep}{v}")?;
                        }
                    }
                }
                if let Some(rule) = setting.rule {
                    write!(out, "; {rule}")?;
                }
                write!(out, " |")?;
            }
            None => {
                cell(out, "")?;
                cell(out, if reg.access == Access::Write { "1" } else { "" })?;
            }
        }
        writeln!(out, " {}. |", reg.title)?;
    }
    Ok(())
}

/// One Markdown table cell after a `|`: ` text |`, or ` |` when empty.
fn cell(out: &mut impl core::fmt::Write, text: &str) -> core::fmt::Result {
    if text.is_empty() {
        out.write_str(" |")
    } else {
        write!(out, " {text} |")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_register_has_its_constant_and_the_constants_are_the_map() {
        assert_eq!(OTHER_NAMES.len(), OTHERS.len());
        for (reg, &(address, name)) in OTHERS.iter().zip(OTHER_NAMES) {
            assert_eq!((reg.address, reg.name), (address, name));
            assert_eq!(register(address).map(|r| r.name), Some(name));
        }
        assert_eq!(address::OVERRIDE_CAP, 1000);
        assert_eq!(address::CHARGER_CURRENT_L1, 1110);
        assert_eq!(address::FIRMWARE_VERSION, 1121);
        // The settings' constants are re-exported: one namespace for the whole map.
        assert_eq!(address::SERVER_ADDRESS, 1090);
    }

    #[test]
    fn every_status_word_reads_its_field() {
        let mut map = RegisterMap::new(Config::default());
        let s = map.status_mut();
        s.sent_ma = 1;
        s.seconds_since_telegram = 4;
        s.grid_ca = [100, -2, 102];
        s.voltage_dv = [103, 104, 105];
        s.import_w = 0x0001_0002;
        s.export_w = 0x0003_0004;
        s.charger_ca = [110, 111, 112];
        s.charger_state = 113;
        s.charger_error = 114;
        s.telegrams_valid = 0x0005_0006;
        s.telegrams_rejected = 0x0007_0008;
        s.uptime_s = 0x0009_000A;
        let mut words = [0u16; 22];
        assert_eq!(map.read(1100, &mut words), Ok(()));
        assert_eq!(
            words,
            [
                100,
                0xFFFE,
                102,
                103,
                104,
                105,
                1,
                2,
                3,
                4,
                110,
                111,
                112,
                113,
                114,
                5,
                6,
                7,
                8,
                9,
                10,
                FIRMWARE_VERSION
            ]
        );
        let mut head = [0u16; 5];
        assert_eq!(map.read(1000, &mut head), Ok(()));
        assert_eq!(head, [16_000, 1, State::Lower.code(), 0, 4]);
    }
}
