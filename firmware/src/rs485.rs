//! The RS485 task (`master` role, as the original board): the core's [`BusMaster`]
//! drives the ABB Terra AC chargers (1037 of them, charger k at address 1030 + k − 1)
//! on UART1 (TX GPIO 8, RX GPIO 9) and forwards the USB gateway's requests between
//! their exchanges. GPIO 7 enables the transceiver's driver
//! only while a frame is sent: set before the first byte, released as soon as the last
//! stop bit has left the shift register. Line settings from 1031 (baud / 100) and
//! 1032 (parity); the UART is set up again when a save changes them. While an exchange
//! is on the bus the task says so ([`Shared::set_bus_busy`]): flash work waits for its
//! end.

use embassy_futures::select::{Either4, select4};
use embassy_rp::Peri;
use embassy_rp::gpio::Output;
use embassy_rp::peripherals::{PIN_8, PIN_9, UART1};
use embassy_rp::uart::{self, BufferedUart, DataBits, StopBits};
use embassy_time::Timer;
use embedded_io_async::{Read, Write};
use p1lb_core::bus_master::{BusMaster, MasterEvent, SavedChange};
use p1lb_core::config::{Config, MAX_CHARGERS};
use p1lb_core::modbus::{LineConfig, MAX_ADU, Parity};

use crate::Irqs;
use crate::shared::{Shared, at, core_now, frame_buf};

/// The RX FIFO interrupt level set on UART1 (embassy-rp sets 28 of 32): the master
/// frames replies by silence, so it must see bytes soon after they arrive.
const RX_FIFO_LEVEL: u32 = 4;

/// The line of the saved settings 1031 and 1032, for the UART and the framer.
fn line(config: &Config) -> (uart::Config, LineConfig) {
    let line = LineConfig::rs485(config);
    let mut cfg = uart::Config::default();
    cfg.baudrate = line.baud;
    cfg.data_bits = DataBits::DataBits8;
    cfg.stop_bits = StopBits::STOP1;
    cfg.parity = match line.parity {
        Parity::None => uart::Parity::ParityNone,
        Parity::Odd => uart::Parity::ParityOdd,
        Parity::Even => uart::Parity::ParityEven,
    };
    (cfg, line)
}

/// The balancer's value to send to each charger (charger k's at k, 0-based).
fn sent_values(shared: &Shared) -> [u32; MAX_CHARGERS] {
    shared.device(|d| core::array::from_fn(|k| d.balancer.sent_of_ma(k)))
}

/// Runs forever: UART1 on GPIO 8/9 with driver enable `de` (GPIO 7).
#[embassy_executor::task]
pub async fn run(
    shared: &'static Shared,
    mut uart: Peri<'static, UART1>,
    mut tx: Peri<'static, PIN_8>,
    mut rx: Peri<'static, PIN_9>,
    mut de: Output<'static>,
    bufs: &'static mut ([u8; 256], [u8; 256]),
) {
    loop {
        let (uart_cfg, line_cfg) = line(&shared.saved());
        let (tx_buf, rx_buf) = &mut *bufs;
        let (tx, rx) = (tx.reborrow(), rx.reborrow());
        let mut port = BufferedUart::new(uart.reborrow(), tx, rx, Irqs, tx_buf, rx_buf, uart_cfg);
        // RX interrupt at 4 bytes (1/8), TX at 1/8 as embassy-rp sets it.
        embassy_rp::pac::UART1.uartifls().write(|w| {
            w.set_rxiflsel(0b000);
            w.set_txiflsel(0b000);
        });
        drive(shared, &mut port, &mut de, line_cfg).await;
    }
}

/// The master on an open line, until a save changes the line settings.
async fn drive(
    shared: &Shared,
    uart: &mut BufferedUart,
    de: &mut Output<'static>,
    line: LineConfig,
) {
    let config = shared.saved();
    let mut master = BusMaster::new(&config, line, core_now());
    // Bytes reach the task in FIFO chunks: a wait for the next chunk is no silence.
    master.widen_silence(line.fifo_latency(RX_FIFO_LEVEL));
    let mut out = [0u8; MAX_ADU];
    let mut buf = [0u8; 64];
    // The number of the forwarded request on the bus (see `Tagged`).
    let mut forwarded = 0u32;
    // Nothing of an earlier line is on the bus any more.
    shared.set_bus_busy(false);
    loop {
        // A save that changed the line (1031/1032): set the UART up again.
        if master.follow_saved(&shared.saved()) == SavedChange::Reopen {
            return;
        }
        // A forwarded request leaves the queue only when it goes out at once (the bus
        // free, the driver not first): until then the USB side can take it back when
        // its host stops waiting, so it is never sent late (see `usb::Server::forward`).
        let now = core_now();
        let sent_ma = sent_values(shared);
        if master.forward_goes_next(now, &sent_ma)
            && let Ok((number, frame)) = shared.gateway_request.try_receive()
        {
            forwarded = number;
            master.submit(&frame);
        }
        if let Some(tx) = master.poll_transmit(now, &sent_ma) {
            // From the first byte (a retry too) until its result: see `set_bus_busy`.
            shared.set_bus_busy(true);
            de.set_high();
            // A UART error on send only loses this frame: the client times out.
            let _ = uart.write_all(tx).await;
            let _ = uart.flush().await;
            while uart.busy() {
                embassy_futures::yield_now().await;
            }
            de.set_low();
        }
        let event = master.poll(core_now(), &mut out);
        if event.is_some() && !master.exchange_on_bus() {
            shared.set_bus_busy(false);
        }
        match event {
            Some(MasterEvent::Charger { k, fresh }) => {
                // `None`: the charger of an exchange that a save took off the bus.
                if let Some(driver) = master.driver(k) {
                    let now = core_now();
                    shared.device(|d| d.on_charger(now, k, driver, fresh));
                }
                continue;
            }
            Some(MasterEvent::GatewayReply(n)) => {
                let reply = frame_buf(out.get(..n).unwrap_or(&[]));
                let _ = shared.gateway_reply.try_send((forwarded, reply));
                continue;
            }
            Some(MasterEvent::GatewayDone) => {
                let _ = shared.gateway_reply.try_send((forwarded, frame_buf(&[])));
                continue;
            }
            None => {}
        }
        // Bytes, the master's deadline, a request to forward (taken above, when the bus
        // is free) or a new value to send.
        let wake = master.poll_timeout(core_now());
        let sent_ma = sent_values(shared);
        let request = async {
            if master.forward_goes_next(core_now(), &sent_ma) {
                shared.gateway_request.ready_to_receive().await
            } else {
                core::future::pending().await
            }
        };
        let timer = Timer::at(at(wake));
        match select4(uart.read(&mut buf), timer, request, shared.decision.wait()).await {
            Either4::First(Ok(n)) => master.on_bytes(core_now(), &buf[..n]),
            // A UART error loses the bytes (the client times out); a timer, a request
            // or a new value: poll again.
            Either4::First(Err(_))
            | Either4::Second(())
            | Either4::Third(())
            | Either4::Fourth(()) => {}
        }
    }
}
