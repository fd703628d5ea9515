//! What the tasks share: the core's register map and balancer behind one short-held
//! lock, the daemon's clock (milliseconds since start, the core's time base), the
//! Modbus unit address in force and where the settings are persisted.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use p1lb_core::balancer::Balancer;
use p1lb_core::config::Config;
use p1lb_core::meter_emulation::MeterSnapshot;
use p1lb_core::registers::RegisterMap;
use tokio::time::Instant;

/// The core's state, as one unit: a register write and the balancer it drives change
/// together.
#[derive(Debug)]
pub struct Core {
    /// The register map (saved and staged settings, override cap, status).
    pub map: RegisterMap,
    /// The control law.
    pub balancer: Balancer,
    /// When the reader last rejected a telegram (1003 bit 1), ms.
    pub last_rejected_ms: Option<u64>,
    /// The latest valid telegram as the emulated EV3 meter shows it (register 1036).
    pub last_reading: Option<MeterSnapshot>,
}

/// Shared by every task (in an `Arc`).
#[derive(Debug)]
pub struct Shared {
    core: Mutex<Core>,
    start: Instant,
    unit: AtomicU8,
    /// The TOML file the `[settings]` are saved to.
    pub settings_path: PathBuf,
}

impl Shared {
    /// The state at start with the saved configuration `config`.
    pub fn new(config: Config, settings_path: PathBuf) -> Shared {
        Shared {
            core: Mutex::new(Core {
                map: RegisterMap::new(config),
                balancer: Balancer::new(config, 0),
                last_rejected_ms: None,
                last_reading: None,
            }),
            start: Instant::now(),
            unit: AtomicU8::new(config.server_address()),
            settings_path,
        }
    }

    /// The core's state, locked. Hold it briefly and never across an `.await`.
    pub fn core(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock leaves consistent data (every core call is
        // all-or-nothing): go on with it.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Milliseconds since start: the core's time.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The instant of core time `ms`.
    pub fn instant(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// The Modbus unit address the device answers at (saved register 1090).
    pub fn unit(&self) -> u8 {
        self.unit.load(Ordering::Relaxed)
    }

    /// Switches to a new unit address (after the reply to the save).
    pub fn set_unit(&self, unit: u8) {
        self.unit.store(unit, Ordering::Relaxed);
    }
}
