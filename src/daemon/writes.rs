//! The register write path every daemon surface shares (Modbus TCP, Modbus RTU on the
//! RS485 port, and whatever else takes a write: MQTT commands, the status page): the
//! core's [`write_path`] with the daemon as its [`Host`] — the shared device, the
//! control task's wake, and the TOML file's `[settings]` as storage.
//!
//! A write is validated by the register map exactly as a Modbus request: staged
//! settings, a save with 1091, the charge mode (1080) applied and persisted at once, the
//! override cap (1000) at once; a refused write changes nothing.

use p1lb_core::config::Config;
use p1lb_core::device::Device;
use p1lb_core::registers::{Exception, WriteOutcome};
use p1lb_core::write_path::{self, Host, SaveFailed};

use super::file;
use super::shared::Shared;

/// Why a write did not happen (or did not reach storage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRefused {
    /// The map refused it (an address that is not writable, a value out of range, an
    /// inconsistent save): nothing changed.
    Refused(Exception),
    /// A save did not reach the TOML file: the staged values stay.
    SaveFailed,
}

impl std::fmt::Display for WriteRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteRefused::Refused(Exception::IllegalDataAddress) => {
                f.write_str("not a writable register")
            }
            WriteRefused::Refused(Exception::IllegalDataValue) => {
                f.write_str("value out of range or inconsistent")
            }
            WriteRefused::Refused(e) => write!(f, "refused ({e:?})"),
            WriteRefused::SaveFailed => f.write_str("the save did not reach the settings file"),
        }
    }
}

impl std::error::Error for WriteRefused {}

/// Writes `values` from `start` as a Modbus FC 06/16 request would, through the
/// core's write path; a new server address (1090) applies once it returns `Ok`.
pub async fn write(shared: &Shared, start: u16, values: &[u16]) -> Result<(), WriteRefused> {
    // (One write at a time, through its save: see `Shared::writes`.)
    let _turn = shared.writes.lock().await;
    let outcome: WriteOutcome = {
        let mut core = shared.core();
        let outcome = core
            .map
            .write(start, values)
            .map_err(WriteRefused::Refused)?;
        core.on_write(&outcome);
        outcome
    };
    match write_path::apply(&mut WritePath(shared), &outcome).await {
        Ok(new_unit) => {
            shared.switch_unit(new_unit);
            Ok(())
        }
        Err(SaveFailed) => Err(WriteRefused::SaveFailed),
    }
}

/// The daemon's side of the core's write path ([`write_path`]): the shared device, the
/// control task's wake, and the TOML file's `[settings]` as storage (written atomically,
/// off the runtime thread; a failure is logged and answered 04). Shared by the Modbus
/// TCP and RTU servers and [`write`].
pub struct WritePath<'a>(pub &'a Shared);

impl Host for WritePath<'_> {
    fn with_device<R>(&mut self, f: impl FnOnce(&mut Device) -> R) -> R {
        f(&mut self.0.core())
    }

    fn wake_control(&mut self) {
        self.0.wake_control.notify_one();
    }

    async fn persist(&mut self, config: &Config) -> bool {
        let path = self.0.settings_path.clone();
        let config = *config;
        let saved = tokio::task::spawn_blocking(move || file::save_settings(&path, &config))
            .await
            .map_err(|e| anyhow::anyhow!("save task: {e}"))
            .and_then(|r| r);
        match saved {
            Ok(()) => {
                tracing::info!("settings saved to {}", self.0.settings_path.display());
                true
            }
            Err(e) => {
                tracing::error!("saving the settings failed (staged values kept): {e:#}");
                false
            }
        }
    }
}
