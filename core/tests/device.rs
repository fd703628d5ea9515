//! [`Device`]: a real telegram through the reader into the status registers, rejected
//! telegrams into 1003 bit 1 for a minute, saves into the balancer, boot flags.

mod common;

use p1lb_core::config::{Config, address};
use p1lb_core::device::{CRC_FLAG, Device};
use p1lb_core::p1::{Event, Reading, TelegramReader};
use p1lb_core::registers::Flags;
use p1lb_core::time::Instant;

/// The tests count time in milliseconds from the device's start.
fn ms(t: u64) -> Instant {
    Instant::from_millis(t)
}

const CRC_FLAG_MS: u64 = CRC_FLAG.total_millis();

/// Feeds `bytes` at `now_ms` the way the daemon and the firmware do.
fn feed(device: &mut Device, reader: &mut TelegramReader, now_ms: u64, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let (used, event) = reader.feed(bytes);
        bytes = &bytes[used..];
        match event {
            Some(Event::Telegram(t)) => {
                device.on_telegram(ms(now_ms), &Reading::parse(&t));
            }
            Some(Event::Rejected { .. }) => device.on_rejected(ms(now_ms)),
            None => {}
        }
    }
    device.on_reader_stats(reader.stats());
}

fn read(device: &Device, start: u16, n: usize) -> Vec<u16> {
    let mut out = vec![0u16; n];
    device.map.read(start, &mut out).unwrap();
    out
}

#[test]
fn a_real_telegram_fills_the_measurement_registers() {
    let mut device = Device::new(Config::default(), ms(0));
    let mut reader: TelegramReader = TelegramReader::new();
    let sample = common::sample("nl-esmr50-sagemcom-t210d-seed.txt");
    feed(&mut device, &mut reader, 500, &sample);
    device.tick(ms(1000));
    // Voltages (0.1 V), import power (W, two words), counters.
    assert_eq!(read(&device, 1103, 1), [2340]);
    assert_eq!(read(&device, 1106, 2), [0, 258]);
    let status = device.map.status();
    assert_eq!(status.telegrams_valid, 1);
    assert_eq!(status.telegrams_rejected, 0);
    // Grid current L1 from P/V (98 W / 234.0 V = 0.42 A), in 0.01 A.
    assert!(
        (41..=42).contains(&status.grid_ca[0]),
        "{:?}",
        status.grid_ca
    );
    assert!(!device.map.flags().contains(Flags::METER_STALE));
    assert!(device.last_reading.is_some());
}

#[test]
fn a_rejected_telegram_sets_bit_1_for_a_minute() {
    let mut device = Device::new(Config::default(), ms(0));
    let mut reader: TelegramReader = TelegramReader::new();
    let mut sample = common::sample("nl-esmr50-sagemcom-t210d-seed.txt");
    // One flipped bit in a value: the CRC fails.
    let at = sample.iter().position(|&b| b == b'(').unwrap() + 1;
    sample[at] ^= 0x01;
    feed(&mut device, &mut reader, 2_000, &sample);
    // The footer of a damaged telegram is only known to be bad at the next header.
    feed(&mut device, &mut reader, 2_000, b"/");
    assert_eq!(device.map.status().telegrams_rejected, 1);
    device.tick(ms(2_500));
    assert!(device.map.flags().contains(Flags::CRC_FAILURES));
    device.tick(ms(2_000 + CRC_FLAG_MS - 1));
    assert!(device.map.flags().contains(Flags::CRC_FAILURES));
    let next = device.balancer.next_tick().max(ms(2_000 + CRC_FLAG_MS));
    device.tick(next);
    assert!(!device.map.flags().contains(Flags::CRC_FAILURES));
}

#[test]
fn a_committed_save_reaches_the_balancer_and_boot_flags_show() {
    let mut device = Device::new(Config::default(), ms(0));
    let mut config = Config::default();
    config.set(address::CHARGER_MAX_CURRENT, 20_000).unwrap();
    device.commit_save(config);
    assert_eq!(device.balancer.config().charger_max_ma(), 20_000);
    assert_eq!(
        device.map.saved().get(address::CHARGER_MAX_CURRENT),
        Some(20_000)
    );
    device.set_boot_flags(true, true);
    let flags = device.map.flags();
    assert!(flags.contains(Flags::WATCHDOG_RESET));
    assert!(flags.contains(Flags::DEFAULTS_IN_USE));
}
