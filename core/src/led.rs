//! The status LED: a pure function of the balancer state and the time.
//!
//! The LED repeats a one-second frame of eight 125 ms slots (registers.md):
//!
//! | State | Frame |
//! |---|---|
//! | 0 normal | `._______` |
//! | 1 lower | `._._____` |
//! | 2 upper | `._._.___` |
//! | 3 alarm | `._._._._` |
//! | 4 fallback | `----____` |

use crate::balancer::State;
use crate::time::{Duration, Instant};

/// Length of one slot.
pub const SLOT: Duration = Duration::from_millis(125);
/// Length of one frame: eight slots, starting on whole seconds of the clock.
pub const FRAME: Duration = Duration::from_secs(1);

/// The frame of a state: bit `n` set = LED on in slot `n`.
pub fn frame(state: State) -> u8 {
    match state {
        State::Normal => 0b0000_0001,
        State::Lower => 0b0000_0101,
        State::Upper => 0b0001_0101,
        State::Alarm => 0b0101_0101,
        State::Fallback => 0b0000_1111,
    }
}

/// Whether the LED is lit at `now` (frames start on whole seconds).
pub fn is_on(state: State, now: Instant) -> bool {
    let slot = (now.total_micros() % FRAME.total_micros()) / SLOT.total_micros();
    frame(state) & (1 << slot) != 0
}

/// When the LED next changes, after `now`, as long as the state stays `state`.
/// Saturates at [`Instant::MAX`].
pub fn next_change(state: State, now: Instant) -> Instant {
    let on = is_on(state, now);
    let mut t = next_look(now);
    // At most eight slots on: the frame repeats every second.
    for _ in 0..8 {
        if is_on(state, t) != on {
            return t;
        }
        t += SLOT;
    }
    t
}

/// When a driver that sleeps looks at the state again, after `now`: the next slot's
/// start. The LED only changes there, and a new state shows at once (within a slot,
/// 125 ms) — a driver that slept until [`next_change`] would show it up to a frame
/// late. The daemon's and the firmware's LED tasks both wake here. Saturates at
/// [`Instant::MAX`].
pub fn next_look(now: Instant) -> Instant {
    let slot = SLOT.total_micros();
    Instant::from_micros(
        (now.total_micros() / slot)
            .saturating_add(1)
            .saturating_mul(slot),
    )
}

/// The frame as text, `.`/`-` on and `_` off, as in the documentation.
pub fn pattern(state: State) -> [u8; 8] {
    let f = frame(state);
    let mut out = [b'_'; 8];
    for (i, c) in out.iter_mut().enumerate() {
        if f & (1 << i) != 0 {
            *c = if state == State::Fallback { b'-' } else { b'.' };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: u64) -> Instant {
        Instant::from_millis(t)
    }

    #[test]
    fn frames_match_the_register_table() {
        let cases = [
            (State::Normal, b"._______"),
            (State::Lower, b"._._____"),
            (State::Upper, b"._._.___"),
            (State::Alarm, b"._._._._"),
            (State::Fallback, b"----____"),
        ];
        for (state, want) in cases {
            assert_eq!(&pattern(state), want, "{state:?}");
            for slot in 0..8u64 {
                let lit = want[slot as usize] != b'_';
                for t in [slot * 125, slot * 125 + 124, 7000 + slot * 125 + 60] {
                    assert_eq!(is_on(state, ms(t)), lit, "{state:?} at {t} ms");
                }
            }
        }
    }

    #[test]
    fn next_change_is_the_next_edge() {
        assert_eq!(next_change(State::Normal, ms(0)), ms(125));
        assert_eq!(next_change(State::Normal, ms(130)), ms(1000));
        assert_eq!(next_change(State::Fallback, ms(10)), ms(500));
        assert_eq!(next_change(State::Alarm, ms(250)), ms(375));
        assert_eq!(next_change(State::Alarm, Instant::MAX), Instant::MAX);
    }

    /// A driver waking at [`next_look`] misses no edge of any frame and shows a new
    /// state within a slot: sleeping to the old state's next edge showed a state
    /// change up to 875 ms late (normal → alarm just after the normal frame's blink).
    #[test]
    fn a_driver_that_sleeps_to_the_next_look_shows_a_new_state_within_a_slot() {
        let states = [
            State::Normal,
            State::Lower,
            State::Upper,
            State::Alarm,
            State::Fallback,
        ];
        let near_end = [u64::MAX - 200_000, u64::MAX - 1, u64::MAX].map(Instant::from_micros);
        for now in (0..3000).map(ms).chain(near_end) {
            let look = next_look(now);
            assert!(look > now || look == Instant::MAX, "{now} → {look}");
            assert!(look - now <= SLOT, "{now} → {look}");
            for state in states {
                // No edge is skipped: the LED is constant until the look.
                assert!(next_change(state, now) >= look, "{state:?} at {now}");
            }
        }
        // The state turns from normal to alarm at 130 ms: it shows at 250 ms (slot 2
        // is lit in alarm), not at 1000 ms, the normal frame's next edge.
        let look = next_look(ms(130));
        assert_eq!(look, ms(250));
        assert!(is_on(State::Alarm, look));
        assert_eq!(next_change(State::Normal, ms(130)), ms(1000));
    }
}
