//! `p1lb sim-charger`: the simulated ABB Terra AC ([`p1lb_sim::charger`]) on a serial
//! port. For tests and for people without a charger. Prints one line per write it
//! receives on stdout, e.g. `write 0x4100 = 16000 mA`.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use p1lb_core::modbus::{LineConfig, MAX_ADU, Parity};

use crate::rtu_io::{self, ServeOptions};
use p1lb_sim::charger::TerraSim;

/// `p1lb sim-charger`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SimChargerArgs {
    /// The serial device (or pty) to answer on.
    #[arg(long, value_name = "PATH")]
    pub serial: PathBuf,
    /// The charger's Modbus address.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=247))]
    pub address: u8,
    /// Baud rate (8N1).
    #[arg(long, default_value_t = 9600)]
    pub baud: u32,
    /// Send each reply in two halves this many ms apart, as a USB-serial adapter
    /// hands bytes over in chunks (FTDI's latency timer: 16 ms). 0: in one piece.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub chunk_gap_ms: u64,
}

/// Runs until the port fails (or Ctrl-C).
pub fn run(args: &SimChargerArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: &SimChargerArgs) -> Result<()> {
    let line = LineConfig::new(args.baud, Parity::None, 1);
    let path = args.serial.to_string_lossy().into_owned();
    let port = rtu_io::open_serial(&path, line)
        .with_context(|| format!("opening {}", args.serial.display()))?;
    eprintln!(
        "sim-charger: simulated Terra AC at address {} on {path}, {} 8N1",
        args.address, args.baud
    );
    let mut sim = TerraSim::new();
    let options = ServeOptions {
        line,
        turnaround: Duration::ZERO,
        chunk_gap: Duration::from_millis(args.chunk_gap_ms),
    };
    let address = args.address;
    let stdout = std::io::stdout();
    let answer = |frame: &[u8], out: &mut [u8; MAX_ADU]| {
        let mut log = None;
        let len = sim.answer(address, frame, out, &mut log);
        if let Some(line) = log {
            let mut lock = stdout.lock();
            let _ = writeln!(lock, "{line}");
            let _ = lock.flush();
        }
        len
    };
    tokio::select! {
        r = rtu_io::serve(port, options, answer) => r.context("serving the port"),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
