// The bus_master fuzz target's driver, shared with its property test (`include!`d by
// core/fuzz/fuzz_targets/bus_master.rs and core/tests/bus_master.rs): one definition of
// what is checked.

/// Runs one input through a [`BusMaster`] as a driver would (requests submitted only
/// while the gateway is free): arbitrary bus bytes at arbitrary times, arbitrary host
/// frames, arbitrary values to send, one to eight chargers, and saves that change the
/// charger count and address while it runs. Checks: nothing panics, no deadline lies
/// in the past of a call that has nothing to do, replies fit a frame, every event names
/// a charger that is (or was) on the bus, and every submitted request gets exactly one
/// answer (a reply, or none for one that is not forwarded). Panics when a check fails.
pub fn run(data: &[u8]) {
    use p1lb_core::config::{MAX_CHARGERS, address};
    use p1lb_core::time::{Duration, Instant};
    let mut config = Config::default();
    if let Some(&b) = data.first() {
        // Charger address, count and line speed vary too.
        let _ = config.set(address::CHARGER_ADDRESS, u16::from(b % 4) + 1);
        let _ = config.set(address::CHARGER_COUNT, u16::from((b >> 2) % 8) + 1);
        let _ = config.set(address::RS485_BAUD, [12, 96, 1152][usize::from(b >> 6) % 3]);
    }
    let mut master = BusMaster::new(&config, LineConfig::rs485(&config), Instant::ZERO);
    let mut now = Instant::ZERO;
    let mut out = [0u8; MAX_ADU];
    let (mut submitted, mut answered) = (0u32, 0u32);
    let on_event = |e: MasterEvent, answered: &mut u32| match e {
        MasterEvent::GatewayReply(n) => {
            assert!((4..=MAX_ADU).contains(&n), "reply of {n} bytes");
            *answered += 1;
        }
        MasterEvent::GatewayDone => *answered += 1,
        MasterEvent::Charger { k, .. } => assert!(k < MAX_CHARGERS, "charger {k}"),
    };
    let mut rest = data.get(1..).unwrap_or(&[]);
    while let [op, arg, tail @ ..] = rest {
        rest = tail;
        match op % 6 {
            0 => now += Duration::from_micros(u64::from(*arg) * 250),
            1 => {
                let n = usize::from(*arg % 64).min(rest.len());
                let (bytes, tail) = rest.split_at(n);
                master.on_bytes(now, bytes);
                rest = tail;
            }
            2 => {
                let n = usize::from(*arg).min(rest.len());
                let (frame, tail) = rest.split_at(n);
                if !master.gateway_busy() {
                    master.submit(frame);
                    submitted += 1;
                }
                rest = tail;
            }
            3 => {
                // Each charger its own value.
                let sent: [u32; MAX_CHARGERS] =
                    core::array::from_fn(|k| u32::from(*arg) * (k as u32 + 1) * 250);
                if let Some(tx) = master.poll_transmit(now, &sent) {
                    assert!(!tx.is_empty() && tx.len() <= MAX_ADU);
                }
            }
            4 => {
                // A save: another charger count and first address (the line unchanged).
                let mut saved = config;
                let _ = saved.set(address::CHARGER_COUNT, u16::from(*arg % 8) + 1);
                let _ = saved.set(address::CHARGER_ADDRESS, u16::from((*arg >> 3) % 4) + 1);
                let _ = master.follow_saved(&saved);
                assert_eq!(master.chargers(), saved.chargers());
                for k in 0..MAX_CHARGERS {
                    let on_bus = k < saved.chargers();
                    assert_eq!(master.driver(k).is_some(), on_bus);
                    assert_eq!(master.address_of(k), on_bus.then(|| saved.address_of(k)));
                }
            }
            _ => {
                if let Some(e) = master.poll(now, &mut out) {
                    on_event(e, &mut answered);
                }
            }
        }
    }
    // The bus falls silent: within the client's timeouts every request is answered.
    for _ in 0..10_000 {
        while let Some(e) = master.poll(now, &mut out) {
            on_event(e, &mut answered);
        }
        let _ = master.poll_transmit(now, &[0; MAX_CHARGERS]);
        if submitted == answered && !master.gateway_busy() {
            break;
        }
        let next = master.poll_timeout(now);
        assert!(next >= now, "deadline {next} in the past of {now}");
        now = next
            .max(now + Duration::from_micros(1))
            .min(now + Duration::from_secs(1));
    }
    assert_eq!(submitted, answered, "every submitted request answered once");
}
