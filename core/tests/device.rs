//! [`Device`]: a real telegram through the reader into the status registers, rejected
//! telegrams into 1003 bit 1 for a minute, saves into the balancer, boot flags.

mod common;

use p1lb_core::config::P1Line;
use p1lb_core::config::{Config, address};
use p1lb_core::device::{CRC_FLAG, Device, P1Event, P1Input};
use p1lb_core::registers::Flags;
use p1lb_core::time::Instant;

/// The tests count time in milliseconds from the device's start.
fn ms(t: u64) -> Instant {
    Instant::from_millis(t)
}

const CRC_FLAG_MS: u64 = CRC_FLAG.total_millis();

/// Feeds `bytes` at `now_ms` through the core's P1 input, as the daemon and the
/// firmware do.
fn feed(device: &mut Device, input: &mut P1Input, now_ms: u64, bytes: &[u8]) {
    input.feed(bytes, |event| {
        device.on_p1(ms(now_ms), &event);
    });
}

fn read(device: &Device, start: u16, n: usize) -> Vec<u16> {
    let mut out = vec![0u16; n];
    device.map.read(start, &mut out).unwrap();
    out
}

#[test]
fn a_real_telegram_fills_the_measurement_registers() {
    let mut device = Device::new(Config::default(), ms(0));
    let mut reader = P1Input::new();
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
    let mut reader = P1Input::new();
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

/// The P1 input gives the same events whatever the chunks the bytes come in (a UART
/// hands over a few bytes at a time), reports the counters only when they change, and
/// applies the line's CRC rule: a DSMR 2.2/3 line (9600 7E1) takes a telegram without
/// its CRC, a DSMR 4/5 line refuses it.
#[test]
fn the_p1_input_is_the_same_in_any_chunks_and_follows_the_line_s_crc_rule() {
    let sample = common::sample("nl-esmr50-sagemcom-t210d-seed.txt");
    let mut twice = sample.clone();
    twice.extend_from_slice(&sample);
    let summary = |chunk: usize| {
        let mut input = P1Input::new();
        let mut events = Vec::new();
        for part in twice.chunks(chunk) {
            input.feed(part, |e| {
                events.push(match e {
                    P1Event::Telegram(r) => format!("telegram {:?}", r.power_import_w),
                    P1Event::Rejected(why) => format!("rejected {}", why.name()),
                    P1Event::Counters(s) => format!("counters {} {}", s.valid, s.rejected()),
                });
            });
        }
        events
    };
    let whole = summary(twice.len());
    assert_eq!(
        whole.iter().filter(|e| e.starts_with("telegram")).count(),
        2,
        "{whole:?}"
    );
    assert_eq!(whole.last().map(String::as_str), Some("counters 2 0"));
    for chunk in [1, 7, 64] {
        let events = summary(chunk);
        let telegrams: Vec<_> = events
            .iter()
            .filter(|e| !e.starts_with("counters"))
            .collect();
        let expected: Vec<_> = whole
            .iter()
            .filter(|e| !e.starts_with("counters"))
            .collect();
        assert_eq!(telegrams, expected, "chunks of {chunk}");
        // Counters: once per change, never twice the same.
        let counters: Vec<_> = events
            .iter()
            .filter(|e| e.starts_with("counters"))
            .collect();
        assert_eq!(counters.len(), 2, "chunks of {chunk}: {counters:?}");
    }
    // A DSMR 3.0 telegram: no CRC line.
    let no_crc = common::sample("nl-dsmr30-iskra-mt382.txt");
    for (dsmr3, accepted) in [(true, 1), (false, 0)] {
        // A new input is strict (as at 115200 baud) until told the line.
        let mut strict = P1Input::new();
        strict.feed(&no_crc, |_| {});
        strict.feed(b"/", |_| {});
        assert_eq!(strict.stats().valid, 0);
        let mut device = Device::new(Config::default(), ms(0));
        let mut input = P1Input::new();
        input.restart(&P1Line {
            dsmr3,
            invert: false,
        });
        // The next header ends the telegram.
        feed(&mut device, &mut input, 1_000, &no_crc);
        feed(&mut device, &mut input, 1_000, b"/");
        assert_eq!(
            device.map.status().telegrams_valid,
            accepted,
            "dsmr3 = {dsmr3}"
        );
    }
}
