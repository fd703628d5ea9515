//! `p1lb run`: the gateway daemon. Finds and checks the configuration, then wires the
//! tasks of [`crate::daemon`] together on a single-threaded tokio runtime and runs
//! until SIGTERM or Ctrl-C. Every task runs for as long as the daemon: when one ends or
//! panics (or the Modbus TCP port is taken) the daemon logs which, says so in
//! `STATUS=` and exits non-zero, and systemd restarts it (`Restart=on-failure`) — the
//! control loop never goes on feeding the watchdog with a dead part beside it.
//!
//! Which file: `--config FILE`; else `--state-dir DIR`/p1lb.toml (created from the
//! commented example when missing); else `/etc/p1lb/p1lb.toml` when it exists; else
//! nothing is configured and it runs the built-in simulation (P1 source `sim`), with
//! its state in a temporary folder, and says so in its first log line.
//!
//! Under systemd (`Type=notify`, [`crate::daemon::notify`]) it sends `READY=1` once it
//! serves: the configuration is loaded and valid, the Modbus TCP listener (and the
//! `--p1-forward` and HTTP ones) is bound, every task (control, P1, RS485, LED, Modbus TCP server)
//! has been spawned and has run up to its first wait, and the control task has ticked
//! the balancer once (and fed the watchdog once). A client connecting after `READY=1` is
//! answered. It does not wait for the P1 meter or the RS485 port: those are reopened
//! with backoff, and a missing meter is the balancer's fallback, a served state (its
//! `STATUS=` says so). A start that fails (bad file, address taken) exits non-zero
//! before `READY=1`. `STOPPING=1` goes out on SIGTERM or Ctrl-C.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

use crate::daemon::file::{self, FileConfig, Rs485Role};
use crate::daemon::notify::Notifier;
use crate::daemon::p1::Source;
use crate::daemon::shared::Shared;
use crate::daemon::{control, gateway, http, led, modbus_tcp, mqtt, p1, p1_forward, rs485};
use p1lb_sim::charger::TerraSim;

/// The default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/p1lb/p1lb.toml";

/// The file's name in a state folder.
pub const STATE_FILE: &str = "p1lb.toml";

/// `p1lb run`'s flags: they override the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// The configuration file (default /etc/p1lb/p1lb.toml).
    #[arg(long, value_name = "FILE", conflicts_with = "state_dir")]
    pub config: Option<PathBuf>,
    /// A folder holding the configuration (p1lb.toml, created when missing), used when
    /// no --config is given.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// P1 source: a serial device, tcp://HOST:PORT or sim.
    #[arg(long, value_name = "SRC")]
    pub p1: Option<String>,
    /// Modbus TCP server address.
    #[arg(long, value_name = "ADDR:PORT")]
    pub modbus_tcp: Option<SocketAddr>,
    /// RS485 HAT serial device, or sim: a simulated Terra AC with a car on an
    /// in-process bus, driven in the master role (the default without a configuration).
    #[arg(long, value_name = "PATH|sim")]
    pub rs485: Option<String>,
    /// Re-emit the raw P1 stream, byte for byte, to every TCP client of this address
    /// (for Home Assistant's DSMR integration).
    #[arg(long, value_name = "ADDR:PORT")]
    pub p1_forward: Option<SocketAddr>,
    /// Role on the RS485 bus.
    #[arg(long, value_enum, value_name = "ROLE")]
    pub rs485_role: Option<Rs485Role>,
    /// Serve the status page, /api/status and /metrics on this address (turns the
    /// HTTP server on; overrides `[http] listen`).
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<SocketAddr>,
    /// MQTT broker (mqtt://HOST:PORT or mqtts://HOST:PORT): the register map on it, with
    /// Home Assistant discovery; overrides [mqtt] url.
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
}

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The file read and saved to.
    pub path: PathBuf,
    /// Nothing configured: the built-in simulation.
    pub builtin_sim: bool,
    /// The file was created from the example just now.
    pub created: bool,
}

/// Finds the file (creating it in a state folder when needed).
pub fn resolve(args: &RunArgs, default_config: &Path) -> Result<Resolved> {
    if let Some(path) = &args.config {
        if !path.is_file() {
            bail!("--config {}: no such file", path.display());
        }
        return Ok(Resolved {
            path: path.clone(),
            builtin_sim: false,
            created: false,
        });
    }
    let (dir, builtin_sim) = match &args.state_dir {
        Some(dir) => (dir.clone(), false),
        None if default_config.is_file() => {
            return Ok(Resolved {
                path: default_config.to_path_buf(),
                builtin_sim: false,
                created: false,
            });
        }
        None => (std::env::temp_dir().join("p1lb-state"), true),
    };
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(STATE_FILE);
    let created = !path.exists();
    if created {
        file::write_atomic(&path, file::EXAMPLE.as_bytes())
            .with_context(|| format!("creating {}", path.display()))?;
    }
    Ok(Resolved {
        path,
        builtin_sim,
        created,
    })
}

/// The settings in force after the flags.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The file.
    pub resolved: Resolved,
    /// Its contents.
    pub file: FileConfig,
    /// The P1 source.
    pub p1: Source,
    /// `--p1-forward`: where to re-emit the raw P1 bytes.
    pub p1_forward: Option<SocketAddr>,
    /// MQTT (`[mqtt]`, `--mqtt`), when on.
    pub mqtt: Option<mqtt::MqttPlan>,
}

/// Reads the file and applies the flags. Refuses a bad file.
pub fn plan(args: &RunArgs, default_config: &Path) -> Result<Plan> {
    let resolved = resolve(args, default_config)?;
    let mut file = file::load(&resolved.path)?;
    if let Some(addr) = args.modbus_tcp {
        file.modbus_tcp.listen = addr;
    }
    if let Some(path) = &args.rs485 {
        file.rs485.path = path.clone();
    } else if resolved.builtin_sim {
        // The built-in simulation has no RS485 HAT to talk to.
        file.rs485.path = "sim".to_owned();
    }
    if let Some(role) = args.rs485_role {
        file.rs485.role = role;
    }
    if let Some(addr) = args.http {
        file.http.get_or_insert_with(Default::default).listen = addr;
    }
    // Writes on without a password stop the start, with the reason.
    if let Some(http) = &file.http {
        http.password()?;
    }
    let source = match (&args.p1, resolved.builtin_sim) {
        (Some(s), _) => s.clone(),
        (None, true) => "sim".to_owned(),
        (None, false) => file.p1.source.clone(),
    };
    let p1 = Source::parse(&source)?;
    let mqtt = mqtt::plan(
        &file.mqtt,
        args.mqtt.as_deref(),
        file.settings.server_address(),
    )
    .with_context(|| format!("{}", resolved.path.display()))?;
    Ok(Plan {
        resolved,
        file,
        p1,
        p1_forward: args.p1_forward,
        mqtt,
    })
}

/// Logs to stderr (journald under systemd), level from `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Under systemd the journal adds its own timestamps.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!journald);
    let _ = if journald {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}

/// Runs the daemon until SIGTERM or Ctrl-C.
pub fn run(args: &RunArgs) -> Result<()> {
    init_logging();
    let plan = plan(args, Path::new(DEFAULT_CONFIG))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(plan))
}

async fn serve(plan: Plan) -> Result<()> {
    let Plan {
        resolved,
        file,
        p1,
        p1_forward,
        mqtt,
    } = plan;
    let listen = file.modbus_tcp.listen;
    if resolved.builtin_sim {
        tracing::info!(
            "p1lb {}: nothing configured ({DEFAULT_CONFIG} absent): running the built-in \
             simulation; P1 from {p1}, Modbus TCP on {listen}, settings in {}",
            env!("CARGO_PKG_VERSION"),
            resolved.path.display()
        );
    } else {
        tracing::info!(
            "p1lb {}: configuration {}{}; P1 from {p1}, Modbus TCP on {listen}",
            env!("CARGO_PKG_VERSION"),
            resolved.path.display(),
            if resolved.created {
                " (created from the example)"
            } else {
                ""
            }
        );
    }
    // Logs a line when started by systemd, nothing otherwise.
    let notifier = Arc::new(Notifier::from_env());
    let config = file.settings;
    tracing::info!(
        "server address {}, charger maximum {} mA, upper limit {} mA, {} phase(s)",
        config.server_address(),
        config.charger_max_ma(),
        config.upper_ma(),
        config.phases()
    );

    let shared = Arc::new(Shared::new(config, resolved.path.clone()));
    let listener = modbus_tcp::bind(listen).await?;
    tracing::info!(
        "Modbus TCP: listening on {listen}{}",
        if file.modbus_tcp.read_only {
            " (read only: writes answer exception 01)"
        } else {
            ""
        }
    );

    let http_server = match &file.http {
        Some(section) => {
            let listener = http::bind(section.listen).await?;
            let options = http::Options {
                password: section.password()?,
            };
            tracing::info!(
                "HTTP: status page, /api/status and /metrics on http://{}/ ({})",
                section.listen,
                if options.password.is_some() {
                    "writes allowed with the password"
                } else {
                    "read only"
                }
            );
            Some((listener, options))
        }
        None => None,
    };

    let mut tasks = Tasks::default();
    if let Some((listener, options)) = http_server {
        tasks.spawn("HTTP", http::run(shared.clone(), listener, options));
    }
    let (first_tick, ticked) = tokio::sync::oneshot::channel();
    tasks.spawn(
        "control",
        control::run(shared.clone(), notifier.clone(), first_tick),
    );
    let forward = match p1_forward {
        Some(addr) => {
            let listener = p1_forward::bind(addr).await?;
            tracing::info!("P1 forward: re-emitting the raw P1 bytes on {addr}");
            let forward = Arc::new(p1_forward::Forward::new());
            tasks.spawn("P1 forward", p1_forward::run(forward.clone(), listener));
            Some(forward)
        }
        None => None,
    };
    // `--rs485 sim` (and the built-in simulation): a simulated Terra AC on an
    // in-process bus, driven in the master role; the simulated house's car is behind it.
    let sim_charger =
        (file.rs485.path == rs485::SIM_PATH).then(|| Arc::new(Mutex::new(TerraSim::new())));
    tasks.spawn(
        "P1",
        p1::run_forwarding(shared.clone(), p1, forward, sim_charger.clone()),
    );
    let mut gateway_tx = None;
    if let Some(charger) = sim_charger {
        if file.rs485.role != Rs485Role::Master {
            tracing::info!(
                "RS485: the simulated charger is driven in the master role (role {} not used)",
                file.rs485.role.name()
            );
        }
        let (tx, rx) = gateway::channel();
        gateway_tx = Some(tx);
        tasks.spawn(
            "RS485",
            rs485::run_simulated(shared.clone(), charger, Some(rx)),
        );
    } else {
        // The master role is also the Modbus TCP gateway to the bus.
        let gateway_rx = if file.rs485.role == Rs485Role::Master {
            let (tx, rx) = gateway::channel();
            gateway_tx = Some(tx);
            Some(rx)
        } else {
            None
        };
        tasks.spawn(
            "RS485",
            rs485::run(
                shared.clone(),
                file.rs485.path.clone(),
                file.rs485.role,
                file.rs485.kernel_rs485,
                gateway_rx,
            ),
        );
    }
    if file.led.enabled {
        tasks.spawn("LED", led::run(shared.clone(), file.led.bcm_pin));
    }
    if let Some(mqtt) = mqtt {
        tasks.spawn("MQTT", mqtt::run(shared.clone(), mqtt));
    }
    let server = tokio::spawn(modbus_tcp::run(
        shared.clone(),
        listener,
        file.modbus_tcp.read_only,
        gateway_tx,
    ));

    let mut term = sigterm().context("installing the SIGTERM handler")?;
    // Every task spawned above runs up to its first wait (the server accepts, the P1 and
    // RS485 tasks have tried their ports) and the balancer has ticked once before
    // systemd hears that the daemon is up.
    tokio::task::yield_now().await;
    ticked
        .await
        .context("the control task ended before its first tick")?;
    if notifier.ready().await {
        tracing::info!("systemd: READY=1 (serving)");
    }
    let why = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "interrupted",
        r = server => {
            return match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(anyhow::anyhow!("Modbus TCP task: {e}")),
            };
        }
        ended = tasks.first_end() => {
            // Every task runs for as long as the daemon: one that ended leaves a part
            // of it dead while the rest (and the watchdog) would go on. Exit non-zero:
            // systemd restarts the daemon (Restart=on-failure).
            tracing::error!("{ended:#}; exiting so that the service is restarted");
            notifier.status(&format!("{ended}; exiting"));
            tasks.abort_all();
            return Err(ended);
        }
    };
    tracing::info!("{why}: stopping");
    notifier.stopping(why).await;
    tasks.abort_all();
    Ok(())
}

/// SIGTERM (systemd's stop, `kill`).
#[cfg(unix)]
fn sigterm() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
}

/// No SIGTERM outside unix: Ctrl-C stops the daemon there.
#[cfg(not(unix))]
fn sigterm() -> std::io::Result<NoSigterm> {
    Ok(NoSigterm)
}

/// A SIGTERM that never comes (not unix).
#[cfg(not(unix))]
struct NoSigterm;

#[cfg(not(unix))]
impl NoSigterm {
    /// Never returns.
    async fn recv(&mut self) -> Option<()> {
        std::future::pending().await
    }
}

/// The daemon's tasks, each with its name: every one runs for as long as the daemon.
#[derive(Default)]
struct Tasks {
    set: tokio::task::JoinSet<()>,
    names: std::collections::HashMap<tokio::task::Id, &'static str>,
}

impl Tasks {
    fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// Waits until a task ends (returns or panics) and says which and how; never
    /// resolves while every task runs (or when there is none).
    async fn first_end(&mut self) -> anyhow::Error {
        let Some(ended) = self.set.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, how) = match ended {
            Ok((id, ())) => (id, "ended".to_owned()),
            Err(e) if e.is_panic() => (e.id(), "panicked".to_owned()),
            Err(e) => (e.id(), format!("stopped ({e})")),
        };
        let name = self.names.get(&id).copied().unwrap_or("a task");
        anyhow::anyhow!("the {name} task {how}")
    }

    fn abort_all(&mut self) {
        self.set.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_or_panics_is_named() {
        let mut tasks = Tasks::default();
        tasks.spawn("forever", std::future::pending());
        tasks.spawn("P1", async {});
        let e = tasks.first_end().await;
        assert_eq!(e.to_string(), "the P1 task ended");
        tasks.spawn("RS485", async { panic!("boom") });
        let e = tasks.first_end().await;
        assert_eq!(e.to_string(), "the RS485 task panicked");
        // Only the one that runs is left: nothing ends.
        let wait = tokio::time::timeout(std::time::Duration::from_millis(50), tasks.first_end());
        assert!(wait.await.is_err());
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("p1lb-run-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn nothing_configured_runs_the_simulation_in_a_temporary_state_dir() {
        let none = tmp("none").join("p1lb.toml");
        let r = resolve(&RunArgs::default(), &none).unwrap();
        assert!(r.builtin_sim);
        assert!(r.path.starts_with(std::env::temp_dir()));
        let p = plan(&RunArgs::default(), &none).unwrap();
        assert_eq!(p.p1, Source::Sim);
        // The simulated charger on the in-process bus: the whole loop.
        assert_eq!(p.file.rs485.path, rs485::SIM_PATH);
    }

    #[test]
    fn a_state_dir_gets_the_example_and_flags_override_it() {
        let dir = tmp("state");
        let args = RunArgs {
            state_dir: Some(dir.clone()),
            p1: Some("tcp://127.0.0.1:2001".into()),
            modbus_tcp: Some("127.0.0.1:15020".parse().unwrap()),
            rs485_role: Some(Rs485Role::Master),
            ..RunArgs::default()
        };
        let p = plan(&args, Path::new("/nonexistent/p1lb.toml")).unwrap();
        assert!(p.resolved.created && !p.resolved.builtin_sim);
        assert_eq!(
            fs::read_to_string(dir.join(STATE_FILE)).unwrap(),
            file::EXAMPLE
        );
        assert_eq!(p.p1, Source::Tcp("127.0.0.1:2001".into()));
        assert_eq!(p.file.modbus_tcp.listen.port(), 15020);
        assert_eq!(p.file.rs485.role, Rs485Role::Master);
        assert_eq!(p.file.http, None, "no [http], no --http: off");
        let with_http = RunArgs {
            state_dir: Some(dir.clone()),
            http: Some("127.0.0.1:18080".parse().unwrap()),
            ..RunArgs::default()
        };
        let p = plan(&with_http, Path::new("/nonexistent")).unwrap();
        let http = p.file.http.expect("--http turns it on");
        assert_eq!(http.listen.port(), 18080);
        assert!(!http.allow_writes);
        // Without --p1 the file's source is used.
        let p = plan(
            &RunArgs {
                state_dir: Some(dir.clone()),
                ..RunArgs::default()
            },
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(p.p1, Source::Serial("/dev/ttyUSB0".into()));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let args = RunArgs {
            config: Some(tmp("missing").join("p1lb.toml")),
            ..RunArgs::default()
        };
        assert!(plan(&args, Path::new("/nonexistent")).is_err());
    }
}
