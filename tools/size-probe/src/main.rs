//! A bare-metal binary that uses parts of the core the way the firmware will, so
//! `llvm-size` shows what each costs in flash on the RP2040 (thumbv6m-none-eabi).
//! Features pick the parts: `reader` (P1 reader + model), `smarty` (AES-GCM frames),
//! `modbus` (RTU framers, the register map's server, client, gateway), `store`
//! (configuration store on flash). Not meant to run.
#![no_std]
#![no_main]

use core::hint::black_box;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Stands in for a UART: the optimiser cannot see through it.
static RX: [u8; 64] = [0; 64];

#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    #[cfg(any(feature = "reader", feature = "smarty"))]
    let mut reader: p1lb_core::p1::TelegramReader = p1lb_core::p1::TelegramReader::new();
    #[cfg(feature = "smarty")]
    let mut smarty: p1lb_core::p1::smarty::SmartyReader =
        p1lb_core::p1::smarty::SmartyReader::new(black_box(p1lb_core::p1::smarty::SmartyKeys {
            key: [0; 16],
            auth_key: [0; 16],
        }));
    #[cfg(feature = "modbus")]
    let mut modbus = modbus_parts::Parts::new();
    #[cfg(feature = "store")]
    let mut store = store_parts::open();
    loop {
        let input: &[u8] = black_box(&RX[..]);
        #[cfg(feature = "smarty")]
        if let (_, Some(p1lb_core::p1::smarty::SmartyEvent::Plaintext(p))) = smarty.feed(input) {
            black_box(p);
        }
        #[cfg(any(feature = "reader", feature = "smarty"))]
        {
            use p1lb_core::p1::{Event, GridSource, Reading};
            let (_, event) = reader.feed(input);
            if let Some(Event::Telegram(t)) = event {
                let r = Reading::parse(&t);
                black_box(r.grid_currents_ma(GridSource::Auto));
                black_box(r.import_wh.sum());
            }
            black_box(reader.stats());
        }
        #[cfg(feature = "modbus")]
        modbus.run(input);
        #[cfg(feature = "store")]
        store_parts::run(&mut store);
        black_box(input);
    }
}

#[cfg(feature = "modbus")]
mod modbus_parts {
    use core::hint::black_box;
    use p1lb_core::config::Config;
    use p1lb_core::modbus::{
        Client, ClientConfig, Direction, Gateway, LengthFramer, LineConfig, MAX_ADU, Parity,
        SilenceFramer,
    };
    use p1lb_core::registers::RegisterMap;
    use p1lb_core::server::serve;
    use p1lb_core::time::{Duration, Instant};

    pub struct Parts {
        map: RegisterMap,
        uart: SilenceFramer,
        usb: LengthFramer,
        client: Client,
        gateway: Gateway,
    }

    impl Parts {
        pub fn new() -> Self {
            Parts {
                map: RegisterMap::new(Config::default()),
                uart: SilenceFramer::new(LineConfig::new(9600, Parity::None, 1)),
                usb: LengthFramer::new(Direction::Requests, Duration::from_millis(20)),
                client: Client::new(ClientConfig::default()),
                gateway: Gateway::new(),
            }
        }

        pub fn run(&mut self, input: &[u8]) {
            let now = Instant::from_micros(black_box(0u64));
            let mut out = [0u8; MAX_ADU];
            if let (_, Some(frame)) = self.usb.feed(now, input) {
                let mut f = [0u8; MAX_ADU];
                f[..frame.len()].copy_from_slice(frame);
                let n = frame.len();
                black_box(serve(&mut self.map, 10, &f[..n], &mut out));
                black_box(self.gateway.submit(&f[..n], &mut out));
            }
            if let (_, Some(frame)) = self.uart.feed(now, input) {
                let mut f = [0u8; MAX_ADU];
                f[..frame.len()].copy_from_slice(frame);
                self.client.on_frame(now, &f[..frame.len()]);
            }
            black_box(self.gateway.next_on_bus(&mut self.client));
            if let Some(tx) = self.client.poll_transmit(now) {
                black_box(tx);
            }
            if let Some(r) = self.client.poll_result(now) {
                black_box(self.gateway.on_reply(r, &mut out));
            }
        }
    }
}

#[cfg(feature = "store")]
mod store_parts {
    use core::hint::black_box;
    use embedded_storage_async::nor_flash::{
        ErrorType, MultiwriteNorFlash, NorFlash, NorFlashErrorKind, ReadNorFlash,
    };
    use p1lb_core::config::Config;
    use p1lb_core::config_store::ConfigStore;

    /// A flash whose contents the optimiser cannot know.
    pub struct Flash;

    impl ErrorType for Flash {
        type Error = NorFlashErrorKind;
    }
    impl ReadNorFlash for Flash {
        const READ_SIZE: usize = 1;
        async fn read(&mut self, _offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
            for b in bytes.iter_mut() {
                *b = black_box(0xFF);
            }
            Ok(())
        }
        fn capacity(&self) -> usize {
            2 * 1024 * 1024
        }
    }
    impl NorFlash for Flash {
        const WRITE_SIZE: usize = 1;
        const ERASE_SIZE: usize = 4096;
        async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
            black_box((from, to));
            Ok(())
        }
        async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
            black_box((offset, bytes));
            Ok(())
        }
    }
    impl MultiwriteNorFlash for Flash {}

    pub fn open() -> Option<ConfigStore<Flash>> {
        ConfigStore::new(Flash, 0x1F_C000..0x20_0000)
    }

    pub fn run(store: &mut Option<ConfigStore<Flash>>) {
        if let Some(s) = store.as_mut() {
            let loaded = embassy_futures::block_on(s.load());
            let c: Config = loaded.config();
            if black_box(false) {
                black_box(embassy_futures::block_on(s.save(&c)).is_ok());
            }
        }
    }
}
