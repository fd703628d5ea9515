//! The register write path every product runs once the map took a write (Modbus RTU
//! on the RS485 bus or USB, Modbus TCP): a new override cap (1000) wakes the control
//! task at once; a save (1091/1092 = 1) is persisted by the product's storage (the
//! daemon's TOML file, the firmware's flash), then committed to the map and the
//! balancer; a save that did not reach storage is answered with exception 04 and keeps
//! the staged values; a new server address applies only after the reply went out.
//!
//! The core decides, the product moves: it implements [`Host`] (its lock around the
//! [`Device`], its control task's wake, its storage) and calls [`apply`] or [`serve`].
//! Never panics.

use core::future::Future;

use crate::config::Config;
use crate::device::Device;
use crate::modbus::{Exception, MAX_ADU, exception_reply};
use crate::registers::WriteOutcome;
use crate::server::{Ignored, ServerAction};

/// What the write path needs of a product.
pub trait Host {
    /// Runs `f` on the device under the product's lock (held briefly, never across an
    /// await).
    fn with_device<R>(&mut self, f: impl FnOnce(&mut Device) -> R) -> R;
    /// The override cap changed: the control task ticks now, not at its next tick.
    fn wake_control(&mut self);
    /// Persists `config`; `false` when it did not reach storage.
    fn persist(&mut self, config: &Config) -> impl Future<Output = bool>;
}

/// A save that did not reach storage: answer exception 04 (the staged values stay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveFailed;

/// Acts on a write's `outcome` (the map took the write; the device applied its cap):
/// wakes the control task for a new cap, persists and commits a save. `Ok` with the
/// new server address to switch to after the reply, if the save changed it.
pub async fn apply<H: Host>(
    host: &mut H,
    outcome: &WriteOutcome,
) -> Result<Option<u8>, SaveFailed> {
    if outcome.cap_ma.is_some() {
        host.wake_control();
    }
    let Some(save) = outcome.save else {
        return Ok(None);
    };
    if !host.persist(&save.config).await {
        return Err(SaveFailed);
    }
    host.with_device(|d| d.commit_save(save.config));
    Ok(save.new_server_address)
}

/// What became of a request frame served through the write path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Send `out[..len]` (exception 04 when a save failed), then switch to `new_unit`
    /// if there is one.
    Reply {
        /// The reply frame's length in `out`.
        len: usize,
        /// The server address to answer at from now on.
        new_unit: Option<u8>,
    },
    /// A broadcast: nothing to send; switch to `new_unit` if there is one.
    Broadcast {
        /// The server address to answer at from now on.
        new_unit: Option<u8>,
        /// The map refused it (a read, a bad value): nothing was done.
        refused: Option<Exception>,
    },
    /// A good frame for another unit (a gateway forwards it; on a bus it is another
    /// device's exchange).
    NotForUs {
        /// The address the frame is for.
        unit: u8,
    },
    /// Not a request: no reply, nothing done.
    Ignored(Ignored),
}

/// Serves one Modbus RTU request `frame` as server `unit` ([`Device::serve`]) and runs
/// the write path on what it wrote.
pub async fn serve<H: Host>(
    host: &mut H,
    unit: u8,
    frame: &[u8],
    out: &mut [u8; MAX_ADU],
) -> Served {
    let action = host.with_device(|d| d.serve(unit, frame, out));
    match action {
        ServerAction::Reply { len, outcome, .. } => match apply(host, &outcome).await {
            Ok(new_unit) => Served::Reply { len, new_unit },
            Err(SaveFailed) => {
                let function = frame.get(1).copied().unwrap_or(0);
                let len = exception_reply(unit, function, Exception::ServerDeviceFailure, out);
                Served::Reply {
                    len,
                    new_unit: None,
                }
            }
        },
        ServerAction::Broadcast(Ok(outcome)) => Served::Broadcast {
            new_unit: apply(host, &outcome).await.ok().flatten(),
            refused: None,
        },
        ServerAction::Broadcast(Err(e)) => Served::Broadcast {
            new_unit: None,
            refused: Some(e),
        },
        ServerAction::NotForUs { unit } => Served::NotForUs { unit },
        ServerAction::Ignored(why) => Served::Ignored(why),
    }
}
