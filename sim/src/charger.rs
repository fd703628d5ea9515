//! The simulated ABB Terra AC (charger as secondary): its registers as
//! abb-terra-ac.md has them, answering Modbus RTU frames ([`TerraSim::answer`]). Sans-IO:
//! the simulator's bus ([`crate::bus`]) drives it on a byte-timed line, `p1lb
//! sim-charger` serves it on a serial port and the daemon on its in-process bus (`p1lb
//! run --rs485 sim`, the default run). One definition of the charger.
//!
//! Registers: the status block 0x4000–0x4024 (FC 03, and FC 04 as some integrations
//! use), 0x4100 (limit, 0.001 A, 32 bits, FC 16 of two registers), 0x4103 (lock), 0x4105
//! (start/stop), 0x4106 (communication timeout, 10–65535 s), 0x4109 (fallback limit, A);
//! read-backs at 0x4020 / 0x4022 / 0x4024. It starts as after a reboot: limit 32 A,
//! fallback 256. Its currents are what a car model outside sets
//! ([`TerraSim::measured_ma`]), else a built-in car that draws the applied limit (capped
//! at 16 A) on three phases when it is at least 6 A, else nothing.
//!
//! Never panics on any frame: a frame that is not for its address, or not a frame, is
//! not answered (as a real charger); a bad request is answered with an exception.

use p1lb_core::modbus::{Exception, Frame, MAX_ADU, Request, Response, Words, exception_reply};
/// The charger's rating (0x4006, the installer's maximum), mA: it holds no higher limit.
pub const RATING_MA: u32 = 32_000;

/// The most the simulated car draws, mA.
pub const CAR_MAX_MA: u32 = 16_000;

/// The simulated charger's registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerraSim {
    /// 0x4100, mA.
    pub limit_ma: u32,
    /// 0x4106, s.
    pub timeout_s: u16,
    /// 0x4109, A.
    pub fallback_a: u16,
    /// 0x4103.
    pub locked: u16,
    /// 0x4105.
    pub stopped: u16,
    /// What the charger's own meter measured of the car, mA per phase (0x4010–0x4015),
    /// when a car model outside sets it; `None`: the built-in car ([`TerraSim::current_ma`]).
    pub measured_ma: Option<[u32; 3]>,
    /// Cut from the line (powered off, cable cut): it hears and answers nothing, its
    /// registers kept as they are.
    pub silent: bool,
    /// A car is plugged in: the charging state (0x400D) is 2 (B2, plugged, ready) or 4
    /// (C2, charging, while its measured current is above 0); with no car it is 0 (A,
    /// idle). True after a reboot (the built-in car is always there).
    pub car_connected: bool,
}

impl Default for TerraSim {
    fn default() -> Self {
        TerraSim::new()
    }
}

impl TerraSim {
    /// As after a reboot: limit 32 A, fallback 256, timeout 60 s.
    pub fn new() -> TerraSim {
        TerraSim {
            limit_ma: 32_000,
            timeout_s: 60,
            fallback_a: 256,
            locked: 0,
            stopped: 0,
            measured_ma: None,
            silent: false,
            car_connected: true,
        }
    }

    /// The limit the charger applies to the car, mA: the last 0x4100 written (no more
    /// than its rating), 0 while stopped (0x4105).
    pub fn applied_ma(&self) -> u32 {
        if self.stopped == 0 { self.limit_ma } else { 0 }
    }

    /// What the built-in car draws per phase, mA.
    pub fn current_ma(&self) -> u32 {
        if self.limit_ma >= 6000 && self.stopped == 0 {
            self.limit_ma.min(CAR_MAX_MA)
        } else {
            0
        }
    }

    /// Register `addr` of the status block, if it is one.
    pub fn word(&self, addr: u16) -> Option<u16> {
        let hi = |v: u32| (v >> 16) as u16;
        let lo = |v: u32| (v & 0xFFFF) as u16;
        let pair = |base: u16, v: u32| if addr == base { hi(v) } else { lo(v) };
        let i = self.current_ma();
        let charging = match self.measured_ma {
            Some(m) => m.iter().any(|&a| a > 0),
            None => i > 0,
        };
        Some(match addr {
            0x4000..=0x4003 => [0x0122, 0x0001, 0x2625, 0x0001][usize::from(addr - 0x4000)],
            0x4004 | 0x4005 => pair(0x4004, 0x0108_0000),
            0x4006 | 0x4007 => pair(0x4006, RATING_MA),
            0x4008 | 0x4009 => 0,
            0x400A | 0x400B => pair(0x400A, 0x0111),
            0x400C => 0,
            0x400D => {
                let state: u16 = match (self.car_connected, charging) {
                    (false, _) => 0,
                    (true, true) => 4,
                    (true, false) => 2,
                };
                state << 8
            }
            0x400E | 0x400F => pair(0x400E, self.limit_ma.min(32_000)),
            0x4010..=0x4015 => {
                let phase = usize::from((addr - 0x4010) / 2);
                let m = self.measured_ma.map_or(i, |m| m[phase]);
                pair(addr & !1, m)
            }
            0x4016..=0x401B => pair(addr & !1, 2300),
            0x401C | 0x401D => {
                let total = match self.measured_ma {
                    Some(m) => m.iter().map(|&a| u64::from(a)).sum::<u64>(),
                    None => 3 * u64::from(i),
                };
                pair(
                    0x401C,
                    u32::try_from(230 * total / 1000).unwrap_or(u32::MAX),
                )
            }
            0x401E | 0x401F => 0,
            0x4020 => self.timeout_s,
            0x4021 => 0,
            0x4022 | 0x4023 => pair(0x4022, self.limit_ma),
            0x4024 => self.fallback_a,
            _ => return None,
        })
    }

    /// Handles one request; the reply is written into `out` (its length returned),
    /// and a write's description, if any, into `log`.
    pub fn handle(
        &mut self,
        unit: u8,
        request: &Request<'_>,
        out: &mut [u8; MAX_ADU],
        log: &mut Option<String>,
    ) -> usize {
        let function = request.function();
        let result = self.execute(request, out.len(), log);
        match result {
            Ok(Reply::Regs(regs)) => {
                let words = Words::Native(&regs);
                let response = if matches!(request, Request::ReadInput { .. }) {
                    Response::ReadInput(words)
                } else {
                    Response::ReadHolding(words)
                };
                response.emit_frame(unit, out).unwrap_or(0)
            }
            Ok(Reply::Single { address, value }) => Response::WriteSingle { address, value }
                .emit_frame(unit, out)
                .unwrap_or(0),
            Ok(Reply::Multiple { start, quantity }) => Response::WriteMultiple { start, quantity }
                .emit_frame(unit, out)
                .unwrap_or(0),
            Err(e) => exception_reply(unit, function, e, out),
        }
    }

    /// Answers one frame read off the bus: `None` when it is not a valid frame for
    /// `address` (a real charger stays silent) or the charger is cut from the line
    /// ([`TerraSim::silent`]), else the reply's length in `out`.
    pub fn answer(
        &mut self,
        address: u8,
        frame: &[u8],
        out: &mut [u8; MAX_ADU],
        log: &mut Option<String>,
    ) -> Option<usize> {
        if self.silent {
            return None;
        }
        let f = Frame::new_checked(frame).ok()?;
        if f.unit() != address {
            return None;
        }
        Some(match Request::parse(f.pdu()) {
            Ok(req) => self.handle(address, &req, out, log),
            Err(e) => exception_reply(address, f.function(), e.exception(), out),
        })
    }

    fn execute(
        &mut self,
        request: &Request<'_>,
        _cap: usize,
        log: &mut Option<String>,
    ) -> Result<Reply, Exception> {
        match *request {
            Request::ReadHolding { start, quantity } | Request::ReadInput { start, quantity } => (0
                ..quantity)
                .map(|k| {
                    start
                        .checked_add(k)
                        .and_then(|a| self.word(a))
                        .ok_or(Exception::IllegalDataAddress)
                })
                .collect::<Result<Vec<u16>, _>>()
                .map(Reply::Regs),
            Request::WriteSingle { address, value } => {
                match address {
                    0x4103 => self.locked = value,
                    0x4105 => self.stopped = value,
                    0x4106 if value >= 10 => self.timeout_s = value,
                    0x4106 => return Err(Exception::IllegalDataValue),
                    0x4109 => self.fallback_a = value,
                    _ => return Err(Exception::IllegalDataAddress),
                }
                let unit = match address {
                    0x4106 => " s",
                    0x4109 => " A",
                    _ => "",
                };
                *log = Some(format!("write 0x{address:04X} = {value}{unit}"));
                Ok(Reply::Single { address, value })
            }
            Request::WriteMultiple { start, values } => {
                let quantity = values.len() as u16;
                match (start, values.get(0), values.get(1), values.len()) {
                    (0x4100, Some(hi), Some(lo), 2) => {
                        let v = (u32::from(hi) << 16) | u32::from(lo);
                        // As a real Terra AC: it holds no more than its rating.
                        self.limit_ma = v.min(RATING_MA);
                        *log = Some(format!("write 0x4100 = {v} mA"));
                    }
                    (0x4100, ..) => return Err(Exception::IllegalDataValue),
                    (0x4103 | 0x4105 | 0x4106 | 0x4109, Some(v), _, 1) => {
                        return self
                            .execute(
                                &Request::WriteSingle {
                                    address: start,
                                    value: v,
                                },
                                0,
                                log,
                            )
                            .map(|_| Reply::Multiple { start, quantity });
                    }
                    _ => return Err(Exception::IllegalDataAddress),
                }
                Ok(Reply::Multiple { start, quantity })
            }
        }
    }
}

enum Reply {
    Regs(Vec<u16>),
    Single { address: u16, value: u16 },
    Multiple { start: u16, quantity: u16 },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The charging state (0x400D's high byte) is honest: 0 with no car, 2 with a car
    /// plugged in and drawing nothing, 4 while it draws.
    #[test]
    fn the_charging_state_follows_the_car() {
        let mut sim = TerraSim::new();
        sim.measured_ma = Some([0; 3]);
        assert_eq!(sim.word(0x400D), Some(2 << 8));
        sim.measured_ma = Some([0, 7_000, 0]);
        assert_eq!(sim.word(0x400D), Some(4 << 8));
        sim.car_connected = false;
        sim.measured_ma = Some([0; 3]);
        assert_eq!(sim.word(0x400D), Some(0));
    }

    #[test]
    fn reboot_values_and_limit_write_read_back() {
        let mut sim = TerraSim::new();
        assert_eq!(sim.word(0x4022), Some(0));
        assert_eq!(sim.word(0x4023), Some(32_000));
        assert_eq!(sim.word(0x4024), Some(256));
        assert_eq!(sim.word(0x4025), None);
        let mut out = [0u8; MAX_ADU];
        let mut log = None;
        let values = [0u16, 16_000];
        let req = Request::WriteMultiple {
            start: 0x4100,
            values: Words::Native(&values),
        };
        let len = sim.handle(1, &req, &mut out, &mut log);
        assert!(len > 0);
        assert_eq!(log.as_deref(), Some("write 0x4100 = 16000 mA"));
        assert_eq!(sim.word(0x4023), Some(16_000));
        assert_eq!(sim.word(0x4011), Some(16_000));
        let req = Request::WriteSingle {
            address: 0x4106,
            value: 5,
        };
        sim.handle(1, &req, &mut out, &mut log);
        assert_eq!(out[1], 0x86);
        assert_eq!(out[2], 3);
        let req = Request::ReadHolding {
            start: 0x4000,
            quantity: 0x25,
        };
        let len = sim.handle(1, &req, &mut out, &mut log);
        assert_eq!(len, 5 + 2 * 0x25);
    }
}
