//! The balancer: how much current each charger may draw, second by second.
//!
//! A sans-IO state machine (the shape of quinn-proto's `Connection`): it owns no
//! clock, port or pin. The driver feeds it valid meter readings
//! ([`Balancer::on_reading`]), what the bus learns of each charger
//! ([`Balancer::on_charger`]: its own phase currents, its state, whether it answers),
//! the override cap (register 1000, [`Balancer::set_cap`]) and the time, and calls
//! [`Balancer::tick`] at [`Balancer::next_tick`]; the tick decides the value to send to
//! every charger ([`Balancer::sent_of_ma`]; charger 1's in the [`Decision`]).
//!
//! Two layers:
//! - the **control law** (`law`): registers.md's states and rules over a set of grid
//!   phases, in stepped or headroom mode. Its limit is the current that fits under the
//!   upper/alarm limits (and the site maximum 1026) on those phases, given the house
//!   load there (grid current less what our chargers draw on them).
//! - the **allocator** (this module and `share`): which law watches which phases, and
//!   how a law's room is shared.
//!   - One charger: one law over the phases its car uses (its wiring, configured in
//!     1040 or learned from its own per-phase currents; all the connection's until
//!     learned): load on a phase the car does not use does not touch its limit. Stepped
//!     mode stays exactly as registers.md specifies for a three-phase charger; a
//!     single-phase one uses headroom mode.
//!   - Several chargers (1037 > 1): one law per grid phase, in headroom mode, whose
//!     limit is that phase's budget; the chargers share the budgets by water-filling,
//!     each getting 0 or at least the charger minimum (1025) and at most its own
//!     maximum (1041…, capped by 1000). When the budgets do not reach every car's
//!     minimum, the lower priority (1042…) pauses first and equal priorities take
//!     turns (`share`). A silent charger is assumed to draw what it was last sent: that
//!     much of its phases' budgets stays reserved for it.
//!
//! Never panics; all arithmetic saturates.

mod law;
pub mod share;

pub use law::*;
pub use share::{MIN_TURN, TURN_WAIT};

use crate::capacity::{Account, ChargerDraw, QuarterFigures, REACTION_S};
use crate::config::{ChargeMode, Config, ControlMode, MAX_CHARGERS, Wiring};
use crate::p1::Reading;
use crate::solar::{Solar, SolarInput, SolarState};
use crate::time::{Duration, Instant};
use law::{Law, phase_mask};
use share::{Candidate, Turns};

/// What the bus learned of one charger ([`Balancer::on_charger`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChargerReading {
    /// Its currents on its own L1–L3 as it reports them, mA (any value: input).
    pub current_ma: [Option<u32>; 3],
    /// Its charging state code (0x400D high byte, bits 0–6), if read.
    pub state: Option<u8>,
    /// It is not answering (three failed exchanges in a row).
    pub silent: bool,
    /// It answered the last exchange with an exception.
    pub exception: bool,
}

/// One charger as the balancer sees it (registers 1130 + 6(k−1) …).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChargerView {
    /// The value sent to it, mA.
    pub sent_ma: u32,
    /// Its current on grid L1/L2/L3 (its wiring applied), mA.
    pub grid_ma: [u32; 3],
    /// Its charging state code, as reported.
    pub state: Option<u8>,
    /// Paused to share the current with the other chargers.
    pub paused: bool,
    /// Its wiring is configured or learned.
    pub wiring_known: bool,
    /// The grid phases it draws on (its wiring; all of the connection's until learned).
    pub phases: [bool; 3],
    /// A car is connected (its state is 1–5).
    pub connected: bool,
    /// Not answering.
    pub silent: bool,
    /// Answered with an exception.
    pub exception: bool,
}

/// Learning a car's phases: the charger must deliver at least this much on its highest
/// phase (the car is charging), mA.
pub const LEARN_MIN_MA: u32 = 2000;

/// A phase counts as used when it carries at least this share of the highest phase's
/// current, percent (and at least [`LEARN_PHASE_MA`]).
pub const LEARN_SHARE_PCT: u32 = 25;

/// A phase counts as used only when it carries at least this, mA.
pub const LEARN_PHASE_MA: u32 = 1000;

/// The same pattern of used phases in this many read-backs in a row is learned (a car
/// switching phases mid-session is followed the same way).
pub const LEARN_READS: u8 = 2;

/// The allowance's cap on one charger's current (capacity budget, charge mode) changes
/// only by at least this much (or across the charger minimum): the capacity budget is
/// an integral, a little more or less now is made up later; the surplus moves with every
/// cloud and kettle, and the car need not follow every watt of it, mA.
pub const ALLOWANCE_DEADBAND_MA: u32 = 500;

/// After a charger's value changed, its car and its report settle this long; the
/// capacity account and the charge mode keep their estimate of the house meanwhile.
const ALLOWANCE_SETTLE: Duration = Duration::from_secs(REACTION_S as u64);

/// Voltages outside this range (0.1 V) are not trusted for power: 230 V is used.
const MIN_DV: i32 = 1000;
const MAX_DV: i32 = 3000;
const NOMINAL_DV: u32 = 2300;

/// What the balancer keeps per charger.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    reading: ChargerReading,
    /// When its currents were last read.
    read_at: Option<Instant>,
    /// Its own phases (L1–L3) learned from its currents as the ones the car uses.
    learned: Option<[bool; 3]>,
    /// A pattern seen, and how many read-backs in a row showed it.
    seen: Option<([bool; 3], u8)>,
    /// The phases the last car learned used (kept after it left: most chargers see the
    /// same car again), for its minimum power before the next one is learned.
    remembered: Option<[bool; 3]>,
    /// The value sent to it.
    sent_ma: u32,
    /// Paused to share the current.
    paused: bool,
    /// Silent: what it was last sent, assumed drawn (kept until it answers again).
    reserve: Option<u32>,
}

/// The balancer. See the module documentation.
#[derive(Debug, Clone)]
pub struct Balancer {
    cfg: Config,
    cap_ma: u32,
    /// One charger: `laws[0]` over its phases. Several: `laws[p]` for grid phase `p`.
    laws: [Law; 3],
    /// Several chargers share per-phase budgets.
    shared: bool,
    slots: [Slot; MAX_CHARGERS],
    turns: Turns,
    decision: Decision,
    /// The cap changed since the last tick: the next call ticks, even early.
    cap_changed: bool,
    /// The latest time it was given.
    now: Instant,
    /// The capacity tariff's quarter-hour account (on the meter's clock).
    account: Account,
    /// What the capacity budget allows the chargers now, W (`None`: capacity off).
    capacity_w: Option<u32>,
    /// The charge mode (1080): its state and the surplus.
    solar: Solar,
    /// What the capacity budget and the charge mode allow the chargers together, W
    /// (`None`: no bound).
    allowance_w: Option<u32>,
    /// One charger: the allowance as a cap on its current, mA (`u32::MAX`: none).
    allowance_cap_ma: u32,
    /// The latest voltages, 0.1 V (230 V until the meter says).
    volts_dv: [u32; 3],
    /// When a charger's value last changed (`None`: never).
    changed_at: Option<Instant>,
}

impl Balancer {
    /// A balancer at boot (`now`): every limit 0, stepping up as in state 1 once
    /// readings arrive. The override cap starts at the charger maximum.
    pub fn new(cfg: Config, now: Instant) -> Self {
        let shared = cfg.chargers() > 1;
        let mut b = Balancer {
            cfg,
            cap_ma: cfg.charger_max_ma(),
            laws: [Law::new(cfg, now), Law::new(cfg, now), Law::new(cfg, now)],
            shared,
            slots: [Slot::default(); MAX_CHARGERS],
            turns: Turns::new(now),
            decision: Decision {
                limit_ma: 0,
                sent_ma: 0,
                state: State::Lower,
                changed: false,
            },
            cap_changed: false,
            now,
            account: Account::new(),
            capacity_w: None,
            solar: Solar::new(),
            allowance_w: None,
            allowance_cap_ma: u32::MAX,
            volts_dv: [NOMINAL_DV; 3],
            changed_at: None,
        };
        b.build_laws(now);
        b
    }

    /// The laws for the configuration: fresh ones (limits 0) when the sharing changes.
    fn build_laws(&mut self, now: Instant) {
        if self.shared {
            let capacity = self.capacity_ma();
            for (p, law) in self.laws.iter_mut().enumerate() {
                let mut mask = [false; 3];
                mask[p] = true;
                *law = Law::new(shared_law_config(&self.cfg, capacity), now).share();
                law.set_mask(mask);
            }
        } else {
            let mask = self.phases_of(0);
            let mut law = Law::new(single_law_config(&self.cfg, mask), now);
            law.set_mask(mask);
            law.set_cap(self.cap_ma.min(self.allowance_cap_ma));
            self.laws[0] = law;
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Applies a new (validated) configuration from the next tick on. The limits are
    /// kept (clamped to the new maxima), unless the number of chargers went from one to
    /// several or back: then the laws start again from 0, as at boot.
    pub fn apply_config(&mut self, cfg: Config) {
        let old_max = self.cfg.charger_max_ma();
        let was_shared = self.shared;
        self.cfg = cfg;
        // An override equal to the old maximum follows the new one.
        if self.cap_ma == old_max {
            self.cap_ma = cfg.charger_max_ma();
        }
        self.shared = cfg.chargers() > 1;
        // The chargers' shares follow at the next call of `tick`, even an early one.
        self.cap_changed = true;
        if self.shared != was_shared {
            self.build_laws(self.now);
        } else {
            self.configure_laws();
            // (A law's cap that equalled its old maximum follows the new one: the
            // capacity cap stays.)
            if !self.shared {
                self.laws[0].set_cap(self.cap_ma.min(self.allowance_cap_ma));
            }
        }
    }

    /// Passes the configuration (and the phases each law watches) to the laws.
    fn configure_laws(&mut self) {
        if self.shared {
            let capacity = self.capacity_ma();
            for law in &mut self.laws {
                law.apply_config(shared_law_config(&self.cfg, capacity));
            }
        } else {
            let mask = self.phases_of(0);
            let law = &mut self.laws[0];
            law.apply_config(single_law_config(&self.cfg, mask));
            law.set_mask(mask);
        }
    }

    /// The most all chargers together may draw on one phase, mA (a shared law's
    /// maximum).
    fn capacity_ma(&self) -> u32 {
        (0..self.cfg.chargers())
            .map(|k| self.cfg.max_of_ma(k))
            .fold(0u32, u32::saturating_add)
    }

    /// Register 1000: an outside cap on every charger's limit, mA. Lowering it below a
    /// present limit drops that limit at the next call of [`tick`](Self::tick), even an
    /// early one; raising it lets the limits step up again.
    pub fn set_cap(&mut self, cap_ma: u32) {
        if cap_ma != self.cap_ma {
            self.cap_ma = cap_ma;
            self.cap_changed = true;
            if !self.shared {
                self.laws[0].set_cap(cap_ma.min(self.allowance_cap_ma));
            }
        }
    }

    /// Register 1000 as it reads.
    pub fn cap_ma(&self) -> u32 {
        self.cap_ma
    }

    /// The laws in use.
    fn active(&self) -> &[Law] {
        if self.shared {
            &self.laws[..usize::from(self.cfg.phases())]
        } else {
            &self.laws[..1]
        }
    }

    fn active_mut(&mut self) -> &mut [Law] {
        if self.shared {
            &mut self.laws[..usize::from(self.cfg.phases())]
        } else {
            &mut self.laws[..1]
        }
    }

    /// A valid telegram: its signed grid currents (per setting 1024) to
    /// [`on_reading`](Self::on_reading), and its clock, energy registers and demand
    /// objects to the capacity tariff's quarter-hour account. Returns what
    /// `on_reading` returns. This is what the products and the simulator call.
    pub fn on_telegram(&mut self, now: Instant, reading: &Reading) -> bool {
        let grid = reading.grid_currents_ma(self.cfg.grid_source());
        let used = self.on_reading(now, grid);
        for (v, p) in self.volts_dv.iter_mut().zip(&reading.phases) {
            *v = match p.voltage_dv {
                Some(dv @ MIN_DV..=MAX_DV) => dv.unsigned_abs(),
                _ => NOMINAL_DV,
            };
        }
        self.account.on_reading(reading);
        self.update_allowance(now, reading.net_power_w());
        used
    }

    /// The allowance for the chargers after a telegram (`net_w`: its net import, W):
    /// the capacity budget's and the charge mode's, the smaller of the two, as power
    /// (all chargers, for the sharing) and, with one charger, as a cap on its current
    /// (changed only by at least [`ALLOWANCE_DEADBAND_MA`], or across the minimum).
    fn update_allowance(&mut self, now: Instant, net_w: Option<i64>) {
        let n = self.cfg.chargers();
        let distrusted = self.readback_distrusted();
        let mut draw_w = 0i64;
        let mut sent_w = 0i64;
        let mut min_w = u32::MAX;
        let mut start_w = u32::MAX;
        let mut floor_w = 0u32;
        // (Charger 1 stands for the site while no car is connected.)
        let any_connected = (0..n).any(|k| self.charger(k).connected);
        for k in 0..n {
            let v = self.charger(k);
            // (A read-back the laws distrust tells nothing of what the car draws.)
            if !distrusted {
                draw_w += (0..3)
                    .map(|p| i64::from(v.grid_ma[p]) * i64::from(self.volts_dv[p]) / 10_000)
                    .sum::<i64>();
            }
            if v.connected {
                sent_w += i64::from(self.watts(v.sent_ma, v.phases));
            }
            if v.connected || (k == 0 && !any_connected) {
                // (Rounded up: what the minimum needs, to the watt.)
                let w = self
                    .watts(self.cfg.charger_min_ma(), self.min_phases_of(k))
                    .saturating_add(1);
                min_w = min_w.min(w);
                if v.connected {
                    floor_w = floor_w.saturating_add(w);
                }
                // A car whose phases are not known yet may use one: a solar charge
                // starts on its single-phase minimum (a three-phase car then shows
                // itself in two read-backs, and is remembered).
                let expected = match (
                    self.slots[k].learned.or(self.slots[k].remembered),
                    self.cfg.wiring_of(k),
                ) {
                    (None, Wiring::Learn | Wiring::ThreePhase | Wiring::Rotated(_)) => {
                        self.phases_with(k, Some([true, false, false]))
                    }
                    _ => self.min_phases_of(k),
                };
                start_w = start_w.min(
                    self.watts(self.cfg.charger_min_ma(), expected)
                        .saturating_add(1),
                );
            }
        }
        // (A distrusted read-back is no ground for a new estimate of the house.)
        let settled = self.changed_at.is_none_or(|t| now - t >= ALLOWANCE_SETTLE) && !distrusted;
        let draw = ChargerDraw {
            draw_w,
            min_w,
            settled,
        };
        self.capacity_w = self.account.allowance_w(&self.cfg, draw);
        let solar_w = self.solar.on_telegram(
            now,
            &self.cfg,
            SolarInput {
                net_w,
                draw_w,
                sent_w,
                min_w,
                start_w: start_w.min(min_w),
                floor_w: floor_w.max(min_w),
                settled,
            },
        );
        let allowance_w = match (self.capacity_w, solar_w) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Several chargers share it as power: it moves by the deadband's power on the
        // connection's phases at least (or across the smallest minimum), so that the
        // chargers' values do not follow every watt, nor their cars their own echo.
        self.allowance_w = match (self.allowance_w, allowance_w) {
            (Some(old), Some(new)) if self.shared => {
                let band = self.watts(ALLOWANCE_DEADBAND_MA, phase_mask(self.cfg.phases()));
                let across = (new < min_w) != (old < min_w);
                if across || new.abs_diff(old) >= band {
                    Some(new)
                } else {
                    Some(old)
                }
            }
            (_, new) => new,
        };
        let cap = match self.allowance_w {
            Some(w) if !self.shared => {
                let phases = self.phases_of(0);
                let per_ma = self.dv_of(phases).max(1);
                let ma = u64::from(w) * 10_000 / per_ma;
                let mut ma = u32::try_from(ma).unwrap_or(u32::MAX) / 100 * 100;
                let min = self.cfg.charger_min_ma();
                // (The minimum's power, rounded down to the watt, and back: still the
                // minimum.)
                if w >= self.watts(min, phases) {
                    ma = ma.max(min);
                }
                let old = self.allowance_cap_ma;
                let across = (ma < min) != (old < min);
                if across
                    || ma.saturating_add(ALLOWANCE_DEADBAND_MA) <= old
                    || ma >= old.saturating_add(ALLOWANCE_DEADBAND_MA)
                {
                    ma
                } else {
                    old
                }
            }
            _ => u32::MAX,
        };
        if cap != self.allowance_cap_ma {
            self.allowance_cap_ma = cap;
            self.cap_changed = true;
            if !self.shared {
                self.laws[0].set_cap(self.cap_ma.min(cap));
            }
        }
    }

    /// The sum of the voltages of `phases`, 0.1 V.
    fn dv_of(&self, phases: [bool; 3]) -> u64 {
        (0..3)
            .filter(|&p| phases[p])
            .map(|p| u64::from(self.volts_dv[p]))
            .sum()
    }

    /// The power of `ma` on each of `phases`, W.
    fn watts(&self, ma: u32, phases: [bool; 3]) -> u32 {
        u32::try_from(u64::from(ma) * self.dv_of(phases) / 10_000).unwrap_or(u32::MAX)
    }

    /// The capacity tariff's account (registers 1122–1125).
    pub fn quarter(&self) -> QuarterFigures {
        self.account.figures()
    }

    /// What the capacity budget allows the chargers now, all together, W (register
    /// 1126); `None` when capacity mode is off.
    pub fn capacity_allowance_w(&self) -> Option<u32> {
        self.capacity_w
    }

    /// The surplus available to the chargers, W (export positive; register 1127), and
    /// where a solar charge stands (1128).
    pub fn solar(&self) -> (i64, SolarState) {
        (self.solar.surplus_w(), self.solar.state())
    }

    /// A valid telegram's signed grid currents (mA, import positive), per phase.
    /// Phases the meter does not report are `None`; a reading with no current on any
    /// phase the balancer watches is not a valid reading for it (returns `false`).
    ///
    /// A valid reading makes the tick due at once: the control tick follows the
    /// telegrams (the decision is sent milliseconds after the meter's data, not up to a
    /// second later), and runs every [`TICK`] from the last one when they stop.
    pub fn on_reading(&mut self, now: Instant, grid_ma: [Option<i32>; 3]) -> bool {
        self.now = self.now.max(now);
        let mut used = false;
        for law in self.active_mut() {
            used |= law.on_reading(now, grid_ma);
        }
        used
    }

    /// Charger 1's own phase currents (mA) as it reports them, freshly read: see
    /// [`Balancer::on_charger`].
    pub fn on_charger_currents(&mut self, now: Instant, ma: [Option<u32>; 3]) {
        let reading = ChargerReading {
            current_ma: ma,
            ..self.slots[0].reading
        };
        self.on_charger(now, 0, &reading, true);
    }

    /// What the bus learned of charger `k` (0-based; others are ignored); `fresh` when
    /// a status read just succeeded (its currents are new).
    ///
    /// Its currents are input like any other: headroom mode checks them before using
    /// them (above what the car may draw, or a rise the meter did not see, is
    /// implausible: counted, and the meter alone decides for a while; see the law).
    /// Fresh currents also teach the balancer which phases the car uses (wiring 0).
    pub fn on_charger(&mut self, now: Instant, k: usize, reading: &ChargerReading, fresh: bool) {
        if k >= self.cfg.chargers() {
            return;
        }
        self.now = self.now.max(now);
        let before = self.phases_of(k);
        let slot = &mut self.slots[k];
        slot.reading = *reading;
        slot.reserve = if reading.silent {
            Some(slot.reserve.unwrap_or(slot.sent_ma))
        } else {
            None
        };
        if reading.state == Some(0) {
            // No car: the next one may use other phases.
            slot.learned = None;
            slot.seen = None;
        }
        if !fresh {
            return;
        }
        slot.read_at = Some(now);
        if self.shared {
            for p in 0..3 {
                let sum = self.draw_on(now, p);
                self.laws[p].on_charger_currents(now, [Some(sum), None, None]);
            }
        } else {
            self.laws[0].on_charger_currents(now, reading.current_ma);
        }
        // Only a plausible read-back teaches the wiring: within what the charger can
        // deliver, and not while the laws distrust the read-back.
        let bound = self.cfg.max_of_ma(k).saturating_add(READBACK_SLACK_MA);
        let plausible =
            reading.current_ma.iter().flatten().all(|&v| v <= bound) && !self.readback_distrusted();
        if plausible {
            learn(&mut self.slots[k], reading.current_ma);
        }
        if self.phases_of(k) != before && !self.shared {
            self.configure_laws();
        }
    }

    /// What our chargers draw on grid phase `p` as far as the balancer knows, mA: each
    /// one's fresh read-back there, or, when it is not fresh (silent, not read yet),
    /// what it was sent (a silent one's reservation).
    fn draw_on(&self, now: Instant, p: usize) -> u32 {
        (0..self.cfg.chargers())
            .map(|k| {
                let slot = &self.slots[k];
                let fresh = slot.read_at.is_some_and(|t| (now - t) < FRESH);
                if fresh && !slot.reading.silent {
                    self.grid_currents(k)[p]
                } else if self.phases_of(k)[p] {
                    slot.reserve.unwrap_or(slot.sent_ma)
                } else {
                    0
                }
            })
            .fold(0u32, u32::saturating_add)
    }

    /// The grid phases charger `k` draws on: its configured wiring, or the phases
    /// learned from its currents, or (until learned) all of the connection's.
    fn phases_of(&self, k: usize) -> [bool; 3] {
        self.phases_with(k, self.slots[k].learned)
    }

    /// The grid phases charger `k`'s car is expected to use for its minimum power: as
    /// [`phases_of`](Self::phases_of), with the last car's phases until this one's are
    /// learned (a car that never starts would never teach them).
    fn min_phases_of(&self, k: usize) -> [bool; 3] {
        self.phases_with(k, self.slots[k].learned.or(self.slots[k].remembered))
    }

    /// The grid phases charger `k` draws on when its car uses `learned` of its own
    /// (`None`: all of them).
    fn phases_with(&self, k: usize, learned: Option<[bool; 3]>) -> [bool; 3] {
        let connection = phase_mask(self.cfg.phases());
        let wiring = self.cfg.wiring_of(k);
        // A three-phase charger (wiring learned, straight or rotated) delivers on the
        // phases its car uses, once learned; a single-phase one on its one phase.
        let used = match wiring {
            Wiring::Single(_) => [true, false, false],
            _ => learned.unwrap_or([true; 3]),
        };
        let mut wired = [false; 3];
        for (j, &on) in used.iter().enumerate() {
            if let (true, Some(p)) = (on, wiring.grid_phase(j)) {
                wired[p] = true;
            }
        }
        let mut mask = [false; 3];
        for p in 0..3 {
            mask[p] = wired[p] && connection[p];
        }
        if mask == [false; 3] {
            // A charger wired to a phase the connection lacks: the connection's one.
            mask = connection;
        }
        mask
    }

    /// Charger `k`'s currents on grid L1/L2/L3 (its wiring applied), mA.
    fn grid_currents(&self, k: usize) -> [u32; 3] {
        let wiring = self.cfg.wiring_of(k);
        let mut grid = [0u32; 3];
        for (j, ma) in self.slots[k].reading.current_ma.iter().enumerate() {
            if let (Some(p), Some(ma)) = (wiring.grid_phase(j), ma) {
                grid[p] = grid[p].saturating_add(*ma);
            }
        }
        grid
    }

    /// The number of chargers (setting 1037).
    pub fn chargers(&self) -> usize {
        self.cfg.chargers()
    }

    /// The value to send to charger `k` (0-based), mA.
    pub fn sent_of_ma(&self, k: usize) -> u32 {
        if k < self.cfg.chargers() {
            self.slots[k].sent_ma
        } else {
            0
        }
    }

    /// Charger `k` (0-based) as the balancer sees it.
    pub fn charger(&self, k: usize) -> ChargerView {
        if k >= self.cfg.chargers() {
            return ChargerView::default();
        }
        let slot = &self.slots[k];
        let r = slot.reading;
        ChargerView {
            sent_ma: slot.sent_ma,
            grid_ma: self.grid_currents(k),
            state: r.state,
            paused: slot.paused,
            wiring_known: self.cfg.wiring_of(k) != Wiring::Learn || slot.learned.is_some(),
            phases: self.phases_of(k),
            connected: matches!(r.state, Some(1..=5)),
            silent: r.silent,
            exception: r.exception,
        }
    }

    /// Read-backs found implausible since boot (above what the car may draw, or
    /// contradicting the meter after a raise).
    pub fn implausible_readbacks(&self) -> u32 {
        self.active()
            .iter()
            .map(Law::implausible_readbacks)
            .fold(0u32, u32::saturating_add)
    }

    /// True while headroom mode ignores the chargers' read-back after an implausible
    /// one (register 1003 bit 7).
    pub fn readback_distrusted(&self) -> bool {
        self.active().iter().any(Law::readback_distrusted)
    }

    /// When [`tick`](Self::tick) must be called next.
    pub fn next_tick(&self) -> Instant {
        self.active()
            .iter()
            .map(Law::next_tick)
            .min()
            .unwrap_or(Instant::MAX)
    }

    /// Seconds since the last valid reading (register 1004), saturating.
    pub fn seconds_since_reading(&self, now: Instant) -> u16 {
        self.laws[0].seconds_since_reading(now)
    }

    /// True when the last valid reading is older than [`FRESH`] (register 1003
    /// bit 0).
    pub fn is_stale(&self, now: Instant) -> bool {
        self.laws[0].is_stale(now)
    }

    /// The current decision without ticking (charger 1's value; the worst state of the
    /// laws).
    pub fn decision(&self) -> Decision {
        Decision {
            changed: false,
            ..self.decision
        }
    }

    /// One control tick. Call at [`next_tick`](Self::next_tick); an early call
    /// changes nothing, unless the cap (1000) changed since the last tick. `changed` in
    /// the decision is true when the value of any charger changed.
    pub fn tick(&mut self, now: Instant) -> Decision {
        self.now = self.now.max(now);
        if !self.shared {
            let d = self.laws[0].tick(now);
            if d.changed {
                self.changed_at = Some(now);
            }
            self.cap_changed = false;
            self.slots[0].sent_ma = d.sent_ma;
            self.slots[0].paused = false;
            self.decision = d;
            return d;
        }
        if now < self.next_tick() && !self.cap_changed {
            return self.decision();
        }
        self.cap_changed = false;
        let phases = usize::from(self.cfg.phases());
        let mut state = State::Normal;
        let mut budget = [u32::MAX; 3];
        for (p, law) in self.laws[..phases].iter_mut().enumerate() {
            // (They follow the same telegrams: due together.)
            let d = law.tick(now);
            budget[p] = d.limit_ma;
            state = worse(state, d.state);
        }
        let before: [u32; MAX_CHARGERS] = core::array::from_fn(|k| self.slots[k].sent_ma);
        self.share(now, budget);
        let mut sent_on = [0u32; 3];
        for k in 0..self.cfg.chargers() {
            let mask = self.phases_of(k);
            for p in 0..3 {
                if mask[p] {
                    sent_on[p] = sent_on[p].saturating_add(self.slots[k].sent_ma);
                }
            }
        }
        // A charger given more on a phase whose total did not rise (another paused):
        // its car's climb cannot show as a rise of the phase, only in its read-back.
        let mut sent_before = [0u32; 3];
        let mut raised = [false; 3];
        for (k, &was) in before.iter().enumerate().take(self.cfg.chargers()) {
            let mask = self.phases_of(k);
            for p in (0..3).filter(|&p| mask[p]) {
                sent_before[p] = sent_before[p].saturating_add(was);
                raised[p] |= self.slots[k].sent_ma > was;
            }
        }
        for p in 0..3 {
            if raised[p] {
                self.laws[p].note_raise(now, sent_on[p] <= sent_before[p]);
            }
        }
        for (p, law) in self.laws[..phases].iter_mut().enumerate() {
            law.set_sent(now, sent_on[p]);
        }
        let changed = (0..MAX_CHARGERS).any(|k| self.slots[k].sent_ma != before[k]);
        if changed {
            self.changed_at = Some(now);
        }
        self.decision = Decision {
            limit_ma: self.slots[0].sent_ma,
            sent_ma: self.slots[0].sent_ma,
            state,
            changed: false,
        };
        Decision {
            changed,
            ..self.decision
        }
    }

    /// Shares the per-phase budgets among the chargers (see `share`).
    fn share(&mut self, now: Instant, budget: [u32; 3]) {
        let n = self.cfg.chargers();
        let min = self.cfg.charger_min_ma();
        let mut candidates = [Candidate::default(); MAX_CHARGERS];
        let phases = usize::from(self.cfg.phases());
        let frozen: [bool; 3] = core::array::from_fn(|p| p < phases && !self.laws[p].may_raise());
        for (k, c) in candidates.iter_mut().enumerate().take(n) {
            let slot = &self.slots[k];
            let r = slot.reading;
            let mask = self.phases_of(k);
            // A phase above its upper limit, or with cars still climbing, takes no
            // raise: no charger on it gets more than it had (nor starts).
            let max_ma = if (0..3).any(|p| mask[p] && frozen[p]) {
                slot.sent_ma
            } else {
                u32::MAX
            };
            *c = Candidate {
                phases: mask,
                max_ma: self.cfg.max_of_ma(k).min(self.cap_ma).min(max_ma),
                priority: self.cfg.priority_of(k),
                wants: !r.silent && matches!(r.state, Some(1..=5)),
                reserved_ma: slot.reserve.unwrap_or(0),
                weight_dv: u32::try_from(self.dv_of(mask)).unwrap_or(u32::MAX),
            };
        }
        let power = self.allowance_w.map_or(u64::MAX, |w| u64::from(w) * 10_000);
        let shares = self.turns.share(now, budget, power, min, &candidates[..n]);
        for (k, (slot, share)) in self.slots.iter_mut().zip(shares).enumerate() {
            let share = if k < n { share } else { Default::default() };
            slot.sent_ma = share.sent_ma;
            slot.paused = share.paused;
        }
    }
}

/// The more severe of two states (for 1002 with several laws).
fn worse(a: State, b: State) -> State {
    let rank = |s: State| match s {
        State::Normal => 0,
        State::Lower => 1,
        State::Upper => 2,
        State::Alarm => 3,
        State::Fallback => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// Learns the phases a car uses from its charger's fresh currents (see
/// [`LEARN_MIN_MA`]).
fn learn(slot: &mut Slot, current_ma: [Option<u32>; 3]) {
    let c = current_ma.map(|v| v.unwrap_or(0));
    let hi = c.iter().copied().max().unwrap_or(0);
    if hi < LEARN_MIN_MA {
        return;
    }
    let floor = LEARN_PHASE_MA.max(hi / 100 * LEARN_SHARE_PCT);
    let pattern = c.map(|v| v >= floor);
    let count = match slot.seen {
        Some((p, n)) if p == pattern => n.saturating_add(1),
        _ => 1,
    };
    slot.seen = Some((pattern, count));
    if count >= LEARN_READS {
        slot.learned = Some(pattern);
        slot.remembered = Some(pattern);
    }
}

/// The law for a single charger on `mask`: the configuration as it is, except that its
/// own maximum (1041) applies, a single-phase charger on a three-phase connection uses
/// headroom mode, and the site maximum (1026) lowers the upper limit.
fn single_law_config(cfg: &Config, mask: [bool; 3]) -> Config {
    let mut c = *cfg;
    // Its own maximum (1041; 0 is 1010).
    let _ = c.set_charger_max_ma(cfg.max_of_ma(0));
    let used = mask.iter().filter(|&&m| m).count();
    // A single-phase charger on a three-phase connection, and a charge on surplus (its
    // raises sized by the measured room in one step, not 1020 a second), use headroom
    // mode.
    let solar = matches!(
        cfg.charge_mode(),
        ChargeMode::MinSolar | ChargeMode::SolarOnly
    );
    if (used == 1 && cfg.phases() == 3) || solar {
        let _ = c.set_mode(ControlMode::Headroom);
    }
    apply_site_max(&mut c);
    c
}

/// A shared per-phase law: headroom mode, no minimum (the chargers' minimum is the
/// allocator's), up to `capacity_ma` (all chargers together), under the site maximum.
fn shared_law_config(cfg: &Config, capacity_ma: u32) -> Config {
    let mut c = *cfg;
    let _ = c.set_mode(ControlMode::Headroom);
    let _ = c.set_charger_min_ma(0);
    let _ = c.set_charger_max_ma(capacity_ma.clamp(6000, 63000));
    apply_site_max(&mut c);
    c
}

/// The site maximum per phase (1026), when set below the upper limit, is the upper
/// limit the laws keep to (the lower limit keeps its distance below it).
fn apply_site_max(c: &mut Config) {
    let site = c.site_max_ma();
    let (upper, lower) = (c.upper_ma(), c.lower_ma());
    if site != 0 && site < upper {
        let _ = c.set_upper_ma(site);
        let _ = c.set_lower_ma(site.saturating_sub(upper.saturating_sub(lower)));
    }
}
