//! Solar panels for the solar charge modes (issue 18): a clear-sky day at the latitude
//! of Belgium and the Netherlands, by time of day and day of year, times a random sky.
//!
//! The clear sky: the sun's position from the date and the meter's clock (its UTC
//! offset, summer time included, the longitude and the equation of time), the direct
//! beam through the air mass (Kasten–Young air mass, Meinel attenuation), a diffuse sky
//! of a tenth of it and a little ground reflection, on panels of a given tilt and
//! orientation; the modules lose 0.4 %/K above 25 °C (a cell temperature from the
//! season's air temperature and the irradiance), the rest of the system 12 %
//! (inverter, wiring, mismatch), and the inverter clips at its AC rating. A 7 kWp roof
//! facing south at 35° gives about 6 kW at noon in June and 3.4 kW on a clear January
//! day (cold cells, a low sun nearly square to the panels).
//!
//! The sky ([`Sky`]): the sun is behind a cloud a given fraction of the time (the
//! cover, by hour of the day), in stretches of shade and sun whose lengths are
//! log-normal (the shade's median given, the sun's set by the cover), each cloud
//! letting through 10–35 % of the clear sky (its diffuse light) with edges of 2–8 s:
//! the surplus jumps by kilowatts within seconds. Half the clouds leave the panels in
//! a brighter moment as they go (the light their edge reflects: 5–25 % above the clear
//! sky for 5–30 s, as measured in the field), up to the inverter's rating. A cover of 1
//! is an overcast sky: its thickness drifts over minutes, with no sun in between.
//!
//! The inverter is three-phase (the power split evenly) or single-phase.

use super::house::Phases;
use super::rng::Rng;
use super::time::DateTime;

/// Latitude of the site, degrees north (Belgium and the Netherlands: 50–53°).
pub const LATITUDE_DEG: f64 = 51.0;
/// Longitude of the site, degrees east.
pub const LONGITUDE_DEG: f64 = 4.9;

/// The sky of a day.
#[derive(Debug, Clone, PartialEq)]
pub struct Sky {
    /// The cloud cover through the day: `(from local hour, fraction of the time the
    /// sun is behind a cloud)`, in time order; the first holds before its hour too. 0 is
    /// a clear sky, 1 an overcast one.
    pub cover: Vec<(f64, f64)>,
    /// The median time the sun stays behind one cloud, s.
    pub shade_median_s: f64,
    /// What a cloud lets through, fraction of the clear sky: drawn in this range.
    pub shade: (f64, f64),
}

impl Sky {
    /// A clear sky all day.
    pub fn clear() -> Sky {
        Sky {
            cover: vec![(0.0, 0.0)],
            shade_median_s: 60.0,
            shade: (0.15, 0.3),
        }
    }

    /// Passing clouds all day: the sun behind a cloud `cover` of the time, each cloud
    /// `median_s` long in the median.
    pub fn clouds(cover: f64, median_s: f64) -> Sky {
        Sky {
            cover: vec![(0.0, cover)],
            shade_median_s: median_s,
            shade: (0.1, 0.35),
        }
    }

    fn cover_at(&self, hour: f64) -> f64 {
        let mut c = self.cover.first().map_or(0.0, |x| x.1);
        for &(from, v) in &self.cover {
            if hour >= from {
                c = v;
            }
        }
        c.clamp(0.0, 1.0)
    }
}

/// Solar panels, their inverter and the sky over them.
#[derive(Debug, Clone, PartialEq)]
pub struct Pv {
    /// The panels' peak power, kWp.
    pub kwp: f64,
    /// The inverter's AC rating, kW: the output is clipped there.
    pub inverter_kw: f64,
    /// The inverter's phases (the power split evenly).
    pub phases: Phases,
    /// The panels' tilt from horizontal, degrees.
    pub tilt_deg: f64,
    /// Which way they face, degrees from north (180 = south, 90 = east).
    pub azimuth_deg: f64,
    /// The sky.
    pub sky: Sky,
}

impl Pv {
    /// `kwp` facing south at 35° on a three-phase inverter rated at 90 % of it, under
    /// `sky`.
    pub fn south(kwp: f64, sky: Sky) -> Pv {
        Pv {
            kwp,
            inverter_kw: kwp * 0.9,
            phases: Phases::Three,
            tilt_deg: 35.0,
            azimuth_deg: 180.0,
            sky,
        }
    }
}

/// One stretch of the sky: from `start_s`, the panels get `level` of the clear sky,
/// reached from the level before over `edge_s` centred on `start_s`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stretch {
    start_s: f64,
    level: f64,
    edge_s: f64,
}

/// The panels during a run: [`PvRun::kw`] at each second.
#[derive(Debug, Clone)]
pub struct PvRun {
    pv: Pv,
    /// The run's start, UTC seconds since 1970.
    utc0: i64,
    sky: Vec<Stretch>,
    cursor: usize,
}

/// Log-normal around `median` with spread `sigma`.
fn log_normal(rng: &mut Rng, median: f64, sigma: f64) -> f64 {
    median * (sigma * rng.normal()).exp()
}

impl PvRun {
    /// The panels for a run starting at `start` (the meter's local clock), lasting
    /// `duration_s`, the sky drawn from `rng`.
    pub fn new(pv: &Pv, start: DateTime, duration_s: u32, mut rng: Rng) -> PvRun {
        let offset = if start.is_summer() { 7200 } else { 3600 };
        let utc0 = start.epoch_s() - offset;
        let local_hour = |t: f64| start.plus(t.max(0.0) as u32).hour_f();
        let sky = &pv.sky;
        let mut out: Vec<Stretch> = Vec::new();
        let end = f64::from(duration_s) + 1.0;
        let mut t = 0.0;
        let mut shaded = rng.chance(sky.cover_at(local_hour(0.0)));
        while t < end {
            let cover = sky.cover_at(local_hour(t));
            let overcast = cover >= 0.99;
            let was_shade = out.last().is_some_and(|s| s.level < 0.9);
            if overcast || (shaded && cover > 0.0) {
                // Behind a cloud; overcast: the layer thickens and thins over minutes.
                let (len, edge) = if overcast {
                    (rng.range(300.0, 900.0), rng.range(30.0, 120.0))
                } else {
                    let len = log_normal(&mut rng, sky.shade_median_s, 0.8).clamp(15.0, 1800.0);
                    (len, rng.range(2.0, 8.0))
                };
                out.push(Stretch {
                    start_s: t,
                    level: rng.range(sky.shade.0, sky.shade.1),
                    edge_s: edge.min(len),
                });
                t += len;
            } else {
                // In the sun until the next cloud (a clear sky: re-read the cover every
                // half hour).
                let len = if cover <= 0.0 {
                    1800.0
                } else {
                    let median = sky.shade_median_s * (1.0 - cover) / cover;
                    log_normal(&mut rng, median, 0.8).clamp(10.0, 7200.0)
                };
                let edge = rng.range(2.0, 8.0).min(len);
                let bright = if was_shade && rng.chance(0.5) {
                    rng.range(5.0, 30.0).min(len * 0.5)
                } else {
                    0.0
                };
                if bright > 0.0 {
                    out.push(Stretch {
                        start_s: t,
                        level: rng.range(1.05, 1.25),
                        edge_s: edge,
                    });
                    out.push(Stretch {
                        start_s: t + bright,
                        level: 1.0,
                        edge_s: rng.range(3.0, 10.0).min(bright),
                    });
                } else {
                    out.push(Stretch {
                        start_s: t,
                        level: 1.0,
                        edge_s: edge,
                    });
                }
                t += len;
            }
            shaded = !shaded;
        }
        PvRun {
            pv: pv.clone(),
            utc0,
            sky: out,
            cursor: 0,
        }
    }

    /// The inverter's AC output at second `t_s` of the run, kW. Calls must come in
    /// time order (a cursor walks the sky).
    pub fn kw(&mut self, t_s: u32) -> f64 {
        let clear = self.clear_kw(t_s);
        if clear <= 0.0 {
            return 0.0;
        }
        (clear * self.transmission(f64::from(t_s))).min(self.pv.inverter_kw)
    }

    /// What a clear sky would give at second `t_s` (before the inverter's clipping), kW.
    pub fn clear_kw(&self, t_s: u32) -> f64 {
        let utc = self.utc0 + i64::from(t_s);
        let poa = plane_of_array_w_m2(&self.pv, utc);
        if poa <= 0.0 {
            return 0.0;
        }
        let t_cell = air_temperature_c(utc) + 0.03 * poa;
        let temp = 1.0 - 0.004 * (t_cell - 25.0);
        self.pv.kwp * poa / 1000.0 * temp * 0.88
    }

    /// The sky's transmission at `t`, fraction of the clear sky.
    fn transmission(&mut self, t: f64) -> f64 {
        let s = &self.sky;
        if s.is_empty() {
            return 1.0;
        }
        while self.cursor + 1 < s.len() && s[self.cursor + 1].start_s <= t {
            self.cursor += 1;
        }
        let i = self.cursor;
        let here = s[i];
        if let Some(next) = s.get(i + 1) {
            let from = next.start_s - next.edge_s / 2.0;
            if t > from && next.edge_s > 0.0 {
                let f = ((t - from) / next.edge_s).clamp(0.0, 1.0);
                return here.level + (next.level - here.level) * f;
            }
        }
        if i > 0 && here.edge_s > 0.0 {
            let from = here.start_s - here.edge_s / 2.0;
            if t < here.start_s + here.edge_s / 2.0 {
                let before = s[i - 1].level;
                let f = ((t - from) / here.edge_s).clamp(0.0, 1.0);
                return before + (here.level - before) * f;
            }
        }
        here.level
    }

    /// The inverter's phases.
    pub fn phases(&self) -> Phases {
        self.pv.phases
    }
}

/// The season's air temperature by day (3 °C mid-January, 19 °C mid-July), °C.
fn air_temperature_c(utc: i64) -> f64 {
    let doy = day_of_year(utc);
    11.0 - 8.0 * (std::f64::consts::TAU * (doy - 15.0) / 365.0).cos()
}

fn day_of_year(utc: i64) -> f64 {
    let t = DateTime::from_epoch_s(utc);
    let (y, _, _) = t.date();
    let jan1 = DateTime::new(y, 1, 1, 0, 0).epoch_s();
    ((utc - jan1) as f64 / 86_400.0).floor() + 1.0
}

/// The sun's direction at `utc` (seconds since 1970), as (east, north, up) components
/// of a unit vector.
pub fn sun_vector(utc: i64) -> [f64; 3] {
    let doy = day_of_year(utc);
    let rad = f64::to_radians;
    let decl = rad(23.44) * (std::f64::consts::TAU * (284.0 + doy) / 365.0).sin();
    let b = std::f64::consts::TAU * (doy - 81.0) / 364.0;
    let eot_min = 9.87 * (2.0 * b).sin() - 7.53 * b.cos() - 1.5 * b.sin();
    let utc_h = utc.rem_euclid(86_400) as f64 / 3600.0;
    let solar_h = utc_h + LONGITUDE_DEG / 15.0 + eot_min / 60.0;
    let h = rad(15.0 * (solar_h - 12.0));
    let phi = rad(LATITUDE_DEG);
    [
        -decl.cos() * h.sin(),
        decl.sin() * phi.cos() - decl.cos() * phi.sin() * h.cos(),
        decl.sin() * phi.sin() + decl.cos() * phi.cos() * h.cos(),
    ]
}

/// Clear-sky irradiance on the panels at `utc`, W/m².
fn plane_of_array_w_m2(pv: &Pv, utc: i64) -> f64 {
    let sun = sun_vector(utc);
    let up = sun[2];
    if up <= 0.0 {
        return 0.0;
    }
    let elevation = up.asin().to_degrees();
    // Kasten–Young air mass; Meinel's attenuation of the direct beam.
    let air_mass = 1.0 / (up + 0.50572 * (elevation + 6.07995).powf(-1.6364));
    let dni = 1361.0 * 0.7f64.powf(air_mass.powf(0.678));
    let dhi = 0.1 * dni;
    let ghi = dni * up + dhi;
    let (tilt, az) = (pv.tilt_deg.to_radians(), pv.azimuth_deg.to_radians());
    let normal = [tilt.sin() * az.sin(), tilt.sin() * az.cos(), tilt.cos()];
    let cos_incidence: f64 = normal.iter().zip(sun).map(|(a, b)| a * b).sum();
    dni * cos_incidence.max(0.0)
        + dhi * (1.0 + tilt.cos()) / 2.0
        + 0.2 * ghi * (1.0 - tilt.cos()) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(pv: &Pv, start: DateTime, seed: u64) -> Vec<f64> {
        let mut run = PvRun::new(pv, start, 86_400, Rng::stream(seed, 6));
        (0..86_400).map(|t| run.kw(t)).collect()
    }

    /// A clear June day and a clear January day: noon power, the shape of the day, the
    /// sun's times.
    #[test]
    fn clear_days_by_season() {
        let pv = Pv::south(7.0, Sky::clear());
        let june = day(&pv, DateTime::new(2025, 6, 21, 0, 0), 1);
        let noon = june[13 * 3600 + 40 * 60];
        assert!((5.4..6.3).contains(&noon), "June noon {noon} kW");
        // Sunrise about 05:30, sunset about 22:00 (summer time).
        assert_eq!(june[5 * 3600], 0.0);
        assert!(june[6 * 3600 + 30 * 60] > 0.05);
        assert!(june[21 * 3600 + 30 * 60] < 0.2);
        assert_eq!(june[22 * 3600 + 30 * 60], 0.0);
        let kwh: f64 = june.iter().sum::<f64>() / 3600.0;
        assert!((38.0..52.0).contains(&kwh), "June day {kwh} kWh");
        let jan = day(&pv, DateTime::new(2025, 1, 15, 0, 0), 1);
        let noon = jan[12 * 3600 + 40 * 60];
        assert!((2.8..4.0).contains(&noon), "January noon {noon} kW");
        assert_eq!(jan[8 * 3600], 0.0);
        assert_eq!(jan[17 * 3600 + 30 * 60], 0.0);
    }

    /// Passing clouds: the output jumps by kilowatts within seconds, the shade takes
    /// about the cover's share of the day, and stretches last tens of seconds to
    /// minutes.
    #[test]
    fn passing_clouds_jump_within_seconds() {
        let pv = Pv::south(8.0, Sky::clouds(0.4, 90.0));
        let kw = day(&pv, DateTime::new(2025, 6, 18, 0, 0), 7);
        let mut clear = PvRun::new(&pv, DateTime::new(2025, 6, 18, 0, 0), 1, Rng::new(0));
        let window = 11 * 3600..16 * 3600;
        let shaded = window
            .clone()
            .filter(|&t| kw[t as usize] < 0.5 * clear.clear_kw(t))
            .count() as f64
            / (5.0 * 3600.0);
        assert!((0.25..0.55).contains(&shaded), "shaded {shaded}");
        // Steps of more than 3 kW within 10 s, many times an hour.
        let jumps = window
            .clone()
            .filter(|&t| (kw[t as usize + 10] - kw[t as usize]).abs() > 3.0)
            .count();
        assert!(jumps > 100, "{jumps}");
        // Above the clear sky at times (cloud edges), never above the inverter.
        let over = window
            .clone()
            .filter(|&t| kw[t as usize] > clear.clear_kw(t) * 1.03)
            .count();
        assert!(over > 60, "{over}");
        assert!(kw.iter().all(|&k| k <= 7.2 + 1e-9));
        let _ = clear.kw(0);
    }

    /// Overcast: a fraction of the clear sky, no sun breaking through.
    #[test]
    fn overcast_stays_dim() {
        let sky = Sky {
            cover: vec![(0.0, 1.0)],
            shade_median_s: 600.0,
            shade: (0.1, 0.25),
        };
        let pv = Pv::south(7.0, sky);
        let kw = day(&pv, DateTime::new(2025, 1, 15, 0, 0), 3);
        let peak = kw.iter().copied().fold(0.0, f64::max);
        assert!(peak < 0.8 && peak > 0.1, "{peak}");
    }
}
