//! Telegrams of a Fluvius e-MUCS meter made from the real sample of
//! `shared/telegrams/` (its clock, energy, demand and power objects rewritten, the CRC
//! recomputed), read by the real reader.

use p1lb_core::p1::{Event, Reading, TelegramReader, crc16_arc};

/// One telegram of a Fluvius meter: the sample with these values.
#[derive(Debug, Clone, Copy)]
pub struct Fluvius {
    /// `YYMMDDhhmmss` + `S`/`W`.
    pub time: Stamp,
    /// Import energy, all tariffs together, Wh (split over 1.8.1/1.8.2).
    pub import_wh: i64,
    /// 1.4.0, W (`None`: the line left out, as a DSMR meter has none).
    pub demand_w: Option<i64>,
    /// 1.6.0: (when, W).
    pub peak: Option<(Stamp, i64)>,
    /// Net import power now, W (1.7.0 / 2.7.0), spread over three phases.
    pub power_w: i64,
}

/// A meter clock reading: local date and time and the DST flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stamp {
    pub y: u16,
    pub mo: u8,
    pub d: u8,
    pub h: u8,
    pub mi: u8,
    pub s: u8,
    pub summer: bool,
}

impl Stamp {
    pub fn new(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, summer: bool) -> Stamp {
        Stamp {
            y,
            mo,
            d,
            h,
            mi,
            s,
            summer,
        }
    }

    pub fn text(&self) -> String {
        format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}{}",
            self.y % 100,
            self.mo,
            self.d,
            self.h,
            self.mi,
            self.s,
            if self.summer { 'S' } else { 'W' }
        )
    }

    /// `n` seconds later (across days, months and years; no DST change inside).
    pub fn plus(&self, n: u32) -> Stamp {
        let mut t = u32::from(self.h) * 3600 + u32::from(self.mi) * 60 + u32::from(self.s) + n;
        let mut out = *self;
        while t >= 86_400 {
            t -= 86_400;
            let leap = out.y % 4 == 0 && (out.y % 100 != 0 || out.y % 400 == 0);
            let days = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            out.d += 1;
            if out.d > days[usize::from(out.mo - 1)] {
                out.d = 1;
                out.mo += 1;
                if out.mo > 12 {
                    out.mo = 1;
                    out.y += 1;
                }
            }
        }
        out.h = (t / 3600) as u8;
        out.mi = (t / 60 % 60) as u8;
        out.s = (t % 60) as u8;
        out
    }
}

fn kw(w: i64) -> String {
    format!("{:02}.{:03}", w / 1000, w % 1000)
}

impl Fluvius {
    pub fn bytes(&self) -> Vec<u8> {
        let sample = String::from_utf8(super::sample("be-emucs171-fluvius.txt")).expect("text");
        let body = sample.split('!').next().expect("body");
        let (import, export) = (self.power_w.max(0), (-self.power_w).max(0));
        let mut out = String::new();
        for line in body.split("\r\n") {
            let new = if line.starts_with("0-0:1.0.0(") {
                format!("0-0:1.0.0({})", self.time.text())
            } else if line.starts_with("1-0:1.8.1(") {
                format!(
                    "1-0:1.8.1({:06}.{:03}*kWh)",
                    self.import_wh / 2 / 1000,
                    self.import_wh / 2 % 1000
                )
            } else if line.starts_with("1-0:1.8.2(") {
                let rest = self.import_wh - self.import_wh / 2;
                format!("1-0:1.8.2({:06}.{:03}*kWh)", rest / 1000, rest % 1000)
            } else if line.starts_with("1-0:1.4.0(") {
                match self.demand_w {
                    Some(w) => format!("1-0:1.4.0({}*kW)", kw(w)),
                    None => continue,
                }
            } else if line.starts_with("1-0:1.6.0(") {
                match self.peak {
                    Some((at, w)) => format!("1-0:1.6.0({})({}*kW)", at.text(), kw(w)),
                    None => continue,
                }
            } else if line.starts_with("1-0:1.7.0(") {
                format!("1-0:1.7.0({}*kW)", kw(import))
            } else if line.starts_with("1-0:2.7.0(") {
                format!("1-0:2.7.0({}*kW)", kw(export))
            } else if let Some(c) = ["1-0:21.7.0(", "1-0:41.7.0(", "1-0:61.7.0("]
                .iter()
                .position(|p| line.starts_with(p))
            {
                format!("1-0:{}1.7.0({}*kW)", 2 + 2 * c, kw(import / 3))
            } else if let Some(c) = ["1-0:22.7.0(", "1-0:42.7.0(", "1-0:62.7.0("]
                .iter()
                .position(|p| line.starts_with(p))
            {
                format!("1-0:{}2.7.0({}*kW)", 2 + 2 * c, kw(export / 3))
            } else {
                line.to_string()
            };
            out.push_str(&new);
            out.push_str("\r\n");
        }
        // (The body ended with CRLF: the split left an empty last line.)
        let mut t = out.trim_end_matches("\r\n").to_string();
        t.push_str("\r\n!");
        let crc = crc16_arc(t.as_bytes());
        format!("{t}{crc:04X}\r\n").into_bytes()
    }

    /// Through the real reader.
    pub fn reading(&self) -> Reading {
        let bytes = self.bytes();
        let mut reader: TelegramReader = TelegramReader::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (used, event) = reader.feed(rest);
            match event {
                Some(Event::Telegram(t)) => return Reading::parse(&t),
                Some(Event::Rejected { reason, .. }) => panic!("rejected: {reason:?}"),
                None => {}
            }
            rest = &rest[used..];
        }
        panic!("no telegram")
    }
}

/// A meter importing `power_w` steadily from `start` for `n` seconds, one telegram a
/// second; the energy and 1.4.0 as a Fluvius meter prints them.
pub struct SteadyMeter {
    t: Stamp,
    wh: f64,
    quarter_j: f64,
    quarter_s: u32,
    demand: bool,
}

impl SteadyMeter {
    pub fn new(start: Stamp, demand: bool) -> Self {
        SteadyMeter {
            t: start,
            wh: 15_792_000.0,
            quarter_j: 0.0,
            quarter_s: 0,
            demand,
        }
    }

    /// The next second's telegram at `power_w`.
    pub fn second(&mut self, power_w: i64) -> Reading {
        if (u32::from(self.t.mi) * 60 + u32::from(self.t.s)) % 900 == 0 {
            self.quarter_j = 0.0;
            self.quarter_s = 0;
        }
        self.wh += power_w.max(0) as f64 / 3600.0;
        self.quarter_j += power_w.max(0) as f64;
        self.quarter_s += 1;
        let r = Fluvius {
            time: self.t,
            import_wh: self.wh as i64,
            demand_w: self
                .demand
                .then(|| (self.quarter_j / f64::from(self.quarter_s)) as i64),
            peak: None,
            power_w,
        }
        .reading();
        self.t = self.t.plus(1);
        r
    }
}
