// The balancer fuzz target's driver, shared with its property test (`include!`d by
// core/fuzz/fuzz_targets/balancer.rs and core/tests/sharing.rs): one definition of
// what is checked.

/// Runs one input through a [`Balancer`] as a product would, with everything from
/// outside hostile: a random site (one to eight chargers, any wiring, maximum, priority,
/// site maximum, phases, mode, capacity tariff, charge mode), arbitrary grid currents (or none) at
/// arbitrary times, whole readings (any meter clock, energy, demand, peak, power),
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
        let capacity = next().unwrap_or(0);
        let _ = c.set(address::CAPACITY_MODE, u16::from(capacity % 3));
        let _ = c.set(address::CAPACITY_TARGET, 1000 + u16::from(capacity >> 2) * 500);
        // The charge mode, its delays (often 0: the timers at their edge) and the start
        // and import thresholds.
        let solar = next().unwrap_or(0);
        let _ = c.set(address::CHARGE_MODE, u16::from(solar & 3));
        let _ = c.set(address::SOLAR_START_DELAY, u16::from((solar >> 2) & 3) * 3);
        let _ = c.set(address::SOLAR_STOP_DELAY, u16::from((solar >> 4) & 3) * 5);
        let _ = c.set(address::SOLAR_START_SURPLUS, [0, 1400, 6000, 60_000][usize::from(solar >> 6)]);
        let _ = c.set(address::SOLAR_MAX_IMPORT, u16::from(solar >> 5) * 700);
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
        match op % 7 {
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
            5 => {
                // A whole telegram's reading: its clock, energy, demand, peak, power
                // and voltages, mostly plausible, sometimes anything.
                use p1lb_core::p1::{Peak, PhaseReading, Reading, Tariffs, Timestamp};
                let t = word(&mut next);
                let timestamp = (t & 1 == 0).then(|| Timestamp {
                    year: 2000 + (t >> 1) as u16 % 100,
                    month: 1 + (t >> 8) as u8 % 12,
                    day: 1 + (t >> 12) as u8 % 31,
                    hour: (t >> 17) as u8 % 24,
                    minute: (t >> 22) as u8 % 60,
                    second: next().unwrap_or(0) % 61,
                    summer: [None, Some(true), Some(false), None][usize::from(next().unwrap_or(0) & 3)],
                });
                let energy = word(&mut next);
                let power = word(&mut next) as i32;
                let volts = word(&mut next);
                let mut phases = [PhaseReading::default(); 3];
                for (p, ph) in phases.iter_mut().enumerate() {
                    ph.voltage_dv = Some(((volts >> (8 * p)) & 0xFF) as i32 * 10);
                    ph.power_import_w = Some((power / 3).max(0));
                    ph.power_export_w = Some((-(power / 3)).max(0));
                }
                let r = Reading {
                    timestamp,
                    import_wh: Tariffs { t1: (energy & 1 == 0).then_some(i64::from(energy)), t2: None, total: None },
                    average_demand_w: (power & 2 == 0).then_some(i64::from(power)),
                    month_peak: (energy & 2 == 0).then_some(Peak { at: timestamp, power_w: i64::from(volts) }),
                    // Import or export, or neither printed (the phases' then).
                    power_import_w: (power & 4 == 0).then_some(i64::from(power.max(0))),
                    power_export_w: (power & 4 == 0).then_some(i64::from(power.saturating_neg().max(0))),
                    phases,
                    ..Reading::default()
                };
                b.on_telegram(now, &r);
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
