//! What `p1lb config` and `p1lb monitor` share to reach a device: which device
//! (`--device tcp://HOST:PORT` or a serial device, unit, timeout), connecting with
//! tokio-modbus's client, reading with clear messages, and how a command fails (its
//! exit code).

use std::time::Duration;

use p1lb_core::registers::{FIRST, MAX_READ, REGISTERS};
use tokio_modbus::client::Context;
use tokio_modbus::prelude::*;

/// Why a command failed, with its exit code.
#[derive(Debug)]
pub struct Failure {
    /// 1: device or exception; 2: usage.
    pub code: u8,
    /// The message for stderr.
    pub message: String,
}

impl Failure {
    /// Exit code 2.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    /// Exit code 1.
    pub fn device(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Which device, shared by `p1lb config` and `p1lb monitor`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArgs {
    /// tcp://HOST:PORT (the daemon's Modbus TCP server) or a serial device (Modbus RTU).
    #[arg(long, value_name = "tcp://HOST:PORT|/dev/ttyXXX")]
    pub device: String,
    /// Modbus unit (server) address.
    #[arg(long, default_value_t = 10)]
    pub unit: u8,
    /// Serial devices only: baud rate.
    #[arg(long, default_value_t = 9600)]
    pub baud: u32,
    /// Serial devices only: parity (8 data bits, 1 stop bit).
    #[arg(long, value_enum, default_value_t = SerialParity::None)]
    pub parity: SerialParity,
    /// How long to wait for the device to answer.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Parity of a serial device (register 1032's choices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SerialParity {
    /// No parity.
    None,
    /// Odd parity.
    Odd,
    /// Even parity.
    Even,
}

/// `1s`, `500ms`, `2min` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("min") {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (like 1s, 500ms, 2min)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// Connects to the device.
pub async fn connect(dev: &DeviceArgs) -> Result<Context, Failure> {
    let unit = Slave(dev.unit);
    if let Some(addr) = dev.device.strip_prefix("tcp://") {
        let stream = tokio::time::timeout(dev.timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| Failure::device(format!("{}: connection timed out", dev.device)))?
            .map_err(|e| Failure::device(format!("{}: {e}", dev.device)))?;
        let _ = stream.set_nodelay(true);
        return Ok(tokio_modbus::client::tcp::attach_slave(stream, unit));
    }
    if dev.device.is_empty() || dev.device.contains("://") {
        return Err(Failure::usage(format!(
            "--device {:?}: expected tcp://HOST:PORT or a serial device",
            dev.device
        )));
    }
    use tokio_serial::SerialPortBuilderExt;
    let parity = match dev.parity {
        SerialParity::None => tokio_serial::Parity::None,
        SerialParity::Odd => tokio_serial::Parity::Odd,
        SerialParity::Even => tokio_serial::Parity::Even,
    };
    let port = tokio_serial::new(&dev.device, dev.baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(parity)
        .stop_bits(tokio_serial::StopBits::One)
        .open_native_async()
        .map_err(|e| Failure::device(format!("{}: {e}", dev.device)))?;
    Ok(tokio_modbus::client::rtu::attach_slave(port, unit))
}

pub(crate) fn exception_text(code: ExceptionCode) -> &'static str {
    match code {
        ExceptionCode::IllegalFunction => "Modbus exception 01: illegal function",
        ExceptionCode::IllegalDataAddress => "Modbus exception 02: illegal data address",
        ExceptionCode::IllegalDataValue => "Modbus exception 03: illegal data value",
        ExceptionCode::ServerDeviceFailure => "Modbus exception 04: server device failure",
        ExceptionCode::GatewayTargetDevice => {
            "Modbus exception 0B: gateway target device failed to respond"
        }
        _ => "Modbus exception",
    }
}

pub(crate) fn transport(dev: &DeviceArgs, e: impl std::fmt::Display) -> Failure {
    Failure::device(format!("{}: {e}", dev.device))
}

/// Reads `n` registers from `start`.
pub async fn read(
    ctx: &mut Context,
    dev: &DeviceArgs,
    start: u16,
    n: u16,
) -> Result<Vec<u16>, Failure> {
    match tokio::time::timeout(dev.timeout, ctx.read_holding_registers(start, n)).await {
        Err(_) => Err(Failure::device(format!(
            "{}: no answer from unit {} within {:?}",
            dev.device, dev.unit, dev.timeout
        ))),
        Ok(Err(e)) => Err(transport(dev, e)),
        Ok(Ok(Err(code))) => Err(Failure::device(format!(
            "reading {start}…{}: {}",
            u32::from(start) + u32::from(n) - 1,
            exception_text(code)
        ))),
        Ok(Ok(Ok(words))) => Ok(words),
    }
}

/// Reads `n` registers from `start` in as many requests as needed (FC 03 reads at most
/// [`MAX_READ`] registers at a time).
pub async fn read_span(
    ctx: &mut Context,
    dev: &DeviceArgs,
    start: u16,
    n: u16,
) -> Result<Vec<u16>, Failure> {
    let mut words = Vec::with_capacity(usize::from(n));
    let chunk = u16::try_from(MAX_READ).unwrap_or(u16::MAX);
    let mut done = 0u16;
    while done < n {
        let take = (n - done).min(chunk);
        words.extend(read(ctx, dev, start.saturating_add(done), take).await?);
        done += take;
    }
    Ok(words)
}

/// Reads every register of [`REGISTERS`] (1000 up to the last one), in two requests
/// since the map reaches past 1124.
pub async fn read_all(ctx: &mut Context, dev: &DeviceArgs) -> Result<Vec<u16>, Failure> {
    let last = REGISTERS
        .iter()
        .map(|r| r.address + r.ty.words() - 1)
        .max()
        .unwrap_or(FIRST);
    read_span(ctx, dev, FIRST, last - FIRST + 1).await
}

/// Runs `f` on a current-thread runtime; prints a failure and returns its exit code.
pub fn block_on(f: impl std::future::Future<Output = Result<(), Failure>>) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("p1lb: starting the tokio runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(f) {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("p1lb: {failure}");
            failure.code
        }
    }
}
