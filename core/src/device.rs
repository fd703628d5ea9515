//! The device as one value: the register map and the balancer it drives, plus what the
//! P1, control and charger paths learn. The daemon's tasks and the firmware's tasks
//! hold one [`Device`] behind a lock and call these entry points, so both products
//! update the status registers (1001–1004, 1100–1120) in exactly the same way.
//!
//! Time is a parameter ([`Instant`], the product's monotonic clock). Nothing here panics: every value from
//! outside is clamped into its register.

use crate::abb::TerraAc;
use crate::balancer::{Balancer, ChargerReading, Decision};
use crate::config::Config;
use crate::config::MAX_CHARGERS;
use crate::config::P1Line;
use crate::meter_emulation::MeterSnapshot;
use crate::modbus::MAX_ADU;
use crate::p1::{Event, ReaderStats, Reading, Rejection, TelegramReader};
use crate::registers::{
    CapacityRegs, ChargerFlags, ChargerRegs, Flags, RegisterMap, SolarRegs, WriteOutcome,
};
use crate::server::{ServerAction, serve};
use crate::time::{Duration, Instant};

/// A rejected telegram keeps 1003 bit 1 set this long.
pub const CRC_FLAG: Duration = Duration::from_secs(60);

/// The register map, the balancer and the latest facts from the meter.
#[derive(Debug, Clone)]
pub struct Device {
    /// The register map (saved and staged settings, override cap, status).
    pub map: RegisterMap,
    /// The control law.
    pub balancer: Balancer,
    /// When the reader last rejected a telegram (1003 bit 1).
    pub last_rejected: Option<Instant>,
    /// The latest valid telegram as the emulated EV3 meter shows it (register 1036).
    pub last_reading: Option<MeterSnapshot>,
}

impl Device {
    /// The state at boot (`now`) with the saved configuration `config`.
    pub fn new(config: Config, now: Instant) -> Self {
        Device {
            map: RegisterMap::new(config),
            balancer: Balancer::new(config, now),
            last_rejected: None,
            last_reading: None,
        }
    }

    /// A valid telegram: its grid currents to the balancer (per setting 1024), its
    /// measurements into 1100–1109. Returns `false` when the telegram had no current
    /// for some phase the balancer uses (the balancer then ignores it).
    pub fn on_telegram(&mut self, now: Instant, reading: &Reading) -> bool {
        self.last_reading = Some(MeterSnapshot::from_reading(reading));
        let grid = reading.grid_currents_ma(self.balancer.config().grid_source());
        let used = self.balancer.on_telegram(now, reading);
        let status = self.map.status_mut();
        status.grid_ca = grid.map(|ma| ma.map_or(0, |ma| clamp_i16(ma / 10)));
        status.voltage_dv = reading.phases.each_ref().map(|p| {
            p.voltage_dv
                .map_or(0, |v| u16::try_from(v.max(0)).unwrap_or(u16::MAX))
        });
        status.import_w = reading.power_import_w.map_or(0, clamp_u32);
        status.export_w = reading.power_export_w.map_or(0, clamp_u32);
        let q = self.balancer.quarter();
        let word = |w: u32| u16::try_from(w).unwrap_or(u16::MAX);
        status.capacity = CapacityRegs {
            quarter_average_w: word(q.average_w),
            quarter_projected_w: word(q.projected_w),
            month_peak_w: word(q.month_peak_w),
            seconds_left: word(q.seconds_left),
            // (65535 is "no bound": a bound never reads as it.)
            charger_power_w: self
                .balancer
                .capacity_allowance_w()
                .map_or(u16::MAX, |w| word(w).min(u16::MAX - 1)),
        };
        let (surplus_w, solar_state) = self.balancer.solar();
        status.solar = SolarRegs {
            surplus_10w: i16::try_from(surplus_w / 10).unwrap_or(if surplus_w < 0 {
                i16::MIN
            } else {
                i16::MAX
            }),
            state: solar_state.code(),
        };
        used
    }

    /// The reader rejected a telegram (CRC, framing): 1003 bit 1 for a minute.
    pub fn on_rejected(&mut self, now: Instant) {
        self.last_rejected = Some(now);
    }

    /// What the P1 input found ([`P1Input::feed`]): a telegram to
    /// [`Device::on_telegram`] (its result returned), a rejection to
    /// [`Device::on_rejected`] (`true`), new counters to [`Device::on_reader_stats`]
    /// (`true`).
    pub fn on_p1(&mut self, now: Instant, event: &P1Event<'_>) -> bool {
        match event {
            P1Event::Telegram(reading) => self.on_telegram(now, reading),
            P1Event::Rejected(_) => {
                self.on_rejected(now);
                true
            }
            P1Event::Counters(stats) => {
                self.on_reader_stats(stats);
                true
            }
        }
    }

    /// The reader's counters into 1115–1118.
    pub fn on_reader_stats(&mut self, stats: &ReaderStats) {
        let status = self.map.status_mut();
        status.telegrams_valid = stats.valid;
        status.telegrams_rejected = stats.rejected();
    }

    /// One control step: [`Balancer::tick`], then the status registers that follow
    /// from it (1001–1004, uptime, flag bits 0 and 1). Call at
    /// [`Balancer::next_tick`].
    pub fn tick(&mut self, now: Instant) -> Decision {
        let d = self.balancer.tick(now);
        self.update_status(now);
        d
    }

    /// 1001–1004, the uptime and flag bits 0, 1 and 7 after a tick. Not inlined: the
    /// emulator's measurement (tests/emulator, scenario 11) times the control tick by
    /// this call.
    #[inline(never)]
    fn update_status(&mut self, now: Instant) {
        let crc = self.last_rejected.is_some_and(|t| now - t < CRC_FLAG);
        let b = &self.balancer;
        let decision = b.decision();
        let status = self.map.status_mut();
        status.sent_ma = u16::try_from(decision.sent_ma).unwrap_or(u16::MAX);
        status.state = decision.state;
        status.flags.set(Flags::METER_STALE, b.is_stale(now));
        status
            .flags
            .set(Flags::READBACK_IMPLAUSIBLE, b.readback_distrusted());
        status.seconds_since_telegram = b.seconds_since_reading(now);
        status.flags.set(Flags::CRC_FAILURES, crc);
        status.uptime_s = u32::try_from(now.secs()).unwrap_or(u32::MAX);
        self.update_chargers();
    }

    /// Serves one Modbus RTU request frame as server `unit` ([`serve`]) and applies
    /// the immediate part of a write (the override cap). A save in the outcome is the
    /// caller's to persist (see [`ServerAction`]).
    pub fn serve(&mut self, unit: u8, frame: &[u8], out: &mut [u8; MAX_ADU]) -> ServerAction {
        let action = serve(&mut self.map, unit, frame, out);
        if let ServerAction::Reply { outcome, .. } | ServerAction::Broadcast(Ok(outcome)) = action {
            self.on_write(&outcome);
        }
        action
    }

    /// Applies the immediate part of a register write (the override cap, 1000). A
    /// save in the outcome is the caller's to persist, then [`Device::commit_save`].
    pub fn on_write(&mut self, outcome: &WriteOutcome) {
        if let Some(cap) = outcome.cap_ma {
            self.balancer.set_cap(u32::from(cap));
        }
    }

    /// A save (1091) or restore (1092) reached storage: it becomes the saved
    /// configuration and the balancer's.
    pub fn commit_save(&mut self, config: Config) {
        self.map.commit_saved(config);
        self.balancer.apply_config(config);
    }

    /// Charger `k`'s driver (0-based: charger 1, at 1030, is 0) after an exchange: its
    /// view to the balancer (its measured currents when `fresh`, a status read just
    /// succeeded) and into its status registers (1130 + 6k …); charger 1's also into
    /// 1110–1114. Flag bits 2 and 3 of 1003 are set while any charger is silent or
    /// answered with an exception.
    pub fn on_charger(&mut self, now: Instant, k: usize, driver: &TerraAc, fresh: bool) {
        let st = *driver.status();
        let reading = ChargerReading {
            current_ma: st.current_ma,
            state: st.state,
            silent: driver.not_answering(),
            exception: driver.exception(),
        };
        self.balancer.on_charger(now, k, &reading, fresh);
        self.update_chargers();
        if k != 0 {
            return;
        }
        let status = self.map.status_mut();
        status.charger_ca = st
            .current_ma
            .map(|m| m.map_or(0, |ma| u16::try_from(ma / 10).unwrap_or(u16::MAX)));
        status.charger_state = st.state.map_or(0, u16::from);
        status.charger_error = st.error.map_or(0, |e| u16::try_from(e).unwrap_or(u16::MAX));
    }

    /// Each charger's status registers (1130 + 6k …) and 1003 bits 2 and 3 (any
    /// charger silent; any answered with an exception) from the balancer's view.
    fn update_chargers(&mut self) {
        let n = self.balancer.chargers();
        let (mut silent, mut exception) = (false, false);
        for k in 0..MAX_CHARGERS {
            let regs = if k < n {
                let v = self.balancer.charger(k);
                silent |= v.silent;
                exception |= v.exception;
                let mut flags = ChargerFlags::empty();
                flags.set(ChargerFlags::NOT_ANSWERING, v.silent);
                flags.set(ChargerFlags::EXCEPTION, v.exception);
                flags.set(ChargerFlags::PAUSED, v.paused);
                flags.set(ChargerFlags::WIRING_KNOWN, v.wiring_known);
                flags.set(ChargerFlags::CAR_CONNECTED, v.connected);
                ChargerRegs {
                    sent_ma: u16::try_from(v.sent_ma).unwrap_or(u16::MAX),
                    grid_ca: v
                        .grid_ma
                        .map(|ma| u16::try_from(ma / 10).unwrap_or(u16::MAX)),
                    state: v.state.map_or(0, u16::from),
                    flags,
                }
            } else {
                ChargerRegs::default()
            };
            self.map.status_mut().chargers[k] = regs;
        }
        let flags = &mut self.map.status_mut().flags;
        flags.set(Flags::CHARGER_SILENT, silent);
        flags.set(Flags::CHARGER_EXCEPTION, exception);
    }

    /// What the firmware learns at boot: 1003 bit 6 (the last reset was the
    /// watchdog's) and bit 4 (the stored configuration was unusable: defaults in use).
    pub fn set_boot_flags(&mut self, watchdog_reset: bool, defaults_after_error: bool) {
        let flags = &mut self.map.status_mut().flags;
        flags.set(Flags::WATCHDOG_RESET, watchdog_reset);
        flags.set(Flags::DEFAULTS_IN_USE, defaults_after_error);
    }
}

fn clamp_i16(v: i32) -> i16 {
    i16::try_from(v).unwrap_or(if v < 0 { i16::MIN } else { i16::MAX })
}

fn clamp_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// What the meter's bytes gave, for [`Device::on_p1`]: one per telegram or rejection,
/// then the reader's counters when they changed.
#[derive(Debug, Clone, Copy)]
pub enum P1Event<'a> {
    /// A valid telegram, parsed.
    Telegram(&'a Reading),
    /// A refused telegram, and why.
    Rejected(Rejection),
    /// The reader's counters after a chunk that changed them.
    Counters(ReaderStats),
}

/// The P1 input every product runs — the daemon's P1 task, the firmware's: meter bytes
/// through the [`TelegramReader`] into [`P1Event`]s, with the line's CRC rule. Kept
/// outside the [`Device`] (the reader's buffer is large and is fed without the
/// device's lock); the product hands each event to [`Device::on_p1`] under its lock and
/// adds what is its own (waking its control task, logging, a quiet-line signal).
/// Never panics on any bytes.
#[derive(Debug)]
pub struct P1Input {
    reader: TelegramReader,
    /// The (valid, rejected) counters last reported (the registers start at 0).
    reported: (u32, u32),
}

impl Default for P1Input {
    fn default() -> Self {
        P1Input::new()
    }
}

impl P1Input {
    /// An input with an empty reader (CRC required, as at 115200 baud).
    pub fn new() -> P1Input {
        let mut reader = TelegramReader::new();
        reader.set_crc_required(true);
        P1Input {
            reader,
            reported: (0, 0),
        }
    }

    /// Starts over on a line (re)opened with `line`: what was received of a telegram
    /// is dropped (the counters go on); the CRC is required unless the line is DSMR 2.2/3 (9600 7E1).
    pub fn restart(&mut self, line: &P1Line) {
        self.reader.reset();
        self.reader.set_crc_required(line.crc_required());
    }

    /// The reader's counters.
    pub fn stats(&self) -> &ReaderStats {
        self.reader.stats()
    }

    /// Feeds `bytes`; `on` gets each telegram or rejection in order, then the counters
    /// if they changed.
    pub fn feed(&mut self, mut bytes: &[u8], mut on: impl FnMut(P1Event<'_>)) {
        while !bytes.is_empty() {
            let (used, event) = self.reader.feed(bytes);
            bytes = bytes.get(used..).unwrap_or_default();
            match event {
                Some(Event::Telegram(t)) => on(P1Event::Telegram(&Reading::parse(&t))),
                Some(Event::Rejected { reason, .. }) => on(P1Event::Rejected(reason)),
                None => {}
            }
        }
        let stats = *self.reader.stats();
        let counts = (stats.valid, stats.rejected());
        if self.reported != counts {
            self.reported = counts;
            on(P1Event::Counters(stats));
        }
    }
}
