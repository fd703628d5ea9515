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

/// Length of one slot.
pub const SLOT_MS: u64 = 125;

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

/// Whether the LED is lit at `now_ms` (frames start on whole seconds).
pub fn is_on(state: State, now_ms: u64) -> bool {
    let slot = (now_ms % 1000) / SLOT_MS;
    frame(state) & (1 << slot) != 0
}

/// When the LED next changes, after `now_ms`, as long as the state stays `state`.
/// Saturates at `u64::MAX`.
pub fn next_change_ms(state: State, now_ms: u64) -> u64 {
    let on = is_on(state, now_ms);
    let mut t = next_look_ms(now_ms);
    // At most eight slots on: the frame repeats every second.
    for _ in 0..8 {
        if is_on(state, t) != on {
            return t;
        }
        t = t.saturating_add(SLOT_MS);
    }
    t
}

/// When a driver that sleeps looks at the state again, after `now_ms`: the next slot's
/// start. The LED only changes there, and a new state shows at once (within a slot,
/// 125 ms) — a driver that slept until [`next_change_ms`] would show it up to a frame
/// late. The daemon's and the firmware's LED tasks both wake here. Saturates at
/// `u64::MAX`.
pub fn next_look_ms(now_ms: u64) -> u64 {
    (now_ms / SLOT_MS).saturating_add(1).saturating_mul(SLOT_MS)
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
                    assert_eq!(is_on(state, t), lit, "{state:?} at {t} ms");
                }
            }
        }
    }

    #[test]
    fn next_change_is_the_next_edge() {
        assert_eq!(next_change_ms(State::Normal, 0), 125);
        assert_eq!(next_change_ms(State::Normal, 130), 1000);
        assert_eq!(next_change_ms(State::Fallback, 10), 500);
        assert_eq!(next_change_ms(State::Alarm, 250), 375);
        assert_eq!(next_change_ms(State::Alarm, u64::MAX), u64::MAX);
    }

    /// A driver waking at [`next_look_ms`] misses no edge of any frame and shows a new
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
        for now in (0..3000).chain([u64::MAX - 200, u64::MAX - 1, u64::MAX]) {
            let look = next_look_ms(now);
            assert!(look > now || look == u64::MAX, "{now} → {look}");
            assert!(look - now <= SLOT_MS, "{now} → {look}");
            for state in states {
                // No edge is skipped: the LED is constant until the look.
                assert!(next_change_ms(state, now) >= look, "{state:?} at {now}");
            }
        }
        // The state turns from normal to alarm at 130 ms: it shows at 250 ms (slot 2
        // is lit in alarm), not at 1000 ms, the normal frame's next edge.
        let look = next_look_ms(130);
        assert_eq!(look, 250);
        assert!(is_on(State::Alarm, look));
        assert_eq!(next_change_ms(State::Normal, 130), 1000);
    }
}
