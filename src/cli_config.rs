//! `p1lb config`: read and change the register map of a running daemon (Modbus TCP) or
//! of the Pico firmware (Modbus RTU on a serial device) by register name and unit, with
//! tokio-modbus's client.
//!
//! - `list`: every register of [`REGISTERS`]: address, name, value with its unit, access.
//! - `get NAME`, `set NAME VALUE`: names as in [`REGISTERS`], `-` or `_` between words
//!   (`upper-current`, `upper_current`; `upper-limit` is taken for `upper-current`), or
//!   the address. Values take the register's unit: `22A`, `22000mA`, `22000` (the
//!   register's own unit), `5s`, `2min`; a unit that does not fit the register is
//!   refused before anything is sent.
//! - `save` writes 1 to 1091, `defaults` writes 1 to 1092.
//!
//! Exit codes ([`Failure::code`]): 0 ok, 1 device error or Modbus exception (shown as a
//! message: exception 03 names the allowed range from [`SETTINGS`]), 2 usage.
//!
//! [`SETTINGS`]: p1lb_core::config::SETTINGS

use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use p1lb_core::balancer::State;
use p1lb_core::config::{Config, Range, SETTINGS};
use p1lb_core::registers::{
    Access, FIRST, REGISTERS, RESTORE_DEFAULTS, Register, SAVE, Type, register,
};
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

/// `p1lb config`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// The device.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// `p1lb config` actions.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Every register: address, name, value with unit, access.
    List,
    /// One register's value.
    Get {
        /// Register name (`upper-current` or `upper_current`) or address.
        name: String,
    },
    /// Stage a setting (`set upper-current 22A`); `save` makes it last.
    Set {
        /// Register name or address.
        name: String,
        /// Value with or without unit: 22A, 22000mA, 22000, 5s.
        value: String,
    },
    /// Validate, save and apply the staged settings (writes 1 to 1091).
    Save,
    /// Restore the defaults, save and apply them (writes 1 to 1092).
    Defaults,
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

/// The register called `name` (`-` or `_` between words, any case, `…-limit` for
/// `…_current`) or at that address.
pub fn find_register(name: &str) -> Result<&'static Register, Failure> {
    let key = name.trim().to_ascii_lowercase().replace('-', "_");
    if let Ok(address) = key.parse::<u16>() {
        return register(address)
            .filter(|r| r.address == address)
            .ok_or_else(|| Failure::usage(format!("no register at address {address}")));
    }
    let alias = key
        .strip_suffix("_limit")
        .map(|stem| format!("{stem}_current"));
    REGISTERS
        .iter()
        .find(|r| r.name == key || alias.as_deref() == Some(r.name))
        .ok_or_else(|| {
            let names: Vec<&str> = REGISTERS.iter().map(|r| r.name).collect();
            Failure::usage(format!(
                "unknown register {name:?}; known: {}",
                names.join(", ")
            ))
        })
}

/// Parses `text` into the raw register value of `reg`, converting units.
pub fn parse_value(reg: &Register, text: &str) -> Result<u16, Failure> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(t.len());
    let (num, unit) = (t[..split].trim(), t[split..].trim());
    let v: f64 = num.parse().map_err(|_| {
        Failure::usage(format!(
            "{}: {text:?} is not a number (with an optional unit)",
            reg.name
        ))
    })?;
    let scale = match (reg.unit, unit) {
        (_, "") => 1.0,
        ("mA", "mA" | "ma") => 1.0,
        ("mA", "A" | "a") => 1000.0,
        ("s", "s") => 1.0,
        ("s", "ms") => 0.001,
        ("s", "min") => 60.0,
        _ => {
            let want = match reg.unit {
                "mA" => "mA or A",
                "s" => "s, ms or min",
                "" => "no unit",
                other => other,
            };
            return Err(Failure::usage(format!(
                "{}: unit {unit:?} does not fit this register (it takes {want})",
                reg.name
            )));
        }
    };
    let raw = v * scale;
    if (raw - raw.round()).abs() > 1e-6 {
        return Err(Failure::usage(format!(
            "{}: {text:?} is not a whole number of {}",
            reg.name,
            if reg.unit.is_empty() {
                "units"
            } else {
                reg.unit
            }
        )));
    }
    let raw = raw.round();
    if !(0.0..=65535.0).contains(&raw) {
        return Err(Failure::usage(format!(
            "{}: {text:?} does not fit a register (0 … 65535{})",
            reg.name,
            unit_suffix(reg.unit)
        )));
    }
    Ok(raw as u16)
}

fn unit_suffix(unit: &str) -> String {
    if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    }
}

/// The allowed values of a setting, as text (`6000 … 63000 mA (6 A … 63 A)`).
pub fn range_text(reg: &Register) -> Option<String> {
    let setting = reg.setting?;
    let mut s = match setting.range {
        Range::Span(lo, hi) => {
            let mut s = format!("{lo} … {hi}{}", unit_suffix(setting.unit));
            if setting.unit == "mA" {
                let _ = write!(s, " ({} A … {} A)", amps(lo), amps(hi));
            }
            s
        }
        Range::OneOf(list) => {
            let vals: Vec<String> = list.iter().map(u16::to_string).collect();
            format!("one of {}{}", vals.join(", "), unit_suffix(setting.unit))
        }
    };
    if let Some(rule) = setting.rule {
        let _ = write!(s, "; {rule}");
    }
    Some(s)
}

fn amps(ma: u16) -> String {
    let a = f64::from(ma) / 1000.0;
    format!("{a}")
}

/// The names of the bits of register 1003.
pub const FLAG_NAMES: [&str; 7] = [
    "meter_stale",
    "crc_failures",
    "charger_silent",
    "charger_exception",
    "defaults_in_use",
    "unsaved_changes",
    "watchdog_reset",
];

/// The named bits set in a 1003 value (unknown bits as `bitN`).
pub fn flag_names(bits: u16) -> Vec<String> {
    (0..16)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| {
            FLAG_NAMES
                .get(b)
                .map_or_else(|| format!("bit{b}"), |s| (*s).to_owned())
        })
        .collect()
}

/// The name of a balancer state code (register 1002).
pub fn state_name(code: u16) -> &'static str {
    const STATES: [(State, &str); 5] = [
        (State::Normal, "normal"),
        (State::Lower, "lower"),
        (State::Upper, "upper"),
        (State::Alarm, "alarm"),
        (State::Fallback, "fallback"),
    ];
    STATES
        .iter()
        .find(|(s, _)| s.code() == code)
        .map_or("unknown", |(_, n)| n)
}

/// A register's value from the words read at 1000 onwards: signed, 32-bit combined.
pub fn raw_value(reg: &Register, words: &[u16]) -> i64 {
    let i = usize::from(reg.address - FIRST);
    let w = |k: usize| words.get(i + k).copied().unwrap_or(0);
    match reg.ty {
        Type::U16 => i64::from(w(0)),
        Type::I16 => i64::from(w(0) as i16),
        Type::U32 => i64::from(u32::from(w(0)) << 16 | u32::from(w(1))),
    }
}

/// A value with its unit, scaled where the unit says so (`12.34 A`, `230.1 V`).
pub fn format_value(reg: &Register, raw: i64) -> String {
    match reg.unit {
        "0.01 A" => format!("{:.2} A", raw as f64 / 100.0),
        "0.1 V" => format!("{:.1} V", raw as f64 / 10.0),
        "bits" => {
            let names = flag_names(raw as u16);
            if names.is_empty() {
                format!("0x{raw:04x}")
            } else {
                format!("0x{raw:04x} ({})", names.join(", "))
            }
        }
        "" if reg.address == p1lb_core::registers::address::BALANCER_STATE => {
            format!("{raw} ({})", state_name(raw as u16))
        }
        "" => raw.to_string(),
        unit => format!("{raw} {unit}"),
    }
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

fn exception_text(code: ExceptionCode) -> &'static str {
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

fn transport(dev: &DeviceArgs, e: impl std::fmt::Display) -> Failure {
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

/// Reads every register of [`REGISTERS`] (1000 up to the last one) in one request.
pub async fn read_all(ctx: &mut Context, dev: &DeviceArgs) -> Result<Vec<u16>, Failure> {
    let last = REGISTERS
        .iter()
        .map(|r| r.address + r.ty.words() - 1)
        .max()
        .unwrap_or(FIRST);
    read(ctx, dev, FIRST, last - FIRST + 1).await
}

async fn write(
    ctx: &mut Context,
    dev: &DeviceArgs,
    reg: &Register,
    value: u16,
) -> Result<(), Failure> {
    let answer = tokio::time::timeout(dev.timeout, ctx.write_single_register(reg.address, value))
        .await
        .map_err(|_| {
            Failure::device(format!(
                "{}: no answer from unit {} within {:?}",
                dev.device, dev.unit, dev.timeout
            ))
        })?
        .map_err(|e| transport(dev, e))?;
    match answer {
        Ok(()) => Ok(()),
        Err(code) => Err(write_failure(ctx, dev, reg, value, code).await),
    }
}

/// A clear message for an exception answered to a write.
async fn write_failure(
    ctx: &mut Context,
    dev: &DeviceArgs,
    reg: &Register,
    value: u16,
    code: ExceptionCode,
) -> Failure {
    let what = exception_text(code);
    let message = match code {
        ExceptionCode::IllegalDataValue if reg.address == SAVE => {
            // The staged set is inconsistent: read it back and say which rule fails.
            let detail = match staged_config(ctx, dev).await {
                Ok(Err(e)) => e,
                Ok(Ok(())) => "the staged settings were refused".to_owned(),
                Err(e) => format!("the staged settings were refused ({e})"),
            };
            format!("save refused: {detail} ({what})")
        }
        ExceptionCode::IllegalDataValue => match range_text(reg) {
            Some(range) => format!(
                "value out of range: {} ({}) = {value}{} is not allowed; allowed {range} ({what})",
                reg.name,
                reg.address,
                unit_suffix(reg.unit)
            ),
            None => format!(
                "value out of range: {} ({}) = {value} was refused ({what})",
                reg.name, reg.address
            ),
        },
        ExceptionCode::IllegalDataAddress => format!(
            "{} ({}) is not writable on this device ({what})",
            reg.name, reg.address
        ),
        ExceptionCode::IllegalFunction => {
            format!("the device refuses writes (read only?) ({what})")
        }
        ExceptionCode::ServerDeviceFailure => {
            format!("the device could not carry out the write (saving failed?) ({what})")
        }
        _ => format!("writing {} ({}): {what}", reg.name, reg.address),
    };
    Failure::device(message)
}

/// Reads the staged settings and validates them: `Ok(Err(reason))` when inconsistent.
async fn staged_config(ctx: &mut Context, dev: &DeviceArgs) -> Result<Result<(), String>, Failure> {
    let words = read_all(ctx, dev).await?;
    let mut config = Config::default();
    for s in SETTINGS {
        let v = words
            .get(usize::from(s.address - FIRST))
            .copied()
            .unwrap_or(0);
        if let Err(e) = config.set(s.address, v) {
            return Ok(Err(e.to_string()));
        }
    }
    Ok(config.validate().map_err(|e| e.to_string()))
}

fn line(reg: &Register, words: &[u16]) -> String {
    let value = if reg.access == Access::Write {
        "(write only)".to_owned()
    } else {
        format_value(reg, raw_value(reg, words))
    };
    format!(
        "{:<5} {:<24} {:<28} {}",
        reg.address,
        reg.name,
        value,
        reg.access.as_str()
    )
}

/// Runs `p1lb config`; output to `out`.
pub async fn run(args: &ConfigArgs, out: &mut impl Write) -> Result<(), Failure> {
    let dev = &args.device;
    // Check the names and values before touching the device.
    let target = match &args.action {
        Action::Get { name } => Some((find_register(name)?, None)),
        Action::Set { name, value } => {
            let reg = find_register(name)?;
            if reg.access == Access::Read {
                return Err(Failure::usage(format!(
                    "{} ({}) is read only",
                    reg.name, reg.address
                )));
            }
            Some((reg, Some(parse_value(reg, value)?)))
        }
        _ => None,
    };
    let mut ctx = connect(dev).await?;
    let io = |e: std::io::Error| Failure::device(format!("writing the output: {e}"));
    match &args.action {
        Action::List => {
            let words = read_all(&mut ctx, dev).await?;
            writeln!(out, "{:<5} {:<24} {:<28} access", "reg", "name", "value").map_err(io)?;
            for reg in REGISTERS {
                writeln!(out, "{}", line(reg, &words)).map_err(io)?;
            }
        }
        Action::Get { .. } => {
            let (reg, _) = target.expect("checked above");
            if reg.access == Access::Write {
                return Err(Failure::usage(format!(
                    "{} ({}) is write only",
                    reg.name, reg.address
                )));
            }
            let words = read(&mut ctx, dev, reg.address, reg.ty.words()).await?;
            let mut padded = vec![0u16; usize::from(reg.address - FIRST)];
            padded.extend(words);
            let value = format_value(reg, raw_value(reg, &padded));
            writeln!(out, "{} = {value}", reg.name).map_err(io)?;
        }
        Action::Set { .. } => {
            let (reg, value) = target.expect("checked above");
            let value = value.expect("parsed above");
            write(&mut ctx, dev, reg, value).await?;
            let staged = if reg.setting.is_some() {
                " (staged: `p1lb config save` makes it last)"
            } else {
                ""
            };
            writeln!(
                out,
                "{} = {}{staged}",
                reg.name,
                format_value(reg, i64::from(value))
            )
            .map_err(io)?;
        }
        Action::Save | Action::Defaults => {
            let address = if matches!(args.action, Action::Save) {
                SAVE
            } else {
                RESTORE_DEFAULTS
            };
            let reg = register(address).expect("1091 and 1092 are registers");
            write(&mut ctx, dev, reg, 1).await?;
            writeln!(
                out,
                "{}",
                if address == SAVE {
                    "saved"
                } else {
                    "defaults restored and saved"
                }
            )
            .map_err(io)?;
        }
    }
    let _ = ctx.disconnect().await;
    Ok(())
}

/// Runs `p1lb config` on a fresh single-threaded runtime; returns the exit code.
pub fn main(args: &ConfigArgs) -> u8 {
    block_on(async {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        run(args, &mut out).await
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str) -> &'static Register {
        find_register(name).unwrap()
    }

    #[test]
    fn names_take_either_separator_and_the_limit_alias() {
        assert_eq!(reg("upper-current").address, 1015);
        assert_eq!(reg("upper_current").address, 1015);
        assert_eq!(reg("Upper-Limit").address, 1015);
        assert_eq!(reg("1010").name, "charger_max_current");
        assert_eq!(find_register("nope").unwrap_err().code, 2);
        assert_eq!(find_register("1107").unwrap_err().code, 2);
    }

    #[test]
    fn values_convert_units_and_refuse_the_wrong_ones() {
        let up = reg("upper_current");
        assert_eq!(parse_value(up, "22A").unwrap(), 22000);
        assert_eq!(parse_value(up, "6.5 A").unwrap(), 6500);
        assert_eq!(parse_value(up, "22000mA").unwrap(), 22000);
        assert_eq!(parse_value(up, "22000").unwrap(), 22000);
        assert_eq!(parse_value(up, "5s").unwrap_err().code, 2);
        assert_eq!(parse_value(up, "70A").unwrap_err().code, 2);
        assert_eq!(parse_value(up, "1.0001A").unwrap_err().code, 2);
        let wait = reg("upper_wait");
        assert_eq!(parse_value(wait, "5s").unwrap(), 5);
        assert_eq!(parse_value(wait, "2min").unwrap(), 120);
        assert!(
            parse_value(wait, "5A")
                .unwrap_err()
                .message
                .contains("does not fit")
        );
        let phases = reg("phases");
        assert_eq!(parse_value(phases, "3").unwrap(), 3);
        assert_eq!(parse_value(phases, "3A").unwrap_err().code, 2);
        assert_eq!(parse_value(phases, "-1").unwrap_err().code, 2);
    }

    #[test]
    fn values_show_scaled_with_units() {
        assert_eq!(format_value(reg("grid_current_l1"), -123), "-1.23 A");
        assert_eq!(format_value(reg("voltage_l1"), 2301), "230.1 V");
        assert_eq!(format_value(reg("upper_current"), 22000), "22000 mA");
        assert_eq!(format_value(reg("balancer_state"), 4), "4 (fallback)");
        assert_eq!(
            format_value(reg("status_flags"), 0x21),
            "0x0021 (meter_stale, unsaved_changes)"
        );
        let mut words = vec![0u16; 122];
        words[106] = 1;
        words[107] = 2;
        assert_eq!(raw_value(reg("import_power"), &words), 65538);
        assert_eq!(
            range_text(reg("charger_max_current")).unwrap(),
            "6000 … 63000 mA (6 A … 63 A)"
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("x").is_err());
    }
}
