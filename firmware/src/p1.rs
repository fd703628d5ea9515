//! The P1 task: UART0 RX (GPIO 17) → USB passthrough (every byte, unchanged) and the
//! core's telegram reader → [`Device::on_telegram`]. The line follows 1034/1035
//! ([`P1Line`]) and is set up again when a save changes them.
//!
//! [`Device::on_telegram`]: p1lb_core::device::Device::on_telegram

use embassy_futures::select::{Either, select};
use embassy_rp::Peri;
use embassy_rp::peripherals::{PIN_17, UART0};
use embassy_rp::uart::{self, BufferedUartRx, DataBits, Parity};
use embassy_time::Timer;
use embedded_io_async::Read;
use p1lb_core::config::P1Line;
use p1lb_core::p1::{Event, Reading, TelegramReader};

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
    let mut reader: TelegramReader = TelegramReader::new();
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
        reader.reset();
        reader.set_crc_required(line.crc_required());
        while shared.saved().p1_line() == line {
            // Errors (framing, parity, overrun) lose bytes: the telegram fails its CRC.
            if let Either::First(Ok(n)) = select(rx.read(&mut buf), Timer::after_secs(1)).await {
                feed(shared, &mut reader, &buf[..n]);
            }
        }
    }
}

fn feed(shared: &Shared, reader: &mut TelegramReader, mut bytes: &[u8]) {
    // A cable: every byte, also corrupt ones; dropped only when the host is not reading.
    let _ = shared.passthrough.try_write(bytes);
    while !bytes.is_empty() {
        let (used, event) = reader.feed(bytes);
        bytes = bytes.get(used..).unwrap_or(&[]);
        let now = core_now();
        match event {
            Some(Event::Telegram(t)) => {
                let reading = Reading::parse(&t);
                shared.device(|d| d.on_telegram(now, &reading));
                shared.wake_control.signal(());
            }
            Some(Event::Rejected { .. }) => shared.device(|d| d.on_rejected(now)),
            None => continue,
        }
        // The line is quiet until the next telegram: the moment for flash work.
        shared.p1_quiet.signal(());
    }
    let stats = *reader.stats();
    shared.device(|d| d.on_reader_stats(&stats));
}
