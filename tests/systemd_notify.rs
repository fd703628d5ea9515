//! `p1lb run` under systemd's notification protocol, with the real binary: the test binds
//! the `$NOTIFY_SOCKET` datagram socket itself (a path in a temporary folder, or an
//! abstract name) and reads what the daemon sends: `READY=1` only once Modbus TCP answers,
//! `WATCHDOG=1` at half of `$WATCHDOG_USEC` (only for the process `$WATCHDOG_PID` names),
//! `STATUS=` on change, `STOPPING=1` on SIGTERM; without a socket, nothing changes.
//! Every daemon is killed when its test ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{self, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::{BIN, free_port, temp_dir};

/// The socket systemd would listen on, and its `$NOTIFY_SOCKET` value.
struct NotifySocket {
    socket: UnixDatagram,
    name: String,
}

impl NotifySocket {
    /// A socket file in `dir`.
    fn path(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket {
            socket,
            name: path.to_str().expect("UTF-8 temp path").to_owned(),
        }
    }

    /// An abstract socket (`@name`: no file).
    fn abstract_name(tag: &str) -> NotifySocket {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "p1lb-test-notify-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let addr = net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract socket");
        NotifySocket {
            socket,
            name: format!("@{name}"),
        }
    }

    /// The next message, or none within `timeout`.
    fn recv(&self, timeout: Duration) -> Option<(Instant, String)> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            )),
            Err(_) => None,
        }
    }

    /// Every message until `deadline`.
    fn collect_until(&self, deadline: Instant) -> Vec<(Instant, String)> {
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            if let Some(m) = self.recv(left) {
                got.push(m);
            }
        }
    }

    /// Messages up to and including the first one with the line `line`; panics with
    /// what came (and the daemon's log) when it does not come within `timeout`.
    fn wait_for(&self, line: &str, timeout: Duration, d: &Daemon) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Some(m) => {
                    let done = has_line(&m.1, line);
                    got.push(m);
                    if done {
                        return got;
                    }
                }
                None => panic!(
                    "no {line} within {timeout:?}; got {:?}\n{}",
                    texts(&got),
                    d.log_text()
                ),
            }
        }
    }
}

fn has_line(message: &str, line: &str) -> bool {
    message.lines().any(|l| l == line)
}

fn texts(msgs: &[(Instant, String)]) -> Vec<&str> {
    msgs.iter().map(|(_, m)| m.as_str()).collect()
}

/// Which `$WATCHDOG_PID` the daemon gets.
#[derive(Clone, Copy)]
enum WatchdogPid {
    /// Its own pid, as systemd sets it.
    Daemon,
    /// Another process's.
    Other(u32),
    /// Unset.
    Unset,
}

/// A running `p1lb run --p1 sim --rs485 sim` on a free Modbus TCP port; killed on drop.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Daemon {
    /// Starts the daemon with `$NOTIFY_SOCKET` = `notify`, `$WATCHDOG_USEC` = `usec`
    /// and `$WATCHDOG_PID` as `pid` says; does not wait for anything. The test's own
    /// notification variables (a test run under systemd) never leak into it.
    fn start(
        dir: &Path,
        notify: Option<&str>,
        usec: Option<u64>,
        pid: WatchdogPid,
        port: u16,
    ) -> Daemon {
        Daemon::start_rs485(dir, notify, usec, pid, port, &["--rs485", "sim"])
    }

    /// As [`Daemon::start`], with `rs485` as the RS485 arguments.
    fn start_rs485(
        dir: &Path,
        notify: Option<&str>,
        usec: Option<u64>,
        pid: WatchdogPid,
        port: u16,
        rs485: &[&str],
    ) -> Daemon {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = dir.join(format!("daemon-{port}.log"));
        // `sh` puts its own pid into WATCHDOG_PID and then becomes the daemon (exec keeps
        // the pid), as systemd names the main process it forked.
        let mut cmd = Command::new("sh");
        cmd.arg("-c");
        match pid {
            WatchdogPid::Daemon => {
                cmd.arg(r#"WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$0" "$@""#);
            }
            WatchdogPid::Other(p) => {
                cmd.arg(r#"exec "$0" "$@""#)
                    .env("WATCHDOG_PID", p.to_string());
            }
            WatchdogPid::Unset => {
                cmd.arg(r#"exec "$0" "$@""#);
            }
        }
        cmd.arg(BIN)
            .args(["run", "--p1", "sim"])
            .args(rs485)
            .args(["--modbus-tcp", &addr.to_string()])
            .arg("--state-dir")
            .arg(dir.join("state"))
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("LISTEN_FDS");
        if !matches!(pid, WatchdogPid::Other(_)) {
            cmd.env_remove("WATCHDOG_PID");
        }
        if let Some(n) = notify {
            cmd.env("NOTIFY_SOCKET", n);
        }
        if let Some(u) = usec {
            cmd.env("WATCHDOG_USEC", u.to_string());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start p1lb run");
        Daemon { child, addr, log }
    }

    /// Started with a 2 s watchdog and the socket `sock`, once it said READY=1.
    fn ready(dir: &Path, sock: &NotifySocket) -> Daemon {
        let d = Daemon::start(
            dir,
            Some(&sock.name),
            Some(2_000_000),
            WatchdogPid::Daemon,
            free_port(),
        );
        sock.wait_for("READY=1", Duration::from_secs(15), &d);
        d
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until something accepts on the Modbus TCP port.
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!("p1lb exited ({s}):\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "p1lb does not listen:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Its exit status within `timeout`, or a panic.
    fn exit_within(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "p1lb still running after {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Modbus TCP request written by hand: FC 03, holding register 1090 (the server
/// address), unit 10; the connection must be accepted at once (no retry) and the reply
/// come within 2 s. Returns the register's value.
fn read_server_address(addr: SocketAddr) -> u16 {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("Modbus TCP {addr} does not accept: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // MBAP: transaction 0x4242, protocol 0, length 6, unit 10; PDU: 03, 1090, 1 register.
    let [hi, lo] = 1090u16.to_be_bytes();
    s.write_all(&[0x42, 0x42, 0, 0, 0, 6, 10, 3, hi, lo, 0, 1])
        .unwrap();
    let mut reply = [0u8; 11];
    s.read_exact(&mut reply)
        .unwrap_or_else(|e| panic!("no Modbus reply from {addr}: {e}"));
    assert_eq!(
        reply[..9],
        [0x42, 0x42, 0, 0, 0, 5, 10, 3, 2],
        "reply {reply:02x?}"
    );
    u16::from_be_bytes([reply[9], reply[10]])
}

/// The times of the `WATCHDOG=1` messages.
fn watchdog_times(msgs: &[(Instant, String)]) -> Vec<Instant> {
    msgs.iter()
        .filter(|(_, m)| has_line(m, "WATCHDOG=1"))
        .map(|&(t, _)| t)
        .collect()
}

#[test]
fn ready_comes_once_modbus_tcp_answers_and_the_balancer_has_ticked() {
    let dir = temp_dir("ready");
    let sock = NotifySocket::path(&dir);
    let d = Daemon::start(
        &dir,
        Some(&sock.name),
        Some(2_000_000),
        WatchdogPid::Daemon,
        free_port(),
    );
    let before = sock.wait_for("READY=1", Duration::from_secs(15), &d);
    // At READY=1, at once: the server accepts and answers a real read.
    assert_eq!(read_server_address(d.addr), 10);
    // The control task ran before: its status and the first feed came first, in order.
    let early = texts(&before);
    let status = early
        .iter()
        .position(|m| m.starts_with("STATUS=balancer "))
        .unwrap_or_else(|| panic!("no balancer status before READY=1: {early:?}"));
    let fed = early
        .iter()
        .position(|m| *m == "WATCHDOG=1")
        .unwrap_or_else(|| panic!("no WATCHDOG=1 before READY=1: {early:?}"));
    assert!(status < fed && fed < early.len() - 1, "{early:?}");
    assert_eq!(*early.last().unwrap(), "READY=1");
    // READY=1 once; statuses only on change (never the same twice in a row), a few.
    let later = sock.collect_until(Instant::now() + Duration::from_secs(4));
    let all: Vec<&str> = early.into_iter().chain(texts(&later)).collect();
    assert_eq!(all.iter().filter(|m| has_line(m, "READY=1")).count(), 1);
    let statuses: Vec<&str> = all
        .iter()
        .filter_map(|m| m.strip_prefix("STATUS="))
        .collect();
    assert!(
        statuses.windows(2).all(|w| w[0] != w[1]),
        "repeated status: {statuses:?}"
    );
    assert!(statuses.len() <= 4, "statuses every tick? {statuses:?}");
    assert!(
        statuses.iter().any(|s| s.contains("meter data fresh")),
        "the simulated meter's first telegram: {statuses:?}"
    );
    let log = d.log_text();
    assert!(log.contains("systemd: READY=1"), "{log}");
    assert!(log.contains("watchdog: WATCHDOG=1 every 1000 ms"), "{log}");
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_start_that_fails_never_says_ready() {
    let dir = temp_dir("fails");
    let sock = NotifySocket::path(&dir);
    // The Modbus TCP port is taken: the daemon must exit non-zero without READY=1.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut d = Daemon::start(
        &dir,
        Some(&sock.name),
        Some(2_000_000),
        WatchdogPid::Daemon,
        port,
    );
    let status = d.exit_within(Duration::from_secs(15));
    assert!(!status.success(), "{status}\n{}", d.log_text());
    let got = sock.collect_until(Instant::now() + Duration::from_millis(200));
    assert!(
        !got.iter().any(|(_, m)| has_line(m, "READY=1")),
        "{:?}\n{}",
        texts(&got),
        d.log_text()
    );
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Feeds of a daemon with `$WATCHDOG_USEC` = `usec` over `window` after READY=1.
struct Feeds {
    usec: u64,
    times: Vec<Instant>,
}

#[test]
fn watchdog_is_fed_at_half_of_watchdog_usec() {
    // 1 s: faster than the 1 s control tick (the loop wakes for it); 2 s: as often as
    // the tick; 5 s: slower than the tick (not once per tick). In parallel.
    let window = Duration::from_secs(6);
    let runs: Vec<_> = [1_000_000u64, 2_000_000, 5_000_000]
        .into_iter()
        .map(|usec| {
            std::thread::spawn(move || {
                let dir = temp_dir(&format!("feed-{usec}"));
                let sock = NotifySocket::path(&dir);
                let d = Daemon::start(
                    &dir,
                    Some(&sock.name),
                    Some(usec),
                    WatchdogPid::Daemon,
                    free_port(),
                );
                sock.wait_for("READY=1", Duration::from_secs(15), &d);
                let msgs = sock.collect_until(Instant::now() + window);
                drop(d);
                let _ = std::fs::remove_dir_all(&dir);
                Feeds {
                    usec,
                    times: watchdog_times(&msgs),
                }
            })
        })
        .collect();
    for run in runs {
        let Feeds { usec, times } = run.join().expect("a run");
        let every = Duration::from_micros(usec / 2);
        let expected = window.as_secs_f64() / every.as_secs_f64();
        let n = times.len() as f64;
        assert!(
            n >= (expected - 1.0).floor() && n <= expected + 1.0,
            "WATCHDOG_USEC={usec}: {n} feeds in {window:?}, expected about {expected}"
        );
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        // Never as late as the timeout; on average the interval asked for.
        for g in &gaps {
            assert!(
                g.as_micros() < u128::from(usec) * 9 / 10,
                "WATCHDOG_USEC={usec}: a gap of {g:?} ({gaps:?})"
            );
        }
        let mean = gaps.iter().sum::<Duration>() / u32::try_from(gaps.len()).unwrap();
        assert!(
            mean > every.mul_f64(0.8) && mean < every.mul_f64(1.2),
            "WATCHDOG_USEC={usec}: mean gap {mean:?}, asked {every:?} ({gaps:?})"
        );
    }
}

#[test]
fn no_watchdog_for_another_process_and_none_without_watchdog_usec() {
    let dir = temp_dir("other-pid");
    let other = NotifySocket::path(&dir);
    let dir2 = temp_dir("no-usec");
    let none = NotifySocket::path(&dir2);
    // WATCHDOG_PID names this test process, not the daemon.
    let a = Daemon::start(
        &dir,
        Some(&other.name),
        Some(1_000_000),
        WatchdogPid::Other(std::process::id()),
        free_port(),
    );
    let b = Daemon::start(
        &dir2,
        Some(&none.name),
        None,
        WatchdogPid::Unset,
        free_port(),
    );
    for (sock, d) in [(&other, &a), (&none, &b)] {
        let mut got = sock.wait_for("READY=1", Duration::from_secs(15), d);
        assert_eq!(read_server_address(d.addr), 10);
        got.extend(sock.collect_until(Instant::now() + Duration::from_secs(3)));
        assert!(
            watchdog_times(&got).is_empty(),
            "{:?}\n{}",
            texts(&got),
            d.log_text()
        );
    }
    let log = a.log_text();
    assert!(log.contains("not fed"), "{log}");
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[test]
fn stopping_on_sigterm_then_a_clean_exit() {
    let dir = temp_dir("stop");
    let sock = NotifySocket::path(&dir);
    let mut d = Daemon::ready(&dir, &sock);
    d.sigterm();
    let got = sock.wait_for("STOPPING=1", Duration::from_secs(5), &d);
    let last = &got.last().unwrap().1;
    assert!(has_line(last, "STATUS=stopping (SIGTERM)"), "{last:?}");
    let status = d.exit_within(Duration::from_secs(5));
    assert!(status.success(), "{status}\n{}", d.log_text());
    // Nothing after STOPPING=1.
    let after = sock.collect_until(Instant::now() + Duration::from_millis(300));
    assert!(after.is_empty(), "{:?}", texts(&after));
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_abstract_socket_name_works_too() {
    let dir = temp_dir("abstract");
    let sock = NotifySocket::abstract_name("abstract");
    assert!(sock.name.starts_with('@'));
    let d = Daemon::ready(&dir, &sock);
    assert_eq!(read_server_address(d.addr), 10);
    sock.wait_for("WATCHDOG=1", Duration::from_secs(2), &d);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_notify_socket_nothing_changes_and_nothing_is_logged() {
    let dir = temp_dir("none");
    // Leftover watchdog variables without a socket: ignored, silently.
    let mut d = Daemon::start(
        &dir,
        None,
        Some(1_000_000),
        WatchdogPid::Daemon,
        free_port(),
    );
    d.wait_listening();
    assert_eq!(read_server_address(d.addr), 10);
    std::thread::sleep(Duration::from_secs(2));
    d.sigterm();
    let status = d.exit_within(Duration::from_secs(5));
    assert!(status.success(), "{status}");
    let log = d.log_text();
    assert!(log.contains("SIGTERM: stopping"), "{log}");
    for bad in ["systemd", "NOTIFY", "WATCHDOG", "ERROR"] {
        assert!(!log.contains(bad), "{bad} in the log:\n{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_socket_nobody_listens_on_is_one_warning_and_the_daemon_serves_on() {
    let dir = temp_dir("gone");
    let gone = dir.join("nobody-listens.sock");
    // Feeds every 500 ms, each one failing.
    let mut d = Daemon::start(
        &dir,
        Some(gone.to_str().unwrap()),
        Some(1_000_000),
        WatchdogPid::Daemon,
        free_port(),
    );
    d.wait_listening();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(read_server_address(d.addr), 10);
    assert!(d.child.try_wait().unwrap().is_none(), "{}", d.log_text());
    d.sigterm();
    let status = d.exit_within(Duration::from_secs(5));
    assert!(status.success(), "{status}");
    let log = d.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("systemd: cannot notify"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("WARN"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `systemctl status` tells when the limit cannot reach the charger: the RS485 port
/// (master role) is not open.
#[test]
fn the_status_line_says_when_the_rs485_port_is_not_open() {
    let dir = temp_dir("status-rs485");
    let sock = NotifySocket::path(&dir);
    let missing = dir.join("no-such-adapter");
    let d = Daemon::start_rs485(
        &dir,
        Some(&sock.name),
        None,
        WatchdogPid::Unset,
        free_port(),
        &[
            "--rs485",
            missing.to_str().expect("a UTF-8 path"),
            "--rs485-role",
            "master",
        ],
    );
    let mut got = sock.wait_for("READY=1", Duration::from_secs(15), &d);
    got.extend(sock.collect_until(Instant::now() + Duration::from_secs(3)));
    let statuses: Vec<&str> = texts(&got)
        .into_iter()
        .filter(|t| t.starts_with("STATUS="))
        .collect();
    assert!(
        statuses
            .last()
            .is_some_and(|s| s.ends_with("; RS485 port not open")),
        "{statuses:?}\n{}",
        d.log_text()
    );
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
