//! The content of one `(…)` group: numbers with units, timestamps, text.

/// The raw content of one value group, with typed accessors. Which accessor applies
/// depends on the object (a tariff `0001` is text, a gas reading `00000000` a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value<'a>(&'a [u8]);

impl<'a> Value<'a> {
    /// Wraps the bytes between `(` and `)`.
    pub fn new(raw: &'a [u8]) -> Self {
        Value(raw)
    }

    /// The bytes as printed.
    pub fn raw(&self) -> &'a [u8] {
        self.0
    }

    /// The content as text (always ASCII in a checked telegram), spaces trimmed.
    pub fn text(&self) -> &'a str {
        let s = core::str::from_utf8(self.0).unwrap_or("");
        s.trim_matches(' ')
    }

    /// True for `()` (or only spaces).
    pub fn is_empty(&self) -> bool {
        self.text().is_empty()
    }

    /// `number*unit` or a bare `number` (unit `None`). Stray spaces are ignored.
    pub fn number(&self) -> Option<(Decimal, Option<&'a str>)> {
        let (num, unit) = match self.0.iter().position(|&b| b == b'*') {
            Some(star) => {
                let unit = core::str::from_utf8(&self.0[star + 1..])
                    .ok()?
                    .trim_matches(' ');
                if unit.is_empty() || !unit.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return None;
                }
                (&self.0[..star], Some(unit))
            }
            None => (self.0, None),
        };
        Some((Decimal::parse(num)?, unit))
    }

    /// The number, whatever its unit.
    pub fn decimal(&self) -> Option<Decimal> {
        self.number().map(|(d, _)| d)
    }

    /// A `YYMMDDhhmmss` timestamp, with the DST flag `S`/`W` where printed.
    pub fn timestamp(&self) -> Option<Timestamp> {
        Timestamp::parse(self.text().as_bytes())
    }
}

/// A decimal number exactly as printed: `mantissa × 10^-scale`. No floats anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    mantissa: i64,
    scale: u8,
}

/// At most this many significant digits (fits an `i64` with room to rescale).
const MAX_DIGITS: u32 = 18;

impl Decimal {
    /// `mantissa × 10^-scale`.
    pub const fn new(mantissa: i64, scale: u8) -> Self {
        Self { mantissa, scale }
    }

    /// The integer digits (e.g. 1240 for `12.40`).
    pub fn mantissa(&self) -> i64 {
        self.mantissa
    }

    /// Digits after the point as printed (e.g. 2 for `12.40`).
    pub fn scale(&self) -> u8 {
        self.scale
    }

    /// Parses `[+-]digits[.digits]`; spaces anywhere are ignored. `None` for anything
    /// else or for more than 18 significant digits.
    pub fn parse(s: &[u8]) -> Option<Self> {
        let mut mantissa: i64 = 0;
        let mut negative = false;
        let mut seen_digit = false;
        let mut seen_point = false;
        let mut scale: u8 = 0;
        let mut significant = 0u32;
        for (i, &b) in s.iter().enumerate() {
            match b {
                b' ' => {}
                b'-' | b'+' if !seen_digit && !seen_point && !s[..i].iter().any(|&c| c != b' ') => {
                    negative = b == b'-';
                }
                b'.' if !seen_point && seen_digit => seen_point = true,
                b'0'..=b'9' => {
                    seen_digit = true;
                    if mantissa != 0 || b != b'0' {
                        significant += 1;
                    }
                    if significant > MAX_DIGITS {
                        return None;
                    }
                    mantissa = mantissa * 10 + i64::from(b - b'0');
                    if seen_point {
                        scale += 1;
                        if u32::from(scale) > MAX_DIGITS {
                            return None;
                        }
                    }
                }
                _ => return None,
            }
        }
        if !seen_digit || s.last() == Some(&b'.') {
            return None;
        }
        Some(Decimal {
            mantissa: if negative { -mantissa } else { mantissa },
            scale,
        })
    }

    /// The value × 10^`scale` as an integer (`0.034` at scale 3 → 34: kWh → Wh),
    /// rounded half away from zero when digits are dropped; `None` on overflow.
    pub fn to_scaled(&self, scale: u8) -> Option<i64> {
        if scale >= self.scale {
            let p = 10i64.checked_pow(u32::from(scale - self.scale))?;
            self.mantissa.checked_mul(p)
        } else {
            let p = 10i64.checked_pow(u32::from(self.scale - scale))?;
            let q = self.mantissa / p;
            let r = self.mantissa % p;
            let half = p / 2;
            Some(if r.abs() >= half && half > 0 {
                q + self.mantissa.signum()
            } else {
                q
            })
        }
    }
}

/// Prints the number as the meter did, without leading zeros: `012.40` → `12.40`.
/// Valid JSON number syntax.
impl core::fmt::Display for Decimal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let neg = self.mantissa < 0;
        let m = self.mantissa.unsigned_abs();
        let p = 10u64.pow(u32::from(self.scale));
        if neg {
            f.write_str("-")?;
        }
        write!(f, "{}", m / p)?;
        if self.scale > 0 {
            write!(f, ".{:0width$}", m % p, width = usize::from(self.scale))?;
        }
        Ok(())
    }
}

/// Units the model converts; anything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// kWh
    KiloWattHour,
    /// Wh
    WattHour,
    /// kW
    KiloWatt,
    /// W
    Watt,
    /// V
    Volt,
    /// A
    Ampere,
    /// m3 (gas, water)
    CubicMetre,
    /// GJ (heat)
    GigaJoule,
    /// s
    Second,
    /// Something else (kvarh, …).
    Other,
}

impl Unit {
    /// Recognises a unit as printed (case-insensitive: some meters print `KWH`).
    pub fn parse(s: &str) -> Unit {
        const UNITS: [(&str, Unit); 9] = [
            ("kWh", Unit::KiloWattHour),
            ("Wh", Unit::WattHour),
            ("kW", Unit::KiloWatt),
            ("W", Unit::Watt),
            ("V", Unit::Volt),
            ("A", Unit::Ampere),
            ("m3", Unit::CubicMetre),
            ("GJ", Unit::GigaJoule),
            ("s", Unit::Second),
        ];
        UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map_or(Unit::Other, |&(_, u)| u)
    }
}

/// A meter timestamp `YYMMDDhhmmss[S|W]` (local time; `S` summer, `W` winter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Full year: YY 00–68 → 2000–2068, 69–99 → 1969–1999 (as POSIX `%y`; meters
    /// print `700101…` for "never read").
    pub year: u16,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59 (60 accepted for a leap second).
    pub second: u8,
    /// `Some(true)` summer time, `Some(false)` winter time, `None` not printed
    /// (DSMR 2/3).
    pub summer: Option<bool>,
}

impl Timestamp {
    /// Parses 12 digits with an optional `S`/`W`; checks the ranges.
    pub fn parse(s: &[u8]) -> Option<Timestamp> {
        let (digits, summer) = match s {
            [d @ .., b'S'] => (d, Some(true)),
            [d @ .., b'W'] => (d, Some(false)),
            d => (d, None),
        };
        if digits.len() != 12 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let two = |i: usize| (digits[i] - b'0') * 10 + (digits[i + 1] - b'0');
        let t = Timestamp {
            year: match two(0) {
                yy @ 0..=68 => 2000 + u16::from(yy),
                yy => 1900 + u16::from(yy),
            },
            month: two(2),
            day: two(4),
            hour: two(6),
            minute: two(8),
            second: two(10),
            summer,
        };
        let ok = (1..=12).contains(&t.month)
            && (1..=31).contains(&t.day)
            && t.hour <= 23
            && t.minute <= 59
            && t.second <= 60;
        ok.then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_parse_and_print() {
        let d = Decimal::parse(b"012.40").unwrap();
        assert_eq!((d.mantissa(), d.scale()), (1240, 2));
        let mut s = heapless::String::<32>::new();
        core::fmt::write(&mut s, format_args!("{d}")).unwrap();
        assert_eq!(s.as_str(), "12.40");
        assert_eq!(
            Decimal::parse(b"000000.034").unwrap().to_scaled(3),
            Some(34)
        );
        assert_eq!(Decimal::parse(b" 0.4 8").unwrap().to_scaled(3), Some(480));
        assert_eq!(Decimal::parse(b"-1.5").unwrap().to_scaled(0), Some(-2));
        assert_eq!(Decimal::parse(b"1.49").unwrap().to_scaled(0), Some(1));
        assert_eq!(Decimal::parse(b"1.").map(|d| d.scale()), None);
        assert_eq!(Decimal::parse(b".5"), None);
        assert_eq!(Decimal::parse(b""), None);
        assert_eq!(Decimal::parse(b"1-2"), None);
        assert_eq!(Decimal::parse(b"1234567890123456789"), None);
        assert!(Decimal::parse(b"00000000000000000000001").is_some());
        assert_eq!(
            Decimal::parse(b"00052185.7825309").unwrap().to_scaled(3),
            Some(52_185_783)
        );
    }

    #[test]
    fn value_number_units() {
        let v = Value::new(b"00.244*kW");
        assert_eq!(v.number(), Some((Decimal::new(244, 3), Some("kW"))));
        assert_eq!(
            Value::new(b"0001").number(),
            Some((Decimal::new(1, 0), None))
        );
        assert_eq!(Value::new(b"1*").number(), None);
        assert_eq!(Value::new(b"1*k W").number(), None);
        assert_eq!(Unit::parse("KWH"), Unit::KiloWattHour);
    }

    #[test]
    fn timestamps() {
        let t = Timestamp::parse(b"200512135409S").unwrap();
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2020, 5, 12, 13, 54, 9)
        );
        assert_eq!(t.summer, Some(true));
        assert_eq!(Timestamp::parse(b"161107190000").unwrap().summer, None);
        assert_eq!(Timestamp::parse(b"700101010000W").unwrap().year, 1970);
        assert_eq!(Timestamp::parse(b"680101010000W").unwrap().year, 2068);
        assert_eq!(Timestamp::parse(b"201312135409S"), None);
        assert_eq!(Timestamp::parse(b"20051213540S"), None);
    }
}
