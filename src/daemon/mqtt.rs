//! The MQTT task (`[mqtt]` in the TOML file, `p1lb run --mqtt URL`): the register map
//! on an MQTT broker, with Home Assistant discovery. What to publish and how to read a
//! command is the sans-IO [`proto`]; this task moves it to and from the broker
//! (rumqttc).
//!
//! - Connects with a last will (`P/status` = `offline`, retained), publishes `online`,
//!   subscribes to `P/+/set` (and `homeassistant/status`), publishes discovery (unless
//!   `discovery = false`) and every state, after every (re)connect; discovery again
//!   when Home Assistant says `online` on `homeassistant/status`.
//! - Once a second, the states that changed (from a snapshot of the map taken under a
//!   short lock), and all of them at least every 30 s.
//! - A command on `P/<register>/set` goes through the daemon's register write path
//!   ([`writes::write`]): staged, validated, saved with 1091; a refused one is logged,
//!   answered on `P/result` and changes nothing.
//! - The control loop never waits on the broker: the client's queue is bounded; a
//!   state that does not fit stays due and goes, with its latest value, once the
//!   queue drains. Reconnects back off from 1 s to 30 s.

pub mod proto;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use p1lb_core::registers::FIRST;
use rumqttc::{AsyncClient, ClientError, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
#[cfg(feature = "mqtt-tls")]
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::mpsc;

use self::proto::{Incoming, Message, States, Topics, WORDS};
use super::shared::Shared;
use super::writes;

/// The client's request queue: a whole discovery and a whole state set fit twice.
const QUEUE: usize = 1024;

/// The longest wait between reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A broker address: `mqtt://HOST[:PORT]` (1883) or `mqtts://HOST[:PORT]` (8883).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// TLS (`mqtts://`).
    pub tls: bool,
    /// Host name or IP address (no brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerUrl {
    /// Parses `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]` (IPv6 in brackets).
    pub fn parse(url: &str) -> Result<BrokerUrl> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else {
            bail!("MQTT url {url:?}: expected mqtt://HOST:PORT or mqtts://HOST:PORT");
        };
        let rest = rest.trim_end_matches('/');
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                bail!("MQTT url {url:?}: unclosed [");
            };
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => bail!("MQTT url {url:?}: expected :PORT after ]"),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains(['/', '@', '?', '#', ' ']) {
            bail!("MQTT url {url:?}: expected mqtt://HOST:PORT (no user, path or query)");
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .with_context(|| format!("MQTT url {url:?}: bad port {p:?}"))?,
            None => default_port,
        };
        Ok(BrokerUrl {
            tls,
            host: host.to_owned(),
            port,
        })
    }
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Everything the task needs, checked at start.
#[derive(Clone)]
pub struct MqttPlan {
    /// The broker.
    pub url: BrokerUrl,
    /// Publish Home Assistant discovery.
    pub discovery: bool,
    /// The topics.
    pub topics: Topics,
    /// The MQTT client id.
    pub client_id: String,
    /// User name and password (read from `password_file`).
    pub credentials: Option<(String, String)>,
    /// The Modbus server address at start (in the device's model name).
    pub server_address: u8,
    /// For `mqtts://`: rustls with the trusted certificates found at start.
    #[cfg(feature = "mqtt-tls")]
    pub tls: Option<TlsConfiguration>,
}

impl std::fmt::Debug for MqttPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttPlan")
            .field("url", &self.url)
            .field("discovery", &self.discovery)
            .field("topics", &self.topics)
            .field("client_id", &self.client_id)
            .field("username", &self.credentials.as_ref().map(|c| &c.0))
            .finish_non_exhaustive()
    }
}

/// The plan from the `[mqtt]` section (and `--mqtt URL`): `None` when MQTT is off.
pub fn plan(
    section: &super::file::MqttSection,
    url_flag: Option<&str>,
    server_address: u8,
) -> Result<Option<MqttPlan>> {
    let Some(url) = url_flag.or(section.url.as_deref()) else {
        return Ok(None);
    };
    let url = BrokerUrl::parse(url)?;
    let prefix = section
        .prefix
        .clone()
        .unwrap_or_else(|| format!("p1lb/{server_address}"));
    if prefix.is_empty() || prefix.contains(['+', '#']) || prefix.starts_with('/') {
        bail!("[mqtt] prefix {prefix:?}: a topic without +, # or a leading /");
    }
    // (Our status topic would be Home Assistant's: our last will would say it is off.)
    if prefix.trim_end_matches('/') == section.discovery_prefix.trim_end_matches('/') {
        bail!("[mqtt] prefix {prefix:?} is the discovery prefix: Home Assistant's own topics");
    }
    let credentials = match (&section.username, &section.password_file) {
        (Some(user), Some(file)) => {
            Some((user.clone(), super::file::read_password_file("mqtt", file)?))
        }
        (Some(user), None) => Some((user.clone(), String::new())),
        (None, Some(_)) => bail!("[mqtt] password_file without username"),
        (None, None) => None,
    };
    #[cfg(feature = "mqtt-tls")]
    let tls = if url.tls { Some(tls_config()?) } else { None };
    #[cfg(not(feature = "mqtt-tls"))]
    if url.tls {
        bail!("[mqtt] {url}: this build has no TLS (cargo feature mqtt-tls)");
    }
    Ok(Some(MqttPlan {
        #[cfg(feature = "mqtt-tls")]
        tls,
        url,
        discovery: section.discovery,
        topics: Topics::new(&prefix, &section.discovery_prefix),
        client_id: section
            .client_id
            .clone()
            .unwrap_or_else(|| format!("p1lb-{server_address}")),
        credentials,
        server_address,
    }))
}

#[cfg(feature = "mqtt-tls")]
/// The TLS client configuration: the system's trusted roots (`SSL_CERT_FILE` or
/// `SSL_CERT_DIR` override them), rustls with ring.
fn tls_config() -> Result<TlsConfiguration> {
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!("MQTT TLS: reading the trusted certificates: {e}");
    }
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        bail!("MQTT TLS: no trusted certificate found (set SSL_CERT_FILE)");
    }
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("MQTT TLS")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
}

/// What the connection loop tells the task.
#[derive(Debug)]
enum Link {
    Connected,
    Disconnected(String),
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
}

/// Drives the connection: forwards what comes in, reconnects with backoff.
async fn drive(mut eventloop: EventLoop, tx: mpsc::Sender<Link>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let sent = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_secs(1);
                tx.send(Link::Connected).await
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                tx.send(Link::Publish {
                    topic: p.topic,
                    payload: p.payload.to_vec(),
                    retain: p.retain,
                })
                .await
            }
            Ok(_) => Ok(()),
            Err(e) => {
                let sent = tx.send(Link::Disconnected(e.to_string())).await;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                sent
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Runs the MQTT task for as long as the daemon.
pub async fn run(shared: Arc<Shared>, plan: MqttPlan) {
    let mut options = MqttOptions::new(&plan.client_id, &plan.url.host, plan.url.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(256 * 1024, 256 * 1024)
        .set_request_channel_capacity(QUEUE)
        .set_last_will(LastWill::new(
            plan.topics.availability(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    if let Some((user, password)) = &plan.credentials {
        options.set_credentials(user, password);
    }
    #[cfg(feature = "mqtt-tls")]
    if let Some(tls) = &plan.tls {
        options.set_transport(Transport::tls_with_config(tls.clone()));
    }
    let (client, eventloop) = AsyncClient::new(options, QUEUE);
    let (tx, mut rx) = mpsc::channel(64);
    let driver = tokio::spawn(drive(eventloop, tx));
    let _abort = AbortOnDrop(driver);
    tracing::info!(
        "MQTT: broker {}, topics under {}/, Home Assistant discovery {}",
        plan.url,
        plan.topics.prefix,
        if plan.discovery { "on" } else { "off" }
    );

    let mut task = Task {
        shared,
        plan,
        client,
        states: States::default(),
        connected: false,
        last_error: None,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since_all = 0u64;
    loop {
        tokio::select! {
            link = rx.recv() => match link {
                Some(Link::Connected) => {
                    task.on_connect();
                    since_all = 0;
                }
                Some(Link::Disconnected(e)) => task.on_disconnect(e),
                Some(Link::Publish { topic, payload, retain }) => {
                    task.on_publish(&topic, &payload, retain).await;
                }
                None => {
                    tracing::error!("MQTT: the connection task ended");
                    return;
                }
            },
            _ = tick.tick() => {
                since_all += 1;
                let all = since_all >= proto::REFRESH_S;
                if all {
                    since_all = 0;
                }
                task.publish_states(all);
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Task {
    shared: Arc<Shared>,
    plan: MqttPlan,
    client: AsyncClient,
    states: States,
    connected: bool,
    last_error: Option<String>,
}

impl Task {
    fn snapshot(&self) -> [u16; WORDS] {
        let mut w = [0u16; WORDS];
        let core = self.shared.core();
        let (a, b) = w.split_at_mut(WORDS / 2);
        // Both halves are inside the map (100 words each): never refused.
        let _ = core.map.read(FIRST, a);
        let _ = core.map.read(FIRST + (WORDS / 2) as u16, b);
        w
    }

    /// Queues `m` without waiting; false when the queue is full.
    fn send(&self, m: &Message, qos: QoS) -> bool {
        match self
            .client
            .try_publish(&m.topic, qos, m.retain, m.payload.as_bytes())
        {
            Ok(()) => true,
            Err(ClientError::TryRequest(_)) | Err(ClientError::Request(_)) => false,
        }
    }

    fn on_connect(&mut self) {
        self.connected = true;
        match self.last_error.take() {
            Some(_) => tracing::info!("MQTT: reconnected to {}", self.plan.url),
            None => tracing::info!("MQTT: connected to {}", self.plan.url),
        }
        let online = Message {
            topic: self.plan.topics.availability(),
            payload: "online".into(),
            retain: true,
        };
        self.send(&online, QoS::AtLeastOnce);
        for topic in self.plan.topics.subscriptions(self.plan.discovery) {
            if let Err(e) = self.client.try_subscribe(topic, QoS::AtLeastOnce) {
                tracing::warn!("MQTT: subscribing: {e}");
            }
        }
        self.publish_discovery();
        self.states.forget();
        self.publish_states(true);
    }

    fn on_disconnect(&mut self, e: String) {
        if self.connected || self.last_error.is_none() {
            tracing::warn!(
                "MQTT: {} lost or refused ({e}); retrying with backoff",
                self.plan.url
            );
        } else {
            tracing::debug!("MQTT: still no broker ({e})");
        }
        self.connected = false;
        self.last_error = Some(e);
    }

    fn publish_discovery(&mut self) {
        if !self.plan.discovery {
            return;
        }
        let all = proto::discovery_all(&self.plan.topics, self.plan.server_address);
        let dropped = all
            .iter()
            // QoS 0 over TCP: the broker keeps each retained config it receives; a
            // lost connection sends them all again after the reconnect.
            .filter(|m| !self.send(m, QoS::AtMostOnce))
            .count();
        if dropped > 0 {
            tracing::warn!("MQTT: {dropped} discovery messages did not fit the queue");
        }
    }

    fn publish_states(&mut self, all: bool) {
        if !self.connected {
            return;
        }
        let words = self.snapshot();
        for (i, m) in self.states.due(&self.plan.topics, &words, all) {
            if !self.send(&m, QoS::AtMostOnce) {
                // Stays due: sent with its latest value once the queue drains.
                break;
            }
            self.states.sent(i, &m.payload);
        }
    }

    async fn on_publish(&mut self, topic: &str, payload: &[u8], retain: bool) {
        match proto::incoming(&self.plan.topics, topic, payload, retain) {
            Incoming::Ignore => {}
            Incoming::HaStatus(online) => {
                if online {
                    tracing::info!("MQTT: Home Assistant is online: discovery again");
                    self.publish_discovery();
                    self.states.forget();
                    self.publish_states(true);
                }
            }
            Incoming::Refused(why) => {
                tracing::warn!("MQTT: refused {topic:?} {:?}: {why}", lossy(payload));
                self.send(
                    &proto::result(&self.plan.topics, topic, payload, Err(&why)),
                    QoS::AtMostOnce,
                );
            }
            Incoming::Write {
                register,
                address,
                raw,
            } => {
                let outcome = writes::write(&self.shared, address, &[raw]).await;
                let m = match outcome {
                    Ok(()) => {
                        tracing::info!("MQTT: {register} ({address}) = {raw}");
                        proto::result(&self.plan.topics, topic, payload, Ok((register, raw)))
                    }
                    Err(e) => {
                        let why = format!("{register} = {raw}: {e}");
                        tracing::warn!("MQTT: refused {topic:?} {:?}: {why}", lossy(payload));
                        proto::result(&self.plan.topics, topic, payload, Err(&why))
                    }
                };
                self.send(&m, QoS::AtMostOnce);
                self.publish_states(false);
            }
        }
    }
}

fn lossy(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = BrokerUrl::parse("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "127.0.0.1", 1884));
        let u = BrokerUrl::parse("mqtts://broker.local").unwrap();
        assert_eq!((u.tls, u.port), (true, 8883));
        let u = BrokerUrl::parse("mqtt://[::1]:1885").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1885));
        assert_eq!(u.to_string(), "mqtt://[::1]:1885");
        assert_eq!(BrokerUrl::parse("mqtt://h").unwrap().port, 1883);
        for bad in [
            "tcp://h:1",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:99999",
            "mqtt://u@h:1",
            "mqtt://h:1/x",
            "mqtt://[::1",
        ] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
