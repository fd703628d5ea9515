//! Framing rules, one test per rejection reason and per tolerated quirk; each ends by
//! showing the reader resyncs on the next good telegram.

mod common;

use common::{Outcome, feed_all, sample};
use p1lb_core::p1::{
    CrcStatus, Event, GridSource, MAX_LINE_LEN, Malformed, Reading, Rejection, TelegramReader,
    crc16_arc,
};

/// `/header` + CRLF CRLF + lines + `!` + CRC + CRLF, with a correct CRC.
fn with_crc(header: &str, lines: &[&str]) -> Vec<u8> {
    let mut t = format!("/{header}\r\n\r\n");
    for l in lines {
        t.push_str(l);
        t.push_str("\r\n");
    }
    t.push('!');
    let crc = crc16_arc(t.as_bytes());
    format!("{t}{crc:04X}\r\n").into_bytes()
}

fn without_crc(header: &str, lines: &[&str]) -> Vec<u8> {
    let mut t = format!("/{header}\r\n\r\n");
    for l in lines {
        t.push_str(l);
        t.push_str("\r\n");
    }
    t.push_str("!\r\n");
    t.into_bytes()
}

fn good() -> Vec<u8> {
    sample("nl-esmr50-sagemcom-t210d-seed.txt")
}

fn then_good(mut bad: Vec<u8>) -> Vec<u8> {
    bad.extend_from_slice(&good());
    bad
}

fn reading_of(bytes: &[u8]) -> Reading {
    let mut reader: TelegramReader = TelegramReader::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (used, event) = reader.feed(rest);
        rest = &rest[used..];
        if let Some(Event::Telegram(t)) = event {
            return Reading::parse(&t);
        }
    }
    panic!("no telegram accepted");
}

#[test]
fn bad_crc_is_rejected_and_counted() {
    let mut t = good();
    let pos = t.iter().position(|&b| b == b'!').unwrap();
    t[pos + 1] = if t[pos + 1] == b'0' { b'1' } else { b'0' };
    let (out, stats) = feed_all(&then_good(t));
    assert!(matches!(
        out[0],
        Outcome::Rejected(Rejection::BadCrc { .. })
    ));
    assert_eq!(
        out[1],
        Outcome::Accepted(good()[..good().len() - 6].to_vec())
    );
    assert_eq!((stats.bad_crc, stats.valid, stats.rejected()), (1, 1, 1));
}

#[test]
fn header_inside_a_telegram_truncates_it() {
    let mut cut = good();
    cut.truncate(300);
    let (out, stats) = feed_all(&then_good(cut));
    assert_eq!(out[0], Outcome::Rejected(Rejection::Truncated));
    assert!(matches!(out[1], Outcome::Accepted(_)));
    assert_eq!((stats.truncated, stats.valid), (1, 1));
}

#[test]
fn over_long_line_is_rejected() {
    let long = format!("0-0:96.13.0({})", "4".repeat(MAX_LINE_LEN));
    let (out, stats) = feed_all(&then_good(with_crc("XMX5TEST", &[&long])));
    assert_eq!(out[0], Outcome::Rejected(Rejection::LineTooLong));
    assert!(matches!(out[1], Outcome::Accepted(_)));
    assert_eq!(stats.line_too_long, 1);
    // The longest legitimate line, a 1024-character text message, fits.
    let msg = format!("0-0:96.13.0({})", "41".repeat(1024));
    let (out, _) = feed_all(&with_crc("XMX5TEST", &[&msg]));
    assert!(matches!(out[0], Outcome::Accepted(_)));
}

#[test]
fn over_long_telegram_is_rejected() {
    let line = "1-0:1.8.1(000001.000*kWh)";
    let lines = vec![line; 200]; // ~5.4 KB
    let (out, stats) = feed_all(&then_good(with_crc("XMX5TEST", &lines)));
    assert_eq!(out[0], Outcome::Rejected(Rejection::TelegramTooLong));
    assert!(matches!(out[1], Outcome::Accepted(_)));
    assert_eq!(stats.telegram_too_long, 1);
}

#[test]
fn footer_must_be_upper_case_hex_and_start_a_line() {
    let t = with_crc("XMX5TEST", &["1-0:1.8.1(000001.000*kWh)"]);
    let s = String::from_utf8(t.clone()).unwrap();
    // Lower-case hex digits are refused (one bit away from upper case).
    let lower = s.replace(
        &s[s.len() - 6..s.len() - 2],
        &s[s.len() - 6..s.len() - 2].to_lowercase(),
    );
    if lower != s {
        let (out, _) = feed_all(lower.as_bytes());
        assert_eq!(out[0], Outcome::Rejected(Rejection::BadFooter));
    }
    for bad in ["!12G4\r\n", "!12345\r\n", "!1234\rX", "!12 4\r\n"] {
        let b = format!("/XMX5TEST\r\n\r\n1-0:1.8.1(000001.000*kWh)\r\n{bad}");
        let (out, stats) = feed_all(&then_good(b.into_bytes()));
        assert_eq!(out[0], Outcome::Rejected(Rejection::BadFooter), "{bad:?}");
        assert!(matches!(out[1], Outcome::Accepted(_)), "{bad:?}");
        assert_eq!(stats.bad_footer, 1);
    }
    // `!` in the middle of a line (a `)` one bit away) is not a footer.
    let mid = b"/XMX5TEST\r\n\r\n1-0:1.8.1(000001.000*kWh!\r\n".to_vec();
    let (out, _) = feed_all(&then_good(mid));
    assert_eq!(out[0], Outcome::Rejected(Rejection::BadFooter));
    assert!(matches!(out[1], Outcome::Accepted(_)));
}

#[test]
fn dsmr5_telegram_without_crc_is_refused() {
    let t = without_crc("XMX5TEST", &["1-3:0.2.8(50)", "1-0:1.8.1(000001.000*kWh)"]);
    let (out, stats) = feed_all(&t);
    assert_eq!(out, [Outcome::Rejected(Rejection::MissingCrc)]);
    assert_eq!(stats.missing_crc, 1);
    let t = without_crc("FLU5TEST", &["0-0:96.1.4(50217)"]);
    assert_eq!(feed_all(&t).0, [Outcome::Rejected(Rejection::MissingCrc)]);
    // A DSMR 3 version object does not require one.
    let t = without_crc("XMX5TEST", &["1-3:0.2.8(30)"]);
    assert!(matches!(feed_all(&t).0[0], Outcome::Accepted(_)));
}

#[test]
fn malformed_line_rejects_a_telegram_without_crc_only() {
    let lines = [
        "1-0:1.8.1(000001.000*kWh)",
        "garbage here",
        "1-0:31.7.0(002*A)",
    ];
    let (out, stats) = feed_all(&without_crc("XMX5TEST", &lines));
    assert_eq!(
        out,
        [Outcome::Rejected(Rejection::Malformed(Malformed::Line(4)))]
    );
    assert_eq!(stats.malformed, 1);
    // With a verified CRC the odd line is a quirk: skipped, counted, the rest used.
    let (out, stats) = feed_all(&with_crc("XMX5TEST", &lines));
    assert!(matches!(out[0], Outcome::Accepted(_)));
    assert_eq!(stats.skipped_lines, 1);
    let r = reading_of(&with_crc("XMX5TEST", &lines));
    assert_eq!(r.phases[0].current_ma, Some(2000));
    assert_eq!(r.import_wh.t1, Some(1000));
}

#[test]
fn garbage_between_telegrams_is_skipped_and_counted() {
    let mut stream = b"\x00\xffnoise!!\r\n".to_vec();
    stream.extend_from_slice(&good());
    stream.extend_from_slice(b"  \r\n\xfe");
    stream.extend_from_slice(&good());
    let (out, stats) = feed_all(&stream);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted(_))));
    assert_eq!(stats.skipped_bytes, 8 + 1);
}

#[test]
fn quirks_are_tolerated() {
    let t = with_crc(
        "XMX5TEST",
        &[
            "1-3:0.2.8(50)",
            "1-0:31.7.0( 0 12 *A)",  // stray spaces inside the value
            "1-0:51.7.0(007)",       // no unit: the object's standard unit (A)
            "1-0:71.7.0()",          // empty value
            "0-0:96.13.0()",         // empty text
            "7-0:99.99.9(whatever)", // unknown object
            "1-0:32.7.0(230.1*v)",   // lower-case unit
            "  1-0:1.7.0(01.234*kW)  ",
        ],
    );
    let r = reading_of(&t);
    let i: Vec<_> = r.phases.iter().map(|p| p.current_ma).collect();
    assert_eq!(i, [Some(12_000), Some(7_000), None]);
    assert_eq!(r.phases[0].voltage_dv, Some(2301));
    assert_eq!(r.power_import_w, Some(1234));
    assert_eq!(r.unit_errors, 0);
}

#[test]
fn wrong_units_are_not_used() {
    let t = with_crc(
        "XMX5TEST",
        &[
            "1-0:31.7.0(012*kW)",
            "1-0:1.8.1(000001.000*m3)",
            "1-0:32.7.0(230*V)",
        ],
    );
    let r = reading_of(&t);
    assert_eq!(r.phases[0].current_ma, None);
    assert_eq!(r.import_wh.t1, None);
    assert_eq!(r.phases[0].voltage_dv, Some(2300));
    assert_eq!(r.unit_errors, 2);
}

#[test]
fn grid_current_sign_and_sources() {
    // Exporting 1150 W on L1 at 230 V: -5 A, finer than the printed 5 A.
    let t = with_crc(
        "XMX5TEST",
        &[
            "1-0:32.7.0(230.0*V)",
            "1-0:31.7.0(005*A)",
            "1-0:21.7.0(00.000*kW)",
            "1-0:22.7.0(01.150*kW)",
            // L2: power but no voltage → current object, signed by the power.
            "1-0:51.7.0(003*A)",
            "1-0:42.7.0(00.500*kW)",
            // L3: current only.
            "1-0:71.7.0(004*A)",
        ],
    );
    let r = reading_of(&t);
    assert_eq!(
        r.grid_currents_ma(GridSource::Auto),
        [Some(-5000), Some(-3000), Some(4000)]
    );
    assert_eq!(
        r.grid_currents_ma(GridSource::CurrentObjects),
        [Some(5000), Some(3000), Some(4000)]
    );
}

#[test]
fn reset_forgets_a_partial_telegram() {
    let g = good();
    let mut reader: TelegramReader = TelegramReader::new();
    let (used, ev) = reader.feed(&g[..100]);
    assert!(ev.is_none() && used == 100);
    reader.reset();
    let (_, ev) = reader.feed(&g[100..]);
    assert!(ev.is_none(), "the tail alone is not a telegram");
    let (_, ev) = reader.feed(&g);
    assert!(matches!(ev, Some(Event::Telegram(t)) if t.crc() == CrcStatus::Ok(0x824A)));
}

#[test]
fn telegram_view_checks_its_bytes() {
    use p1lb_core::p1::Telegram;
    assert_eq!(
        Telegram::new_checked(b"no header!", CrcStatus::Absent).err(),
        Some(Malformed::Header)
    );
    assert_eq!(
        Telegram::new_checked(b"/\r\n!", CrcStatus::Absent).err(),
        Some(Malformed::Header)
    );
    let t =
        Telegram::new_checked(b"/ABC5\r\n\r\n1-0:1.8.1(1*kWh)\r\n!", CrcStatus::Absent).unwrap();
    assert_eq!(t.header(), b"ABC5");
    assert_eq!(t.objects().count(), 1);
}

#[test]
fn full_crc_directly_followed_by_the_next_header() {
    let g = good();
    let mut stream = g[..g.len() - 2].to_vec(); // drop the footer's CR LF
    stream.extend_from_slice(&g);
    let (out, stats) = feed_all(&stream);
    assert_eq!(stats.valid, 2, "{out:?}");
    // With fewer than four digits the CRC may be cut: refused.
    let mut stream = g[..g.len() - 4].to_vec(); // "!82"
    stream.extend_from_slice(&g);
    let (out, stats) = feed_all(&stream);
    assert_eq!(out[0], Outcome::Rejected(Rejection::BadFooter));
    assert_eq!(stats.valid, 1);
}

#[test]
fn crc_can_be_required_for_the_whole_line() {
    // A Swedish-style telegram (no version object) that lost its CRC.
    let t = without_crc(
        "ELL5TEST",
        &["0-0:1.0.0(210217184019W)", "1-0:1.8.0(00006678.394*kWh)"],
    );
    assert!(matches!(feed_all(&t).0[0], Outcome::Accepted(_)));
    let mut reader: TelegramReader = TelegramReader::new();
    reader.set_crc_required(true);
    let out = common::feed_chunks(&mut reader, [&t[..], &good()[..]]);
    assert_eq!(out[0], Outcome::Rejected(Rejection::MissingCrc));
    assert!(matches!(out[1], Outcome::Accepted(_)));
    assert_eq!(reader.stats().missing_crc, 1);
}
