//! `p1lb parse` as a user runs it: the real binary, real telegrams, exit codes and the
//! JSON contract.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn telegrams() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/telegrams")
}

fn p1lb(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_p1lb"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run p1lb");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or(b"")).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait")
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn path(name: &str) -> String {
    telegrams().join(name).to_string_lossy().into_owned()
}

#[test]
fn json_contract_on_the_seed_telegram() {
    let out = p1lb(
        &[
            "parse",
            "--json",
            &path("nl-esmr50-sagemcom-t210d-seed.txt"),
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    let t = &lines[0];
    assert_eq!(t["valid"], true);
    assert_eq!(t["crc"], "ok");
    assert_eq!(t["header"], "Ene5\\T210-D ESMR5.0");
    let o = &t["objects"];
    // Numbers exactly as printed (leading zeros dropped, trailing kept).
    let raw = String::from_utf8_lossy(&out.stdout);
    assert!(
        raw.contains(r#""1-0:1.8.1":{"value":6184.667,"unit":"kWh"}"#),
        "{raw}"
    );
    assert!(
        raw.contains(r#""1-0:61.7.0":{"value":0.000,"unit":"kW"}"#),
        "{raw}"
    );
    assert_eq!(o["0-0:96.14.0"], "0001");
    assert_eq!(o["0-0:1.0.0"], "230107170525W");
    assert_eq!(o["0-0:96.13.0"], "");
    assert_eq!(o["0-1:24.2.1"]["unit"], "m3");
    assert_eq!(o["0-1:24.2.1"]["timestamp"], "230107170500W");
    assert_eq!(o["1-0:99.97.0"]["count"], 7);
    assert_eq!(o["1-0:99.97.0"]["entries"][0]["timestamp"], "220416174436S");
    assert_eq!(o["1-0:99.97.0"]["entries"][0]["unit"], "s");
    // Every OBIS line of the telegram is an object.
    assert_eq!(o.as_object().unwrap().len(), 35);
    let r = &t["reading"];
    assert_eq!(r["grid_current_ma"], serde_json::json!([419, 674, 0]));
    assert_eq!(r["phases"][0]["voltage_dv"], 2340);
    assert_eq!(r["import_wh"]["t1"], 6_184_667);
    // Counters go to stderr in JSON mode.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("valid 1, rejected 0"), "{err}");
}

#[test]
fn rejected_telegrams_are_reported_with_reason_and_no_values() {
    let mut bad = std::fs::read(telegrams().join("nl-dsmr42-kaifa.txt")).unwrap();
    let i = bad.windows(5).position(|w| w == b"31.7.").unwrap();
    bad[i + 9] ^= 0x01; // a current digit
    let out = p1lb(&["parse", "--json", "-"], Some(&bad));
    assert_eq!(out.status.code(), Some(1), "nothing valid → exit 1");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["valid"], false);
    assert_eq!(lines[0]["crc"], "bad");
    assert_eq!(lines[0]["reason"], "bad_crc");
    assert_eq!(lines[0]["header"], "KFM5KAIFA-METER");
    assert!(lines[0].get("objects").is_none());
    assert!(lines[0].get("reading").is_none());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no valid telegram"));
}

#[test]
fn a_stream_of_every_sample_from_stdin() {
    let mut stream = Vec::new();
    let mut n = 0;
    for e in std::fs::read_dir(telegrams()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "txt") {
            stream.extend_from_slice(&std::fs::read(&p).unwrap());
            n += 1;
        }
    }
    let out = p1lb(&["parse", "--json", "-"], Some(&stream));
    assert!(out.status.success());
    let lines = json_lines(&out);
    assert_eq!(lines.len(), n);
    assert!(lines.iter().all(|l| l["valid"] == true));
    let absent = lines.iter().filter(|l| l["crc"] == "absent").count();
    assert_eq!(absent, 3, "DSMR 2.2, DSMR 3 and EasyMeter have no CRC");
}

#[test]
fn table_output_shows_verdict_values_and_counters() {
    let out = p1lb(
        &["parse", &path("nl-dsmr50-warmtelink-unpadded-crc.txt")],
        None,
    );
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("telegram 1: valid, CRC ok (0B9F), header NWA-WARMTELINK"),
        "{s}"
    );
    assert!(
        s.contains("0-1:24.2.1     260215200523W | 240.860*GJ"),
        "{s}"
    );
    assert!(s.contains("valid 1, rejected 0"), "{s}");
}

#[test]
fn smarty_frames_with_keys() {
    let frame = path("lu-smarty-sagemcom-t210dr-encrypted.bin");
    let aa = "AA".repeat(16);
    let bb = "BB".repeat(16);
    let out = p1lb(
        &["parse", "--json", "--key", &aa, "--auth-key", &bb, &frame],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["objects"].as_object().unwrap().len(), 18);
    assert_eq!(lines[0]["reading"]["import_wh"]["total"], 6_545_766);
    // Wrong key: refused, exit 1.
    let cc = "CC".repeat(16);
    let out = p1lb(
        &["parse", "--json", "--key", &cc, "--auth-key", &bb, &frame],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_lines(&out)[0]["reason"], "smarty");
}

#[test]
fn clear_errors() {
    let out = p1lb(&["parse", "/nonexistent/p1.txt"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("opening /nonexistent/p1.txt"));
    let out = p1lb(&["parse", "--key", "12", "--auth-key", "34", "-"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("32 hex digits"));
    let out = p1lb(&["parse", "--key", &"AA".repeat(16), "-"], None);
    assert_eq!(out.status.code(), Some(2), "--key needs --auth-key");
    let out = p1lb(&["parse", "-"], Some(b"no telegram here"));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn require_crc_refuses_dsmr3() {
    let out = p1lb(
        &["parse", "--require-crc", &path("nl-dsmr30-iskra-mt382.txt")],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("missing_crc 1"));
    let out = p1lb(
        &["parse", "--require-crc", &path("nl-dsmr42-kaifa.txt")],
        None,
    );
    assert!(out.status.success());
}
