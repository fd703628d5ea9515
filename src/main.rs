//! The `p1lb` command line: wires subcommands to the library.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use p1lb::parse::{self, ParseOptions};
use p1lb_core::p1::smarty::SmartyKeys;

/// Dynamic load balancer for EV chargers, driven by a P1 smart meter.
#[derive(Parser)]
#[command(name = "p1lb", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    }
}
