//! The core's Modbus RTU codec on a tokio byte stream: opening a serial port, the
//! microsecond clock its framers and clients run on, feeding a [`SilenceFramer`], bounded
//! writes and a simple server for simulated devices ([`serve`]). Shared by the daemon's
//! RS485 task and `p1lb sim-charger`, so that both frame a bus the same way. Never panics; a write that cannot complete is an error, never a task
//! blocked for ever.

use std::io;
use std::time::Duration;

use p1lb_core::modbus::{LineConfig, MAX_ADU, Parity, SilenceFramer};
use p1lb_core::time::{Duration as CoreDuration, Instant as CoreInstant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_serial::{SerialPortBuilderExt, SerialStream};

/// The longest one frame's write may take before the port counts as wedged: the
/// longest frame (256 bytes) takes 2.3 s on the wire at the slowest line (1200 baud).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// Writes `bytes` and flushes within [`WRITE_TIMEOUT`]. A wedged adapter (a USB
/// serial converter whose driver stopped draining) is an error — the caller reopens
/// the port — never a task blocked for ever.
pub async fn write_bounded<W: AsyncWrite + Unpin>(port: &mut W, bytes: &[u8]) -> io::Result<()> {
    let write = async {
        port.write_all(bytes).await?;
        port.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "a {}-byte write did not complete in {} s (adapter wedged?)",
                bytes.len(),
                WRITE_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// The core's clock on tokio's (so that a test with paused time moves it): gives
/// core [`CoreInstant`]s (microseconds since this clock started) and turns them back into
/// tokio instants to sleep until.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// Starting now.
    pub fn new() -> Clock {
        Clock(Instant::now())
    }

    /// Now, on the core's time line.
    pub fn now(&self) -> CoreInstant {
        CoreInstant::ZERO + CoreDuration::from(self.0.elapsed())
    }

    /// The tokio instant of core time `t`; far in the future for an instant beyond
    /// what tokio can hold ([`CoreInstant::MAX`] is "never").
    pub fn instant(&self, t: CoreInstant) -> Instant {
        let d = Duration::from(t - CoreInstant::ZERO);
        self.0
            .checked_add(d)
            .unwrap_or_else(|| self.0 + Duration::from_secs(100 * 365 * 24 * 3600))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Feeds `bytes` (received at `now`) to `framer`, pushing each frame a silence
/// completed onto `frames`.
pub fn feed_frames(
    framer: &mut SilenceFramer,
    now: CoreInstant,
    bytes: &[u8],
    frames: &mut Vec<Vec<u8>>,
) {
    loop {
        let (_, frame) = framer.feed(now, bytes);
        match frame {
            // No byte was taken: feed them again after the frame.
            Some(f) => frames.push(f.to_vec()),
            None => break,
        }
    }
}

/// Frames off a byte stream, each ended by the line's silence (a server's requests).
#[derive(Debug)]
pub struct FrameReceiver {
    clock: Clock,
    framer: SilenceFramer,
    buf: [u8; 512],
}

impl FrameReceiver {
    /// For a line of `line`, its clock starting now.
    pub fn new(line: LineConfig) -> FrameReceiver {
        FrameReceiver {
            clock: Clock::new(),
            framer: SilenceFramer::new(line),
            buf: [0; 512],
        }
    }

    /// Waits for bytes or for the silence that ends a frame, at most `idle`, and
    /// pushes every frame completed onto `frames`. `Ok(false)`: the stream closed.
    pub async fn receive<P: AsyncRead + Unpin>(
        &mut self,
        port: &mut P,
        idle: Duration,
        frames: &mut Vec<Vec<u8>>,
    ) -> io::Result<bool> {
        let deadline = self.framer.deadline();
        tokio::select! {
            r = port.read(&mut self.buf) => {
                let n = r?;
                if n == 0 {
                    return Ok(false);
                }
                let bytes = self.buf.get(..n).unwrap_or_default();
                feed_frames(&mut self.framer, self.clock.now(), bytes, frames);
            }
            () = tokio::time::sleep_until(self.clock.instant(deadline.unwrap_or(CoreInstant::ZERO))), if deadline.is_some() => {
                if let Some(f) = self.framer.poll(self.clock.now()) {
                    frames.push(f.to_vec());
                }
            }
            () = tokio::time::sleep(idle) => {}
        }
        Ok(true)
    }
}

/// Opens `path` with `line` (8 data bits, 1 stop bit).
pub fn open_serial(path: &str, line: LineConfig) -> tokio_serial::Result<SerialStream> {
    let parity = match line.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Odd => tokio_serial::Parity::Odd,
        Parity::Even => tokio_serial::Parity::Even,
    };
    tokio_serial::new(path, line.baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .stop_bits(tokio_serial::StopBits::One)
        .parity(parity)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
}

/// How [`serve`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// The line (its silence ends a request).
    pub line: LineConfig,
    /// The time between a request's end and the reply (a Terra AC's turnaround).
    pub turnaround: Duration,
    /// Send each reply in two halves this far apart, as a USB-serial adapter hands
    /// bytes over in chunks (FTDI's latency timer: 16 ms). Zero: in one piece.
    pub chunk_gap: Duration,
}

/// A simple Modbus RTU server (a simulated device): frames the requests on `port` by
/// the line's silence and writes what `answer` puts in its buffer (its length; `None`
/// or 0: silence), until the port closes (`Ok`) or fails.
pub async fn serve<P, A>(mut port: P, options: ServeOptions, mut answer: A) -> io::Result<()>
where
    P: AsyncRead + AsyncWrite + Unpin,
    A: FnMut(&[u8], &mut [u8; MAX_ADU]) -> Option<usize>,
{
    let mut receiver = FrameReceiver::new(options.line);
    let mut frames = Vec::new();
    loop {
        if !receiver
            .receive(&mut port, Duration::from_secs(3600), &mut frames)
            .await?
        {
            return Ok(());
        }
        for frame in frames.drain(..) {
            let mut out = [0u8; MAX_ADU];
            let reply = match answer(&frame, &mut out) {
                Some(len) if len > 0 => out.get(..len).unwrap_or_default(),
                _ => continue,
            };
            if !options.turnaround.is_zero() {
                tokio::time::sleep(options.turnaround).await;
            }
            if options.chunk_gap.is_zero() {
                write_bounded(&mut port, reply).await?;
            } else {
                let (first, second) = reply.split_at(reply.len() / 2);
                write_bounded(&mut port, first).await?;
                tokio::time::sleep(options.chunk_gap).await;
                write_bounded(&mut port, second).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_to_a_wedged_port_fails_in_bounded_time() {
        // A port that takes 16 bytes and then nothing more (nobody drains it).
        let (mut port, _wedged) = tokio::io::duplex(16);
        let started = tokio::time::Instant::now();
        let e = write_bounded(&mut port, &[0x55; 64])
            .await
            .expect_err("must not complete");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), WRITE_TIMEOUT);
        // A port that drains writes at once.
        let (mut port, mut other) = tokio::io::duplex(256);
        write_bounded(&mut port, &[1, 2, 3]).await.expect("written");
        let mut got = [0u8; 3];
        other.read_exact(&mut got).await.expect("read");
        assert_eq!(got, [1, 2, 3]);
    }
}
