//! The register map against registers.md: every register reads, every setting takes
//! its range and refuses one step outside it, read-only and reserved registers refuse
//! writes, refused requests change nothing (also under random write sequences),
//! staged settings, save (1091), restore defaults (1092), server address, override cap.

use p1lb_core::balancer::Balancer;
use p1lb_core::config::{Config, MAX_CHARGERS, Range, SETTINGS, Wiring, address, setting};
use p1lb_core::device::Device;
use p1lb_core::modbus::{Frame, MAX_ADU, Request, Response, Words};
use p1lb_core::registers::State;
use p1lb_core::registers::{
    Access, CHARGER_STATUS_WORDS, CapacityRegs, ChargerFlags, ChargerRegs, Exception,
    FIRMWARE_VERSION, Flags, REGISTERS, RegisterMap, Save, SolarRegs, Type, WriteOutcome,
    charger_status_address, markdown_table, register,
};
use p1lb_core::server::{ServerAction, serve};
use p1lb_core::time::Instant;
use proptest::prelude::*;

/// Time in milliseconds from the start.
fn ms(t: u64) -> Instant {
    Instant::from_millis(t)
}

const IDA: Exception = Exception::IllegalDataAddress;
const IDV: Exception = Exception::IllegalDataValue;

/// Every address 1000–1199, read in two requests.
fn dump(map: &RegisterMap) -> Vec<u16> {
    let mut out = vec![0; 200];
    map.read(1000, &mut out[..125]).expect("read 1000-1124");
    map.read(1125, &mut out[125..]).expect("read 1125-1199");
    out
}

fn read1(map: &RegisterMap, address: u16) -> u16 {
    let mut w = [0xdead];
    map.read(address, &mut w)
        .unwrap_or_else(|e| panic!("read {address}: {e}"));
    w[0]
}

/// A status with every field non-zero, 32-bit values with both words non-zero.
fn busy_map() -> RegisterMap {
    let mut map = RegisterMap::new(Config::default());
    let s = map.status_mut();
    s.sent_ma = 12000;
    s.state = State::Upper;
    s.flags = Flags::METER_STALE | Flags::WATCHDOG_RESET;
    s.seconds_since_telegram = 7;
    s.grid_ca = [-1234, 567, 8];
    s.voltage_dv = [2301, 2302, 2303];
    s.import_w = 0x0001_0002;
    s.export_w = 0x0003_0004;
    s.charger_ca = [1601, 1602, 1603];
    s.charger_state = 2;
    s.charger_error = 9;
    s.telegrams_valid = 0x0005_0006;
    s.telegrams_rejected = 0x0007_0008;
    s.uptime_s = 0x0009_000a;
    s.capacity = CapacityRegs {
        quarter_average_w: 2201,
        quarter_projected_w: 2402,
        month_peak_w: 3003,
        seconds_left: 444,
        charger_power_w: 1505,
    };
    s.solar = SolarRegs {
        surplus_10w: -321,
        state: 3,
    };
    for (k, c) in s.chargers.iter_mut().enumerate() {
        *c = busy_charger(k);
    }
    map
}

/// Charger `k`'s (0-based) status in [`busy_map`]: every word non-zero and different
/// from the other chargers'.
fn busy_charger(k: usize) -> ChargerRegs {
    let k = k as u16;
    ChargerRegs {
        sent_ma: 6000 + 1000 * k,
        grid_ca: [100 * k + 11, 100 * k + 12, 100 * k + 13],
        state: k + 1,
        flags: ChargerFlags::from_bits_retain(k + 1),
    }
}

/// What charger `k`'s (1-based) status register `field` of [`busy_map`] reads.
fn expected_charger(k: usize, field: &str) -> Option<u16> {
    let c = busy_charger(k.checked_sub(1)?);
    Some(match field {
        "limit" => c.sent_ma,
        "current_l1" => c.grid_ca[0],
        "current_l2" => c.grid_ca[1],
        "current_l3" => c.grid_ca[2],
        "state" => c.state,
        "flags" => c.flags.bits(),
        _ => return None,
    })
}

/// What each register of [`busy_map`] reads, by name (settings: their default).
fn expected(name: &str) -> Vec<u16> {
    // charger{k}_{field}: the status block.
    if let Some((k, field)) = name
        .strip_prefix("charger")
        .and_then(|rest| rest.split_once('_'))
        .and_then(|(k, field)| Some((k.parse::<usize>().ok()?, field)))
    {
        return vec![
            expected_charger(k, field).unwrap_or_else(|| panic!("no expectation for {name}")),
        ];
    }
    let fixed: &[u16] = match name {
        "override_cap" => &[16000],
        "sent_current" => &[12000],
        "balancer_state" => &[2],
        "status_flags" => &[0b100_0001],
        "seconds_since_telegram" => &[7],
        "save" | "restore_defaults" => &[0],
        "grid_current_l1" => &[(-1234i16) as u16],
        "grid_current_l2" => &[567],
        "grid_current_l3" => &[8],
        "voltage_l1" => &[2301],
        "voltage_l2" => &[2302],
        "voltage_l3" => &[2303],
        "import_power" => &[1, 2],
        "export_power" => &[3, 4],
        "charger_current_l1" => &[1601],
        "charger_current_l2" => &[1602],
        "charger_current_l3" => &[1603],
        "charger_state" => &[2],
        "charger_error" => &[9],
        "telegrams_valid" => &[5, 6],
        "telegrams_rejected" => &[7, 8],
        "uptime" => &[9, 10],
        "firmware_version" => &[FIRMWARE_VERSION],
        "quarter_average_power" => &[2201],
        "quarter_projected_power" => &[2402],
        "month_peak_power" => &[3003],
        "quarter_seconds_left" => &[444],
        "capacity_charger_power" => &[1505],
        "solar_surplus" => &[(-321i16) as u16],
        "solar_state" => &[3],
        other => panic!("no expectation for {other}"),
    };
    fixed.to_vec()
}

fn writable(address: u16) -> bool {
    register(address).is_some_and(|r| r.access != Access::Read)
}

// ----- The table -----

#[test]
fn the_table_holds_every_setting_and_the_other_registers_of_registers_md() {
    for s in SETTINGS {
        let reg = register(s.address).expect("setting in the table");
        assert_eq!(reg.setting, Some(s), "{}", s.name);
        assert_eq!(
            (reg.name, reg.access, reg.ty),
            (s.name, Access::ReadWrite, Type::U16)
        );
    }
    let others: Vec<(u16, Access, Type)> = REGISTERS
        .iter()
        .filter(|r| r.setting.is_none())
        .map(|r| (r.address, r.access, r.ty))
        .collect();
    use Access::*;
    use Type::*;
    let mut want = vec![
        (1000, ReadWrite, U16),
        (1001, Read, U16),
        (1002, Read, U16),
        (1003, Read, U16),
        (1004, Read, U16),
        (1091, Write, U16),
        (1092, Write, U16),
    ];
    want.extend((1100..=1102).map(|a| (a, Read, I16)));
    want.extend((1103..=1105).map(|a| (a, Read, U16)));
    want.extend([(1106, Read, U32), (1108, Read, U32)]);
    want.extend((1110..=1114).map(|a| (a, Read, U16)));
    want.extend([(1115, Read, U32), (1117, Read, U32), (1119, Read, U32)]);
    want.push((1121, Read, U16));
    // The capacity tariff's quarter-hour account.
    want.extend((1122..=1126).map(|a| (a, Read, U16)));
    // The charge modes: the surplus (signed) and the solar state.
    want.extend([(1127, Read, I16), (1128, Read, U16)]);
    // The status of chargers 1 … 8: six read-only words each from 1130.
    want.extend((1130..=1177).map(|a| (a, Read, U16)));
    assert_eq!(others, want);
    assert_eq!(REGISTERS.len(), SETTINGS.len() + want.len());
    // Address order, no overlap, names unique and snake_case.
    for pair in REGISTERS.windows(2) {
        assert!(pair[0].address + pair[0].ty.words() <= pair[1].address);
    }
    for (i, r) in REGISTERS.iter().enumerate() {
        assert!(
            r.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{}",
            r.name
        );
        assert!(
            REGISTERS[i + 1..].iter().all(|o| o.name != r.name),
            "{}",
            r.name
        );
        assert!(!r.title.is_empty());
        assert_eq!(r.ty.words() == 2, r.ty == Type::U32);
        assert_eq!(r.ty.signed(), r.ty == Type::I16);
    }
    // The second word of a 32-bit value belongs to it.
    assert_eq!(register(1107).map(|r| r.address), Some(1106));
    assert_eq!(register(1005), None);
}

#[test]
fn markdown_table_has_a_row_per_register() {
    let mut md = String::new();
    markdown_table(&mut md).unwrap();
    let rows: Vec<&str> = md.lines().collect();
    assert_eq!(rows.len(), REGISTERS.len() + 2);
    for (row, reg) in rows[2..].iter().zip(REGISTERS) {
        assert!(row.starts_with(&format!("| {}", reg.address)), "{row}");
        assert!(row.contains(&format!("`{}`", reg.name)), "{row}");
        assert_eq!(row.matches(" |").count(), 8, "{row}");
    }
    assert!(
        md.contains("| 1010 | `charger_max_current` | RW | uint16 | mA | 16000 | 6000 … 63000 |")
    );
    assert!(md.contains("| 1106–1107 | `import_power` | R | uint32 | W | | |"));
    assert!(md.contains("| 1091 | `save` | W | uint16 | | | 1 |"));
}

// ----- Reads -----

#[test]
fn every_register_reads_its_value() {
    let map = busy_map();
    for reg in REGISTERS {
        let mut words = vec![0xdead; usize::from(reg.ty.words())];
        map.read(reg.address, &mut words)
            .unwrap_or_else(|e| panic!("{}: {e}", reg.name));
        let want: Vec<u16> = match reg.setting {
            Some(s) => vec![s.default],
            None => expected(reg.name),
        };
        assert_eq!(words, want, "{} ({})", reg.name, reg.address);
        // Each word on its own too.
        for (n, w) in want.iter().enumerate() {
            assert_eq!(read1(&map, reg.address + n as u16), *w, "{}", reg.name);
        }
    }
}

#[test]
fn every_address_of_the_map_reads_and_reserved_ones_read_0() {
    let map = busy_map();
    for address in 1000..=1199 {
        let value = read1(&map, address);
        if register(address).is_none() {
            assert_eq!(value, 0, "reserved {address}");
        }
    }
    // The status is busy everywhere: every non-zero word is a register's.
    let all = dump(&map);
    for (address, value) in (1000u16..).zip(all) {
        if value != 0 {
            assert!(register(address).is_some(), "{address} reads {value}");
        }
    }
}

#[test]
fn write_only_registers_read_0_and_1090_reads_the_staged_server_address() {
    let mut map = RegisterMap::new(Config::default());
    assert_eq!(read1(&map, 1090), 10);
    map.write(1090, &[42]).unwrap();
    assert_eq!(read1(&map, 1090), 42);
    map.write(1091, &[1]).unwrap();
    assert_eq!(read1(&map, 1091), 0);
    assert_eq!(read1(&map, 1092), 0);
}

#[test]
fn reads_of_every_start_and_length_inside_the_map_succeed() {
    let map = busy_map();
    let all = dump(&map);
    for start in 1000u16..=1199 {
        let room = usize::from(1200 - start).min(125);
        for len in 1..=room {
            let mut out = vec![0; len];
            map.read(start, &mut out).unwrap();
            let i = usize::from(start - 1000);
            assert_eq!(out, all[i..i + len]);
        }
    }
}

#[test]
fn reads_touching_999_or_1200_answer_02() {
    let map = busy_map();
    for (start, len) in [
        (999, 1),
        (999, 2),
        (999, 125),
        (1199, 2),
        (1200, 1),
        (1076, 125),
        (0, 1),
        (65535, 1),
        (65535, 125),
        (65500, 100),
    ] {
        let mut out = vec![7; len];
        assert_eq!(map.read(start, &mut out), Err(IDA), "{start}+{len}");
        assert!(out.iter().all(|&w| w == 7), "output untouched");
    }
    let mut out = vec![0; 125];
    assert_eq!(map.read(1075, &mut out), Ok(()));
}

#[test]
fn bad_quantities_answer_03() {
    let mut map = busy_map();
    let before = map.clone();
    assert_eq!(map.read(1000, &mut []), Err(IDV));
    assert_eq!(map.read(1000, &mut [0; 126]), Err(IDV));
    // Quantity is checked before the address.
    assert_eq!(map.read(999, &mut []), Err(IDV));
    assert_eq!(map.write(1010, &[]), Err(IDV));
    assert_eq!(map.write(1000, &[0; 124]), Err(IDV));
    assert_eq!(map, before);
}

// ----- Writes to settings -----

/// Values a setting accepts: its bounds, its default, and for a list every entry.
fn accepted(range: Range, default: u16) -> Vec<u16> {
    match range {
        Range::Span(lo, hi) => vec![lo, hi, default, lo + (hi - lo) / 2],
        Range::OneOf(list) => list.to_vec(),
        Range::ZeroOr(lo, hi) => vec![0, lo, hi, default, lo + (hi - lo) / 2],
    }
}

/// One step outside the range, and for a list every neighbour not in it.
fn refused(range: Range) -> Vec<u16> {
    match range {
        Range::Span(lo, hi) => {
            let mut v = Vec::new();
            if lo > 0 {
                v.extend([lo - 1, 0]);
            }
            if hi < u16::MAX {
                v.extend([hi + 1, u16::MAX]);
            }
            v
        }
        Range::ZeroOr(lo, hi) => {
            let mut v = vec![1, lo - 1];
            if hi < u16::MAX {
                v.extend([hi + 1, u16::MAX]);
            }
            v
        }
        Range::OneOf(list) => {
            let mut v: Vec<u16> = list
                .iter()
                .flat_map(|&x| [x.wrapping_sub(1), x.wrapping_add(1)])
                .chain([u16::MAX])
                .filter(|x| !list.contains(x))
                .collect();
            v.dedup();
            v
        }
    }
}

#[test]
fn every_setting_accepts_its_range_and_reads_back_staged() {
    for s in SETTINGS {
        for v in accepted(s.range, s.default) {
            let mut map = RegisterMap::new(Config::default());
            // The charge mode applies at once: a new one asks for the saved set with it.
            let want = if s.address == address::CHARGE_MODE && v != s.default {
                let mut config = Config::default();
                config.set(s.address, v).expect("in range");
                WriteOutcome {
                    cap_ma: None,
                    save: Some(Save {
                        config,
                        new_server_address: None,
                    }),
                }
            } else {
                WriteOutcome::default()
            };
            assert_eq!(map.write(s.address, &[v]), Ok(want), "{} = {v}", s.name);
            assert_eq!(read1(&map, s.address), v, "{}", s.name);
            assert_eq!(map.staged().get(s.address), Some(v));
            assert_eq!(map.saved(), &Config::default(), "{}: not saved", s.name);
            let bit5 = read1(&map, 1003) & Flags::UNSAVED_CHANGES.bits() != 0;
            assert_eq!(bit5, v != s.default, "{} = {v}: bit 5", s.name);
        }
    }
}

#[test]
fn every_setting_refuses_one_step_outside_its_range_and_nothing_changes() {
    for s in SETTINGS {
        let mut map = busy_map();
        map.write(s.address, &[accepted(s.range, s.default)[0]])
            .unwrap();
        let before = map.clone();
        let bytes = dump(&map);
        let bad = refused(s.range);
        assert!(!bad.is_empty() || s.range == Range::Span(0, u16::MAX));
        for v in bad {
            assert_eq!(map.write(s.address, &[v]), Err(IDV), "{} = {v}", s.name);
            assert_eq!(map, before, "{} = {v}", s.name);
            assert_eq!(dump(&map), bytes);
        }
    }
}

#[test]
fn read_only_and_reserved_registers_refuse_writes_with_02() {
    let mut map = busy_map();
    let before = map.clone();
    let mut refused = 0;
    for address in 1000..=1199 {
        if writable(address) {
            continue;
        }
        for v in [0, 1, u16::MAX] {
            assert_eq!(map.write(address, &[v]), Err(IDA), "{address}");
        }
        refused += 1;
    }
    // 200 addresses less the settings, 1000, 1091, 1092.
    assert_eq!(refused, 200 - SETTINGS.len() - 3);
    for (start, len) in [(999, 1), (999, 2), (1200, 1), (1199, 2), (0, 3), (65535, 1)] {
        assert_eq!(map.write(start, &vec![1; len]), Err(IDA), "{start}+{len}");
    }
    assert_eq!(map, before);
}

#[test]
fn a_multi_register_write_is_all_or_nothing() {
    let mut map = busy_map();
    let before = map.clone();
    let bytes = dump(&map);
    // 1010..=1013: three good values, then an alarm wait of 0.
    assert_eq!(map.write(1010, &[20000, 1, 30000, 0]), Err(IDV));
    // The bad value first.
    assert_eq!(map.write(1010, &[5999, 1, 30000, 2]), Err(IDV));
    // Good values and the override cap, then a reserved address (1005).
    assert_eq!(map.write(1000, &[5; 6]), Err(IDA));
    // Good settings, a bad one, then save.
    assert_eq!(map.write(1090, &[0, 1]), Err(IDV));
    // Good settings, save, then a bad value to 1092.
    assert_eq!(map.write(1090, &[11, 1, 2]), Err(IDV));
    // The whole original block with one wait out of range.
    let mut block: Vec<u16> = (1010..=1022).map(|a| setting(a).unwrap().default).collect();
    block[12] = 256;
    assert_eq!(map.write(1010, &block), Err(IDV));
    assert_eq!(map, before);
    assert_eq!(dump(&map), bytes);

    // The same block with every value good applies entirely.
    block[12] = 60;
    block[0] = 20000;
    assert_eq!(map.write(1010, &block), Ok(WriteOutcome::default()));
    assert_eq!(read1(&map, 1010), 20000);
    assert_eq!(read1(&map, 1022), 60);
}

// ----- Staging and saving -----

#[test]
fn settings_are_staged_until_1091_and_bit_5_shows_it() {
    let mut map = RegisterMap::new(Config::default());
    let bit5 = |m: &RegisterMap| read1(m, 1003) & (1 << 5) != 0;
    assert!(!bit5(&map));
    map.write(1010, &[20000]).unwrap();
    assert_eq!(read1(&map, 1010), 20000);
    assert_eq!(map.saved().charger_max_ma(), 16000);
    assert!(bit5(&map));
    // Back to the saved value: nothing staged.
    map.write(1010, &[16000]).unwrap();
    assert!(!bit5(&map));
    // The driver cannot set bit 5 itself.
    map.status_mut().flags = Flags::from_bits_retain(0xffff);
    assert_eq!(read1(&map, 1003), !(1 << 5));
    map.status_mut().flags = Flags::empty();

    map.write(1010, &[20000]).unwrap();
    map.write(1021, &[18000]).unwrap();
    let out = map.write(1091, &[1]).unwrap();
    let save = out.save.expect("save requested");
    assert_eq!(out.cap_ma, None);
    assert_eq!(save.config, *map.staged());
    assert_eq!(save.config.fallback_ma(), 18000);
    assert_eq!(save.new_server_address, None);
    // Not saved until the driver confirms.
    assert_eq!(map.saved(), &Config::default());
    assert!(bit5(&map));
    map.commit_saved(save.config);
    assert_eq!(map.saved(), &save.config);
    assert!(!bit5(&map));
}

#[test]
fn a_failed_save_leaves_the_staged_changes_and_bit_5() {
    let mut map = RegisterMap::new(Config::default());
    map.write(1013, &[9]).unwrap();
    let first = map.write(1091, &[1]).unwrap();
    // The driver's save failed: no commit_saved.
    assert_eq!(read1(&map, 1013), 9);
    assert_eq!(read1(&map, 1003) & (1 << 5), 1 << 5);
    assert_eq!(map.saved(), &Config::default());
    // Retrying asks for the same save.
    assert_eq!(map.write(1091, &[1]).unwrap(), first);
}

#[test]
fn changes_staged_while_a_save_is_in_flight_stay_staged() {
    let mut map = RegisterMap::new(Config::default());
    map.write(1013, &[9]).unwrap();
    let save = map.write(1091, &[1]).unwrap().save.unwrap();
    map.write(1016, &[8]).unwrap();
    map.commit_saved(save.config);
    assert_eq!(map.saved().alarm_wait_s(), 9);
    assert_eq!(map.saved().upper_wait_s(), 5);
    assert_eq!(read1(&map, 1016), 8);
    assert!(map.has_unsaved_changes());
}

#[test]
fn settings_written_together_with_1091_are_saved_by_it() {
    let mut map = RegisterMap::new(Config::default());
    let out = map.write(1090, &[17, 1]).unwrap();
    assert_eq!(
        out.save
            .map(|s| (s.config.server_address(), s.new_server_address)),
        Some((17, Some(17)))
    );
}

#[test]
fn an_inconsistent_set_answers_03_at_1091_and_nothing_is_saved() {
    let cases: &[(&str, &[(u16, u16)])] = &[
        ("lower = upper", &[(1018, 22000)]),
        ("lower > upper", &[(1018, 23000)]),
        ("upper = alarm", &[(1015, 24000)]),
        ("upper > alarm", &[(1012, 21000)]),
        ("fallback > charger max", &[(1021, 16001)]),
        ("charger min > charger max", &[(1025, 16001)]),
        ("meter emulation = server address", &[(1036, 10)]),
        (
            "server address = meter emulation",
            &[(1036, 20), (1090, 20)],
        ),
    ];
    for (what, writes) in cases {
        let mut map = busy_map();
        for &(a, v) in *writes {
            map.write(a, &[v])
                .unwrap_or_else(|e| panic!("{what}: {a} = {v}: {e}"));
        }
        assert!(map.staged().validate().is_err(), "{what}");
        let before = map.clone();
        let bytes = dump(&map);
        assert_eq!(map.write(1091, &[1]), Err(IDV), "{what}");
        assert_eq!(map, before, "{what}");
        assert_eq!(dump(&map), bytes, "{what}");
        assert_eq!(map.saved(), &Config::default(), "{what}");
    }
    // Emulation at 0 (off) never clashes; the boundary cases are consistent.
    let mut map = RegisterMap::new(Config::default());
    map.write(1021, &[16000]).unwrap();
    map.write(1025, &[16000]).unwrap();
    map.write(1018, &[21999]).unwrap();
    map.write(1012, &[22001]).unwrap();
    map.write(1036, &[11]).unwrap();
    assert!(map.write(1091, &[1]).unwrap().save.is_some());
}

#[test]
fn commands_take_only_1() {
    for address in [1091, 1092] {
        let mut map = busy_map();
        map.write(1010, &[20000]).unwrap();
        let before = map.clone();
        for v in [0, 2, 255, u16::MAX] {
            assert_eq!(map.write(address, &[v]), Err(IDV), "{address} = {v}");
        }
        assert_eq!(map, before);
    }
}

#[test]
fn restore_defaults_stages_the_defaults_and_asks_to_save_them() {
    let mut custom = Config::default();
    custom.set(address::CHARGER_MAX_CURRENT, 32000).unwrap();
    custom.set(address::SERVER_ADDRESS, 33).unwrap();
    let mut map = RegisterMap::new(custom);
    map.write(1013, &[200]).unwrap();
    let out = map.write(1092, &[1]).unwrap();
    assert_eq!(
        out.save,
        Some(Save {
            config: Config::default(),
            new_server_address: Some(10),
        })
    );
    assert_eq!(map.staged(), &Config::default());
    for s in SETTINGS {
        assert_eq!(read1(&map, s.address), s.default, "{}", s.name);
    }
    assert_eq!(map.saved(), &custom, "saved only on confirmation");
    map.commit_saved(Config::default());
    assert_eq!(map.saved(), &Config::default());
    assert!(!map.has_unsaved_changes());
    // Restoring defaults that are already in force: no address change.
    let out = map.write(1092, &[1]).unwrap();
    assert_eq!(out.save.unwrap().new_server_address, None);
}

#[test]
fn a_new_server_address_is_reported_by_1091() {
    let mut map = RegisterMap::new(Config::default());
    map.write(1090, &[247]).unwrap();
    // Staged only: still the old address on the wire.
    assert_eq!(map.saved().server_address(), 10);
    let save = map.write(1091, &[1]).unwrap().save.unwrap();
    assert_eq!(save.new_server_address, Some(247));
    map.commit_saved(save.config);
    assert_eq!(map.saved().server_address(), 247);
    // Saved again with the same address: nothing to switch.
    let save = map.write(1091, &[1]).unwrap().save.unwrap();
    assert_eq!(save.new_server_address, None);
    // Out of range addresses are refused.
    assert_eq!(map.write(1090, &[0]), Err(IDV));
    assert_eq!(map.write(1090, &[248]), Err(IDV));
}

// ----- Override cap (1000) -----

#[test]
fn the_override_cap_boots_at_1010_is_written_at_once_and_never_saved() {
    let mut custom = Config::default();
    custom.set(address::CHARGER_MAX_CURRENT, 20000).unwrap();
    let mut map = RegisterMap::new(custom);
    assert_eq!(read1(&map, 1000), 20000);
    assert_eq!(map.cap_ma(), 20000);
    for v in [0, 5000, u16::MAX] {
        let out = map.write(1000, &[v]).unwrap();
        assert_eq!(
            out,
            WriteOutcome {
                cap_ma: Some(v),
                save: None
            }
        );
        assert_eq!(read1(&map, 1000), v);
        assert!(!map.has_unsaved_changes(), "1000 is not staged");
        assert_eq!(map.saved(), &custom);
    }
    // A save does not carry it; a fresh boot starts at 1010 again.
    map.write(1000, &[5000]).unwrap();
    let save = map.write(1091, &[1]).unwrap().save.unwrap();
    assert_eq!(save.config, custom);
    map.commit_saved(save.config);
    assert_eq!(read1(&map, 1000), 5000);
    assert_eq!(read1(&RegisterMap::new(*map.saved()), 1000), 20000);
}

#[test]
fn the_override_cap_follows_a_new_charger_maximum_as_in_the_balancer() {
    let cfg = Config::default();
    let mut map = RegisterMap::new(cfg);
    let mut balancer = Balancer::new(cfg, ms(0));
    let check = |map: &RegisterMap, b: &Balancer| {
        assert_eq!(u32::from(map.cap_ma()), b.cap_ma());
    };
    check(&map, &balancer);
    let save_with = |map: &mut RegisterMap, b: &mut Balancer, max: u16| {
        map.write(1010, &[max]).unwrap();
        let save = map.write(1091, &[1]).unwrap().save.unwrap();
        map.commit_saved(save.config);
        b.apply_config(save.config);
    };
    // Untouched cap: follows.
    save_with(&mut map, &mut balancer, 20000);
    assert_eq!(map.cap_ma(), 20000);
    check(&map, &balancer);
    // Cap set below: stays.
    let out = map.write(1000, &[8000]).unwrap();
    balancer.set_cap(out.cap_ma.unwrap().into());
    save_with(&mut map, &mut balancer, 30000);
    assert_eq!(map.cap_ma(), 8000);
    check(&map, &balancer);
}

// ----- Status -----

#[test]
fn status_values_read_with_their_types() {
    let mut map = busy_map();
    map.status_mut().grid_ca = [i16::MIN, -1, i16::MAX];
    map.status_mut().uptime_s = u32::MAX;
    let mut w = [0; 3];
    map.read(1100, &mut w).unwrap();
    assert_eq!(w.map(|x| x as i16), [i16::MIN, -1, i16::MAX]);
    let mut w = [0; 2];
    map.read(1119, &mut w).unwrap();
    assert_eq!(w, [0xffff, 0xffff]);
    // Firmware version: this crate's major × 256 + minor.
    let mut parts = env!("CARGO_PKG_VERSION").split('.');
    let major: u16 = parts.next().unwrap().parse().unwrap();
    let minor: u16 = parts.next().unwrap().parse().unwrap();
    assert_eq!(read1(&map, 1121), major * 256 + minor);
}

#[test]
fn status_from_the_balancer() {
    let cfg = Config::default();
    let mut d = Device::new(cfg, ms(0));
    // At boot, no telegram yet.
    assert_eq!(read1(&d.map, 1004), u16::MAX);
    assert_eq!(read1(&d.map, 1002), State::Lower.code());
    d.balancer
        .on_reading(ms(1000), [Some(5000), Some(5000), Some(5000)]);
    for t in (0..=10_000).step_by(1000) {
        d.tick(ms(t));
    }
    d.tick(ms(10_500));
    assert_eq!(
        u32::from(read1(&d.map, 1001)),
        d.balancer.decision().sent_ma
    );
    assert_eq!(read1(&d.map, 1002), d.balancer.decision().state.code());
    assert_eq!(read1(&d.map, 1003) & 1, 1, "stale after 9.5 s");
    assert_eq!(read1(&d.map, 1004), 9);
    d.balancer.on_reading(ms(11_000), [Some(5000), None, None]);
    d.tick(ms(11_200));
    assert_eq!(read1(&d.map, 1003) & 1, 0);
    assert_eq!(read1(&d.map, 1004), 0);
}

#[test]
fn exception_codes() {
    assert_eq!(Exception::IllegalFunction.code(), 1);
    assert_eq!(Exception::IllegalDataAddress.code(), 2);
    assert_eq!(Exception::IllegalDataValue.code(), 3);
    assert_eq!(Exception::ServerDeviceFailure.code(), 4);
    assert_eq!(
        Exception::IllegalDataAddress.to_string(),
        "exception 02: illegal data address"
    );
}

// ----- The status of each charger (1130–1177) -----

/// The server address the RTU requests below go to (1090's default).
const UNIT: u8 = 10;

/// Sends `request` through the RTU server ([`serve`], as the firmware and the daemon's
/// RS485 port do) and returns the words read, an empty list for a write's echo, or the
/// exception code.
fn rtu(map: &mut RegisterMap, request: &Request<'_>) -> Result<Vec<u16>, u8> {
    let mut frame = [0u8; MAX_ADU];
    let n = request
        .emit_frame(UNIT, &mut frame)
        .expect("emit the request");
    let mut out = [0u8; MAX_ADU];
    let ServerAction::Reply { len, .. } = serve(map, UNIT, &frame[..n], &mut out) else {
        panic!("no reply to {request:?}");
    };
    let reply = Frame::new_checked(&out[..len]).expect("a well-formed reply");
    assert_eq!(reply.unit(), UNIT);
    match Response::parse(reply.pdu()).expect("a reply PDU") {
        Response::ReadHolding(words) | Response::ReadInput(words) => Ok(words.iter().collect()),
        Response::WriteSingle { .. } | Response::WriteMultiple { .. } => Ok(Vec::new()),
        Response::Exception { code, .. } => Err(code),
    }
}

/// The whole block as [`busy_map`] fills it: charger 1's six words, then charger 2's…
fn busy_block() -> Vec<u16> {
    (0..MAX_CHARGERS)
        .flat_map(|k| busy_charger(k).words())
        .collect()
}

#[test]
fn each_charger_has_six_named_read_only_registers_from_1130() {
    for k in 1..=MAX_CHARGERS {
        let base = charger_status_address(k - 1).expect("charger k has a block");
        assert_eq!(usize::from(base), 1130 + 6 * (k - 1));
        let fields = [
            (format!("charger{k}_limit"), "mA"),
            (format!("charger{k}_current_l1"), "0.01 A"),
            (format!("charger{k}_current_l2"), "0.01 A"),
            (format!("charger{k}_current_l3"), "0.01 A"),
            (format!("charger{k}_state"), ""),
            (format!("charger{k}_flags"), "bits"),
        ];
        assert_eq!(fields.len(), usize::from(CHARGER_STATUS_WORDS));
        for (offset, (name, unit)) in (0u16..).zip(&fields) {
            let reg = register(base + offset).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(reg.address, base + offset, "{name}");
            assert_eq!(
                (reg.name, reg.unit, reg.access, reg.ty, reg.setting),
                (name.as_str(), *unit, Access::Read, Type::U16, None),
                "{name}"
            );
            assert!(
                reg.title.starts_with(&format!("Charger {k}: ")),
                "{}",
                reg.title
            );
        }
    }
    assert_eq!(charger_status_address(MAX_CHARGERS), None);
    assert_eq!(charger_status_address(usize::MAX), None);
    // The addresses around the block stay reserved.
    for reserved in [1129, 1178, 1199] {
        assert_eq!(register(reserved), None, "{reserved}");
    }
}

#[test]
fn charger_status_words_and_flag_bits_are_the_documented_ones() {
    for k in 0..MAX_CHARGERS {
        let c = busy_charger(k);
        assert_eq!(ChargerRegs::from_words(c.words()), c);
    }
    let c = ChargerRegs {
        sent_ma: 16000,
        grid_ca: [1, 2, 3],
        state: 2,
        flags: ChargerFlags::PAUSED | ChargerFlags::CAR_CONNECTED,
    };
    assert_eq!(c.words(), [16000, 1, 2, 3, 2, 0b1_0100]);
    let documented = [
        (ChargerFlags::NOT_ANSWERING, 0),
        (ChargerFlags::EXCEPTION, 1),
        (ChargerFlags::PAUSED, 2),
        (ChargerFlags::WIRING_KNOWN, 3),
        (ChargerFlags::CAR_CONNECTED, 4),
    ];
    for (flag, bit) in documented {
        assert_eq!(flag.bits(), 1 << bit, "{flag:?}");
    }
    assert_eq!(ChargerFlags::all().bits(), 0x1f);
    // Bits a newer device may add are kept when read back.
    assert_eq!(
        ChargerRegs::from_words([0, 0, 0, 0, 0, 0x8001])
            .flags
            .bits(),
        0x8001
    );
}

#[test]
fn the_charger_status_block_reads_through_the_rtu_server() {
    let mut map = busy_map();
    let block = busy_block();
    assert!(block.iter().all(|&w| w != 0), "busy everywhere");
    // The whole block in one request, FC 03 and its FC 04 mirror.
    let whole = Request::ReadHolding {
        start: 1130,
        quantity: 48,
    };
    assert_eq!(rtu(&mut map, &whole), Ok(block.clone()));
    let input = Request::ReadInput {
        start: 1130,
        quantity: 48,
    };
    assert_eq!(rtu(&mut map, &input), Ok(block.clone()));
    // Every register on its own.
    for (address, &want) in (1130u16..).zip(&block) {
        let one = Request::ReadHolding {
            start: address,
            quantity: 1,
        };
        assert_eq!(rtu(&mut map, &one), Ok(vec![want]), "{address}");
    }
    // From 1121 to the end of the map: the capacity account, the solar status, the
    // reserved 1129 and 1178–1199 read 0.
    let tail = Request::ReadHolding {
        start: 1121,
        quantity: 79,
    };
    let mut want = vec![FIRMWARE_VERSION, 2201, 2402, 3003, 444, 1505];
    want.extend([(-321i16) as u16, 3, 0]);
    want.extend(&block);
    want.extend([0; 22]);
    assert_eq!(rtu(&mut map, &tail), Ok(want));
    // One word past the map: 02, as everywhere.
    let past = Request::ReadHolding {
        start: 1130,
        quantity: 71,
    };
    assert_eq!(rtu(&mut map, &past), Err(2));
}

#[test]
fn writes_to_the_charger_status_block_answer_02_and_change_nothing() {
    let mut map = busy_map();
    let before = map.clone();
    for address in 1130..=1177 {
        for value in [0, 1, 16000, u16::MAX] {
            let write = Request::WriteSingle { address, value };
            assert_eq!(rtu(&mut map, &write), Err(2), "{address} = {value}");
            assert_eq!(map.write(address, &[value]), Err(IDA), "{address}");
        }
    }
    let values = [7u16; 48];
    for (start, n) in [(1130, 48), (1135, 1), (1177, 1), (1170, 8), (1125, 10)] {
        let write = Request::WriteMultiple {
            start,
            values: Words::Native(&values[..n]),
        };
        assert_eq!(rtu(&mut map, &write), Err(2), "{start}+{n}");
    }
    assert_eq!(map, before);
    assert_eq!(dump(&map), dump(&before));
}

#[test]
fn chargers_beyond_charger_count_read_0() {
    let mut cfg = Config::default();
    cfg.set_charger_count(3).unwrap();
    cfg.set_wiring_of(1, Wiring::Single(0)).unwrap();
    cfg.set_wiring_of(2, Wiring::ThreePhase).unwrap();
    // Configured, but beyond charger_count: not a charger of this site.
    cfg.set_wiring_of(5, Wiring::ThreePhase).unwrap();
    cfg.validate().unwrap();
    let mut d = Device::new(cfg, ms(0));
    d.balancer
        .on_reading(ms(500), [Some(5000), Some(5000), Some(5000)]);
    for t in (0..=5_000).step_by(1000) {
        d.tick(ms(t));
    }
    let all = Request::ReadHolding {
        start: 1130,
        quantity: 48,
    };
    let words = rtu(&mut d.map, &all).expect("the block reads");
    let charger = |k: usize| -> ChargerRegs {
        let at = usize::from(CHARGER_STATUS_WORDS) * (k - 1);
        ChargerRegs::from_words(words[at..at + 6].try_into().unwrap())
    };
    // Chargers 2 and 3 have their wiring configured: bit 3.
    for k in [2, 3] {
        assert!(
            charger(k).flags.contains(ChargerFlags::WIRING_KNOWN),
            "charger {k}: {:?}",
            charger(k)
        );
    }
    for k in 4..=MAX_CHARGERS {
        assert_eq!(charger(k), ChargerRegs::default(), "charger {k}");
    }
    // The device's status is what the map serves.
    for k in 1..=MAX_CHARGERS {
        assert_eq!(charger(k), d.map.status().chargers[k - 1], "charger {k}");
    }
}

// ----- Properties -----

/// Values that hit the interesting cases often: defaults, bounds, 1, anything.
fn value() -> impl Strategy<Value = u16> {
    let mut specials: Vec<u16> = vec![0, 1, 2, 10, 247, 248, 255, 256, u16::MAX];
    for s in SETTINGS {
        specials.push(s.default);
        if let Range::Span(lo, hi) = s.range {
            specials.extend([lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]);
        }
    }
    prop_oneof![
        3 => prop::sample::select(specials),
        1 => any::<u16>(),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Write(u16, Vec<u16>),
    /// Confirm the last requested save (when there is one).
    Commit,
    Read(u16, usize),
}

fn op() -> impl Strategy<Value = Op> {
    // Mostly writable addresses (settings, 1000, 1091, 1092), else anywhere near.
    let writable: Vec<u16> = (1000..=1199).filter(|&a| writable(a)).collect();
    let start = prop_oneof![
        3 => prop::sample::select(writable),
        2 => 995u16..1205,
        1 => any::<u16>(),
    ];
    let values = prop_oneof![
        6 => prop::collection::vec(value(), 1..=1),
        3 => prop::collection::vec(value(), 2..6),
        1 => prop::collection::vec(value(), 0..130),
    ];
    prop_oneof![
        8 => (start.clone(), values).prop_map(|(s, v)| Op::Write(s, v)),
        1 => prop::sample::select(vec![1091u16, 1092]).prop_map(|a| Op::Write(a, vec![1])),
        1 => Just(Op::Commit),
        1 => (start, 0usize..130).prop_map(|(s, n)| Op::Read(s, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random request sequences never panic; a refused write leaves the map (and every
    /// readable word) exactly as it was; bit 5 always equals staged ≠ saved; saved
    /// configurations are always consistent.
    #[test]
    fn random_writes_never_panic_and_refusals_change_nothing(ops in prop::collection::vec(op(), 1..40)) {
        let mut map = busy_map();
        let mut pending: Option<Save> = None;
        for op in ops {
            match op {
                Op::Write(start, values) => {
                    let before = map.clone();
                    let bytes = dump(&map);
                    match map.write(start, &values) {
                        Ok(out) => {
                            if let Some(cap) = out.cap_ma {
                                prop_assert_eq!(map.cap_ma(), cap);
                            }
                            if let Some(save) = out.save {
                                prop_assert!(save.config.validate().is_ok());
                                pending = Some(save);
                            }
                        }
                        Err(e) => {
                            prop_assert!(matches!(e, Exception::IllegalDataAddress | Exception::IllegalDataValue));
                            prop_assert_eq!(&map, &before);
                            prop_assert_eq!(dump(&map), bytes);
                        }
                    }
                }
                Op::Commit => {
                    if let Some(save) = pending.take() {
                        map.commit_saved(save.config);
                    }
                }
                Op::Read(start, len) => {
                    let mut out = vec![0; len];
                    let inside = u32::from(start) >= 1000 && u32::from(start) + len as u32 <= 1200;
                    let ok = (1..=125).contains(&len) && inside;
                    prop_assert_eq!(map.read(start, &mut out).is_ok(), ok);
                }
            }
            let bit5 = dump(&map)[3] & Flags::UNSAVED_CHANGES.bits() != 0;
            prop_assert_eq!(bit5, map.staged() != map.saved());
            prop_assert!(map.saved().validate().is_ok());
        }
    }
}

/// 1003's bit numbers are public (the README's register table): each flag pinned to
/// its bit, nothing defined above bit 7, and reserved bits kept in a value read back.
#[test]
fn status_flag_bits_are_the_documented_ones() {
    let documented = [
        (Flags::METER_STALE, 0),
        (Flags::CRC_FAILURES, 1),
        (Flags::CHARGER_SILENT, 2),
        (Flags::CHARGER_EXCEPTION, 3),
        (Flags::DEFAULTS_IN_USE, 4),
        (Flags::UNSAVED_CHANGES, 5),
        (Flags::WATCHDOG_RESET, 6),
        (Flags::READBACK_IMPLAUSIBLE, 7),
    ];
    for (flag, bit) in documented {
        assert_eq!(flag.bits(), 1 << bit, "{flag:?}");
    }
    assert_eq!(Flags::all().bits(), 0xff);
    let mut f = Flags::from_bits_retain(0x8001);
    f.set(Flags::CHARGER_SILENT, true);
    f.set(Flags::METER_STALE, false);
    assert_eq!(f.bits(), 0x8004);
}

/// The charge mode (1080) applies without 1091 (registers.md): a write that changes it
/// asks to persist the *saved* set with the new mode, so a setting staged before stays
/// staged; a save in the same request carries it; the same mode asks for nothing; a
/// value out of range changes nothing.
#[test]
fn the_charge_mode_applies_and_persists_without_a_save() {
    let mut map = RegisterMap::new(Config::default());
    // Something staged first.
    map.write(address::CHARGER_MAX_CURRENT, &[10000])
        .expect("staged");
    let out = map.write(address::CHARGE_MODE, &[2]).expect("mode");
    let save = out.save.expect("the mode asks to be persisted");
    assert_eq!(save.config.get(address::CHARGE_MODE), Some(2));
    assert_eq!(
        save.config.get(address::CHARGER_MAX_CURRENT),
        Some(16000),
        "the staged maximum is not in it"
    );
    assert_eq!(save.new_server_address, None);
    map.commit_saved(save.config);
    assert_eq!(map.saved().get(address::CHARGE_MODE), Some(2));
    assert_eq!(read1(&map, address::CHARGE_MODE), 2);
    // The maximum stays staged: bit 5 set, 1010 reads it, the saved one is the old.
    assert_ne!(read1(&map, 1003) & Flags::UNSAVED_CHANGES.bits(), 0);
    assert_eq!(read1(&map, address::CHARGER_MAX_CURRENT), 10000);
    assert_eq!(map.saved().get(address::CHARGER_MAX_CURRENT), Some(16000));
    // The same mode again: nothing to persist.
    assert_eq!(
        map.write(address::CHARGE_MODE, &[2]),
        Ok(WriteOutcome::default())
    );
    // Out of range: refused, nothing changes.
    let before = map.clone();
    assert_eq!(
        map.write(address::CHARGE_MODE, &[4]),
        Err(Exception::IllegalDataValue)
    );
    assert_eq!(map, before);
    // Written with its neighbours (FC 16 over 1080–1084), it still applies at once;
    // a later save carries the whole staged set with it.
    let out = map
        .write(address::CHARGE_MODE, &[1, 0, 60, 180, 0])
        .expect("1080-1084");
    assert!(out.save.is_some());
    let out = map.write(1091, &[1]).expect("save");
    let save = out.save.expect("save");
    assert_eq!(save.config.get(address::CHARGE_MODE), Some(1));
    assert_eq!(save.config.get(address::CHARGER_MAX_CURRENT), Some(10000));
}
