//! Every sample telegram from a real meter parses, and the values that
//! `tests/telegrams/INDEX.md` lists for it come out exactly as printed.
//! One test per file (data-driven from INDEX.md), plus the fixed-point model of each.

mod common;

use common::{Outcome, feed_all, sample, telegram_dir};
use p1lb_core::p1::{
    CrcStatus, Decimal, Event, GridSource, Obis, Reading, TelegramReader, Timestamp, Unit,
};

/// One file's section of INDEX.md: the CRC verdict and the listed `(obis, groups)`.
struct Expected {
    crc: Option<&'static str>,
    objects: Vec<(String, String)>,
}

fn index() -> String {
    std::fs::read_to_string(telegram_dir().join("INDEX.md")).expect("INDEX.md")
}

fn expected(file: &str) -> Expected {
    let section = common::index_section(&index(), file);
    let crc = if section.iter().any(|l| l.contains("CRC: ok")) {
        Some("ok")
    } else if section.iter().any(|l| l.contains("CRC: none")) {
        Some("none")
    } else {
        None
    };
    Expected {
        crc,
        objects: common::listed_objects(&section),
    }
}

fn check_sample(file: &str) -> Reading {
    let bytes = sample(file);
    let want = expected(file);
    let mut reader: TelegramReader = TelegramReader::new();
    let mut rest = &bytes[..];
    let mut reading = None;
    while !rest.is_empty() {
        let (used, event) = reader.feed(rest);
        rest = &rest[used..];
        match event {
            Some(Event::Telegram(t)) => {
                assert!(reading.is_none(), "{file}: more than one telegram");
                match (want.crc, t.crc()) {
                    (Some("ok"), CrcStatus::Ok(_)) | (Some("none"), CrcStatus::Absent) => {}
                    (w, got) => panic!("{file}: CRC verdict {got:?}, INDEX says {w:?}"),
                }
                assert_eq!(t.skipped_lines(), 0, "{file}: lines skipped");
                common::check_objects(file, &t, &want.objects);
                reading = Some(Reading::parse(&t));
            }
            Some(Event::Rejected { reason, .. }) => panic!("{file}: rejected: {reason}"),
            None => {}
        }
    }
    let stats = reader.stats();
    assert_eq!((stats.valid, stats.rejected()), (1, 0), "{file}");
    reading.unwrap_or_else(|| panic!("{file}: no telegram"))
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
    be_emucs171_fluvius => "be-emucs171-fluvius.txt",
    de_easymeter_q3db1024 => "de-easymeter-q3db1024.txt",
    lu_smarty_plain => "lu-smarty-sagemcom-t210dr-plain.txt",
    nl_dsmr22_iskra => "nl-dsmr22-iskra-mt382.txt",
    nl_dsmr30_iskra => "nl-dsmr30-iskra-mt382.txt",
    nl_dsmr42_kaifa => "nl-dsmr42-kaifa.txt",
    nl_dsmr50_iskra_two_mbus => "nl-dsmr50-iskra-m550-two-mbus.txt",
    nl_dsmr50_iskra => "nl-dsmr50-iskra-mt382.txt",
    nl_dsmr50_warmtelink_unpadded_crc => "nl-dsmr50-warmtelink-unpadded-crc.txt",
    nl_esmr50_sagemcom_seed => "nl-esmr50-sagemcom-t210d-seed.txt",
}

#[test]
fn every_sample_has_a_test() {
    let mut on_disk: Vec<String> = common::text_samples().into_iter().map(|(n, _)| n).collect();
    on_disk.sort();
    let mut listed: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

fn ts(s: &str) -> Option<Timestamp> {
    Timestamp::parse(s.as_bytes())
}

#[test]
fn model_esmr5_seed() {
    let r = check_sample("nl-esmr50-sagemcom-t210d-seed.txt");
    assert_eq!(r.version, Some(50));
    assert_eq!(
        r.meter_id.as_deref(),
        Some("4530303438303030303332303631353139")
    );
    assert_eq!(r.timestamp, ts("230107170525W"));
    assert_eq!(r.timestamp.unwrap().summer, Some(false));
    assert_eq!(r.tariff, Some(1));
    assert_eq!(
        (r.import_wh.t1, r.import_wh.t2),
        (Some(6_184_667), Some(4_762_136))
    );
    assert_eq!(
        (r.export_wh.t1, r.export_wh.t2),
        (Some(4_708_286), Some(11_405_268))
    );
    assert_eq!(r.import_wh.sum(), Some(10_946_803));
    assert_eq!((r.power_import_w, r.power_export_w), (Some(258), Some(0)));
    let v: Vec<_> = r.phases.iter().map(|p| p.voltage_dv).collect();
    assert_eq!(v, [Some(2340), Some(2360), Some(2360)]);
    let i: Vec<_> = r.phases.iter().map(|p| p.current_ma).collect();
    assert_eq!(i, [Some(1000), Some(1000), Some(0)]);
    let p: Vec<_> = r.phases.iter().map(|p| p.power_import_w).collect();
    assert_eq!(p, [Some(98), Some(159), Some(0)]);
    // 98 W / 234.0 V = 0.4188 A; 159 W / 236.0 V = 0.6737 A.
    assert_eq!(
        r.grid_currents_ma(GridSource::Auto),
        [Some(419), Some(674), Some(0)]
    );
    assert_eq!(
        r.grid_currents_ma(GridSource::CurrentObjects),
        [Some(1000), Some(1000), Some(0)]
    );
    assert_eq!(r.mbus.len(), 1);
    let gas = r.mbus[0];
    assert_eq!((gas.channel, gas.device_type), (1, Some(3)));
    assert_eq!(gas.timestamp, ts("230107170500W"));
    assert_eq!(gas.value, Some(Decimal::new(3_133_361, 3)));
    assert_eq!(gas.unit, Some(Unit::CubicMetre));
    assert_eq!(r.unit_errors, 0);
}

#[test]
fn model_fluvius_emucs() {
    let r = check_sample("be-emucs171-fluvius.txt");
    assert_eq!(r.version, Some(50217));
    assert_eq!(r.timestamp.unwrap().summer, Some(true));
    assert_eq!((r.import_wh.t1, r.import_wh.t2), (Some(34), Some(15_758)));
    assert_eq!(r.export_wh.t2, Some(11));
    assert_eq!(r.average_demand_w, Some(2351));
    let peak = r.month_peak.unwrap();
    assert_eq!((peak.at, peak.power_w), (ts("200509134558S"), 2589));
    assert_eq!(r.current_limit_ma, Some(999_000));
    assert_eq!(r.breaker_closed, Some(true));
    assert_eq!(r.phases[0].current_ma, Some(0));
    assert_eq!(r.phases[2].voltage_dv, Some(2347));
    assert_eq!(r.grid_currents_ma(GridSource::Auto), [Some(0); 3]);
    let m: Vec<_> = r
        .mbus
        .iter()
        .map(|m| (m.channel, m.device_type, m.value))
        .collect();
    assert_eq!(
        m,
        [
            (1, Some(3), Some(Decimal::new(112_384, 3))),
            (2, Some(7), Some(Decimal::new(872_234, 3))),
        ]
    );
}

#[test]
fn model_dsmr50_two_decimal_currents() {
    let r = check_sample("nl-dsmr50-iskra-mt382.txt");
    let i: Vec<_> = r.phases.iter().map(|p| p.current_ma).collect();
    assert_eq!(i, [Some(480), Some(440), Some(860)]);
    // 70 W / 230.0 V, 32 W / 230.0 V, 142 W / 229.0 V.
    assert_eq!(
        r.grid_currents_ma(GridSource::Auto),
        [Some(304), Some(139), Some(620)]
    );
    assert_eq!(r.export_wh.t1, Some(2444));
    // Channel 2 is announced (24.1.0) but has no reading.
    let m: Vec<_> = r.mbus.iter().map(|m| (m.channel, m.value)).collect();
    assert_eq!(m, [(1, Some(Decimal::new(107, 3))), (2, None)]);
}

#[test]
fn model_dsmr42_kaifa_without_voltages() {
    let r = check_sample("nl-dsmr42-kaifa.txt");
    // No voltage objects: the current objects are used, signed by power direction.
    assert_eq!(
        r.grid_currents_ma(GridSource::Auto),
        [Some(0), Some(6000), Some(2000)]
    );
    assert_eq!(r.phases[1].power_import_w, Some(1247));
    assert_eq!(r.version, Some(42));
    assert_eq!(r.mbus[0].timestamp, ts("161129200000W"));
}

#[test]
fn model_dsmr50_two_mbus() {
    let r = check_sample("nl-dsmr50-iskra-m550-two-mbus.txt");
    let m: Vec<_> = r
        .mbus
        .iter()
        .map(|m| (m.channel, m.value, m.unit))
        .collect();
    assert_eq!(
        m,
        [
            (1, Some(Decimal::new(0, 0)), None),
            (2, Some(Decimal::new(246_138, 3)), Some(Unit::CubicMetre)),
        ]
    );
    assert_eq!(r.phases[2].voltage_dv, Some(2229));
}

#[test]
fn model_dsmr22_gas_on_continuation_line() {
    let r = check_sample("nl-dsmr22-iskra-mt382.txt");
    assert_eq!(r.power_import_w, Some(1010));
    assert_eq!(r.import_wh.t1, Some(1001));
    let gas = r.mbus[0];
    assert_eq!(gas.value, Some(Decimal::new(1001, 3)));
    assert_eq!(gas.unit, Some(Unit::CubicMetre));
    assert_eq!(gas.timestamp.unwrap().summer, None);
    assert_eq!(r.timestamp, None);
}

#[test]
fn model_dsmr30() {
    let r = check_sample("nl-dsmr30-iskra-mt382.txt");
    assert_eq!(r.import_wh.t2, Some(12_345_678));
    assert_eq!(r.tariff, Some(2));
    assert_eq!(r.mbus[0].value, Some(Decimal::new(1001, 3)));
}

#[test]
fn model_easymeter_q3d() {
    let r = check_sample("de-easymeter-q3db1024.txt");
    // 00052185.7825309 kWh rounds to the Wh.
    assert_eq!(r.import_wh.total, Some(52_185_783));
    assert_eq!(r.export_wh.total, Some(19_949_322));
    assert_eq!(r.power_import_w, Some(2125));
    let p: Vec<_> = r.phases.iter().map(|p| p.power_import_w).collect();
    assert_eq!(p, [Some(748), Some(737), Some(640)]);
    assert_eq!(r.meter_id.as_deref(), Some("0272031312565"));
    // Powers but no voltage or current objects: no grid current.
    assert_eq!(r.grid_currents_ma(GridSource::Auto), [None; 3]);
}

#[test]
fn model_smarty_plain() {
    let r = check_sample("lu-smarty-sagemcom-t210dr-plain.txt");
    assert_eq!(r.import_wh.total, Some(6_545_766));
    assert_eq!(r.import_wh.t1, Some(5_017_120));
    assert_eq!(r.export_wh.t2, Some(58));
    assert_eq!(r.power_import_w, Some(286));
    assert_eq!(r.unit_errors, 0);
}

#[test]
fn model_warmtelink_heat() {
    let r = check_sample("nl-dsmr50-warmtelink-unpadded-crc.txt");
    let heat = r.mbus[0];
    assert_eq!(heat.device_type, Some(4));
    assert_eq!(heat.value, Some(Decimal::new(240_860, 3)));
    assert_eq!(heat.unit, Some(Unit::GigaJoule));
}

#[test]
fn all_samples_back_to_back() {
    let mut stream = Vec::new();
    for (_, bytes) in common::text_samples() {
        stream.extend_from_slice(&bytes);
    }
    let (out, stats) = feed_all(&stream);
    assert_eq!(stats.valid as usize, common::text_samples().len());
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted(_))));
}

#[test]
fn obis_display_round_trip() {
    let (o, used) = Obis::parse_prefix(b"1-0:1.8.0*255(x)").unwrap();
    assert_eq!((o, used), (Obis::new(1, 0, 1, 8, 0), 13));
    assert_eq!(o.to_string(), "1-0:1.8.0");
    let (o, _) = Obis::parse_prefix(b"0-1:24.2.1*3").unwrap();
    assert_eq!(o.to_string(), "0-1:24.2.1*3");
    assert!(Obis::parse_prefix(b"1-0:256.8.0").is_none());
    assert!(Obis::parse_prefix(b"1-0:1.8").is_none());
    // A prefix parser: the line check then refuses the stray digit.
    assert_eq!(
        Obis::parse_prefix(b"1-0:1.8.1000").map(|(_, u)| u),
        Some(11)
    );
}
