//! The P1 task: UART0 RX (GPIO 17) → USB passthrough (every byte, unchanged) and the
//! core's P1 input ([`P1Input`]) → [`Device::on_p1`]. The line follows 1034/1035
//! ([`P1Line`]) and is set up again when a save changes them.
//!
//! [`Device::on_p1`]: p1lb_core::device::Device::on_p1

use embassy_futures::select::{Either, select};
use embassy_rp::Peri;
use embassy_rp::peripherals::{PIN_17, UART0};
use embassy_rp::uart::{self, BufferedUartRx, DataBits, Parity};
use embassy_time::Timer;
use embedded_io_async::Read;
use p1lb_core::config::P1Line;
use p1lb_core::device::{P1Event, P1Input};

use crate::Irqs;
use crate::shared::{Shared, core_now};

/// Runs forever.
#[embassy_executor::task]
pub async fn run(
    shared: &'static Shared,
    mut uart: Peri<'static, UART0>,
    mut pin: Peri<'static, PIN_17>,
    rx_buf: &'static mut [u8],
) {
    let mut input = P1Input::new();
    let mut buf = [0u8; 64];
    loop {
        let line: P1Line = shared.saved().p1_line();
        let mut cfg = uart::Config::default();
        cfg.baudrate = line.baud();
        if line.dsmr3 {
            (cfg.data_bits, cfg.parity) = (DataBits::DataBits7, Parity::ParityEven);
        }
        cfg.invert_rx = line.invert;
        let (uart, pin) = (uart.reborrow(), pin.reborrow());
        let mut rx = BufferedUartRx::new(uart, Irqs, pin, &mut *rx_buf, cfg);
        input.restart(&line);
        while shared.saved().p1_line() == line {
            // Errors (framing, parity, overrun) lose bytes: the telegram fails its CRC.
            if let Either::First(Ok(n)) = select(rx.read(&mut buf), Timer::after_secs(1)).await {
                feed(shared, &mut input, &buf[..n]);
            }
        }
    }
}

fn feed(shared: &Shared, input: &mut P1Input, bytes: &[u8]) {
    // A cable: every byte, also corrupt ones; dropped only when the host is not reading.
    let _ = shared.passthrough.try_write(bytes);
    input.feed(bytes, |event| {
        shared.device(|d| d.on_p1(core_now(), &event));
        match event {
            P1Event::Telegram(_) => shared.wake_control.signal(()),
            P1Event::Rejected(_) => {}
            P1Event::Counters(_) => return,
        }
        // The line is quiet until the next telegram: the moment for flash work.
        shared.p1_quiet.signal(());
    });
}
