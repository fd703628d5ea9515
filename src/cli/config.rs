//! `p1lb config`: read and change the register map of a running daemon (Modbus TCP) or
//! of the Pico firmware (Modbus RTU on a serial device) by register name and unit, with
//! tokio-modbus's client.
//!
//! - `list`: every register of [`REGISTERS`]: address, name, value with its unit, access.
//! - `get NAME`, `set NAME VALUE`: names as in [`REGISTERS`], `-` or `_` between words
//!   (`upper-current`, `upper_current`; `upper-limit` is taken for `upper-current`), or
//!   the address. Values take the register's unit: `22A`, `22000mA`, `22000` (the
//!   register's own unit), `5s`, `2min`, `3.5kW`; a unit that does not fit the register
//!   is refused before anything is sent. The charge mode (1080) also takes its name
//!   (`fast`, `min-solar`, `solar-only`, `paused`).
//! - A setting is staged until `save`, except the charge mode (1080): the device applies
//!   and saves it at once, and `set charge_mode` says so (and whether other staged
//!   settings still wait for `save`).
//! - `save` writes 1 to 1091, `defaults` writes 1 to 1092.
//!
//! Exit codes ([`Failure::code`]): 0 ok, 1 device error or Modbus exception (shown as a
//! message: exception 03 names the allowed range from [`SETTINGS`]), 2 usage.
//!
//! [`SETTINGS`]: p1lb_core::config::SETTINGS

use std::io::Write;

use p1lb_core::config::{Config, SETTINGS, address::CHARGE_MODE};
use p1lb_core::registers::{
    Access, FIRST, Flags, REGISTERS, RESTORE_DEFAULTS, Register, SAVE, address::STATUS_FLAGS,
    register,
};
use tokio_modbus::client::Context;
use tokio_modbus::prelude::*;

use super::device::{
    DeviceArgs, Failure, block_on, connect, exception_text, read, read_all, transport,
};
use super::units::{find_register, format_value, parse_value, range_text, raw_value, unit_suffix};

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
    /// Stage a setting (`set upper-current 22A`); `save` makes it last. The charge mode
    /// applies and is saved at once (`set charge-mode solar-only`).
    Set {
        /// Register name or address.
        name: String,
        /// Value with or without unit: 22A, 22000mA, 22000, 5s, 3.5kW; the charge mode
        /// also by name: fast, min-solar, solar-only, paused.
        value: String,
    },
    /// Validate, save and apply the staged settings (writes 1 to 1091).
    Save,
    /// Restore the defaults, save and apply them (writes 1 to 1092).
    Defaults,
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
            let staged = if reg.address == CHARGE_MODE {
                // Applied and saved by the write itself; other staged settings stay
                // staged (1003 bit 5).
                let flags = read(&mut ctx, dev, STATUS_FLAGS, 1).await?;
                let pending = flags
                    .first()
                    .is_some_and(|&f| Flags::from_bits_retain(f).contains(Flags::UNSAVED_CHANGES));
                if pending {
                    " (applied and saved at once; other staged settings still wait for \
                     `p1lb config save`)"
                } else {
                    " (applied and saved at once)"
                }
            } else if reg.setting.is_some() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::cli::device::parse_duration;

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
        assert_eq!(reg("site-max-current").address, 1026);
        assert_eq!(reg("charger_count").address, 1037);
        assert_eq!(reg("charger3-priority").address, 1048);
        assert_eq!(reg("charger1_limit").address, 1130);
        assert_eq!(reg("charger8_flags").address, 1177);
        assert_eq!(reg("1141").name, "charger2_flags");
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

    /// The capacity tariff's settings and status by name; watts as W or kW.
    #[test]
    fn capacity_settings_take_watts_and_kilowatts() {
        assert_eq!(reg("capacity-mode").address, 1072);
        assert_eq!(reg("capacity_target").address, 1073);
        assert_eq!(reg("Capacity-Margin").address, 1074);
        assert_eq!(reg("quarter_average_power").address, 1122);
        assert_eq!(reg("1126").name, "capacity_charger_power");
        let target = reg("capacity_target");
        assert_eq!(parse_value(target, "3500").unwrap(), 3500);
        assert_eq!(parse_value(target, "3500W").unwrap(), 3500);
        assert_eq!(parse_value(target, "3500 w").unwrap(), 3500);
        assert_eq!(parse_value(target, "3.5kW").unwrap(), 3500);
        assert_eq!(parse_value(target, "3.5 kw").unwrap(), 3500);
        assert_eq!(parse_value(target, "60 kW").unwrap(), 60000);
        // Not a whole number of watts, a register's worth, or the wrong unit.
        assert_eq!(parse_value(target, "3.5005kW").unwrap_err().code, 2);
        assert_eq!(parse_value(target, "70kW").unwrap_err().code, 2);
        let e = parse_value(target, "16A").unwrap_err();
        assert!(e.message.contains("W or kW"), "{}", e.message);
        assert_eq!(parse_value(target, "3.5MW").unwrap_err().code, 2);
        assert_eq!(
            parse_value(reg("upper_current"), "3kW").unwrap_err().code,
            2
        );
        assert_eq!(parse_value(reg("capacity_mode"), "2").unwrap(), 2);
        assert_eq!(parse_value(reg("capacity_mode"), "2W").unwrap_err().code, 2);
        // Names for every register whose values have them, any case, `-` for `_`.
        assert_eq!(parse_value(reg("capacity_mode"), "follow-peak").unwrap(), 2);
        assert_eq!(parse_value(reg("capacity_mode"), "Target").unwrap(), 1);
        assert_eq!(parse_value(reg("control_mode"), "headroom").unwrap(), 1);
        assert_eq!(parse_value(reg("rs485_parity"), "even").unwrap(), 2);
        let e = parse_value(reg("capacity_mode"), "peak").unwrap_err();
        assert_eq!(e.code, 2);
        assert!(
            e.message.contains("off (0), target (1), follow_peak (2)"),
            "{}",
            e.message
        );
        // A unit is not a name: a number that is not one stays refused as before.
        assert_eq!(
            parse_value(reg("upper_current"), "A16").unwrap_err().code,
            2
        );

        assert_eq!(format_value(target, 2500), "2500 W");
        assert_eq!(format_value(reg("capacity_margin"), 100), "100 W");
        assert_eq!(format_value(reg("capacity_mode"), 0), "0 (off)");
        assert_eq!(format_value(reg("capacity_mode"), 1), "1 (target)");
        assert_eq!(format_value(reg("capacity_mode"), 2), "2 (follow_peak)");
        assert_eq!(format_value(reg("capacity_mode"), 7), "7 (unknown)");
        assert_eq!(format_value(reg("month_peak_power"), 3100), "3100 W");
        assert_eq!(format_value(reg("quarter_seconds_left"), 412), "412 s");
        assert_eq!(format_value(reg("capacity_charger_power"), 1850), "1850 W");
        assert_eq!(
            format_value(reg("capacity_charger_power"), 65535),
            "65535 (no bound)"
        );
        assert_eq!(range_text(target).unwrap(), "1000 … 60000 W (1 kW … 60 kW)");
        assert_eq!(
            range_text(reg("capacity_margin")).unwrap(),
            "0 … 2000 W (0 kW … 2 kW)"
        );
        assert_eq!(range_text(reg("capacity_mode")).unwrap(), "0 … 2");
    }

    /// The solar settings and status by name: the charge mode by name or number, the
    /// start/stop settings in W and s, the surplus in W (signed, units of 10 W), the
    /// solar state by name.
    #[test]
    fn solar_settings_take_names_watts_and_seconds() {
        assert_eq!(reg("charge-mode").address, 1080);
        assert_eq!(reg("solar_start_surplus").address, 1081);
        assert_eq!(reg("Solar-Start-Delay").address, 1082);
        assert_eq!(reg("solar_stop_delay").address, 1083);
        assert_eq!(reg("solar-max-import").address, 1084);
        assert_eq!(reg("1127").name, "solar_surplus");
        assert_eq!(reg("solar_state").address, 1128);
        let mode = reg("charge_mode");
        for (text, code) in [
            ("fast", 0),
            ("FAST", 0),
            ("min-solar", 1),
            ("min_solar", 1),
            ("minimum+solar", 1),
            ("Minimum + Solar", 1),
            ("min+solar", 1),
            ("solar", 2),
            ("solar-only", 2),
            ("solar_only", 2),
            ("Solar Only", 2),
            ("paused", 3),
            ("pause", 3),
            ("0", 0),
            ("2", 2),
            (" 3 ", 3),
            // Out of range: sent, the device answers 03 with the range.
            ("4", 4),
        ] {
            assert_eq!(parse_value(mode, text).unwrap(), code, "{text}");
        }
        for text in ["turbo", "solar-fast", "min", "2W", "-1", "", "only solar"] {
            assert_eq!(parse_value(mode, text).unwrap_err().code, 2, "{text}");
        }
        let e = parse_value(mode, "eco").unwrap_err().message;
        assert!(
            e.contains("fast, min_solar, solar_only, paused"),
            "the names in {e}"
        );
        assert_eq!(format_value(mode, 0), "0 (fast)");
        assert_eq!(format_value(mode, 1), "1 (min_solar)");
        assert_eq!(format_value(mode, 2), "2 (solar_only)");
        assert_eq!(format_value(mode, 3), "3 (paused)");
        assert_eq!(format_value(mode, 9), "9 (unknown)");
        assert_eq!(
            range_text(mode).unwrap(),
            "0 … 3 (0 fast, 1 min_solar, 2 solar_only, 3 paused)"
        );

        let surplus = reg("solar_start_surplus");
        assert_eq!(parse_value(surplus, "4.1kW").unwrap(), 4100);
        assert_eq!(parse_value(surplus, "1380 W").unwrap(), 1380);
        assert_eq!(parse_value(surplus, "6A").unwrap_err().code, 2);
        assert_eq!(parse_value(reg("solar_max_import"), "0.5 kW").unwrap(), 500);
        assert_eq!(format_value(reg("solar_max_import"), 250), "250 W");
        assert_eq!(range_text(surplus).unwrap(), "0 … 60000 W (0 kW … 60 kW)");
        let start = reg("solar_start_delay");
        assert_eq!(parse_value(start, "2min").unwrap(), 120);
        assert_eq!(parse_value(start, "90s").unwrap(), 90);
        assert_eq!(parse_value(start, "90").unwrap(), 90);
        assert_eq!(parse_value(start, "1W").unwrap_err().code, 2);
        assert_eq!(format_value(reg("solar_stop_delay"), 180), "180 s");
        assert_eq!(range_text(start).unwrap(), "0 … 3600 s");

        // The surplus: signed, in units of 10 W, shown in W.
        let surplus = reg("solar_surplus");
        assert_eq!(format_value(surplus, 123), "1230 W");
        assert_eq!(format_value(surplus, -45), "-450 W");
        let mut words = vec![0u16; 129];
        words[127] = (-45i16) as u16;
        assert_eq!(raw_value(surplus, &words), -45);
        let state = reg("solar_state");
        assert_eq!(format_value(state, 0), "0 (idle)");
        assert_eq!(format_value(state, 1), "1 (waiting_to_start)");
        assert_eq!(format_value(state, 2), "2 (charging_on_surplus)");
        assert_eq!(format_value(state, 3), "3 (waiting_to_stop)");
        assert_eq!(format_value(state, 4), "4 (unknown)");
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
        assert_eq!(
            format_value(reg("status_flags"), 0x80),
            "0x0080 (readback_implausible)"
        );
        // A charger's flags have their own names (not 1003's).
        assert_eq!(
            format_value(reg("charger2_flags"), 0b1_1000),
            "0x0018 (wiring_known, car_connected)"
        );
        assert_eq!(
            format_value(reg("charger8_flags"), 0b10_0101),
            "0x0025 (silent, paused, bit5)"
        );
        assert_eq!(format_value(reg("charger1_limit"), 16000), "16000 mA");
        assert_eq!(format_value(reg("charger1_current_l2"), 987), "9.87 A");
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
