//! `p1lb config` and `p1lb monitor` against a real `p1lb run --p1 sim` over Modbus TCP.
//! Every daemon is killed when its test ends (a guard with `Drop`).

mod common;

use common::{BIN, Daemon, free_addr, temp_dir};

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// A running `p1lb run --p1 sim --rs485 sim`; killed on drop.
fn start(state_dir: &Path) -> Daemon {
    Daemon::in_dir(state_dir)
        .args(["--p1", "sim", "--rs485", "sim"])
        .start()
}

/// `p1lb config --device tcp://… ARGS`.
fn config(d: &Daemon, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["config", "--device", &d.device()])
        .args(args)
        .output()
        .expect("p1lb config runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn list_get_set_save_defaults_and_errors() {
    let dir = temp_dir("config");
    let d = start(&dir);

    let out = config(&d, &["list"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("1010 "))
        .unwrap_or_else(|| panic!("no 1010 line:\n{stdout}"));
    assert!(
        line.contains("charger_max_current") && line.contains("16000 mA") && line.ends_with("RW"),
        "{line}"
    );
    assert!(stdout.contains("1091 "), "{stdout}");

    // Set / get round trip, with units and either separator.
    let out = config(&d, &["set", "upper-current", "21A"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = config(&d, &["get", "upper_current"]);
    assert_eq!(text(&out).0.trim(), "upper_current = 21000 mA");
    let out = config(&d, &["set", "upper_wait", "7s"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        text(&config(&d, &["get", "upper-wait"])).0.trim(),
        "upper_wait = 7 s"
    );

    // Out of range: the device answers 03, the message names the range; exit 1.
    let out = config(&d, &["set", "charger_max_current", "5A"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("out of range") && stderr.contains("6000 … 63000"),
        "{stderr}"
    );
    // A unit that does not fit, or an unknown name: usage, exit 2, nothing sent.
    for args in [
        &["set", "upper_wait", "5A"][..],
        &["get", "no_such_register"],
        &["set", "voltage_l1", "230"],
    ] {
        let out = config(&d, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {:?}", text(&out));
    }

    // Save persists into the state dir's TOML.
    let out = config(&d, &["save"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let toml = fs::read_to_string(dir.join("p1lb.toml")).unwrap();
    assert!(toml.contains("upper_current = 21000"), "{toml}");
    assert!(toml.contains("upper_wait = 7"), "{toml}");

    // An inconsistent set: save answers 03 with the rule that fails.
    let out = config(&d, &["set", "lower_current", "21A"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = config(&d, &["save"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lower_current"), "{stderr}");

    // Defaults: back to 22000 in the file.
    let out = config(&d, &["defaults"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let toml = fs::read_to_string(dir.join("p1lb.toml")).unwrap();
    assert!(toml.contains("upper_current = 22000"), "{toml}");
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_device_that_is_not_there_exits_1() {
    let out = Command::new(BIN)
        .args(["config", "--device"])
        .arg(format!("tcp://{}", free_addr()))
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
}

#[test]
fn monitor_json_gives_one_object_per_sample() {
    let dir = temp_dir("monitor");
    let d = start(&dir);
    let out = Command::new(BIN)
        .args(["monitor", "--device", &d.device()])
        .args(["--json", "--count", "2", "--interval", "200ms"])
        .output()
        .expect("p1lb monitor runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        for key in [
            "state",
            "state_code",
            "sent_current_ma",
            "flags",
            "flag_names",
            "grid_current_a",
            "voltage_v",
            "telegrams_valid",
            "telegrams_rejected",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {line}");
        }
        assert_eq!(v["grid_current_a"].as_array().unwrap().len(), 3);
        assert_eq!(v["override_cap_ma"], 16000);
        // One charger (the default charger_count): one entry, charger 1 at unit 1.
        let chargers = v["chargers"].as_array().expect("chargers");
        assert_eq!(chargers.len(), 1, "{line}");
        assert_eq!(chargers[0]["charger"], 1);
        assert_eq!(chargers[0]["unit"], 1);
    }
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}

/// The fields of one entry of `chargers` in `p1lb monitor --json`.
fn check_charger_entry(entry: &serde_json::Value, k: usize) {
    assert_eq!(entry["charger"], k, "{entry}");
    assert!(entry["limit_ma"].is_u64(), "{entry}");
    assert!(entry["state"].is_u64(), "{entry}");
    let current = entry["current_a"].as_array().expect("current_a");
    assert_eq!(current.len(), 3, "{entry}");
    assert!(current.iter().all(|a| a.as_f64().is_some_and(|a| a >= 0.0)));
    let flags = entry["flags"].as_object().expect("flags");
    let names: Vec<&str> = flags.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "silent",
            "exception",
            "paused",
            "wiring_known",
            "car_connected"
        ],
        "{entry}"
    );
    assert!(flags.values().all(serde_json::Value::is_boolean), "{entry}");
}

/// A file with `charger_count = 2` and charger 2 single-phase on L1: the daemon loads
/// it, `p1lb monitor --json` lists two chargers (charger 2's wiring configured: bit 3)
/// and the terminal view one line per charger.
#[test]
fn monitor_lists_every_charger_of_charger_count() {
    let dir = temp_dir("monitor-chargers");
    fs::write(
        dir.join("p1lb.toml"),
        "[settings]\ncharger_count = 2\ncharger2_wiring = 2\ncharger_address = 3\n",
    )
    .unwrap();
    let d = start(&dir);
    assert_eq!(
        text(&config(&d, &["get", "charger_count"])).0.trim(),
        "charger_count = 2"
    );
    let out = Command::new(BIN)
        .args(["monitor", "--device", &d.device()])
        .args(["--json", "--count", "2", "--interval", "200ms"])
        .output()
        .expect("p1lb monitor runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        let chargers = v["chargers"].as_array().expect("chargers");
        assert_eq!(chargers.len(), 2, "{line}");
        for (k, entry) in chargers.iter().enumerate() {
            check_charger_entry(entry, k + 1);
            // At consecutive addresses from charger_address.
            assert_eq!(entry["unit"], 3 + k, "{entry}");
        }
        assert_eq!(chargers[1]["flags"]["wiring_known"], true, "{line}");
    }

    // The terminal view: a line per charger under the header.
    let out = Command::new(BIN)
        .args(["monitor", "--device", &d.device(), "--count", "1"])
        .output()
        .expect("p1lb monitor runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("charger ") && l.contains(" unit "))
        .unwrap_or_else(|| panic!("no charger lines:\n{stdout}"));
    let rows: Vec<&str> = lines[header + 1..]
        .iter()
        .copied()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(
        rows[0].starts_with("1 ") && rows[1].starts_with("2 "),
        "{stdout}"
    );
    assert!(rows[1].contains("wiring_known"), "{stdout}");
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}

/// The new settings by name (get, set, save into the file, out of range refused) and
/// the chargers' status registers by name (read, never written).
#[test]
fn config_names_the_charger_settings_and_status_registers() {
    let dir = temp_dir("config-chargers");
    let d = start(&dir);
    let get = |name: &str| text(&config(&d, &["get", name])).0.trim().to_owned();

    assert_eq!(get("site_max_current"), "site_max_current = 0 mA");
    assert_eq!(get("charger-count"), "charger_count = 1");
    assert_eq!(get("charger3_priority"), "charger3_priority = 1");
    for (name, value) in [
        ("site-max-current", "25A"),
        ("charger_count", "3"),
        ("charger3_priority", "5"),
        ("charger3-max-current", "10A"),
    ] {
        let out = config(&d, &["set", name, value]);
        assert!(out.status.success(), "{name} {value}: {:?}", text(&out));
    }
    assert_eq!(get("site_max_current"), "site_max_current = 25000 mA");
    assert_eq!(get("charger_count"), "charger_count = 3");
    assert_eq!(get("charger3_priority"), "charger3_priority = 5");
    assert_eq!(get("1048"), "charger3_priority = 5");
    assert_eq!(
        get("charger3_max_current"),
        "charger3_max_current = 10000 mA"
    );

    // Out of range: the device answers 03 and the message names the range.
    for (name, value, range) in [
        ("charger_count", "9", "1 … 8"),
        ("charger3_priority", "8", "0 … 7"),
        ("site_max_current", "3A", "0 or 6000 … 63000"),
    ] {
        let out = config(&d, &["set", name, value]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name} {value}: {stderr}");
        assert!(
            stderr.contains("out of range") && stderr.contains(range),
            "{name} {value}: {stderr}"
        );
    }

    let out = config(&d, &["save"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let toml = fs::read_to_string(dir.join("p1lb.toml")).unwrap();
    for line in [
        "site_max_current = 25000",
        "charger_count = 3",
        "charger3_priority = 5",
        "charger3_max_current = 10000",
    ] {
        assert!(toml.lines().any(|l| l == line), "{line} not in\n{toml}");
    }

    // The status of each charger, by name or address; read only.
    let limit = get("charger1_limit");
    assert!(
        limit.starts_with("charger1_limit = ") && limit.ends_with(" mA"),
        "{limit}"
    );
    let current = get("charger2-current-l3");
    assert!(
        current.starts_with("charger2_current_l3 = ") && current.ends_with(" A"),
        "{current}"
    );
    assert!(get("charger3_state").starts_with("charger3_state = "));
    let flags = get("1147");
    assert!(flags.starts_with("charger3_flags = 0x"), "{flags}");
    // Charger 8 is beyond charger_count: all 0.
    assert_eq!(get("charger8_limit"), "charger8_limit = 0 mA");
    assert_eq!(get("charger8_flags"), "charger8_flags = 0x0000");
    let out = config(&d, &["set", "charger1_limit", "10A"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("read only"), "{stderr}");

    // `list` names every register up to charger8_flags (1177).
    let (stdout, _) = text(&config(&d, &["list"]));
    for (address, name) in [
        (1026, "site_max_current"),
        (1037, "charger_count"),
        (1048, "charger3_priority"),
        (1130, "charger1_limit"),
        (1177, "charger8_flags"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{address} ")) && l.contains(name)),
            "{address} {name}:\n{stdout}"
        );
    }
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}

/// The capacity tariff by name: its settings in W (set as W or kW, out of range refused
/// with the range, saved into the file) and its quarter-hour account read only; `p1lb
/// monitor` shows the account once capacity mode is on (`--json`: a `capacity` object,
/// always).
#[test]
fn config_and_monitor_show_the_capacity_tariff() {
    let dir = temp_dir("config-capacity");
    let d = start(&dir);
    let get = |name: &str| text(&config(&d, &["get", name])).0.trim().to_owned();
    let monitor_json = || -> serde_json::Value {
        let out = Command::new(BIN)
            .args(["monitor", "--device", &d.device()])
            .args(["--json", "--count", "1"])
            .output()
            .expect("p1lb monitor runs");
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        serde_json::from_str(stdout.trim()).expect("JSON")
    };
    let monitor_table = || -> String {
        let out = Command::new(BIN)
            .args(["monitor", "--device", &d.device(), "--count", "1"])
            .output()
            .expect("p1lb monitor runs");
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        stdout
    };

    assert_eq!(get("capacity_mode"), "capacity_mode = 0 (off)");
    assert_eq!(get("capacity-target"), "capacity_target = 2500 W");
    assert_eq!(get("1074"), "capacity_margin = 100 W");
    // Off: 1126 reads 65535, no bound on the chargers; no capacity line in the monitor.
    assert_eq!(
        get("capacity_charger_power"),
        "capacity_charger_power = 65535 (no bound)"
    );
    let v = monitor_json();
    let c = &v["capacity"];
    assert_eq!(c["mode"], 0, "{v}");
    assert_eq!(c["target_w"], 2500, "{v}");
    assert_eq!(c["margin_w"], 100, "{v}");
    assert_eq!(c["charger_power_w"], serde_json::Value::Null, "{v}");
    for key in [
        "quarter_average_w",
        "quarter_projected_w",
        "month_peak_w",
        "seconds_left",
    ] {
        assert!(c[key].is_u64(), "{key} in {v}");
    }
    assert!(c["seconds_left"].as_u64().unwrap() <= 900, "{v}");
    let t = monitor_table();
    assert!(!t.contains("capacity"), "{t}");

    for (name, value, shown) in [
        ("capacity-target", "3.5kW", "capacity_target = 3500 W"),
        ("capacity_margin", "250W", "capacity_margin = 250 W"),
        ("capacity_mode", "1", "capacity_mode = 1 (target)"),
    ] {
        let out = config(&d, &["set", name, value]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{name} {value}: {stderr}");
        assert!(stdout.starts_with(shown), "{stdout}");
        assert_eq!(get(name), shown);
    }

    // Out of range: the device answers 03 and the message names the range; a unit that
    // does not fit is refused before anything is sent.
    for (name, value, range) in [
        ("capacity_target", "0.5kW", "1000 … 60000 W (1 kW … 60 kW)"),
        ("capacity_margin", "2001", "0 … 2000 W"),
        ("capacity_mode", "3", "0 … 2"),
    ] {
        let out = config(&d, &["set", name, value]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name} {value}: {stderr}");
        assert!(
            stderr.contains("out of range") && stderr.contains(range),
            "{name} {value}: {stderr}"
        );
    }
    let out = config(&d, &["set", "capacity_target", "16A"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("W or kW"), "{stderr}");

    let out = config(&d, &["save"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let toml = fs::read_to_string(dir.join("p1lb.toml")).unwrap();
    for line in [
        "capacity_mode = 1",
        "capacity_target = 3500",
        "capacity_margin = 250",
    ] {
        assert!(toml.lines().any(|l| l == line), "{line} not in\n{toml}");
    }

    // The account, read only, by name.
    for (name, unit) in [
        ("quarter_average_power", " W"),
        ("quarter-projected-power", " W"),
        ("month_peak_power", " W"),
        ("quarter_seconds_left", " s"),
    ] {
        let line = get(name);
        assert!(
            line.starts_with(&format!("{} = ", name.replace('-', "_"))) && line.ends_with(unit),
            "{line}"
        );
    }
    let out = config(&d, &["set", "month_peak_power", "1kW"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("read only"), "{stderr}");

    // On: the monitor's JSON has the saved settings and its view the capacity line.
    let v = monitor_json();
    let c = &v["capacity"];
    assert_eq!(c["mode"], 1, "{v}");
    assert_eq!(c["target_w"], 3500, "{v}");
    assert_eq!(c["margin_w"], 250, "{v}");
    assert!(
        c["charger_power_w"].is_null() || c["charger_power_w"].is_u64(),
        "{v}"
    );
    let t = monitor_table();
    let line = t
        .lines()
        .find(|l| l.starts_with("capacity "))
        .unwrap_or_else(|| panic!("no capacity line:\n{t}"));
    for want in [
        "quarter ",
        " kW so far, ",
        " kW projected, month peak ",
        " s left, ",
    ] {
        assert!(line.contains(want), "{want:?} not in {line}");
    }
    assert!(
        t.contains("mode 1 (target), target 3.50 kW, margin 0.25 kW"),
        "{t}"
    );
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}

/// The charge mode by name: `set charge-mode solar-only` applies and saves at once (the
/// CLI says so, and that other staged settings still wait for `save`), the solar
/// settings in W/s are staged like the rest, a mode out of range names the modes; the
/// surplus and the solar state read by name; `p1lb monitor` shows a solar line once the
/// mode is not fast (`--json`: a `solar` object, always).
#[test]
fn config_and_monitor_show_the_charge_mode() {
    let dir = temp_dir("config-solar");
    let d = start(&dir);
    let toml = dir.join("p1lb.toml");
    let get = |name: &str| {
        let out = config(&d, &["get", name]);
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "get {name}: {stderr}\n{}",
            d.log_text()
        );
        stdout.trim().to_owned()
    };
    let set = |name: &str, value: &str| -> String {
        let out = config(&d, &["set", name, value]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{name} {value}: {stderr}");
        stdout.trim().to_owned()
    };
    let saved_mode = || {
        fs::read_to_string(&toml)
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("charge_mode = "))
            .map(str::to_owned)
    };
    let monitor_json = || -> serde_json::Value {
        let out = Command::new(BIN)
            .args(["monitor", "--device", &d.device()])
            .args(["--json", "--count", "1"])
            .output()
            .expect("p1lb monitor runs");
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        serde_json::from_str(stdout.trim()).expect("JSON")
    };
    let monitor_table = || -> String {
        let out = Command::new(BIN)
            .args(["monitor", "--device", &d.device(), "--count", "1"])
            .output()
            .expect("p1lb monitor runs");
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        stdout
    };

    assert_eq!(get("charge_mode"), "charge_mode = 0 (fast)");
    assert_eq!(get("solar-start-surplus"), "solar_start_surplus = 0 W");
    assert_eq!(get("1082"), "solar_start_delay = 60 s");
    assert_eq!(get("solar_stop_delay"), "solar_stop_delay = 180 s");
    assert_eq!(get("solar_max_import"), "solar_max_import = 0 W");
    let surplus = get("solar_surplus");
    assert!(
        surplus.starts_with("solar_surplus = ") && surplus.ends_with(" W"),
        "{surplus}"
    );
    let state = get("solar_state");
    assert!(
        state.starts_with("solar_state = ") && state.ends_with(')'),
        "{state}"
    );
    // Fast: a solar object in the JSON, no solar line.
    let v = monitor_json();
    let s = &v["solar"];
    assert_eq!(s["mode"], "fast", "{v}");
    assert_eq!(s["mode_code"], 0, "{v}");
    assert!(s["surplus_w"].is_i64(), "{v}");
    assert!(s["state"].is_string() && s["state_code"].is_u64(), "{v}");
    assert_eq!(s["start_delay_s"], 60, "{v}");
    assert!(!monitor_table().contains("solar"));

    // By name: applied and saved at once, nothing staged.
    assert_eq!(
        set("charge-mode", "solar-only"),
        "charge_mode = 2 (solar_only) (applied and saved at once)"
    );
    assert_eq!(get("charge_mode"), "charge_mode = 2 (solar_only)");
    assert_eq!(saved_mode().as_deref(), Some("charge_mode = 2"));
    let v = monitor_json();
    assert!(
        !v["flag_names"]
            .as_array()
            .expect("flag_names")
            .contains(&"unsaved_changes".into()),
        "{v}"
    );
    // The solar settings in W and s: staged, as any other setting.
    for (name, value, shown) in [
        (
            "solar_start_surplus",
            "4.2kW",
            "solar_start_surplus = 4200 W",
        ),
        ("solar-start-delay", "2min", "solar_start_delay = 120 s"),
        ("solar_stop_delay", "300s", "solar_stop_delay = 300 s"),
        ("solar_max_import", "500W", "solar_max_import = 500 W"),
    ] {
        assert_eq!(
            set(name, value),
            format!("{shown} (staged: `p1lb config save` makes it last)")
        );
        assert_eq!(get(name), shown);
    }
    // A new mode with settings staged: saved alone, and the CLI says what still waits.
    assert_eq!(
        set("charge_mode", "Minimum+Solar"),
        "charge_mode = 1 (min_solar) (applied and saved at once; other staged settings \
         still wait for `p1lb config save`)"
    );
    assert_eq!(saved_mode().as_deref(), Some("charge_mode = 1"));
    let file = fs::read_to_string(&toml).unwrap();
    assert!(
        file.lines().any(|l| l == "solar_start_surplus = 0"),
        "{file}"
    );

    // The monitor: the solar line with the mode, the surplus in W, the state by name.
    let t = monitor_table();
    let line = t
        .lines()
        .find(|l| l.starts_with("solar "))
        .unwrap_or_else(|| panic!("no solar line:\n{t}"));
    assert!(
        line.starts_with("solar            mode 1 (min_solar), surplus "),
        "{line}"
    );
    assert!(line.contains(" W, "), "{line}");
    assert!(
        t.contains("start on 4200 W after 120 s, stop after 300 s above 500 W import"),
        "{t}"
    );
    let v = monitor_json();
    assert_eq!(v["solar"]["mode"], "min_solar", "{v}");
    assert_eq!(v["solar"]["start_surplus_w"], 4200, "{v}");
    assert_eq!(v["solar"]["max_import_w"], 500, "{v}");

    // Out of range: the device answers 03 and the message names the modes; an unknown
    // name is refused before anything is sent.
    let out = config(&d, &["set", "charge_mode", "4"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("out of range")
            && stderr.contains("0 … 3 (0 fast, 1 min_solar, 2 solar_only, 3 paused)"),
        "{stderr}"
    );
    let out = config(&d, &["set", "charge_mode", "turbo"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("fast, min_solar, solar_only, paused"),
        "{stderr}"
    );
    for (name, value, range) in [
        ("solar_start_delay", "3601", "0 … 3600 s"),
        ("solar_max_import", "61kW", "0 … 60000 W"),
    ] {
        let out = config(&d, &["set", name, value]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name} {value}: {stderr}");
        assert!(stderr.contains(range), "{name} {value}: {stderr}");
    }
    let out = config(&d, &["set", "solar_surplus", "1kW"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert_eq!(get("charge_mode"), "charge_mode = 1 (min_solar)");
    assert_eq!(saved_mode().as_deref(), Some("charge_mode = 1"));

    // `save` writes the staged solar settings.
    let out = config(&d, &["save"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let file = fs::read_to_string(&toml).unwrap();
    for line in [
        "charge_mode = 1",
        "solar_start_surplus = 4200",
        "solar_start_delay = 120",
        "solar_stop_delay = 300",
        "solar_max_import = 500",
    ] {
        assert!(file.lines().any(|l| l == line), "{line} not in\n{file}");
    }
    assert_eq!(
        set("charge_mode", "paused"),
        "charge_mode = 3 (paused) (applied and saved at once)"
    );
    assert!(monitor_table().contains("mode 3 (paused)"));
    drop(d);
    let _ = fs::remove_dir_all(&dir);
}
