//! A simulated ABB Terra AC (abb-terra-ac.md): the register behaviour the driver
//! relies on (read-backs, reboot values 32 A / 256, exceptions, silence), as typed
//! exchanges and as RTU frames on a simulated bus.

use p1lb_core::abb::{REG_FALLBACK, REG_LIMIT, REG_TIMEOUT, Request, STATUS_LEN, STATUS_START};
use p1lb_core::modbus::{self, Frame, MAX_ADU, Response, Words};

/// The charger's registers that matter here.
pub struct Charger {
    pub limit_ma: u32,
    pub fallback_a: u16,
    pub timeout_s: u16,
    pub current_ma: [u32; 3],
    /// 0x4006: the installer's maximum; the charger holds no more than this.
    pub rating_ma: u32,
    /// The charger keeps the limit rounded down to this step (1 = exactly).
    pub step_ma: u32,
    pub state: u8,
    pub silent: bool,
    pub writes: Vec<Request>,
}

impl Charger {
    pub fn new() -> Self {
        // As after a reboot.
        Charger {
            limit_ma: 32_000,
            fallback_a: 256,
            timeout_s: 60,
            current_ma: [0; 3],
            rating_ma: 32_000,
            step_ma: 1,
            state: 0,
            silent: false,
            writes: Vec::new(),
        }
    }

    pub fn reboot(&mut self) {
        self.limit_ma = 32_000;
        self.fallback_a = 256;
    }

    pub fn block(&self) -> Vec<u16> {
        let mut r = vec![0u16; STATUS_LEN as usize];
        let mut put2 = |addr: u16, v: u32| {
            let i = usize::from(addr - STATUS_START);
            r[i] = (v >> 16) as u16;
            r[i + 1] = v as u16;
        };
        put2(0x4006, self.rating_ma);
        put2(0x400E, self.limit_ma.min(32_000));
        put2(0x4010, self.current_ma[0]);
        put2(0x4012, self.current_ma[1]);
        put2(0x4014, self.current_ma[2]);
        put2(0x4022, self.limit_ma);
        r[usize::from(0x400D - STATUS_START)] = u16::from(self.state) << 8;
        r[usize::from(0x4020 - STATUS_START)] = self.timeout_s;
        r[usize::from(0x4024 - STATUS_START)] = self.fallback_a;
        r
    }

    /// Performs a request; returns the registers read (or an empty slice).
    pub fn exchange(&mut self, req: Request) -> Result<Vec<u16>, Option<u8>> {
        if self.silent {
            return Err(None);
        }
        match req {
            Request::Read { start, len } if start == STATUS_START && len == STATUS_LEN => {
                Ok(self.block())
            }
            Request::Read { .. } => Err(Some(2)),
            Request::WriteOne {
                address: REG_TIMEOUT,
                value,
            } => {
                self.writes.push(req);
                self.timeout_s = value;
                Ok(vec![])
            }
            Request::WriteOne {
                address: REG_FALLBACK,
                value,
            } => {
                self.writes.push(req);
                self.fallback_a = value;
                Ok(vec![])
            }
            Request::WriteTwo {
                address: REG_LIMIT,
                values,
            } => {
                self.writes.push(req);
                let v = (u32::from(values[0]) << 16) | u32::from(values[1]);
                let v = v.min(self.rating_ma);
                self.limit_ma = v - v % self.step_ma.max(1);
                Ok(vec![])
            }
            _ => Err(Some(2)),
        }
    }
}

impl Charger {
    /// Answers one RTU request frame for unit `unit` as the charger on the bus would:
    /// the reply frame, or nothing (silent, another unit, or a bad frame).
    pub fn on_frame(&mut self, unit: u8, frame: &[u8]) -> Option<Vec<u8>> {
        let f = Frame::new_checked(frame).ok()?;
        if f.unit() != unit {
            return None;
        }
        let req = modbus::Request::parse(f.pdu()).ok()?;
        let typed = match req {
            modbus::Request::ReadHolding { start, quantity }
            | modbus::Request::ReadInput { start, quantity } => Request::Read {
                start,
                len: quantity,
            },
            modbus::Request::WriteSingle { address, value } => Request::WriteOne { address, value },
            modbus::Request::WriteMultiple { start, values } if values.len() == 2 => {
                Request::WriteTwo {
                    address: start,
                    values: [values.get(0)?, values.get(1)?],
                }
            }
            _ => return None,
        };
        let mut out = [0u8; MAX_ADU];
        let n = match (self.exchange(typed), req) {
            (Err(None), _) => return None,
            (Err(Some(code)), r) => Response::Exception {
                function: r.function(),
                code,
            }
            .emit_frame(unit, &mut out)
            .ok()?,
            (Ok(regs), modbus::Request::ReadHolding { .. }) => {
                Response::ReadHolding(Words::Native(&regs))
                    .emit_frame(unit, &mut out)
                    .ok()?
            }
            (Ok(regs), modbus::Request::ReadInput { .. }) => {
                Response::ReadInput(Words::Native(&regs))
                    .emit_frame(unit, &mut out)
                    .ok()?
            }
            (Ok(_), modbus::Request::WriteSingle { address, value }) => {
                Response::WriteSingle { address, value }
                    .emit_frame(unit, &mut out)
                    .ok()?
            }
            (Ok(_), modbus::Request::WriteMultiple { start, values }) => Response::WriteMultiple {
                start,
                quantity: values.len() as u16,
            }
            .emit_frame(unit, &mut out)
            .ok()?,
        };
        Some(out[..n].to_vec())
    }
}
