// The balancer fuzz target's driver, shared with its property test (`include!`d by
// core/fuzz/fuzz_targets/balancer.rs and core/tests/sharing.rs): one definition of
// what is checked.

/// Runs one input through a [`Balancer`] as a product would, with everything from
/// outside hostile: a random site (one to eight chargers, any wiring, maximum, priority,
/// site maximum, phases, mode), arbitrary grid currents (or none) at arbitrary times,
/// arbitrary charger read-backs (any `u32` per phase, any state code, silent or not) for
/// any charger index (also beyond the count), override caps, and new configurations
/// while it runs. Checks after every tick: nothing panics, every charger's value is 0 or
/// between the minimum and its maximum (and the cap), chargers beyond the count get 0,
/// and the next tick is never in the past of a tick just done. Panics when a check fails.
pub fn run(data: &[u8]) {
    use p1lb_core::balancer::ChargerReading;
    use p1lb_core::config::{MAX_CHARGERS, address};
    use p1lb_core::time::{Duration, Instant};

    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let site = |next: &mut dyn FnMut() -> Option<u8>| {
        let mut c = Config::default();
        let b = next().unwrap_or(0);
        let _ = c.set(address::CHARGER_COUNT, u16::from(b % 8) + 1);
        let _ = c.set(address::CONTROL_MODE, u16::from((b >> 3) & 1));
        let _ = c.set(address::PHASES, if b & 0x10 != 0 { 1 } else { 3 });
        let _ = c.set(address::SITE_MAX_CURRENT, [0, 6000, 16_000, 40_000][usize::from(b >> 6)]);
        let _ = c.set(address::CHARGER_MIN_CURRENT, [6000, 0, 8000, 6000][usize::from((b >> 5) & 3)]);
        for k in 0..MAX_CHARGERS {
            let w = next().unwrap_or(0);
            let _ = c.set(address::CHARGER1_WIRING + 3 * k as u16, u16::from(w % 7));
            let _ = c.set_max_of_ma(k, [0, 6000, 10_000, 32_000][usize::from((w >> 3) & 3)]);
            let _ = c.set_priority_of(k, (w >> 5) & 7);
        }
        // An inconsistent set is what a product never runs: the defaults then.
        if c.validate().is_err() {
            c = Config::default();
        }
        c
    };
    let mut cfg = site(&mut next);
    let mut b = Balancer::new(cfg, Instant::ZERO);
    let mut now = Instant::ZERO;
    let mut cap = u32::MAX;
    let word = |next: &mut dyn FnMut() -> Option<u8>| -> u32 {
        u32::from_le_bytes([next().unwrap_or(0), next().unwrap_or(0), next().unwrap_or(0), next().unwrap_or(0)])
    };
    while let Some(op) = next() {
        match op % 6 {
            0 => now += Duration::from_millis(u64::from(next().unwrap_or(0)) * 40),
            1 => {
                let mut grid = [None; 3];
                for g in &mut grid {
                    let v = word(&mut next);
                    if v & 1 == 0 {
                        // Mostly plausible currents, sometimes anything at all.
                        *g = Some(if v & 2 == 0 { (v as i32) % 40_000 } else { v as i32 });
                    }
                }
                b.on_reading(now, grid);
            }
            2 => {
                let k = usize::from(next().unwrap_or(0) % 10);
                let flags = next().unwrap_or(0);
                let mut current_ma = [None; 3];
                for c in &mut current_ma {
                    let v = word(&mut next);
                    if v & 1 == 0 {
                        *c = Some(if v & 2 == 0 { v % 40_000 } else { v });
                    }
                }
                let reading = ChargerReading {
                    current_ma,
                    state: (flags & 1 == 0).then_some(flags >> 4),
                    silent: flags & 2 != 0,
                    exception: flags & 4 != 0,
                };
                b.on_charger(now, k, &reading, flags & 8 == 0);
            }
            3 => {
                b.tick(now);
                let min = cfg.charger_min_ma();
                for k in 0..MAX_CHARGERS {
                    let s = b.sent_of_ma(k);
                    if k >= cfg.chargers() {
                        assert_eq!(s, 0, "charger {k} beyond the count");
                        continue;
                    }
                    assert!(s == 0 || s >= min, "charger {k}: {s} below the minimum {min}");
                    assert!(s <= cfg.max_of_ma(k), "charger {k}: {s} above its maximum");
                    assert!(s <= cap, "charger {k}: {s} above the cap {cap}");
                    assert!(s <= 63_000);
                }
                assert!(b.next_tick() > now || b.next_tick() == now, "a tick due in the past");
            }
            4 => {
                let v = word(&mut next) % 70_000;
                cap = v;
                b.set_cap(v);
                // The cap applies from the next tick on.
                b.tick(now);
            }
            _ => {
                cfg = site(&mut next);
                b.apply_config(cfg);
                // The new maximum applies from the next tick on.
                b.tick(now);
            }
        }
    }
}
