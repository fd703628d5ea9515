//! A real MQTT broker for the tests: Debian's Mosquitto on a free loopback port with a
//! generated configuration (anonymous, no persistence), and `mosquitto_sub` /
//! `mosquitto_pub` as outside clients.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Guard, free_port, have, spawn_listening};

/// Mosquitto and its clients, or a loud skip (a failure under CI).
pub fn have_mosquitto() -> bool {
    have(
        "sh",
        &[
            "-c",
            "{ test -x /usr/sbin/mosquitto || command -v mosquitto; } && \
             command -v mosquitto_pub && command -v mosquitto_sub",
        ],
        "apt-get install -y mosquitto mosquitto-clients",
    )
}

fn mosquitto() -> &'static str {
    if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

/// A running Mosquitto, killed on drop; [`Broker::restart`] stops it and starts a new
/// one on the same port (retained messages are gone: no persistence).
pub struct Broker {
    child: Option<Guard>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    starts: u32,
    /// TLS: the CA certificate that signed the broker's (`mqtts://`).
    pub ca: Option<PathBuf>,
}

impl Broker {
    /// A broker on a free loopback port, its configuration and log in `dir`.
    pub fn start(dir: &Path) -> Broker {
        let mut b = Broker {
            child: None,
            port: free_port(),
            dir: dir.to_path_buf(),
            starts: 0,
            ca: None,
        };
        b.spawn();
        b
    }

    /// A broker speaking TLS only, with a certificate for `localhost` signed by a
    /// test CA made with openssl ([`Broker::ca`]); `None` (after a loud skip) without
    /// openssl.
    pub fn start_tls(dir: &Path) -> Option<Broker> {
        if !have("openssl", &["version"], "apt-get install -y openssl") {
            return None;
        }
        let run = |args: &[&str]| {
            let out = super::output_within(
                Command::new("openssl").args(args).current_dir(dir),
                Duration::from_secs(60),
            );
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=p1lb test CA",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        )
        .expect("ext.cnf");
        run(&[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        // Mosquitto started as root reads its files as the `mosquitto` user.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join("srv.key"), std::fs::Permissions::from_mode(0o644))
                .expect("chmod");
        }
        let mut b = Broker {
            child: None,
            port: free_port(),
            dir: dir.to_path_buf(),
            starts: 0,
            ca: Some(dir.join("ca.pem")),
        };
        b.spawn();
        Some(b)
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let conf = self.dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            match &self.ca {
                None => format!(
                    "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n",
                    self.port
                ),
                Some(_) => format!(
                    "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                     certfile {}\nkeyfile {}\n",
                    self.port,
                    self.dir.join("srv.pem").display(),
                    self.dir.join("srv.key").display()
                ),
            },
        )
        .expect("mosquitto.conf");
        let mut cmd = Command::new(mosquitto());
        cmd.arg("-c").arg(&conf).arg("-v");
        let log = self.dir.join(format!("mosquitto-{}.log", self.starts));
        let child = spawn_listening(
            cmd,
            ([127, 0, 0, 1], self.port).into(),
            &log,
            Duration::from_secs(10),
        );
        self.child = Some(Guard(child));
    }

    /// Stops the broker (the daemon sees its connection drop).
    pub fn stop(&mut self) {
        self.child = None;
    }

    /// Stops it (if running) and starts a fresh one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        match self.ca {
            None => format!("mqtt://127.0.0.1:{}", self.port),
            Some(_) => format!("mqtts://localhost:{}", self.port),
        }
    }

    /// Publishes `payload` on `topic` with mosquitto_pub (`retain`: `-r`); the payload
    /// goes through stdin, byte for byte.
    pub fn publish(&self, topic: &str, payload: &[u8], retain: bool) {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", topic]);
        if let Some(ca) = &self.ca {
            cmd.args(["-h", "localhost", "--cafile"]).arg(ca);
        }
        // `-s` refuses an empty stdin: `-n` sends the empty payload.
        cmd.arg(if payload.is_empty() { "-n" } else { "-s" });
        if retain {
            cmd.arg("-r");
        }
        let out = super::output_fed_within(&mut cmd, payload, Duration::from_secs(30));
        assert!(
            out.status.success(),
            "mosquitto_pub {topic}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// One message seen by [`Sub`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Retained (delivered from the broker's store at subscription).
    pub retained: bool,
    /// The topic.
    pub topic: String,
    /// The payload (text).
    pub payload: String,
}

/// `mosquitto_sub -t '#'` collecting every message; killed on drop.
pub struct Sub {
    _child: Guard,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Sub {
    /// Subscribes to everything on `broker` (and waits until it is connected).
    pub fn all(broker: &Broker) -> Sub {
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-t",
            "#",
            "-F",
            "%r %t %p",
        ]);
        if let Some(ca) = &broker.ca {
            cmd.args(["-h", "localhost", "--cafile"]).arg(ca);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub");
        let out = child.stdout.take().expect("stdout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut out = BufReader::new(out);
            let mut bytes = Vec::new();
            loop {
                bytes.clear();
                match out.read_until(b'\n', &mut bytes) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // Payloads need not be UTF-8 (the tests send bad ones).
                let line = String::from_utf8_lossy(&bytes);
                let line = line.trim_end_matches('\n');
                let mut parts = line.splitn(3, ' ');
                let retained = parts.next() == Some("1");
                let topic = parts.next().unwrap_or_default().to_owned();
                let payload = parts.next().unwrap_or_default().to_owned();
                sink.lock().unwrap().push(Seen {
                    retained,
                    topic,
                    payload,
                });
            }
        });
        // mosquitto_sub has subscribed once the broker shows it (give it a moment).
        std::thread::sleep(Duration::from_millis(300));
        Sub {
            _child: Guard(child),
            seen,
        }
    }

    /// Everything seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many messages so far (to wait for newer ones with [`Sub::wait_after`]).
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The first message after the first `after` ones that satisfies `f`, within
    /// `timeout`; panics with what was seen on `topic_hint` otherwise.
    pub fn wait_after(
        &self,
        after: usize,
        timeout: Duration,
        what: &str,
        f: impl Fn(&Seen) -> bool,
    ) -> Seen {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.seen().iter().skip(after).find(|s| f(s)) {
                return s.clone();
            }
            if Instant::now() >= deadline {
                let seen = self.seen();
                let tail: Vec<String> = seen
                    .iter()
                    .skip(after)
                    .filter(|s| !s.topic.starts_with("homeassistant/"))
                    .rev()
                    .take(40)
                    .map(|s| format!("{} {} {}", s.retained, s.topic, s.payload))
                    .collect();
                panic!("no {what} within {timeout:?}; latest:\n{}", tail.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The message on `topic` with `payload`, after the first `after`.
    pub fn wait_for(&self, after: usize, topic: &str, payload: &str, timeout: Duration) -> Seen {
        self.wait_after(after, timeout, &format!("{topic} = {payload}"), |s| {
            s.topic == topic && s.payload == payload
        })
    }
}
