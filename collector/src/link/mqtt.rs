//! One MQTT client per link, MQTT 3.1.1 or 5 behind one loop: rumqttc's two type
//! trees are adapted to one [`Event`] and one [`Client`], and everything the link
//! does (subscribe on every CONNACK, hand publishes to ingest, back off, report
//! its state) is written once in [`run`].
//!
//! # Poison resistance
//!
//! MQTT 5 is the default against external brokers: the client announces its
//! Maximum Packet Size in CONNECT, and the broker must not send it anything
//! larger (MQTT 5.0, 3.1.2.11.4), so one oversized retained message cannot blind
//! the collector. With MQTT 3.1.1 there is no such announcement: an oversized
//! packet ends the connection, every resubscription gets the same retained
//! message back, and the [`Backoff`] (which starts over only after a stable
//! connection) keeps that to one attempt every few seconds, counted as
//! `protocol` failures; cap message sizes on such a broker (the shipped
//! mosquitto configuration does).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Backoff, FailureKind, Inbound, LinkStatus, Outgoing, Subscription};
use crate::liveness::PathId;

/// The largest packet a link accepts. Above the contract's 256 KiB so that an
/// oversized payload arrives and is counted as `too_large`; with MQTT 5 the
/// broker is told and drops larger ones itself.
pub const MAX_INCOMING_PACKET: usize = 1024 * 1024;

/// First wait between reconnection attempts.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait: a collector is one client, not one of thousands: it can come
/// back quickly after a broker restart without a thundering herd, and every
/// second it is away is a second in which no signal can be raised.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Everything a link's client needs, resolved before it starts (files read, TLS
/// built).
#[derive(Clone)]
pub struct LinkConfig {
    pub path: PathId,
    pub name: String,
    pub host: String,
    pub port: u16,
    /// MQTT 5, or 3.1.1.
    pub v5: bool,
    pub client_id: String,
    /// A persistent session: QoS 1 batches published while the collector is
    /// reconnecting are queued for it.
    pub persistent: bool,
    pub credentials: Option<(String, String)>,
    pub transport: rumqttc::Transport,
    pub keep_alive: Duration,
    pub session_expiry: Duration,
    pub subscriptions: Vec<Subscription>,
}

impl std::fmt::Debug for LinkConfig {
    // By hand: rumqttc's `Transport` has no `Debug`, and the password stays out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkConfig")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("v5", &self.v5)
            .field("client_id", &self.client_id)
            .field("persistent", &self.persistent)
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .field("keep_alive", &self.keep_alive)
            .field("session_expiry", &self.session_expiry)
            .field("subscriptions", &self.subscriptions)
            .finish_non_exhaustive()
    }
}

/// What the event loop produced, on either protocol version.
#[derive(Debug)]
enum Event {
    ConnAck {
        session_present: bool,
    },
    Publish(Bytes, Bytes, bool),
    /// A SUBACK refused some filters; the reason as text.
    SubscriptionRefused(u16, String),
    Other,
}

/// The client half, on either protocol version.
#[derive(Clone)]
enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

enum EventLoop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

fn v4_qos(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        2 => rumqttc::QoS::ExactlyOnce,
        _ => rumqttc::QoS::AtLeastOnce,
    }
}

fn v5_qos(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS;
    match q {
        0 => QoS::AtMostOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    }
}

impl Client {
    fn try_subscribe(&self, s: &Subscription) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .try_subscribe(s.filter.clone(), v4_qos(s.qos))
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_subscribe(s.filter.clone(), v5_qos(s.qos))
                .map_err(|e| e.to_string()),
        }
    }

    async fn publish(&self, m: Outgoing) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .publish(m.topic, v4_qos(1), m.retain, m.payload)
                .await
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .publish(m.topic, v5_qos(1), m.retain, m.payload)
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

/// A failed poll: its kind and message.
type PollError = (FailureKind, String);

impl EventLoop {
    async fn poll(&mut self) -> Result<Event, PollError> {
        match self {
            EventLoop::V4(el) => {
                use rumqttc::{Event as E, Packet, SubscribeReasonCode};
                match el.poll().await {
                    Ok(E::Incoming(Packet::Publish(p))) => {
                        Ok(Event::Publish(Bytes::from(p.topic), p.payload, p.retain))
                    }
                    Ok(E::Incoming(Packet::ConnAck(a))) => Ok(Event::ConnAck {
                        session_present: a.session_present,
                    }),
                    Ok(E::Incoming(Packet::SubAck(a)))
                        if a.return_codes
                            .iter()
                            .any(|c| matches!(c, SubscribeReasonCode::Failure)) =>
                    {
                        Ok(Event::SubscriptionRefused(a.pkid, "failure".into()))
                    }
                    Ok(_) => Ok(Event::Other),
                    Err(e) => Err((v4_failure(&e), e.to_string())),
                }
            }
            EventLoop::V5(el) => {
                use rumqttc::v5::Event as E;
                use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
                match el.poll().await {
                    Ok(E::Incoming(Packet::Publish(p))) => {
                        Ok(Event::Publish(p.topic, p.payload, p.retain))
                    }
                    Ok(E::Incoming(Packet::ConnAck(a))) => Ok(Event::ConnAck {
                        session_present: a.session_present,
                    }),
                    Ok(E::Incoming(Packet::SubAck(a))) => {
                        match a
                            .return_codes
                            .iter()
                            .find(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                        {
                            Some(code) => {
                                Ok(Event::SubscriptionRefused(a.pkid, format!("{code:?}")))
                            }
                            None => Ok(Event::Other),
                        }
                    }
                    Ok(_) => Ok(Event::Other),
                    Err(e) => Err((v5_failure(&e), e.to_string())),
                }
            }
        }
    }
}

fn v4_failure(e: &rumqttc::ConnectionError) -> FailureKind {
    use rumqttc::ConnectionError as C;
    match e {
        C::Io(_) | C::NetworkTimeout | C::FlushTimeout => FailureKind::Network,
        C::Tls(_) => FailureKind::Tls,
        C::ConnectionRefused(_) => FailureKind::Refused,
        C::MqttState(_) | C::NotConnAck(_) => FailureKind::Protocol,
        _ => FailureKind::Other,
    }
}

fn v5_failure(e: &rumqttc::v5::ConnectionError) -> FailureKind {
    use rumqttc::v5::ConnectionError as C;
    match e {
        C::Io(_) | C::Timeout(_) => FailureKind::Network,
        C::Tls(_) => FailureKind::Tls,
        C::ConnectionRefused(_) => FailureKind::Refused,
        C::MqttState(_) | C::NotConnAck(_) => FailureKind::Protocol,
        _ => FailureKind::Other,
    }
}

fn connect(cfg: &LinkConfig) -> (Client, EventLoop) {
    if cfg.v5 {
        use rumqttc::v5::{AsyncClient, MqttOptions};
        let mut opts = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
        opts.set_keep_alive(cfg.keep_alive)
            .set_clean_start(!cfg.persistent)
            // Told to the broker in CONNECT: it must not send larger packets.
            .set_max_packet_size(Some(u32::try_from(MAX_INCOMING_PACKET).unwrap_or(u32::MAX)))
            .set_transport(cfg.transport.clone());
        if cfg.persistent {
            opts.set_session_expiry_interval(Some(
                u32::try_from(cfg.session_expiry.as_secs()).unwrap_or(u32::MAX),
            ));
        }
        if let Some((u, p)) = &cfg.credentials {
            opts.set_credentials(u, p);
        }
        let (client, el) = AsyncClient::new(opts, 16);
        (Client::V5(client), EventLoop::V5(Box::new(el)))
    } else {
        use rumqttc::{AsyncClient, MqttOptions};
        let mut opts = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
        opts.set_keep_alive(cfg.keep_alive)
            .set_clean_session(!cfg.persistent)
            .set_max_packet_size(MAX_INCOMING_PACKET, 64 * 1024)
            .set_transport(cfg.transport.clone());
        if let Some((u, p)) = &cfg.credentials {
            opts.set_credentials(u, p);
        }
        let (client, el) = AsyncClient::new(opts, 16);
        (Client::V4(client), EventLoop::V4(Box::new(el)))
    }
}

/// Publishes what the outputs hand over, from a task of its own: the client's
/// request queue is drained by the event loop, which must never wait on it.
fn spawn_publisher(client: Client, mut outgoing: mpsc::Receiver<Outgoing>, link: String) {
    tokio::spawn(async move {
        while let Some(m) = outgoing.recv().await {
            let topic = m.topic.clone();
            if let Err(e) = client.publish(m).await {
                tracing::warn!(broker = link, topic, error = e, "cannot publish");
            }
        }
    });
}

/// Runs a link until the process stops: connect, subscribe on every CONNACK,
/// hand every publish to ingest (waiting when ingest is behind), reconnect with
/// backoff.
pub async fn run(
    cfg: LinkConfig,
    status: Arc<LinkStatus>,
    inbound: mpsc::Sender<Inbound>,
    outgoing: mpsc::Receiver<Outgoing>,
    clock: crate::Clock,
) {
    let (client, mut eventloop) = connect(&cfg);
    spawn_publisher(client.clone(), outgoing, cfg.name.clone());
    let protocol = if cfg.v5 { "MQTT 5" } else { "MQTT 3.1.1" };
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    let mut up_since: Option<Instant> = None;
    loop {
        match eventloop.poll().await {
            Ok(Event::Publish(topic, payload, retain)) => {
                status.count_message();
                let topic = String::from_utf8_lossy(&topic).into_owned();
                let message = Inbound {
                    path: cfg.path,
                    topic,
                    payload,
                    retain,
                };
                if inbound.send(message).await.is_err() {
                    // Ingest has stopped: the process is going down.
                    return;
                }
            }
            Ok(Event::ConnAck { session_present }) => {
                up_since = Some(Instant::now());
                status.set_up(clock.now_ms());
                tracing::info!(
                    broker = cfg.name,
                    host = %cfg.host,
                    port = cfg.port,
                    session_present,
                    protocol,
                    "connected to the broker"
                );
                // A clean session has no subscriptions; for a persistent one this
                // is harmless and replays the retained states.
                for s in &cfg.subscriptions {
                    if let Err(e) = client.try_subscribe(s) {
                        tracing::error!(broker = cfg.name, filter = %s.filter, error = %e, "cannot subscribe");
                    }
                }
            }
            Ok(Event::SubscriptionRefused(pkid, reason)) => tracing::error!(
                broker = cfg.name,
                pkid,
                reason,
                "the broker refused a subscription (ACL?): no messages on it"
            ),
            Ok(Event::Other) => {}
            Err((kind, error)) => {
                if let Some(at) = up_since.take() {
                    backoff.connection_lasted(at.elapsed());
                }
                if status.set_down(kind) {
                    tracing::warn!(broker = cfg.name, "disconnected from the broker");
                }
                let delay = backoff.next_delay();
                tracing::warn!(
                    broker = cfg.name,
                    kind = kind.as_str(),
                    error,
                    retry_in = ?delay,
                    "broker connection failed"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}
