//! Sharing the per-phase budgets among several chargers: who charges (priority, then
//! turns), then how much (water-filling).
//!
//! Each tick, with the budgets of the phase laws:
//! 1. A silent charger keeps what it was last sent reserved on its phases (it is
//!    assumed to draw it; the meter shows the rest).
//! 2. The chargers with a car (state 1–5) are ordered: higher priority first; within a
//!    priority, one that has charged for less than [`MIN_TURN`] keeps its place, then
//!    those whose wait is over their turn (longest wait first), then the others
//!    charging (the one charging longest last), then the other waiters.
//! 3. In that order each is admitted if its minimum (1025) still fits on every phase
//!    it uses; so the lower priority pauses first and all never stop when one could
//!    charge.
//! 4. The admitted get their minimum, then the rest of each phase's budget is filled
//!    equally up to each one's maximum (progressive filling: a phase that is full
//!    freezes the chargers on it, the others go on rising).
//!
//! Turns: a car's wait grows while it is paused and another car of its priority
//! charges, and ends when it charges. Its turn comes when the wait reaches
//! [`TURN_WAIT`], less [`MIN_TURN`] for each further round the waiters need (with
//! seven cars waiting for one place the turns are shorter), so that no car waits
//! longer than 15 minutes while another of its priority charges.
//!
//! Never panics; all arithmetic saturates.

// Loops over the three phases index several arrays at once: clearer by index.
#![allow(clippy::needless_range_loop)]

use crate::config::MAX_CHARGERS;
use crate::time::{Duration, Instant};

/// A car's turn comes after it has waited this long while others of its priority
/// charged (less a [`MIN_TURN`] per further round of waiters): under the 15 minutes
/// promised, with room for the tick and a slot to free.
pub const TURN_WAIT: Duration = Duration::from_secs(12 * 60);

/// A car that starts charging keeps its place at least this long (contactors and cars
/// do not like to be switched every few seconds), unless the room itself goes.
pub const MIN_TURN: Duration = Duration::from_secs(60);

/// One charger as the sharing sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Candidate {
    /// The grid phases it draws on.
    pub phases: [bool; 3],
    /// The most it may be sent (its maximum, the override cap; no more than it was
    /// sent while a phase it uses may not rise), mA.
    pub max_ma: u32,
    /// Its priority (higher first).
    pub priority: u8,
    /// A car is connected and the charger answers.
    pub wants: bool,
    /// Silent: what it was last sent, reserved on its phases, mA.
    pub reserved_ma: u32,
    /// The sum of the voltages of its phases, 0.1 V: a mA sent to it draws this many
    /// mA·dV of a power budget (see [`Turns::share`]).
    pub weight_dv: u32,
}

/// What one charger gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Share {
    /// The value to send, mA.
    pub sent_ma: u32,
    /// Its car waits for room (or its turn).
    pub paused: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct TurnState {
    /// Charging since then.
    since: Option<Instant>,
    /// Paused while another of its priority charged, since it last charged.
    waited: Duration,
}

/// The turns of the cars (see the module documentation).
#[derive(Debug, Clone)]
pub struct Turns {
    last: Instant,
    state: [TurnState; MAX_CHARGERS],
}

impl Turns {
    /// No car waiting or charging yet, at `now`.
    pub fn new(now: Instant) -> Self {
        Turns {
            last: now,
            state: [TurnState::default(); MAX_CHARGERS],
        }
    }

    /// How long charger `k` (0-based, `k <` [`MAX_CHARGERS`]) has waited while another
    /// of its priority charged.
    pub fn waited(&self, k: usize) -> Duration {
        self.state.get(k).map_or(Duration::ZERO, |st| st.waited)
    }

    /// Shares `budget` (mA per grid phase) and `power` (all chargers together, in
    /// mA·dV: W × 10 000; `u64::MAX` for no bound, see [`Candidate::weight_dv`]) among
    /// `cands` (at most [`MAX_CHARGERS`]), each getting 0 or at least `min_ma`.
    pub fn share(
        &mut self,
        now: Instant,
        budget: [u32; 3],
        power: u64,
        min_ma: u32,
        cands: &[Candidate],
    ) -> [Share; MAX_CHARGERS] {
        let n = cands.len().min(MAX_CHARGERS);
        let cands = &cands[..n];
        let dt = now - self.last;
        self.last = self.last.max(now);
        // The waits of the last interval, under the last decision.
        let mut charging_at = [false; 8];
        for (c, st) in cands.iter().zip(&self.state) {
            if c.wants && st.since.is_some() {
                charging_at[usize::from(c.priority & 7)] = true;
            }
        }
        for (c, st) in cands.iter().zip(self.state.iter_mut()) {
            if !c.wants {
                *st = TurnState::default();
            } else if st.since.is_none() && charging_at[usize::from(c.priority & 7)] {
                st.waited = st.waited.saturating_add(dt);
            }
        }
        let mut out = [Share::default(); MAX_CHARGERS];
        // Silent chargers keep their reservation.
        let mut room = budget;
        let mut power = power;
        let cost = |c: &Candidate, ma: u32| u64::from(ma) * u64::from(c.weight_dv);
        for (c, o) in cands.iter().zip(out.iter_mut()) {
            if c.reserved_ma > 0 {
                power = power.saturating_sub(cost(c, c.reserved_ma));
                // (Sent again should it answer, within its present bounds.)
                let again = c.reserved_ma.min(c.max_ma);
                o.sent_ma = if again >= min_ma { again } else { 0 };
                for (r, on) in room.iter_mut().zip(c.phases) {
                    if on {
                        *r = r.saturating_sub(c.reserved_ma);
                    }
                }
            }
        }
        // The order of admission.
        let (mut waiting, mut charging) = ([0u32; 8], [0u32; 8]);
        for (c, st) in cands.iter().zip(&self.state) {
            if c.wants {
                let class = usize::from(c.priority & 7);
                if st.since.is_some() {
                    charging[class] += 1;
                } else {
                    waiting[class] += 1;
                }
            }
        }
        let turn = |class: usize| {
            let rounds = waiting[class].div_ceil(charging[class].max(1)).max(1);
            let shorter = MIN_TURN.saturating_mul(u64::from(rounds - 1));
            TURN_WAIT.saturating_sub(shorter).max(MIN_TURN)
        };
        let mut order = [0usize; MAX_CHARGERS];
        let mut len = 0;
        for (k, c) in cands.iter().enumerate() {
            if c.wants {
                order[len] = k;
                len += 1;
            }
        }
        let key = |k: usize| {
            let (c, st) = (&cands[k], &self.state[k]);
            let class = usize::from(c.priority & 7);
            let (group, sub) = match st.since {
                Some(since) if now - since < MIN_TURN => (0u8, 0u64),
                None if st.waited >= turn(class) => (1, u64::MAX - st.waited.total_micros()),
                // The one charging longest goes last.
                Some(since) => (2, u64::MAX - since.total_micros()),
                None => (3, u64::MAX - st.waited.total_micros()),
            };
            (u8::MAX - c.priority, group, sub, k)
        };
        order[..len].sort_unstable_by_key(|&k| key(k));
        // Admission: each one's minimum must fit on every phase it uses.
        let mut level = [0u32; MAX_CHARGERS];
        let mut admitted = [false; MAX_CHARGERS];
        for &k in &order[..len] {
            let c = &cands[k];
            if c.max_ma < min_ma || c.max_ma == 0 {
                continue;
            }
            let fits =
                (0..3).all(|p| !c.phases[p] || room[p] >= min_ma) && power >= cost(c, min_ma);
            if fits {
                admitted[k] = true;
                level[k] = min_ma;
                power -= cost(c, min_ma);
                for p in 0..3 {
                    if c.phases[p] {
                        room[p] -= min_ma;
                    }
                }
            }
        }
        // Water-filling of what is left.
        let mut active = admitted;
        for _ in 0..(MAX_CHARGERS + 4) {
            let mut count = [0u32; 3];
            for k in 0..n {
                if active[k] {
                    if level[k] >= cands[k].max_ma {
                        active[k] = false;
                        continue;
                    }
                    for p in 0..3 {
                        if cands[k].phases[p] {
                            count[p] += 1;
                        }
                    }
                }
            }
            if !active.iter().any(|&a| a) {
                break;
            }
            let mut step = u32::MAX;
            for k in 0..n {
                if active[k] {
                    step = step.min(cands[k].max_ma - level[k]);
                }
            }
            for p in 0..3 {
                if let Some(each) = room[p].checked_div(count[p]) {
                    step = step.min(each);
                }
            }
            let weight: u64 = (0..n)
                .filter(|&k| active[k])
                .map(|k| u64::from(cands[k].weight_dv))
                .sum();
            if let Some(each) = power.checked_div(weight) {
                step = step.min(u32::try_from(each).unwrap_or(u32::MAX));
            }
            for k in 0..n {
                if active[k] {
                    level[k] += step;
                    power = power.saturating_sub(cost(&cands[k], step));
                    for p in 0..3 {
                        if cands[k].phases[p] {
                            room[p] -= step;
                        }
                    }
                }
            }
            // A phase with less left than one mA per charger on it is full; so is the
            // power budget with less than one mA for each.
            let power_full = power < weight.max(1);
            for k in 0..n {
                if active[k]
                    && (power_full
                        || (0..3).any(|p| cands[k].phases[p] && room[p] < count[p].max(1)))
                {
                    active[k] = false;
                }
            }
        }
        for (k, c) in cands.iter().enumerate() {
            let st = &mut self.state[k];
            if !c.wants {
                continue;
            }
            if admitted[k] {
                out[k].sent_ma = level[k];
                if st.since.is_none() {
                    st.since = Some(now);
                    st.waited = Duration::ZERO;
                }
            } else {
                out[k].paused = true;
                st.since = None;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn car(phases: [bool; 3], max_ma: u32, priority: u8) -> Candidate {
        Candidate {
            phases,
            max_ma,
            priority,
            wants: true,
            reserved_ma: 0,
            weight_dv: 2300 * phases.iter().filter(|&&p| p).count() as u32,
        }
    }

    const ALL: [bool; 3] = [true; 3];
    const L1: [bool; 3] = [true, false, false];

    #[test]
    fn water_filling_is_equal_and_respects_every_phase() {
        let mut t = Turns::new(Instant::ZERO);
        let s = t.share(
            Instant::ZERO,
            [20_000, 30_000, 30_000],
            u64::MAX,
            6000,
            &[car(ALL, 16_000, 1), car(L1, 32_000, 1)],
        );
        // L1 holds 20 A for both: 10 A each.
        assert_eq!((s[0].sent_ma, s[1].sent_ma), (10_000, 10_000));
        let s = t.share(
            Instant::ZERO,
            [40_000, 10_000, 30_000],
            u64::MAX,
            6000,
            &[car(ALL, 16_000, 1), car(L1, 32_000, 1)],
        );
        // L2 holds the three-phase car at 10 A; the single-phase one takes the rest of L1.
        assert_eq!((s[0].sent_ma, s[1].sent_ma), (10_000, 30_000));
    }

    #[test]
    fn the_lower_priority_pauses_first_and_never_all() {
        let mut t = Turns::new(Instant::ZERO);
        let s = t.share(
            Instant::ZERO,
            [10_000; 3],
            u64::MAX,
            6000,
            &[car(ALL, 16_000, 1), car(ALL, 16_000, 2)],
        );
        assert_eq!(
            s[0],
            Share {
                sent_ma: 0,
                paused: true
            }
        );
        assert_eq!(
            s[1],
            Share {
                sent_ma: 10_000,
                paused: false
            }
        );
    }

    #[test]
    fn equal_priorities_take_turns_within_fifteen_minutes() {
        let mut t = Turns::new(Instant::ZERO);
        let cars = [car(ALL, 16_000, 1); 4];
        let mut last_charge = [Instant::ZERO; 4];
        let mut worst = Duration::ZERO;
        for s in 0..(3 * 3600u64) {
            let now = Instant::ZERO + Duration::from_secs(s);
            let shares = t.share(now, [7000; 3], u64::MAX, 6000, &cars);
            let charging = shares.iter().take(4).filter(|s| s.sent_ma > 0).count();
            assert_eq!(charging, 1, "one charges at {s} s");
            for k in 0..4 {
                if shares[k].sent_ma > 0 {
                    last_charge[k] = now;
                }
                worst = worst.max(now - last_charge[k]);
                assert!(t.waited(k) <= Duration::from_secs(15 * 60));
            }
        }
        assert!(worst <= Duration::from_secs(15 * 60), "{worst:?}");
    }

    #[test]
    fn a_power_budget_bounds_the_chargers_together_by_their_phases() {
        let mut t = Turns::new(Instant::ZERO);
        // 6.9 kW for a three-phase and a single-phase car (230 V): each mA of the
        // three-phase one costs three times the single-phase one's.
        let cars = [car(ALL, 16_000, 1), car(L1, 32_000, 1)];
        let power = 6900 * 10_000;
        let s = t.share(Instant::ZERO, [40_000; 3], power, 6000, &cars);
        let used: u64 = cars
            .iter()
            .zip(&s)
            .map(|(c, s)| u64::from(s.sent_ma) * u64::from(c.weight_dv))
            .sum();
        assert!(used <= power, "{used}");
        // Both at the same current (water-filling), filling the budget: 3I + I = 30 A.
        assert_eq!(s[0].sent_ma, s[1].sent_ma);
        assert!(s[0].sent_ma >= 7490, "{s:?}");
        // Not enough for both minima (4.14 + 1.38 kW): one pauses, never both.
        let s = t.share(Instant::ZERO, [40_000; 3], 5000 * 10_000, 6000, &cars);
        assert_eq!(s.iter().filter(|s| s.sent_ma > 0).count(), 1, "{s:?}");
        // No budget at all: every car waits.
        let s = t.share(Instant::ZERO, [40_000; 3], 0, 6000, &cars);
        assert!(s.iter().all(|s| s.sent_ma == 0));
    }
}
