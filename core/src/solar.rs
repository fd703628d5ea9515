//! The charge modes (setting 1080, status 1127–1128): how much the chargers may draw
//! from the solar surplus the meter shows.
//!
//! A P1 meter prints the site's signed power every second (import `1.7.0`, export
//! `2.7.0`, or per phase). What the chargers report drawing, added to the export (or
//! less the import), is the **surplus**: the power they could draw with nothing taken
//! from the grid. [`Solar::on_telegram`] turns each telegram into an allowance for the
//! chargers together, W, which the balancer applies under the fuse rules and the
//! capacity budget (they always win):
//!
//! - **fast** (0): no allowance (only the fuse and capacity limits);
//! - **minimum + solar** (1): the surplus plus the import allowed (1084), and never less
//!   than the cars' minimum power (1025 on their phases);
//! - **solar only** (2): 0 until the surplus has covered the start power (1081, or, when
//!   0, the car's minimum within the import allowed) for the start delay (1082); then
//!   the surplus plus the import allowed, at least the minimum, until charging at the
//!   minimum would import more than 1084 for the stop delay (1083): paused again.
//!   A cloud shorter than the stop delay does not pause the charge;
//! - **paused** (3): 0.
//!
//! The surplus is what the chargers *report* drawing plus the export. A charger's report
//! lags the meter (it is read every 2 s, of a car that follows a new limit seconds
//! late): right after a change the difference shows a spike that is neither the house
//! nor the sun. So the estimate is taken fresh on every telegram while the chargers are
//! settled, and held while they are not (the balancer says which: a few seconds after a
//! change of a value sent) — held only as far as the meter agrees: a car following a
//! change draws between its report and its new value, so the house is within the
//! meter's power less either, and a cloud or a kettle that shows beyond that moves the
//! estimate at once. The held estimate is what keeps the limit from chasing its own
//! echo; the balancer also changes a charger's value only by a deadband.
//!
//! The timers run on the device clock ([`Instant`]), from the first telegram that met
//! the condition to the first one at or past the delay (less [`DELAY_TOLERANCE`]).
//!
//! Sans-IO and `no_std`; nothing here panics, all arithmetic saturates.

use crate::config::{ChargeMode, Config};
use crate::time::{Duration, Instant};

/// A delay of N s is over at N s less this: the telegrams come about a second apart,
/// give or take a few ms, and a delay must not take a telegram more when one comes a
/// few ms early (as the balancer's own waits).
pub const DELAY_TOLERANCE: Duration = Duration::from_millis(200);

/// Where a solar charge stands (register 1128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SolarState {
    /// Not charging on surplus (fast or paused mode, or no surplus).
    #[default]
    Idle,
    /// Solar only: the surplus covers the start power; the start delay runs.
    WaitingToStart,
    /// Charging on surplus.
    Charging,
    /// Solar only: at the minimum, importing above 1084; the stop delay runs.
    WaitingToStop,
}

impl SolarState {
    /// Its code in register 1128.
    pub fn code(self) -> u16 {
        match self {
            SolarState::Idle => 0,
            SolarState::WaitingToStart => 1,
            SolarState::Charging => 2,
            SolarState::WaitingToStop => 3,
        }
    }
}

/// What the balancer knows of the site and its chargers at a telegram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SolarInput {
    /// The meter's net import, W (export negative); `None` when the telegram prints no
    /// power at all (the surplus is then unknown and taken as none).
    pub net_w: Option<i64>,
    /// What the chargers report drawing together, W (0 where not known).
    pub draw_w: i64,
    /// The power of the values sent to the chargers of connected cars together, W:
    /// while a car follows a change, it draws between its report and this.
    pub sent_w: i64,
    /// The least power a car charges at: the smallest of the connected cars' minimum
    /// (1025 on the phases each uses; charger 1's when none is connected), W.
    pub min_w: u32,
    /// The smallest minimum power a connected car (charger 1's when none is) is known,
    /// or until its phases are learned could be, to charge at, W: a solar-only charge
    /// starts when the surplus covers it and stops when it no longer does.
    pub start_w: u32,
    /// The connected cars' minimum power together, W: what minimum + solar keeps.
    pub floor_w: u32,
    /// The chargers' reports have caught up with the last change of a value sent.
    pub settled: bool,
}

/// The charge mode's state machine. See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solar {
    mode: Option<ChargeMode>,
    state: SolarState,
    /// When the condition the state waits on was first met.
    since: Option<Instant>,
    /// The house's net import without the chargers, W (export negative).
    house_w: Option<i64>,
}

impl Solar {
    /// A charge mode that has seen nothing.
    pub fn new() -> Self {
        Solar::default()
    }

    /// A valid telegram at `now`: updates the surplus and the state, and returns the
    /// power the chargers may draw together, W (`None`: fast mode, no bound).
    pub fn on_telegram(&mut self, now: Instant, cfg: &Config, input: SolarInput) -> Option<u32> {
        let mode = cfg.charge_mode();
        if self.mode != Some(mode) {
            // From minimum + solar to solar only, a charge on surplus goes on (no start
            // delay for a car already charging on the sun).
            let goes_on = self.mode == Some(ChargeMode::MinSolar)
                && mode == ChargeMode::SolarOnly
                && self.state == SolarState::Charging;
            self.mode = Some(mode);
            if !goes_on {
                self.state = SolarState::Idle;
            }
            self.since = None;
        }
        let draw = input.draw_w.max(0);
        self.house_w = match (input.net_w, self.house_w) {
            (None, _) => None,
            (Some(net), Some(held)) if !input.settled => {
                // A car following a change draws between its report and its new value:
                // the house is within what the meter shows less either. The estimate
                // is kept while the meter agrees, and moved only as far as it proves.
                let sent = input.sent_w.max(0);
                let (lo, hi) = (draw.min(sent), draw.max(sent));
                Some(held.clamp(net.saturating_sub(hi), net.saturating_sub(lo)))
            }
            (Some(net), _) => Some(net.saturating_sub(draw)),
        };
        let min = i64::from(input.min_w);
        let room = self
            .surplus_w()
            .saturating_add(i64::from(cfg.solar_max_import_w()));
        let allowance = match mode {
            ChargeMode::Fast => {
                self.state = SolarState::Idle;
                return None;
            }
            ChargeMode::Paused => {
                self.state = SolarState::Idle;
                0
            }
            ChargeMode::MinSolar => {
                let floor = i64::from(input.floor_w).max(min);
                self.state = if room > floor {
                    SolarState::Charging
                } else {
                    SolarState::Idle
                };
                room.max(floor)
            }
            ChargeMode::SolarOnly => {
                self.solar_only(now, cfg, room, i64::from(input.start_w).min(min), min)
            }
        };
        Some(u32::try_from(allowance.max(0)).unwrap_or(u32::MAX))
    }

    /// Solar only: the start and stop timers on the surplus against `start` (the least
    /// minimum a car may have); the allowance (at least `min`, the minimum on the phases
    /// the car is assumed to draw on, while charging).
    fn solar_only(&mut self, now: Instant, cfg: &Config, room: i64, start: i64, min: i64) -> i64 {
        let start_w = i64::from(cfg.solar_start_surplus_w());
        let start_delay = Duration::from_secs(u64::from(cfg.solar_start_delay_s()));
        let stop_delay = Duration::from_secs(u64::from(cfg.solar_stop_delay_s()));
        let waited = |since: Option<Instant>, delay: Duration| {
            since.is_some_and(|t| (now - t) + DELAY_TOLERANCE >= delay)
        };
        if matches!(self.state, SolarState::Idle | SolarState::WaitingToStart) {
            let covered = if start_w > 0 {
                self.surplus_w() >= start_w
            } else {
                room >= start
            };
            if !covered {
                self.state = SolarState::Idle;
                self.since = None;
                return 0;
            }
            if self.state == SolarState::Idle {
                self.state = SolarState::WaitingToStart;
                self.since = Some(now);
            }
            if !waited(self.since, start_delay) {
                return 0;
            }
            self.state = SolarState::Charging;
            self.since = None;
        }
        // Charging, or waiting to stop: at the minimum, the import would be above 1084.
        if room < start {
            if self.state == SolarState::Charging {
                self.state = SolarState::WaitingToStop;
                self.since = Some(now);
            }
            if waited(self.since, stop_delay) {
                self.state = SolarState::Idle;
                self.since = None;
                return 0;
            }
        } else {
            self.state = SolarState::Charging;
            self.since = None;
        }
        room.max(min)
    }

    /// The surplus available to the chargers, W (export positive; what they draw plus
    /// the export): 0 until a telegram with power came.
    pub fn surplus_w(&self) -> i64 {
        self.house_w.map_or(0, |h| h.saturating_neg())
    }

    /// Where a solar charge stands.
    pub fn state(&self) -> SolarState {
        self.state
    }
}
