//! `p1lb monitor`: the live state of a daemon or firmware over Modbus (the same device
//! options as `p1lb config`): balancer state, the limit sent, the flags by name, phase
//! currents, voltages, powers and the telegram counters, the capacity tariff's
//! quarter-hour account (1072–1074, 1122–1126), the charge mode with the solar surplus
//! and state (1080–1084, 1127–1128), and each charger's status (1130 + 6(k−1) …, as
//! many chargers as `charger_count`, 1037, says). A refreshing terminal table (ANSI
//! clear and redraw; a capacity line when `capacity_mode` ≠ 0, a solar line when
//! `charge_mode` ≠ 0, one line per charger when there are several), or with `--json`
//! one JSON object per line (with a `capacity` object, a `solar` object and a
//! `chargers` array, always).
//!
//! Each sample takes two reads (a read holds at most 125 registers): 1000 up to 1121
//! (firmware version), then from 1122 (the capacity account and the solar status) to
//! the end of the status of the chargers 1037 names (6 registers each).

use std::io::Write;
use std::time::Duration;

use p1lb_core::config::{MAX_CHARGERS, address as setting};
use p1lb_core::registers::{
    CHARGER_STATUS_WORDS, ChargerRegs, FIRST, REGISTERS, Register, address, charger_status_address,
};
use serde_json::{Map, Value, json};

use crate::cli::device::{self, DeviceArgs, Failure, parse_duration};
use crate::cli::units::{
    self, CHARGER_FLAGS, NO_BOUND, capacity_mode_name, charge_mode_name, charger_flag_names,
    flag_names, solar_state_name, state_name,
};

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

/// The word at `address` from the words read at 1000 onwards (0 when not read).
fn word(words: &[u16], address: u16) -> u16 {
    address
        .checked_sub(FIRST)
        .and_then(|i| words.get(usize::from(i)))
        .copied()
        .unwrap_or(0)
}

/// The number of chargers (1037, `charger_count`), 1 … 8; a device that does not know
/// the register (it reads 0) has one.
pub fn charger_count(words: &[u16]) -> usize {
    usize::from(word(words, setting::CHARGER_COUNT)).clamp(1, MAX_CHARGERS)
}

/// Charger `k`'s (0-based) status, from the words read at 1000 onwards.
pub fn charger(words: &[u16], k: usize) -> ChargerRegs {
    let mut regs = [0u16; CHARGER_STATUS_WORDS as usize];
    if let Some(base) = charger_status_address(k) {
        for (a, w) in (base..).zip(regs.iter_mut()) {
            *w = word(words, a);
        }
    }
    ChargerRegs::from_words(regs)
}

/// The Modbus address of charger `k` (0-based): 1030 + k.
fn charger_unit(words: &[u16], k: usize) -> u16 {
    word(words, setting::CHARGER_ADDRESS).saturating_add(u16::try_from(k).unwrap_or(u16::MAX))
}

/// Each charger as JSON: the limit sent, its grid phase currents, its state code and
/// its flags by name.
fn chargers_json(words: &[u16]) -> Vec<Value> {
    (0..charger_count(words))
        .map(|k| {
            let c = charger(words, k);
            let flags: Map<String, Value> = CHARGER_FLAGS
                .iter()
                .map(|&(f, name)| (name.to_owned(), Value::Bool(c.flags.contains(f))))
                .collect();
            json!({
                "charger": k + 1,
                "unit": charger_unit(words, k),
                "limit_ma": c.sent_ma,
                "current_a": c.grid_ca.map(|ca| f64::from(ca) / 100.0),
                "state": c.state,
                "flags": flags,
            })
        })
        .collect()
}

/// The capacity tariff's settings and quarter-hour account, from the words read at 1000
/// onwards.
struct Capacity {
    mode: u16,
    target_w: u16,
    margin_w: u16,
    quarter_average_w: u16,
    quarter_projected_w: u16,
    month_peak_w: u16,
    seconds_left: u16,
    /// `None` when 1126 reads [`NO_BOUND`].
    charger_power_w: Option<u16>,
}

fn capacity(words: &[u16]) -> Capacity {
    let w = |a: u16| word(words, a);
    let charger_power = w(address::CAPACITY_CHARGER_POWER);
    Capacity {
        mode: w(setting::CAPACITY_MODE),
        target_w: w(setting::CAPACITY_TARGET),
        margin_w: w(setting::CAPACITY_MARGIN),
        quarter_average_w: w(address::QUARTER_AVERAGE_POWER),
        quarter_projected_w: w(address::QUARTER_PROJECTED_POWER),
        month_peak_w: w(address::MONTH_PEAK_POWER),
        seconds_left: w(address::QUARTER_SECONDS_LEFT),
        charger_power_w: (charger_power != NO_BOUND).then_some(charger_power),
    }
}

/// The capacity object of `--json` (stable keys; `charger_power_w` is null when the
/// budget puts no bound on the chargers).
fn capacity_json(words: &[u16]) -> Value {
    let c = capacity(words);
    json!({
        "mode": c.mode,
        "target_w": c.target_w,
        "margin_w": c.margin_w,
        "quarter_average_w": c.quarter_average_w,
        "quarter_projected_w": c.quarter_projected_w,
        "month_peak_w": c.month_peak_w,
        "seconds_left": c.seconds_left,
        "charger_power_w": c.charger_power_w,
    })
}

fn kw(w: u16) -> String {
    format!("{:.2} kW", f64::from(w) / 1000.0)
}

/// The terminal lines of the capacity tariff; empty when `capacity_mode` is 0.
fn capacity_lines(words: &[u16]) -> String {
    let c = capacity(words);
    if c.mode == 0 {
        return String::new();
    }
    let chargers = c.charger_power_w.map_or_else(
        || "no bound on the chargers".to_owned(),
        |w| format!("chargers may draw {}", kw(w)),
    );
    format!(
        "\ncapacity         quarter {} so far, {} projected, month peak {}, {} s left, {chargers}\n\
         {:<16} mode {} ({}), target {}, margin {}\n",
        kw(c.quarter_average_w),
        kw(c.quarter_projected_w),
        kw(c.month_peak_w),
        c.seconds_left,
        "",
        c.mode,
        capacity_mode_name(c.mode),
        kw(c.target_w),
        kw(c.margin_w),
    )
}

/// The charge mode, its settings and the solar status, from the words read at 1000
/// onwards.
struct Solar {
    mode: u16,
    start_surplus_w: u16,
    start_delay_s: u16,
    stop_delay_s: u16,
    max_import_w: u16,
    /// 1127 in W (the register counts 10 W; export positive).
    surplus_w: i32,
    state: u16,
}

fn solar(words: &[u16]) -> Solar {
    let w = |a: u16| word(words, a);
    Solar {
        mode: w(setting::CHARGE_MODE),
        start_surplus_w: w(setting::SOLAR_START_SURPLUS),
        start_delay_s: w(setting::SOLAR_START_DELAY),
        stop_delay_s: w(setting::SOLAR_STOP_DELAY),
        max_import_w: w(setting::SOLAR_MAX_IMPORT),
        surplus_w: i32::from(w(address::SOLAR_SURPLUS) as i16) * 10,
        state: w(address::SOLAR_STATE),
    }
}

/// The solar object of `--json` (stable keys): the mode and the state by name (and
/// their codes), the surplus in W (negative: import), the start/stop settings.
fn solar_json(words: &[u16]) -> Value {
    let s = solar(words);
    json!({
        "mode": charge_mode_name(s.mode),
        "mode_code": s.mode,
        "surplus_w": s.surplus_w,
        "state": solar_state_name(s.state),
        "state_code": s.state,
        "start_surplus_w": s.start_surplus_w,
        "start_delay_s": s.start_delay_s,
        "stop_delay_s": s.stop_delay_s,
        "max_import_w": s.max_import_w,
    })
}

/// The terminal lines of the charge mode; empty in fast mode (1080 = 0).
fn solar_lines(words: &[u16]) -> String {
    let s = solar(words);
    if s.mode == 0 {
        return String::new();
    }
    let start = if s.start_surplus_w == 0 {
        "the car's minimum".to_owned()
    } else {
        format!("{} W", s.start_surplus_w)
    };
    format!(
        "
solar            mode {} ({}), surplus {} W, {} ({})
         {:<16} start on {start} after {} s, stop after {} s above {} W import
",
        s.mode,
        charge_mode_name(s.mode),
        s.surplus_w,
        solar_state_name(s.state).replace('_', " "),
        s.state,
        "",
        s.start_delay_s,
        s.stop_delay_s,
        s.max_import_w,
    )
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
        "capacity": capacity_json(words),
        "solar": solar_json(words),
        "chargers": chargers_json(words),
    })
}

/// The terminal lines of the chargers: a header, then one line per charger.
fn charger_lines(words: &[u16]) -> String {
    let mut out = format!(
        "{:<10} {:>4} {:>9}  {:>11}  {:>11}  {:>11}  {:>5}  flags\n",
        "charger", "unit", "limit", "L1", "L2", "L3", "state"
    );
    for k in 0..charger_count(words) {
        let c = charger(words, k);
        let [l1, l2, l3] = c
            .grid_ca
            .map(|ca| format!("{:>9.2} A", f64::from(ca) / 100.0));
        let names = charger_flag_names(c.flags);
        out.push_str(&format!(
            "{:<10} {:>4} {:>7.1} A  {l1}  {l2}  {l3}  {:>5}  {}\n",
            k + 1,
            charger_unit(words, k),
            f64::from(c.sent_ma) / 1000.0,
            c.state,
            if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(", ")
            }
        ));
    }
    out
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
         uptime           {} s\n{}{}{}",
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
        capacity_lines(words),
        solar_lines(words),
        if charger_count(words) > 1 {
            format!("\n{}", charger_lines(words))
        } else {
            String::new()
        },
    )
}

/// Reads one sample: 1000 up to 1121, then 1122 up to the end of the status of the
/// chargers 1037 names; the words from 1000 onwards (the reserved 1129 reads 0, and so
/// do 1127–1128 on a device that predates them).
async fn read_sample(
    ctx: &mut tokio_modbus::client::Context,
    dev: &DeviceArgs,
) -> Result<Vec<u16>, Failure> {
    let mut words = device::read(ctx, dev, FIRST, address::FIRMWARE_VERSION - FIRST + 1).await?;
    let n = charger_count(&words);
    let first = address::QUARTER_AVERAGE_POWER;
    let count =
        address::CHARGER1_LIMIT - first + CHARGER_STATUS_WORDS * u16::try_from(n).unwrap_or(1);
    let block = device::read(ctx, dev, first, count).await?;
    words.resize(usize::from(first - FIRST), 0);
    words.extend(block);
    Ok(words)
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
        let words = read_sample(&mut ctx, dev).await?;
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
        // 1037 not read (or 0): one charger, always listed in the JSON.
        assert_eq!(s["chargers"].as_array().map(Vec::len), Some(1));
        assert!(
            !t.contains("car_connected"),
            "one charger: no charger lines\n{t}"
        );
    }

    /// The capacity account: always in the JSON (1126 = 65535 as null), a line in the
    /// terminal view only while capacity mode is on.
    #[test]
    fn the_capacity_account_shows_in_kw_while_capacity_mode_is_on() {
        let mut words = vec![0u16; 136];
        words[72..75].copy_from_slice(&[1, 2500, 100]); // 1072–1074
        words[122..127].copy_from_slice(&[2310, 2450, 3100, 412, 1850]); // 1122–1126
        let s = sample(&words);
        assert_eq!(
            s["capacity"],
            json!({"mode": 1, "target_w": 2500, "margin_w": 100,
                   "quarter_average_w": 2310, "quarter_projected_w": 2450,
                   "month_peak_w": 3100, "seconds_left": 412, "charger_power_w": 1850})
        );
        let t = table(&words, "tcp://x:1");
        let line = t
            .lines()
            .find(|l| l.starts_with("capacity "))
            .unwrap_or_else(|| panic!("no capacity line\n{t}"));
        assert_eq!(
            line,
            "capacity         quarter 2.31 kW so far, 2.45 kW projected, month peak 3.10 kW, \
             412 s left, chargers may draw 1.85 kW"
        );
        assert!(
            t.contains("mode 1 (target), target 2.50 kW, margin 0.10 kW"),
            "{t}"
        );

        // No bound on the chargers (65535): null, and said so.
        words[126] = u16::MAX;
        words[72] = 2;
        let s = sample(&words);
        assert_eq!(s["capacity"]["charger_power_w"], Value::Null);
        assert_eq!(s["capacity"]["mode"], 2);
        let t = table(&words, "tcp://x:1");
        assert!(
            t.contains("3.10 kW, 412 s left, no bound on the chargers\n"),
            "{t}"
        );
        assert!(t.contains("mode 2 (follow_peak)"), "{t}");

        // Capacity mode off: the same keys in the JSON, no line.
        words[72] = 0;
        let s = sample(&words);
        let keys: Vec<&str> = s["capacity"]
            .as_object()
            .expect("capacity")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "mode",
                "target_w",
                "margin_w",
                "quarter_average_w",
                "quarter_projected_w",
                "month_peak_w",
                "seconds_left",
                "charger_power_w"
            ]
        );
        assert_eq!(s["capacity"]["mode"], 0);
        let t = table(&words, "tcp://x:1");
        assert!(!t.contains("capacity") && !t.contains("kW"), "{t}");
    }

    /// The charge mode: always in the JSON (mode and state by name, surplus in W,
    /// signed), a solar line in the terminal view only while the mode is not fast.
    #[test]
    fn the_solar_line_shows_while_the_charge_mode_is_not_fast() {
        let mut words = vec![0u16; 136];
        words[80..85].copy_from_slice(&[2, 0, 60, 180, 0]); // 1080–1084
        words[127] = 123; // 1127: 1230 W of surplus
        words[128] = 1; // 1128: waiting to start
        let s = sample(&words);
        assert_eq!(
            s["solar"],
            json!({"mode": "solar_only", "mode_code": 2, "surplus_w": 1230,
                   "state": "waiting_to_start", "state_code": 1,
                   "start_surplus_w": 0, "start_delay_s": 60, "stop_delay_s": 180,
                   "max_import_w": 0})
        );
        let t = table(&words, "tcp://x:1");
        let line = t
            .lines()
            .find(|l| l.starts_with("solar "))
            .unwrap_or_else(|| panic!("no solar line\n{t}"));
        assert_eq!(
            line,
            "solar            mode 2 (solar_only), surplus 1230 W, waiting to start (1)"
        );
        assert!(
            t.contains(
                "start on the car's minimum after 60 s, stop after 180 s above 0 W import\n"
            ),
            "{t}"
        );

        // Importing (negative surplus), minimum + solar, charging on surplus.
        words[80..85].copy_from_slice(&[1, 4200, 30, 300, 500]);
        words[127] = (-45i16) as u16;
        words[128] = 2;
        let s = sample(&words);
        assert_eq!(s["solar"]["surplus_w"], -450);
        assert_eq!(s["solar"]["mode"], "min_solar");
        assert_eq!(s["solar"]["state"], "charging_on_surplus");
        let t = table(&words, "tcp://x:1");
        assert!(
            t.contains("mode 1 (min_solar), surplus -450 W, charging on surplus (2)\n"),
            "{t}"
        );
        assert!(
            t.contains("start on 4200 W after 30 s, stop after 300 s above 500 W import"),
            "{t}"
        );
        words[80] = 3;
        words[128] = 0;
        let t = table(&words, "tcp://x:1");
        assert!(
            t.contains("mode 3 (paused), surplus -450 W, idle (0)"),
            "{t}"
        );

        // Fast: the same keys in the JSON, no line.
        words[80] = 0;
        let s = sample(&words);
        let keys: Vec<&str> = s["solar"]
            .as_object()
            .expect("solar")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "mode",
                "mode_code",
                "surplus_w",
                "state",
                "state_code",
                "start_surplus_w",
                "start_delay_s",
                "stop_delay_s",
                "max_import_w"
            ]
        );
        assert_eq!(s["solar"]["mode"], "fast");
        let t = table(&words, "tcp://x:1");
        assert!(!t.contains("solar"), "{t}");
    }

    #[test]
    fn each_charger_has_an_entry_and_a_line_when_there_are_several() {
        let mut words = vec![0u16; 178];
        words[30] = 5; // 1030: charger 1 at unit 5
        words[37] = 3; // 1037: three chargers
        // Charger 2 (1136 …): 10 A sent, 9.87 A on L2, state 2, wiring known + car.
        words[136..142].copy_from_slice(&[10_000, 0, 987, 0, 2, 0b1_1000]);
        // Charger 3: silent and paused; charger 4 (beyond 1037) has data it must not show.
        words[142..148].copy_from_slice(&[0, 0, 0, 0, 0, 0b101]);
        words[148..154].copy_from_slice(&[6000, 600, 0, 0, 2, 0b1_0000]);
        let s = sample(&words);
        let chargers = s["chargers"].as_array().expect("chargers");
        assert_eq!(chargers.len(), 3);
        let c2 = &chargers[1];
        assert_eq!(c2["charger"], 2);
        assert_eq!(c2["unit"], 6);
        assert_eq!(c2["limit_ma"], 10_000);
        assert_eq!(c2["current_a"], json!([0.0, 9.87, 0.0]));
        assert_eq!(c2["state"], 2);
        assert_eq!(
            c2["flags"],
            json!({"silent": false, "exception": false, "paused": false,
                   "wiring_known": true, "car_connected": true})
        );
        assert_eq!(chargers[2]["flags"]["silent"], true);
        assert_eq!(chargers[2]["flags"]["paused"], true);
        assert_eq!(chargers[2]["flags"]["car_connected"], false);
        let t = table(&words, "tcp://x:1");
        let lines: Vec<&str> = t.lines().collect();
        let header = lines
            .iter()
            .position(|l| l.starts_with("charger ") && l.contains(" unit "))
            .unwrap_or_else(|| panic!("no charger header\n{t}"));
        let rows = &lines[header + 1..];
        assert_eq!(rows.len(), 3, "{t}");
        assert!(
            rows[1].starts_with("2 ") && rows[1].contains("10.0 A"),
            "{t}"
        );
        assert!(rows[1].contains("9.87 A") && rows[1].contains("wiring_known, car_connected"));
        assert!(rows[2].contains("silent, paused"), "{t}");
        assert!(rows[0].ends_with(" -"), "{t}");
    }
}
