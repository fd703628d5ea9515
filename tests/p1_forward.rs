//! `p1lb run --p1-forward ADDR:PORT`: the raw P1 bytes re-emitted over TCP.
//!
//! - With `--p1 sim`: ~3 s of forwarded bytes parse with our reader (CRC ok) and, when
//!   python3 and dsmr_parser are importable, with dsmr_parser's `TelegramParser(V5)`
//!   (skipped loudly when absent; a failure under `CI`).
//! - With `--p1 tcp://…` from a test server: bytes out equal bytes in, a corrupt
//!   telegram included.

mod common;

use common::{Daemon, free_addr, temp_dir};

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use p1lb_core::p1::TelegramReader;

/// Starts `p1lb run --rs485 sim --p1 P1 --p1-forward FWD` and waits until FWD accepts;
/// killed on drop.
fn start(dir: &Path, p1: &str, forward: SocketAddr) -> Daemon {
    Daemon::in_dir(dir)
        .args([
            "--rs485",
            "sim",
            "--p1",
            p1,
            "--p1-forward",
            &forward.to_string(),
        ])
        .ready_on(forward)
        .start()
}

/// Reads from `s` until `want` bytes arrived or `time` is over.
fn collect(s: &mut TcpStream, time: Duration, want: usize) -> Vec<u8> {
    let deadline = Instant::now() + time;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) => panic!("reading the forward: {e}"),
        }
    }
    out
}

/// (valid, rejected) telegrams in `bytes` by our reader, CRC required.
fn parse(bytes: &[u8]) -> (u32, u32) {
    let mut reader: TelegramReader = TelegramReader::new();
    reader.set_crc_required(true);
    let mut rest = bytes;
    while !rest.is_empty() {
        let (used, _) = reader.feed(rest);
        rest = &rest[used..];
    }
    let stats = reader.stats();
    (stats.valid, stats.rejected())
}

#[test]
fn simulated_telegrams_are_forwarded_and_parse() {
    let dir = temp_dir("sim");
    let fwd = free_addr();
    let d = start(&dir, "sim", fwd);
    let mut client = TcpStream::connect(fwd).expect("connect to the forward");
    let bytes = collect(&mut client, Duration::from_millis(3200), usize::MAX);
    let (valid, rejected) = parse(&bytes);
    assert!(
        valid >= 2 && rejected == 0,
        "{valid} valid, {rejected} rejected in {} bytes:\n{}",
        bytes.len(),
        d.log_text()
    );
    let file = dir.join("forwarded.txt");
    fs::write(&file, &bytes).unwrap();
    dsmr_parser_check(&file, valid);
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}

const DSMR_PARSER: &str = r#"
import re, sys
try:
    from dsmr_parser import telegram_specifications
    from dsmr_parser.parsers import TelegramParser
except ImportError as e:
    print(e)
    sys.exit(77)
data = open(sys.argv[1], 'rb').read().decode('latin-1')
telegrams = re.findall(r'/[^!]*![0-9A-Fa-f]{4}\r\n', data)
parser = TelegramParser(telegram_specifications.V5, apply_checksum_validation=True)
for t in telegrams:
    parser.parse(t, throw_ex=True)
print(len(telegrams))
"#;

fn dsmr_parser_check(file: &Path, want: u32) {
    let out = match Command::new("python3")
        .args(["-c", DSMR_PARSER])
        .arg(file)
        .output()
    {
        Ok(out) => out,
        Err(e) => return unavailable(&format!("python3: {e}")),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(77) => unavailable(&stdout),
        Some(0) => assert_eq!(stdout.trim(), want.to_string(), "dsmr_parser count"),
        _ => panic!("dsmr_parser refused the forwarded telegrams:\n{stdout}{stderr}"),
    }
}

fn unavailable(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("CI is set but the dsmr_parser check cannot run: {why}");
    }
    eprintln!(
        "\n********************************************************************\n\
         SKIPPED: dsmr_parser check of the forwarded bytes ({})\n\
         pip install dsmr-parser==1.11.2\n\
         ********************************************************************\n",
        why.trim()
    );
}

#[test]
fn bytes_out_equal_bytes_in_corrupt_ones_included() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let good = fs::read(root.join("tests/telegrams/nl-dsmr50-iskra-mt382.txt")).unwrap();
    let mut corrupt = good.clone();
    let i = corrupt.iter().position(|&b| b == b'(').unwrap() + 1;
    corrupt[i] ^= 0x01;
    let mut input = good.clone();
    input.extend_from_slice(&corrupt);
    input.extend_from_slice(b"garbage\r\n\x00\xff");
    input.extend_from_slice(&good);

    let dir = temp_dir("tcp");
    let source = TcpListener::bind("127.0.0.1:0").unwrap();
    let fwd = free_addr();
    let d = start(
        &dir,
        &format!("tcp://{}", source.local_addr().unwrap()),
        fwd,
    );
    let mut client = TcpStream::connect(fwd).expect("connect to the forward");
    source.set_nonblocking(false).unwrap();
    let (mut feed, _) = source.accept().expect("the daemon connects to the source");
    // Let the daemon register the forward client before the bytes flow.
    std::thread::sleep(Duration::from_millis(300));
    for part in input.chunks(97) {
        feed.write_all(part).unwrap();
    }
    feed.flush().unwrap();
    let out = collect(&mut client, Duration::from_secs(5), input.len());
    assert_eq!(out.len(), input.len(), "{}", d.log_text());
    assert!(out == input, "forwarded bytes differ from the source's");
    let (valid, rejected) = parse(&out);
    assert_eq!(valid, 2);
    assert!(rejected >= 1);
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}
