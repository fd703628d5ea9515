//! Time, as the core sees it: [`Instant`], a point on the product's monotonic clock, and
//! [`Duration`], a span between two of them. Both count whole microseconds in a `u64`
//! (585 000 years), so the bus timing (tens of microseconds a character) and the
//! balancer (seconds) share one clock and the type system keeps points and spans, and
//! milliseconds and microseconds, apart: a unit appears only where a value is built
//! (`from_millis`) or read out (`total_millis`).
//!
//! The core never reads a clock: every entry point takes `now: Instant` from the
//! product (the daemon's tokio clock, the firmware's embassy ticks, the simulator's
//! step), so a test can run a day in a millisecond. The clock starts anywhere
//! ([`Instant::ZERO`] is only the smallest value), and the core must not assume that it
//! only moves forwards: a product may hand it any value.
//!
//! # Nothing here panics
//!
//! Every operator saturates instead of overflowing, in debug and in release builds:
//!
//! - `Instant + Duration` stops at [`Instant::MAX`], `Instant - Duration` at
//!   [`Instant::ZERO`];
//! - `Instant - Instant` is the [`Duration`] from the second to the first, and
//!   [`Duration::ZERO`] when the second is later (the clock went backwards, or the
//!   operands are the wrong way round): a span is never negative;
//! - `Duration + Duration` and `Duration * u32` stop at [`Duration::MAX`],
//!   `Duration - Duration` at [`Duration::ZERO`]; `Duration / u32` divides by at least 1;
//! - the constructors saturate (`Duration::from_secs(u64::MAX)` is [`Duration::MAX`]).
//!
//! The `checked_*` methods say when a result would not fit, for the few places where
//! that is worth knowing.
//!
//! The shape follows smoltcp's `time` module; unlike it, an `Instant` is unsigned and
//! arithmetic saturates rather than panicking, since the core promises not to panic on
//! any input, and times come from outside.

use core::fmt;
use core::ops;

/// A point on the product's monotonic clock: microseconds since an arbitrary start.
///
/// Compare two instants with `<`/`>=`, subtract them for the [`Duration`] between them
/// (saturating at zero), move one by a [`Duration`] (saturating at both ends).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    micros: u64,
}

/// A span of time in microseconds; never negative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    micros: u64,
}

impl Instant {
    /// The start of the clock, the smallest instant.
    pub const ZERO: Instant = Instant { micros: 0 };
    /// The largest instant: where additions stop; also "never" for a deadline.
    pub const MAX: Instant = Instant { micros: u64::MAX };

    /// The instant `micros` microseconds after the start of the clock.
    pub const fn from_micros(micros: u64) -> Instant {
        Instant { micros }
    }

    /// The instant `millis` milliseconds after the start (saturating at [`Instant::MAX`]).
    pub const fn from_millis(millis: u64) -> Instant {
        Instant {
            micros: millis.saturating_mul(1_000),
        }
    }

    /// The instant `secs` seconds after the start (saturating at [`Instant::MAX`]).
    pub const fn from_secs(secs: u64) -> Instant {
        Instant {
            micros: secs.saturating_mul(1_000_000),
        }
    }

    /// Whole microseconds since the start of the clock.
    pub const fn total_micros(self) -> u64 {
        self.micros
    }

    /// Whole milliseconds since the start of the clock (rounded down).
    pub const fn total_millis(self) -> u64 {
        self.micros / 1_000
    }

    /// Whole seconds since the start of the clock (rounded down).
    pub const fn secs(self) -> u64 {
        self.micros / 1_000_000
    }

    /// The time elapsed since `earlier`, or [`Duration::ZERO`] if `earlier` is later
    /// (same as `self - earlier`).
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration {
            micros: self.micros.saturating_sub(earlier.micros),
        }
    }

    /// The time elapsed since `earlier`, or `None` if `earlier` is later.
    pub const fn checked_duration_since(self, earlier: Instant) -> Option<Duration> {
        match self.micros.checked_sub(earlier.micros) {
            Some(micros) => Some(Duration { micros }),
            None => None,
        }
    }

    /// `self + d`, or `None` past [`Instant::MAX`].
    pub const fn checked_add(self, d: Duration) -> Option<Instant> {
        match self.micros.checked_add(d.micros) {
            Some(micros) => Some(Instant { micros }),
            None => None,
        }
    }

    /// `self - d`, or `None` before [`Instant::ZERO`].
    pub const fn checked_sub(self, d: Duration) -> Option<Instant> {
        match self.micros.checked_sub(d.micros) {
            Some(micros) => Some(Instant { micros }),
            None => None,
        }
    }

    /// `self + d`, stopping at [`Instant::MAX`] (same as `self + d`).
    pub const fn saturating_add(self, d: Duration) -> Instant {
        Instant {
            micros: self.micros.saturating_add(d.micros),
        }
    }

    /// `self - d`, stopping at [`Instant::ZERO`] (same as `self - d`).
    pub const fn saturating_sub(self, d: Duration) -> Instant {
        Instant {
            micros: self.micros.saturating_sub(d.micros),
        }
    }

    /// The latest instant at or before `self` that is a whole multiple of `step` from
    /// [`Instant::ZERO`] (`self` itself for a `step` of zero): a clock read with a
    /// coarser resolution.
    pub const fn round_down(self, step: Duration) -> Instant {
        if step.micros == 0 {
            return self;
        }
        Instant {
            micros: self.micros - self.micros % step.micros,
        }
    }

    /// The span between `self` and `other`, whichever is later.
    pub const fn abs_diff(self, other: Instant) -> Duration {
        Duration {
            micros: self.micros.abs_diff(other.micros),
        }
    }
}

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration { micros: 0 };
    /// The longest span: where additions stop.
    pub const MAX: Duration = Duration { micros: u64::MAX };

    /// `micros` microseconds.
    pub const fn from_micros(micros: u64) -> Duration {
        Duration { micros }
    }

    /// `millis` milliseconds (saturating at [`Duration::MAX`]).
    pub const fn from_millis(millis: u64) -> Duration {
        Duration {
            micros: millis.saturating_mul(1_000),
        }
    }

    /// `secs` seconds (saturating at [`Duration::MAX`]).
    pub const fn from_secs(secs: u64) -> Duration {
        Duration {
            micros: secs.saturating_mul(1_000_000),
        }
    }

    /// The span in whole microseconds.
    pub const fn total_micros(self) -> u64 {
        self.micros
    }

    /// The span in whole milliseconds (rounded down).
    pub const fn total_millis(self) -> u64 {
        self.micros / 1_000
    }

    /// The span in whole seconds (rounded down).
    pub const fn secs(self) -> u64 {
        self.micros / 1_000_000
    }

    /// `self + other`, or `None` past [`Duration::MAX`].
    pub const fn checked_add(self, other: Duration) -> Option<Duration> {
        match self.micros.checked_add(other.micros) {
            Some(micros) => Some(Duration { micros }),
            None => None,
        }
    }

    /// `self - other`, or `None` if `other` is longer.
    pub const fn checked_sub(self, other: Duration) -> Option<Duration> {
        match self.micros.checked_sub(other.micros) {
            Some(micros) => Some(Duration { micros }),
            None => None,
        }
    }

    /// `self + other`, stopping at [`Duration::MAX`] (same as `self + other`; usable
    /// in constants).
    pub const fn saturating_add(self, other: Duration) -> Duration {
        Duration {
            micros: self.micros.saturating_add(other.micros),
        }
    }

    /// `self - other`, stopping at [`Duration::ZERO`] (same as `self - other`).
    pub const fn saturating_sub(self, other: Duration) -> Duration {
        Duration {
            micros: self.micros.saturating_sub(other.micros),
        }
    }

    /// How much accrues over this span at `per_sec` a second (a current ramping at
    /// so many mA/s, say), rounded down; saturating at `u64::MAX`.
    pub const fn accrued_at(self, per_sec: u64) -> u64 {
        let v = self.micros as u128 * per_sec as u128 / 1_000_000;
        if v > u64::MAX as u128 {
            u64::MAX
        } else {
            v as u64
        }
    }

    /// How long `amount` takes to accrue at `per_sec` a second, rounded down (a rate
    /// of 0 counts as 1); saturating at [`Duration::MAX`]. The inverse of
    /// [`accrued_at`](Self::accrued_at).
    pub const fn to_accrue(amount: u64, per_sec: u64) -> Duration {
        let per_sec = if per_sec == 0 { 1 } else { per_sec };
        let v = amount as u128 * 1_000_000 / per_sec as u128;
        Duration {
            micros: if v > u64::MAX as u128 {
                u64::MAX
            } else {
                v as u64
            },
        }
    }

    /// `self * n`, stopping at [`Duration::MAX`] (same as `self * n`; usable in
    /// constants).
    pub const fn saturating_mul(self, n: u64) -> Duration {
        Duration {
            micros: self.micros.saturating_mul(n),
        }
    }
}

impl ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl ops::AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl ops::Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        self.saturating_sub(d)
    }
}

impl ops::SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, d: Duration) {
        *self = *self - d;
    }
}

impl ops::Sub<Instant> for Instant {
    type Output = Duration;
    /// The span from `earlier` to `self`; [`Duration::ZERO`] if `earlier` is later.
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl ops::Add<Duration> for Duration {
    type Output = Duration;
    fn add(self, other: Duration) -> Duration {
        self.saturating_add(other)
    }
}

impl ops::AddAssign<Duration> for Duration {
    fn add_assign(&mut self, other: Duration) {
        *self = *self + other;
    }
}

impl ops::Sub<Duration> for Duration {
    type Output = Duration;
    fn sub(self, other: Duration) -> Duration {
        self.saturating_sub(other)
    }
}

impl ops::SubAssign<Duration> for Duration {
    fn sub_assign(&mut self, other: Duration) {
        *self = *self - other;
    }
}

impl ops::Mul<u32> for Duration {
    type Output = Duration;
    fn mul(self, n: u32) -> Duration {
        self.saturating_mul(u64::from(n))
    }
}

impl ops::MulAssign<u32> for Duration {
    fn mul_assign(&mut self, n: u32) {
        *self = *self * n;
    }
}

impl ops::Div<u32> for Duration {
    type Output = Duration;
    /// `self / n`, rounded down; dividing by zero divides by one.
    fn div(self, n: u32) -> Duration {
        Duration {
            micros: self.micros / u64::from(n.max(1)),
        }
    }
}

impl From<core::time::Duration> for Duration {
    /// Whole microseconds, rounded down; saturating at [`Duration::MAX`].
    fn from(d: core::time::Duration) -> Duration {
        Duration {
            micros: u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

impl From<Duration> for core::time::Duration {
    fn from(d: Duration) -> core::time::Duration {
        core::time::Duration::from_micros(d.micros)
    }
}

/// Writes `s.mmm` followed by `s`: seconds and milliseconds, rounded down.
fn write_secs(f: &mut fmt::Formatter<'_>, micros: u64) -> fmt::Result {
    write!(f, "{}.{:03}s", micros / 1_000_000, micros / 1_000 % 1_000)
}

impl fmt::Display for Instant {
    /// Seconds since the start of the clock, to the millisecond: `1.234s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_secs(f, self.micros)
    }
}

impl fmt::Display for Duration {
    /// Seconds to the millisecond: `1.234s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_secs(f, self.micros)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn constructors_and_accessors_agree() {
        let t = Instant::from_millis(1_234);
        assert_eq!(t.total_micros(), 1_234_000);
        assert_eq!(t.total_millis(), 1_234);
        assert_eq!(t.secs(), 1);
        assert_eq!(Instant::from_secs(2), Instant::from_millis(2_000));
        assert_eq!(Instant::from_micros(1_999).total_millis(), 1);
        let d = Duration::from_secs(3);
        assert_eq!(d, Duration::from_millis(3_000));
        assert_eq!(d, Duration::from_micros(3_000_000));
        assert_eq!(d.total_millis(), 3_000);
        assert_eq!(d.secs(), 3);
        assert_eq!(Duration::from_micros(999).total_millis(), 0);
    }

    #[test]
    fn constructors_saturate() {
        assert_eq!(Instant::from_millis(u64::MAX), Instant::MAX);
        assert_eq!(Instant::from_secs(u64::MAX), Instant::MAX);
        assert_eq!(Duration::from_millis(u64::MAX), Duration::MAX);
        assert_eq!(Duration::from_secs(u64::MAX / 1_000), Duration::MAX);
        assert_eq!(Duration::from_secs(u64::MAX), Duration::MAX);
    }

    #[test]
    fn instant_arithmetic_saturates_at_both_ends() {
        let near_end = Instant::MAX - Duration::from_micros(5);
        assert_eq!(near_end + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Instant::MAX + Duration::MAX, Instant::MAX);
        assert_eq!(near_end.checked_add(Duration::from_micros(6)), None);
        assert_eq!(
            near_end.checked_add(Duration::from_micros(5)),
            Some(Instant::MAX)
        );
        let near_start = Instant::from_micros(5);
        assert_eq!(near_start - Duration::from_secs(1), Instant::ZERO);
        assert_eq!(Instant::ZERO - Duration::MAX, Instant::ZERO);
        assert_eq!(near_start.checked_sub(Duration::from_micros(6)), None);
        let mut t = Instant::MAX;
        t += Duration::from_micros(1);
        assert_eq!(t, Instant::MAX);
        t = Instant::ZERO;
        t -= Duration::from_micros(1);
        assert_eq!(t, Instant::ZERO);
    }

    #[test]
    fn the_span_between_instants_is_never_negative() {
        let a = Instant::from_millis(1_000);
        let b = Instant::from_millis(1_500);
        assert_eq!(b - a, Duration::from_millis(500));
        assert_eq!(a - b, Duration::ZERO);
        assert_eq!(a.checked_duration_since(b), None);
        assert_eq!(
            b.checked_duration_since(a),
            Some(Duration::from_millis(500))
        );
        assert_eq!(Instant::MAX - Instant::ZERO, Duration::MAX);
        assert_eq!(Instant::ZERO - Instant::MAX, Duration::ZERO);
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
    }

    #[test]
    fn duration_arithmetic_saturates() {
        let d = Duration::from_millis(250);
        assert_eq!(d + d, Duration::from_millis(500));
        assert_eq!(Duration::MAX + d, Duration::MAX);
        assert_eq!(d - Duration::from_secs(1), Duration::ZERO);
        assert_eq!(d * 4, Duration::from_secs(1));
        assert_eq!(Duration::MAX * 2, Duration::MAX);
        assert_eq!(Duration::from_secs(1) / 4, d);
        assert_eq!(d / 0, d);
        assert_eq!(Duration::MAX.checked_add(Duration::from_micros(1)), None);
        assert_eq!(d.checked_sub(Duration::from_secs(1)), None);
        assert_eq!(d.saturating_mul(u64::MAX), Duration::MAX);
        let mut e = Duration::MAX;
        e += d;
        e *= 3;
        assert_eq!(e, Duration::MAX);
        e -= Duration::MAX;
        assert_eq!(e, Duration::ZERO);
    }

    #[test]
    fn rounds_down_to_a_step() {
        let t = Instant::from_micros(1_234_567);
        assert_eq!(
            t.round_down(Duration::from_millis(1)),
            Instant::from_micros(1_234_000)
        );
        assert_eq!(t.round_down(Duration::from_secs(1)), Instant::from_secs(1));
        assert_eq!(t.round_down(Duration::ZERO), t);
        assert_eq!(Instant::MAX.round_down(Duration::MAX), Instant::MAX);
        assert_eq!(
            Instant::ZERO.round_down(Duration::from_millis(5)),
            Instant::ZERO
        );
    }

    #[test]
    fn rates_accrue_and_saturate() {
        let d = Duration::from_millis(1_500);
        assert_eq!(d.accrued_at(10_000), 15_000);
        assert_eq!(Duration::to_accrue(15_000, 10_000), d);
        assert_eq!(Duration::MAX.accrued_at(u64::MAX), u64::MAX);
        assert_eq!(Duration::to_accrue(u64::MAX, 1), Duration::MAX);
        assert_eq!(Duration::to_accrue(7, 0), Duration::from_secs(7));
        let a = Instant::from_millis(3);
        let b = Instant::from_millis(5);
        assert_eq!(a.abs_diff(b), b.abs_diff(a));
        assert_eq!(Instant::ZERO.abs_diff(Instant::MAX), Duration::MAX);
    }

    #[test]
    fn converts_with_core_time_duration() {
        let d: Duration = core::time::Duration::from_nanos(1_234_567_999).into();
        assert_eq!(d, Duration::from_micros(1_234_567));
        let back: core::time::Duration = d.into();
        assert_eq!(back, core::time::Duration::from_micros(1_234_567));
        assert_eq!(Duration::from(core::time::Duration::MAX), Duration::MAX);
    }

    #[test]
    fn displays_seconds_to_the_millisecond() {
        assert_eq!(format!("{}", Instant::from_millis(1_234)), "1.234s");
        assert_eq!(format!("{}", Instant::from_micros(999)), "0.000s");
        assert_eq!(format!("{}", Duration::from_millis(60_005)), "60.005s");
        assert_eq!(format!("{}", Duration::ZERO), "0.000s");
        assert_eq!(
            format!("{}", Instant::MAX),
            "18446744073709.551s",
            "u64::MAX µs"
        );
    }
}
