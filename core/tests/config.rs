//! The settings table and `Config`: ranges, cross-checks, and the TOML form (serde,
//! `std` feature) the daemon's configuration file uses.

use p1lb_core::config::{Config, ConfigError, Range, SETTINGS, address, setting, setting_named};

#[test]
fn defaults_are_valid_and_match_the_contract() {
    let c = Config::default();
    c.validate().expect("defaults are consistent");
    let want = [
        (1010, 16000),
        (1011, 3),
        (1012, 24000),
        (1013, 1),
        (1014, 12500),
        (1015, 22000),
        (1016, 5),
        (1017, 1000),
        (1018, 19000),
        (1019, 1),
        (1020, 1000),
        (1021, 0),
        (1022, 30),
        (1023, 0),
        (1024, 0),
        (1025, 6000),
        (1030, 1),
        (1031, 96),
        (1032, 0),
        (1033, 10),
        (1034, 0),
        (1035, 0),
        (1036, 0),
        (1090, 10),
    ];
    let mut want = want.to_vec();
    // Round 2 (registers.md, "Extensions, round 2"): site maximum 0, one charger, and
    // for each of the eight: learn the wiring, maximum 0 (= 1010), priority 1.
    want.insert(16, (1026, 0));
    let at = want.len() - 1;
    let mut round2 = vec![(1037, 1)];
    for k in 0..8u16 {
        round2.extend([(1040 + 3 * k, 0), (1041 + 3 * k, 0), (1042 + 3 * k, 1)]);
    }
    // The capacity tariff: off, a 2.5 kW target, a 100 W margin.
    round2.extend([(1072, 0), (1073, 2500), (1074, 100)]);
    // The charge modes: fast; start at the car's minimum after 60 s, stop after 180 s,
    // no import allowed.
    round2.extend([(1080, 0), (1081, 0), (1082, 60), (1083, 180), (1084, 0)]);
    want.splice(at..at, round2);
    let got: Vec<(u16, u16)> = c.iter().map(|(s, v)| (s.address, v)).collect();
    assert_eq!(got, want);
}

#[test]
fn table_is_sorted_unique_and_defaults_in_range() {
    for w in SETTINGS.windows(2) {
        assert!(w[0].address < w[1].address);
    }
    for s in SETTINGS {
        assert!(s.range.contains(s.default), "{}", s.name);
        assert_eq!(setting(s.address), Some(s));
        assert_eq!(setting_named(s.name), Some(s));
    }
}

#[test]
fn every_setting_refuses_values_outside_its_range() {
    for s in SETTINGS {
        let mut c = Config::default();
        let probes: Vec<u16> = match s.range {
            Range::Span(lo, hi) => [lo.checked_sub(1), hi.checked_add(1)]
                .into_iter()
                .flatten()
                .collect(),
            Range::ZeroOr(lo, hi) => [Some(1), lo.checked_sub(1), hi.checked_add(1)]
                .into_iter()
                .flatten()
                .collect(),
            Range::OneOf(list) => (0..=2000u16)
                .filter(|v| !list.contains(v))
                .take(5)
                .collect(),
        };
        for v in probes {
            let err = c.set(s.address, v).unwrap_err();
            assert!(
                matches!(err, ConfigError::OutOfRange { .. }),
                "{} = {v}",
                s.name
            );
            assert_eq!(c, Config::default(), "nothing changed");
        }
    }
    // A register of the map that is not a setting (1005, reserved).
    let reserved = p1lb_core::registers::address::SECONDS_SINCE_TELEGRAM + 1;
    assert_eq!(
        Config::default().set(reserved, 1),
        Err(ConfigError::UnknownAddress(1005))
    );
}

#[test]
fn cross_checks_name_the_setting() {
    let cases: [(&[(u16, u16)], u16); 6] = [
        (&[(1018, 22000)], 1018), // lower = upper
        (&[(1015, 24000)], 1012), // upper = alarm
        (&[(1012, 21000)], 1012), // alarm < upper
        (&[(1021, 16001)], 1021), // fallback > charger max
        (&[(1025, 16001)], 1025), // minimum > charger max
        (&[(1036, 10)], 1036),    // emulated meter at the device's address
    ];
    for (pairs, at) in cases {
        let mut c = Config::default();
        for &(a, v) in pairs {
            c.set(a, v).unwrap();
        }
        match c.validate() {
            Err(ConfigError::Inconsistent { setting, .. }) => assert_eq!(setting.address, at),
            other => panic!("{pairs:?}: {other:?}"),
        }
    }
}

#[test]
fn toml_round_trip_and_clear_errors() {
    let mut c = Config::default();
    c.set(address::UPPER_CURRENT, 21000).unwrap();
    c.set(address::CONTROL_MODE, 1).unwrap();
    let text = toml::to_string(&c).unwrap();
    assert!(text.starts_with("charger_max_current = 16000\n"), "{text}");
    assert!(text.contains("upper_current = 21000\n"));
    let back: Config = toml::from_str(&text).unwrap();
    assert_eq!(back, c);
    // A file may name only what it changes.
    let partial: Config = toml::from_str("lower_current = 18000\n").unwrap();
    assert_eq!(partial.lower_ma(), 18000);
    assert_eq!(partial.upper_ma(), 22000);
    // Errors name the key and the allowed range or rule.
    let e = toml::from_str::<Config>("charger_max_current = 70000\n").unwrap_err();
    assert!(e.to_string().contains("charger_max_current"), "{e}");
    assert!(e.to_string().contains("6000 … 63000"), "{e}");
    let e = toml::from_str::<Config>("phases = 2\n").unwrap_err();
    assert!(
        e.to_string()
            .contains("phases (1011) = 2 is out of range: allowed [1, 3]"),
        "{e}"
    );
    let e = toml::from_str::<Config>("lower_current = 23000\n").unwrap_err();
    assert!(
        e.to_string()
            .contains("lower_current (1018) must be < upper_current"),
        "{e}"
    );
    let e = toml::from_str::<Config>("lower_curent = 1\n").unwrap_err();
    assert!(e.to_string().contains("lower_curent"), "{e}");
    let e = toml::from_str::<Config>("lower_current = -1\n").unwrap_err();
    assert!(e.to_string().contains("lower_current"), "{e}");
}
