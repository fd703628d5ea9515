//! Dependencies point one way inside the core: the Modbus codec (`src/modbus/`) knows
//! frames, exceptions and lines, and nothing of the application above it — the Terra AC
//! driver, the settings, the register map, the balancer, the device, the bus master or
//! the register map's server.

use std::path::Path;

/// The modules above the codec.
const ABOVE: &[&str] = &[
    "abb",
    "balancer",
    "bus_master",
    "config",
    "config_store",
    "device",
    "led",
    "meter_emulation",
    "p1",
    "registers",
    "server",
];

#[test]
fn the_modbus_codec_imports_nothing_from_above_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/modbus");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("src/modbus") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        files += 1;
        for (n, line) in text.lines().enumerate() {
            for m in ABOVE {
                for pattern in [
                    format!("crate::{m}::"),
                    format!("crate::{m};"),
                    format!("crate::{{{m}"),
                ] {
                    assert!(
                        !line.contains(&pattern),
                        "{}:{}: the codec reaches up into `{m}`: {line}",
                        path.display(),
                        n + 1
                    );
                }
            }
        }
    }
    assert!(files >= 6, "read {files} files");
}
