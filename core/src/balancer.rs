//! The control law: how much current the charger may draw, second by second.
//!
//! A sans-IO state machine (the shape of quinn-proto's `Connection`): it owns no
//! clock, port or pin. The driver feeds it valid meter readings
//! ([`Balancer::on_reading`]), the charger's own phase currents where known
//! ([`Balancer::on_charger_currents`]), the override cap (register 1000,
//! [`Balancer::set_cap`]) and the time, and calls [`Balancer::tick`] at
//! [`Balancer::next_tick_ms`]; the tick returns the [`Decision`] to send.
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
//! at once into the gap of a load that was on, and last off, for [`HEADROOM_LONG_MS`]
//! or more (an oven's thermostat, a kettle switching off), never into the seconds-long
//! gaps of a pulsing load (an induction hob), which it cannot see coming to an end.
//!
//! Never panics; all arithmetic saturates.

use crate::config::{Config, ControlMode};

/// The control tick.
pub const TICK_MS: u64 = 1000;

/// A wait of N s (1013, 1016, 1019) is over at N s less this: the ticks follow the
/// telegrams, which come about a second apart, give or take a few ms. Without it a
/// 1 s wait would take two telegrams whenever they come 999 ms apart, and an alarm
/// would be cut half as fast.
pub const WAIT_TOLERANCE_MS: u64 = 200;

/// After a tick on a telegram, the timer waits this much longer than [`TICK_MS`], so
/// that the next telegram (a meter sends one a second, give or take) drives the next
/// tick rather than racing the timer to it.
pub const TELEGRAM_GRACE_MS: u64 = 250;

/// A reading older than this may lower the limit but never raise it.
pub const FRESH_MS: u64 = 3000;

/// Headroom mode aims this far below the upper limit, so that meter resolution and
/// small load changes do not push it into state 2.
pub const HEADROOM_MARGIN_MA: u32 = 300;

/// Headroom mode lets the car settle this long after a change of the limit before it
/// raises again (a car takes a second to react and a few to ramp; raising on a reading
/// taken before it followed would overshoot).
pub const HEADROOM_SETTLE_MS: u64 = 2000;

/// Headroom mode raises only into room that has been free for this long: it sizes a
/// raise from the highest house load of the last `HEADROOM_HOLD_S` seconds, so that a
/// cycling load (a hob pulsing, an oven's thermostat) does not pull the car up into its
/// gaps and then into an alarm.
pub const HEADROOM_HOLD_S: usize = 6;

/// The charger's reading of the car's current counts as steady (not ramping) when two
/// reads differ by no more than this.
pub const STEADY_MA: i32 = 700;

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
pub const HEADROOM_LONG_MS: u64 = 20_000;

/// Charger reads kept: the meter's reading (up to 3 s old and still fresh) was taken
/// while one of these was current.
const CHARGER_HISTORY: usize = 3;

/// Balancer state, as in register 1002.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// 0: between lower and upper limit (or at the charger maximum); the limit holds.
    Normal = 0,
    /// 1: at or below the lower limit and the limit can still rise.
    Lower = 1,
    /// 2: above the upper limit.
    Upper = 2,
    /// 3: above the alarm limit.
    Alarm = 3,
    /// 4: no valid meter data for the fallback time.
    Fallback = 4,
}

impl State {
    /// The register 1002 value.
    pub fn code(self) -> u16 {
        self as u16
    }
}

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

/// The balancer. See the module documentation.
#[derive(Debug, Clone)]
pub struct Balancer {
    cfg: Config,
    cap_ma: u32,
    limit_ma: u32,
    sent_ma: u32,
    state: State,
    /// When the wait timer of the current state started.
    timer_ms: u64,
    /// The last valid reading: when, and the highest phase current.
    reading: Option<(u64, i32)>,
    /// When the last valid reading arrived, or boot.
    last_valid_ms: u64,
    /// The charger's own highest phase current and when it was read.
    charger: Option<(u64, i32)>,
    /// The charger's last reads, newest first (is the car still ramping? what did it
    /// draw when the meter measured?).
    charger_hist: [Option<(u64, i32)>; CHARGER_HISTORY],
    /// When the limit last changed (headroom settling).
    changed_ms: Option<u64>,
    /// Highest house load (grid minus car) per second, the last `HEADROOM_HOLD_S` s.
    hold: PeakHold,
    /// Load edges, for riding long gaps at once.
    gaps: GapTracker,
    /// A valid reading arrived since the previous tick (headroom raises only on one).
    unseen_reading: bool,
    /// The cap changed since the previous tick (the next call ticks, even early).
    cap_changed: bool,
    next_tick_ms: u64,
}

impl Balancer {
    /// A balancer at boot (`now_ms`): limit 0, stepping up as in state 1 once readings
    /// arrive. The override cap starts at the charger maximum.
    pub fn new(cfg: Config, now_ms: u64) -> Self {
        Balancer {
            cap_ma: cfg.charger_max_ma(),
            cfg,
            limit_ma: 0,
            sent_ma: 0,
            state: State::Lower,
            timer_ms: now_ms,
            reading: None,
            last_valid_ms: now_ms,
            charger: None,
            charger_hist: [None; CHARGER_HISTORY],
            changed_ms: None,
            hold: PeakHold::new(),
            gaps: GapTracker::new(),
            unseen_reading: false,
            cap_changed: false,
            next_tick_ms: now_ms,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
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

    /// Register 1000 as it reads.
    pub fn cap_ma(&self) -> u32 {
        self.cap_ma
    }

    /// A valid telegram's signed grid currents (mA, import positive), per phase.
    /// Phases the meter does not report are `None`; a reading with no current on any
    /// configured phase is not a valid reading for the balancer.
    ///
    /// A valid reading makes the tick due at once: the control tick follows the
    /// telegrams (the decision is sent milliseconds after the meter's data, not up to a
    /// second later), and runs every [`TICK_MS`] from the last one when they stop.
    pub fn on_reading(&mut self, now_ms: u64, grid_ma: [Option<i32>; 3]) -> bool {
        let phases = usize::from(self.cfg.phases());
        let highest = grid_ma[..phases].iter().flatten().copied().max();
        match highest {
            Some(i) => {
                self.reading = Some((now_ms, i));
                self.last_valid_ms = now_ms;
                self.unseen_reading = true;
                self.next_tick_ms = self.next_tick_ms.min(now_ms);
                true
            }
            None => false,
        }
    }

    /// The charger's own phase currents (mA) as it reports them (0x4010–0x4015, any
    /// value), read back from it: headroom mode uses them to see what the car draws.
    pub fn on_charger_currents(&mut self, now_ms: u64, ma: [Option<u32>; 3]) {
        self.charger = ma
            .iter()
            .flatten()
            .map(|&v| to_i32(v))
            .max()
            .map(|i| (now_ms, i));
        self.charger_hist.rotate_right(1);
        self.charger_hist[0] = self.charger.map(|(t, c)| (t, c.max(0)));
    }

    /// When [`tick`](Self::tick) must be called next.
    pub fn next_tick_ms(&self) -> u64 {
        self.next_tick_ms
    }

    /// Seconds since the last valid reading (register 1004), saturating.
    pub fn seconds_since_reading(&self, now_ms: u64) -> u16 {
        match self.reading {
            Some(_) => {
                u16::try_from(now_ms.saturating_sub(self.last_valid_ms) / 1000).unwrap_or(u16::MAX)
            }
            None => u16::MAX,
        }
    }

    /// True when the last valid reading is older than [`FRESH_MS`] (register 1003
    /// bit 0).
    pub fn is_stale(&self, now_ms: u64) -> bool {
        !matches!(self.reading, Some((t, _)) if now_ms.saturating_sub(t) < FRESH_MS)
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

    /// One control tick. Call at [`next_tick_ms`](Self::next_tick_ms); an early call
    /// changes nothing, unless the cap (1000) changed since the last tick.
    pub fn tick(&mut self, now_ms: u64) -> Decision {
        let due = now_ms >= self.next_tick_ms;
        if !due && !self.cap_changed {
            return self.decision();
        }
        // The next tick one period on (after a long gap, from now); after a tick on a
        // telegram, the next telegram's (with a grace period for its jitter); an early
        // tick for a new cap leaves the schedule as it is. Never after the moment
        // fallback is due.
        if self.unseen_reading {
            self.next_tick_ms = now_ms + TICK_MS + TELEGRAM_GRACE_MS;
        } else if due {
            self.next_tick_ms = (self.next_tick_ms + TICK_MS).max(now_ms + 1);
        }
        self.cap_changed = false;
        let fallback_at = self
            .last_valid_ms
            .saturating_add(u64::from(self.cfg.fallback_s()) * 1000);
        if fallback_at > now_ms {
            self.next_tick_ms = self.next_tick_ms.min(fallback_at);
        }
        let before = self.sent_ma;
        self.step(now_ms);
        self.unseen_reading = false;
        self.limit_ma = self.limit_ma.min(self.cap());
        self.sent_ma = if self.limit_ma < self.cfg.charger_min_ma() {
            0
        } else {
            self.limit_ma
        };
        Decision {
            changed: self.sent_ma != before,
            ..self.decision()
        }
    }

    fn cap(&self) -> u32 {
        self.cap_ma.min(self.cfg.charger_max_ma())
    }

    fn enter(&mut self, state: State, now_ms: u64) -> bool {
        if state != self.state {
            self.state = state;
            self.timer_ms = now_ms;
            true
        } else {
            false
        }
    }

    fn waited(&self, now_ms: u64, wait_s: u32) -> bool {
        now_ms.saturating_sub(self.timer_ms) + WAIT_TOLERANCE_MS >= u64::from(wait_s) * 1000
    }

    fn step(&mut self, now_ms: u64) {
        let cfg = self.cfg;
        let fallback_ms = u64::from(cfg.fallback_s()) * 1000;
        if now_ms.saturating_sub(self.last_valid_ms) >= fallback_ms {
            if self.enter(State::Fallback, now_ms) || self.limit_ma != cfg.fallback_ma() {
                self.limit_ma = cfg.fallback_ma();
            }
            return;
        }
        let Some((_, i)) = self.reading else {
            // Boot, no reading yet: state 1 at 0, nothing to raise on.
            self.enter(State::Lower, now_ms);
            return;
        };
        let fresh = !self.is_stale(now_ms);
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
        let entered = self.enter(state, now_ms);
        match cfg.mode() {
            ControlMode::Stepped => self.stepped(now_ms, fresh),
            ControlMode::Headroom => self.headroom(now_ms, fresh, i, entered),
        }
    }

    fn stepped(&mut self, now_ms: u64, fresh: bool) {
        let cfg = self.cfg;
        match self.state {
            State::Alarm if self.waited(now_ms, cfg.alarm_wait_s()) => {
                self.lower_by(cfg.alarm_step_ma(), now_ms);
            }
            State::Upper if self.waited(now_ms, cfg.upper_wait_s()) => {
                self.lower_by(cfg.upper_step_ma(), now_ms);
            }
            State::Lower if fresh && self.waited(now_ms, cfg.lower_wait_s()) => {
                self.limit_ma = self
                    .limit_ma
                    .saturating_add(cfg.lower_step_ma())
                    .min(self.cap());
                self.timer_ms = now_ms;
            }
            _ => {}
        }
    }

    fn lower_by(&mut self, step: u32, now_ms: u64) {
        self.limit_ma = self.limit_ma.saturating_sub(step);
        self.timer_ms = now_ms;
    }

    /// Headroom mode: the same states, steps sized from the measurement.
    ///
    /// - Where the grid is heading: the house load is the grid current less what the
    ///   car draws (the charger's own reading where fresh, else the value sent); once
    ///   the car has followed the value sent, the grid will carry house + sent. The
    ///   worse of that and the measured current is what the steps act on.
    /// - Lowering, to bring it to the target (upper limit − margin): above the alarm
    ///   limit at once and then every 1013 s; above the upper limit after 1016 s of
    ///   state 2 as in stepped mode, or at once when only the projection (a car still
    ///   ramping up to its limit) is above it. Never later than stepped mode.
    /// - Raising (fresh data, the car steady, the last change settled, 1019 s of the
    ///   state): in one step to the target less the highest house load of the last
    ///   [`HEADROOM_HOLD_S`] seconds, or, in a gap that opened after a load had been on
    ///   for [`HEADROOM_LONG_MS`] and that load's last gap was as long, of the seconds
    ///   since the gap opened. Only on a telegram that arrived since the previous tick
    ///   (a raise is one large step, and an older reading may predate the load that is
    ///   on now: a telegram lost at the end of a cycling load's gap; older fresh
    ///   readings may still lower the limit), by at least [`HEADROOM_MIN_RAISE_MA`].
    /// - The house load is recorded (for the hold and the gaps) only while the car is
    ///   steady and the charger reads kept reach back to when the meter measured; a
    ///   reading older than those (telegrams lost) is no ground for another cut while
    ///   the car follows its limit.
    fn headroom(&mut self, now_ms: u64, fresh: bool, i: i32, entered: bool) {
        let cfg = self.cfg;
        let target = to_i32(cfg.upper_ma().saturating_sub(HEADROOM_MARGIN_MA));
        let sent = to_i32(self.sent_ma);
        let charger = match self.charger {
            Some((t, c)) if now_ms.saturating_sub(t) < FRESH_MS => Some(c.max(0)),
            _ => None,
        };
        let draw = charger.unwrap_or(sent);
        let house = i.saturating_sub(draw);
        // The meter and the charger are read at different moments; the meter's reading
        // was taken while one of the last charger reads was current. The car is steady
        // when they agree; while it ramps, take the highest (the lower house load)
        // rather than cut on a draw it has already left.
        let hist = self.charger_hist.iter().flatten().map(|&(_, c)| c);
        let (lo, hi) = hist.fold((i32::MAX, i32::MIN), |(lo, hi), c| (lo.min(c), hi.max(c)));
        let steady = match charger {
            Some(_) => self.charger_hist.iter().all(Option::is_some) && hi - lo <= STEADY_MA,
            None => true,
        };
        // The charger reads kept go back to when the meter's reading was taken (no
        // telegram lost since): with the car steady, `house` is what the house drew then.
        let reading_ms = self.reading.map_or(0, |(t, _)| t);
        let paired = self
            .charger_hist
            .iter()
            .flatten()
            .any(|&(t, _)| t <= reading_ms);
        if fresh && steady && (charger.is_none() || paired) {
            self.hold.record(now_ms, house);
            if let Some((t, _)) = self.reading {
                self.gaps.record(t, house);
            }
        }
        let ramp_draw = if charger.is_some() {
            hi.max(draw)
        } else {
            draw
        };
        let projected = if charger.is_some() {
            i.saturating_sub(ramp_draw).saturating_add(sent)
        } else {
            i
        };
        // Trust that the car comes down to the value sent only while it has had no
        // time to: a car that ignores its limit is judged by the meter alone.
        let recently_changed = self
            .changed_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < HEADROOM_SETTLE_MS);
        let following = charger.is_some_and(|c| c <= sent.saturating_add(STEADY_MA));
        let worst = if charger.is_some() && (following || recently_changed) {
            projected
        } else {
            i.max(projected)
        };
        let over = u32::try_from(worst.saturating_sub(target)).unwrap_or(0);
        // A reading older than every charger read kept (telegrams lost since) cannot be
        // paired with what the car drew when it was taken: while the car follows what
        // it was sent, it is no ground for another cut (it would count against the car
        // a draw it has since left); the next telegram is.
        let reading_ms = self.reading.map_or(0, |(t, _)| t);
        let unpaired = charger.is_some()
            && following
            && !self
                .charger_hist
                .iter()
                .flatten()
                .any(|&(t, _)| t <= reading_ms);
        let alarm = to_i32(cfg.alarm_ma());
        let upper = to_i32(cfg.upper_ma());
        if worst > alarm {
            let due = match self.state {
                State::Alarm => entered || self.waited(now_ms, cfg.alarm_wait_s()),
                _ => true,
            };
            if due && !unpaired {
                self.cut(over, now_ms);
            }
            return;
        }
        if worst > upper {
            let due = if i > upper {
                self.state == State::Upper
                    && self.waited(now_ms, cfg.upper_wait_s().min(HEADROOM_UPPER_WAIT_S))
            } else {
                true // only the projection: withdraw the unused allowance now
            };
            if due && !unpaired {
                self.cut(over, now_ms);
            }
            return;
        }
        let current = self.unseen_reading;
        if !fresh || !current || !matches!(self.state, State::Lower | State::Normal) {
            return;
        }
        let settled = self
            .changed_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= HEADROOM_SETTLE_MS);
        if !settled || !steady || !self.waited(now_ms, cfg.lower_wait_s()) {
            return;
        }
        let held = match self.gaps.long_gap_since() {
            // A long gap: the load of the readings since it opened (each is recorded at
            // the first tick after it arrived).
            Some(since_ms) => self.hold.max_since(now_ms, since_ms / 1000 + 1),
            None => self.hold.max(now_ms),
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
            self.limit_ma = new;
            self.changed_ms = Some(now_ms);
            self.timer_ms = now_ms;
        }
    }

    fn cut(&mut self, by: u32, now_ms: u64) {
        if by > 0 && self.limit_ma > 0 {
            self.lower_by(by, now_ms);
            self.changed_ms = Some(now_ms);
        } else {
            self.timer_ms = now_ms;
        }
    }
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

    fn advance(&mut self, now_ms: u64) -> usize {
        let sec = now_ms / 1000;
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

    fn record(&mut self, now_ms: u64, v: i32) {
        let k = self.advance(now_ms);
        self.slots[k] = self.slots[k].max(v);
    }

    fn max(&mut self, now_ms: u64) -> Option<i32> {
        self.advance(now_ms);
        self.slots
            .iter()
            .copied()
            .filter(|&v| v != Self::EMPTY)
            .max()
    }
}

impl PeakHold {
    /// The highest value of the seconds from `since_s` on (within the window).
    fn max_since(&mut self, now_ms: u64, since_s: u64) -> Option<i32> {
        self.advance(now_ms);
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
    last: Option<(u64, i32)>,
    /// The last rise.
    rise_ms: Option<u64>,
    /// The open gap: when it began, and whether it may be ridden at once.
    gap: Option<(u64, bool)>,
    /// How long the last closed gap lasted.
    last_gap_ms: Option<u64>,
}

impl GapTracker {
    fn new() -> Self {
        GapTracker {
            last: None,
            rise_ms: None,
            gap: None,
            last_gap_ms: None,
        }
    }

    /// A reading taken at `t_ms` (each reading once; a repeat is ignored).
    fn record(&mut self, t_ms: u64, house: i32) {
        if let Some((prev_t, prev)) = self.last {
            if t_ms <= prev_t {
                return;
            }
            if house.saturating_sub(prev) >= HEADROOM_EDGE_MA {
                if let Some((start, _)) = self.gap.take() {
                    self.last_gap_ms = Some(t_ms.saturating_sub(start));
                }
                self.rise_ms = Some(t_ms);
            } else if prev.saturating_sub(house) >= HEADROOM_EDGE_MA {
                // The load that dropped had been on since the last rise (or for as long
                // as we know of when none was seen).
                let on_long = self
                    .rise_ms
                    .is_some_and(|r| t_ms.saturating_sub(r) >= HEADROOM_LONG_MS);
                let gaps_long = self.last_gap_ms.is_none_or(|g| g >= HEADROOM_LONG_MS);
                let long = on_long && gaps_long;
                // A second drop inside an open gap keeps its start.
                let start = self.gap.map_or(t_ms, |(s, _)| s);
                self.gap = Some((start, long));
            }
        }
        self.last = Some((t_ms, house));
    }

    /// When the open gap began, if it may be ridden at once.
    fn long_gap_since(&self) -> Option<u64> {
        match self.gap {
            Some((start, true)) => Some(start),
            _ => None,
        }
    }
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}
