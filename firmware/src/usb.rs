//! USB: one composite device, "P1 Load Balancer", with two CDC-ACM functions —
//! interface 0 the raw P1 passthrough (`…-if00`), interface 2 the Modbus RTU server
//! of the register map and the gateway to the RS485 bus (`…-if02`). The serial number
//! is the flash's unique id, so those names are stable per board.

use embassy_futures::select::{Either, select};
use embassy_rp::peripherals::USB;
use embassy_rp::usb::Driver;
use embassy_time::{Duration, Instant, Timer, with_deadline};
use embassy_usb::UsbDevice;
use embassy_usb::class::cdc_acm::CdcAcmClass;
use p1lb_core::bus_master::{FORWARD_WAIT, forward_result_wait};
use p1lb_core::config::Config;
use p1lb_core::config_store::ConfigStore;
use p1lb_core::device::Device;
use p1lb_core::modbus::{
    BROADCAST, Direction, GATEWAY_NO_RESPONSE, LengthFramer, LineConfig, MAX_ADU, Response,
};
use p1lb_core::time::Duration as CoreDuration;
use p1lb_core::write_path::{self, Host, Served};

use crate::shared::{Shared, core_now, frame_buf};
use crate::store::{self, StoreFlash};

/// The USB driver.
pub type UsbDriver = Driver<'static, USB>;
/// One CDC-ACM function.
pub type Cdc = CdcAcmClass<'static, UsbDriver>;

/// Full-speed bulk packet size.
pub const PACKET: usize = 64;
/// Held bytes of an incomplete Modbus request are dropped after this long idle.
pub const REQUEST_IDLE: CoreDuration = CoreDuration::from_millis(100);
/// The longest a forwarded request waits for the bus: the core's gateway policy
/// ([`FORWARD_WAIT`], the daemon's too). Beyond it the request is taken back if it is
/// still queued (never sent) or, if it is on the bus, waited for to its exchange's end
/// (see [`Server::forward`]).
pub const GATEWAY_WAIT: Duration = Duration::from_micros(FORWARD_WAIT.total_micros());

/// Runs the USB device forever.
#[embassy_executor::task]
pub async fn device(mut usb: UsbDevice<'static, UsbDriver>) {
    usb.run().await
}

/// USB port 0: the P1 bytes, as they came. Bytes that arrive while no host reads
/// are dropped by the P1 task (the queue is full), never waited for.
#[embassy_executor::task]
pub async fn passthrough(shared: &'static Shared, class: Cdc) {
    let (mut tx, _rx) = class.split();
    let mut buf = [0u8; PACKET];
    loop {
        tx.wait_connection().await;
        loop {
            let n = shared.passthrough.read(&mut buf).await;
            // A full packet with nothing behind it would wait in the host's buffer
            // until the next telegram: end the transfer with a zero-length packet.
            let end = n == PACKET && shared.passthrough.is_empty();
            if tx.write_packet(&buf[..n]).await.is_err()
                || (end && tx.write_packet(&[]).await.is_err())
            {
                break;
            }
        }
    }
}

/// USB port 1: Modbus RTU requests, framed by their length, served from the map (a
/// save goes to flash) or forwarded to the RS485 bus.
#[embassy_executor::task]
pub async fn modbus(shared: &'static Shared, class: Cdc, store: Option<ConfigStore<StoreFlash>>) {
    let (mut tx, mut rx) = class.split();
    let mut server = Server {
        shared,
        store,
        out: [0; MAX_ADU],
        number: 0,
    };
    let mut framer: LengthFramer = LengthFramer::new(Direction::Requests, REQUEST_IDLE);
    let (mut packet, mut len, mut at) = ([0u8; PACKET], 0, 0);
    loop {
        // The bytes of the last packet not yet taken by the framer, else a new packet
        // or the framer's idle deadline.
        let frame = if at < len {
            let (used, frame) = framer.feed(core_now(), &packet[at..len]);
            at += used;
            frame.map(frame_buf)
        } else {
            let idle = framer.deadline().map_or(Instant::MAX, crate::shared::at);
            match select(rx.read_packet(&mut packet), Timer::at(idle)).await {
                Either::First(Ok(n)) => (len, at) = (n, 0),
                Either::First(Err(_)) => {
                    rx.wait_connection().await;
                    framer.clear();
                }
                Either::Second(()) => {}
            }
            framer.poll(core_now()).map(frame_buf)
        };
        let Some(frame) = frame else { continue };
        let n = server.handle(&frame).await;
        // A full last packet needs a zero-length one to end the transfer. A host gone
        // mid-reply: the next read waits for it to come back.
        for chunk in server.out[..n]
            .chunks(PACKET)
            .chain((n % PACKET == 0 && n > 0).then_some(&[][..]))
        {
            if tx.write_packet(chunk).await.is_err() {
                break;
            }
        }
    }
}

/// The firmware's side of the core's write path: the shared device, the control
/// task's signal and the flash store (a save waits for a quiet moment, [`store::save`]).
struct WritePath<'a> {
    shared: &'static Shared,
    store: &'a mut Option<ConfigStore<StoreFlash>>,
}

impl Host for WritePath<'_> {
    fn with_device<R>(&mut self, f: impl FnOnce(&mut Device) -> R) -> R {
        self.shared.device(f)
    }

    fn wake_control(&mut self) {
        self.shared.wake_control.signal(());
    }

    async fn persist(&mut self, config: &Config) -> bool {
        store::save(self.shared, self.store, config).await
    }
}

/// The Modbus server of the USB port.
struct Server {
    shared: &'static Shared,
    store: Option<ConfigStore<StoreFlash>>,
    out: [u8; MAX_ADU],
    /// The number of the last forwarded request.
    number: u32,
}

impl Server {
    /// One request: the reply's length in `out` (0: no reply).
    async fn handle(&mut self, frame: &[u8]) -> usize {
        let unit = self.shared.saved().server_address();
        let mut host = WritePath {
            shared: self.shared,
            store: &mut self.store,
        };
        // The server address comes from the saved settings: a new one applies from the
        // next request, after this reply.
        match write_path::serve(&mut host, unit, frame, &mut self.out).await {
            Served::Reply { len, .. } => len,
            Served::Broadcast { .. } => {
                // Also for the devices on the bus; nobody answers a broadcast.
                self.forward(frame).await;
                0
            }
            Served::NotForUs { .. } => self.forward(frame).await,
            Served::Ignored(_) => 0,
        }
    }

    /// Sends `frame` on the RS485 bus through the gateway; the reply's length in `out`.
    /// Exception 0x0B when the target stayed silent through all its attempts, or when
    /// the bus did not come free within [`GATEWAY_WAIT`] (e.g. while the RS485 line is
    /// being set up again after a save, or behind a long exchange on a slow line).
    ///
    /// Never is a request sent, nor retried, after its host got 0x0B: the RS485 task
    /// takes a request from the queue only when it goes on the bus at once (the bus
    /// free, the driver not first), and sends it in the same step. So when the wait runs out, the request is either still queued — taken
    /// back here, it never goes out — or on the bus, and then its host is answered when
    /// its exchange ends (its last attempt's timeout: on a slow line past
    /// [`GATEWAY_WAIT`]; at 1200 baud up to 8.9 s more — the longest exchange, 7.9 s,
    /// and a 1 s margin).
    async fn forward(&mut self, frame: &[u8]) -> usize {
        self.number = self.number.wrapping_add(1);
        let number = self.number;
        let shared = self.shared;
        let mut until = Instant::now() + GATEWAY_WAIT;
        let request = shared.gateway_request.send((number, frame_buf(frame)));
        let mut on_bus = false;
        let reply = if with_deadline(until, request).await.is_err() {
            // Not queued in time: never sent. (The queue is always empty here: see below.)
            None
        } else {
            loop {
                match with_deadline(until, shared.gateway_reply.receive()).await {
                    Ok((n, reply)) if n == number => break Some(reply),
                    // A reply that came too late for an earlier request is not this one's.
                    Ok(_) => {}
                    // Its exchange ran past the longest one: no result will come.
                    Err(_) if on_bus => break None,
                    // Still queued: taken back, it never goes out. Only this task queues,
                    // and it takes back every request it stops waiting for: what is
                    // queued is this one.
                    Err(_) if shared.gateway_request.try_receive().is_ok() => break None,
                    // On the bus: its exchange's result comes.
                    Err(_) => {
                        on_bus = true;
                        until = Instant::now() + exchange_limit(&shared.saved());
                    }
                }
            }
        };
        match reply {
            Some(reply) => {
                let n = reply.len().min(MAX_ADU);
                self.out[..n].copy_from_slice(&reply[..n]);
                n
            }
            None if frame.first() == Some(&BROADCAST) => 0,
            None => {
                let unit = frame.first().copied().unwrap_or(0);
                let function = frame.get(1).copied().unwrap_or(0);
                let e = Response::Exception {
                    function,
                    code: GATEWAY_NO_RESPONSE,
                };
                e.emit_frame(unit, &mut self.out).unwrap_or(0)
            }
        }
    }
}

/// The longest a forwarded exchange takes on the line of `config`, with a margin.
fn exchange_limit(config: &Config) -> Duration {
    Duration::from_micros(forward_result_wait(LineConfig::rs485(config)).total_micros())
}
