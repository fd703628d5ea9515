//! A Terra AC's registers and a smart meter's P1 feed, as the end-to-end bus tests
//! model them (tests/headroom_bus.rs, tests/shared_bus.rs): the charger's status block
//! from what its own meter measured, the limit, timeout and fallback it was written; a
//! DSMR 5 telegram a second over TCP with the grid per phase.

use std::path::Path;
use std::time::Duration;

use p1lb::rtu_io::Clock;
use p1lb_core::modbus::{Frame, LineConfig, MAX_ADU, Parity, SilenceFramer};
use p1lb_core::time::Instant as CoreInstant;
use p1lb_sim::meter::{Flavour, MeterValues, PhaseValues, write_telegram};
use p1lb_sim::time::{DateTime, Stamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_serial::SerialPortBuilderExt;

/// The meter's voltage on every phase, V.
pub const VOLTS: f64 = 230.0;

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
