//! The HTTP server of `p1lb run` (`--http`, `[http]`) end to end: the real daemon on the
//! built-in simulation (P1 `sim`, the simulated Terra AC on the in-process RS485 bus),
//! its `/metrics` checked by `promtool check metrics` (Debian's `prometheus` package),
//! its status page loaded in headless Chromium (Debian's `chromium`) and compared with
//! the registers read over Modbus TCP at the same time, writes refused when off and
//! taken with the password when on, and hostile clients (many at once, slow, oversized,
//! garbage) answered or dropped without a crash or a change.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{Daemon, free_addr, have, temp_dir};
use tokio_modbus::prelude::*;

/// The daemon on the built-in simulation with the HTTP server on `http`.
fn start(dir: &Path, http: SocketAddr, extra: &[&str]) -> Daemon {
    let http = http.to_string();
    let mut args = vec!["--p1", "sim", "--rs485", "sim", "--http", http.as_str()];
    args.extend_from_slice(extra);
    Daemon::in_dir(dir).args(args).start()
}

/// One HTTP exchange over a raw socket: the status code, the head and the body;
/// `None` when the server closed the connection without an answer.
fn exchange(addr: SocketAddr, request: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    // The server may answer (413, 431) and close before taking everything.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, head, out[split + 4..].to_vec()))
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
    .unwrap_or_else(|| panic!("GET {path}: no answer"))
}

fn status_json(addr: SocketAddr) -> serde_json::Value {
    let (code, _, body) = get(addr, "/api/status");
    assert_eq!(code, 200);
    serde_json::from_slice(&body).expect("JSON")
}

/// Waits until the daemon has taken `n` valid telegrams (the page then has values).
fn wait_for_telegrams(addr: SocketAddr, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = status_json(addr);
        if v["telegrams"]["valid"].as_u64().unwrap_or(0) >= n {
            return;
        }
        assert!(Instant::now() < deadline, "no telegrams: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the page shows and the registers say: limit (1001), state (1002), grid
/// currents (1100–1102, 0.01 A), and the uptime (1119).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    limit_ma: u16,
    state: u16,
    grid_ca: [i16; 3],
}

fn modbus_seen(words: &[u16]) -> (Seen, u32) {
    let w = |a: usize| words[a - 1000];
    (
        Seen {
            limit_ma: w(1001),
            state: w(1002),
            grid_ca: [w(1100) as i16, w(1101) as i16, w(1102) as i16],
        },
        u32::from(w(1119)) << 16 | u32::from(w(1120)),
    )
}

/// The `data-` attribute of the element with `id` in the DOM Chromium dumped.
fn dom_attr(dom: &str, id: &str, attr: &str) -> Option<i64> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let tag_end = at + dom[at..].find('>')?;
    let tag = &dom[..tag_end];
    let tag = &tag[tag.rfind('<')?..];
    let key = format!("{attr}=\"");
    let v = &tag[tag.find(&key)? + key.len()..];
    v[..v.find('"')?].parse().ok()
}

fn chromium(args: &[&str], url: &str, profile: &Path) -> std::process::Output {
    common::output_within(
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--virtual-time-budget=4000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .arg(url),
        Duration::from_secs(90),
    )
}

fn have_chromium() -> bool {
    have(
        "chromium",
        &["--headless", "--no-sandbox", "--version"],
        "apt-get install -y chromium",
    )
}

#[test]
fn the_page_in_headless_chromium_shows_the_registers_read_over_modbus() {
    if !have_chromium() {
        return;
    }
    let dir = temp_dir("http-page");
    let http = free_addr();
    let d = start(&dir, http, &[]);
    wait_for_telegrams(http, 2);

    // Modbus reads (one request: one moment) all the time Chromium loads the page.
    let modbus = d.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(Seen, u32)>>> = Arc::default();
    let poller = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut ctx = tokio_modbus::client::tcp::connect_slave(modbus, Slave(10))
                    .await
                    .expect("connect");
                loop {
                    let words = ctx
                        .read_holding_registers(1000, 121)
                        .await
                        .expect("transport")
                        .expect("read");
                    seen.lock().unwrap().push(modbus_seen(&words));
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let url = format!("http://{http}/");
    let out = chromium(&["--dump-dom"], &url, &dir.join("profile"));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    poller.join().expect("poller");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let attr = |id: &str, a: &str| {
        dom_attr(&dom, id, a).unwrap_or_else(|| panic!("no {id} {a} in the DOM:\n{dom}"))
    };
    let shown = Seen {
        limit_ma: attr("limit", "data-ma") as u16,
        state: attr("state", "data-code") as u16,
        grid_ca: [
            attr("grid-l1", "data-ca") as i16,
            attr("grid-l2", "data-ca") as i16,
            attr("grid-l3", "data-ca") as i16,
        ],
    };
    let uptime = attr("uptime", "data-s") as u32;
    let seen = seen.lock().unwrap();
    // The page's values are those of one Modbus read at the same uptime, or one
    // update (one second) away.
    let close: Vec<&(Seen, u32)> = seen
        .iter()
        .filter(|(_, t)| t.abs_diff(uptime) <= 1)
        .collect();
    assert!(
        close.iter().any(|(s, _)| *s == shown),
        "the page shows {shown:?} at uptime {uptime}; Modbus read {close:?}"
    );
    // The state's words and the LED frame, the settings table with units and ranges.
    assert!(dom.contains("id=\"state-meaning\""));
    assert!(dom.contains("<code>"), "the LED frame");
    assert!(
        dom.contains("id=\"setting-upper_current\""),
        "settings table"
    );
    assert!(dom.contains("6000 … 63000 mA"), "a range");
    assert!(dom.contains("<polyline"), "the chart drew the first sample");
    assert!(
        dom.contains("<div id=\"writebox\" hidden"),
        "read only: no write box"
    );
    assert!(
        !dom.contains("data-address=\"1016\""),
        "read only: no inputs"
    );
    assert!(
        dom.contains("<span id=\"err\"></span>"),
        "the page updated without an error"
    );

    // A screenshot (a phone's width) for the notes, under target/.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("p1lb-status-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium(
        &[
            "--window-size=420,1500",
            "--hide-scrollbars",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
        &dir.join("profile"),
    );
    assert!(out.status.success() && shot.exists(), "screenshot");
    eprintln!("screenshot: {}", shot.display());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn metrics_pass_promtool_and_follow_the_daemon() {
    if !have(
        "promtool",
        &["--version"],
        "apt-get install -y prometheus (promtool)",
    ) {
        return;
    }
    let dir = temp_dir("http-metrics");
    let http = free_addr();
    let _d = start(&dir, http, &[]);
    wait_for_telegrams(http, 3);
    let (code, head, body) = get(http, "/metrics");
    assert_eq!(code, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let out = common::output_fed_within(
        Command::new("promtool").args(["check", "metrics"]),
        &body,
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(body).unwrap();
    let value = |line: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {line} in\n{text}"))
    };
    assert_eq!(value("p1lb_build_info{version=\"0.1.0\"}"), 1.0);
    assert!(value("p1lb_p1_telegrams_valid_total") >= 3.0);
    assert_eq!(
        value("p1lb_p1_telegrams_rejected_total{reason=\"bad_crc\"}"),
        0.0
    );
    assert!(value("p1lb_voltage_volts{phase=\"L1\"}") > 200.0);
    // The simulated charger answers on the in-process bus: exchanges, timed.
    let count = value("p1lb_rs485_exchange_duration_seconds_count");
    assert!(count >= 1.0, "{text}");
    assert_eq!(
        value("p1lb_rs485_exchange_duration_seconds_bucket{le=\"+Inf\"}"),
        count
    );
    assert_eq!(value("p1lb_rs485_port_open"), 1.0);
    // The client's counters come from the core's bus master: every exchange sent a frame.
    assert!(value("p1lb_rs485_frames_sent_total") >= count, "{text}");
    assert_eq!(value("p1lb_rs485_timeouts_total"), 0.0);
    // Every readable register of the map, from the table.
    assert!(text.contains("p1lb_register{address=\"1177\",name=\"charger8_flags\""));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads register `address` over Modbus TCP.
async fn read_register(d: &Daemon, address: u16) -> u16 {
    let mut ctx = d.client(10).await;
    ctx.read_holding_registers(address, 1)
        .await
        .expect("transport")
        .expect("read")[0]
}

const WRITE_1016: &str = r#"{"address": 1016, "value": 7}"#;

fn post_write(addr: SocketAddr, auth: &str, body: &str) -> Option<(u16, String, Vec<u8>)> {
    exchange(
        addr,
        format!(
            "POST /api/write HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn with_writes_off_every_write_is_refused_and_nothing_changes() {
    let dir = temp_dir("http-ro");
    let http = free_addr();
    let d = start(&dir, http, &[]);
    let file = std::fs::read_to_string(dir.join("p1lb.toml")).unwrap();
    let before = read_register(&d, 1016).await;
    // user:secret
    let auth = "Authorization: Basic dXNlcjpzZWNyZXQ=\r\n";
    let (code, _, body) = tokio::task::spawn_blocking(move || post_write(http, auth, WRITE_1016))
        .await
        .unwrap()
        .expect("an answer");
    assert_eq!(code, 403, "{}", String::from_utf8_lossy(&body));
    for request in [
        "PUT /api/write HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "DELETE / HTTP/1.1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    ] {
        let (code, _, _) = tokio::task::spawn_blocking(move || exchange(http, request.as_bytes()))
            .await
            .unwrap()
            .expect("an answer");
        assert_eq!(code, 405, "{request}");
    }
    assert_eq!(read_register(&d, 1016).await, before);
    assert_eq!(
        read_register(&d, 1003).await & (1 << 5),
        0,
        "nothing staged"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("p1lb.toml")).unwrap(),
        file
    );
    let v = tokio::task::spawn_blocking(move || status_json(http))
        .await
        .unwrap();
    assert_eq!(v["writes"], false);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_writes_on_the_password_writes_through_the_register_write_path() {
    let dir = temp_dir("http-rw");
    let http = free_addr();
    let password = dir.join("http-password");
    std::fs::write(&password, "s3cret\n").unwrap();
    // Readable only by the service user, or the start is refused.
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let config = dir.join("p1lb.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"{http}\"\nallow_writes = true\npassword_file = \"{}\"\n",
            password.display()
        ),
    )
    .unwrap();
    let d = Daemon::in_dir(&dir)
        .config(&config)
        .args(["--p1", "sim", "--rs485", "sim"])
        .start();
    // p1lb:wrong, then p1lb:s3cret
    let wrong = "Authorization: Basic cDFsYjp3cm9uZw==\r\n";
    let right = "Authorization: Basic cDFsYjpzM2NyZXQ=\r\n";
    let (code, _, _) = tokio::task::spawn_blocking(move || post_write(http, wrong, WRITE_1016))
        .await
        .unwrap()
        .expect("an answer");
    assert_eq!(code, 401);
    assert_eq!(read_register(&d, 1016).await, 5);
    let (code, _, body) = tokio::task::spawn_blocking(move || {
        post_write(http, right, r#"{"address": 1016, "value": 300}"#)
    })
    .await
    .unwrap()
    .expect("an answer");
    assert_eq!(
        code,
        422,
        "out of range: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(read_register(&d, 1016).await, 5);
    let (code, _, body) = tokio::task::spawn_blocking(move || post_write(http, right, WRITE_1016))
        .await
        .unwrap()
        .expect("an answer");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    // Staged, as a Modbus write: 1003 bit 5, not yet in the file.
    assert_eq!(read_register(&d, 1016).await, 7);
    assert_ne!(read_register(&d, 1003).await & (1 << 5), 0);
    assert!(
        !std::fs::read_to_string(&config)
            .unwrap()
            .contains("upper_wait = 7")
    );
    // Save (1091): in the file.
    let (code, _, _) = tokio::task::spawn_blocking(move || {
        post_write(http, right, r#"{"name": "save", "value": 1}"#)
    })
    .await
    .unwrap()
    .expect("an answer");
    assert_eq!(code, 200);
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("upper_wait = 7")
    );
    assert_eq!(read_register(&d, 1003).await & (1 << 5), 0);
    // The page offers the writes: the password box and an input per setting.
    if have_chromium() {
        let profile = dir.join("profile");
        let out = tokio::task::spawn_blocking(move || {
            chromium(&["--dump-dom"], &format!("http://{http}/"), &profile)
        })
        .await
        .unwrap();
        let dom = String::from_utf8_lossy(&out.stdout);
        assert!(dom.contains("<div id=\"writebox\">"), "shown: {dom}");
        assert!(
            dom.contains("<input type=\"number\" data-address=\"1016\" value=\"7\">"),
            "{dom}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn writes_on_without_a_password_file_stop_the_start_with_the_reason() {
    let dir = temp_dir("http-nopw");
    let config = dir.join("p1lb.toml");
    std::fs::write(&config, "[http]\nallow_writes = true\n").unwrap();
    // Bounded: a daemon that started instead of refusing would run forever.
    let out = common::output_within(
        Command::new(common::BIN)
            .args(["run", "--p1", "sim", "--config"])
            .arg(&config)
            .args(["--modbus-tcp", &free_addr().to_string()]),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("password_file"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn many_clients_slow_clients_oversized_and_garbage_are_answered_or_dropped() {
    let dir = temp_dir("http-hostile");
    let http = free_addr();
    let mut d = start(&dir, http, &[]);
    wait_for_telegrams(http, 1);

    // 200 clients at once: each gets the JSON or is closed; none hangs.
    let t0 = Instant::now();
    let clients: Vec<_> = (0..200)
        .map(|_| {
            std::thread::spawn(move || {
                exchange(http, b"GET /api/status HTTP/1.1\r\nHost: t\r\n\r\n").map(|(c, _, _)| c)
            })
        })
        .collect();
    let codes: Vec<Option<u16>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let ok = codes.iter().filter(|c| **c == Some(200)).count();
    let dropped = codes.iter().filter(|c| c.is_none()).count();
    eprintln!(
        "200 clients at once: {ok} answered 200, {dropped} closed, in {:?}",
        t0.elapsed()
    );
    assert_eq!(ok + dropped, 200, "{codes:?}");
    assert!(
        ok >= 32,
        "at least the connection limit is served: {codes:?}"
    );

    // Oversized and garbage.
    let mut huge_head = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    huge_head.resize(100_000, b'a');
    huge_head.extend_from_slice(b"\r\n\r\n");
    let mut big_body = b"POST /api/write HTTP/1.1\r\nContent-Length: 5000\r\n\r\n".to_vec();
    big_body.resize(big_body.len() + 5000, b'{');
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (huge_head, 431),
        (big_body, 413),
        (
            b"POST /api/write HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n".to_vec(),
            413,
        ),
        (b"\x00\x01\x02\xff garbage\r\n\r\n".to_vec(), 400),
        (b"GET /../../etc/passwd HTTP/1.1\r\n\r\n".to_vec(), 404),
        (b"BREW /pot HTTP/1.1\r\n\r\n".to_vec(), 404),
        (b"GET / HTTP/3\r\n\r\n".to_vec(), 505),
        (
            b"POST /api/write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            501,
        ),
    ];
    for (request, want) in cases {
        let got = exchange(http, &request).map(|(c, _, _)| c);
        assert!(
            got == Some(want) || got.is_none() && want >= 413,
            "{:?}…: {got:?}, expected {want}",
            String::from_utf8_lossy(&request[..request.len().min(40)])
        );
    }

    // Slowloris: connections that never finish their request hold every slot, then are
    // dropped after the request timeout (10 s) and the server serves again.
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(http).expect("connect");
        let _ = s.write_all(b"GET / HTTP/1.1\r\n");
        slow.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let during = exchange(http, b"GET /api/status HTTP/1.1\r\n\r\n").map(|(c, _, _)| c);
    assert_eq!(during, None, "every slot is held: closed at once");
    let t0 = Instant::now();
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 16];
        // Closed by the server without an answer.
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    }
    let waited = t0.elapsed();
    assert!(waited < Duration::from_secs(12), "dropped after {waited:?}");
    assert_eq!(get(http, "/api/status").0, 200, "serving again");

    // Alive, Modbus answers, nothing changed.
    assert!(d.exited().is_none(), "{}", d.log_text());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(read_register(&d, 1016).await, 5);
        assert_eq!(read_register(&d, 1003).await & (1 << 5), 0);
    });
    let _ = std::fs::remove_dir_all(&dir);
}
