//! Dependencies point one way inside the core, lowest first: time (`src/time.rs`)
//! imports nothing from the core; the Modbus codec (`src/modbus/`) knows frames,
//! exceptions and lines, and nothing of the application above it; the settings (`config`) and the register map (`registers`) know neither the
//! balancer nor what drives them (the Terra AC driver, the device, the bus master, the
//! register map's server).

use std::path::Path;

/// The patterns by which a file of the core reaches into module `m`.
fn patterns(m: &str) -> [String; 3] {
    [
        format!("crate::{m}::"),
        format!("crate::{m};"),
        format!("crate::{{{m}"),
    ]
}

/// Fails naming every line of `files` that reaches into one of `above`.
fn assert_reaches_none_of(files: &[std::path::PathBuf], above: &[&str], what: &str) {
    let mut found = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path).expect("read");
        for (n, line) in text.lines().enumerate() {
            for m in above {
                if patterns(m).iter().any(|p| line.contains(p.as_str())) {
                    found.push(format!(
                        "{}:{}: reaches up into `{m}`: {line}",
                        path.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(found.is_empty(), "{what}:\n{}", found.join("\n"));
}

fn src(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(rel)
}

/// `time` is the lowest layer: everything that takes the clock builds on it.
#[test]
fn time_imports_nothing_from_the_core() {
    let text = std::fs::read_to_string(src("time.rs")).expect("read");
    let found: Vec<_> = text.lines().filter(|l| l.contains("crate::")).collect();
    assert!(found.is_empty(), "time.rs reaches into the core: {found:?}");
}

#[test]
fn the_modbus_codec_imports_nothing_from_above_it() {
    let dir = src("modbus");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("src/modbus")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(files.len() >= 6, "read {} files", files.len());
    let above = [
        "abb",
        "balancer",
        "bus_master",
        "capacity",
        "config",
        "config_store",
        "solar",
        "device",
        "led",
        "meter_emulation",
        "p1",
        "registers",
        "server",
    ];
    assert_reaches_none_of(&files, &above, "the codec reaches above itself");
}

#[test]
fn the_settings_and_the_register_map_import_nothing_from_above_them() {
    let above = [
        "abb",
        "balancer",
        "bus_master",
        "capacity",
        "config_store",
        "device",
        "led",
        "meter_emulation",
        "server",
        "solar",
    ];
    assert_reaches_none_of(
        &[src("config.rs"), src("registers.rs")],
        &above,
        "the settings or the map reach above themselves",
    );
    // The settings sit below the map.
    assert_reaches_none_of(&[src("config.rs")], &["registers"], "config reaches up");
}

/// The capacity tariff's account sits between the reading and the balancer: it knows
/// the meter's readings and the settings, and nothing of what uses it.
#[test]
fn the_capacity_account_imports_nothing_from_above_it() {
    let above = [
        "abb",
        "balancer",
        "bus_master",
        "config_store",
        "device",
        "led",
        "meter_emulation",
        "registers",
        "server",
        "modbus",
    ];
    assert_reaches_none_of(&[src("capacity.rs")], &above, "capacity reaches up");
}

/// The charge modes sit beside the capacity account, between the settings and the
/// balancer: they know the settings and the clock, and nothing of what uses them (nor
/// the meter's telegram: the balancer hands them its net power).
#[test]
fn the_charge_modes_import_nothing_from_above_them() {
    let above = [
        "abb",
        "balancer",
        "bus_master",
        "capacity",
        "config_store",
        "device",
        "led",
        "meter_emulation",
        "p1",
        "registers",
        "server",
        "modbus",
    ];
    assert_reaches_none_of(&[src("solar.rs")], &above, "solar reaches up");
}
