//! Public samples of Nordic and other IEC 62056-21 text variants
//! (`tests/telegrams-extra/`): each file gives the outcome that
//! `tests/telegrams-extra/README.md` states for it, and every value listed there comes
//! out exactly as printed. One test per file (data-driven from the README), plus the
//! fixed-point model of each.

mod common;

use std::path::{Path, PathBuf};

use common::{Outcome, feed_chunks};
use p1lb_core::p1::{
    CrcStatus, Event, GridSource, Malformed, ReaderStats, Reading, Rejection, Telegram,
    TelegramReader, Timestamp, crc16_arc,
};

/// The extra samples, next to `tests/telegrams`.
fn extra_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/telegrams-extra")
}

fn extra_sample(name: &str) -> Vec<u8> {
    let path = extra_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `*.txt` in the directory, sorted by name.
fn extra_files() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(extra_dir())
        .expect("telegrams-extra dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crc {
    Ok,
    None,
    BadInSource,
}

/// One file's section of the README: the markers and the listed `(obis, groups)`.
struct Expected {
    crc: Option<Crc>,
    no_line_end: bool,
    malformed_header: bool,
    objects: Vec<(String, String)>,
}

fn readme() -> String {
    std::fs::read_to_string(extra_dir().join("README.md")).expect("README.md")
}

fn expected(file: &str) -> Expected {
    let section = common::index_section(&readme(), file);
    let mut e = Expected {
        crc: None,
        no_line_end: false,
        malformed_header: false,
        objects: common::listed_objects(&section),
    };
    for line in &section {
        if line.contains("CRC: ok") {
            e.crc = Some(Crc::Ok);
        } else if line.contains("CRC: none") {
            e.crc = Some(Crc::None);
        } else if line.contains("CRC: bad in source") {
            e.crc = Some(Crc::BadInSource);
        }
        e.no_line_end |= line.contains("Footer: no line end in source");
        e.malformed_header |= line.contains("Reader: malformed header");
    }
    assert!(e.crc.is_some(), "{file}: no CRC marker in README.md");
    assert!(!e.objects.is_empty(), "{file}: no values listed");
    e
}

/// What feeding one file produced.
struct Fed {
    readings: Vec<Reading>,
    rejections: Vec<Rejection>,
    stats: ReaderStats,
}

/// Feeds `bytes` in one go, checking every accepted telegram against `want`.
fn feed(file: &str, bytes: &[u8], want: &Expected) -> Fed {
    let mut reader: TelegramReader = TelegramReader::new();
    let mut readings = Vec::new();
    let mut rejections = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (used, event) = reader.feed(rest);
        rest = &rest[used..];
        match event {
            Some(Event::Telegram(t)) => {
                match (want.crc, t.crc()) {
                    (Some(Crc::Ok), CrcStatus::Ok(_)) | (Some(Crc::None), CrcStatus::Absent) => {}
                    (w, got) => panic!("{file}: CRC verdict {got:?}, README says {w:?}"),
                }
                assert_eq!(t.skipped_lines(), 0, "{file}: lines skipped");
                common::check_objects(file, &t, &want.objects);
                readings.push(Reading::parse(&t));
            }
            Some(Event::Rejected { reason, .. }) => rejections.push(reason),
            None => assert!(rest.is_empty(), "{file}: no event must mean all input used"),
        }
    }
    Fed {
        readings,
        rejections,
        stats: *reader.stats(),
    }
}

/// Feeds the file and checks the outcome the README states; the reading of an
/// accepted telegram.
fn check_sample(file: &str) -> Option<Reading> {
    let want = expected(file);
    let mut bytes = extra_sample(file);
    if want.no_line_end {
        // As published the footer stops after the CRC digits: the reader waits for the
        // line end and reports nothing yet.
        let fed = feed(file, &bytes, &want);
        assert!(
            fed.readings.is_empty() && fed.rejections.is_empty(),
            "{file}"
        );
        assert_eq!(fed.stats, ReaderStats::default(), "{file}");
        bytes.extend_from_slice(b"\r\n");
    }
    let fed = feed(file, &bytes, &want);
    assert_eq!(
        fed.stats.skipped_bytes, 0,
        "{file}: bytes skipped outside the telegram"
    );
    if want.malformed_header {
        assert!(fed.readings.is_empty(), "{file}: accepted");
        assert_eq!(
            fed.rejections,
            [Rejection::Malformed(Malformed::Header)],
            "{file}"
        );
        return None;
    }
    if want.crc == Some(Crc::BadInSource) {
        assert!(fed.readings.is_empty(), "{file}: accepted");
        assert!(
            matches!(fed.rejections[..], [Rejection::BadCrc { .. }]),
            "{file}: {:?}",
            fed.rejections
        );
        return None;
    }
    assert!(
        fed.rejections.is_empty(),
        "{file}: rejected: {:?}",
        fed.rejections
    );
    assert_eq!((fed.stats.valid, fed.stats.rejected()), (1, 0), "{file}");
    let mut readings = fed.readings;
    assert_eq!(readings.len(), 1, "{file}");
    readings.pop()
}

fn accepted(file: &str) -> Reading {
    check_sample(file).unwrap_or_else(|| panic!("{file}: not accepted"))
}

macro_rules! sample_tests {
    ($($name:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $name() {
                check_sample($file);
            }
        )*
        const FILES: &[&str] = &[$($file),*];
    };
}

sample_tests! {
    hu_eon_sagemcom => "hu-eon-sagemcom.txt",
    ie_iskra_mie5t_200 => "ie-iskra-mie5t-200.txt",
    se_aidon_6534 => "se-aidon-6534.txt",
    se_kamstrup_kam5 => "se-kamstrup-kam5.txt",
    se_landisgyr_e360_a => "se-landisgyr-e360-a.txt",
    se_landisgyr_e360_b => "se-landisgyr-e360-b.txt",
    se_sagemcom_t211_a => "se-sagemcom-t211-a.txt",
    se_sagemcom_t211_b => "se-sagemcom-t211-b.txt",
}

#[test]
fn every_extra_sample_has_a_test() {
    let mut listed: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(extra_files(), listed);
}

/// Every sample's CRC is verified here too, independently of the reader.
#[test]
fn crcs_as_recomputed() {
    for file in FILES {
        let bytes = extra_sample(file);
        let start = bytes.iter().position(|&b| b == b'/').unwrap();
        let bang = start + bytes[start..].iter().position(|&b| b == b'!').unwrap();
        let printed = std::str::from_utf8(&bytes[bang + 1..bang + 5]).unwrap();
        let computed = format!("{:04X}", crc16_arc(&bytes[start..=bang]));
        let good = printed == computed;
        assert_eq!(
            good,
            expected(file).crc == Some(Crc::Ok),
            "{file}: printed {printed}, computed {computed}"
        );
    }
}

fn ts(s: &str) -> Option<Timestamp> {
    Timestamp::parse(s.as_bytes())
}

/// `[f(L1), f(L2), f(L3)]`.
macro_rules! per_phase {
    ($r:expr, $field:ident) => {
        $r.phases.iter().map(|p| p.$field).collect::<Vec<_>>()
    };
}

/// What every Swedish sample lacks: DSMR version, tariff registers, M-Bus, identifiers.
fn assert_swedish_shape(r: &Reading) {
    assert_eq!(r.version, None);
    assert_eq!(r.meter_id, None);
    assert_eq!(r.tariff, None);
    assert_eq!((r.import_wh.t1, r.import_wh.t2), (None, None));
    assert_eq!((r.export_wh.t1, r.export_wh.t2), (None, None));
    assert!(r.mbus.is_empty());
    assert_eq!(r.unit_errors, 0);
}

#[test]
fn model_sagemcom_t211_a() {
    let r = accepted("se-sagemcom-t211-a.txt");
    assert_swedish_shape(&r);
    assert_eq!(r.timestamp, ts("210217184019W"));
    // 00006678.394 kWh, 00000000.000 kWh.
    assert_eq!(
        (r.import_wh.total, r.export_wh.total),
        (Some(6_678_394), Some(0))
    );
    assert_eq!(r.import_wh.sum(), Some(6_678_394));
    assert_eq!((r.power_import_w, r.power_export_w), (Some(1727), Some(0)));
    assert_eq!(
        per_phase!(r, voltage_dv),
        [Some(2403), Some(2401), Some(2413)]
    );
    assert_eq!(
        per_phase!(r, current_ma),
        [Some(4200), Some(1600), Some(1700)]
    );
    assert_eq!(
        per_phase!(r, power_import_w),
        [Some(1023), Some(350), Some(353)]
    );
    assert_eq!(per_phase!(r, power_export_w), [Some(0); 3]);
    // 1023 W / 240.3 V = 4.2572 A; 350 / 240.1 = 1.4577 A; 353 / 241.3 = 1.4629 A.
    assert_eq!(
        r.grid_currents_ma(GridSource::Auto),
        [Some(4257), Some(1458), Some(1463)]
    );
}

#[test]
fn model_sagemcom_t211_b() {
    let r = accepted("se-sagemcom-t211-b.txt");
    assert_swedish_shape(&r);
    assert_eq!(r.timestamp, ts("201020085222W"));
    assert_eq!(
        (r.import_wh.total, r.export_wh.total),
        (Some(1_605_055), Some(131))
    );
    assert_eq!((r.power_import_w, r.power_export_w), (Some(6000), Some(0)));
    assert_eq!(
        per_phase!(r, voltage_dv),
        [Some(2344), Some(2333), Some(2351)]
    );
    assert_eq!(
        per_phase!(r, current_ma),
        [Some(13_600), Some(2000), Some(10_200)]
    );
    assert_eq!(
        per_phase!(r, power_import_w),
        [Some(3172), Some(441), Some(2386)]
    );
    // 3172 W / 234.4 V = 13.5324 A; 441 / 233.3 = 1.8903 A; 2386 / 235.1 = 10.1489 A.
    assert_eq!(
        r.grid_currents_ma(GridSource::Auto),
        [Some(13_532), Some(1890), Some(10_149)]
    );
}

#[test]
fn model_landisgyr_e360_exporting() {
    let r = accepted("se-landisgyr-e360-a.txt");
    assert_swedish_shape(&r);
    assert_eq!(r.timestamp.unwrap().summer, Some(false));
    assert_eq!(
        (r.import_wh.total, r.export_wh.total),
        (Some(896_020), Some(48_792))
    );
    assert_eq!((r.power_import_w, r.power_export_w), (Some(0), Some(20)));
    assert_eq!(per_phase!(r, power_import_w), [Some(0), Some(0), Some(63)]);
    assert_eq!(per_phase!(r, power_export_w), [Some(12), Some(71), Some(0)]);
    assert_eq!(
        per_phase!(r, voltage_dv),
        [Some(2301), Some(2322), Some(2304)]
    );
    assert_eq!(per_phase!(r, current_ma), [Some(600), Some(600), Some(300)]);
    // −12 W / 230.1 V = −52.2 mA; −71 / 232.2 = −305.8 mA; 63 / 230.4 = 273.4 mA.
    assert_eq!(
        r.grid_currents_ma(GridSource::Auto),
        [Some(-52), Some(-306), Some(273)]
    );
    // The current objects alone are unsigned.
    assert_eq!(
        r.grid_currents_ma(GridSource::CurrentObjects),
        [Some(600), Some(600), Some(300)]
    );
}

#[test]
fn model_landisgyr_e360_b() {
    let r = accepted("se-landisgyr-e360-b.txt");
    assert_swedish_shape(&r);
    assert_eq!(r.timestamp, ts("220204110650W"));
    assert_eq!(
        (r.import_wh.total, r.export_wh.total),
        (Some(10_501_076), Some(0))
    );
    assert_eq!(r.power_import_w, Some(2301));
    assert_eq!(
        per_phase!(r, power_import_w),
        [Some(622), Some(667), Some(1011)]
    );
    assert_eq!(
        per_phase!(r, voltage_dv),
        [Some(2321), Some(2331), Some(2319)]
    );
    assert_eq!(
        per_phase!(r, current_ma),
        [Some(2800), Some(2900), Some(4800)]
    );
    // 622 W / 232.1 V = 2.6799 A; 667 / 233.1 = 2.8614 A; 1011 / 231.9 = 4.3596 A.
    assert_eq!(
        r.grid_currents_ma(GridSource::Auto),
        [Some(2680), Some(2861), Some(4360)]
    );
}

#[test]
fn model_kamstrup_kam5() {
    let r = accepted("se-kamstrup-kam5.txt");
    assert_swedish_shape(&r);
    assert_eq!(r.timestamp, ts("220408135021W"));
    assert_eq!(
        (r.import_wh.total, r.export_wh.total),
        (Some(60_995_424), Some(0))
    );
    assert_eq!((r.power_import_w, r.power_export_w), (Some(2202), Some(0)));
    assert_eq!(
        per_phase!(r, power_import_w),
        [Some(1947), Some(63), Some(192)]
    );
    assert_eq!(
        per_phase!(r, voltage_dv),
        [Some(2355), Some(2395), Some(2391)]
    );
    assert_eq!(
        per_phase!(r, current_ma),
        [Some(8300), Some(400), Some(1400)]
    );
    // 1947 W / 235.5 V = 8.2675 A; 63 / 239.5 = 0.2630 A; 192 / 239.1 = 0.8030 A.
    assert_eq!(
        r.grid_currents_ma(GridSource::Auto),
        [Some(8268), Some(263), Some(803)]
    );
}

#[test]
fn model_aidon_6534() {
    let r = accepted("se-aidon-6534.txt");
    assert_swedish_shape(&r);
    assert_eq!(r.timestamp, ts("240108164940W"));
    assert_eq!(
        (r.import_wh.total, r.export_wh.total),
        (Some(10_117_368), Some(0))
    );
    assert_eq!((r.power_import_w, r.power_export_w), (Some(4251), Some(0)));
    assert_eq!(
        per_phase!(r, power_import_w),
        [Some(1462), Some(1263), Some(1523)]
    );
    assert_eq!(
        per_phase!(r, voltage_dv),
        [Some(2212), Some(2243), Some(2233)]
    );
    assert_eq!(
        per_phase!(r, current_ma),
        [Some(7000), Some(6000), Some(6900)]
    );
    // 1462 W / 221.2 V = 6.6094 A; 1263 / 224.3 = 5.6309 A; 1523 / 223.3 = 6.8204 A.
    assert_eq!(
        r.grid_currents_ma(GridSource::Auto),
        [Some(6609), Some(5631), Some(6820)]
    );
}

#[test]
fn model_eon_hungary() {
    let r = accepted("hu-eon-sagemcom.txt");
    assert_eq!(r.version, None);
    assert_eq!(r.timestamp, ts("230724150730S"));
    assert_eq!(r.timestamp.unwrap().summer, Some(true));
    assert_eq!(r.tariff, Some(1));
    assert_eq!(r.breaker_closed, Some(true));
    // The meter's serial is printed in 0-0:96.1.0 (and 0-0:42.0.0), not 0-0:96.1.1.
    assert_eq!(
        r.meter_id.as_deref(),
        Some("383930303832323030303032313630")
    );
    // 000173.640 / 000047.719 / 000125.921 kWh; 1.8.3 and 1.8.4 are not in the model.
    assert_eq!(
        (r.import_wh.total, r.import_wh.t1, r.import_wh.t2),
        (Some(173_640), Some(47_719), Some(125_921))
    );
    assert_eq!(
        (r.export_wh.total, r.export_wh.t1, r.export_wh.t2),
        (Some(627_177), Some(401_829), Some(225_348))
    );
    assert_eq!(r.import_wh.sum(), Some(173_640));
    assert_eq!((r.power_import_w, r.power_export_w), (Some(0), Some(2601)));
    assert_eq!(
        per_phase!(r, voltage_dv),
        [Some(2404), Some(2391), Some(2412)]
    );
    assert_eq!(
        per_phase!(r, current_ma),
        [Some(3000), Some(4000), Some(3000)]
    );
    assert_eq!(per_phase!(r, power_import_w), [None; 3]);
    assert_eq!(per_phase!(r, power_export_w), [None; 3]);
    // 1-0:31.4.0(200.00*A).
    assert_eq!(r.current_limit_ma, Some(200_000));
    // No per-phase power: the current objects as printed, unsigned, although the
    // meter exports 2.601 kW in total.
    assert_eq!(
        r.grid_currents_ma(GridSource::Auto),
        [Some(3000), Some(4000), Some(3000)]
    );
    assert!(r.mbus.is_empty());
    assert_eq!(r.unit_errors, 0);
}

/// The Iskra IE sample as a meter sends it: `\2` (two characters) instead of the
/// control byte the Python literal produced, CRC recomputed.
fn iskra_as_sent() -> Vec<u8> {
    let src = extra_sample("ie-iskra-mie5t-200.txt");
    let stx = src
        .iter()
        .position(|&b| b == 0x02)
        .expect("0x02 in the header");
    let mut bytes = src[..stx].to_vec();
    bytes.extend_from_slice(b"\\2");
    let bang = src.iter().position(|&b| b == b'!').unwrap();
    bytes.extend_from_slice(&src[stx + 1..=bang]);
    let crc = crc16_arc(&bytes);
    bytes.extend_from_slice(format!("{crc:04X}\r\n").as_bytes());
    bytes
}

#[test]
fn iskra_ie_header_with_control_byte_is_refused() {
    // The CRC matches (AD3B over the 0x02 byte): only the header check refuses it.
    let bytes = extra_sample("ie-iskra-mie5t-200.txt");
    let bang = bytes.iter().position(|&b| b == b'!').unwrap();
    assert_eq!(crc16_arc(&bytes[..=bang]), 0xAD3B);
    assert_eq!(&bytes[bang..], b"!AD3B\r\n");
    assert_eq!(
        Telegram::new_checked(&bytes[..=bang], CrcStatus::Ok(0xAD3B)).err(),
        Some(Malformed::Header)
    );
}

#[test]
fn model_iskra_ie_as_sent() {
    let file = "ie-iskra-mie5t-200.txt";
    let bytes = iskra_as_sent();
    assert!(bytes.starts_with(b"/ISk5\\2MIE5T-200\r\n"));
    let want = Expected {
        malformed_header: false,
        ..expected(file)
    };
    let fed = feed(file, &bytes, &want);
    assert!(fed.rejections.is_empty(), "{:?}", fed.rejections);
    assert_eq!((fed.stats.valid, fed.stats.rejected()), (1, 0));
    let r = &fed.readings[0];
    assert_eq!(r.version, None);
    // The EasyMeter-style 1-0:0.0.0 is taken as the meter id.
    assert_eq!(r.meter_id.as_deref(), Some("00000000"));
    assert_eq!(r.timestamp, ts("230202132747S"));
    assert_eq!(r.tariff, Some(1));
    assert_eq!(r.breaker_closed, Some(true));
    assert_eq!(
        (r.import_wh.t1, r.import_wh.t2),
        (Some(10_181), Some(10_182))
    );
    assert_eq!(
        (r.export_wh.t1, r.export_wh.t2),
        (Some(10_281), Some(10_282))
    );
    assert_eq!(r.import_wh.total, None);
    assert_eq!(r.import_wh.sum(), Some(20_363));
    assert_eq!((r.power_import_w, r.power_export_w), (Some(170), Some(270)));
    assert_eq!(
        per_phase!(r, power_import_w),
        [Some(217), Some(417), Some(617)]
    );
    assert_eq!(
        per_phase!(r, power_export_w),
        [Some(227), Some(427), Some(627)]
    );
    assert_eq!(
        per_phase!(r, voltage_dv),
        [Some(2425), Some(2417), Some(2433)]
    );
    assert_eq!(per_phase!(r, current_ma), [Some(0); 3]);
    // −10 W on every phase: −10 / 242.5 V = −41.2 mA, −10 / 241.7 = −41.4 mA,
    // −10 / 243.3 = −41.1 mA.
    assert_eq!(
        r.grid_currents_ma(GridSource::Auto),
        [Some(-41), Some(-41), Some(-41)]
    );
    // 0-1:96.1.1() is an empty channel-1 identifier, not a reading.
    assert!(r.mbus.is_empty());
    assert_eq!(r.unit_errors, 0);
}

/// The expected outcome of each file in a stream.
fn outcome_of(file: &str) -> Option<Rejection> {
    let want = expected(file);
    if want.malformed_header {
        Some(Rejection::Malformed(Malformed::Header))
    } else {
        None
    }
}

#[test]
fn all_extra_samples_back_to_back_any_split() {
    let mut stream = Vec::new();
    for file in FILES {
        stream.extend_from_slice(&extra_sample(file));
        if expected(file).no_line_end {
            stream.extend_from_slice(b"\r\n");
        }
    }
    for chunk in [1, 2, 7, 64, stream.len()] {
        let mut reader: TelegramReader = TelegramReader::new();
        let out = feed_chunks(&mut reader, stream.chunks(chunk));
        assert_eq!(out.len(), FILES.len(), "chunk {chunk}");
        for (file, o) in FILES.iter().zip(&out) {
            match (outcome_of(file), o) {
                (None, Outcome::Accepted(_)) => {}
                (Some(want), Outcome::Rejected(got)) => assert_eq!(want, *got, "{file}"),
                (want, got) => panic!("{file} (chunk {chunk}): {got:?}, want {want:?}"),
            }
        }
        assert_eq!(reader.stats().skipped_bytes, 0, "chunk {chunk}");
    }
}
