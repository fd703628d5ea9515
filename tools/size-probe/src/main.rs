//! A bare-metal binary that uses the P1 reader the way the firmware will — bytes in,
//! telegram → reading → grid currents out — so `llvm-size` shows what the reader
//! costs in flash on the RP2040 (thumbv6m-none-eabi). Not meant to run.
#![no_std]
#![no_main]

use core::hint::black_box;
use p1lb_core::p1::{Event, GridSource, Reading, TelegramReader};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Stands in for the UART: the optimiser cannot see through it.
static RX: [u8; 64] = [0; 64];

#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    let mut reader: TelegramReader = TelegramReader::new();
    #[cfg(feature = "smarty")]
    let mut smarty: p1lb_core::p1::smarty::SmartyReader =
        p1lb_core::p1::smarty::SmartyReader::new(black_box(p1lb_core::p1::smarty::SmartyKeys {
            key: [0; 16],
            auth_key: [0; 16],
        }));
    loop {
        let input: &[u8] = black_box(&RX[..]);
        #[cfg(feature = "smarty")]
        if let (_, Some(p1lb_core::p1::smarty::SmartyEvent::Plaintext(p))) = smarty.feed(input) {
            black_box(p);
        }
        let (_, event) = reader.feed(input);
        if let Some(Event::Telegram(t)) = event {
            let r = Reading::parse(&t);
            black_box(r.grid_currents_ma(GridSource::Auto));
            black_box(r.import_wh.sum());
        }
        black_box(reader.stats());
    }
}
