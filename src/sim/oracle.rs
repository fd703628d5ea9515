//! The oracle: the best limit possible each second, knowing the house load exactly and
//! acting with no delay. Its car (identical to the real one, but following at once)
//! charges the most energy any balancer could within the upper limit: the 100 % mark.
//!
//! `limit = clamp(upper (1015) − highest house phase current, 0, min(1010, 1000))`,
//! and 0 when that is below the charger minimum (1025). "Highest" is over the phases the
//! car charges on (and the connection has, 1011): for a three-phase car that is every
//! phase; a single-phase car is limited only by the house load on its own phase, which
//! is what a perfect balancer could give it.

use p1lb_core::config::Config;

use super::house::Phases;

/// The oracle's limit, mA, for the house currents `house_a` (A per phase).
pub fn limit_ma(cfg: &Config, cap_ma: u32, car_phases: Phases, house_a: [f64; 3]) -> u32 {
    let n = usize::from(cfg.phases());
    let highest = house_a
        .iter()
        .zip(car_phases.mask())
        .take(n)
        .filter(|(_, used)| *used)
        .map(|(a, _)| *a)
        .fold(f64::NEG_INFINITY, f64::max);
    let highest_ma = if highest.is_finite() {
        (highest * 1000.0).round() as i64
    } else {
        // The car is on a phase the balancer does not watch: nothing limits it.
        i64::MIN / 2
    };
    let max = i64::from(cfg.charger_max_ma().min(cap_ma));
    let limit = (i64::from(cfg.upper_ma()) - highest_ma).clamp(0, max);
    let limit = u32::try_from(limit).unwrap_or(0);
    if limit < cfg.charger_min_ma() {
        0
    } else {
        limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_under_the_upper_limit() {
        let cfg = Config::default();
        let cap = cfg.charger_max_ma();
        assert_eq!(limit_ma(&cfg, cap, Phases::Three, [2.0, 3.0, 1.0]), 16_000);
        assert_eq!(limit_ma(&cfg, cap, Phases::Three, [2.0, 12.5, 1.0]), 9_500);
        // Below the charger minimum: pause.
        assert_eq!(limit_ma(&cfg, cap, Phases::Three, [17.0, 3.0, 1.0]), 0);
        // Export leaves the whole charger.
        assert_eq!(
            limit_ma(&cfg, cap, Phases::Three, [-9.0, -9.0, -9.0]),
            16_000
        );
        // A single-phase car on L1 only minds L1.
        assert_eq!(
            limit_ma(&cfg, cap, Phases::One(0), [8.0, 20.0, 1.0]),
            14_000
        );
        // The override cap.
        assert_eq!(
            limit_ma(&cfg, 10_000, Phases::Three, [1.0, 1.0, 1.0]),
            10_000
        );
    }
}
