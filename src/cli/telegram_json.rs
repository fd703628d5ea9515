//! The JSON form of a telegram: the stable contract of `p1lb parse --json`.
//!
//! One object per telegram:
//!
//! ```json
//! {"valid": true, "crc": "ok", "header": "ISK5\\2M550T-1012",
//!  "objects": {"1-0:31.7.0": {"value": 0.48, "unit": "A"},
//!              "0-0:96.14.0": "0002",
//!              "0-1:24.2.1": {"value": 0.107, "unit": "m3", "timestamp": "170102161005W"}},
//!  "reading": {…}}
//! ```
//!
//! - `crc`: `"ok"`, `"bad"` or `"absent"`; `reason` (and `detail`) when `valid` is false.
//!   A rejected telegram has no `objects` and no `reading`.
//! - `objects`: every OBIS reference in telegram order (`A-B:C.D.E`, `*F` only when
//!   F ≠ 255), the first occurrence when one repeats. A value printed with a unit is
//!   `{"value": <number exactly as printed, leading zeros dropped>, "unit": …}`; a value
//!   without unit is a string as printed (ids, tariffs, timestamps, flags); a reading
//!   with a timestamp (M-Bus, Belgian peak) adds `"timestamp"` (unit `null` if not
//!   printed); a log (`1-0:99.97.0`, `0-0:98.1.0`) is `{"count", "entries": [{"timestamp",
//!   "value", "unit"}]}`; any other multi-value object is `{"groups": [strings]}`.
//! - `reading`: the fixed-point model (`p1lb_core::p1::Reading`), in its units (Wh, W,
//!   0.1 V, mA), with the signed grid current per phase.

use p1lb_core::p1::{
    CrcStatus, Decimal, GridSource, Obis, Object, Reading, Rejection, Telegram, Timestamp, Value,
};
use serde_json::{Map, Number, Value as Json, json};

/// The JSON of an accepted telegram.
pub fn accepted(t: &Telegram<'_>) -> Json {
    let mut objects = Map::new();
    for o in t.objects() {
        let key = o.obis.to_string();
        if !objects.contains_key(&key) {
            objects.insert(key, object(&o));
        }
    }
    json!({
        "valid": true,
        "crc": match t.crc() { CrcStatus::Ok(_) => "ok", CrcStatus::Absent => "absent" },
        "header": String::from_utf8_lossy(t.header()),
        "objects": objects,
        "reading": reading(&Reading::parse(t)),
    })
}

/// The JSON of a rejected telegram: reason and header only, never values.
pub fn rejected(reason: &Rejection, raw: &[u8]) -> Json {
    let header = raw
        .strip_prefix(b"/")
        .map(|h| h.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or(&[]))
        .unwrap_or(&[]);
    json!({
        "valid": false,
        "crc": if matches!(reason, Rejection::BadCrc { .. }) { "bad" } else { "absent" },
        "reason": reason.name(),
        "detail": reason.to_string(),
        "header": String::from_utf8_lossy(header),
    })
}

/// A number exactly as printed (JSON number syntax, no float round trip).
fn number(d: &Decimal) -> Json {
    d.to_string()
        .parse::<Number>()
        .map_or(Json::Null, Json::Number)
}

fn number_with_unit(v: &Value<'_>) -> Option<Json> {
    let (d, unit) = v.number()?;
    Some(json!({ "value": number(&d), "unit": unit }))
}

fn text(v: &Value<'_>) -> Json {
    Json::String(v.text().to_string())
}

fn is_log(obis: &Obis) -> bool {
    *obis == Obis::new(1, 0, 99, 97, 0) || *obis == Obis::new(0, 0, 98, 1, 0)
}

fn object(o: &Object<'_>) -> Json {
    let values: Vec<Value<'_>> = o.values().collect();
    match values.as_slice() {
        [v] => match v.number() {
            Some((_, Some(_))) => number_with_unit(v).unwrap_or_else(|| text(v)),
            _ => text(v),
        },
        [ts, v] if ts.timestamp().is_some() && v.number().is_some() => timestamped(ts, v, None),
        // DSMR 2/3 gas: (timestamp)(…)(…)(…)(obis)(unit) (value)
        [ts, _, _, _, _, unit, v]
            if o.obis.c == 24 && o.obis.d == 3 && ts.timestamp().is_some() =>
        {
            timestamped(ts, v, Some(unit.text()))
        }
        [count, rest @ ..] if is_log(&o.obis) => {
            log(count, rest).unwrap_or_else(|| groups(&values))
        }
        _ => groups(&values),
    }
}

fn timestamped(ts: &Value<'_>, v: &Value<'_>, unit: Option<&str>) -> Json {
    let (value, printed_unit) = match v.number() {
        Some((d, u)) => (number(&d), u),
        None => (Json::Null, None),
    };
    json!({
        "value": value,
        "unit": printed_unit.or(unit),
        "timestamp": ts.text(),
    })
}

/// `(count)(id)…(id)` then `count` entries of (timestamp … timestamp, value).
fn log(count: &Value<'_>, rest: &[Value<'_>]) -> Option<Json> {
    let n: usize = count.text().parse().ok()?;
    let ids = rest
        .iter()
        .take_while(|v| Obis::parse_prefix(v.raw()).is_some_and(|(_, used)| used == v.raw().len()))
        .count();
    let entries = &rest[ids..];
    let width = ids + 1;
    if entries.len() != n * width {
        return None;
    }
    let list: Vec<Json> = entries
        .chunks(width)
        .map(|e| {
            let (value, unit) = match e[width - 1].number() {
                Some((d, u)) => (number(&d), u),
                None => (Json::Null, None),
            };
            json!({ "timestamp": e[width - 2].text(), "value": value, "unit": unit })
        })
        .collect();
    Some(json!({ "count": n, "entries": list }))
}

fn groups(values: &[Value<'_>]) -> Json {
    json!({ "groups": values.iter().map(|v| v.text()).collect::<Vec<_>>() })
}

fn timestamp(t: &Option<Timestamp>) -> Json {
    match t {
        Some(t) => json!(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}",
            t.year,
            t.month,
            t.day,
            t.hour,
            t.minute,
            t.second,
            match t.summer {
                Some(true) => " S",
                Some(false) => " W",
                None => "",
            }
        )),
        None => Json::Null,
    }
}

/// The fixed-point model.
pub fn reading(r: &Reading) -> Json {
    let tariffs = |t: &p1lb_core::p1::Tariffs| json!({"t1": t.t1, "t2": t.t2, "total": t.total});
    let phases: Vec<Json> = r
        .phases
        .iter()
        .map(|p| {
            json!({
                "voltage_dv": p.voltage_dv,
                "current_ma": p.current_ma,
                "power_import_w": p.power_import_w,
                "power_export_w": p.power_export_w,
            })
        })
        .collect();
    let mbus: Vec<Json> = r
        .mbus
        .iter()
        .map(|m| {
            json!({
                "channel": m.channel,
                "device_type": m.device_type,
                "timestamp": timestamp(&m.timestamp),
                "value": m.value.as_ref().map_or(Json::Null, number),
            })
        })
        .collect();
    json!({
        "version": r.version,
        "meter_id": r.meter_id.as_deref(),
        "timestamp": timestamp(&r.timestamp),
        "tariff": r.tariff,
        "import_wh": tariffs(&r.import_wh),
        "export_wh": tariffs(&r.export_wh),
        "power_import_w": r.power_import_w,
        "power_export_w": r.power_export_w,
        "phases": phases,
        "grid_current_ma": r.grid_currents_ma(GridSource::Auto),
        "average_demand_w": r.average_demand_w,
        "month_peak": r.month_peak.map(|p| json!({"at": timestamp(&p.at), "power_w": p.power_w})),
        "current_limit_ma": r.current_limit_ma,
        "breaker_closed": r.breaker_closed,
        "mbus": mbus,
        "unit_errors": r.unit_errors,
    })
}
