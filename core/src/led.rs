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

/// When the LED next changes, at or after `now_ms` (for a driver that sleeps).
pub fn next_change_ms(state: State, now_ms: u64) -> u64 {
    let on = is_on(state, now_ms);
    let mut t = (now_ms / SLOT_MS + 1) * SLOT_MS;
    // At most eight slots on: the frame repeats every second.
    for _ in 0..8 {
        if is_on(state, t) != on {
            return t;
        }
        t += SLOT_MS;
    }
    t
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
    }
}
