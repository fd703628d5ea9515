//! The daemon's TOML file: `[p1]`, `[rs485]`, `[modbus_tcp]`, `[led]`, `[http]`, `[mqtt]` and
//! `[settings]` (the saved settings of the register map, by name, deserialized straight
//! into [`Config`], which names the key and the allowed range when a value is wrong).
//!
//! [`save_settings`] persists a saved configuration by rewriting only the values of the
//! `[settings]` table (toml_edit keeps comments, order and the other sections), and
//! replaces the file atomically: temporary file in the same folder, fsync, rename,
//! fsync of the folder. A power cut leaves the old file or the new one.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use p1lb_core::config::Config;
use serde::Deserialize;

/// The commented example (`config/p1lb.toml`): written into a state folder that has no
/// file yet.
pub const EXAMPLE: &str = include_str!("../../config/p1lb.toml");

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// `[p1]`.
    pub p1: P1Section,
    /// `[rs485]`.
    pub rs485: Rs485Section,
    /// `[modbus_tcp]`.
    pub modbus_tcp: ModbusTcpSection,
    /// `[led]`.
    pub led: LedSection,
    /// `[http]`: the status page, `/api/status` and `/metrics`; off when the section
    /// is absent (and no `--http` flag).
    pub http: Option<HttpSection>,
    /// `[mqtt]`: off unless it names a broker.
    pub mqtt: MqttSection,
    /// `[settings]`: the register map's saved settings.
    pub settings: Config,
}

/// `[p1]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct P1Section {
    /// A serial device, `tcp://host:port` or `sim`.
    pub source: String,
}

impl Default for P1Section {
    fn default() -> Self {
        P1Section {
            source: "/dev/ttyUSB0".into(),
        }
    }
}

/// The daemon's role on the RS485 bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Rs485Role {
    /// Answer the register map (and the emulated meter) to another master.
    #[default]
    Server,
    /// Drive a Terra AC configured as secondary.
    Master,
}

impl Rs485Role {
    /// `server` or `master`.
    pub fn name(self) -> &'static str {
        match self {
            Rs485Role::Server => "server",
            Rs485Role::Master => "master",
        }
    }
}

/// `[rs485]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rs485Section {
    /// The HAT's serial device, or `sim`.
    pub path: String,
    /// The role on the bus.
    pub role: Rs485Role,
    /// Switch the UART to the kernel's RS485 mode (TIOCSRS485, RTS drives the
    /// transceiver's enable while sending), for HATs without automatic direction.
    pub kernel_rs485: bool,
}

impl Default for Rs485Section {
    fn default() -> Self {
        Rs485Section {
            path: "/dev/ttyAMA0".into(),
            role: Rs485Role::Server,
            kernel_rs485: false,
        }
    }
}

/// `[modbus_tcp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModbusTcpSection {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Refuse every write with exception 01.
    pub read_only: bool,
}

impl Default for ModbusTcpSection {
    fn default() -> Self {
        ModbusTcpSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 1502)),
            read_only: false,
        }
    }
}

/// `[http]`: the small HTTP server (status page, `/api/status`, `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSection {
    /// Where to listen (loopback by default).
    pub listen: SocketAddr,
    /// Take register writes (`POST /api/write`); needs `password_file`.
    pub allow_writes: bool,
    /// A file holding the password for writes (its first line), readable only by the
    /// service user.
    pub password_file: Option<std::path::PathBuf>,
}

/// Where the HTTP server listens by default.
pub const HTTP_DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8080,
));

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: HTTP_DEFAULT_LISTEN,
            allow_writes: false,
            password_file: None,
        }
    }
}

impl HttpSection {
    /// The password for writes: `None` when writes are off; an error when they are on
    /// without a readable, non-empty password file.
    pub fn password(&self) -> Result<Option<String>> {
        if !self.allow_writes {
            return Ok(None);
        }
        let Some(path) = &self.password_file else {
            bail!("[http] allow_writes = true needs password_file (a file with the password)");
        };
        read_password_file("http", path).map(Some)
    }
}

/// Reads a section's `password_file` (`[http]`, `[mqtt]`): its first line without the
/// line end. Refused, with what to do, when group or others may read the file (it must be
/// readable only by the service user) and when that line is empty.
pub fn read_password_file(section: &str, path: &Path) -> Result<String> {
    let what = || format!("[{section}] password_file {}", path.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).with_context(what)?.permissions().mode();
        if mode & 0o044 != 0 {
            bail!(
                "{} is readable by group or others (mode {:o}): `chmod 600` it (readable \
                 only by the service user)",
                what(),
                mode & 0o777
            );
        }
    }
    let text = fs::read_to_string(path).with_context(what)?;
    let password = text.lines().next().unwrap_or("");
    if password.is_empty() {
        bail!("{}: its first line is empty", what());
    }
    Ok(password.to_owned())
}

/// `[led]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedSection {
    /// Drive the LED at all.
    pub enabled: bool,
    /// GPIO pin, BCM numbering.
    pub bcm_pin: u8,
}

impl Default for LedSection {
    fn default() -> Self {
        LedSection {
            enabled: true,
            bcm_pin: 17,
        }
    }
}

/// `[mqtt]`: the register map on an MQTT broker, with Home Assistant discovery
/// ([`crate::daemon::mqtt`]). Off while `url` is not set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSection {
    /// `mqtt://HOST:PORT` or `mqtts://HOST:PORT` (TLS with the system's trusted
    /// certificates); none: MQTT off.
    pub url: Option<String>,
    /// Publish Home Assistant discovery (`false`: only the plain topics).
    pub discovery: bool,
    /// The root of the plain topics (default `p1lb/<server address>`).
    pub prefix: Option<String>,
    /// Home Assistant's discovery prefix.
    pub discovery_prefix: String,
    /// The MQTT client id (default `p1lb-<server address>`).
    pub client_id: Option<String>,
    /// The user name at the broker.
    pub username: Option<String>,
    /// A file holding the password, readable only by the service user.
    pub password_file: Option<std::path::PathBuf>,
}

impl Default for MqttSection {
    fn default() -> Self {
        MqttSection {
            url: None,
            discovery: true,
            prefix: None,
            discovery_prefix: "homeassistant".into(),
            client_id: None,
            username: None,
            password_file: None,
        }
    }
}

/// Parses the file's text. The error names the key and, for a setting, its allowed
/// range (the core's [`Config`] deserializer).
pub fn parse(text: &str) -> Result<FileConfig, toml::de::Error> {
    toml::from_str(text)
}

/// Reads and parses `path`.
pub fn load(path: &Path) -> Result<FileConfig> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes `config` into the `[settings]` table of the file at `path` (created from
/// [`EXAMPLE`] when missing) and replaces the file atomically. Only setting values
/// change: a key already in the table gets its new value (its comments kept); a
/// missing key is added only when its value differs from the default.
pub fn save_settings(path: &Path, config: &Config) -> Result<()> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => EXAMPLE.to_owned(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let updated = update_settings(&text, config)
        .with_context(|| format!("updating [settings] of {}", path.display()))?;
    write_atomic(path, updated.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The text of a TOML file with the `[settings]` values replaced by `config`'s.
pub fn update_settings(text: &str, config: &Config) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = text.parse()?;
    let item = doc.entry("settings").or_insert_with(toml_edit::table);
    let Some(table) = item.as_table_like_mut() else {
        bail!("`settings` is not a table");
    };
    for (setting, value) in config.iter() {
        let new = i64::from(value);
        match table.get_mut(setting.name) {
            Some(old) => {
                let decor = old.as_value().map(|v| v.decor().clone());
                let mut v = toml_edit::Value::from(new);
                if let Some(d) = decor {
                    *v.decor_mut() = d;
                }
                *old = toml_edit::Item::Value(v);
            }
            None if value != setting.default => {
                table.insert(setting.name, toml_edit::value(new));
            }
            None => {}
        }
    }
    Ok(doc.to_string())
}

static SAVE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Replaces `path` with `bytes` so that a power cut leaves the old or the new file:
/// a temporary file in the same folder, fsync, rename over `path`, fsync the folder.
/// The old file's permissions are kept.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    // One fixed temporary name (a cut leaves at most one, replaced by the next save),
    // and one save at a time (Modbus TCP and RTU may both ask).
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let _one_at_a_time = SAVE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        if let Ok(meta) = fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsync of a folder: the rename in it survives a power cut.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Windows opens no folder as a file (the rename is `MoveFileEx` replacing the file).
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use p1lb_core::config::SETTINGS;

    #[test]
    fn example_parses_to_the_defaults_and_names_every_setting_with_its_unit() {
        let f = parse(EXAMPLE).expect("example parses");
        assert_eq!(f.settings, Config::default());
        assert_eq!(f.p1.source, "/dev/ttyUSB0");
        assert_eq!(f.modbus_tcp.listen.to_string(), "127.0.0.1:1502");
        assert_eq!(f.rs485.role, Rs485Role::Server);
        assert_eq!(f.http, None, "the status page is off unless configured");
        let settings = EXAMPLE.split_once("[settings]").expect("settings table").1;
        let lines: Vec<&str> = settings.lines().collect();
        for s in SETTINGS {
            let key = format!("{} = {}", s.name, s.default);
            let at = lines
                .iter()
                .position(|l| *l == key)
                .unwrap_or_else(|| panic!("{key} missing"));
            let comment = lines[at - 1];
            assert!(
                comment.starts_with(&format!("# {}:", s.address)),
                "{comment}"
            );
            if !s.unit.is_empty() {
                assert!(comment.contains(&format!(", {}.", s.unit)), "{comment}");
            }
        }
    }

    #[test]
    fn the_http_section_parses_with_loopback_defaults_and_names_bad_keys() {
        let f = parse("[http]\n").unwrap();
        let http = f.http.expect("on");
        assert_eq!(http.listen.to_string(), "127.0.0.1:8080");
        assert!(!http.allow_writes);
        assert_eq!(http.password().unwrap(), None);
        let f = parse("[http]\nlisten = \"0.0.0.0:80\"\nallow_writes = true\n").unwrap();
        let http = f.http.unwrap();
        assert_eq!(http.listen.port(), 80);
        let e = http.password().unwrap_err().to_string();
        assert!(e.contains("password_file"), "{e}");
        let e = parse("[http]\nlisten = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen"), "{e}");
        let e = parse("[http]\nallow_write = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_write"), "{e}");
        // The example's commented section, uncommented, parses.
        let block: String = EXAMPLE
            .split_once("# [http]")
            .expect("the example documents [http]")
            .1
            .lines()
            .take_while(|l| l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        let f = parse(&format!("[http]\n{block}")).unwrap();
        assert_eq!(f.http.unwrap().listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn kernel_rs485_parses_and_defaults_to_off() {
        assert!(!parse(EXAMPLE).unwrap().rs485.kernel_rs485);
        assert!(
            !parse("[rs485]\nrole = \"master\"\n")
                .unwrap()
                .rs485
                .kernel_rs485
        );
        let f = parse("[rs485]\nkernel_rs485 = true\n").unwrap();
        assert!(f.rs485.kernel_rs485);
        let e = parse("[rs485]\nkernel_rs485 = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("kernel_rs485"), "{e}");
    }

    #[test]
    fn a_bad_value_names_the_key_and_the_range() {
        let e = parse("[settings]\nupper_current = 30000\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("upper_current") || e.contains("alarm_current"),
            "{e}"
        );
        let e = parse("[settings]\nlower_wait = 300\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lower_wait") && e.contains("1 … 255"), "{e}");
        let e = parse("[settings]\nno_such = 1\n").unwrap_err().to_string();
        assert!(e.contains("no_such"), "{e}");
        let e = parse("[p1]\nsorce = \"sim\"\n").unwrap_err().to_string();
        assert!(e.contains("sorce"), "{e}");
    }

    #[test]
    fn several_chargers_load_and_a_bad_combination_names_the_setting() {
        use p1lb_core::config::Wiring;
        let f = parse("[settings]\ncharger_count = 2\ncharger2_wiring = 2\n").expect("loads");
        assert_eq!(f.settings.chargers(), 2);
        assert_eq!(f.settings.wiring_of(0), Wiring::Learn);
        assert_eq!(f.settings.wiring_of(1), Wiring::Single(0));
        let mut want = Config::default();
        want.set_charger_count(2).unwrap();
        want.set_wiring_of(1, Wiring::Single(0)).unwrap();
        assert_eq!(f.settings, want, "the rest at the defaults");
        // Saved and read back through the example file.
        let out = update_settings(EXAMPLE, &want).unwrap();
        assert!(out.contains("\ncharger_count = 2\n"), "{out}");
        assert!(out.contains("\ncharger2_wiring = 2\n"), "{out}");
        assert_eq!(parse(&out).unwrap().settings, want);

        // Refused, with the setting's name and what is allowed.
        let cases: &[(&str, &[&str])] = &[
            (
                "charger1_max_current = 3000",
                &["charger1_max_current (1041) = 3000", "0 or 6000 … 63000 mA"],
            ),
            (
                "charger_min_current = 8000\ncharger2_max_current = 7000",
                &["charger2_max_current (1044)", "charger_min_current"],
            ),
            (
                "charger_address = 247\ncharger_count = 2",
                &["charger_count (1037)", "charger_address"],
            ),
            ("charger_count = 9", &["charger_count (1037) = 9", "1 … 8"]),
            ("charger_count = 0", &["charger_count (1037) = 0", "1 … 8"]),
            (
                "charger2_wiring = 7",
                &["charger2_wiring (1043) = 7", "0 … 6"],
            ),
            (
                "charger3_priority = 8",
                &["charger3_priority (1048) = 8", "0 … 7"],
            ),
            (
                "site_max_current = 5999",
                &["site_max_current (1026)", "0 or 6000"],
            ),
            ("charger9_priority = 1", &["charger9_priority"]),
        ];
        for (settings, words) in cases {
            let e = parse(&format!("[settings]\n{settings}\n"))
                .map(|f| f.settings)
                .expect_err(settings)
                .to_string();
            for w in *words {
                assert!(e.contains(w), "{settings}: no {w:?} in {e}");
            }
        }
    }

    /// `want` saved through the example file: each of `lines` stands once (the example's
    /// lines changed in place), and the file reads back as `want`.
    fn saved_in_place(want: &Config, lines: &[&str]) {
        let out = update_settings(EXAMPLE, want).unwrap();
        for line in lines {
            assert_eq!(
                out.lines().filter(|l| l == line).count(),
                1,
                "{line}\n{out}"
            );
        }
        assert_eq!(&parse(&out).unwrap().settings, want);
    }

    #[test]
    fn capacity_settings_load_by_name_round_trip_and_a_bad_value_names_the_setting() {
        use p1lb_core::config::CapacityMode;
        let f =
            parse("[settings]\ncapacity_mode = 2\ncapacity_target = 3500\ncapacity_margin = 150\n")
                .expect("loads");
        assert_eq!(f.settings.capacity_mode(), CapacityMode::FollowPeak);
        assert_eq!(f.settings.capacity_target_w(), 3500);
        assert_eq!(f.settings.capacity_margin_w(), 150);
        let mut want = Config::default();
        want.set_capacity_mode(CapacityMode::FollowPeak).unwrap();
        want.set_capacity_target_w(3500).unwrap();
        want.set_capacity_margin_w(150).unwrap();
        assert_eq!(f.settings, want, "the rest at the defaults");
        saved_in_place(
            &want,
            &[
                "capacity_mode = 2",
                "capacity_target = 3500",
                "capacity_margin = 150",
            ],
        );
        // Into a file without them: added (they differ from the defaults), and back.
        let out = update_settings("[settings]\nphases = 3\n", &want).unwrap();
        assert!(out.contains("\ncapacity_target = 3500\n"), "{out}");
        assert_eq!(parse(&out).unwrap().settings, want);
        // Back to the defaults: the example's lines say so again.
        let out = update_settings(EXAMPLE, &Config::default()).unwrap();
        assert_eq!(out, EXAMPLE);

        let cases: &[(&str, &[&str])] = &[
            ("capacity_mode = 3", &["capacity_mode (1072) = 3", "0 … 2"]),
            (
                "capacity_target = 999",
                &["capacity_target (1073) = 999", "1000 … 60000 W"],
            ),
            (
                "capacity_target = 60001",
                &["capacity_target (1073) = 60001", "1000 … 60000 W"],
            ),
            (
                "capacity_margin = 2001",
                &["capacity_margin (1074) = 2001", "0 … 2000 W"],
            ),
            ("capacity_targett = 3000", &["capacity_targett"]),
        ];
        for (settings, words) in cases {
            let e = parse(&format!("[settings]\n{settings}\n"))
                .map(|f| f.settings)
                .expect_err(settings)
                .to_string();
            for w in *words {
                assert!(e.contains(w), "{settings}: no {w:?} in {e}");
            }
        }
    }

    #[test]
    fn solar_settings_load_by_name_round_trip_and_a_bad_value_names_the_setting() {
        use p1lb_core::config::ChargeMode;
        let f = parse(
            "[settings]\ncharge_mode = 2\nsolar_start_surplus = 4200\n\
             solar_start_delay = 30\nsolar_stop_delay = 300\nsolar_max_import = 500\n",
        )
        .expect("loads");
        assert_eq!(f.settings.charge_mode(), ChargeMode::SolarOnly);
        assert_eq!(f.settings.solar_start_surplus_w(), 4200);
        assert_eq!(f.settings.solar_start_delay_s(), 30);
        assert_eq!(f.settings.solar_stop_delay_s(), 300);
        assert_eq!(f.settings.solar_max_import_w(), 500);
        let mut want = Config::default();
        want.set_charge_mode(ChargeMode::SolarOnly).unwrap();
        want.set_solar_start_surplus_w(4200).unwrap();
        want.set_solar_start_delay_s(30).unwrap();
        want.set_solar_stop_delay_s(300).unwrap();
        want.set_solar_max_import_w(500).unwrap();
        assert_eq!(f.settings, want, "the rest at the defaults");
        saved_in_place(
            &want,
            &[
                "charge_mode = 2",
                "solar_start_surplus = 4200",
                "solar_start_delay = 30",
                "solar_stop_delay = 300",
                "solar_max_import = 500",
            ],
        );
        // Only the mode changed (what a write of 1080 saves): one line differs.
        let mut paused = Config::default();
        paused.set_charge_mode(ChargeMode::Paused).unwrap();
        let out = update_settings(EXAMPLE, &paused).unwrap();
        let changed: Vec<(&str, &str)> = EXAMPLE
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(changed, [("charge_mode = 0", "charge_mode = 3")]);
        // Into a file without them: added (they differ from the defaults), and back.
        let out = update_settings("[settings]\nphases = 3\n", &want).unwrap();
        assert!(out.contains("\ncharge_mode = 2\n"), "{out}");
        assert_eq!(parse(&out).unwrap().settings, want);

        let cases: &[(&str, &[&str])] = &[
            ("charge_mode = 4", &["charge_mode (1080) = 4", "0 … 3"]),
            (
                "solar_start_surplus = 60001",
                &["solar_start_surplus (1081) = 60001", "0 … 60000 W"],
            ),
            (
                "solar_start_delay = 3601",
                &["solar_start_delay (1082) = 3601", "0 … 3600 s"],
            ),
            (
                "solar_stop_delay = 3601",
                &["solar_stop_delay (1083) = 3601", "0 … 3600 s"],
            ),
            (
                "solar_max_import = 60001",
                &["solar_max_import (1084) = 60001", "0 … 60000 W"],
            ),
            ("charge_mode = \"solar\"", &["charge_mode"]),
        ];
        for (settings, words) in cases {
            let e = parse(&format!("[settings]\n{settings}\n"))
                .map(|f| f.settings)
                .expect_err(settings)
                .to_string();
            for w in *words {
                assert!(e.contains(w), "{settings}: no {w:?} in {e}");
            }
        }
    }

    #[test]
    fn update_keeps_comments_and_other_sections() {
        let text = "# top\n[p1]\nsource = \"sim\" # here\n\n[settings]\n# the charger\ncharger_max_current = 16000 # mA\nphases = 3\n";
        let mut c = Config::default();
        c.set_charger_max_ma(20000).unwrap();
        c.set_upper_wait_s(7).unwrap();
        let out = update_settings(text, &c).unwrap();
        assert!(
            out.contains("# top\n[p1]\nsource = \"sim\" # here\n"),
            "{out}"
        );
        assert!(
            out.contains("# the charger\ncharger_max_current = 20000 # mA\n"),
            "{out}"
        );
        assert!(out.contains("phases = 3\n"), "{out}");
        assert!(out.contains("upper_wait = 7"), "{out}");
        assert!(!out.contains("lower_wait"), "defaults not added: {out}");
        assert_eq!(parse(&out).unwrap().settings, c);
        // The example keeps every comment.
        let out = update_settings(EXAMPLE, &c).unwrap();
        assert_eq!(
            out.lines().filter(|l| l.starts_with('#')).count(),
            EXAMPLE.lines().filter(|l| l.starts_with('#')).count()
        );
        assert_eq!(parse(&out).unwrap().settings, c);
    }

    #[test]
    fn save_is_atomic_and_fails_cleanly() {
        let dir = std::env::temp_dir().join(format!("p1lb-file-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p1lb.toml");
        let mut c = Config::default();
        c.set_alarm_wait_s(9).unwrap();
        save_settings(&path, &c).unwrap();
        assert_eq!(load(&path).unwrap().settings, c);
        let leftovers = fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left");
        let missing = dir.join("no-such-dir").join("p1lb.toml");
        assert!(save_settings(&missing, &c).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_password_file_readable_by_others_or_empty_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("p1lb-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "secret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_password_file("http", &f).unwrap_err().to_string();
        assert!(
            e.contains("readable by group or others") && e.contains("644"),
            "{e}"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password_file("http", &f).unwrap(), "secret");
        std::fs::write(&f, "\nsecret\n").unwrap();
        let e = read_password_file("http", &f).unwrap_err().to_string();
        assert!(e.contains("first line is empty"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
