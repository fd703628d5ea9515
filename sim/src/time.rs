//! Wall-clock time of a simulated run: the local date and time printed in the meter's
//! telegrams, used by the solar model and the tariff.

/// A local date and time (no time zone: the meter's own clock), to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// Days since 1970-01-01.
    days: i64,
    /// Seconds since midnight.
    secs: u32,
}

/// Seconds in a day.
pub const DAY_S: u32 = 86_400;

impl DateTime {
    /// The given local date and time (month 1–12, day 1–31).
    pub fn new(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> Self {
        DateTime {
            days: days_from_civil(year, month, day),
            secs: (hour * 60 + minute) * 60,
        }
    }

    /// This time plus `s` seconds.
    pub fn plus(self, s: u32) -> Self {
        let total = u64::from(self.secs) + u64::from(s);
        DateTime {
            days: self.days + (total / u64::from(DAY_S)) as i64,
            secs: (total % u64::from(DAY_S)) as u32,
        }
    }

    /// `(year, month, day)`.
    pub fn date(&self) -> (i32, u32, u32) {
        civil_from_days(self.days)
    }

    /// Seconds since 1970-01-01 00:00 (of this local clock).
    pub fn epoch_s(&self) -> i64 {
        self.days * i64::from(DAY_S) + i64::from(self.secs)
    }

    /// The local time `s` seconds after 1970-01-01 00:00 of this clock (the inverse of
    /// [`DateTime::epoch_s`]).
    pub fn from_epoch_s(s: i64) -> Self {
        DateTime {
            days: s.div_euclid(i64::from(DAY_S)),
            secs: s.rem_euclid(i64::from(DAY_S)) as u32,
        }
    }

    /// The start of its clock quarter-hour (hh:00, :15, :30, :45).
    pub fn floor_quarter(self) -> Self {
        DateTime {
            days: self.days,
            secs: self.secs - self.secs % 900,
        }
    }

    /// Seconds since midnight.
    pub fn second_of_day(&self) -> u32 {
        self.secs
    }

    /// The hour of the day as a fraction (13.5 = 13:30).
    pub fn hour_f(&self) -> f64 {
        f64::from(self.secs) / 3600.0
    }

    /// 0 = Monday … 6 = Sunday.
    pub fn weekday(&self) -> u32 {
        // 1970-01-01 was a Thursday.
        (self.days + 3).rem_euclid(7) as u32
    }

    /// Central European summer time (last Sunday of March 02:00 to last Sunday of
    /// October 03:00): the `S`/`W` flag of a DSMR timestamp.
    pub fn is_summer(&self) -> bool {
        let (y, m, _) = self.date();
        let start = last_sunday(y, 3) * i64::from(DAY_S) + 2 * 3600;
        let end = last_sunday(y, 10) * i64::from(DAY_S) + 3 * 3600;
        let now = self.days * i64::from(DAY_S) + i64::from(self.secs);
        (3..=10).contains(&m) && now >= start && now < end
    }

    /// The DSMR timestamp `YYMMDDhhmmssX` (X = `S` summer, `W` winter).
    pub fn dsmr(&self) -> [u8; 13] {
        let (y, m, d) = self.date();
        let h = self.secs / 3600;
        let mi = self.secs / 60 % 60;
        let s = self.secs % 60;
        let mut out = [0u8; 13];
        let fields = [y.rem_euclid(100) as u32, m, d, h, mi, s];
        for (i, f) in fields.iter().enumerate() {
            out[2 * i] = b'0' + (f / 10 % 10) as u8;
            out[2 * i + 1] = b'0' + (f % 10) as u8;
        }
        out[12] = if self.is_summer() { b'S' } else { b'W' };
        out
    }
}

/// A meter's clock reading: the local (Belgian / Dutch) time and its DST flag, as a
/// DSMR timestamp prints them. In the hour that occurs twice at the end of summer time
/// (02:00–03:00 on the last Sunday of October) only the flag tells the two apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The local date and time.
    pub local: DateTime,
    /// Summer time (`S`), else winter time (`W`).
    pub summer: bool,
}

impl Stamp {
    /// `local` with the flag [`DateTime::is_summer`] gives it (the summer reading of the
    /// repeated hour).
    pub fn of(local: DateTime) -> Stamp {
        Stamp {
            local,
            summer: local.is_summer(),
        }
    }

    /// The meter's clock `s` seconds of real time after `start` (read as [`Stamp::of`]):
    /// local time in Central Europe, one hour ahead of UTC in winter and two in summer,
    /// the clock jumping from 02:00 W to 03:00 S on the last Sunday of March and back from
    /// 03:00 S to 02:00 W on the last Sunday of October (both at 01:00 UTC).
    pub fn after(start: DateTime, s: u32) -> Stamp {
        let offset = |summer: bool| if summer { 7200 } else { 3600 };
        let utc = start.epoch_s() - offset(start.is_summer()) + i64::from(s);
        let (year, _, _) = DateTime::from_epoch_s(utc).date();
        let from = last_sunday(year, 3) * i64::from(DAY_S) + 3600;
        let to = last_sunday(year, 10) * i64::from(DAY_S) + 3600;
        let summer = utc >= from && utc < to;
        Stamp {
            local: DateTime::from_epoch_s(utc + offset(summer)),
            summer,
        }
    }

    /// The DSMR timestamp `YYMMDDhhmmssX` with this flag.
    pub fn dsmr(&self) -> [u8; 13] {
        let mut out = self.local.dsmr();
        out[12] = if self.summer { b'S' } else { b'W' };
        out
    }
}

fn last_sunday(year: i32, month: u32) -> i64 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let last = days_from_civil(ny, nm, 1) - 1;
    // Weekday of `last` (0 = Monday); step back to Sunday (6).
    let wd = (last + 3).rem_euclid(7);
    last - (wd + 1) % 7
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_flags() {
        let t = DateTime::new(2025, 1, 15, 17, 0);
        assert_eq!(&t.dsmr(), b"250115170000W");
        assert_eq!(t.weekday(), 2); // a Wednesday
        let t = DateTime::new(2025, 12, 31, 23, 59).plus(61);
        assert_eq!(&t.dsmr(), b"260101000001W");
        // 2025: summer time from 30 March to 26 October.
        assert!(!DateTime::new(2025, 3, 30, 1, 59).is_summer());
        assert!(DateTime::new(2025, 3, 30, 2, 0).is_summer());
        assert!(DateTime::new(2025, 6, 21, 12, 0).is_summer());
        assert!(!DateTime::new(2025, 10, 26, 3, 0).is_summer());
        assert_eq!(&DateTime::new(2024, 2, 29, 9, 5).dsmr(), b"240229090500W");
    }

    /// The meter's clock across both DST changes of 2025, a month end and a year end.
    #[test]
    fn the_clock_crosses_dst_month_and_year_ends() {
        // Spring: 01:59:59 W is followed by 03:00:00 S.
        let start = DateTime::new(2025, 3, 30, 1, 0);
        assert_eq!(&Stamp::after(start, 3599).dsmr(), b"250330015959W");
        assert_eq!(&Stamp::after(start, 3600).dsmr(), b"250330030000S");
        // Autumn: 02:00–03:00 twice, first S then W.
        let start = DateTime::new(2025, 10, 26, 1, 30);
        assert_eq!(&Stamp::after(start, 1800).dsmr(), b"251026020000S");
        assert_eq!(&Stamp::after(start, 5399).dsmr(), b"251026025959S");
        assert_eq!(&Stamp::after(start, 5400).dsmr(), b"251026020000W");
        assert_eq!(&Stamp::after(start, 9000).dsmr(), b"251026030000W");
        // A winter start stays on winter time across the month and the year.
        let start = DateTime::new(2025, 12, 31, 23, 45);
        assert_eq!(&Stamp::after(start, 900).dsmr(), b"260101000000W");
        let start = DateTime::new(2025, 4, 30, 23, 59);
        assert_eq!(&Stamp::after(start, 60).dsmr(), b"250501000000S");
        // 30 days from 1 March: 29 × 24 h + 23 h of local time (an hour lost).
        let start = DateTime::new(2025, 3, 15, 0, 0);
        assert_eq!(&Stamp::after(start, 30 * DAY_S).dsmr(), b"250414010000S");
        // Away from the changes the flag is `is_summer`'s and the time is `plus`'s.
        for (start, s) in [
            (DateTime::new(2025, 1, 15, 17, 0), 86_400),
            (DateTime::new(2025, 6, 1, 0, 0), 999_999),
        ] {
            let st = Stamp::after(start, s);
            assert_eq!(st.local, start.plus(s));
            assert_eq!(st, Stamp::of(start.plus(s)));
        }
    }
}
