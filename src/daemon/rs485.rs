//! The RS485 port (the HAT): Modbus RTU framed with the core's own codec
//! ([`SilenceFramer`], [`Device::serve`], [`BusMaster`]) — not tokio-modbus's RTU server, which
//! stops serving on one undecodable request or a burst of noise (dependencies.md).
//! Line settings from the saved registers: baud 1031 × 100, parity 1032 (0 none,
//! 1 odd, 2 even), 8 data bits, 1 stop bit. A port that cannot be opened, or fails,
//! is logged and reopened with backoff (1 s doubling to 30 s); the rest of the daemon
//! keeps running.
//!
//! Two roles (`[rs485] role`, `--rs485-role`):
//! - [`Rs485Role::Server`]: answers the register map at the server address (1090)
//!   through [`Device::serve`], and — when setting 1036 ≠ 0 — FC 03 at that unit from an
//!   [`EmulatedMeter`] fed from every valid telegram (`MeterSnapshot::from_reading`)
//!   and invalidated while the balancer is in fallback (it stays silent then). Bad
//!   input is counted and ignored, never fatal. A save (1091/1092 = 1) goes through
//!   [`super::modbus_tcp::persist_save`], as on Modbus TCP; a failed save answers 04.
//! - [`Rs485Role::Master`]: the core's [`BusMaster`] (the same as the firmware's)
//!   drives the Terra AC chargers (1037 of them; charger k at address 1030 + k − 1):
//!   writes 0x4106/0x4109 at start, each charger's value from the balancer to its
//!   0x4100, polls each one's status block into its registers (1130 + 6(k − 1) …,
//!   charger 1's also 1110–1114) and 1003 bits 2 and 3 ([`Device::on_charger`], which
//!   also feeds the balancer the chargers' currents).
//!   It is also the Modbus TCP gateway ([`super::gateway`]): forwarded requests wait
//!   in the core's gateway and go on the bus between the driver's exchanges, never
//!   interleaved; the reply (or exception 0x0B on silence) goes back to the TCP side.
//!
//! With `[rs485] kernel_rs485 = true` the port is switched to the kernel's RS485 mode
//! after opening ([`set_kernel_rs485`]: TIOCSRS485, RTS on while sending, for HATs that
//! need RTS as the driver enable); when the driver refuses, a warning and the port is
//! used as it is.
//!
//! [`Device::on_charger`]: p1lb_core::device::Device::on_charger
//! [`Device::serve`]: p1lb_core::device::Device::serve

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use p1lb_core::balancer::State;
use p1lb_core::bus_master::{BusMaster, MasterEvent, SavedChange};
use p1lb_core::config::{Config, MAX_CHARGERS};
use p1lb_core::meter_emulation::EmulatedMeter;
use p1lb_core::modbus::{
    Frame, LineConfig, MAX_ADU, MAX_READ_QUANTITY, Request, Response, Words, exception_reply,
};
use p1lb_core::registers::Exception;
use p1lb_core::time::Duration as CoreDuration;
use p1lb_core::write_path::{self, Served};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, DuplexStream};
use tokio::sync::oneshot;
use tokio_serial::SerialStream;

use crate::rtu_io::{Clock, FrameReceiver, write_bounded};

use super::file::Rs485Role;
use super::gateway::{Forward, GatewayRx, Next, next_live, refuse_for};
use super::shared::{PortState, Shared};
use super::stats;
use super::writes::WritePath;
use crate::rtu_io::{self, ServeOptions};
use p1lb_sim::charger::TerraSim;

/// How late bytes can reach the daemon after they crossed the wire: a USB-serial
/// adapter hands them over in chunks (FTDI's latency timer: 16 ms), the kernel in
/// buffers. In the master role the reply's end is taken this much later than the
/// 3.5-character silence, so a reply is never cut between two chunks; the next frame
/// on the bus is ours, so this costs only latency.
pub const READ_LATENCY: CoreDuration = CoreDuration::from_millis(20);

/// The serial line of the saved settings 1031 (baud / 100) and 1032 (parity).
pub fn line_config(config: &Config) -> LineConfig {
    LineConfig::rs485(config)
}

/// Linux's `struct serial_rs485` (include/uapi/linux/serial.h): 32 bytes.
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Debug, Default)]
struct SerialRs485 {
    flags: u32,
    delay_rts_before_send: u32,
    delay_rts_after_send: u32,
    padding: [u32; 5],
}

/// `SER_RS485_ENABLED`.
#[cfg(target_os = "linux")]
const SER_RS485_ENABLED: u32 = 1 << 0;
/// `SER_RS485_RTS_ON_SEND`: RTS high while sending (the transceiver's driver enable).
#[cfg(target_os = "linux")]
const SER_RS485_RTS_ON_SEND: u32 = 1 << 1;

/// Switches `port` to the kernel's RS485 mode (TIOCSRS485 with `SER_RS485_ENABLED |
/// SER_RS485_RTS_ON_SEND`, no extra delays). An error when the driver refuses (a pty,
/// a UART without RS485 support) or not on Linux.
pub fn set_kernel_rs485(port: &SerialStream) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let conf = SerialRs485 {
            flags: SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND,
            ..SerialRs485::default()
        };
        // SAFETY: the fd is the open port's; TIOCSRS485 reads one `struct serial_rs485`
        // (matching layout above) from the pointer, which is valid for the call.
        let r = unsafe {
            libc::ioctl(
                port.as_raw_fd(),
                libc::TIOCSRS485,
                std::ptr::from_ref(&conf),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = port;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "kernel RS485 mode is Linux only",
        ))
    }
}

/// Runs forever on the serial device `path`: opens it (with backoff) and serves its
/// role. `gateway`: the Modbus TCP requests to forward (master role). `kernel_rs485`:
/// switch the port to the kernel's RS485 mode after opening (a warning when refused).
pub async fn run(
    shared: Arc<Shared>,
    path: String,
    role: Rs485Role,
    kernel_rs485: bool,
    gateway: Option<GatewayRx>,
) {
    let name = path.clone();
    let open = move |line: LineConfig| -> io::Result<SerialStream> {
        let port = rtu_io::open_serial(&path, line).map_err(io::Error::from)?;
        if kernel_rs485 {
            match set_kernel_rs485(&port) {
                Ok(()) => tracing::info!("RS485: {path} in kernel RS485 mode (RTS on send)"),
                Err(e) => tracing::warn!(
                    "RS485: kernel RS485 mode refused on {path}: {e}; using the port as it is"
                ),
            }
        }
        Ok(port)
    };
    run_on(shared, &name, open, role, gateway).await
}

/// The port name that means the in-process bus to the simulated charger.
pub const SIM_PATH: &str = "sim";

/// The simulated charger's turnaround on the in-process bus (a Terra AC answers in
/// tens of milliseconds).
pub const SIM_TURNAROUND: Duration = Duration::from_millis(20);

/// Runs forever in the master role on an in-process bus to `charger` (a simulated
/// Terra AC at the configured address 1030), which answers on the other end of the
/// bus from a task of its own; the Modbus TCP gateway reaches it as it would a real
/// one. Each opening of the port is a new bus (a save of 1031/1032 reopens it).
pub async fn run_simulated(
    shared: Arc<Shared>,
    charger: Arc<Mutex<TerraSim>>,
    gateway: Option<GatewayRx>,
) {
    run_simulated_chargers(shared, vec![charger], gateway).await;
}

/// [`run_simulated`] with several simulated chargers on the one in-process bus:
/// `chargers[k]` answers at charger k's address (1030 + k, 0-based), as saved when the
/// bus opens. Configured chargers beyond them stay silent (flagged as not answering).
pub async fn run_simulated_chargers(
    shared: Arc<Shared>,
    chargers: Vec<Arc<Mutex<TerraSim>>>,
    gateway: Option<GatewayRx>,
) {
    let config_of = shared.clone();
    let open = move |line: LineConfig| -> io::Result<DuplexStream> {
        // The chargers answer at the addresses saved when the bus opens.
        let saved = *config_of.core().map.saved();
        let units: Vec<(u8, Arc<Mutex<TerraSim>>)> = chargers
            .iter()
            .enumerate()
            .map(|(k, c)| (saved.address_of(k), c.clone()))
            .collect();
        let (ours, theirs) = tokio::io::duplex(MAX_ADU * 4);
        let options = ServeOptions {
            line,
            turnaround: SIM_TURNAROUND,
            chunk_gap: Duration::ZERO,
        };
        // Ends when our end is dropped (the port is reopened or the task stops).
        tokio::spawn(async move {
            // Every charger hears the frame; the one at its address answers.
            let answer = |frame: &[u8], out: &mut [u8; MAX_ADU]| {
                units.iter().find_map(|(address, charger)| {
                    let mut log = None;
                    let len = charger
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .answer(*address, frame, out, &mut log);
                    if let Some(w) = log {
                        tracing::debug!("simulated charger at {address}: {w}");
                    }
                    len
                })
            };
            let _ = rtu_io::serve(theirs, options, answer).await;
        });
        Ok(ours)
    };
    run_on(
        shared,
        "the simulated charger's bus",
        open,
        Rs485Role::Master,
        gateway,
    )
    .await
}

/// Runs forever on the ports `open` gives (any byte stream: a serial device, or one end
/// of the in-process bus to the simulated charger): opens one with the saved line
/// settings, serves `role` on it until it fails or a save changes the line, and opens
/// again (with backoff after a failure: 1 s doubling to 30 s). `name` names the port in
/// the log.
pub async fn run_on<P, F>(
    shared: Arc<Shared>,
    name: &str,
    mut open: F,
    role: Rs485Role,
    mut gateway: Option<GatewayRx>,
) where
    P: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(LineConfig) -> io::Result<P>,
{
    let mut backoff = Duration::from_secs(1);
    let mut failing = false;
    loop {
        shared.set_rs485(PortState::Closed);
        let config = *shared.core().map.saved();
        let line = line_config(&config);
        let port = match open(line) {
            Ok(p) => p,
            Err(e) => {
                if !failing {
                    tracing::error!(
                        "RS485: cannot open {name}: {e}; retrying with backoff (the rest runs on)"
                    );
                    failing = true;
                }
                refuse_for(gateway.as_mut(), backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        tracing::info!(
            "RS485: {name} open at {} baud, parity {:?}, as {}",
            line.baud,
            line.parity,
            role.name()
        );
        failing = false;
        backoff = Duration::from_secs(1);
        shared.set_rs485(PortState::Open);
        shared
            .stats
            .update_rs485(|s| s.opened = s.opened.saturating_add(1));
        let result = match role {
            Rs485Role::Server => serve_port(&shared, port, line).await,
            Rs485Role::Master => drive_port(&shared, port, line, gateway.as_mut()).await,
        };
        shared.set_rs485(PortState::Closed);
        if let Err(e) = result {
            tracing::error!("RS485: {name} failed: {e}; reopening");
            refuse_for(gateway.as_mut(), backoff).await;
        }
    }
}

/// Counters of the server role, logged at debug level.
#[derive(Debug, Default, Clone, Copy)]
struct ServerCounts {
    ignored: u32,
    not_for_us: u32,
}

/// The emulated meter and what it was last fed from.
#[derive(Debug, Default)]
struct Meter {
    meter: EmulatedMeter,
    seen_valid: Option<u32>,
}

impl Meter {
    /// Brings the meter up to date with the shared state: the latest valid telegram's
    /// measurements, or silence while the balancer is in fallback.
    fn refresh(&mut self, shared: &Shared) {
        let core = shared.core();
        if core.balancer.decision().state == State::Fallback {
            self.meter.invalidate();
            self.seen_valid = None;
            return;
        }
        let status = core.map.status();
        if status.telegrams_valid == 0 || self.seen_valid == Some(status.telegrams_valid) {
            return;
        }
        self.seen_valid = Some(status.telegrams_valid);
        if let Some(snapshot) = core.last_reading {
            self.meter.update(snapshot);
        }
    }

    /// The reply to `frame` (for the meter's unit) in `out`, or `None` for silence.
    fn answer(&self, unit: u8, frame: &[u8], out: &mut [u8; MAX_ADU]) -> Option<usize> {
        // No fresh data: silent, whatever the request.
        self.meter.snapshot()?;
        let frame = Frame::new_checked(frame).ok()?;
        let function = frame.function();
        let request = match Request::parse(frame.pdu()) {
            Ok(r) => r,
            Err(e) => return Some(exception_reply(unit, function, e.exception(), out)),
        };
        match request {
            Request::ReadHolding { start, quantity } => {
                let mut regs = [0u16; MAX_READ_QUANTITY as usize];
                let regs = regs.get_mut(..usize::from(quantity))?;
                match self.meter.read(start, regs)? {
                    Ok(()) => Response::ReadHolding(Words::Native(regs))
                        .emit_frame(unit, out)
                        .ok(),
                    Err(e) => Some(exception_reply(unit, function, e, out)),
                }
            }
            _ => Some(exception_reply(
                unit,
                function,
                Exception::IllegalFunction,
                out,
            )),
        }
    }
}

/// The server role on an open port, until it fails.
async fn serve_port<P: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    mut port: P,
    line: LineConfig,
) -> io::Result<()> {
    let mut receiver = FrameReceiver::new(line);
    let mut meter = Meter::default();
    let mut counts = ServerCounts::default();
    let mut frames = Vec::new();
    loop {
        // A quiet bus: look at the saved line settings once a second.
        if !receiver
            .receive(&mut port, Duration::from_secs(1), &mut frames)
            .await?
        {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "port closed"));
        }
        for frame in frames.drain(..) {
            serve_frame(shared, &mut port, &mut meter, &mut counts, &frame).await?;
        }
        // A save (from this bus or Modbus TCP) changed the line (1031/1032): reopen
        // with it once the reply is out.
        if line_config(shared.core().map.saved()) != line {
            tracing::info!("RS485: line settings changed; reopening the port");
            return Ok(());
        }
    }
}

async fn serve_frame<P: AsyncWrite + Unpin>(
    shared: &Shared,
    port: &mut P,
    meter: &mut Meter,
    counts: &mut ServerCounts,
    frame: &[u8],
) -> io::Result<()> {
    let unit = shared.unit();
    let mut out = [0u8; MAX_ADU];
    // (One write at a time, through its save: see `Shared::writes`.)
    let served = {
        let _turn = shared.writes.lock().await;
        write_path::serve(&mut WritePath(shared), unit, frame, &mut out).await
    };
    match served {
        Served::Reply { len, new_unit } => {
            write_bounded(port, out.get(..len).unwrap_or_default()).await?;
            shared.switch_unit(new_unit);
            shared
                .stats
                .update_rs485(|s| s.served = s.served.saturating_add(1));
        }
        Served::Broadcast { new_unit, refused } => {
            shared.switch_unit(new_unit);
            if refused.is_some() {
                counts.ignored = counts.ignored.saturating_add(1);
                shared
                    .stats
                    .update_rs485(|s| s.ignored = s.ignored.saturating_add(1));
            } else {
                shared
                    .stats
                    .update_rs485(|s| s.served = s.served.saturating_add(1));
            }
        }
        Served::Ignored(_) => {
            counts.ignored = counts.ignored.saturating_add(1);
            shared
                .stats
                .update_rs485(|s| s.ignored = s.ignored.saturating_add(1));
            tracing::debug!(ignored = counts.ignored, "RS485: frame ignored");
        }
        Served::NotForUs { unit: to } => {
            let meter_unit = shared.core().map.saved().meter_emulation_unit();
            if meter_unit == Some(to) {
                meter.refresh(shared);
                if let Some(len) = meter.answer(to, frame, &mut out) {
                    write_bounded(port, &out[..len]).await?;
                }
            } else {
                counts.not_for_us = counts.not_for_us.saturating_add(1);
                shared
                    .stats
                    .update_rs485(|s| s.not_for_us = s.not_for_us.saturating_add(1));
            }
        }
    }
    Ok(())
}

/// The master role on an open port, until it fails: the core's [`BusMaster`] moved
/// by the port's bytes and the clock.
async fn drive_port<P: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    mut port: P,
    line: LineConfig,
    mut requests: Option<&mut GatewayRx>,
) -> io::Result<()> {
    // The TCP side waiting for the forwarded request's reply.
    let mut waiting: Option<oneshot::Sender<Vec<u8>>> = None;
    // A request received while waiting, not yet taken for the bus.
    let mut held: Option<Forward> = None;
    let clock = Clock::new();
    let config = *shared.core().map.saved();
    let mut master = BusMaster::new(&config, line, clock.now());
    master.widen_silence(READ_LATENCY);
    // Each charger's "not answering", as last logged.
    let mut silent = [false; MAX_CHARGERS];
    let mut buf = [0u8; 512];
    let mut out = [0u8; MAX_ADU];
    // For /metrics: when the exchange on the bus started (its first byte), and the
    // client counters of the port's earlier openings.
    let mut started: Option<std::time::Instant> = None;
    let client_base = shared.stats.rs485().client;
    loop {
        let saved = *shared.core().map.saved();
        if master.follow_saved(&saved) == SavedChange::Reopen {
            // A save changed the line (1031/1032): reopen with it. The exchange on the
            // bus is dropped (its client gets 0x0B at once, nothing goes out late).
            tracing::info!("RS485: line settings changed; reopening the port");
            return Ok(());
        }
        // A forwarded request leaves the queue only when it goes on the bus at once (the
        // bus free, the driver not first): while it waits its client can still give up
        // on it, and then it is never sent.
        let now = clock.now();
        let sent_ma = sent_values(shared);
        if master.forward_goes_next(now, &sent_ma) {
            // The one the select received first (still abandonable), else the queue's.
            let mut next = held.take().filter(Forward::take);
            if next.is_none() {
                if let Some(rx) = requests.as_deref_mut() {
                    match next_live(rx) {
                        Next::Live(f) => next = Some(f),
                        Next::Empty => {}
                        Next::Closed => requests = None,
                    }
                }
            }
            if let Some(f) = next {
                master.submit(&f.frame);
                waiting = Some(f.reply);
            }
        }
        if let Some(tx) = master.poll_transmit(now, &sent_ma) {
            let tx = tx.to_vec();
            if started.is_none() && master.exchange_on_bus() {
                started = Some(std::time::Instant::now());
            }
            write_bounded(&mut port, &tx).await?;
        }
        let event = master.poll(clock.now(), &mut out);
        if event.is_some() && !master.exchange_on_bus() {
            // The exchange's result (a gateway answer given without the bus while one
            // is on it is not).
            if let Some(t0) = started.take() {
                let fresh = matches!(event, Some(MasterEvent::Charger { fresh: true, .. }));
                let client = stats::add_client(client_base, master.client_stats());
                shared.stats.update_rs485(|s| {
                    s.exchanges = s.exchanges.saturating_add(1);
                    s.fresh_reads = s.fresh_reads.saturating_add(u64::from(fresh));
                    s.latency.observe(t0.elapsed());
                    s.client = client;
                });
            }
        }
        match event {
            Some(MasterEvent::Charger { k, fresh }) => {
                // `None`: the charger of an exchange that a save took off the bus.
                if let (Some(driver), Some(address)) = (master.driver(k), master.address_of(k)) {
                    shared.core().on_charger(shared.now(), k, driver, fresh);
                    let now_silent = driver.not_answering();
                    if let Some(was) = silent.get_mut(k).filter(|was| **was != now_silent) {
                        *was = now_silent;
                        let number = k + 1;
                        if now_silent {
                            tracing::warn!(
                                "RS485: charger {number} at address {address} is not answering"
                            );
                        } else {
                            tracing::info!(
                                "RS485: charger {number} at address {address} answers again"
                            );
                        }
                    }
                }
                continue;
            }
            Some(MasterEvent::GatewayReply(n)) => {
                if let Some(tx) = waiting.take() {
                    let _ = tx.send(out[..n].to_vec());
                }
                continue;
            }
            Some(MasterEvent::GatewayDone) => {
                // Dropping the sender: the TCP side answers 0x0B.
                waiting = None;
                continue;
            }
            None => {}
        }
        // Wake on bytes, at the master's deadline (at least once a second), on a new
        // value for the charger or on a request to forward.
        let now = clock.now();
        let wake = master
            .poll_timeout(now)
            .min(now + CoreDuration::from_secs(1));
        let bus_free = master.forward_goes_next(now, &sent_values(shared));
        let receive = requests.is_some() && held.is_none() && bus_free;
        tokio::select! {
            r = port.read(&mut buf) => {
                let n = r?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "port closed"));
                }
                master.on_bytes(clock.now(), &buf[..n]);
            }
            () = tokio::time::sleep_until(clock.instant(wake)) => {}
            () = shared.decision.notified() => {}
            f = recv(requests.as_deref_mut()), if receive => {
                // Held, not taken: it goes on the bus at the top of the loop if it still
                // goes next then (time has passed: the driver may be due first).
                match f {
                    Some(f) => held = Some(f),
                    None => requests = None,
                }
            }
        }
    }
}

/// The balancer's value to send to each charger (charger k's at k, 0-based).
fn sent_values(shared: &Shared) -> [u32; MAX_CHARGERS] {
    let core = shared.core();
    std::array::from_fn(|k| core.balancer.sent_of_ma(k))
}

/// The next forwarded request (`None` when the channel closed or there is none).
async fn recv(rx: Option<&mut GatewayRx>) -> Option<Forward> {
    match rx {
        Some(rx) => rx.recv().await,
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use p1lb_core::meter_emulation::MeterSnapshot;
    use p1lb_core::modbus::Parity;
    use tokio::io::AsyncWriteExt;
    use tokio_modbus::Response as TcpResponse;

    use crate::daemon::gateway::{self, response_of};

    fn lock(c: &Mutex<TerraSim>) -> std::sync::MutexGuard<'_, TerraSim> {
        c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The master loop on the in-process bus, in paused time: it configures the
    /// simulated charger, writes the balancer's value, reads the charger's currents
    /// into 1110–1112 and forwards a gateway request to it.
    #[tokio::test(start_paused = true)]
    async fn the_master_drives_the_simulated_charger_on_an_in_process_bus() {
        // A fallback limit of 10 A: the value without a meter.
        let mut config = Config::default();
        config.set_fallback_ma(10_000).expect("a valid fallback");
        let shared = Arc::new(Shared::new(config, "unused".into()));
        let charger = Arc::new(Mutex::new(TerraSim::new()));
        lock(&charger).measured_ma = Some([7000, 7100, 7200]);
        let (tx, rx) = gateway::channel();
        let task = tokio::spawn(run_simulated(shared.clone(), charger.clone(), Some(rx)));
        // The control task's part: the balancer ticks (no meter: fallback after 1022).
        for _ in 0..40 {
            let now = shared.now();
            shared.core().tick(now);
            shared.decision.notify_one();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        {
            let c = lock(&charger);
            // Rebooted at 32 A / 256: reconfigured; no meter yet: the fallback, 10 A.
            assert_eq!((c.limit_ma, c.fallback_a), (10_000, 10), "{c:?}");
            assert_ne!(c.timeout_s, 60, "{c:?}");
        }
        assert_eq!(shared.core().map.status().charger_ca, [700, 710, 720]);
        assert_eq!(shared.rs485(), PortState::Open);
        lock(&charger).measured_ma = Some([0; 3]);
        let frame =
            gateway::request_frame(1, &tokio_modbus::Request::ReadHoldingRegisters(0x4000, 2))
                .expect("a request the gateway forwards");
        let (reply_tx, reply_rx) = oneshot::channel();
        let (forward, _claim) = Forward::new(frame, reply_tx);
        tx.send(forward).await.expect("queued");
        let reply = tokio::time::timeout(Duration::from_secs(3), reply_rx)
            .await
            .expect("answered in time")
            .expect("a reply, not 0x0B");
        match response_of(&reply) {
            Ok(TcpResponse::ReadHoldingRegisters(words)) => assert_eq!(words, [0x0122, 0x0001]),
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(shared.core().map.status().charger_ca, [0; 3]);
        task.abort();
    }

    /// Two simulated chargers at addresses 1 and 2 on the in-process bus, in paused
    /// time: both are configured (timeout, half the 10 A fallback each) and written
    /// their value from the balancer, and each one's status reaches its registers.
    /// Then charger 2 goes silent: it is flagged (its bit and 1003 bit 2) while
    /// charger 1 is still polled and written.
    #[tokio::test(start_paused = true)]
    async fn the_master_drives_two_simulated_chargers_and_flags_the_silent_one() {
        use p1lb_core::registers::{ChargerFlags, Flags};
        let mut config = Config::default();
        config.set_fallback_ma(10_000).expect("a valid fallback");
        config.set_charger_count(2).expect("two chargers");
        let shared = Arc::new(Shared::new(config, "unused".into()));
        let chargers: Vec<_> = (0..2)
            .map(|_| Arc::new(Mutex::new(TerraSim::new())))
            .collect();
        lock(&chargers[0]).measured_ma = Some([7000, 7100, 7200]);
        lock(&chargers[1]).measured_ma = Some([8000, 8100, 8200]);
        let task = tokio::spawn(run_simulated_chargers(
            shared.clone(),
            chargers.clone(),
            None,
        ));
        let run = |seconds: u32| {
            let shared = shared.clone();
            async move {
                for _ in 0..seconds {
                    let now = shared.now();
                    shared.core().tick(now);
                    shared.decision.notify_one();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        run(30).await;
        for (k, charger) in chargers.iter().enumerate() {
            let sent = shared.core().balancer.sent_of_ma(k);
            let c = lock(charger);
            // Rebooted at 32 A / 256 / 60 s: reconfigured with 5 A each.
            assert_eq!(
                (c.fallback_a, c.timeout_s),
                (5, 30),
                "charger {}: {c:?}",
                k + 1
            );
            assert_eq!(c.limit_ma, sent, "charger {}: {c:?}", k + 1);
            assert_ne!(c.limit_ma, 32_000, "charger {}: written", k + 1);
            let regs = shared.core().map.status().chargers[k];
            assert_eq!(regs.state, 4, "charger {}: charging", k + 1);
            assert!(!regs.flags.contains(ChargerFlags::NOT_ANSWERING));
        }
        assert_eq!(shared.core().map.status().charger_ca, [700, 710, 720]);
        // Charger 2 cut from the line; charger 1's car draws less, and charger 1
        // forgets its limit.
        lock(&chargers[1]).silent = true;
        {
            let mut c = lock(&chargers[0]);
            c.measured_ma = Some([6000; 3]);
            c.limit_ma = 0;
        }
        run(30).await;
        let status = *shared.core().map.status();
        assert!(
            status.chargers[1]
                .flags
                .contains(ChargerFlags::NOT_ANSWERING)
        );
        assert!(
            !status.chargers[0]
                .flags
                .contains(ChargerFlags::NOT_ANSWERING)
        );
        assert!(shared.core().map.flags().contains(Flags::CHARGER_SILENT));
        assert_eq!(status.charger_ca, [600; 3], "charger 1 still polled");
        let sent = shared.core().balancer.sent_of_ma(0);
        assert_eq!(lock(&chargers[0]).limit_ma, sent, "charger 1 written again");
        assert_eq!(shared.rs485(), PortState::Open);
        task.abort();
    }

    /// The server role on a byte stream of the test's own, in paused time: a request
    /// for the server address is answered; when the stream closes the port is opened
    /// again.
    #[tokio::test(start_paused = true)]
    async fn the_server_role_answers_on_any_byte_stream_and_reopens_a_closed_one() {
        let shared = Arc::new(Shared::new(Config::default(), "unused".into()));
        let (ends_tx, mut ends) = tokio::sync::mpsc::unbounded_channel();
        let open = move |_line: LineConfig| -> io::Result<DuplexStream> {
            let (ours, theirs) = tokio::io::duplex(MAX_ADU);
            let _ = ends_tx.send(theirs);
            Ok(ours)
        };
        let task = tokio::spawn(run_on(
            shared.clone(),
            "test",
            open,
            Rs485Role::Server,
            None,
        ));
        let mut bus = ends.recv().await.expect("opened");
        let mut req = [0u8; MAX_ADU];
        let n = Request::ReadHolding {
            start: 1010,
            quantity: 2,
        }
        .emit_frame(10, &mut req)
        .expect("fits");
        bus.write_all(&req[..n]).await.expect("sent");
        let mut reply = [0u8; 9];
        tokio::time::timeout(Duration::from_secs(1), bus.read_exact(&mut reply))
            .await
            .expect("answered")
            .expect("read");
        let frame = Frame::new_checked(&reply[..]).expect("a valid frame");
        assert_eq!((frame.unit(), frame.function()), (10, 3));
        // 1010 = 16000 mA, 1011 = 3 phases.
        assert_eq!(&reply[2..7], &[4, 0x3E, 0x80, 0, 3]);
        drop(bus);
        let _again = tokio::time::timeout(Duration::from_secs(5), ends.recv())
            .await
            .expect("reopened after the backoff")
            .expect("a new stream");
        task.abort();
    }

    #[test]
    fn line_settings_come_from_1031_and_1032() {
        let mut c = Config::default();
        assert_eq!(line_config(&c), LineConfig::new(9600, Parity::None, 1));
        c.set_rs485_baud(19_200).unwrap();
        c.set_rs485_parity(Parity::Even).unwrap();
        assert_eq!(line_config(&c), LineConfig::new(19_200, Parity::Even, 1));
    }

    #[test]
    fn the_meter_is_silent_without_data_and_answers_with_it() {
        let mut req = [0u8; MAX_ADU];
        let n = Request::ReadHolding {
            start: 0x5B00,
            quantity: 2,
        }
        .emit_frame(1, &mut req)
        .unwrap();
        let mut out = [0u8; MAX_ADU];
        let mut m = Meter::default();
        assert_eq!(m.answer(1, &req[..n], &mut out), None);
        m.meter.update(MeterSnapshot {
            voltage_dv: [2301, 2302, 2303],
            ..MeterSnapshot::default()
        });
        let len = m.answer(1, &req[..n], &mut out).unwrap();
        assert_eq!(&out[..7], &[1, 3, 4, 0, 0, 0x08, 0xFD]);
        assert_eq!(len, 9);
        // A write: exception 01.
        let n = Request::WriteSingle {
            address: 0x5B00,
            value: 1,
        }
        .emit_frame(1, &mut req)
        .unwrap();
        m.answer(1, &req[..n], &mut out).unwrap();
        assert_eq!(&out[1..3], &[0x86, 1]);
    }
}
