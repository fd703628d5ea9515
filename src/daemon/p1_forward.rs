//! `--p1-forward ADDR:PORT`: re-emits the raw P1 stream, byte for byte as read from
//! the source (corrupt telegrams included), to every connected TCP client, so that
//! Home Assistant's DSMR integration (or anything else) can share the meter.
//!
//! The P1 task hands each chunk it reads to [`Forward::send`], which never blocks: each
//! client has a bounded queue ([`CLIENT_QUEUE`] chunks); a client too slow to keep up
//! is dropped when its queue overflows, with one log line.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How many chunks (reads from the source, at most a few KiB each) may wait for one
/// client before it is dropped.
pub const CLIENT_QUEUE: usize = 64;

struct Client {
    peer: SocketAddr,
    tx: mpsc::Sender<Arc<[u8]>>,
}

/// The connected clients.
#[derive(Default)]
pub struct Forward {
    clients: Mutex<Vec<Client>>,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("clients", &self.client_count())
            .finish()
    }
}

impl Forward {
    /// No client yet.
    pub fn new() -> Forward {
        Forward::default()
    }

    /// The number of connected clients.
    pub fn client_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `bytes` for every client; never waits. Drops clients whose queue is full
    /// (one log line each) or that went away.
    pub fn send(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut clients = self.lock();
        if clients.is_empty() {
            return;
        }
        let chunk: Arc<[u8]> = Arc::from(bytes);
        clients.retain(|c| match c.tx.try_send(chunk.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    "P1 forward: {} does not keep up ({CLIENT_QUEUE} chunks queued): dropped",
                    c.peer
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    fn add(&self, peer: SocketAddr) -> mpsc::Receiver<Arc<[u8]>> {
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        self.lock().push(Client { peer, tx });
        rx
    }
}

/// Binds the forwarding port (so that a taken port fails the start).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("P1 forward: cannot listen on {addr}"))
}

/// Accepts clients forever; each gets the bytes from its connection on.
pub async fn run(forward: Arc<Forward>, listener: TcpListener) {
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("P1 forward: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tracing::info!("P1 forward: {peer} connected");
        let mut rx = forward.add(peer);
        tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if let Err(e) = stream.write_all(&chunk).await {
                    tracing::info!("P1 forward: {peer} gone ({e})");
                    return;
                }
            }
            // The sender was dropped: the client was too slow (logged) or we stop.
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_client_is_dropped_without_blocking() {
        let f = Forward::new();
        let mut rx = f.add(([127, 0, 0, 1], 1).into());
        for _ in 0..CLIENT_QUEUE {
            f.send(b"x");
        }
        assert_eq!(f.client_count(), 1);
        f.send(b"overflow");
        assert_eq!(f.client_count(), 0);
        let mut n = 0;
        while rx.recv().await.is_some() {
            n += 1;
        }
        assert_eq!(n, CLIENT_QUEUE);
    }
}
