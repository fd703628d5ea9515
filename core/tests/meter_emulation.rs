//! The emulated ABB EV3 meter, fed from a real telegram.

use p1lb_core::meter_emulation::{EmulatedMeter, MeterSnapshot, TYPE_DESIGNATION};
use p1lb_core::p1::{Event, Reading, TelegramReader};
use p1lb_core::registers::Exception;
use proptest::prelude::*;

fn seed_reading() -> Reading {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/telegrams/nl-esmr50-sagemcom-t210d-seed.txt");
    let bytes = std::fs::read(path).unwrap();
    let mut reader: TelegramReader = TelegramReader::new();
    match reader.feed(&bytes).1 {
        Some(Event::Telegram(t)) => Reading::parse(&t),
        other => panic!("{other:?}"),
    }
}

fn meter() -> EmulatedMeter {
    let mut m = EmulatedMeter::new();
    m.update(MeterSnapshot::from_reading(&seed_reading()));
    m
}

fn read(m: &EmulatedMeter, start: u16, n: usize) -> Result<Vec<u16>, Exception> {
    let mut out = vec![0; n];
    m.read(start, &mut out).expect("answers")?;
    Ok(out)
}

fn u64_of(w: &[u16]) -> u64 {
    w.iter().fold(0, |acc, &x| (acc << 16) | u64::from(x))
}

#[test]
fn values_from_the_telegram() {
    let m = meter();
    // 1-0:32.7.0(234.0*V) 52.7.0(236.0*V) 72.7.0(236.0*V)
    assert_eq!(read(&m, 0x5B00, 6).unwrap(), [0, 2340, 0, 2360, 0, 2360]);
    // 98 W / 234.0 V = 0.419 A → 41 (0.01 A); 159 W / 236 V = 0.674 A → 67; 0.
    assert_eq!(read(&m, 0x5B0C, 6).unwrap(), [0, 41, 0, 67, 0, 0]);
    // Total 258 W, per phase 98 / 159 / 0 W, in 0.01 W.
    assert_eq!(u64_of(&read(&m, 0x5B14, 2).unwrap()), 25_800);
    assert_eq!(read(&m, 0x5B16, 6).unwrap(), [0, 9800, 0, 15_900, 0, 0]);
    // Energies: 6184.667 + 4762.136 kWh import, 4708.286 + 11405.268 export, 0.0001 kWh.
    assert_eq!(u64_of(&read(&m, 0x5000, 4).unwrap()), 109_468_030);
    assert_eq!(u64_of(&read(&m, 0x5004, 4).unwrap()), 161_135_540);
    let net = u64_of(&read(&m, 0x5008, 4).unwrap()) as i64;
    assert_eq!(net, 109_468_030 - 161_135_540);
    // Not in P1: per-phase energies read 0; frequency 50.00 Hz; power factor 1.000.
    assert_eq!(read(&m, 0x5460, 4).unwrap(), [0; 4]);
    assert_eq!(read(&m, 0x5B2C, 1).unwrap(), [5000]);
    assert_eq!(read(&m, 0x5B3A, 4).unwrap(), [1000; 4]);
    let t = read(&m, 0x8960, 4).unwrap();
    let text: Vec<u8> = t.iter().flat_map(|w| w.to_be_bytes()).collect();
    assert_eq!(&text, TYPE_DESIGNATION);
}

#[test]
fn export_is_negative_power() {
    let mut r = seed_reading();
    r.phases[0].power_import_w = Some(0);
    r.phases[0].power_export_w = Some(1150);
    r.power_import_w = Some(0);
    r.power_export_w = Some(1150);
    let mut m = EmulatedMeter::new();
    m.update(MeterSnapshot::from_reading(&r));
    let p = read(&m, 0x5B16, 2).unwrap();
    assert_eq!(u64_of(&p) as u32 as i32, -115_000);
    let t = read(&m, 0x5B14, 2).unwrap();
    assert_eq!(u64_of(&t) as u32 as i32, -115_000);
    // Current is a magnitude: 1150 W / 234.0 V = 4.915 A.
    assert_eq!(read(&m, 0x5B0C, 2).unwrap(), [0, 491]);
}

#[test]
fn silent_without_fresh_data() {
    let mut out = [0u16; 2];
    assert_eq!(EmulatedMeter::new().read(0x5B00, &mut out), None);
    let mut m = meter();
    m.invalidate();
    assert_eq!(m.read(0x5B00, &mut out), None);
}

#[test]
fn outside_the_map_is_exception_02() {
    let m = meter();
    assert_eq!(read(&m, 0x5B06, 1), Err(Exception::IllegalDataAddress));
    assert_eq!(read(&m, 0x5B04, 4), Err(Exception::IllegalDataAddress)); // runs into the gap
    assert_eq!(read(&m, 0x1000, 1), Err(Exception::IllegalDataAddress));
    assert_eq!(read(&m, 0xFFFF, 2), Err(Exception::IllegalDataAddress));
    assert_eq!(read(&m, 0x5000, 0), Err(Exception::IllegalDataValue));
    assert_eq!(read(&m, 0x5000, 126), Err(Exception::IllegalDataValue));
}

proptest! {
    #[test]
    fn any_read_is_answered_without_panic(start in any::<u16>(), n in 0usize..130) {
        let m = meter();
        let mut out = vec![0; n];
        prop_assert!(m.read(start, &mut out).is_some());
    }
}
