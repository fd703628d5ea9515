//! A Terra AC's registers, the car behind it and a smart meter's P1 feed, as the
//! end-to-end bus tests model them (tests/real_time/: headroom_bus.rs, shared_bus.rs,
//! capacity_daemon.rs, solar_daemon.rs): the charger's status block from
//! what its own meter measured, the limit, timeout and fallback it was written; a car
//! that follows the applied limit late and ramps; [`OneCharger`], one such unit with its
//! car in real time; the line they answer on ([`BAUD`], [`TURNAROUND`]) and the loop
//! that serves a model there ([`serve_world`]); a DSMR 5 telegram a second over TCP with
//! the grid per phase.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use p1lb::rtu_io::Clock;
use p1lb_core::modbus::{
    Frame, LineConfig, MAX_ADU, Parity, Request, Response, SilenceFramer, Words, exception_reply,
};
use p1lb_core::registers::Exception;

use super::lock;
use p1lb_core::time::Instant as CoreInstant;
use p1lb_sim::meter::{Flavour, MeterValues, PhaseValues, write_telegram};
use p1lb_sim::time::{DateTime, Stamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_serial::SerialPortBuilderExt;

/// The meter's voltage on every phase, V.
pub const VOLTS: f64 = 230.0;

/// The line the units answer on (registers 1031/1032 at their defaults: 9600 8N1).
pub const BAUD: u32 = 9600;
/// From the end of a request to the first byte of a unit's reply.
pub const TURNAROUND: Duration = Duration::from_millis(10);
/// The models' physics step, s.
pub const STEP_S: f64 = 0.01;

/// The charger's own registers.
#[derive(Debug, Clone)]
pub struct Terra {
    /// 0x4100, mA.
    pub limit_ma: u32,
    /// 0x4106, s.
    pub timeout_s: u16,
    /// 0x4109, A.
    pub fallback_a: u16,
    /// Its rating (0x4006), mA: it applies no more.
    pub max_ma: u32,
}

impl Terra {
    /// As after a reboot: limit 32 A, fallback 256 (abb-terra-ac.md); rated `max_ma`.
    pub fn new(max_ma: u32) -> Terra {
        Terra {
            limit_ma: 32_000,
            timeout_s: 60,
            fallback_a: 256,
            max_ma,
        }
    }

    /// The limit it applies, mA.
    pub fn applied_ma(&self) -> u32 {
        self.limit_ma.min(self.max_ma)
    }

    /// Register `addr` of the status block, given the charger's last measurement of
    /// its car per phase (mA, its own L1–L3) and the session's energy.
    pub fn word(&self, addr: u16, phase_ma: [u32; 3], energy_wh: f64) -> Option<u16> {
        let hi = |v: u32| (v >> 16) as u16;
        let lo = |v: u32| (v & 0xFFFF) as u16;
        let pair = |base: u16, v: u32| if addr == base { hi(v) } else { lo(v) };
        let applied_ma = self.applied_ma();
        let base_ma = phase_ma.iter().copied().max().unwrap_or(0);
        let phase_ma = |p: usize| -> u32 { phase_ma[p] };
        let state: u16 = if base_ma > 50 {
            // Charging (C2); bit 7: below the commanded value.
            let below = u64::from(base_ma) + 1000 < u64::from(applied_ma);
            4 | if below { 0x80 } else { 0 }
        } else if applied_ma < 6000 {
            3 // car ready, no PWM (C1)
        } else {
            2 // plugged, ready (B2)
        };
        let volts_dv = [2300u32, 2310, 2295];
        let power_w: u32 = (0..3)
            .map(|p| volts_dv[p] * phase_ma(p) / 10_000)
            .sum::<u32>();
        Some(match addr {
            // Serial number: socket, 11 kW, plant 2, week 24 of 2024, serial 0x42.
            0x4000..=0x4003 => [0x0111, 0x0218, 0x2400, 0x0042][usize::from(addr - 0x4000)],
            0x4004 | 0x4005 => pair(0x4004, 0x0108_0000), // firmware 1.8.0
            0x4006 | 0x4007 => pair(0x4006, self.max_ma),
            0x4008 | 0x4009 => 0,
            0x400A | 0x400B => pair(0x400A, 0x0111), // cable to the car, locked
            0x400C => 0,
            0x400D => state << 8,
            0x400E | 0x400F => pair(0x400E, applied_ma),
            0x4010..=0x4015 => pair(addr & !1, phase_ma(usize::from((addr - 0x4010) / 2))),
            0x4016..=0x401B => pair(addr & !1, volts_dv[usize::from((addr - 0x4016) / 2)]),
            0x401C | 0x401D => pair(0x401C, power_w),
            0x401E | 0x401F => pair(0x401E, energy_wh.max(0.0) as u32),
            0x4020 => self.timeout_s,
            0x4021 => 0,
            0x4022 | 0x4023 => pair(0x4022, self.limit_ma),
            0x4024 => self.fallback_a,
            _ => return None,
        })
    }
}

/// A car behind a charger: follows the limit the charger applies `delay_s` after each
/// change, ramps at `up_a_s` up and `down_a_s` down, draws nothing below `min_a` and at
/// most `max_a` a phase; after a pause, current flows again `resume_s` after a usable
/// limit reaches it (0: at once). Time in s.
#[derive(Debug, Clone)]
pub struct Car {
    /// The grid phases it draws on.
    pub phases: [bool; 3],
    /// From a new limit to the car following it, s.
    pub delay_s: f64,
    /// Ramp up, A/s.
    pub up_a_s: f64,
    /// Ramp down, A/s.
    pub down_a_s: f64,
    /// Below this it pauses (IEC 61851-1), A.
    pub min_a: f64,
    /// Its own maximum per phase, A.
    pub max_a: f64,
    /// From a usable limit after a pause (once the car sees it) to current flowing, s.
    pub resume_s: f64,
    /// Limits received (s, A), not yet followed.
    commands: VecDeque<(f64, f64)>,
    /// The last limit received, A.
    last_command: f64,
    /// The limit the car follows now, A.
    effective: f64,
    /// Current per phase it uses, A.
    pub current: f64,
    /// The contactor is closed (charging or ramping).
    drawing: bool,
    /// A usable limit came back after a pause: current flows again from then.
    resume_at: Option<f64>,
    /// Energy drawn over its phases at [`VOLTS`], Wh.
    pub energy_wh: f64,
}

impl Car {
    /// A car on `phases` with this delay and ramp, 6 A minimum, 16 A maximum, resuming
    /// at once.
    pub fn new(phases: [bool; 3], delay_s: f64, up_a_s: f64, down_a_s: f64) -> Car {
        Car {
            phases,
            delay_s,
            up_a_s,
            down_a_s,
            min_a: 6.0,
            max_a: 16.0,
            resume_s: 0.0,
            commands: VecDeque::new(),
            last_command: 0.0,
            effective: 0.0,
            current: 0.0,
            drawing: false,
            resume_at: None,
            energy_wh: 0.0,
        }
    }

    /// The charger applies `limit_a` at `at_s`.
    pub fn command(&mut self, at_s: f64, limit_a: f64) {
        if limit_a != self.last_command {
            self.commands.push_back((at_s, limit_a));
            self.last_command = limit_a;
        }
    }

    /// One step of `dt` s from `t`.
    pub fn step(&mut self, t: f64, dt: f64) {
        while let Some(&(at, a)) = self.commands.front() {
            if at + self.delay_s > t + 1e-9 {
                break;
            }
            self.effective = a;
            self.commands.pop_front();
        }
        let want = if self.effective >= self.min_a {
            self.effective.min(self.max_a)
        } else {
            0.0
        };
        let target = if want > 0.0 {
            if !self.drawing {
                let at = *self.resume_at.get_or_insert(t + self.resume_s);
                if t + 1e-9 >= at {
                    self.drawing = true;
                    self.resume_at = None;
                }
            }
            if self.drawing { want } else { 0.0 }
        } else {
            self.resume_at = None;
            if self.current <= 0.0 {
                self.drawing = false;
            }
            0.0
        };
        let before = self.current;
        self.current = if target > before {
            (before + self.up_a_s * dt).min(target)
        } else {
            (before - self.down_a_s * dt).max(target)
        };
        let n = self.phases.iter().filter(|&&p| p).count() as f64;
        self.energy_wh += n * VOLTS * (before + self.current) / 2.0 * dt / 3600.0;
    }
}

/// A Terra AC on the bus with its car, and what the daemon did to it; time in s.
#[derive(Debug)]
pub struct TerraUnit {
    pub terra: Terra,
    pub car: Car,
    /// Limits written to 0x4100: s, mA.
    pub writes: Vec<(f64, u32)>,
    /// Status block reads (from 0x4000), s.
    pub reads: Vec<f64>,
    /// 0x4106 and 0x4109 written.
    pub setup: Vec<String>,
    /// Requests outside what the daemon should send.
    pub unexpected: Vec<String>,
}

impl TerraUnit {
    /// A unit rated `max_ma` (as after a reboot) with `car` behind it.
    pub fn new(max_ma: u32, car: Car) -> TerraUnit {
        TerraUnit {
            terra: Terra::new(max_ma),
            car,
            writes: Vec::new(),
            reads: Vec::new(),
            setup: Vec::new(),
            unexpected: Vec::new(),
        }
    }

    /// Its reply, as unit `unit` at `t` s, to `request` into `out`, its length returned:
    /// FC 03/04 on the status block from `phase_ma` (its own measurement per own phase,
    /// mA) and `energy_wh`; FC 06/16 on 0x4106 and 0x4109; FC 16 on 0x4100, the limit,
    /// which the car follows (from `t`, or 0 when earlier). Anything else is
    /// `unexpected` and gets exception 02.
    pub fn answer(
        &mut self,
        unit: u8,
        t: f64,
        phase_ma: [u32; 3],
        energy_wh: f64,
        request: &Request<'_>,
        out: &mut [u8; MAX_ADU],
    ) -> usize {
        let reply = match *request {
            Request::ReadHolding { start, quantity } | Request::ReadInput { start, quantity } => {
                let regs: Option<Vec<u16>> = (0..quantity)
                    .map(|i| self.terra.word(start.checked_add(i)?, phase_ma, energy_wh))
                    .collect();
                match regs {
                    Some(regs) => {
                        if start == 0x4000 {
                            self.reads.push(t);
                        }
                        Ok(Response::ReadHolding(Words::Native(&regs))
                            .emit_frame(unit, out)
                            .unwrap_or(0))
                    }
                    None => Err(Exception::IllegalDataAddress),
                }
            }
            Request::WriteSingle { address, value } => match address {
                0x4106 | 0x4109 => {
                    self.setup(address, value);
                    Ok(Response::WriteSingle { address, value }
                        .emit_frame(unit, out)
                        .unwrap_or(0))
                }
                _ => {
                    self.unexpected
                        .push(format!("write 0x{address:04X} = {value}"));
                    Err(Exception::IllegalDataAddress)
                }
            },
            Request::WriteMultiple { start, values } => {
                match (start, values.get(0), values.get(1), values.len()) {
                    (0x4100, Some(hi), Some(lo), 2) => {
                        let ma = (u32::from(hi) << 16) | u32::from(lo);
                        self.terra.limit_ma = ma;
                        self.writes.push((t, ma));
                        let applied = f64::from(self.terra.applied_ma()) / 1000.0;
                        self.car.command(t.max(0.0), applied);
                        Ok(Response::WriteMultiple { start, quantity: 2 }
                            .emit_frame(unit, out)
                            .unwrap_or(0))
                    }
                    (0x4106 | 0x4109, Some(v), _, 1) => {
                        self.setup(start, v);
                        Ok(Response::WriteMultiple { start, quantity: 1 }
                            .emit_frame(unit, out)
                            .unwrap_or(0))
                    }
                    _ => {
                        self.unexpected.push(format!("FC 16 at 0x{start:04X}"));
                        Err(Exception::IllegalDataAddress)
                    }
                }
            }
        };
        match reply {
            Ok(n) => n,
            Err(e) => exception_reply(unit, request.function(), e, out),
        }
    }

    /// 0x4106 (timeout) or 0x4109 (fallback) written.
    fn setup(&mut self, address: u16, value: u16) {
        if address == 0x4106 {
            self.terra.timeout_s = value;
        } else {
            self.terra.fallback_a = value;
        }
        self.setup.push(format!("0x{address:04X} = {value}"));
    }
}

/// The meter's side of one daemon's P1 connection.
pub struct MeterLink {
    /// Connections the daemon opened (the newest is written to).
    incoming: mpsc::UnboundedReceiver<TcpStream>,
    stream: Option<TcpStream>,
    /// Energy registers, Wh: import, export.
    import_wh: f64,
    export_wh: f64,
}

impl MeterLink {
    /// Listens for the daemon's P1 connection; returns the link and its `tcp://` URL.
    pub async fn listen() -> (MeterLink, String) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the P1 feed");
        let url = format!("tcp://{}", listener.local_addr().expect("its address"));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                if tx.send(stream).is_err() {
                    return;
                }
            }
        });
        let link = MeterLink {
            incoming: rx,
            stream: None,
            import_wh: 4_861_230.0,
            export_wh: 3_405_268.0,
        };
        (link, url)
    }

    /// Waits up to `within` for the daemon to connect.
    pub async fn connected(&mut self, within: Duration) -> bool {
        if self.stream.is_some() {
            return true;
        }
        match tokio::time::timeout(within, self.incoming.recv()).await {
            Ok(Some(s)) => {
                self.stream = Some(s);
                true
            }
            _ => false,
        }
    }

    /// The telegram of second `k` with these grid currents, A per phase.
    pub fn telegram(&mut self, k: u32, grid_a: [f64; 3]) -> Vec<u8> {
        let start = DateTime::new(2025, 6, 12, 14, 0);
        let phase = grid_a.map(|a| {
            let w = (VOLTS * a).round() as i32;
            PhaseValues {
                voltage_dv: (VOLTS * 10.0).round() as i32,
                current_ma: (a.abs() * 1000.0).round() as i32,
                import_w: w.max(0),
                export_w: (-w).max(0),
            }
        });
        let total_w: f64 = grid_a.iter().map(|a| VOLTS * a).sum();
        if total_w >= 0.0 {
            self.import_wh += total_w / 3600.0;
        } else {
            self.export_wh -= total_w / 3600.0;
        }
        let values = MeterValues {
            time: Stamp::of(start.plus(k)),
            tariff: 2,
            import_wh: [6_184_667, self.import_wh as u64],
            export_wh: [1_708_286, self.export_wh as u64],
            phases: 3,
            phase,
            gas_l: 3_133_361,
            gas_time: Stamp::of(start),
            average_demand_w: 0,
            peak: (Stamp::of(DateTime::new(2025, 6, 3, 18, 45)), 0),
            history: None,
        };
        let mut out = Vec::with_capacity(1024);
        write_telegram(&mut out, Flavour::Dsmr5, &values);
        out
    }

    /// Sends `bytes` to the newest connection (a failed one is dropped).
    pub async fn send(&mut self, bytes: &[u8]) {
        while let Ok(s) = self.incoming.try_recv() {
            self.stream = Some(s);
        }
        if let Some(s) = self.stream.as_mut() {
            let sent = tokio::time::timeout(Duration::from_millis(300), s.write_all(bytes)).await;
            if !matches!(sent, Ok(Ok(()))) {
                self.stream = None;
            }
        }
    }
}

/// Serves Modbus RTU units on the pty end `path` (`baud` 8N1, requests framed by 3.5
/// characters of silence) until the port closes. Each frame with a good CRC goes to
/// `answer(unit, function, pdu, out)`, which writes the reply into `out` and returns its
/// length, or `None` to stay silent (another unit's frame, a unit that is not answering);
/// the reply goes out after `turnaround` plus its time on the wire (10 bits a byte). A
/// bad frame gets no answer, as from a real charger.
pub async fn serve_units<F>(path: &Path, baud: u32, turnaround: Duration, mut answer: F)
where
    F: FnMut(u8, u8, &[u8], &mut [u8; MAX_ADU]) -> Option<usize>,
{
    let line = LineConfig::new(baud, Parity::None, 1);
    let mut port = tokio_serial::new(path.to_string_lossy(), baud)
        .open_native_async()
        .expect("the units' end of the pty opens");
    let clock = Clock::new();
    let mut framer: SilenceFramer = SilenceFramer::new(line);
    let mut buf = [0u8; 512];
    let mut frames: Vec<Vec<u8>> = Vec::new();
    loop {
        let deadline = framer.deadline();
        let wake = clock.instant(deadline.unwrap_or(CoreInstant::ZERO));
        tokio::select! {
            r = port.read(&mut buf) => {
                let n = match r {
                    Ok(n) if n > 0 => n,
                    _ => return,
                };
                let now = clock.now();
                // A frame returned took no byte: feed the same bytes again.
                while let (_, Some(f)) = framer.feed(now, &buf[..n]) {
                    frames.push(f.to_vec());
                }
            }
            () = tokio::time::sleep_until(wake), if deadline.is_some() => {
                if let Some(f) = framer.poll(clock.now()) {
                    frames.push(f.to_vec());
                }
            }
        }
        for frame in frames.drain(..) {
            let Ok(f) = Frame::new_checked(&frame) else {
                continue;
            };
            let mut out = [0u8; MAX_ADU];
            let Some(len) = answer(f.unit(), f.function(), f.pdu(), &mut out) else {
                continue;
            };
            let wire = Duration::from_micros(len as u64 * 10 * 1_000_000 / u64::from(baud));
            tokio::time::sleep(turnaround + wire).await;
            if port.write_all(&out[..len]).await.is_err() || port.flush().await.is_err() {
                return;
            }
        }
    }
}

/// A model of the units on one line, as [`serve_world`] serves it.
pub trait Units {
    /// Unit `unit`'s reply to `request` into `out`, its length; `None` when it stays
    /// silent.
    fn answer(&mut self, unit: u8, request: &Request<'_>, out: &mut [u8; MAX_ADU])
    -> Option<usize>;

    /// A request to one of its units that does not parse (it gets its exception reply).
    fn bad_request(&mut self) {}
}

/// Serves the units `units` of `world` on the pty end `path` ([`BAUD`], [`TURNAROUND`])
/// until the port closes: a frame for another unit is left unanswered and unparsed; a
/// request that does not parse gets its exception reply (after
/// [`Units::bad_request`]); every other goes to [`Units::answer`].
pub async fn serve_world<W: Units>(path: PathBuf, units: &'static [u8], world: Arc<Mutex<W>>) {
    serve_units(&path, BAUD, TURNAROUND, |unit, function, pdu, out| {
        if !units.contains(&unit) {
            return None;
        }
        match Request::parse(pdu) {
            Ok(request) => lock(&world).answer(unit, &request, out),
            Err(e) => {
                lock(&world).bad_request();
                Some(exception_reply(unit, function, e.exception(), out))
            }
        }
    })
    .await;
}

/// One Terra AC with its car, unit [`OneCharger::UNIT`], in real time from when it was
/// made (its clock, s): the physics in [`STEP_S`] steps, brought up to now whenever the
/// charger or the meter needs the car; the charger measures its car once a second (at
/// k + 0.4 s), the same on each of its three phases (nothing up to 50 mA), and reports
/// that only when polled.
#[derive(Debug)]
pub struct OneCharger {
    t0: Instant,
    step: u64,
    /// The charger (its 0x4100 writes, status reads, setup) and its car.
    pub unit: TerraUnit,
    /// The charger's last measurement of the car, A a phase.
    pub measured_a: f64,
    /// The car's largest current so far, A.
    pub car_max_a: f64,
}

impl OneCharger {
    /// Its Modbus address (register 1030's default).
    pub const UNIT: u8 = 1;

    /// A charger rated `max_ma` with `car` behind it; its clock starts now.
    pub fn new(max_ma: u32, car: Car) -> OneCharger {
        OneCharger {
            t0: Instant::now(),
            step: 0,
            unit: TerraUnit::new(max_ma, car),
            measured_a: 0.0,
            car_max_a: 0.0,
        }
    }

    /// Its clock, s.
    pub fn now_s(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// The physics up to now, in [`STEP_S`] steps; the charger measures the car at
    /// k + 0.4 s.
    pub fn advance(&mut self) {
        let to = (self.now_s() / STEP_S) as u64;
        while self.step < to {
            if self.step % 100 == 40 {
                self.measured_a = self.unit.car.current;
            }
            self.unit.car.step(self.step as f64 * STEP_S, STEP_S);
            self.car_max_a = self.car_max_a.max(self.unit.car.current);
            self.step += 1;
        }
    }

    /// The first limit written at or after `from` s that `f` accepts: (s, mA).
    pub fn first_write(&self, from: f64, f: impl Fn(u32) -> bool) -> Option<(f64, u32)> {
        self.unit
            .writes
            .iter()
            .copied()
            .find(|&(t, ma)| t >= from && f(ma))
    }

    /// The largest limit written in `[from, to)` s, mA (0 when none).
    pub fn max_write(&self, from: f64, to: f64) -> u32 {
        self.unit
            .writes
            .iter()
            .filter(|&&(t, _)| t >= from && t < to)
            .map(|&(_, ma)| ma)
            .max()
            .unwrap_or(0)
    }
}

impl Units for OneCharger {
    fn answer(
        &mut self,
        unit: u8,
        request: &Request<'_>,
        out: &mut [u8; MAX_ADU],
    ) -> Option<usize> {
        self.advance();
        let t = self.now_s();
        let ma = (self.measured_a * 1000.0).round() as u32;
        let phases = if ma > 50 { [ma; 3] } else { [0; 3] };
        let energy_wh = self.unit.car.energy_wh;
        Some(self.unit.answer(unit, t, phases, energy_wh, request, out))
    }
}
