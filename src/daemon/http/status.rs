//! What the HTTP server shows, sans-IO: a [`Snapshot`] taken under the device's lock
//! (a copy of the register words and counters, nothing more), then rendered without it
//! as `/api/status` JSON ([`status_json`]), `/metrics` text ([`metrics`]) or a
//! [`Sample`] for the history. The register list, the settings table and the generic
//! register metrics come from [`REGISTERS`]: a register added to the map shows up
//! without a change here.

use std::fmt::Write as _;

use p1lb_core::balancer::State;
use p1lb_core::config::{Config, MAX_CHARGERS};
use p1lb_core::p1::ReaderStats;
use p1lb_core::registers::{
    Access, CHARGER_STATUS_WORDS, FIRST, LAST, REGISTERS, Register, address, charger_status_address,
};
use serde_json::{Value, json};

use crate::cli::units;
use crate::daemon::shared::{PortState, Shared};
use crate::daemon::stats::{LATENCY_BUCKETS_S, Rs485Stats};

/// Words of the map, 1000 … 1199.
pub const WORDS: usize = (LAST - FIRST + 1) as usize;

/// A copy of everything shown, taken at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Registers 1000 … 1199 as a Modbus read gives them.
    pub words: [u16; WORDS],
    /// The balancer's state.
    pub state: State,
    /// The saved configuration (in force).
    pub saved: Config,
    /// The P1 reader's counters.
    pub p1: ReaderStats,
    /// The RS485 counters.
    pub rs485: Rs485Stats,
    /// The RS485 port.
    pub port: PortState,
    /// Writes are allowed (with the password).
    pub writes: bool,
}

impl Snapshot {
    /// Takes one, holding the device's lock only to copy the words.
    pub fn take(shared: &Shared, writes: bool) -> Snapshot {
        let mut words = [0u16; WORDS];
        let (state, saved) = {
            let core = shared.core();
            let (a, b) = words.split_at_mut(100);
            // Both ranges are inside the map: these reads cannot fail.
            let _ = core.map.read(FIRST, a);
            let _ = core.map.read(FIRST + 100, b);
            (core.balancer.decision().state, *core.map.saved())
        };
        Snapshot {
            words,
            state,
            saved,
            p1: shared.stats.p1(),
            rs485: shared.stats.rs485(),
            port: shared.rs485(),
            writes,
        }
    }

    /// The word at `address` (0 outside the map).
    pub fn word(&self, address: u16) -> u16 {
        address
            .checked_sub(FIRST)
            .and_then(|i| self.words.get(usize::from(i)))
            .copied()
            .unwrap_or(0)
    }

    /// A register's value (signed, 32-bit combined).
    pub fn value(&self, reg: &Register) -> i64 {
        units::raw_value(reg, &self.words)
    }

    /// Grid current of phase `p` (0 … 2), in 0.01 A (signed).
    pub fn grid_ca(&self, p: u16) -> i16 {
        self.word(address::GRID_CURRENT_L1 + p) as i16
    }

    /// Charger `k`'s (0-based) status block: limit (mA), currents (0.01 A), state,
    /// flags.
    fn charger(&self, k: usize) -> Option<(u16, [u16; 3], u16, u16)> {
        let a = charger_status_address(k)?;
        debug_assert_eq!(CHARGER_STATUS_WORDS, 6);
        Some((
            self.word(a),
            [self.word(a + 1), self.word(a + 2), self.word(a + 3)],
            self.word(a + 4),
            self.word(a + 5),
        ))
    }

    /// The chargers configured (1037), at most [`MAX_CHARGERS`].
    fn chargers(&self) -> usize {
        usize::from(self.saved.charger_count()).clamp(1, MAX_CHARGERS)
    }
}

/// What a state means, in the words of the README's table (the LED frame is the
/// core's, [`p1lb_core::led::pattern`]).
pub fn state_meaning(state: State) -> &'static str {
    match state {
        State::Normal => {
            "Normal: the highest phase current is between the lower and upper limits; the limit holds."
        }
        State::Lower => {
            "Lower limit: the highest phase current is at or below the lower limit; the limit steps up."
        }
        State::Upper => {
            "Upper limit: the highest phase current is above the upper limit; the limit steps down."
        }
        State::Alarm => {
            "Alarm limit: the highest phase current is above the alarm limit; the limit steps down fast."
        }
        State::Fallback => "Fallback: no valid meter data; the limit is the fallback current.",
    }
}

fn led(state: State) -> String {
    String::from_utf8_lossy(&p1lb_core::led::pattern(state)).into_owned()
}

fn amps(ma: impl Into<f64>) -> f64 {
    ma.into() / 1000.0
}

fn centi(ca: impl Into<f64>) -> f64 {
    (ca.into() * 100.0).round() / 10_000.0
}

/// `/api/status`: the live values, the chargers, and every register of the map.
pub fn status_json(s: &Snapshot) -> Value {
    let phases: Vec<Value> = (0..3u16)
        .map(|p| {
            json!({
                "phase": format!("L{}", p + 1),
                "grid_ca": s.grid_ca(p),
                "grid_a": centi(s.grid_ca(p)),
                "voltage_v": f64::from(s.word(address::VOLTAGE_L1 + p)) / 10.0,
                "charger_ca": s.word(address::CHARGER_CURRENT_L1 + p),
                "charger_a": centi(s.word(address::CHARGER_CURRENT_L1 + p)),
            })
        })
        .collect();
    let chargers: Vec<Value> = (0..s.chargers())
        .filter_map(|k| {
            let (limit, currents, state, flags) = s.charger(k)?;
            Some(json!({
                "number": k + 1,
                "limit_ma": limit,
                "current_ca": currents,
                "state": state,
                "flags": units::charger_flag_names(
                    p1lb_core::registers::ChargerFlags::from_bits_retain(flags)),
            }))
        })
        .collect();
    let registers: Vec<Value> = REGISTERS
        .iter()
        .map(|r| {
            let raw = s.value(r);
            let mut v = json!({
                "address": r.address,
                "name": r.name,
                "title": r.title,
                "unit": r.unit,
                "access": r.access.as_str(),
                "value": raw,
                "text": units::format_value(r, raw),
            });
            if let (Some(setting), Some(obj)) = (r.setting, v.as_object_mut()) {
                obj.insert("default".into(), json!(setting.default));
                obj.insert("range".into(), json!(units::range_text(r)));
                obj.insert("saved".into(), json!(s.saved.get(r.address)));
            }
            v
        })
        .collect();
    let flags = s.word(address::STATUS_FLAGS);
    let saved = &s.saved;
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": s.value_at(address::UPTIME),
        "writes": s.writes,
        "state": {
            "code": s.state.code(),
            "name": units::state_name(s.state.code()),
            "meaning": state_meaning(s.state),
            "led": led(s.state),
        },
        "limit_ma": s.word(address::SENT_CURRENT),
        "cap_ma": s.word(address::OVERRIDE_CAP),
        "flags": units::flag_names(flags),
        "flags_raw": flags,
        "seconds_since_telegram": s.word(address::SECONDS_SINCE_TELEGRAM),
        "phases_used": saved.phases(),
        "phases": phases,
        "import_w": s.value_at(address::IMPORT_POWER),
        "export_w": s.value_at(address::EXPORT_POWER),
        "limits_ma": {
            "lower": saved.lower_ma(),
            "upper": saved.upper_ma(),
            "alarm": saved.alarm_ma(),
            "charger_max": saved.charger_max_ma(),
            "charger_min": saved.charger_min_ma(),
            "site_max": saved.site_max_ma(),
        },
        "chargers": chargers,
        "telegrams": {
            "valid": s.p1.valid,
            "rejected": s.p1.rejected(),
        },
        "rs485": match s.port {
            PortState::Unused => "unused",
            PortState::Closed => "closed",
            PortState::Open => "open",
        },
        "registers": registers,
    })
}

impl Snapshot {
    /// The value of the register at `address` (0 when none starts there).
    pub fn value_at(&self, address: u16) -> i64 {
        p1lb_core::registers::register(address)
            .filter(|r| r.address == address)
            .map_or(0, |r| self.value(r))
    }
}

/// One point of the history: at `uptime_s`, the grid and charger currents per phase
/// (0.01 A), the limit sent (mA) and the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Seconds since the daemon started (register 1119).
    pub uptime_s: u32,
    /// Grid currents, 0.01 A, signed.
    pub grid_ca: [i16; 3],
    /// The charger's currents, 0.01 A.
    pub charger_ca: [u16; 3],
    /// The limit sent (1001), mA.
    pub limit_ma: u16,
    /// The balancer state (1002).
    pub state: u16,
}

impl Sample {
    /// The sample of a snapshot.
    pub fn of(s: &Snapshot) -> Sample {
        Sample {
            uptime_s: u32::try_from(s.value_at(address::UPTIME)).unwrap_or(0),
            grid_ca: [0, 1, 2].map(|p| s.grid_ca(p)),
            charger_ca: [0, 1, 2].map(|p| s.word(address::CHARGER_CURRENT_L1 + p)),
            limit_ma: s.word(address::SENT_CURRENT),
            state: s.word(address::BALANCER_STATE),
        }
    }

    /// `[uptime_s, grid L1, L2, L3, charger L1, L2, L3, limit_ma, state]`, currents in
    /// 0.01 A.
    pub fn to_json(self) -> Value {
        json!([
            self.uptime_s,
            self.grid_ca[0],
            self.grid_ca[1],
            self.grid_ca[2],
            self.charger_ca[0],
            self.charger_ca[1],
            self.charger_ca[2],
            self.limit_ma,
            self.state
        ])
    }
}

/// A label value in the text exposition format: `\`, `"` and line feeds escaped.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Builds the exposition text, one metric family at a time.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// `/metrics`: the Prometheus text exposition format (version 0.0.4).
pub fn metrics(s: &Snapshot) -> String {
    let mut m = Exposition(String::with_capacity(16 * 1024));
    m.family("p1lb_build_info", "gauge", "Build information (always 1).");
    m.sample(
        "p1lb_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    m.one(
        "p1lb_uptime_seconds",
        "gauge",
        "Seconds since the daemon started (register 1119).",
        s.value_at(address::UPTIME),
    );
    const PHASES: [&str; 3] = ["L1", "L2", "L3"];
    m.family(
        "p1lb_grid_current_amperes",
        "gauge",
        "Grid current per phase as used by the balancer, import positive (1100-1102).",
    );
    for (p, name) in (0u16..).zip(PHASES) {
        m.sample(
            "p1lb_grid_current_amperes",
            &[("phase", name)],
            centi(s.grid_ca(p)),
        );
    }
    m.family(
        "p1lb_voltage_volts",
        "gauge",
        "Voltage per phase (1103-1105).",
    );
    for (p, name) in (0u16..).zip(PHASES) {
        m.sample(
            "p1lb_voltage_volts",
            &[("phase", name)],
            f64::from(s.word(address::VOLTAGE_L1 + p)) / 10.0,
        );
    }
    m.one(
        "p1lb_import_power_watts",
        "gauge",
        "Total import power (1106).",
        s.value_at(address::IMPORT_POWER),
    );
    m.one(
        "p1lb_export_power_watts",
        "gauge",
        "Total export power (1108).",
        s.value_at(address::EXPORT_POWER),
    );
    m.one(
        "p1lb_limit_sent_amperes",
        "gauge",
        "Charging current limit decided by the balancer, the value sent (1001).",
        amps(s.word(address::SENT_CURRENT)),
    );
    m.one(
        "p1lb_override_cap_amperes",
        "gauge",
        "Current cap set by an outside system (1000).",
        amps(s.word(address::OVERRIDE_CAP)),
    );
    m.one(
        "p1lb_balancer_state_code",
        "gauge",
        "Balancer state 0-4 (1002): 0 normal, 1 lower, 2 upper, 3 alarm, 4 fallback.",
        s.state.code(),
    );
    m.family(
        "p1lb_balancer_state",
        "gauge",
        "1 for the balancer's present state, 0 for the others.",
    );
    for code in 0..5u16 {
        m.sample(
            "p1lb_balancer_state",
            &[("state", units::state_name(code))],
            u8::from(code == s.state.code()),
        );
    }
    let flags = s.word(address::STATUS_FLAGS);
    m.family(
        "p1lb_status_flag",
        "gauge",
        "Fault and status flags of register 1003, one per bit.",
    );
    for (bit, name) in units::FLAG_NAMES.iter().enumerate() {
        m.sample("p1lb_status_flag", &[("flag", name)], (flags >> bit) & 1);
    }
    m.one(
        "p1lb_seconds_since_telegram",
        "gauge",
        "Seconds since the last valid telegram (1004).",
        s.word(address::SECONDS_SINCE_TELEGRAM),
    );
    m.family(
        "p1lb_charger_current_amperes",
        "gauge",
        "Each charger's current per grid phase, as read back (1131 + 6(k-1) ...).",
    );
    for k in 0..s.chargers() {
        if let Some((_, currents, _, _)) = s.charger(k) {
            let number = (k + 1).to_string();
            for (c, name) in currents.iter().zip(PHASES) {
                m.sample(
                    "p1lb_charger_current_amperes",
                    &[("charger", &number), ("phase", name)],
                    centi(*c),
                );
            }
        }
    }
    m.family(
        "p1lb_charger_limit_amperes",
        "gauge",
        "The limit sent to each charger (1130 + 6(k-1)).",
    );
    for k in 0..s.chargers() {
        if let Some((limit, _, _, _)) = s.charger(k) {
            let number = (k + 1).to_string();
            m.sample(
                "p1lb_charger_limit_amperes",
                &[("charger", &number)],
                amps(limit),
            );
        }
    }
    m.family(
        "p1lb_charger_state",
        "gauge",
        "Each charger's charging state as it reports it (1134 + 6(k-1)).",
    );
    for k in 0..s.chargers() {
        if let Some((_, _, state, _)) = s.charger(k) {
            let number = (k + 1).to_string();
            m.sample("p1lb_charger_state", &[("charger", &number)], state);
        }
    }
    m.one(
        "p1lb_p1_telegrams_valid_total",
        "counter",
        "Valid P1 telegrams since the daemon started.",
        s.p1.valid,
    );
    m.family(
        "p1lb_p1_telegrams_rejected_total",
        "counter",
        "P1 telegrams rejected since the daemon started, by reason.",
    );
    let p = &s.p1;
    for (reason, n) in [
        ("bad_crc", p.bad_crc),
        ("line_too_long", p.line_too_long),
        ("telegram_too_long", p.telegram_too_long),
        ("truncated", p.truncated),
        ("bad_footer", p.bad_footer),
        ("missing_crc", p.missing_crc),
        ("malformed", p.malformed),
    ] {
        m.sample("p1lb_p1_telegrams_rejected_total", &[("reason", reason)], n);
    }
    m.one(
        "p1lb_p1_skipped_bytes_total",
        "counter",
        "Bytes outside any telegram that were not line ends or spaces.",
        p.skipped_bytes,
    );
    m.one(
        "p1lb_p1_skipped_lines_total",
        "counter",
        "Lines of accepted telegrams that were not valid P1 syntax.",
        p.skipped_lines,
    );
    let r = &s.rs485;
    m.one(
        "p1lb_rs485_port_open",
        "gauge",
        "1 while the RS485 port is open.",
        u8::from(s.port == PortState::Open),
    );
    m.one(
        "p1lb_rs485_port_openings_total",
        "counter",
        "Times the RS485 port was opened.",
        r.opened,
    );
    m.one(
        "p1lb_rs485_exchanges_total",
        "counter",
        "Master role: exchanges finished (reply, exception or silence after retries).",
        r.exchanges,
    );
    m.one(
        "p1lb_rs485_status_reads_total",
        "counter",
        "Master role: charger status reads that succeeded.",
        r.fresh_reads,
    );
    for (name, help, n) in [
        (
            "frames_sent",
            "Master role: request frames sent, retries included.",
            u64::from(r.client.sent),
        ),
        (
            "retries",
            "Master role: retries.",
            u64::from(r.client.retries),
        ),
        (
            "timeouts",
            "Master role: attempts that timed out.",
            u64::from(r.client.timeouts),
        ),
        (
            "bad_frames",
            "Master role: received bytes that were not a frame.",
            u64::from(r.client.bad_frames),
        ),
        (
            "invalid_replies",
            "Master role: replies that failed validation.",
            u64::from(r.client.invalid),
        ),
        ("served", "Server role: requests answered.", r.served),
        (
            "ignored",
            "Server role: frames ignored (CRC, malformed, refused broadcast).",
            r.ignored,
        ),
        (
            "other_unit_frames",
            "Server role: frames for other units.",
            r.not_for_us,
        ),
    ] {
        let metric = format!("p1lb_rs485_{name}_total");
        m.one(&metric, "counter", help, n);
    }
    let h = &r.latency;
    m.family(
        "p1lb_rs485_exchange_duration_seconds",
        "histogram",
        "Master role: time from an exchange's first byte sent to its result (retries included).",
    );
    let cumulative = h.cumulative();
    for (le, n) in LATENCY_BUCKETS_S.iter().zip(cumulative) {
        m.sample(
            "p1lb_rs485_exchange_duration_seconds_bucket",
            &[("le", &le.to_string())],
            n,
        );
    }
    m.sample(
        "p1lb_rs485_exchange_duration_seconds_bucket",
        &[("le", "+Inf")],
        h.count,
    );
    m.sample("p1lb_rs485_exchange_duration_seconds_sum", &[], h.sum_s);
    m.sample("p1lb_rs485_exchange_duration_seconds_count", &[], h.count);
    m.family(
        "p1lb_register",
        "gauge",
        "Every readable register of the map, raw value in its unit (label unit).",
    );
    for reg in REGISTERS.iter().filter(|r| r.access != Access::Write) {
        let address = reg.address.to_string();
        m.sample(
            "p1lb_register",
            &[
                ("address", &address),
                ("name", reg.name),
                ("unit", reg.unit),
            ],
            s.value(reg),
        );
    }
    m.0
}
