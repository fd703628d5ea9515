//! The `p1lb` command line: wires subcommands to the library.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::builder::PossibleValuesParser;
use clap::{Parser, Subcommand};
use p1lb::cli::parse::{self, ParseOptions};
use p1lb::cli::sim_charger::SimChargerArgs;
use p1lb::cli::simulate::{self, ModeChoice};
use p1lb::daemon::run::RunArgs;
use p1lb_core::p1::smarty::SmartyKeys;
use p1lb_sim::scenario;

/// Dynamic load balancer for EV chargers, driven by a P1 smart meter.
#[derive(Parser)]
#[command(name = "p1lb", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The gateway daemon: P1 in, balancer every second, register map on Modbus TCP,
    /// status LED, settings saved to the TOML file. With nothing configured it runs the
    /// built-in simulation.
    Run(RunArgs),
    /// Read and change the settings of a daemon or device over Modbus, by register name
    /// and unit (`set upper-current 22A`). Exit 1 on a device error or exception, 2 on
    /// a usage error.
    Config(p1lb::cli::config::ConfigArgs),
    /// Live state of a daemon or device over Modbus: state, limit, flags, phases.
    Monitor(p1lb::cli::monitor::MonitorArgs),
    /// Print the Home Assistant package (integrations/home-assistant/p1lb.yaml).
    #[command(hide = true)]
    HomeAssistant {
        /// The daemon's Modbus TCP host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The daemon's Modbus TCP port.
        #[arg(long, default_value_t = 1502)]
        port: u16,
        /// The daemon's server address (1090).
        #[arg(long, default_value_t = 10)]
        unit: u8,
    },
    /// A simulated ABB Terra AC (Modbus RTU secondary) on a serial port: prints one
    /// line per write it receives. For tests and for trying the master role without a
    /// charger.
    SimCharger(SimChargerArgs),
    /// Decode a recorded (or live) P1 stream: every telegram, its CRC verdict and the
    /// rejection counters. Exits non-zero when no valid telegram was found.
    Parse {
        /// File or serial device to read, or `-` for standard input.
        input: PathBuf,
        /// One JSON object per line per telegram (counters on stderr).
        #[arg(long)]
        json: bool,
        /// Refuse telegrams without a CRC: every dialect sent at 115200 baud has one
        /// (DSMR 2/3 and EasyMeter, at 9600 baud, have none).
        #[arg(long)]
        require_crc: bool,
        /// Luxembourg Smarty: decryption key (32 hex digits) — the input is then the
        /// meter's encrypted frames.
        #[arg(long, requires = "auth_key")]
        key: Option<String>,
        /// Luxembourg Smarty: authentication key (32 hex digits).
        #[arg(long, requires = "key")]
        auth_key: Option<String>,
    },
    /// Simulate a house, a car and a meter around the real balancer, faster than real
    /// time, and compare each control mode with the best possible (the oracle).
    Simulate {
        /// The scenario to run, or `all`.
        #[arg(long, value_parser = scenario_names(), conflicts_with = "p1_log")]
        scenario: Option<String>,
        /// Replay a recorded P1 stream (bytes as from the meter) as the house load.
        #[arg(long, value_name = "FILE")]
        p1_log: Option<PathBuf>,
        /// Control mode(s) to run.
        #[arg(long, value_enum, default_value_t = ModeChoice::Both)]
        mode: ModeChoice,
        /// Settings file: TOML `setting_name = value` pairs (names as in the register map).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Write the chart (SVG) here; without it the table output writes simulation.svg.
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
        /// Print one JSON object with every run instead of the tables.
        #[arg(long)]
        json: bool,
        /// Override the scenarios' seeds.
        #[arg(long)]
        seed: Option<u64>,
        /// The car's delay, s: from the charger applying a new limit to the car
        /// following it (the scenarios use 2 s; a Terra AC takes about that).
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=10))]
        car_delay: Option<u64>,
        /// Run each scenario over this many days from its start (a month: 30): every
        /// day drawn from the scenario's first with a seed of its own, weekends
        /// different; the meter's clock crosses midnight, month ends and DST.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=400))]
        days: Option<u32>,
    },
}

fn scenario_names() -> PossibleValuesParser {
    PossibleValuesParser::new(scenario::NAMES.iter().copied().chain(["all"]))
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("p1lb: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode> {
    match Cli::parse().command {
        Command::Run(args) => {
            p1lb::daemon::run::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::SimCharger(args) => {
            p1lb::cli::sim_charger::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(args) => Ok(ExitCode::from(p1lb::cli::config::main(&args))),
        Command::Monitor(args) => Ok(ExitCode::from(p1lb::cli::monitor::main(&args))),
        Command::HomeAssistant { host, port, unit } => {
            print!("{}", p1lb::cli::home_assistant::yaml_for(&host, port, unit));
            Ok(ExitCode::SUCCESS)
        }
        Command::Parse {
            input,
            json,
            require_crc,
            key,
            auth_key,
        } => {
            let smarty = match (key, auth_key) {
                (Some(k), Some(a)) => Some(SmartyKeys {
                    key: parse::parse_key(&k).context("--key")?,
                    auth_key: parse::parse_key(&a).context("--auth-key")?,
                }),
                _ => None,
            };
            let source: Box<dyn Read> = if input.as_os_str() == "-" {
                Box::new(io::stdin().lock())
            } else {
                Box::new(
                    File::open(&input).with_context(|| format!("opening {}", input.display()))?,
                )
            };
            let summary = parse::run(
                source,
                io::stdout().lock(),
                io::stderr().lock(),
                ParseOptions {
                    json,
                    smarty,
                    require_crc,
                },
            )?;
            if summary.reader.valid == 0 {
                eprintln!("p1lb: no valid telegram found");
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            scenario,
            p1_log,
            mode,
            config,
            plot,
            json,
            seed,
            car_delay,
            days,
        } => {
            let opts = simulate::Options {
                scenario,
                p1_log,
                mode,
                config,
                plot,
                json,
                seed,
                car_delay_ms: car_delay.map(|s| s * 1000),
                days,
            };
            simulate::run(&opts, io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
