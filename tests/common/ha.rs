//! Home Assistant for the tests: the virtual environment that
//! `tests/home_assistant/setup-venv` makes (Home Assistant 2024.3.3, pinned), its REST
//! API through `tests/home_assistant/ha_driver.py`, and waiting for its states. Shared
//! by `tests/home_assistant_real.rs` (the Modbus package) and
//! `tests/home_assistant_mqtt.rs` (MQTT discovery).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The Home Assistant release in `tests/home_assistant/requirements.txt`.
pub const HA_VERSION: &str = "2024.3.3";

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn driver() -> PathBuf {
    root().join("tests/home_assistant/ha_driver.py")
}

/// A loud skip, or a panic under CI.
pub fn skip(why: &str) {
    let msg = "Home Assistant is not available: SKIPPING this test";
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{msg} — not allowed under CI\n{why}");
    }
    eprintln!("{why}\n\n!!!!!!!! {msg} !!!!!!!!\n");
}

/// The virtual environment with Home Assistant, made once per test run (both tests
/// wait for it), or `None` after a loud skip.
pub fn venv() -> Option<&'static Path> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let made = VENV.get_or_init(|| {
        let venv = std::env::var_os("P1LB_HA_VENV").map_or_else(
            || Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ha-venv-{HA_VERSION}")),
            PathBuf::from,
        );
        let t0 = Instant::now();
        let out = Command::new("bash")
            .arg(root().join("tests/home_assistant/setup-venv"))
            .arg(&venv)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => {
                eprintln!(
                    "Home Assistant venv {} ready in {:.1} s\n{}",
                    venv.display(),
                    t0.elapsed().as_secs_f64(),
                    String::from_utf8_lossy(&out.stderr)
                );
                Ok(venv)
            }
            Ok(out) => Err(format!(
                "tests/home_assistant/setup-venv {} failed ({}): {}{}",
                venv.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) => Err(format!("bash does not run: {e}")),
        }
    });
    match made {
        Ok(v) => Some(v),
        Err(why) => {
            skip(why);
            None
        }
    }
}

pub fn python(venv: &Path) -> PathBuf {
    venv.join("bin/python")
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The Home Assistant REST API at `url` with a long-lived `token`, through the driver
/// (Python's urllib): the status code and the JSON body.
pub struct Api {
    /// The venv (its python runs the driver).
    pub venv: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// A long-lived access token.
    pub token: String,
}

impl Api {
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut cmd = Command::new(python(&self.venv));
        cmd.arg(driver())
            .args(["api", &self.url, &self.token, method, path]);
        if let Some(b) = body {
            cmd.arg(b.to_string());
        }
        let out = super::output_within(&mut cmd, Duration::from_secs(60));
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        let (status, body) = s.split_once('\n').unwrap_or((s.as_str(), ""));
        let status = status.trim().parse().unwrap_or(0);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Every entity's state object, by entity id (empty when the API does not answer).
    pub fn states(&self) -> serde_json::Map<String, Value> {
        match self.call("GET", "/api/states", None) {
            (200, Value::Array(all)) => all
                .into_iter()
                .filter_map(|s| Some((s["entity_id"].as_str()?.to_owned(), s)))
                .collect(),
            _ => serde_json::Map::new(),
        }
    }

    pub fn service(&self, domain: &str, service: &str, data: Value) {
        let path = format!("/api/services/{domain}/{service}");
        let (status, body) = self.call("POST", &path, Some(&data));
        assert_eq!(status, 200, "POST {path} {data}: {body}");
    }
}

pub fn number(states: &serde_json::Map<String, Value>, entity: &str) -> Option<f64> {
    states.get(entity)?["state"].as_str()?.parse().ok()
}

/// Waits up to `timeout` until `ok` holds for the states; panics with `what`, the
/// last states seen and Home Assistant's log otherwise.
pub fn wait_states(
    api: &Api,
    log: &Path,
    timeout: Duration,
    what: &str,
    ok: impl Fn(&serde_json::Map<String, Value>) -> bool,
) -> serde_json::Map<String, Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let states = api.states();
        if ok(&states) {
            return states;
        }
        if Instant::now() >= deadline {
            let p1lb: Vec<String> = states
                .iter()
                .filter(|(k, _)| k.contains("p1lb"))
                .map(|(k, v)| format!("{k} = {}", v["state"]))
                .collect();
            panic!(
                "{what}: not within {timeout:?}\nstates: {p1lb:#?}\nHome Assistant's log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A running `hass` on a configuration folder (killed on drop) and its REST API.
pub struct Hass {
    _child: super::Guard,
    /// The REST API, with an administrator's long-lived token.
    pub api: Api,
    /// Its log (`home-assistant.log` in the configuration folder).
    pub log: PathBuf,
}

impl Hass {
    /// Makes a long-lived token in `dir` (before the first start), starts `hass -c dir`
    /// (whose `configuration.yaml` serves `http` on `http_port`) and waits up to 180 s
    /// until its API answers; panics with its log otherwise.
    pub fn start(venv: &Path, dir: &Path, http_port: u16) -> Hass {
        let out = super::output_within(
            Command::new(python(venv))
                .arg(driver())
                .arg("token")
                .arg(dir),
            Duration::from_secs(120),
        );
        assert!(out.status.success(), "token: {}", text(&out));
        let api = Api {
            venv: venv.to_path_buf(),
            url: format!("http://127.0.0.1:{http_port}"),
            token: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        };
        let log = dir.join("home-assistant.log");
        let t0 = Instant::now();
        let child = Command::new(venv.join("bin/hass"))
            .arg("-c")
            .arg(dir)
            .arg("--skip-pip")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("hass.stderr")).expect("stderr file"))
            .spawn()
            .expect("hass starts");
        let mut child = super::Guard(child);
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let (200, v) = api.call("GET", "/api/", None) {
                assert_eq!(v["message"], "API running.");
                break;
            }
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!(
                    "hass exited ({status}):\n{}\n{}",
                    std::fs::read_to_string(dir.join("hass.stderr")).unwrap_or_default(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "Home Assistant's API does not answer:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("hass: API up after {:.1} s", t0.elapsed().as_secs_f64());
        Hass {
            _child: child,
            api,
            log,
        }
    }
}
