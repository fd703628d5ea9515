//! `p1lb monitor`: the live state of a daemon or firmware over Modbus (the same device
//! options as `p1lb config`): balancer state, the limit sent, the flags by name, phase
//! currents, voltages, powers and the telegram counters. A refreshing terminal table
//! (ANSI clear and redraw), or with `--json` one JSON object per line.

use std::io::Write;
use std::time::Duration;

use p1lb_core::registers::{FIRST, REGISTERS, Register};
use serde_json::{Value, json};

use crate::cli::device::{self, DeviceArgs, Failure, parse_duration};
use crate::cli::units::{self, flag_names, state_name};

/// `p1lb monitor`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct MonitorArgs {
    /// The device.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// One JSON object per line instead of the refreshing table.
    #[arg(long)]
    pub json: bool,
    /// Time between samples.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Stop after this many samples (default: run until interrupted).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

fn value(words: &[u16], name: &str) -> i64 {
    REGISTERS
        .iter()
        .find(|r| r.name == name)
        .map_or(0, |r: &Register| units::raw_value(r, words))
}

/// One sample as JSON, from the words read at 1000 onwards.
pub fn sample(words: &[u16]) -> Value {
    let v = |name: &str| value(words, name);
    let state = v("balancer_state");
    let flags = v("status_flags");
    let phases = |prefix: &str, scale: f64| -> Vec<f64> {
        (1..=3)
            .map(|p| v(&format!("{prefix}_l{p}")) as f64 / scale)
            .collect()
    };
    json!({
        "state": state_name(state as u16),
        "state_code": state,
        "sent_current_ma": v("sent_current"),
        "override_cap_ma": v("override_cap"),
        "flags": flags,
        "flag_names": flag_names(flags as u16),
        "seconds_since_telegram": v("seconds_since_telegram"),
        "grid_current_a": phases("grid_current", 100.0),
        "voltage_v": phases("voltage", 10.0),
        "import_power_w": v("import_power"),
        "export_power_w": v("export_power"),
        "charger_current_a": phases("charger_current", 100.0),
        "telegrams_valid": v("telegrams_valid"),
        "telegrams_rejected": v("telegrams_rejected"),
        "uptime_s": v("uptime"),
    })
}

/// The terminal view of one sample.
pub fn table(words: &[u16], device: &str) -> String {
    let v = |name: &str| value(words, name);
    let three = |prefix: &str, scale: f64, prec: usize, unit: &str| -> String {
        (1..=3)
            .map(|p| {
                format!(
                    "{:>9.prec$} {unit}",
                    v(&format!("{prefix}_l{p}")) as f64 / scale
                )
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let flags = v("status_flags");
    let names = flag_names(flags as u16);
    let since = v("seconds_since_telegram");
    format!(
        "p1lb monitor — {device} (Ctrl-C to stop)\n\
         \n\
         state            {} ({})\n\
         limit sent       {:.1} A ({} mA)   override cap {} mA\n\
         flags            0x{flags:04x} {}\n\
         \n\
         {:<16} {:>11}  {:>11}  {:>11}\n\
         grid current     {}\n\
         voltage          {}\n\
         charger current  {}\n\
         \n\
         import power     {} W   export power {} W\n\
         telegrams        {} valid, {} rejected, last {} ago\n\
         uptime           {} s\n",
        state_name(v("balancer_state") as u16),
        v("balancer_state"),
        v("sent_current") as f64 / 1000.0,
        v("sent_current"),
        v("override_cap"),
        if names.is_empty() {
            "(none)".to_owned()
        } else {
            names.join(", ")
        },
        "",
        "L1",
        "L2",
        "L3",
        three("grid_current", 100.0, 2, "A"),
        three("voltage", 10.0, 1, "V"),
        three("charger_current", 100.0, 2, "A"),
        v("import_power"),
        v("export_power"),
        v("telegrams_valid"),
        v("telegrams_rejected"),
        if since == i64::from(u16::MAX) {
            "never".to_owned()
        } else {
            format!("{since} s")
        },
        v("uptime"),
    )
}

/// Runs `p1lb monitor`; output to `out`.
pub async fn run(args: &MonitorArgs, out: &mut impl Write) -> Result<(), Failure> {
    let dev = &args.device;
    let mut ctx = device::connect(dev).await?;
    let io = |e: std::io::Error| Failure::device(format!("writing the output: {e}"));
    let mut ticker = tokio::time::interval(args.interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    while args.count.is_none_or(|c| n < c) {
        ticker.tick().await;
        let words = device::read_all(&mut ctx, dev).await?;
        debug_assert_eq!(usize::from(REGISTERS[0].address - FIRST), 0);
        if args.json {
            writeln!(out, "{}", sample(&words)).map_err(io)?;
        } else {
            write!(out, "\x1b[2J\x1b[H{}", table(&words, &dev.device)).map_err(io)?;
        }
        out.flush().map_err(io)?;
        n += 1;
    }
    Ok(())
}

/// Runs `p1lb monitor` on a fresh runtime; returns the exit code.
pub fn main(args: &MonitorArgs) -> u8 {
    device::block_on(async {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        run(args, &mut out).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_names_state_and_flags_and_scales_phases() {
        let mut words = vec![0u16; 122];
        words[1] = 16000; // 1001
        words[2] = 2; // 1002
        words[3] = 0b10_0001; // 1003
        words[100] = (-150i16) as u16; // 1100
        words[103] = 2301; // 1103
        words[116] = 7; // 1116 (low word of 1115)
        let s = sample(&words);
        assert_eq!(s["state"], "upper");
        assert_eq!(s["sent_current_ma"], 16000);
        assert_eq!(s["flag_names"], json!(["meter_stale", "unsaved_changes"]));
        assert_eq!(s["grid_current_a"][0], -1.5);
        assert_eq!(s["voltage_v"][0], 230.1);
        assert_eq!(s["telegrams_valid"], 7);
        let t = table(&words, "tcp://x:1");
        assert!(t.contains("upper") && t.contains("230.1 V"), "{t}");
    }
}
