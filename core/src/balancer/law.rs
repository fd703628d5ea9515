//! The control law over a set of grid phases: how much current may be drawn there, second by second.
//!
//! A sans-IO state machine (the shape of quinn-proto's `Connection`): it owns no
//! clock, port or pin. The driver feeds it valid meter readings
//! ([`Law::on_reading`]), the charger's own phase currents where known
//! ([`Law::on_charger_currents`]), the override cap (register 1000,
//! [`Law::set_cap`]) and the time, and calls [`Law::tick`] at
//! [`Law::next_tick`]; the tick returns the [`Decision`] to send.
//!
//! The rules (registers.md, "Balancer states" and "Control rules"):
//! - State from the highest phase current `I` over the configured phases: alarm
//!   (`I` > 1012), upper (`I` > 1015), lower (`I` ≤ 1018 and the limit can still
//!   rise), normal otherwise; fallback when no valid telegram came for 1022 s.
//! - A state change restarts the wait timer. Each time a state has held for its wait
//!   time (1013 / 1016 / 1019) the limit moves by its step (−1014 / −1017 / +1020) and
//!   the timer restarts.
//! - The limit stays within `[0, min(1010, 1000)]`; it only rises on a reading younger
//!   than 3 s; entering fallback sets it to 1021 at once; leaving fallback it goes on
//!   from there as in state 1; it starts at 0 at boot.
//! - The value sent is 0 below the charger minimum (1025), else the limit.
//!
//! Headroom mode (1023 = 1) keeps the same states and thresholds and sizes the steps
//! from the measurement and the charger's own reading of the car (see the private
//! `headroom` method): it lowers no later than stepped mode, by the overshoot, and
//! raises in one step into room that has been free for [`HEADROOM_HOLD_S`] seconds —
//! at once into the gap of a load that was on, and last off, for [`HEADROOM_LONG`]
//! or more (an oven's thermostat, a kettle switching off), never into the seconds-long
//! gaps of a pulsing load (an induction hob), which it cannot see coming to an end.
//!
//! The charger's reading is what a real bus gives: measured by the charger, read every
//! 2 s, of a car that follows a new limit 1–3 s late. It lags the meter, so while the
//! car may be climbing the meter's rise counts as the car's (within what the car may
//! draw); and it is input like any other: a value the car cannot draw, or a rise the
//! meter did not see, is refused ([`Law::on_charger_currents`]) and headroom mode
//! falls back to the meter alone, raising no faster than stepped mode.
//!
//! Never panics; all arithmetic saturates.

use crate::config::{Config, ControlMode};
pub use crate::registers::State;
use crate::time::{Duration, Instant};

/// The control tick.
pub const TICK: Duration = Duration::from_secs(1);

/// A wait of N s (1013, 1016, 1019) is over at N s less this: the ticks follow the
/// telegrams, which come about a second apart, give or take a few ms. Without it a
/// 1 s wait would take two telegrams whenever they come 999 ms apart, and an alarm
/// would be cut half as fast.
pub const WAIT_TOLERANCE: Duration = Duration::from_millis(200);

/// After a tick on a telegram, the timer waits this much longer than [`TICK`], so
/// that the next telegram (a meter sends one a second, give or take) drives the next
/// tick rather than racing the timer to it.
pub const TELEGRAM_GRACE: Duration = Duration::from_millis(250);

/// A reading older than this may lower the limit but never raise it.
pub const FRESH: Duration = Duration::from_secs(3);

/// Headroom mode aims this far below the upper limit, so that meter resolution and
/// small load changes do not push it into state 2.
pub const HEADROOM_MARGIN_MA: u32 = 300;

/// Headroom mode lets the car settle this long after a change of the limit before it
/// raises again (a car takes a second to react and a few to ramp; raising on a reading
/// taken before it followed would overshoot).
pub const HEADROOM_SETTLE: Duration = Duration::from_secs(2);

/// Headroom mode raises only into room that has been free for this long: it sizes a
/// raise from the highest house load of the last `HEADROOM_HOLD_S` seconds, so that a
/// cycling load (a hob pulsing, an oven's thermostat) does not pull the car up into its
/// gaps and then into an alarm.
pub const HEADROOM_HOLD_S: usize = 6;

/// The charger's reading of the car's current counts as steady (not ramping) when two
/// reads differ by no more than this.
pub const STEADY_MA: i32 = 700;

/// A car still climbing to its limit is within this of it only at the very end of
/// its ramp: a read-back this close to the value sent, or two in a row this close to
/// each other, show where the car settled, mA.
pub const SETTLED_MA: i32 = 200;

/// Headroom mode lowers after at most this long above the upper limit (stepped mode
/// waits 1016 s): it steps by the overshoot only, so it can afford to act sooner.
pub const HEADROOM_UPPER_WAIT_S: u32 = 2;

/// Headroom mode raises by at least this much (or by 1020 if that is smaller, or to the
/// cap): finer steps than stepped mode's, fewer than one per meter count.
pub const HEADROOM_MIN_RAISE_MA: u32 = 250;

/// A change of the house load by at least this much between two readings is an edge:
/// a load switching on (rise) or off (drop).
pub const HEADROOM_EDGE_MA: i32 = 2000;

/// A drop opens a gap that headroom mode rides at once, without waiting out the
/// [`HEADROOM_HOLD_S`] peak hold, when the load that dropped had been on at least this
/// long and the last gap seen (if any) lasted at least this long: an oven's thermostat,
/// a kettle switching off — not a hob pulsing every few seconds.
pub const HEADROOM_LONG: Duration = Duration::from_secs(20);

/// After a raise, the car's answer shows in the charger's read-back only once the car
/// has reacted (a Terra AC's car follows 1–3 s after the charger applied the limit), the
/// charger's meter has measured it (up to a second later) and the driver has read it
/// (every 2 s): two steady read-backs both taken at least this long after the raise
/// (or one showing the car at its limit) are its answer. Until then the meter's rise
/// since the raise is the car's, as far as the car may draw.
pub const HEADROOM_FOLLOW: Duration = Duration::from_secs(4);

/// No car answers a new limit sooner than this after it was sent: the meter's
/// rise before it is not the car's.
pub const HEADROOM_MIN_DELAY: Duration = Duration::from_secs(1);

/// No car climbs faster than this, mA/s (real cars: about 4 A/s): the meter's rise
/// beyond it is not the car's.
pub const HEADROOM_MAX_RAMP_MA_PER_S: u64 = 10_000;

/// The slowest climb a transit waits for, mA/s: a car climbing slower is taken as
/// settled where the read-back then shows it.
pub const HEADROOM_SLOWEST_RAMP_MA_PER_S: u64 = 1000;

/// A raise's answer in which the car rose by no more than this beyond the meter's rise
/// confirms the read-back, mA (and clears what earlier raises left unexplained); one
/// whose rise the meter did not see at all (no more than this) adds to it.
pub const CONFIRMED_MA: i32 = 500;

/// A single raise whose answer claims this much more than the meter showed makes the
/// read-back implausible at once, mA.
pub const READBACK_LIE_MA: i32 = 6000;

/// Raises in a row whose rise the meter did not show before their unexplained rise
/// (over [`READBACK_CONTRADICTION_MA`]) makes the read-back implausible.
pub const UNCONFIRMED_RAISES: u8 = 2;

/// After the value sent drops, the car may go on drawing the old value this long (its
/// delay, a second to come down, the charger's measurement).
pub const HEADROOM_DROP: Duration = Duration::from_secs(5);

/// A read-back above the most the car may draw (the charger maximum 1010, or more
/// than it was allowed lately) by more than this is implausible, mA.
pub const READBACK_SLACK_MA: u32 = 1500;

/// After an implausible read-back, this many plausible ones in a row before the
/// read-back is used again.
pub const READBACK_TRUST_READS: u8 = 3;

/// The cross-check after a raise: the read-back may claim the car rose by this much
/// more than the meter's highest phase did before it counts as contradicting the
/// meter, mA (house loads move meanwhile).
pub const READBACK_CONTRADICTION_MA: i32 = 2500;

/// A read-back is held against a meter reading taken no more than this before it.
pub const READBACK_PAIR: Duration = Duration::from_millis(1500);

/// Charger reads kept: the meter's reading (up to 3 s old and still fresh) was taken
/// while one of these was current.
const CHARGER_HISTORY: usize = 3;

/// What the tick decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The balancer's limit, mA.
    pub limit_ma: u32,
    /// What to send to the charger (register 1001): 0 below the charger minimum.
    pub sent_ma: u32,
    /// Register 1002.
    pub state: State,
    /// True when `sent_ma` differs from the previous tick's.
    pub changed: bool,
}

/// The control law over a set of grid phases (all of the connection's for one
/// three-phase charger; one phase for each of a site's per-phase budgets). See the
/// module documentation.
#[derive(Debug, Clone)]
pub(crate) struct Law {
    cfg: Config,
    cap_ma: u32,
    limit_ma: u32,
    sent_ma: u32,
    state: State,
    /// When the wait timer of the current state started.
    timer: Instant,
    /// The last valid reading: when, and the highest phase current.
    reading: Option<(Instant, i32)>,
    /// When the last valid reading arrived, or boot.
    last_valid: Instant,
    /// The charger's own highest phase current and when it was read.
    charger: Option<(Instant, i32)>,
    /// The charger's last reads, newest first (is the car still ramping? what did it
    /// draw when the meter measured?).
    charger_hist: [Option<(Instant, i32)>; CHARGER_HISTORY],
    /// When the limit last changed (headroom settling).
    changed: Option<Instant>,
    /// The value sent before the last change and when it changed: the car may still
    /// draw it for [`HEADROOM_DROP`].
    prev_sent: Option<(u32, Instant)>,
    /// The car may be on its way up to its limit, not yet seen in the read-back.
    transit: Option<Transit>,
    /// The highest phase current of the last reading headroom mode acted on.
    prev_i: Option<i32>,
    /// The last valid reading's currents per phase (the cross-check after a raise
    /// looks for the car's rise on whichever phase it charges on).
    phases_now: [Option<i32>; 3],
    /// The same for the reading before the last one headroom mode acted on.
    prev_phases: [Option<i32>; 3],
    /// Implausible read-backs since boot.
    implausible: u32,
    /// The car's rise the meter did not confirm, added up over raises since the last
    /// raise it confirmed, mA.
    unexplained_ma: i32,
    /// Raises in a row whose rise the meter did not show.
    unconfirmed: u8,
    /// Plausible read-backs still needed before the read-back is used again (0: used).
    distrust: u8,
    /// Highest house load (grid minus car) per second, the last `HEADROOM_HOLD_S` s.
    hold: PeakHold,
    /// Load edges, for riding long gaps at once.
    gaps: GapTracker,
    /// A valid reading arrived since the previous tick (headroom raises only on one).
    unseen_reading: bool,
    /// The first usable read-back arrived since the previous tick.
    first_readback: bool,
    /// The cap changed since the previous tick (the next call ticks, even early).
    cap_changed: bool,
    next_tick: Instant,
    /// The grid phases it watches (the highest of them is `I`).
    mask: [bool; 3],
    /// Its limit is a budget shared by several chargers: the value sent on its phases
    /// is set after the tick ([`Law::set_sent`]), not derived from the limit.
    shared: bool,
    /// Shared: when a charger on its phases was last given more ([`Law::note_raise`]).
    raised_at: Option<Instant>,
    /// Shared: when one was given more while the total sent did not rise.
    transfer_at: Option<Instant>,
}

impl Law {
    /// A balancer at boot (`now`): limit 0, stepping up as in state 1 once readings
    /// arrive. The override cap starts at the charger maximum.
    pub fn new(cfg: Config, now: Instant) -> Self {
        Law {
            cap_ma: cfg.charger_max_ma(),
            cfg,
            limit_ma: 0,
            sent_ma: 0,
            state: State::Lower,
            timer: now,
            reading: None,
            last_valid: now,
            charger: None,
            charger_hist: [None; CHARGER_HISTORY],
            changed: None,
            prev_sent: None,
            transit: None,
            prev_i: None,
            phases_now: [None; 3],
            prev_phases: [None; 3],
            implausible: 0,
            unexplained_ma: 0,
            unconfirmed: 0,
            distrust: 0,
            hold: PeakHold::new(),
            gaps: GapTracker::new(),
            unseen_reading: false,
            first_readback: false,
            cap_changed: false,
            next_tick: now,
            mask: phase_mask(cfg.phases()),
            shared: false,
            raised_at: None,
            transfer_at: None,
        }
    }

    /// Applies a new (validated) configuration from the next tick on. The limit is
    /// kept and clamped to the new maximum.
    pub fn apply_config(&mut self, cfg: Config) {
        let old_max = self.cfg.charger_max_ma();
        self.cfg = cfg;
        // An override equal to the old maximum follows the new one.
        if self.cap_ma == old_max {
            self.cap_ma = cfg.charger_max_ma();
        }
        // The new limits (maximum, minimum) apply at the next call of `tick`, even an
        // early one.
        self.cap_changed = true;
    }

    /// Register 1000: an outside cap, mA. Lowering it below the present limit drops
    /// the limit at the next call of [`tick`](Self::tick), even an early one; raising
    /// it lets the limit step up again.
    pub fn set_cap(&mut self, cap_ma: u32) {
        if cap_ma != self.cap_ma {
            self.cap_ma = cap_ma;
            self.cap_changed = true;
        }
    }

    /// The grid phases it watches from the next reading on (a charger's wiring,
    /// learned or configured). The limit is kept.
    pub fn set_mask(&mut self, mask: [bool; 3]) {
        self.mask = mask;
    }

    /// True when what is sent on its phases may rise now: not above the upper limit,
    /// and no car on its way up to a raise.
    pub fn may_raise(&self) -> bool {
        matches!(self.state, State::Lower | State::Normal) && self.transit.is_none()
    }

    /// Makes its limit a budget shared by several chargers: what is sent on its phases
    /// comes from [`Law::set_sent`] after each tick.
    pub fn share(mut self) -> Self {
        self.shared = true;
        self
    }

    /// A charger on its phases was given more: its car may climb for a while, and a
    /// rise of the meter meanwhile may be its (even when the total sent on the phase fell
    /// because another one was cut). `transfer`: the total did not rise (another one
    /// paused): the climb shows in the meter before the read-backs and is no house
    /// load, so the projection alone cuts nothing for a while.
    pub fn note_raise(&mut self, now: Instant, transfer: bool) {
        self.raised_at = Some(now);
        if transfer {
            self.transfer_at = Some(now);
        }
    }

    /// What was really sent on its phases after the tick (the chargers' shares of
    /// its limit, added up): the car's draw is judged against it. For a law whose
    /// limit is shared among several chargers; a single charger's law needs no call.
    pub fn set_sent(&mut self, now: Instant, sent_ma: u32) {
        if sent_ma != self.sent_ma {
            self.prev_sent = Some((self.sent_ma, now));
            self.sent_ma = sent_ma;
        }
    }

    /// A valid telegram's signed grid currents (mA, import positive), per phase.
    /// Phases the meter does not report are `None`; a reading with no current on any
    /// configured phase is not a valid reading for the balancer.
    ///
    /// A valid reading makes the tick due at once: the control tick follows the
    /// telegrams (the decision is sent milliseconds after the meter's data, not up to a
    /// second later), and runs every [`TICK`] from the last one when they stop.
    pub fn on_reading(&mut self, now: Instant, grid_ma: [Option<i32>; 3]) -> bool {
        let mut watched = grid_ma;
        for (v, on) in watched.iter_mut().zip(self.mask) {
            if !on {
                *v = None;
            }
        }
        let highest = watched.iter().flatten().copied().max();
        match highest {
            Some(i) => {
                self.reading = Some((now, i));
                self.phases_now = watched;
                if let Some(tr) = &mut self.transit {
                    for (peak, now) in tr.phases_peak.iter_mut().zip(self.phases_now) {
                        *peak = match (*peak, now) {
                            (Some(p), Some(n)) => Some(p.max(n)),
                            (p, n) => p.or(n),
                        };
                    }
                }
                self.last_valid = now;
                self.unseen_reading = true;
                self.next_tick = self.next_tick.min(now);
                true
            }
            None => false,
        }
    }

    /// The charger's own phase currents (mA) as it reports them (0x4010–0x4015, any
    /// value), read back from it: headroom mode uses them to see what the car draws.
    ///
    /// A read-back is checked before it is used: above what the car may draw (the
    /// charger maximum 1010, or what it was allowed lately, plus [`READBACK_SLACK_MA`])
    /// or, after a raise, claiming the car rose by more than the meter saw
    /// ([`READBACK_CONTRADICTION_MA`]), it is implausible: counted
    /// ([`Law::implausible_readbacks`]), and headroom mode works from the meter
    /// alone until [`READBACK_TRUST_READS`] plausible ones in a row
    /// ([`Law::readback_distrusted`]).
    pub fn on_charger_currents(&mut self, now: Instant, ma: [Option<u32>; 3]) {
        let highest = ma.iter().flatten().copied().max();
        let bound = self.cfg.charger_max_ma().saturating_add(READBACK_SLACK_MA);
        let mut plausible = highest.is_none_or(|v| v <= bound);
        let sent = to_i32(self.sent_ma);
        let reached = |c: i32| c >= sent.saturating_sub(SETTLED_MA);
        // The meter's reading to hold a raise's answer against: one taken about when
        // the charger measured (a telegram lost since leaves the check, and the raise's
        // transit, to the next read-back).
        let meter_now = self.reading.filter(|&(t, _)| t + READBACK_PAIR >= now);
        let mut checkable = true;
        if let (true, Some(v), Some(tr)) = (plausible, highest, self.transit) {
            let c = to_i32(v).min(to_i32(self.draw_bound(now)));
            // (and one taken after the raise: an older one cannot show the car's rise)
            match meter_now.filter(|&(t, _)| t > tr.since) {
                Some((_, i_now)) if tr.raised && reached(c) => {
                    // The raise's answer: the car's rise against the meter's.
                    let car_rise = c.saturating_sub(tr.draw_before);
                    // The highest the meter showed on any phase since the raise: a house
                    // load that dropped since cannot hide a rise it once showed.
                    let meter_rise = tr
                        .phases_peak
                        .iter()
                        .zip(tr.phases_before)
                        .filter_map(|(now, before)| Some(now.as_ref()?.saturating_sub(before?)))
                        .max()
                        .unwrap_or(i_now.saturating_sub(tr.i_before));
                    // What the meter did not confirm adds up over raises until a raise
                    // the meter does confirm: small claims each, a large one together.
                    // A load that dropped just as the car rose looks the same to the
                    // meter once; two such raises in a row are a read-back that lies.
                    let excess = car_rise.saturating_sub(meter_rise);
                    if excess > CONFIRMED_MA && meter_rise <= CONFIRMED_MA {
                        self.unexplained_ma = self.unexplained_ma.saturating_add(excess);
                        self.unconfirmed = self.unconfirmed.saturating_add(1);
                    } else {
                        self.unexplained_ma = 0;
                        self.unconfirmed = 0;
                    }
                    plausible = excess <= READBACK_LIE_MA
                        && (self.unexplained_ma <= READBACK_CONTRADICTION_MA
                            || self.unconfirmed < UNCONFIRMED_RAISES);
                    if !plausible && self.unconfirmed >= UNCONFIRMED_RAISES {
                        // Raises sized on claims the meter never confirmed, one after the
                        // other: take the last back. (One alone may be a load that went off
                        // or the sun that came out as the car rose: the meter alone then
                        // judges the limit as it stands.)
                        self.limit_ma = self.limit_ma.min(tr.limit_before);
                        self.changed = Some(now);
                        self.next_tick = self.next_tick.min(now);
                    }
                }
                None => checkable = false,
                _ => {}
            }
        }
        if !plausible {
            self.implausible = self.implausible.saturating_add(1);
            self.distrust = READBACK_TRUST_READS;
            self.charger = None;
            self.charger_hist = [None; CHARGER_HISTORY];
            self.transit = None;
            return;
        }
        if highest.is_some() {
            self.distrust = self.distrust.saturating_sub(1);
        }
        // Reads from before a silence say nothing of the car now.
        let usable = self.charger.is_some_and(|(t, _)| (now - t) < FRESH);
        if !usable {
            self.charger_hist = [None; CHARGER_HISTORY];
        }
        if !usable && highest.is_some() && self.distrust == 0 {
            // The first usable read-back (at boot, or after a silent or distrusted
            // charger): headroom mode may size a raise from the last reading now.
            self.first_readback = true;
            self.next_tick = self.next_tick.min(now);
        }
        self.charger = highest.map(|v| (now, to_i32(v)));
        self.charger_hist.rotate_right(1);
        self.charger_hist[0] = self.charger;
        if let Some(tr) = self.transit {
            // Over when the car is seen at its limit, or two read-backs taken after it
            // can have answered agree (what the meter shows beyond them is the house),
            // or at the latest when even the slowest car would have got there.
            let answer = tr.since + HEADROOM_FOLLOW;
            let late = |r: Option<(Instant, i32)>| r.filter(|&(t, _)| t >= answer);
            let steady = match (late(self.charger_hist[0]), late(self.charger_hist[1])) {
                (Some((_, a)), Some((_, b))) => a.abs_diff(b) <= SETTLED_MA.unsigned_abs(),
                _ => false,
            };
            let seen = self.charger.is_some_and(|(_, c)| reached(c));
            if (checkable && (seen || steady)) || now >= tr.expires {
                self.transit = None;
            }
        }
    }

    /// The most the car may draw now if it obeys, mA: the value sent, or the one before
    /// it while the car may not have come down yet; never above the charger maximum.
    fn draw_bound(&self, now: Instant) -> u32 {
        let prev = match self.prev_sent {
            Some((v, at)) if (now - at) < HEADROOM_DROP => v,
            _ => 0,
        };
        self.sent_ma.max(prev).min(self.cfg.charger_max_ma())
    }

    /// Read-backs found implausible since boot (above what the car may draw, or
    /// contradicting the meter after a raise).
    pub fn implausible_readbacks(&self) -> u32 {
        self.implausible
    }

    /// True while headroom mode ignores the charger's read-back after an implausible
    /// one (register 1003 bit 7).
    pub fn readback_distrusted(&self) -> bool {
        self.distrust > 0
    }

    /// When [`tick`](Self::tick) must be called next.
    pub fn next_tick(&self) -> Instant {
        self.next_tick
    }

    /// Seconds since the last valid reading (register 1004), saturating.
    pub fn seconds_since_reading(&self, now: Instant) -> u16 {
        match self.reading {
            Some(_) => u16::try_from((now - self.last_valid).secs()).unwrap_or(u16::MAX),
            None => u16::MAX,
        }
    }

    /// True when the last valid reading is older than [`FRESH`] (register 1003
    /// bit 0).
    pub fn is_stale(&self, now: Instant) -> bool {
        !matches!(self.reading, Some((t, _)) if (now - t) < FRESH)
    }

    /// The current decision without ticking.
    pub fn decision(&self) -> Decision {
        Decision {
            limit_ma: self.limit_ma,
            sent_ma: self.sent_ma,
            state: self.state,
            changed: false,
        }
    }

    /// One control tick. Call at [`next_tick`](Self::next_tick); an early call
    /// changes nothing, unless the cap (1000) changed since the last tick.
    pub fn tick(&mut self, now: Instant) -> Decision {
        let due = now >= self.next_tick;
        if !due && !self.cap_changed {
            return self.decision();
        }
        // The next tick one period on (after a long gap, from now); after a tick on a
        // telegram, the next telegram's (with a grace period for its jitter); an early
        // tick for a new cap leaves the schedule as it is. Never after the moment
        // fallback is due.
        if self.unseen_reading {
            self.next_tick = now + TICK + TELEGRAM_GRACE;
        } else if due {
            self.next_tick = self
                .next_tick
                .saturating_add(TICK)
                .max(now + Duration::from_millis(1));
        }
        self.cap_changed = false;
        let fallback_at = self
            .last_valid
            .saturating_add(Duration::from_secs(u64::from(self.cfg.fallback_s())));
        if fallback_at > now {
            self.next_tick = self.next_tick.min(fallback_at);
        }
        let before = self.sent_ma;
        self.step(now);
        self.unseen_reading = false;
        self.first_readback = false;
        self.limit_ma = self.limit_ma.min(self.cap());
        if !self.shared {
            self.sent_ma = if self.limit_ma < self.cfg.charger_min_ma() {
                0
            } else {
                self.limit_ma
            };
            if self.sent_ma != before {
                self.prev_sent = Some((before, now));
            }
        }
        Decision {
            changed: self.sent_ma != before,
            ..self.decision()
        }
    }

    fn cap(&self) -> u32 {
        self.cap_ma.min(self.cfg.charger_max_ma())
    }

    fn enter(&mut self, state: State, now: Instant) -> bool {
        if state != self.state {
            self.state = state;
            self.timer = now;
            true
        } else {
            false
        }
    }

    fn waited(&self, now: Instant, wait_s: u32) -> bool {
        (now - self.timer) + WAIT_TOLERANCE >= Duration::from_secs(u64::from(wait_s))
    }

    fn step(&mut self, now: Instant) {
        let cfg = self.cfg;
        let fallback_after = Duration::from_secs(u64::from(cfg.fallback_s()));
        if now - self.last_valid >= fallback_after {
            if self.enter(State::Fallback, now) || self.limit_ma != cfg.fallback_ma() {
                self.limit_ma = cfg.fallback_ma();
            }
            return;
        }
        let Some((_, i)) = self.reading else {
            // Boot, no reading yet: state 1 at 0, nothing to raise on.
            self.enter(State::Lower, now);
            return;
        };
        let fresh = !self.is_stale(now);
        let cap = self.cap();
        let state = if i > to_i32(cfg.alarm_ma()) {
            State::Alarm
        } else if i > to_i32(cfg.upper_ma()) {
            State::Upper
        } else if i <= to_i32(cfg.lower_ma()) && self.limit_ma < cap {
            State::Lower
        } else {
            State::Normal
        };
        let entered = self.enter(state, now);
        match cfg.mode() {
            ControlMode::Stepped => self.stepped(now, fresh),
            ControlMode::Headroom => self.headroom(now, fresh, i, entered),
        }
    }

    fn stepped(&mut self, now: Instant, fresh: bool) {
        let cfg = self.cfg;
        match self.state {
            State::Alarm if self.waited(now, cfg.alarm_wait_s()) => {
                self.lower_by(cfg.alarm_step_ma(), now);
            }
            State::Upper if self.waited(now, cfg.upper_wait_s()) => {
                self.lower_by(cfg.upper_step_ma(), now);
            }
            State::Lower if fresh && self.waited(now, cfg.lower_wait_s()) => {
                self.limit_ma = self
                    .limit_ma
                    .saturating_add(cfg.lower_step_ma())
                    .min(self.cap());
                self.timer = now;
            }
            _ => {}
        }
    }

    fn lower_by(&mut self, step: u32, now: Instant) {
        // A shared budget may stand above what was sent on its phases (chargers at
        // their maximum, cars not connected): a cut counts from what was sent.
        let from = if self.shared {
            self.limit_ma.min(self.sent_ma)
        } else {
            self.limit_ma
        };
        self.limit_ma = from.saturating_sub(step);
        self.timer = now;
    }

    /// Headroom mode: the same states, steps sized from the measurement.
    ///
    /// - What the car draws: the charger's own reading, when it is fresh, plausible
    ///   and trusted (see [`Law::on_charger_currents`]), clamped to what the car
    ///   may draw (the value sent, or the one before it while the car comes down). The
    ///   read-back lags the meter (read every 2 s, measured by the charger before that,
    ///   a car following 1–3 s late): after a raise, until a read-back can show the
    ///   car's answer ([`HEADROOM_FOLLOW`] and the ramp), the meter's rise since the
    ///   raise counts as the car's, as far as it may draw. Without a usable read-back,
    ///   headroom mode works from the meter alone (see `meter_alone`).
    /// - Where the grid is heading: the house load is the grid current less that draw;
    ///   once the car has followed the value sent, the grid will carry house + sent.
    ///   The worse of that and the measured current is what the steps act on.
    /// - Lowering, to bring it to the target (upper limit − margin): above the alarm
    ///   limit at once and then every 1013 s; above the upper limit after 1016 s of
    ///   state 2 as in stepped mode, or at once when only the projection (a car still
    ///   ramping up to its limit) is above it. Never later than stepped mode.
    /// - Raising (fresh data, the car steady, the last change settled and its answer
    ///   seen in the read-back, 1019 s of the state): in one step to the target less
    ///   the highest house load of the last [`HEADROOM_HOLD_S`] seconds, or, in a gap
    ///   that opened after a load had been on for [`HEADROOM_LONG`] and that load's
    ///   last gap was as long, of the seconds since the gap opened. Only on a telegram
    ///   that arrived since the previous tick (a raise is one large step, and an older
    ///   reading may predate the load that is on now), by at least
    ///   [`HEADROOM_MIN_RAISE_MA`].
    /// - The house load is recorded (for the hold and the gaps) only while the car is
    ///   steady, its last raise answered, and the charger reads kept reach back to when
    ///   the meter measured; a reading older than those (telegrams lost) is no ground
    ///   for another cut while the car follows its limit.
    fn headroom(&mut self, now: Instant, fresh: bool, i: i32, entered: bool) {
        let cfg = self.cfg;
        let target = to_i32(cfg.upper_ma().saturating_sub(HEADROOM_MARGIN_MA));
        let sent = to_i32(self.sent_ma);
        let bound = to_i32(self.draw_bound(now));
        let charger = match self.charger {
            Some((t, c)) if self.distrust == 0 && (now - t) < FRESH => Some(c.min(bound).max(0)),
            _ => None,
        };
        let Some(c) = charger else {
            self.meter_alone(now, fresh, i, entered, target);
            return;
        };
        // The meter and the charger are read at different moments; the meter's reading
        // was taken while one of the last charger reads was current. The car is steady
        // when they agree; while it ramps, take the highest (the lower house load)
        // rather than cut on a draw it has already left.
        let hist = self
            .charger_hist
            .iter()
            .flatten()
            .map(|&(_, v)| v.min(bound));
        let (lo, hi) = hist.fold((i32::MAX, i32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        // Two reads that agree; or one, when the car has had nothing but 0 for long
        // enough to have stopped (at boot: the first read-back will do).
        let resting = sent == 0
            && c == 0
            && self
                .prev_sent
                .is_none_or(|(_, at)| (now - at) >= HEADROOM_DROP);
        let steady =
            (self.charger_hist[1].is_some() || resting) && hi.saturating_sub(lo) <= STEADY_MA;
        // A rise of the meter while the car is below its limit may be the car (its
        // read-back lags by seconds) or the house: until the read-back tells, count it
        // as the car's as far as the car may draw (cuts still act on the measured
        // current, never later than stepped mode).
        let new_reading = self.unseen_reading;
        // (A shared budget's chargers can be climbing only after what was sent on the
        // phase rose: cars that have drawn less than allowed for longer are not.)
        let window = HEADROOM_FOLLOW + crate::abb::POLL * 2;
        let may_climb = !self.shared
            || self.raised_at.is_some_and(|at| (now - at) < window)
            || self
                .prev_sent
                .is_some_and(|(v, at)| v < self.sent_ma && (now - at) < window);
        let rise_from = match (self.transit, self.prev_i) {
            (None, Some(p)) if new_reading && may_climb => Some(p),
            _ => None,
        };
        if let Some(p) = rise_from.filter(|&p| {
            c < sent.saturating_sub(STEADY_MA) && i.saturating_sub(p) >= HEADROOM_EDGE_MA
        }) {
            self.transit = Some(Transit {
                since: now,
                house: p.saturating_sub(c),
                i_before: p,
                phases_before: self.prev_phases,
                phases_peak: self.phases_now,
                draw_before: c,
                raised: false,
                limit_before: self.limit_ma,
                expires: transit_end(now, c, bound),
            });
        }
        if new_reading {
            self.prev_i = Some(i);
            self.prev_phases = self.phases_now;
        }
        let alarm = to_i32(cfg.alarm_ma());
        let draw = match self.transit {
            // The car's answer is not in the read-back yet: the meter's change since
            // is the car's, between what it read and what it may draw — unless the grid
            // is above the alarm limit: more than the room the raise gave the car, so a
            // load came on too, and the read-back's lower draw is the safe side.
            Some(tr) if i <= alarm => {
                // No car answers a new limit sooner, nor climbs faster, than this.
                let reading_at = self.reading.map_or(now, |(t, _)| t);
                let moving = (reading_at - tr.since) - HEADROOM_MIN_DELAY;
                let climbed = moving.accrued_at(HEADROOM_MAX_RAMP_MA_PER_S);
                // (After a rise seen while the car was allowed more, it may have been
                // on its way for a while already: only what it may draw bounds it.)
                let reach = if tr.raised {
                    tr.draw_before
                        .saturating_add(i32::try_from(climbed).unwrap_or(i32::MAX))
                } else {
                    bound
                };
                i.saturating_sub(tr.house).min(bound).min(reach).max(c)
            }
            // Otherwise the charger's read nearest to when the meter measured (a read
            // arrives up to a second after the charger measured): with telegrams lost
            // the meter's reading is older than the last read, and the car may have
            // moved since; reads much older than the reading would count against a
            // load that came on since a draw the car has left.
            _ => {
                let at = self.reading.map_or(now, |(t, _)| t) + Duration::from_millis(500);
                self.charger_hist
                    .iter()
                    .flatten()
                    .min_by_key(|&&(t, _)| t.abs_diff(at))
                    .map_or(c, |&(_, v)| v.min(bound).max(0))
            }
        };
        let house = i.saturating_sub(draw);
        // The charger reads kept go back to when the meter's reading was taken (no
        // telegram lost since): with the car steady, `house` is what the house drew then.
        let reading_at = self.reading.map_or(Instant::ZERO, |(t, _)| t);
        let paired = self
            .charger_hist
            .iter()
            .flatten()
            .any(|&(t, _)| t <= reading_at);
        // The car is at or below its limit (a read-back above it is a car still coming
        // down after a cut, or one that ignores its limit: no ground for the house).
        let following = c <= sent.saturating_add(STEADY_MA);
        if fresh && steady && paired && following && self.transit.is_none() {
            self.hold.record(now, house);
            self.gaps.record(reading_at, house);
        } else if fresh {
            // While the car moves (climbing to a raise, coming down after a cut), the
            // house is at most the grid less the lower of what the read-back showed and
            // the value sent: the hold keeps that, so that a pulsing load's peaks stay
            // in it while the car moves through them.
            self.hold.record(now, i.saturating_sub(c.min(sent)));
        }
        if self.shared && fresh {
            // A shared budget never stands above the room the house leaves (less what
            // it drew lately): a charger admitted later, or a car that takes more, gets
            // no allowance the phase does not have. What was sent is the cut rules' to
            // lower.
            let held = self.hold.max(now).unwrap_or(house).max(house);
            let room = u32::try_from(target.saturating_sub(held)).unwrap_or(0);
            self.limit_ma = self.limit_ma.min(room.max(self.sent_ma));
        }
        let projected = house.saturating_add(sent);
        // Trust that the car comes down to the value sent only while it has had no
        // time to: a car that ignores its limit is judged by the meter alone.
        let recently_changed = self.changed.is_some_and(|t| (now - t) < HEADROOM_DROP);
        let worst = if following || recently_changed {
            projected
        } else {
            i.max(projected)
        };
        let over = u32::try_from(worst.saturating_sub(target)).unwrap_or(0);
        // A reading older than every charger read kept (telegrams lost since) cannot be
        // paired with what the car drew when it was taken: while the car follows what
        // it was sent, it is no ground for another cut (it would count against the car
        // a draw it has since left); the next telegram is.
        let unpaired = following && !paired;
        let upper = to_i32(cfg.upper_ma());
        // A shared budget just after one of its chargers was given more: the read-backs
        // (each charger read in turn, every 2 s) may not show its car's climb yet, while
        // the meter does; the house then looks larger than it is by what the car already
        // took. Only a measured current above the upper limit cuts then, not the
        // projection (which counts the climb twice).
        let raise_unseen = self.shared
            && self
                .transfer_at
                .is_some_and(|at| (now - at) < HEADROOM_FOLLOW + crate::abb::POLL)
            && c < sent.saturating_sub(SETTLED_MA);
        if raise_unseen && i <= upper {
            return;
        }
        if worst > alarm {
            let due = match self.state {
                State::Alarm => entered || self.waited(now, cfg.alarm_wait_s()),
                _ => true,
            };
            if due && !unpaired {
                self.cut(over, now);
            }
            return;
        }
        if worst > upper {
            let due = if i > upper {
                matches!(self.state, State::Upper | State::Alarm)
                    && self.waited(now, cfg.upper_wait_s().min(HEADROOM_UPPER_WAIT_S))
            } else {
                true // only the projection: withdraw the unused allowance now
            };
            if due && !unpaired {
                self.cut(over, now);
            }
            return;
        }
        // A raise is sized on a telegram that arrived since the previous tick — or, when
        // the first usable read-back just came, on the last one if it is that new.
        let reading_new = self.reading.is_some_and(|(t, _)| (now - t) < TICK);
        let current = self.unseen_reading || (self.first_readback && reading_new);
        if !fresh || !current || !matches!(self.state, State::Lower | State::Normal) {
            return;
        }
        let settled = self.changed.is_none_or(|t| (now - t) >= HEADROOM_SETTLE);
        if !settled
            || !steady
            || !following
            || self.transit.is_some()
            || !self.waited(now, cfg.lower_wait_s())
        {
            return;
        }
        let held = match self.gaps.long_gap_since() {
            // A long gap: the load of the readings since it opened (each is recorded at
            // the first tick after it arrived).
            Some(since) => self.hold.max_since(now, since.secs() + 1),
            None => self.hold.max(now),
        };
        let house_peak = held.unwrap_or(house).max(house);
        let want = u32::try_from(target.saturating_sub(house_peak)).unwrap_or(0);
        let new = want.min(self.cap());
        // Raise only by a useful amount (a step of 1020 or more, or to the cap).
        if new > self.limit_ma
            && (new
                >= self
                    .limit_ma
                    .saturating_add(cfg.lower_step_ma().min(HEADROOM_MIN_RAISE_MA))
                || new == self.cap())
        {
            self.transit = Some(Transit {
                since: now,
                house,
                i_before: i,
                phases_before: self.phases_now,
                phases_peak: self.phases_now,
                draw_before: c,
                raised: true,
                limit_before: self.limit_ma,
                expires: transit_end(now, c, to_i32(new)),
            });
            self.limit_ma = new;
            self.changed = Some(now);
            self.timer = now;
        }
    }

    /// Headroom mode without a usable read-back (none, stale, or distrusted after an
    /// implausible one): the meter alone. Cuts are sized by the measured overshoot at
    /// the same moments as with a read-back (never later than stepped mode); raises
    /// follow stepped mode's rule for state 1 (1020 every 1019 s on fresh data), since
    /// nothing tells how much of the grid current is the car's.
    fn meter_alone(&mut self, now: Instant, fresh: bool, i: i32, entered: bool, target: i32) {
        let cfg = self.cfg;
        self.transit = None;
        self.prev_i = Some(i);
        let over = u32::try_from(i.saturating_sub(target)).unwrap_or(0);
        match self.state {
            State::Alarm if entered || self.waited(now, cfg.alarm_wait_s()) => {
                self.cut(over, now);
            }
            State::Upper if self.waited(now, cfg.upper_wait_s().min(HEADROOM_UPPER_WAIT_S)) => {
                self.cut(over, now);
            }
            State::Lower
                if fresh && self.unseen_reading && self.waited(now, cfg.lower_wait_s()) =>
            {
                self.limit_ma = self
                    .limit_ma
                    .saturating_add(cfg.lower_step_ma())
                    .min(self.cap());
                self.changed = Some(now);
                self.timer = now;
            }
            _ => {}
        }
    }

    fn cut(&mut self, by: u32, now: Instant) {
        if by > 0 && self.limit_ma > 0 {
            self.lower_by(by, now);
            self.changed = Some(now);
        } else {
            self.timer = now;
        }
    }
}

/// When a transit that began at `since` with the car at `from` mA, allowed `to` mA,
/// ends at the latest: the car's answer ([`HEADROOM_FOLLOW`]), the climb at
/// [`HEADROOM_SLOWEST_RAMP_MA_PER_S`], and two polls of the charger.
fn transit_end(since: Instant, from: i32, to: i32) -> Instant {
    let climb = u64::from(to.saturating_sub(from).max(0).unsigned_abs());
    since
        + HEADROOM_FOLLOW
        + Duration::to_accrue(climb, HEADROOM_SLOWEST_RAMP_MA_PER_S)
        + crate::abb::POLL * 2
}

/// The car may be on its way up to its limit (after a raise, or a rise of the meter
/// while it draws less than allowed), and the charger's read-back cannot show it yet.
#[derive(Debug, Clone, Copy)]
struct Transit {
    /// When it began.
    since: Instant,
    /// The house load then (grid less the car's draw).
    house: i32,
    /// The meter's highest phase current then.
    i_before: i32,
    /// The meter's currents per phase then.
    phases_before: [Option<i32>; 3],
    /// The highest of the meter's currents per phase since.
    phases_peak: [Option<i32>; 3],
    /// The car's draw as read back then.
    draw_before: i32,
    /// It began with a raise: the read-back showing the car at its new limit is
    /// checked against the meter's rise.
    raised: bool,
    /// The limit before the raise (restored if the raise's answer is implausible).
    limit_before: u32,
    /// It ends by then whatever the read-back shows.
    expires: Instant,
}

/// The highest value per second over the last [`HEADROOM_HOLD_S`] seconds.
#[derive(Debug, Clone)]
struct PeakHold {
    slots: [i32; HEADROOM_HOLD_S],
    /// The second the newest slot belongs to.
    second: Option<u64>,
}

impl PeakHold {
    const EMPTY: i32 = i32::MIN;

    fn new() -> Self {
        PeakHold {
            slots: [Self::EMPTY; HEADROOM_HOLD_S],
            second: None,
        }
    }

    fn advance(&mut self, now: Instant) -> usize {
        let sec = now.secs();
        let n = HEADROOM_HOLD_S as u64;
        match self.second {
            Some(last) if sec <= last => {}
            Some(last) => {
                // Clear the seconds skipped (at most the whole window).
                for s in (last + 1)..=sec.min(last + n) {
                    self.slots[(s % n) as usize] = Self::EMPTY;
                }
                self.second = Some(sec);
            }
            None => self.second = Some(sec),
        }
        (self.second.unwrap_or(sec) % n) as usize
    }

    fn record(&mut self, now: Instant, v: i32) {
        let k = self.advance(now);
        self.slots[k] = self.slots[k].max(v);
    }

    fn max(&mut self, now: Instant) -> Option<i32> {
        self.advance(now);
        self.slots
            .iter()
            .copied()
            .filter(|&v| v != Self::EMPTY)
            .max()
    }
}

impl PeakHold {
    /// The highest value of the seconds from `since_s` on (within the window).
    fn max_since(&mut self, now: Instant, since_s: u64) -> Option<i32> {
        self.advance(now);
        let newest = self.second?;
        let n = HEADROOM_HOLD_S as u64;
        (newest.saturating_sub(n - 1).max(since_s)..=newest)
            .map(|s| self.slots[(s % n) as usize])
            .filter(|&v| v != Self::EMPTY)
            .max()
    }
}

/// Edges of the house load (rises and drops of at least [`HEADROOM_EDGE_MA`] between
/// readings) and how long the last load was on and the last gap lasted.
#[derive(Debug, Clone)]
struct GapTracker {
    /// The last reading recorded: when, and the house load.
    last: Option<(Instant, i32)>,
    /// The last rise.
    rise: Option<Instant>,
    /// The open gap: when it began, and whether it may be ridden at once.
    gap: Option<(Instant, bool)>,
    /// How long the last closed gap lasted.
    last_gap: Option<Duration>,
}

impl GapTracker {
    fn new() -> Self {
        GapTracker {
            last: None,
            rise: None,
            gap: None,
            last_gap: None,
        }
    }

    /// A reading taken at `t` (each reading once; a repeat is ignored).
    fn record(&mut self, t: Instant, house: i32) {
        if let Some((prev_t, prev)) = self.last {
            if t <= prev_t {
                return;
            }
            if house.saturating_sub(prev) >= HEADROOM_EDGE_MA {
                if let Some((start, _)) = self.gap.take() {
                    self.last_gap = Some(t - start);
                }
                self.rise = Some(t);
            } else if prev.saturating_sub(house) >= HEADROOM_EDGE_MA {
                // The load that dropped had been on since the last rise (or for as long
                // as we know of when none was seen).
                let on_long = self.rise.is_some_and(|r| t - r >= HEADROOM_LONG);
                let gaps_long = self.last_gap.is_none_or(|g| g >= HEADROOM_LONG);
                let long = on_long && gaps_long;
                // A second drop inside an open gap keeps its start.
                let start = self.gap.map_or(t, |(s, _)| s);
                self.gap = Some((start, long));
            }
        }
        self.last = Some((t, house));
    }

    /// When the open gap began, if it may be ridden at once.
    fn long_gap_since(&self) -> Option<Instant> {
        match self.gap {
            Some((start, true)) => Some(start),
            _ => None,
        }
    }
}

/// The phases of a connection of `phases` (1: L1 only; else all three).
pub(crate) fn phase_mask(phases: u8) -> [bool; 3] {
    [true, phases != 1, phases != 1]
}

pub(crate) fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}
