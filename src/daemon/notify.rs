//! systemd's service notifications (`sd_notify(3)`), without libsystemd: each message is
//! one datagram of `KEY=VALUE` lines to the unix socket named by `$NOTIFY_SOCKET` (a
//! path, or an abstract name written with a leading `@`).
//!
//! - `READY=1`: sent by [`crate::daemon::run`] once the daemon serves (see there for exactly
//!   when); `STOPPING=1` on SIGTERM or Ctrl-C; `STATUS=…` from the control task, only
//!   when the text changes (balancer state, meter data fresh or stale).
//! - `WATCHDOG=1`: sent by the control task's own loop ([`super::control`]) every
//!   [`Notifier::watchdog_interval`], half of `$WATCHDOG_USEC` as systemd asks, and
//!   only when `$WATCHDOG_PID` is unset or is this process; a hung control loop
//!   stops feeding it and systemd restarts the service (`WatchdogSec=` in the unit).
//! - Without `$NOTIFY_SOCKET` (run by hand, tests) nothing is sent and nothing logged.
//!   A socket that cannot be used is logged once as a warning and never stops the daemon.
//! - Linux only (systemd is): elsewhere a set `$NOTIFY_SOCKET` is that one warning.
//!
//! The socket is non-blocking: a full queue at systemd drops a watchdog feed or a
//! status (and warns, once until a send succeeds again) rather than stalling the
//! runtime; `READY=1` and `STOPPING=1` are tried again for up to [`RETRY_FOR`].
//!
//! Why not the `sd-notify` crate (0.5.0, the latest; checked against its source and
//! with a probe): its `notify` cannot do two things this daemon needs, and those two are
//! the whole of the sending.
//! - Abstract sockets: it hands `$NOTIFY_SOCKET` to `UnixDatagram::connect` as a path,
//!   so `@name` is looked up as a file called `@name` (`NotFound`); `sd_notify(3)`
//!   defines a leading `@` as an abstract name (older systemd handed out
//!   `@/org/freedesktop/systemd1/notify`), and `tests/systemd_notify.rs` checks them.
//! - Not blocking: it sends on a fresh blocking socket, with no timeout. With systemd's
//!   queue full (`net.unix.max_dgram_qlen`, 10 by default: the probe's eleventh
//!   `WATCHDOG=1` blocked until killed) the send waits for as long as systemd does not
//!   read, and since the daemon runs on one thread that would stop the balancer, which
//!   must keep the fuse safe whatever systemd does. Here a feed is dropped (and warned),
//!   and `READY=1`/`STOPPING=1` are retried for [`RETRY_FOR`] without holding the thread.
//!
//! Its `watchdog_enabled` does not fit either: it takes `WATCHDOG_USEC=0` (a zero
//! feeding interval) and silently ignores values that do not parse, where
//! [`watchdog_interval`] refuses them with a warning. What it would add, the
//! `KEY=VALUE` text of four messages, is not worth a dependency on Linux only.

use std::ffi::OsStr;
use std::io;
#[cfg(target_os = "linux")]
use std::os::linux::net::SocketAddrExt;
#[cfg(target_os = "linux")]
use std::os::unix::ffi::OsStrExt;
#[cfg(target_os = "linux")]
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long [`Notifier::send_surely`] tries while systemd's queue is full.
pub const RETRY_FOR: Duration = Duration::from_secs(2);

/// Sends notifications to systemd, or nothing when not started by it.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
    warned: AtomicBool,
    status: Mutex<String>,
}

/// Where notifications go: an unbound non-blocking datagram socket and the address of
/// `$NOTIFY_SOCKET`.
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
    name: String,
}

#[cfg(target_os = "linux")]
impl Target {
    /// The socket `name` (`$NOTIFY_SOCKET`) names, `shown` in logs.
    fn open(name: &OsStr, shown: String) -> io::Result<Target> {
        let addr = socket_addr(name)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Target {
            socket,
            addr,
            name: shown,
        })
    }

    /// One datagram, without waiting (`WouldBlock` on a full queue).
    fn send(&self, message: &str) -> io::Result<usize> {
        self.socket.send_to_addr(message.as_bytes(), &self.addr)
    }

    /// `$NOTIFY_SOCKET` as shown in logs.
    fn name(&self) -> &str {
        &self.name
    }
}

/// No notification target outside Linux: systemd (and abstract sockets) are Linux only.
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
enum Target {}

#[cfg(not(target_os = "linux"))]
impl Target {
    fn open(_name: &OsStr, _shown: String) -> io::Result<Target> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "systemd notifications are Linux only",
        ))
    }

    fn send(&self, _message: &str) -> io::Result<usize> {
        match *self {}
    }

    fn name(&self) -> &str {
        match *self {}
    }
}

/// `$NOTIFY_SOCKET`'s value as a socket address: `@name` is the abstract name `name`,
/// anything else must be an absolute path.
#[cfg(target_os = "linux")]
pub fn socket_addr(name: &OsStr) -> io::Result<SocketAddr> {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
        Some(b'/') => SocketAddr::from_pathname(name),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither an absolute path nor an abstract name (@…)",
        )),
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when it is set and
/// `$WATCHDOG_PID` is unset or equals `our_pid`. `Err` for a value that does not parse
/// (or 0); `Ok(None)` when no watchdog is asked of this process.
pub fn watchdog_interval(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    our_pid: u32,
) -> Result<Option<Duration>, String> {
    let Some(usec) = usec else {
        return Ok(None);
    };
    let usec = usec
        .to_str()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&u| u > 0)
        .ok_or_else(|| {
            format!(
                "WATCHDOG_USEC={} is not a positive number",
                usec.to_string_lossy()
            )
        })?;
    if let Some(pid) = pid {
        let pid = pid
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(|| format!("WATCHDOG_PID={} is not a process id", pid.to_string_lossy()))?;
        if pid != our_pid {
            return Ok(None);
        }
    }
    Ok(Some(Duration::from_micros(usec / 2)))
}

impl Notifier {
    /// Sends nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
            warned: AtomicBool::new(false),
            status: Mutex::new(String::new()),
        }
    }

    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`. Logs one line when
    /// they are set (where to, which watchdog), one warning when they are unusable, and
    /// nothing when `$NOTIFY_SOCKET` is unset.
    pub fn from_env() -> Notifier {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET").filter(|n| !n.is_empty()) else {
            return Notifier::disabled();
        };
        let mut n = Notifier::disabled();
        let shown = name.to_string_lossy().into_owned();
        match Target::open(&name, shown.clone()) {
            Ok(t) => n.target = Some(t),
            Err(e) => {
                n.warn(format_args!(
                    "systemd: NOTIFY_SOCKET={shown} cannot be used ({e}); no notifications"
                ));
                return n;
            }
        }
        let usec = std::env::var_os("WATCHDOG_USEC");
        let pid = std::env::var_os("WATCHDOG_PID");
        match watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id()) {
            Ok(Some(every)) => {
                n.watchdog = Some(every);
                tracing::info!(
                    "systemd: notifying {shown}; watchdog: WATCHDOG=1 every {} ms from the \
                     control loop",
                    every.as_millis()
                );
            }
            Ok(None) if usec.is_some() => {
                tracing::info!(
                    "systemd: notifying {shown}; the watchdog is for process {} (WATCHDOG_PID), \
                     not this one: not fed",
                    pid.unwrap_or_default().to_string_lossy()
                );
            }
            Ok(None) => tracing::info!("systemd: notifying {shown}; no watchdog"),
            Err(e) => {
                tracing::warn!("systemd: notifying {shown}; {e}: no watchdog");
            }
        }
        n
    }

    /// True when there is a socket to notify.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog's feeding interval (half of `$WATCHDOG_USEC`), if it is ours to feed.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `message` (newline-separated `KEY=VALUE` lines) as one datagram. False
    /// when it was not sent: nothing to notify, or an error (logged once until a send
    /// succeeds again).
    pub fn send(&self, message: &str) -> bool {
        let Some(t) = &self.target else {
            return false;
        };
        self.sent(t, message, t.send(message))
    }

    /// Sends `message`, trying again for up to [`RETRY_FOR`] while systemd's queue is
    /// full: a lost `READY=1` would have systemd kill the daemon at its start timeout.
    pub async fn send_surely(&self, message: &str) -> bool {
        let Some(t) = &self.target else {
            return false;
        };
        let end = tokio::time::Instant::now() + RETRY_FOR;
        loop {
            match t.send(message) {
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        && tokio::time::Instant::now() < end =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                result => return self.sent(t, message, result),
            }
        }
    }

    /// The outcome of sending `message` to `t`, logged.
    fn sent(&self, t: &Target, message: &str, result: io::Result<usize>) -> bool {
        match result {
            Ok(n) if n == message.len() => {
                if self.warned.swap(false, Ordering::Relaxed) {
                    tracing::info!("systemd: notifications reach {} again", t.name());
                }
                true
            }
            Ok(n) => {
                self.warn(format_args!(
                    "systemd: notification to {} cut short ({n} of {} bytes); going on",
                    t.name(),
                    message.len()
                ));
                false
            }
            Err(e) => {
                self.warn(format_args!(
                    "systemd: cannot notify {} ({e}); going on without (logged once until \
                     it works again)",
                    t.name()
                ));
                false
            }
        }
    }

    /// `READY=1`: the daemon serves.
    pub async fn ready(&self) -> bool {
        self.send_surely("READY=1").await
    }

    /// `STOPPING=1`, with `why` as the status.
    pub async fn stopping(&self, why: &str) -> bool {
        self.send_surely(&format!("STOPPING=1\nSTATUS=stopping ({why})"))
            .await
    }

    /// `WATCHDOG=1`: the control loop is alive.
    pub fn watchdog(&self) -> bool {
        self.send("WATCHDOG=1")
    }

    /// `STATUS=text`, only when `text` differs from the last status sent.
    pub fn status(&self, text: &str) {
        if self.target.is_none() {
            return;
        }
        let mut last = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if *last != text {
            // Not retried when it fails: the next change sends again.
            self.send(&format!("STATUS={text}"));
            text.clone_into(&mut last);
        }
    }

    fn warn(&self, message: std::fmt::Arguments<'_>) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!("{message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn socket_names_paths_and_abstract_names() {
        let a = socket_addr(os("/run/systemd/notify")).unwrap();
        assert_eq!(
            a.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let a = socket_addr(os("@/org/freedesktop/systemd1/notify/1")).unwrap();
        assert_eq!(
            a.as_abstract_name(),
            Some(&b"/org/freedesktop/systemd1/notify/1"[..])
        );
        for bad in ["", "relative/path", "vsock:2:1234"] {
            assert!(socket_addr(os(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_watchdog_interval_is_half_of_watchdog_usec_for_our_pid_only() {
        let half = Some(Duration::from_millis(1000));
        assert_eq!(watchdog_interval(None, None, 7), Ok(None));
        assert_eq!(watchdog_interval(Some(os("2000000")), None, 7), Ok(half));
        assert_eq!(
            watchdog_interval(Some(os("2000000")), Some(os("7")), 7),
            Ok(half)
        );
        assert_eq!(
            watchdog_interval(Some(os("2000000")), Some(os("8")), 7),
            Ok(None)
        );
        assert_eq!(watchdog_interval(None, Some(os("7")), 7), Ok(None));
        for bad in ["", "0", "-1", "2s", "1e6"] {
            assert!(
                watchdog_interval(Some(os(bad)), None, 7).is_err(),
                "{bad:?}"
            );
        }
        assert!(watchdog_interval(Some(os("2000000")), Some(os("x")), 7).is_err());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn messages_reach_the_socket_statuses_only_on_change_errors_are_not_fatal() {
        let dir = std::env::temp_dir().join(format!("p1lb-notify-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_nonblocking(true).unwrap();
        let n = Notifier {
            target: Some(Target {
                socket: UnixDatagram::unbound().unwrap(),
                addr: socket_addr(path.as_os_str()).unwrap(),
                name: "test".into(),
            }),
            ..Notifier::disabled()
        };
        assert!(n.ready().await);
        n.status("a");
        n.status("a");
        n.status("b");
        assert!(n.watchdog());
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(len) = rx.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        assert_eq!(got, ["READY=1", "STATUS=a", "STATUS=b", "WATCHDOG=1"]);
        // The receiver gone: false, once warned, never a panic.
        drop(rx);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!n.watchdog());
        assert!(!n.watchdog());
        assert!(n.warned.load(Ordering::Relaxed));
        // Not under systemd: nothing, silently.
        let off = Notifier::disabled();
        assert!(!off.ready().await && !off.is_enabled());
        assert!(!off.warned.load(Ordering::Relaxed));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn ready_waits_out_a_full_queue_and_a_warning_clears_once_sends_work() {
        let dir = std::env::temp_dir().join(format!("p1lb-notify-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let socket = UnixDatagram::unbound().unwrap();
        socket.set_nonblocking(true).unwrap();
        let n = Notifier {
            target: Some(Target {
                socket,
                addr: socket_addr(path.as_os_str()).unwrap(),
                name: "test".into(),
            }),
            ..Notifier::disabled()
        };
        // Fill systemd's queue: nobody reads.
        let mut queued = 0;
        while n.watchdog() {
            queued += 1;
            assert!(queued < 100_000, "the queue never fills");
        }
        assert!(n.warned.load(Ordering::Relaxed), "a full queue warns");
        // systemd reads again 200 ms later: READY=1 still gets through.
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let mut buf = [0u8; 64];
            let mut got = Vec::new();
            rx.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            while let Ok(len) = rx.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
            }
            got
        });
        assert!(n.ready().await, "READY=1 retried until the queue has room");
        assert!(
            !n.warned.load(Ordering::Relaxed),
            "working again: warns anew"
        );
        let got = reader.join().unwrap();
        assert_eq!(got.len(), queued + 1);
        assert_eq!(got.last().map(String::as_str), Some("READY=1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
