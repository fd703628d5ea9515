//! The HTTP task (`[http]`, `p1lb run --http ADDR:PORT`): a small HTTP/1.1 server on
//! tokio for people and scrapers.
//!
//! - `GET /`: the status page (one HTML file with inline CSS and JavaScript, no build
//!   step, nothing fetched from elsewhere): phase currents against the limits, the
//!   state with the LED's meaning, the last hour as a chart, the settings table.
//! - `GET /api/status`: the live values as JSON ([`status::status_json`]).
//! - `GET /api/history`: the last hour, one sample every [`SAMPLE_EVERY`] (a ring
//!   buffer in memory).
//! - `GET /metrics`: Prometheus text exposition format ([`status::metrics`]).
//! - `POST /api/write`: a register write through [`writes::write`] — the one write path
//!   Modbus uses — only with `allow_writes = true` and the password (HTTP Basic, any
//!   user name) and a JSON body `{"address": 1016, "value": 7}` (or `"name"`). With
//!   writes off it is refused with 403 and changes nothing.
//!
//! Hostile input: the request is parsed by the sans-IO [`request`] module (head ≤ 8 KiB
//! → else 431, body ≤ 4 KiB → else 413, anything malformed → 400); the whole request
//! must arrive within [`REQUEST_TIMEOUT`] (slowloris) and the answer leave within
//! [`WRITE_TIMEOUT`]; at most [`MAX_CONNECTIONS`] connections are served at once, others
//! are closed at once. One request per connection (`Connection: close`). Nothing here
//! holds the device's lock longer than a copy of the register words.

pub mod request;
pub mod status;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use self::request::{HttpError, MAX_BODY, MAX_HEAD, Method, Parsed, Request, Response};
use self::status::{Sample, Snapshot};
use super::shared::Shared;
use super::writes::{self, WriteRefused};
use p1lb_core::registers::{Exception, REGISTERS};

/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 32;
/// The whole request must arrive within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The answer must be taken within this.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// One history sample every this long.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Samples kept: one hour.
pub const HISTORY_LEN: usize = 720;

/// The status page.
pub const PAGE: &str = include_str!("http/page.html");

/// How the server runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The password for writes; `None`: read only (every write refused with 403).
    pub password: Option<String>,
}

/// Binds the listener (an address in use stops the start with the reason).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("HTTP: cannot listen on {addr}"))
}

/// The history ring buffer.
type History = Arc<Mutex<VecDeque<Sample>>>;

/// Runs forever: accepts connections and samples the history.
pub async fn run(shared: Arc<Shared>, listener: TcpListener, options: Options) {
    let history: History = Arc::new(Mutex::new(VecDeque::with_capacity(HISTORY_LEN)));
    let options = Arc::new(options);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut sample = tokio::time::interval(SAMPLE_EVERY);
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refused: u64 = 0;
    loop {
        tokio::select! {
            _ = sample.tick() => {
                record(&history, Sample::of(&Snapshot::take(&shared, false)));
            }
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little.
                        tracing::warn!("HTTP: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    refused += 1;
                    if refused.is_power_of_two() {
                        tracing::warn!(
                            "HTTP: {refused} connection(s) closed at once: {MAX_CONNECTIONS} already served"
                        );
                    }
                    drop(stream);
                    continue;
                };
                let shared = shared.clone();
                let history = history.clone();
                let options = options.clone();
                tokio::spawn(async move {
                    serve_connection(&shared, &history, &options, stream).await;
                    drop(permit);
                });
            }
        }
    }
}

/// Adds a sample to the ring buffer, dropping the oldest beyond [`HISTORY_LEN`].
fn record(history: &Mutex<VecDeque<Sample>>, sample: Sample) {
    let mut h = history.lock().unwrap_or_else(|e| e.into_inner());
    while h.len() >= HISTORY_LEN {
        h.pop_front();
    }
    h.push_back(sample);
}

/// One connection: one request, one answer, closed.
async fn serve_connection(
    shared: &Shared,
    history: &History,
    options: &Options,
    mut stream: TcpStream,
) {
    let _ = stream.set_nodelay(true);
    let request = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await;
    let (response, head_only) = match request {
        // Too slow: closed without a word.
        Err(_) => return,
        Ok(Err(ReadError::Closed)) => return,
        Ok(Err(ReadError::Http(e))) => (Response::from_error(e), false),
        Ok(Ok(req)) => {
            let head_only = req.method == Method::Head;
            (route(shared, history, options, &req).await, head_only)
        }
    };
    let bytes = response.to_bytes(head_only);
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

enum ReadError {
    Closed,
    Http(HttpError),
}

async fn read_request(stream: &mut TcpStream) -> Result<Request, ReadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| ReadError::Closed)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        match request::parse(&buf) {
            Ok(Parsed::Complete(req, _)) => return Ok(req),
            Ok(Parsed::Partial) if buf.len() <= MAX_HEAD + MAX_BODY + 64 => {}
            Ok(Parsed::Partial) => return Err(ReadError::Http(HttpError::HeadTooLarge)),
            Err(e) => return Err(ReadError::Http(e)),
        }
    }
}

fn json_response(v: &serde_json::Value) -> Response {
    Response::ok("application/json", v.to_string())
}

/// The answer to a parsed request.
pub async fn route(
    shared: &Shared,
    history: &Mutex<VecDeque<Sample>>,
    options: &Options,
    req: &Request,
) -> Response {
    let writes = options.password.is_some();
    let get = matches!(req.method, Method::Get | Method::Head);
    match req.path.as_str() {
        "/" | "/index.html" if get => Response::ok("text/html; charset=utf-8", PAGE),
        "/api/status" if get => {
            json_response(&status::status_json(&Snapshot::take(shared, writes)))
        }
        "/metrics" if get => Response::ok(
            "text/plain; version=0.0.4; charset=utf-8",
            status::metrics(&Snapshot::take(shared, writes)),
        ),
        "/api/history" if get => {
            let samples: Vec<serde_json::Value> = history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|s| s.to_json())
                .collect();
            json_response(&json!({
                "interval_s": SAMPLE_EVERY.as_secs(),
                "columns": ["uptime_s", "grid_ca_l1", "grid_ca_l2", "grid_ca_l3",
                    "charger_ca_l1", "charger_ca_l2", "charger_ca_l3", "limit_ma", "state"],
                "samples": samples,
            }))
        }
        "/api/write" if req.method == Method::Post => write(shared, options, req).await,
        "/api/write" => {
            Response::error(405, "Method Not Allowed", "POST only").with_header("Allow", "POST")
        }
        "/" | "/index.html" | "/api/status" | "/metrics" | "/api/history" => {
            Response::error(405, "Method Not Allowed", "GET or HEAD only")
                .with_header("Allow", "GET, HEAD")
        }
        _ => Response::error(404, "Not Found", ""),
    }
}

/// `POST /api/write`: only with writes on, the password, a JSON body; through the one
/// write path.
async fn write(shared: &Shared, options: &Options, req: &Request) -> Response {
    let Some(password) = &options.password else {
        return Response::error(
            403,
            "Forbidden",
            "writes are off ([http] allow_writes = false): nothing changed",
        );
    };
    if !authorized(req.header("authorization"), password) {
        return Response::error(401, "Unauthorized", "the password is needed for writes")
            .with_header(
                "WWW-Authenticate",
                "Basic realm=\"p1lb\", charset=\"UTF-8\"",
            );
    }
    // A JSON content type: a cross-site form cannot send it without a CORS preflight,
    // which this server never grants.
    let json_body = req.header("content-type").is_some_and(|t| {
        t.trim()
            .to_ascii_lowercase()
            .starts_with("application/json")
    });
    if !json_body {
        return Response::error(415, "Unsupported Media Type", "send application/json");
    }
    let Some((address, value)) = parse_write(&req.body) else {
        return Response::error(
            400,
            "Bad Request",
            "expected {\"address\": N or \"name\": \"...\", \"value\": raw register value}",
        );
    };
    match writes::write(shared, address, &[value]).await {
        Ok(()) => {
            tracing::info!("HTTP: register {address} = {value} written");
            json_response(&json!({"ok": true, "address": address, "value": value}))
        }
        Err(e) => {
            tracing::info!("HTTP: write of {value} to {address} refused: {e}");
            let status = match e {
                WriteRefused::Refused(Exception::IllegalDataAddress)
                | WriteRefused::Refused(Exception::IllegalDataValue)
                | WriteRefused::Refused(_) => (422, "Unprocessable Content"),
                WriteRefused::SaveFailed => (500, "Internal Server Error"),
            };
            Response::new(
                status.0,
                status.1,
                "application/json",
                json!({"ok": false, "address": address, "value": value, "error": e.to_string()})
                    .to_string()
                    .into_bytes(),
            )
        }
    }
}

/// `{"address": 1016, "value": 7}` or `{"name": "upper_wait", "value": 7}`.
fn parse_write(body: &[u8]) -> Option<(u16, u16)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let value = u16::try_from(v.get("value")?.as_u64()?).ok()?;
    let address = match (v.get("address"), v.get("name")) {
        (Some(a), _) => u16::try_from(a.as_u64()?).ok()?,
        (None, Some(n)) => {
            let n = n.as_str()?;
            REGISTERS.iter().find(|r| r.name == n)?.address
        }
        (None, None) => return None,
    };
    Some((address, value))
}

/// True when `header` is HTTP Basic with `password` (any user name), compared in
/// constant time.
fn authorized(header: Option<&str>, password: &str) -> bool {
    // (The scheme's name is case-insensitive, RFC 9110 §11.1.)
    let Some(encoded) = header.and_then(|h| {
        h.get(..6)
            .filter(|s| s.eq_ignore_ascii_case("basic "))
            .and_then(|_| h.get(6..))
    }) else {
        return false;
    };
    let Some(decoded) = base64_decode(encoded.trim()) else {
        return false;
    };
    let given = match decoded.iter().position(|&b| b == b':') {
        Some(i) => &decoded[i + 1..],
        None => return false,
    };
    let want = password.as_bytes();
    let mut diff = u8::from(given.len() != want.len());
    for (i, w) in want.iter().enumerate() {
        diff |= w ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Standard base64 (with or without padding); `None` on anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p1lb_core::config::Config;

    fn shared() -> Arc<Shared> {
        let dir = std::env::temp_dir().join(format!("p1lb-http-unit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        Arc::new(Shared::new(Config::default(), dir.join("p1lb.toml")))
    }

    fn req(raw: &str) -> Request {
        match request::parse(raw.as_bytes()) {
            Ok(Parsed::Complete(r, _)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn routes_answer_and_bad_methods_and_paths_have_their_status() {
        let shared = shared();
        let history = Mutex::new(VecDeque::new());
        let ro = Options::default();
        let r = route(&shared, &history, &ro, &req("GET / HTTP/1.1\r\n\r\n")).await;
        assert_eq!(r.status, 200);
        assert!(r.content_type.starts_with("text/html"));
        let r = route(
            &shared,
            &history,
            &ro,
            &req("GET /api/status HTTP/1.1\r\n\r\n"),
        )
        .await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["limit_ma"], 0);
        assert_eq!(v["writes"], false);
        let n = v["registers"].as_array().unwrap().len();
        assert_eq!(n, REGISTERS.len(), "every register of the map");
        let r = route(
            &shared,
            &history,
            &ro,
            &req("GET /metrics HTTP/1.1\r\n\r\n"),
        )
        .await;
        assert!(
            String::from_utf8(r.body)
                .unwrap()
                .contains("p1lb_build_info{version=")
        );
        let r = route(
            &shared,
            &history,
            &ro,
            &req("DELETE /metrics HTTP/1.1\r\n\r\n"),
        )
        .await;
        assert_eq!(r.status, 405);
        let r = route(&shared, &history, &ro, &req("GET /nope HTTP/1.1\r\n\r\n")).await;
        assert_eq!(r.status, 404);
        let r = route(
            &shared,
            &history,
            &ro,
            &req("GET /api/write HTTP/1.1\r\n\r\n"),
        )
        .await;
        assert_eq!(r.status, 405);
    }

    #[tokio::test]
    async fn writes_need_the_switch_the_password_and_json_and_go_through_the_write_path() {
        let shared = shared();
        let history = Mutex::new(VecDeque::new());
        let body = r#"{"address": 1016, "value": 7}"#;
        let post = |auth: &str, ctype: &str, body: &str| {
            req(&format!(
                "POST /api/write HTTP/1.1\r\n{auth}Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ))
        };
        let staged = |s: &Shared| {
            s.core()
                .map
                .staged()
                .get(p1lb_core::config::address::UPPER_WAIT)
        };
        let before = staged(&shared);
        // Writes off: 403 even with a password header.
        let ro = Options::default();
        let good_auth = "Authorization: Basic dXNlcjpzZWNyZXQ=\r\n"; // user:secret
        let r = route(
            &shared,
            &history,
            &ro,
            &post(good_auth, "application/json", body),
        )
        .await;
        assert_eq!(r.status, 403);
        assert_eq!(staged(&shared), before);
        let rw = Options {
            password: Some("secret".into()),
        };
        for (auth, ctype, want) in [
            ("", "application/json", 401),
            (
                "Authorization: Basic dXNlcjp3cm9uZw==\r\n",
                "application/json",
                401,
            ), // user:wrong
            ("Authorization: Basic !!!\r\n", "application/json", 401),
            (good_auth, "application/x-www-form-urlencoded", 415),
        ] {
            let r = route(&shared, &history, &rw, &post(auth, ctype, body)).await;
            assert_eq!(r.status, want, "{auth} {ctype}");
            assert_eq!(staged(&shared), before);
        }
        // Out of range: refused by the map, nothing changes.
        let r = route(
            &shared,
            &history,
            &rw,
            &post(
                good_auth,
                "application/json",
                r#"{"address": 1016, "value": 300}"#,
            ),
        )
        .await;
        assert_eq!(r.status, 422);
        assert_eq!(staged(&shared), before);
        let r = route(
            &shared,
            &history,
            &rw,
            &post(good_auth, "application/json", "{nope"),
        )
        .await;
        assert_eq!(r.status, 400);
        // Good: staged as a Modbus write would be.
        let r = route(
            &shared,
            &history,
            &rw,
            &post(good_auth, "application/json", body),
        )
        .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(staged(&shared), Some(7));
        let r = route(
            &shared,
            &history,
            &rw,
            &post(
                good_auth,
                "application/json; charset=utf-8",
                r#"{"name": "upper_wait", "value": 8}"#,
            ),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(staged(&shared), Some(8));
    }

    #[tokio::test]
    async fn the_history_keeps_the_last_hour_in_order() {
        let shared = shared();
        let history = Mutex::new(VecDeque::new());
        let mut sample = Sample::of(&Snapshot::take(&shared, false));
        for t in 0..(HISTORY_LEN as u32 + 10) {
            sample.uptime_s = t * 5;
            record(&history, sample);
        }
        let r = route(
            &shared,
            &history,
            &Options::default(),
            &req("GET /api/history HTTP/1.1\r\n\r\n"),
        )
        .await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let samples = v["samples"].as_array().unwrap();
        assert_eq!(samples.len(), HISTORY_LEN);
        assert_eq!(samples[0][0], 50, "the oldest ten dropped");
        assert_eq!(samples[HISTORY_LEN - 1][0], (HISTORY_LEN as u64 + 9) * 5);
        assert_eq!(v["interval_s"], 5);
        assert_eq!(
            samples[0].as_array().unwrap().len(),
            v["columns"].as_array().unwrap().len()
        );
    }

    #[test]
    fn base64_decodes_and_refuses_junk() {
        assert_eq!(base64_decode("dXNlcjpzZWNyZXQ=").unwrap(), b"user:secret");
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert!(base64_decode("a b").is_none());
        assert!(authorized(Some("Basic OnNlY3JldA=="), "secret")); // ":secret"
        assert!(!authorized(Some("Basic OnNlY3JldDI="), "secret")); // ":secret2"
        assert!(!authorized(Some("Bearer secret"), "secret"));
        assert!(!authorized(None, "secret"));
    }
}
