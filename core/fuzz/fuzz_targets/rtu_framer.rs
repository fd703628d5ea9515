//! Both RTU framers on arbitrary bytes at arbitrary times: never panic, every frame
//! yielded is within the limits, and what the length framer yields has a good CRC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p1lb_core::time::{Duration, Instant};
use p1lb_core::modbus::{
    Direction, LengthFramer, LineConfig, MAX_ADU, MIN_ADU, Parity, SilenceFramer, crc_ok,
};

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, data)) = data.split_first() else {
        return;
    };
    let baud = [1200, 9600, 19200, 115_200][usize::from(cfg & 3)];
    let mut silence = SilenceFramer::<MAX_ADU>::new(LineConfig::new(baud, Parity::Even, 1));
    let mut small = SilenceFramer::<16>::new(LineConfig::new(baud, Parity::None, 1));
    let mut requests = LengthFramer::<MAX_ADU>::new(Direction::Requests, Duration::from_millis(5));
    let mut responses = LengthFramer::<40>::new(Direction::Responses, Duration::from_millis(5));
    let mut now = Instant::ZERO;
    // Records: a time step byte, a length byte, then that many bytes.
    let mut rest = data;
    while let [dt, len, tail @ ..] = rest {
        now += Duration::from_micros(u64::from(*dt) * 97);
        let n = usize::from(*len % 64).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        let mut r = chunk;
        while !r.is_empty() {
            let (used, f) = silence.feed(now, r);
            if let Some(f) = f {
                assert!((MIN_ADU..=MAX_ADU).contains(&f.len()));
            } else {
                assert_eq!(used, r.len());
            }
            r = &r[used..];
        }
        let mut r = chunk;
        while !r.is_empty() {
            let (used, f) = small.feed(now, r);
            if let Some(f) = f {
                assert!((MIN_ADU..=16).contains(&f.len()));
            }
            r = &r[used..];
        }
        let mut r = chunk;
        while !r.is_empty() {
            let (used, f) = requests.feed(now, r);
            if let Some(f) = f {
                assert!(crc_ok(f) && f.len() <= MAX_ADU);
            }
            assert!(used <= r.len());
            r = &r[used..];
        }
        let mut r = chunk;
        while !r.is_empty() {
            let (used, f) = responses.feed(now, r);
            if let Some(f) = f {
                assert!(crc_ok(f) && f.len() <= 40);
            }
            r = &r[used..];
        }
        if dt & 1 == 1 {
            let _ = silence.poll(now);
            let _ = small.poll(now);
            if let Some(f) = requests.poll(now) {
                assert!(crc_ok(f));
            }
            let _ = responses.poll(now);
        }
        let _ = (
            silence.deadline(),
            requests.deadline(),
            responses.buffered(),
        );
    }
});
