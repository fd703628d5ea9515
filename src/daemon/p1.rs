//! The P1 task: bytes from the meter → the core's [`TelegramReader`] → [`Reading`] →
//! grid currents ([`Config::grid_source`]) → [`Balancer::on_reading`]; the reader's
//! counters into 1115–1118 and the measurements into 1100–1109.
//!
//! Sources ([`Source`]): a serial device (115200 8N1, or 9600 7E1 when setting 1035 is
//! 1), `tcp://host:port`, or `sim`: the simulator's house, car and meter
//! ([`p1lb_sim`]) in real time, one telegram of real DSMR 5 bytes a second, the car
//! behind the simulated Terra AC on the in-process RS485 bus when there is one
//! (`--rs485 sim`, [`p1lb_sim::charger`]): it follows the limit the charger applies
//! and the charger measures it; else the car follows the value the balancer sends
//! (1001). A device or connection that fails
//! is reopened with backoff (1 s doubling to 30 s); one log line when it goes, one
//! when it is back. A save that changes the line settings (1034/1035) reopens it at
//! once with them (the firmware rebuilds its UART the same way).
//!
//! [`Balancer::on_reading`]: p1lb_core::balancer::Balancer::on_reading
//! [`Config::grid_source`]: p1lb_core::config::Config::grid_source

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Result, bail};
use p1lb_core::config::Config;
use p1lb_core::device::{P1Event, P1Input};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::p1_forward::Forward;
use super::shared::Shared;
use p1lb_sim::car::{Car, Dynamics};
use p1lb_sim::charger::TerraSim;
use p1lb_sim::house::House;
use p1lb_sim::meter::Meter;
use p1lb_sim::scenario::{self, Load, Scenario};

/// Where telegrams come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in simulated house.
    Sim,
    /// A serial device.
    Serial(String),
    /// A TCP server sending the raw stream (`host:port`).
    Tcp(String),
}

impl Source {
    /// `sim`, `tcp://host:port` or a device path.
    pub fn parse(s: &str) -> Result<Source> {
        if s == "sim" {
            return Ok(Source::Sim);
        }
        if let Some(addr) = s.strip_prefix("tcp://") {
            if !addr.contains(':') {
                bail!("P1 source {s:?}: expected tcp://host:port");
            }
            return Ok(Source::Tcp(addr.to_owned()));
        }
        if s.is_empty() {
            bail!("P1 source is empty: expected a device, tcp://host:port or sim");
        }
        Ok(Source::Serial(s.to_owned()))
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Sim => f.write_str("sim (built-in simulated house)"),
            Source::Serial(p) => f.write_str(p),
            Source::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// The core's P1 input and what it feeds.
struct Feeder {
    shared: Arc<Shared>,
    /// `--p1-forward`: gets every byte read, before parsing.
    forward: Option<Arc<Forward>>,
    input: P1Input,
}

impl Feeder {
    fn new(shared: Arc<Shared>) -> Feeder {
        Feeder {
            shared,
            forward: None,
            input: P1Input::new(),
        }
    }

    /// Sets up the reader for a (re)opened line with the saved settings.
    fn restart(&mut self, config: &Config) {
        self.input.restart(&config.p1_line());
    }

    fn feed(&mut self, bytes: &[u8]) {
        if let Some(forward) = &self.forward {
            forward.send(bytes);
        }
        let shared = &self.shared;
        self.input.feed(bytes, |event| {
            let now = shared.now();
            let used = shared.core().on_p1(now, &event);
            match event {
                P1Event::Telegram(_) => {
                    if !used {
                        tracing::debug!("telegram without grid currents on the used phases");
                    }
                    shared.wake_control.notify_one();
                }
                P1Event::Rejected(reason) => {
                    tracing::debug!("telegram rejected: {}", reason.name());
                }
                P1Event::Counters(stats) => shared.stats.set_p1(stats),
            }
        });
    }
}

/// Runs forever.
pub async fn run(shared: Arc<Shared>, source: Source) {
    run_forwarding(shared, source, None, None).await
}

/// Runs forever, handing every byte read to `forward` (`--p1-forward`) when given.
/// `charger`: the simulated charger on the in-process RS485 bus, which the simulated
/// house's car is behind (source `sim` only).
pub async fn run_forwarding(
    shared: Arc<Shared>,
    source: Source,
    forward: Option<Arc<Forward>>,
    charger: Option<Arc<Mutex<TerraSim>>>,
) {
    let mut feeder = Feeder::new(shared.clone());
    feeder.forward = forward;
    match source {
        Source::Sim => run_sim(&shared, &mut feeder, charger).await,
        Source::Serial(path) => {
            run_reconnecting(&shared, &mut feeder, &path, |config| {
                let path = path.clone();
                async move { open_serial(&path, &config) }
            })
            .await
        }
        Source::Tcp(addr) => {
            let name = format!("tcp://{addr}");
            run_reconnecting(&shared, &mut feeder, &name, |_| {
                let addr = addr.clone();
                async move {
                    let s = tokio::net::TcpStream::connect(&addr).await?;
                    Ok(Box::new(s) as Box<dyn AsyncRead + Unpin + Send>)
                }
            })
            .await
        }
    }
}

fn open_serial(path: &str, config: &Config) -> Result<Box<dyn AsyncRead + Unpin + Send>> {
    use tokio_serial::{DataBits, Parity, SerialPortBuilderExt, StopBits};
    let line = config.p1_line();
    let builder = if line.dsmr3 {
        tokio_serial::new(path, line.baud())
            .data_bits(DataBits::Seven)
            .parity(Parity::Even)
    } else {
        tokio_serial::new(path, line.baud())
            .data_bits(DataBits::Eight)
            .parity(Parity::None)
    };
    let port = builder.stop_bits(StopBits::One).open_native_async()?;
    Ok(Box::new(port))
}

const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// How often a quiet line looks at the saved line settings.
const LINE_CHECK: Duration = Duration::from_secs(1);

/// True when the saved P1 line settings (1034/1035) differ from `opened_with`'s.
fn line_changed(shared: &Shared, opened_with: &Config) -> bool {
    shared.core().map.saved().p1_line() != opened_with.p1_line()
}
const BACKOFF_MAX: Duration = Duration::from_secs(30);

async fn run_reconnecting<F, Fut>(shared: &Shared, feeder: &mut Feeder, name: &str, open: F)
where
    F: Fn(Config) -> Fut,
    Fut: std::future::Future<Output = Result<Box<dyn AsyncRead + Unpin + Send>>>,
{
    let mut backoff = BACKOFF_MIN;
    // Log the first failure of an outage, not every retry.
    let mut failing = false;
    let mut buf = vec![0u8; 4096];
    loop {
        let config = *shared.core().map.saved();
        match open(config).await {
            Ok(mut line) => {
                tracing::info!("P1: reading {name}");
                feeder.restart(&config);
                backoff = BACKOFF_MIN;
                failing = false;
                loop {
                    let read = tokio::select! {
                        r = line.read(&mut buf) => Some(r),
                        // A quiet line: look at the saved line settings once a second.
                        () = tokio::time::sleep(LINE_CHECK) => None,
                    };
                    match read {
                        Some(Ok(0)) => {
                            tracing::warn!("P1: {name} closed; reopening");
                            break;
                        }
                        Some(Ok(n)) => feeder.feed(&buf[..n]),
                        Some(Err(e)) => {
                            tracing::warn!("P1: reading {name} failed: {e}; reopening");
                            break;
                        }
                        None => {}
                    }
                    // A save (Modbus TCP, RS485) changed the line (1034/1035): reopen
                    // with it at once, as the RS485 port does for 1031/1032.
                    if line_changed(shared, &config) {
                        tracing::info!("P1: line settings changed (1034/1035); reopening {name}");
                        backoff = Duration::ZERO;
                        break;
                    }
                }
            }
            Err(e) => {
                if failing {
                    tracing::debug!("P1: opening {name} failed again: {e:#}");
                } else {
                    tracing::warn!("P1: cannot open {name}: {e:#}; retrying with backoff");
                    failing = true;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
    }
}

async fn run_sim(shared: &Shared, feeder: &mut Feeder, charger: Option<Arc<Mutex<TerraSim>>>) {
    let mut config = *shared.core().map.saved();
    feeder.restart(&config);
    let mut sim = SimHouse::new(&config);
    sim.charger = charger;
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if line_changed(shared, &config) {
            config = *shared.core().map.saved();
            feeder.restart(&config);
        }
        let sent_ma = u32::from(shared.core().map.status().sent_ma);
        let bytes = sim.second(sent_ma);
        feeder.feed(&bytes);
    }
}

/// The simulator's house, car and meter (scenario `evening-peak` with the car plugged
/// in from the start, looped), in real time: each call is one second and returns that
/// second's telegram bytes.
pub struct SimHouse {
    /// The charger the car is behind, when it is simulated (`--rs485 sim`): the car
    /// follows the limit it applies, and it measures the car.
    pub charger: Option<Arc<Mutex<TerraSim>>>,
    scenario: Scenario,
    house: Option<House>,
    car: Car,
    meter: Meter,
    t: u32,
    volts: [f64; 3],
    config: Config,
}

impl SimHouse {
    /// From the start of the scenario; the car's minimum current from `config`.
    pub fn new(config: &Config) -> SimHouse {
        let scenario = scenario::by_name(scenario::DEFAULT)
            .or_else(|| scenario::all().into_iter().next())
            .expect("the simulator has scenarios")
            .plugged_in_at_start();
        let house = match &scenario.load {
            Load::Model(spec) => Some(House::new(
                spec,
                scenario.start,
                scenario.duration_s,
                scenario.seed,
            )),
            Load::Recorded(_) => None,
        };
        let min_a = f64::from(config.charger_min_ma()) / 1000.0;
        SimHouse {
            charger: None,
            car: Car::new(&scenario.car, Dynamics::real(min_a, scenario.car.delay_ms)),
            meter: Meter::new(&scenario.meter, scenario.start, scenario.seed),
            house,
            scenario,
            t: 0,
            volts: [230.0; 3],
            config: *config,
        }
    }

    /// One second with the balancer sending `sent_ma`: the telegram's bytes. The car
    /// follows what the simulated charger applies when there is one, else `sent_ma`.
    pub fn second(&mut self, sent_ma: u32) -> Vec<u8> {
        if self.t >= self.scenario.duration_s {
            // Start the evening again (with the same charger).
            let charger = self.charger.take();
            *self = SimHouse::new(&self.config);
            self.charger = charger;
        }
        let t = self.t;
        let now = u64::from(t) * 1000;
        let setpoint_ma = match &self.charger {
            Some(c) => c
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .applied_ma(),
            None => sent_ma,
        };
        self.car.command(now, setpoint_ma);
        let house_a = match (&mut self.house, &self.scenario.load) {
            (Some(h), _) => h.load(t),
            (None, Load::Recorded(r)) => r.load(t).0,
            (None, Load::Model(_)) => [0.0; 3],
        };
        const STEPS: u64 = 10;
        let mut measured = [0.0; 3];
        for k in 0..STEPS {
            self.car
                .step(now + k * (1000 / STEPS), 1.0 / STEPS as f64, self.volts);
            if k == 0 {
                let c = self.car.currents();
                measured = [0, 1, 2].map(|p| house_a[p] + c[p]);
                self.volts = self.meter.voltages(measured, None);
            }
            if k == STEPS / 2 {
                // The charger's own meter measures the car once a second.
                if let Some(c) = &self.charger {
                    c.lock().unwrap_or_else(PoisonError::into_inner).measured_ma =
                        Some(self.car.measured_ma());
                }
            }
        }
        self.t += 1;
        self.meter.second(t, measured, self.volts).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::shared::Shared;

    #[test]
    fn sources_parse() {
        assert_eq!(Source::parse("sim").unwrap(), Source::Sim);
        assert_eq!(
            Source::parse("tcp://10.0.0.2:2000").unwrap(),
            Source::Tcp("10.0.0.2:2000".into())
        );
        assert_eq!(
            Source::parse("/dev/ttyUSB0").unwrap(),
            Source::Serial("/dev/ttyUSB0".into())
        );
        assert!(Source::parse("tcp://nohost").is_err());
        assert!(Source::parse("").is_err());
    }

    #[test]
    fn the_simulated_house_feeds_valid_telegrams_into_the_status() {
        let shared = Arc::new(Shared::new(Config::default(), "unused".into()));
        let mut feeder = Feeder::new(shared.clone());
        feeder.restart(&Config::default());
        let mut sim = SimHouse::new(&Config::default());
        for _ in 0..5 {
            let bytes = sim.second(0);
            assert!(bytes.starts_with(b"/"));
            feeder.feed(&bytes);
        }
        let core = shared.core();
        let s = core.map.status();
        assert_eq!((s.telegrams_valid, s.telegrams_rejected), (5, 0));
        assert!(
            s.voltage_dv.iter().all(|&v| (2000..2500).contains(&v)),
            "{s:?}"
        );
        assert!(s.grid_ca.iter().any(|&c| c > 0), "{s:?}");
        assert!(s.import_w > 0, "{s:?}");
    }
}
