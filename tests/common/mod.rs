//! Shared by the daemon's integration tests: scratch folders and ports, the daemon
//! started and killed for one test, socat pty pairs, what to write to every writable
//! register, and how to read mbpoll's output. The end-to-end bus tests' models are in
//! [`terra_bus`] (the Terra AC units, their cars, the meter over TCP) and their daemon,
//! its P1 pty and its registers in [`master_rig`].
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub mod broker;
pub mod ha;
pub mod master_rig;
pub mod terra_bus;

use p1lb_core::config::SETTINGS;
use tokio_modbus::client::{Context, tcp};
use tokio_modbus::prelude::Slave;

/// The daemon under test: this build's `p1lb`.
pub const BIN: &str = env!("CARGO_BIN_EXE_p1lb");

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

/// `m` locked, also after a panic elsewhere poisoned it (the models shared between a
/// test and its serving tasks).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A child process, killed on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` to its end like [`Command::output`], but kills it and panics (naming the
/// command and what it printed so far) when it has not ended within `limit`: an outside
/// tool that hangs (a browser, a client waiting on a broker) fails its test instead of
/// holding CI until the machine is shut down.
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    output_fed_within(cmd, &[], limit)
}

/// [`output_within`] with `input` written to the command's standard input (then closed).
pub fn output_fed_within(cmd: &mut Command, input: &[u8], limit: Duration) -> std::process::Output {
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;
    use std::sync::mpsc;
    let what = format!("{cmd:?}");
    // Its own process group, so that a kill reaches what it started (a browser's
    // renderers hold its pipes open).
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    fn drain<R: Read + Send + 'static>(r: Option<R>) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    }
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_vec();
        // A reader that never reads must not hold this test: write from a thread.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let take = |rx: &mpsc::Receiver<Vec<u8>>| {
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left.max(Duration::from_secs(2)))
            .unwrap_or_default()
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return std::process::Output {
                    status,
                    stdout: take(&out),
                    stderr: take(&err),
                };
            }
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) | Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what} did not end within {limit:?}; killed.\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&take(&out)),
                    String::from_utf8_lossy(&take(&err))
                );
            }
        }
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

/// 127.0.0.1 with a [`free_port`]: where a test has the daemon listen (Modbus TCP, the
/// P1 forward) or finds nobody listening.
pub fn free_addr() -> SocketAddr {
    ([127, 0, 0, 1], free_port()).into()
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
            Range::ZeroOr(lo, hi) => (
                if s.default == 0 { lo } else { 0 },
                lo.checked_sub(1).filter(|&v| v > 0).or(hi.checked_add(1)),
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
pub fn spawn_listening(cmd: Command, addr: SocketAddr, log: &Path, timeout: Duration) -> Child {
    spawn_ready(cmd, addr, "", log, timeout)
}

/// As [`spawn_listening`], and ready only once the log also contains `log_has` (for
/// the daemon's `"RS485: "`: its serial port is open). The probe connections are
/// closed at once.
pub fn spawn_ready(
    mut cmd: Command,
    addr: SocketAddr,
    log_has: &str,
    log: &Path,
    timeout: Duration,
) -> Child {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} does not start: {e}"));
    let text = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            && text().contains(log_has)
        {
            return child;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{cmd:?} exited ({status}):\n{}", text());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let also = if log_has.is_empty() {
                String::new()
            } else {
                format!(" with {log_has:?} in its log")
            };
            panic!("{cmd:?} does not listen on {addr}{also}:\n{}", text());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `p1lb run` for one test, made by [`Daemon::in_dir`]: Modbus TCP on
/// [`Daemon::addr`], stderr (`RUST_LOG=info`) in [`Daemon::log`]. Killed with SIGKILL
/// on drop, never stopped gracefully: no test needs a clean shutdown, and save_kill
/// relies on the hard kill.
pub struct Daemon {
    _child: Guard,
    /// Its Modbus TCP server, 127.0.0.1:<free port>.
    pub addr: SocketAddr,
    /// Its stderr: `daemon-<port>.log` in the test's folder.
    pub log: PathBuf,
}

/// How to start a [`Daemon`]: `p1lb run --modbus-tcp ADDR --state-dir DIR` and what the
/// builder adds; [`DaemonStart::start`] starts it and waits up to 10 s until it is ready
/// (Modbus TCP accepts connections, unless told otherwise).
pub struct DaemonStart {
    dir: PathBuf,
    config: Option<PathBuf>,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    ready_on: Option<SocketAddr>,
    log_has: &'static str,
}

impl Daemon {
    /// A daemon with its state (`p1lb.toml`) and its log in `dir`; configure it with
    /// [`DaemonStart`]'s methods, then [`DaemonStart::start`].
    pub fn in_dir(dir: &Path) -> DaemonStart {
        DaemonStart {
            dir: dir.to_path_buf(),
            config: None,
            args: Vec::new(),
            envs: Vec::new(),
            ready_on: None,
            log_has: "",
        }
    }

    /// What it has logged so far (for failure messages and log checks).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its process id (for `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self._child.0.id()
    }

    /// `Some(status)` once it has exited (a dead task makes it exit non-zero).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self._child.0.try_wait().ok().flatten()
    }

    /// `tcp://ADDR`: its Modbus TCP server as a `p1lb config`/`monitor` device.
    pub fn device(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// A Modbus TCP client of unit `unit` on [`Daemon::addr`], connected within 5 s.
    pub async fn client(&self, unit: u8) -> Context {
        tokio::time::timeout(
            Duration::from_secs(5),
            tcp::connect_slave(self.addr, Slave(unit)),
        )
        .await
        .expect("connect in time")
        .expect("connect")
    }
}

impl DaemonStart {
    /// `--config FILE` instead of `--state-dir DIR` (the two exclude each other).
    pub fn config(mut self, file: &Path) -> DaemonStart {
        self.config = Some(file.to_path_buf());
        self
    }

    /// Arguments after the others (`--p1 sim`, `--rs485 PTY`, `--rs485-role master`…).
    pub fn args<I, S>(mut self, args: I) -> DaemonStart
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// An environment variable for the daemon (`SSL_CERT_FILE`).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> DaemonStart {
        self.envs
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Ready when `addr` accepts connections instead of the Modbus TCP port (the P1
    /// forward's port, which the test connects to first).
    pub fn ready_on(mut self, addr: SocketAddr) -> DaemonStart {
        self.ready_on = Some(addr);
        self
    }

    /// Ready only once the log also contains `text` (`"RS485: "`: the port is open).
    pub fn log_has(mut self, text: &'static str) -> DaemonStart {
        self.log_has = text;
        self
    }

    /// Starts the daemon and waits until it is ready; panics with its log when it
    /// exits first or is not ready within 10 s.
    pub fn start(self) -> Daemon {
        let addr = free_addr();
        let log = self.dir.join(format!("daemon-{}.log", addr.port()));
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--modbus-tcp", &addr.to_string()]);
        match &self.config {
            Some(file) => cmd.arg("--config").arg(file),
            None => cmd.arg("--state-dir").arg(&self.dir),
        };
        cmd.args(&self.args).env("RUST_LOG", "info");
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        let ready = self.ready_on.unwrap_or(addr);
        let child = spawn_ready(cmd, ready, self.log_has, &log, Duration::from_secs(10));
        Daemon {
            _child: Guard(child),
            addr,
            log,
        }
    }
}

/// A socat pty pair, `a` and `b` (a serial line for the RS485 port); socat is killed
/// on drop. Check [`have_socat`] first.
pub struct Pty {
    _socat: Guard,
    /// One end (the daemon's, usually).
    pub a: PathBuf,
    /// The other end.
    pub b: PathBuf,
}

impl Pty {
    /// `DIR/pty-a` and `DIR/pty-b`, once socat has made both (within 5 s).
    pub fn new(dir: &Path) -> Pty {
        let a = dir.join("pty-a");
        let b = dir.join("pty-b");
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat starts");
        let guard = Guard(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(a.exists() && b.exists()) {
            assert!(Instant::now() < deadline, "socat made no ptys");
            std::thread::sleep(Duration::from_millis(20));
        }
        Pty {
            _socat: guard,
            a,
            b,
        }
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
