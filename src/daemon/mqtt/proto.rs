//! The sans-IO half of the MQTT task: register snapshots in, MQTT messages out;
//! MQTT messages in, register writes (or refusals) out. No sockets, no clock, no
//! locks: [`super`] moves the bytes.
//!
//! Everything is generated from the register map ([`REGISTERS`]): a register added to
//! the map gets its state topic, its `…/set` topic when writable, and its Home
//! Assistant entity, with no change here.
//!
//! Topics under the prefix `P` (default `p1lb/<server address>`):
//! - `P/status`: `online` / `offline` (retained; `offline` is the last will);
//! - `P/<register name>`: the value in the entity's unit (A, V, W, s; the name for an
//!   enumeration), retained;
//! - `P/<register name>/set`: a write, in the same unit (a name for an enumeration,
//!   `1` or `PRESS` for a button); through the daemon's register write path;
//! - `P/result`: the outcome of each write, as JSON (not retained).
//!
//! Home Assistant discovery: `<discovery prefix>/<component>/<node>/<name>/config`,
//! retained, one device (`<node>` is the prefix with `/` as `_`).

use p1lb_core::config::Range;
use p1lb_core::registers::{Access, FIRST, LAST, REGISTERS, Register, Type};
use serde_json::{Value as Json, json};

use crate::cli::home_assistant::no_value;
use crate::cli::units::{self, Shown, shown, value_names};

/// The number of words from 1000 to 1199: a snapshot of the map.
pub const WORDS: usize = (LAST - FIRST + 1) as usize;

/// Every state is published again at least this often (seconds) even when unchanged.
pub const REFRESH_S: u64 = 30;

/// A payload on a `…/set` topic longer than this is refused unread.
pub const MAX_COMMAND: usize = 64;

/// One MQTT message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic.
    pub topic: String,
    /// The payload (UTF-8 text or JSON).
    pub payload: String,
    /// Retained by the broker.
    pub retain: bool,
}

/// The entity a register is in Home Assistant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// A read-only value.
    Sensor,
    /// A writable value with a range.
    Number,
    /// A writable value from a list (an enumeration, or a setting with a list of values).
    Select,
    /// A write-only command (save, restore defaults).
    Button,
}

impl Component {
    /// Home Assistant's name of the platform.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Sensor => "sensor",
            Component::Number => "number",
            Component::Select => "select",
            Component::Button => "button",
        }
    }
}

/// The entity `reg` is.
pub fn component(reg: &Register) -> Component {
    match reg.access {
        Access::Write => Component::Button,
        Access::Read => Component::Sensor,
        Access::ReadWrite if options(reg).is_some() => Component::Select,
        Access::ReadWrite => Component::Number,
    }
}

/// The options of a select: `(raw value, option)`, the names of an enumeration or the
/// values of a setting with a list; `None` for any other register.
pub fn options(reg: &Register) -> Option<Vec<(u16, String)>> {
    if let Some(names) = value_names(reg) {
        return Some(names.iter().map(|(c, n)| (*c, (*n).to_owned())).collect());
    }
    match reg.setting.map(|s| s.range) {
        Some(Range::OneOf(list)) => Some(list.iter().map(|v| (*v, v.to_string())).collect()),
        _ => None,
    }
}

/// The topics of one daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// The root of the plain topics (`p1lb/10`).
    pub prefix: String,
    /// Home Assistant's discovery prefix (`homeassistant`).
    pub discovery_prefix: String,
    /// The node id in discovery topics and unique ids (`p1lb_10`).
    pub node: String,
}

impl Topics {
    /// The topics under `prefix` (trailing `/` dropped) with Home Assistant's discovery
    /// under `discovery_prefix`.
    pub fn new(prefix: &str, discovery_prefix: &str) -> Topics {
        let prefix = prefix.trim_end_matches('/').to_owned();
        let node: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Topics {
            prefix,
            discovery_prefix: discovery_prefix.trim_end_matches('/').to_owned(),
            node,
        }
    }

    /// `P/status`: availability.
    pub fn availability(&self) -> String {
        format!("{}/status", self.prefix)
    }

    /// `P/result`: the outcome of each write.
    pub fn result(&self) -> String {
        format!("{}/result", self.prefix)
    }

    /// `P/<name>`: a register's value.
    pub fn state(&self, reg: &Register) -> String {
        format!("{}/{}", self.prefix, reg.name)
    }

    /// `P/<name>/set`: a write to a register.
    pub fn command(&self, reg: &Register) -> String {
        format!("{}/{}/set", self.prefix, reg.name)
    }

    /// What the task subscribes to: every `…/set` under the prefix (unknown names are
    /// answered too) and Home Assistant's birth message.
    pub fn subscriptions(&self, discovery: bool) -> Vec<String> {
        let mut s = vec![format!("{}/+/set", self.prefix)];
        if discovery {
            s.push(self.ha_status());
        }
        s
    }

    /// Home Assistant's status topic (`homeassistant/status`): `online` when it
    /// (re)starts.
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }

    /// The discovery topic of `reg`'s entity.
    pub fn discovery(&self, reg: &Register) -> String {
        format!(
            "{}/{}/{}/{}/config",
            self.discovery_prefix,
            component(reg).as_str(),
            self.node,
            reg.name
        )
    }
}

/// The device every entity belongs to.
fn device(topics: &Topics, server_address: u8) -> Json {
    json!({
        "identifiers": [topics.node],
        "name": "p1lb",
        "manufacturer": "p1lb",
        "model": format!("P1 load balancer (Modbus unit {server_address})"),
        "sw_version": env!("CARGO_PKG_VERSION"),
    })
}

/// The readable name of a register (`charger_max_current` → `Charger max current`).
fn pretty(name: &str) -> String {
    let mut s = name.replace('_', " ");
    if let Some(first) = s.get(..1) {
        let up = first.to_ascii_uppercase();
        s.replace_range(..1, &up);
    }
    s
}

/// The range of a number entity in the entity's unit: (min, max, step).
fn number_range(reg: &Register, s: &Shown) -> (f64, f64, f64) {
    let scale = s.scale.unwrap_or(1.0);
    let (lo, hi) = match reg.setting.map(|s| s.range) {
        Some(Range::Span(lo, hi)) => (lo, hi),
        Some(Range::ZeroOr(_, hi)) => (0, hi),
        _ => (0, u16::MAX),
    };
    (f64::from(lo) * scale, f64::from(hi) * scale, scale)
}

/// The discovery message of `reg`'s entity (retained).
pub fn discovery(topics: &Topics, reg: &Register, server_address: u8) -> Message {
    let s = shown(reg);
    let kind = component(reg);
    let mut c = json!({
        "name": pretty(reg.name),
        "unique_id": format!("{}_{}", topics.node, reg.name),
        "object_id": format!("p1lb_{}", reg.name),
        "availability_topic": topics.availability(),
        "device": device(topics, server_address),
    });
    let Some(obj) = c.as_object_mut() else {
        unreachable!("a JSON object")
    };
    if kind != Component::Button {
        obj.insert("state_topic".into(), json!(topics.state(reg)));
    }
    if kind != Component::Sensor {
        obj.insert("command_topic".into(), json!(topics.command(reg)));
        obj.insert("entity_category".into(), json!("config"));
    }
    let named = options(reg);
    match kind {
        Component::Button => {
            obj.insert("payload_press".into(), json!("1"));
        }
        Component::Select => {
            let opts: Vec<String> = named.unwrap_or_default().into_iter().map(|o| o.1).collect();
            obj.insert("options".into(), json!(opts));
        }
        Component::Number => {
            let (min, max, step) = number_range(reg, &s);
            obj.insert("min".into(), json!(min));
            obj.insert("max".into(), json!(max));
            obj.insert("step".into(), json!(step));
            obj.insert("mode".into(), json!("box"));
            if let Some(u) = s.unit {
                obj.insert("unit_of_measurement".into(), json!(u));
            }
            if let Some(dc) = s.device_class {
                obj.insert("device_class".into(), json!(dc));
            }
        }
        Component::Sensor => {
            if named.is_none() {
                if let Some(u) = s.unit {
                    obj.insert("unit_of_measurement".into(), json!(u));
                }
                if let Some(dc) = s.device_class {
                    obj.insert("device_class".into(), json!(dc));
                }
                if let Some(class) = state_class(reg, &s) {
                    obj.insert("state_class".into(), json!(class));
                }
                if s.scale.is_some() {
                    obj.insert("suggested_display_precision".into(), json!(s.precision));
                }
                if s.device_class.is_none() {
                    obj.insert("entity_category".into(), json!("diagnostic"));
                }
            }
        }
    }
    Message {
        topic: topics.discovery(reg),
        payload: c.to_string(),
        retain: true,
    }
}

/// A measurement, a counter (two-word values without a power unit: telegram counts,
/// uptime) or neither.
fn state_class(reg: &Register, s: &Shown) -> Option<&'static str> {
    if reg.ty == Type::U32 && s.device_class != Some("power") {
        Some("total_increasing")
    } else if s.device_class.is_some() {
        Some("measurement")
    } else {
        None
    }
}

/// Every discovery message, one per register of the map.
pub fn discovery_all(topics: &Topics, server_address: u8) -> Vec<Message> {
    REGISTERS
        .iter()
        .map(|r| discovery(topics, r, server_address))
        .collect()
}

/// The state payload of `reg` from the words read at 1000 onwards: in the entity's
/// unit (`16.000`, `230.1`), the name of an enumeration's value, `None` (Home
/// Assistant's "unknown") for a value that means none.
pub fn state_payload(reg: &Register, words: &[u16]) -> String {
    let raw = units::raw_value(reg, words);
    if let Some(none) = no_value(reg) {
        if raw == i64::from(none) {
            return "None".to_owned();
        }
    }
    if let Some(opts) = options(reg) {
        return opts
            .into_iter()
            .find(|(c, _)| i64::from(*c) == raw)
            .map_or_else(|| raw.to_string(), |(_, n)| n);
    }
    let s = shown(reg);
    match s.scale {
        Some(scale) => format!("{:.*}", usize::from(s.precision), raw as f64 * scale),
        None => raw.to_string(),
    }
}

/// What changed since the last publish, and the 30 s refresh: one entry per register
/// of the map with a state topic, the payload last handed to the broker.
#[derive(Debug, Clone)]
pub struct States {
    last: Vec<Option<String>>,
}

impl Default for States {
    fn default() -> Self {
        States {
            last: vec![None; REGISTERS.len()],
        }
    }
}

impl States {
    /// The state messages due for the snapshot `words` (1000–1199): those that changed
    /// since [`States::sent`] was last told, or all of them when `all`. Each comes with
    /// its index for [`States::sent`]; one not sent (the queue was full) stays due, so
    /// a slow broker gets the latest value once it drains, never a backlog.
    pub fn due(&self, topics: &Topics, words: &[u16], all: bool) -> Vec<(usize, Message)> {
        REGISTERS
            .iter()
            .enumerate()
            .filter(|(_, r)| r.access != Access::Write)
            .filter_map(|(i, r)| {
                let payload = state_payload(r, words);
                let changed = self.last.get(i).and_then(|l| l.as_deref()) != Some(&payload);
                (all || changed).then(|| {
                    (
                        i,
                        Message {
                            topic: topics.state(r),
                            payload,
                            retain: true,
                        },
                    )
                })
            })
            .collect()
    }

    /// The message of index `i` was handed to the broker.
    pub fn sent(&mut self, i: usize, payload: &str) {
        if let Some(slot) = self.last.get_mut(i) {
            *slot = Some(payload.to_owned());
        }
    }

    /// Forget what was sent (after a reconnect every state goes again).
    pub fn forget(&mut self) {
        self.last.iter_mut().for_each(|l| *l = None);
    }
}

/// A message that came in, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Home Assistant's birth (`true`, `online`) or last will (`false`).
    HaStatus(bool),
    /// A write to do: register `address` gets `raw` (from `register`'s `…/set`).
    Write {
        /// The register's name.
        register: &'static str,
        /// Its address.
        address: u16,
        /// The raw register value.
        raw: u16,
    },
    /// A refused command: nothing is written; the reason goes to the result topic.
    Refused(String),
    /// Not for us (a topic outside the prefix): ignored.
    Ignore,
}

/// Sorts an incoming message: Home Assistant's status, a write (its payload converted
/// from the entity's unit to the raw value with the CLI's unit table), or a refusal
/// saying why. Never panics, whatever the topic and payload.
pub fn incoming(topics: &Topics, topic: &str, payload: &[u8], retained: bool) -> Incoming {
    if topic == topics.ha_status() {
        return match payload {
            b"online" => Incoming::HaStatus(true),
            b"offline" => Incoming::HaStatus(false),
            _ => Incoming::Ignore,
        };
    }
    let Some(rest) = topic
        .strip_prefix(topics.prefix.as_str())
        .and_then(|r| r.strip_prefix('/'))
    else {
        return Incoming::Ignore;
    };
    let Some(name) = rest.strip_suffix("/set") else {
        return Incoming::Refused("unknown topic (commands go to <prefix>/<register>/set)".into());
    };
    let Some(reg) = REGISTERS.iter().find(|r| r.name == name) else {
        return Incoming::Refused("no such register".into());
    };
    if reg.access == Access::Read {
        return Incoming::Refused(format!("{} is read only", reg.name));
    }
    if retained {
        // A retained command would be replayed at every reconnect.
        return Incoming::Refused("retained commands are refused".into());
    }
    if payload.len() > MAX_COMMAND {
        return Incoming::Refused(format!("payload longer than {MAX_COMMAND} bytes"));
    }
    let Ok(text) = std::str::from_utf8(payload) else {
        return Incoming::Refused("payload is not UTF-8".into());
    };
    match raw_of(reg, text.trim()) {
        Ok(raw) => Incoming::Write {
            register: reg.name,
            address: reg.address,
            raw,
        },
        Err(why) => Incoming::Refused(why),
    }
}

/// The raw value of `text` for `reg`: an option of a select, `1`/`PRESS` for a
/// button, a number in the entity's unit (through the CLI's unit table).
fn raw_of(reg: &Register, text: &str) -> Result<u16, String> {
    if component(reg) == Component::Button && text.eq_ignore_ascii_case("press") {
        return Ok(1);
    }
    if let Some(opts) = options(reg) {
        if let Some((code, _)) = opts.iter().find(|(_, n)| n == text) {
            return Ok(*code);
        }
        if value_names(reg).is_some() && !text.bytes().all(|b| b.is_ascii_digit()) {
            let names: Vec<String> = opts.into_iter().map(|o| o.1).collect();
            return Err(format!("not one of {}", names.join(", ")));
        }
    }
    let number: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !number.is_finite() {
        return Err(format!("{text:?} is not a number"));
    }
    let with_unit = match shown(reg).unit {
        Some(u) => format!("{text} {u}"),
        None => text.to_owned(),
    };
    units::parse_value(reg, &with_unit).map_err(|f| f.message)
}

/// The result message of a command on `topic`: `{"topic", "payload", "ok", …}` with
/// the register and raw value written, or the error.
pub fn result(
    topics: &Topics,
    topic: &str,
    payload: &[u8],
    outcome: Result<(&str, u16), &str>,
) -> Message {
    let shown_payload: String = String::from_utf8_lossy(payload).chars().take(80).collect();
    let shown_topic: String = topic.chars().take(200).collect();
    let body = match outcome {
        Ok((register, raw)) => json!({
            "topic": shown_topic, "payload": shown_payload, "ok": true,
            "register": register, "raw": raw,
        }),
        Err(error) => json!({
            "topic": shown_topic, "payload": shown_payload, "ok": false, "error": error,
        }),
    };
    Message {
        topic: topics.result(),
        payload: body.to_string(),
        retain: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p1lb_core::config::Config;
    use p1lb_core::registers::RegisterMap;
    use proptest::prelude::*;

    fn topics() -> Topics {
        Topics::new("p1lb/10", "homeassistant")
    }

    fn words(map: &RegisterMap) -> Vec<u16> {
        let mut w = vec![0u16; WORDS];
        let (a, b) = w.split_at_mut(125);
        map.read(FIRST, a).unwrap();
        map.read(FIRST + 125, b).unwrap();
        w
    }

    fn reg(name: &str) -> &'static Register {
        REGISTERS.iter().find(|r| r.name == name).unwrap()
    }

    fn config_of(topic: &str) -> Json {
        let d = discovery_all(&topics(), 10);
        let m = d.iter().find(|m| m.topic == topic).unwrap();
        assert!(m.retain);
        serde_json::from_str(&m.payload).unwrap()
    }

    #[test]
    fn every_register_has_one_entity_with_unique_topics() {
        let d = discovery_all(&topics(), 10);
        assert_eq!(d.len(), REGISTERS.len());
        let mut t: Vec<&str> = d.iter().map(|m| m.topic.as_str()).collect();
        t.sort_unstable();
        t.dedup();
        assert_eq!(t.len(), REGISTERS.len());
        for m in &d {
            let j: Json = serde_json::from_str(&m.payload).unwrap();
            assert_eq!(j["availability_topic"], "p1lb/10/status");
            assert_eq!(j["device"]["identifiers"][0], "p1lb_10");
        }
    }

    #[test]
    fn entities_have_the_units_ranges_and_options_of_the_table() {
        let c = config_of("homeassistant/number/p1lb_10/charger_max_current/config");
        assert_eq!(c["unit_of_measurement"], "A");
        assert_eq!(c["device_class"], "current");
        assert_eq!(c["min"], 6.0);
        assert_eq!(c["max"], 63.0);
        assert_eq!(c["step"], 0.001);
        assert_eq!(c["command_topic"], "p1lb/10/charger_max_current/set");
        assert_eq!(c["state_topic"], "p1lb/10/charger_max_current");
        let c = config_of("homeassistant/sensor/p1lb_10/grid_current_l1/config");
        assert_eq!(c["unit_of_measurement"], "A");
        assert_eq!(c["state_class"], "measurement");
        assert!(c.get("command_topic").is_none());
        let c = config_of("homeassistant/sensor/p1lb_10/voltage_l2/config");
        assert_eq!(c["unit_of_measurement"], "V");
        assert_eq!(c["device_class"], "voltage");
        let c = config_of("homeassistant/sensor/p1lb_10/telegrams_valid/config");
        assert_eq!(c["state_class"], "total_increasing");
        let c = config_of("homeassistant/select/p1lb_10/charge_mode/config");
        assert_eq!(
            c["options"],
            json!(["fast", "min_solar", "solar_only", "paused"])
        );
        let c = config_of("homeassistant/select/p1lb_10/capacity_mode/config");
        assert_eq!(c["options"], json!(["off", "target", "follow_peak"]));
        let c = config_of("homeassistant/select/p1lb_10/phases/config");
        assert_eq!(c["options"], json!(["1", "3"]));
        let c = config_of("homeassistant/select/p1lb_10/charger3_wiring/config");
        assert_eq!(c["options"][4], "single_l3");
        let c = config_of("homeassistant/number/p1lb_10/solar_start_delay/config");
        assert_eq!(
            (c["unit_of_measurement"].clone(), c["max"].clone()),
            (json!("s"), json!(3600.0))
        );
        for b in ["save", "restore_defaults"] {
            let c = config_of(&format!("homeassistant/button/p1lb_10/{b}/config"));
            assert_eq!(c["command_topic"], format!("p1lb/10/{b}/set"));
            assert_eq!(c["payload_press"], "1");
        }
    }

    #[test]
    fn states_are_in_the_entity_unit_and_follow_changes() {
        let mut map = RegisterMap::new(Config::default());
        map.status_mut().grid_ca[0] = -1234;
        let w = words(&map);
        assert_eq!(state_payload(reg("charger_max_current"), &w), "16.000");
        assert_eq!(state_payload(reg("grid_current_l1"), &w), "-12.34");
        assert_eq!(state_payload(reg("charge_mode"), &w), "fast");
        assert_eq!(state_payload(reg("phases"), &w), "3");
        let topics = topics();
        let mut s = States::default();
        let due = s.due(&topics, &w, false);
        assert_eq!(
            due.len(),
            REGISTERS
                .iter()
                .filter(|r| r.access != Access::Write)
                .count()
        );
        for (i, m) in &due {
            s.sent(*i, &m.payload);
        }
        assert!(s.due(&topics, &w, false).is_empty());
        map.write(1010, &[20000]).unwrap();
        let due = s.due(&topics, &words(&map), false);
        let changed: Vec<(&str, &str)> = due
            .iter()
            .map(|(_, m)| (m.topic.as_str(), m.payload.as_str()))
            .collect();
        // The staged value, and bit 5 of the flags (unsaved changes).
        assert_eq!(
            changed,
            [
                ("p1lb/10/status_flags", "32"),
                ("p1lb/10/charger_max_current", "20.000")
            ]
        );
        // Not sent (queue full): still due next time, with the latest value.
        map.write(1010, &[21000]).unwrap();
        let due = s.due(&topics, &words(&map), false);
        assert_eq!(due[1].1.payload, "21.000");
        assert_eq!(
            s.due(&topics, &words(&map), true).len(),
            REGISTERS.len() - 2
        );
    }

    #[test]
    fn commands_convert_from_the_entity_unit() {
        let t = topics();
        let w = |topic: &str, p: &str| incoming(&t, topic, p.as_bytes(), false);
        assert_eq!(
            w("p1lb/10/charger_max_current/set", "20.5"),
            Incoming::Write {
                register: "charger_max_current",
                address: 1010,
                raw: 20500
            }
        );
        assert_eq!(
            w("p1lb/10/charge_mode/set", "solar_only"),
            Incoming::Write {
                register: "charge_mode",
                address: 1080,
                raw: 2
            }
        );
        assert!(matches!(
            w("p1lb/10/save/set", "PRESS"),
            Incoming::Write {
                raw: 1,
                address: 1091,
                ..
            }
        ));
        assert!(matches!(
            w("p1lb/10/phases/set", "1"),
            Incoming::Write { raw: 1, .. }
        ));
        assert!(matches!(
            w("p1lb/10/solar_start_delay/set", "30"),
            Incoming::Write { raw: 30, .. }
        ));
        for (topic, payload) in [
            ("p1lb/10/charger_max_current/set", "abc"),
            ("p1lb/10/charger_max_current/set", "16 A"),
            ("p1lb/10/charger_max_current/set", "NaN"),
            ("p1lb/10/charger_max_current/set", "inf"),
            ("p1lb/10/charger_max_current/set", "1e9"),
            ("p1lb/10/charger_max_current/set", "-1"),
            ("p1lb/10/charger_max_current/set", "16.0001"),
            ("p1lb/10/charge_mode/set", "turbo"),
            ("p1lb/10/sent_current/set", "1"),
            ("p1lb/10/no_such/set", "1"),
            ("p1lb/10/charger_max_current", "16"),
            ("p1lb/10/charger_max_current/set/x", "16"),
        ] {
            assert!(
                matches!(w(topic, payload), Incoming::Refused(_)),
                "{topic} {payload}"
            );
        }
        assert!(matches!(
            incoming(&t, "p1lb/10/phases/set", b"1", true),
            Incoming::Refused(_)
        ));
        assert!(matches!(
            incoming(&t, "p1lb/10/phases/set", &[0xff, 0xfe], false),
            Incoming::Refused(_)
        ));
        assert_eq!(w("other/x/set", "1"), Incoming::Ignore);
        assert_eq!(
            w("homeassistant/status", "online"),
            Incoming::HaStatus(true)
        );
    }

    proptest! {
        #[test]
        fn no_payload_or_topic_panics(
            name in prop::sample::select(REGISTERS.iter().map(|r| r.name).collect::<Vec<_>>()),
            payload in prop::collection::vec(any::<u8>(), 0..100),
            text in "\\PC{0,40}",
            tail in "\\PC{0,20}",
            retained in any::<bool>(),
        ) {
            let t = topics();
            let _ = incoming(&t, &format!("p1lb/10/{name}/set"), &payload, retained);
            let _ = incoming(&t, &format!("p1lb/10/{name}/set"), text.as_bytes(), retained);
            let _ = incoming(&t, &format!("p1lb/10/{tail}"), text.as_bytes(), retained);
            let _ = incoming(&t, &tail, &payload, retained);
            let _ = result(&t, &tail, &payload, Err("x"));
        }

        /// Whatever a command writes is a value the map takes, or the map refuses it
        /// (cross-checks) — never a panic; every written value reads back as the state
        /// the command was (for numbers, selects).
        #[test]
        fn accepted_numbers_round_trip(
            name in prop::sample::select(REGISTERS.iter().filter(|r| r.access == Access::ReadWrite).map(|r| r.name).collect::<Vec<_>>()),
            value in -100_000.0f64..100_000.0,
        ) {
            let t = topics();
            let r = reg(name);
            let text = format!("{value}");
            if let Incoming::Write { address, raw, .. } = incoming(&t, &t.command(r), text.as_bytes(), false) {
                let mut map = RegisterMap::new(Config::default());
                if map.write(address, &[raw]).is_ok() {
                    let back = state_payload(r, &words(&map));
                    let again = incoming(&t, &t.command(r), back.as_bytes(), false);
                    prop_assert!(matches!(again, Incoming::Write { raw: r2, .. } if r2 == raw), "{back}");
                }
            }
        }
    }
}
