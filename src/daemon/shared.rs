//! What the tasks share: the core's [`Device`] (register map and balancer) behind one
//! short-held lock, the daemon's clock (the core's time base, from the daemon's start), the
//! Modbus unit address in force and where the settings are persisted.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

use p1lb_core::config::Config;
use p1lb_core::device::Device;
use p1lb_core::time::Instant as CoreInstant;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::stats::Stats;
use crate::rtu_io::Clock;

/// Shared by every task (in an `Arc`).
#[derive(Debug)]
pub struct Shared {
    core: Mutex<Device>,
    clock: Clock,
    unit: AtomicU8,
    /// The TOML file the `[settings]` are saved to.
    pub settings_path: PathBuf,
    /// → control: a valid telegram arrived or the cap (1000) changed: the
    /// balancer may tick now.
    pub wake_control: Notify,
    /// Control → RS485 master: the value for the charger changed.
    pub decision: Notify,
    /// Held by a register write from its map write through its save to its commit
    /// ([`super::writes`], the RS485 server): writes from different surfaces (Modbus
    /// TCP and RTU, MQTT, HTTP) take turns, so that a save committed later never puts back
    /// an older configuration (a charge-mode write against a 1091 save).
    pub writes: tokio::sync::Mutex<()>,
    /// The RS485 port's state ([`PortState`] as a number), for the status line.
    rs485: AtomicU8,
    /// The tasks' counters (P1 reader, RS485 exchanges), for `/metrics`.
    pub stats: Stats,
}

/// The RS485 port, as the status line tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    /// No RS485 port configured.
    Unused,
    /// Configured, not open (missing adapter, reopening).
    Closed,
    /// Open and in use.
    Open,
}

impl Shared {
    /// The state at start with the saved configuration `config`.
    pub fn new(config: Config, settings_path: PathBuf) -> Shared {
        Shared {
            core: Mutex::new(Device::new(config, CoreInstant::ZERO)),
            clock: Clock::new(),
            unit: AtomicU8::new(config.server_address()),
            settings_path,
            wake_control: Notify::new(),
            decision: Notify::new(),
            writes: tokio::sync::Mutex::new(()),
            rs485: AtomicU8::new(PortState::Unused as u8),
            stats: Stats::default(),
        }
    }

    /// The RS485 port's state.
    pub fn rs485(&self) -> PortState {
        match self.rs485.load(Ordering::Relaxed) {
            1 => PortState::Closed,
            2 => PortState::Open,
            _ => PortState::Unused,
        }
    }

    /// The RS485 task says whether its port is open.
    pub fn set_rs485(&self, state: PortState) {
        self.rs485.store(state as u8, Ordering::Relaxed);
    }

    /// The core's state, locked. Hold it briefly and never across an `.await`.
    pub fn core(&self) -> MutexGuard<'_, Device> {
        // A panic while holding the lock leaves consistent data (every core call is
        // all-or-nothing): go on with it.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Now, on the core's time line (from the daemon's start).
    pub fn now(&self) -> CoreInstant {
        self.clock.now()
    }

    /// The tokio instant of core time `t`, to sleep until.
    pub fn instant(&self, t: CoreInstant) -> Instant {
        self.clock.instant(t)
    }

    /// The Modbus unit address the device answers at (saved register 1090).
    pub fn unit(&self) -> u8 {
        self.unit.load(Ordering::Relaxed)
    }

    /// Switches to a new unit address (after the reply to the save).
    pub fn set_unit(&self, unit: u8) {
        self.unit.store(unit, Ordering::Relaxed);
    }

    /// Switches to the new unit address a save gave, if any (after the reply to it),
    /// and says so.
    pub fn switch_unit(&self, new_unit: Option<u8>) {
        if let Some(unit) = new_unit {
            self.set_unit(unit);
            tracing::info!("Modbus server address is now {unit}");
        }
    }
}
