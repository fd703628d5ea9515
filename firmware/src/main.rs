//! p1lb on a Raspberry Pi Pico (RP2040), pin-compatible with the original board.
//!
//! Thin wiring: every decision lives in `p1lb-core`; the tasks only move bytes and
//! time. Pins: P1 data in GPIO 17 (UART0 RX); RS485 UART1 TX GPIO 8, RX GPIO 9,
//! driver enable GPIO 7; status LED GPIO 25. USB: P1 passthrough (if00) and Modbus
//! RTU (if02). Tasks: [`p1`], [`rs485`], [`usb`] (with [`store`]), [`control`].
//! 1003 bit 6 (watchdog reset) is REASON plus our magic in watchdog SCRATCH4, not
//! REASON alone, which the boot ROM's own reboot after a UF2 copy also sets
//! ([`control`] says why).
#![no_std]
#![no_main]

mod control;
mod p1;
mod rs485;
mod shared;
mod store;
mod usb;

use embassy_executor::Spawner;
use embassy_rp::flash::Flash;
use embassy_rp::gpio::{Level, Output};
use embassy_rp::peripherals::{UART0, UART1, USB};
use embassy_rp::uart::BufferedInterruptHandler;
use embassy_rp::watchdog::Watchdog;
use embassy_rp::{bind_interrupts, usb as rp_usb};
use embassy_usb::class::cdc_acm::{CdcAcmClass, State};
use p1lb_core::config_store::Loaded;
use static_cell::StaticCell;

use crate::shared::Shared;

bind_interrupts!(pub struct Irqs {
    UART0_IRQ => BufferedInterruptHandler<UART0>;
    UART1_IRQ => BufferedInterruptHandler<UART1>;
    USBCTRL_IRQ => rp_usb::InterruptHandler<USB>;
});

/// USB vendor and product id (pid.codes test range until one is assigned).
const USB_VID_PID: (u16, u16) = (0x1209, 0x0001);

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_rp::init(Default::default());
    let mut watchdog = Watchdog::new(p.WATCHDOG);
    // Not REASON alone: the boot ROM reboots through the watchdog too (see `control`).
    let watchdog_reset = control::watchdog_caused_reset(&mut watchdog);
    // From here on a hang (or a panic) resets the board.
    control::start_watchdog(&mut watchdog);

    // Before anything runs from flash in parallel: the unique id and the saved settings.
    let mut flash = Flash::new_blocking(p.FLASH);
    let mut uid = [0u8; 8];
    let serial = SERIAL.init([b'0'; 16]);
    if flash.blocking_unique_id(&mut uid).is_ok() {
        hex(&uid, serial);
    }
    let mut store = store::store(flash);
    let loaded = match store.as_mut() {
        Some(s) => s.load().await,
        None => Loaded::Damaged,
    };
    let shared = SHARED.init(Shared::new(loaded.config()));
    shared.device(|d| d.set_boot_flags(watchdog_reset, loaded.defaults_after_error()));

    // USB: two CDC-ACM functions.
    let driver = rp_usb::Driver::new(p.USB, Irqs);
    let mut config = embassy_usb::Config::new(USB_VID_PID.0, USB_VID_PID.1);
    config.manufacturer = Some("p1lb");
    config.product = Some("P1 Load Balancer");
    config.serial_number = core::str::from_utf8(serial).ok();
    config.max_power = 100;
    config.max_packet_size_0 = 64;
    let mut builder = embassy_usb::Builder::new(
        driver,
        config,
        CONFIG_DESC.init([0; 256]),
        BOS_DESC.init([0; 256]),
        &mut [],
        CONTROL_BUF.init([0; 64]),
    );
    let p1_port = CdcAcmClass::new(&mut builder, P1_STATE.init(State::new()), 64);
    let modbus_port = CdcAcmClass::new(&mut builder, MODBUS_STATE.init(State::new()), 64);
    let usb = builder.build();

    let de = Output::new(p.PIN_7, Level::Low);
    let rs485_bufs = RS485_BUFS.init(([0; 256], [0; 256]));
    let led = Output::new(p.PIN_25, Level::Low);

    spawner.spawn(control::run(shared, watchdog).expect("one control task"));
    spawner.spawn(control::led(shared, led).expect("one LED task"));
    spawner.spawn(p1::run(shared, p.UART0, p.PIN_17, P1_RX.init([0; 2048])).expect("one P1 task"));
    let rs485 = rs485::run(shared, p.UART1, p.PIN_8, p.PIN_9, de, rs485_bufs);
    spawner.spawn(rs485.expect("one RS485 task"));
    spawner.spawn(usb::device(usb).expect("one USB task"));
    spawner.spawn(usb::passthrough(shared, p1_port).expect("one passthrough task"));
    spawner.spawn(usb::modbus(shared, modbus_port, store).expect("one Modbus task"));
}

/// Upper-case hex of `bytes` into `out` (twice as long).
fn hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for (b, pair) in bytes.iter().zip(out.chunks_mut(2)) {
        if let [hi, lo] = pair {
            *hi = DIGITS[usize::from(b >> 4)];
            *lo = DIGITS[usize::from(b & 15)];
        }
    }
}

static SHARED: StaticCell<Shared> = StaticCell::new();
static SERIAL: StaticCell<[u8; 16]> = StaticCell::new();
static CONFIG_DESC: StaticCell<[u8; 256]> = StaticCell::new();
static BOS_DESC: StaticCell<[u8; 256]> = StaticCell::new();
static CONTROL_BUF: StaticCell<[u8; 64]> = StaticCell::new();
static P1_STATE: StaticCell<State> = StaticCell::new();
static MODBUS_STATE: StaticCell<State> = StaticCell::new();
static RS485_BUFS: StaticCell<([u8; 256], [u8; 256])> = StaticCell::new();
static P1_RX: StaticCell<[u8; 2048]> = StaticCell::new();

/// A panic stops at a breakpoint (the emulator's harness sees it; a debugger too);
/// without a debugger the core faults and the watchdog resets the board, which then
/// reports it in 1003 bit 6.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    cortex_m::asm::bkpt();
    loop {
        cortex_m::asm::wfi();
    }
}
