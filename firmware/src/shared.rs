//! What the tasks share: the core's [`Device`] behind a critical-section lock (held
//! for a few microseconds, never across an `.await`), and the queues between tasks.

use core::cell::RefCell;
use core::sync::atomic::{AtomicBool, Ordering};

use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::pipe::Pipe;
use embassy_sync::signal::Signal;
use embassy_time::Instant;
use heapless::Vec;
use p1lb_core::config::Config;
use p1lb_core::device::Device;
use p1lb_core::modbus::MAX_ADU;
use p1lb_core::time::Instant as CoreInstant;

type Cs = CriticalSectionRawMutex;

/// One Modbus RTU frame (request or reply).
pub type FrameBuf = Vec<u8, MAX_ADU>;

/// A forwarded request or its reply, with the request's number: a reply that comes
/// after its request timed out is never taken for the next one's.
pub type Tagged = (u32, FrameBuf);

/// `bytes` as a [`FrameBuf`] (cut at [`MAX_ADU`]; a checked frame is never longer).
pub fn frame_buf(bytes: &[u8]) -> FrameBuf {
    FrameBuf::from_slice(bytes.get(..MAX_ADU).unwrap_or(bytes)).unwrap_or_default()
}

/// Bytes from the meter waiting for the USB P1 port. When the host does not read,
/// it fills and further bytes are dropped: the P1 path never waits for USB.
pub const PASSTHROUGH_BYTES: usize = 2048;

/// The firmware's shared state.
pub struct Shared {
    device: Mutex<Cs, RefCell<Device>>,
    /// Raw P1 bytes for USB port 0.
    pub passthrough: Pipe<Cs, PASSTHROUGH_BYTES>,
    /// USB Modbus → RS485: a request for another unit. The RS485 task takes it only
    /// when the bus is free and sends it at once; the USB side takes back one still
    /// here when it stops waiting, so a request is never sent after its host was
    /// answered 0x0B.
    pub gateway_request: Channel<Cs, Tagged, 1>,
    /// RS485 → USB Modbus: the reply to send back (empty: none, a broadcast). The
    /// RS485 task never waits on it: a reply nobody waits for any more is dropped.
    pub gateway_reply: Channel<Cs, Tagged, 1>,
    /// P1 → flash: a telegram just ended (the line is quiet for ~0.9 s).
    pub p1_quiet: Signal<Cs, ()>,
    /// → control: a valid telegram arrived or the cap (1000) changed: the
    /// balancer may tick now.
    pub wake_control: Signal<Cs, ()>,
    /// Control → RS485: the value for the charger changed.
    pub decision: Signal<Cs, ()>,
    /// RS485: an exchange is on the bus (see [`Shared::set_bus_busy`]).
    bus_busy: AtomicBool,
    /// RS485 → flash: the exchange on the bus ended.
    pub bus_idle: Signal<Cs, ()>,
}

impl Shared {
    /// The state at boot with the saved configuration.
    pub fn new(config: Config) -> Self {
        Shared {
            device: Mutex::new(RefCell::new(Device::new(config, core_now()))),
            passthrough: Pipe::new(),
            gateway_request: Channel::new(),
            gateway_reply: Channel::new(),
            p1_quiet: Signal::new(),
            wake_control: Signal::new(),
            decision: Signal::new(),
            bus_busy: AtomicBool::new(false),
            bus_idle: Signal::new(),
        }
    }

    /// RS485: an exchange is on the bus, from the first byte of its request until its
    /// reply is taken or its last attempt timed out (a broadcast: until its last byte
    /// is out). Flash work waits for its end: an erase or program stops the CPU with
    /// interrupts off, which would keep the transceiver's driver on over the reply, or
    /// overrun the UART's 32-byte RX FIFO, or split a reply at the silence framer.
    pub fn set_bus_busy(&self, busy: bool) {
        self.bus_busy.store(busy, Ordering::Relaxed);
        if !busy {
            self.bus_idle.signal(());
        }
    }

    /// Whether an exchange is on the RS485 bus ([`Shared::set_bus_busy`]).
    pub fn bus_busy(&self) -> bool {
        self.bus_busy.load(Ordering::Relaxed)
    }

    /// Runs `f` on the device, locked.
    pub fn device<R>(&self, f: impl FnOnce(&mut Device) -> R) -> R {
        self.device.lock(|d| f(&mut d.borrow_mut()))
    }

    /// The saved configuration.
    pub fn saved(&self) -> Config {
        self.device(|d| *d.map.saved())
    }
}

/// The core's time: embassy's clock (microseconds since boot) as a core instant.
pub fn core_now() -> CoreInstant {
    CoreInstant::from_micros(Instant::now().as_micros())
}

/// The embassy instant of core time `t`, to wait until ([`CoreInstant::MAX`], "never",
/// is [`Instant::MAX`]; the RP2040's 1 MHz tick makes the rest exact).
pub fn at(t: CoreInstant) -> Instant {
    if t == CoreInstant::MAX {
        Instant::MAX
    } else {
        Instant::from_micros(t.total_micros())
    }
}
