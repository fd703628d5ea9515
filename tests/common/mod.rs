//! Shared by the daemon's integration tests: scratch folders and ports, what to write
//! to every writable register, and how to read mbpoll's output.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use p1lb_core::config::SETTINGS;

/// True when `tool` runs (`tool args…` exits 0); else skips loudly (false), or
/// panics when the environment variable `CI` is set: there a missing tool is a
/// failure, not a skip.
pub fn have(tool: &str, args: &[&str], install: &str) -> bool {
    let ok = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = format!("{tool} is not available ({install}): SKIPPING this test");
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
            panic!("{msg} — not allowed under CI");
        }
        eprintln!("\n!!!!!!!! {msg} !!!!!!!!\n");
    }
    ok
}

/// socat (pty pairs), or a loud skip.
pub fn have_socat() -> bool {
    have("socat", &["-V"], "apt-get install -y socat")
}

/// A child process, killed on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh, empty temporary folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "p1lb-test-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A TCP port free on the loopback interface right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Every writable register with a value to write (≠ its default where the range allows)
/// and, where the range leaves room, a value that must be refused with exception 03.
pub fn write_plan() -> Vec<(u16, u16, Option<u16>)> {
    use p1lb_core::config::Range;
    let mut plan = vec![(1000u16, 10_000u16, None)]; // the override cap: any value
    for s in SETTINGS {
        let (good, bad) = match s.range {
            Range::Span(lo, hi) => (
                if s.default < hi {
                    s.default + 1
                } else {
                    s.default - 1
                }
                .clamp(lo, hi),
                hi.checked_add(1).or(lo.checked_sub(1)),
            ),
            Range::OneOf(list) => (
                list.iter()
                    .copied()
                    .find(|&v| v != s.default)
                    .unwrap_or(s.default),
                (0..=u16::MAX).find(|v| !list.contains(v)),
            ),
        };
        plan.push((s.address, good, bad));
    }
    plan
}

pub fn plan_arg() -> String {
    write_plan()
        .iter()
        .map(|(a, g, b)| match b {
            Some(b) => format!("{a}:{g}:{b}"),
            None => format!("{a}:{g}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// mbpoll's `[addr]: value` lines.
pub fn mbpoll_values(text: &str) -> Vec<(u16, u16)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (addr, value) = l.strip_prefix('[')?.split_once("]:")?;
            let v: i32 = value.split_whitespace().next()?.parse().ok()?;
            Some((addr.parse().ok()?, v as u16))
        })
        .collect()
}

/// Starts `cmd` (stdin and stdout to null, stderr into `log`) and waits up to `timeout`
/// until something accepts connections on `addr`. Panics with the log when the process
/// exits first or never listens.
pub fn spawn_listening(mut cmd: Command, addr: SocketAddr, log: &Path, timeout: Duration) -> Child {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} does not start: {e}"));
    let text = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return child;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{cmd:?} exited ({status}):\n{}", text());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} does not listen on {addr}:\n{}", text());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The register map's 1000–1022 at their defaults: the override cap 1000 (16 A) and the
/// settings at their defaults (status registers in between are left out).
pub fn defaults_1000_1022() -> Vec<(u16, u16)> {
    let mut want = vec![(1000, 16000)];
    want.extend(
        SETTINGS
            .iter()
            .filter(|s| s.address <= 1022)
            .map(|s| (s.address, s.default)),
    );
    want
}

/// mbpoll (Debian's) against Modbus TCP on 127.0.0.1:`port`, unit 10, holding registers
/// from `start` (0-based addresses): reads `count` registers, or writes `write` to one.
/// Returns whether it exited 0 and its stdout and stderr.
pub fn mbpoll_tcp(port: u16, start: u16, count: u16, write: Option<u16>) -> (bool, String) {
    let mut cmd = Command::new("mbpoll");
    cmd.args(["-0", "-1", "-a", "10", "-t", "4", "-r", &start.to_string()])
        .args(["-p", &port.to_string(), "-o", "2"]);
    match write {
        Some(v) => cmd.args(["127.0.0.1", &v.to_string()]),
        None => cmd.args(["-c", &count.to_string(), "127.0.0.1"]),
    };
    let out = cmd.stdin(Stdio::null()).output().expect("mbpoll runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
