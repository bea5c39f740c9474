//! The MQTT consumer: one task owns the client's event loop, subscribes on every
//! connection, decodes each publish with the protocol crate and applies it to the
//! state. A bad message is counted by reason and logged (rate-limited); it never
//! stops the task. A lost connection is retried with capped exponential backoff.
//!
//! MQTT 3.1.1 is used unless a share group is set, which needs MQTT 5.
//!
//! # Subscriptions
//!
//! The contract's subscription is `sitewatch/v1/+/+/+` at QoS 1, and that is what
//! the collector uses against an external broker without a share group. Two cases
//! differ, both because of retained state messages (the agents' births and wills,
//! which the collector must see in full when it starts):
//!
//! - With a share group, `$share/<group>/sitewatch/v1/+/+/+` would also share the
//!   state topics, and MQTT 5 does not send retained messages to a new shared
//!   subscription (MQTT 5.0, 4.8.2). A restarted collector would then know no agent
//!   until each one restarts. So every collector subscribes to the state topics
//!   directly and shares only readings and events:
//!   `sitewatch/v1/+/+/state` + `$share/<group>/sitewatch/v1/+/+/readings` +
//!   `$share/<group>/sitewatch/v1/+/+/events`. Each collector thus knows every
//!   agent's liveness, and sees part of its readings (see `liveness::Rules`).
//! - On the embedded broker the state topics are subscribed at QoS 0 (rumqttd
//!   replays at most 100 retained messages to a QoS 1 subscription; see
//!   `broker.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sitewatch_protocol::topic::{PREFIX, SUBSCRIPTION};
use sitewatch_protocol::{Rejection, decode};
use tokio::sync::{Notify, mpsc};

use crate::config::{BrokerMode, Settings, read_password};
use crate::replay::Recorder;
use crate::signals::Outgoing;
use crate::state::Applied;
use crate::{Error, Shared};

/// The largest packet the consumer accepts from a broker. Above the contract's
/// 256 KiB so that an oversized payload arrives and is counted as `too_large`;
/// with MQTT 5 the broker is told and drops larger ones itself.
pub const MAX_INCOMING_PACKET: usize = 1024 * 1024;

/// First and longest wait between reconnection attempts.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// A collector is one client, not one of thousands: it can come back quickly
/// after a broker restart without a thundering herd, and every second it is
/// away is a second in which no signal can be raised.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A rejected message is logged at most once per reason in this period.
pub const REJECTION_LOG_PERIOD: Duration = Duration::from_secs(10);

/// One subscription: filter and QoS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub filter: String,
    pub qos: u8,
}

/// The subscriptions for a broker mode (see the module docs for why they differ).
pub fn subscriptions(embedded: bool, share_group: Option<&str>) -> Vec<Subscription> {
    let sub = |filter: String, qos| Subscription { filter, qos };
    let kind = |k: &str| format!("{PREFIX}/+/+/{k}");
    let state_qos = if embedded { 0 } else { 1 };
    match share_group {
        None if !embedded => vec![sub(SUBSCRIPTION.to_owned(), 1)],
        // The state subscription goes last: brokers handle one connection's
        // SUBSCRIBEs in order, so once a retained state arrives the other
        // subscriptions are in place too (tests rely on it to avoid sleeping).
        None => vec![
            sub(kind("readings"), 1),
            sub(kind("events"), 1),
            sub(kind("state"), state_qos),
        ],
        Some(g) => vec![
            sub(format!("$share/{g}/{}", kind("readings")), 1),
            sub(format!("$share/{g}/{}", kind("events")), 1),
            sub(kind("state"), state_qos),
        ],
    }
}

/// Capped exponential backoff.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: BACKOFF_MIN }
    }
}

impl Backoff {
    /// The wait before the next attempt; doubles up to [`BACKOFF_MAX`].
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        d
    }

    pub fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

/// Logs a repeated problem at most once per key and period, with how many
/// occurrences were not logged in between. Pure over the `Instant` passed in.
#[derive(Debug, Default)]
pub struct RateLimiter {
    period: Duration,
    last: HashMap<&'static str, (Instant, u64)>,
}

impl RateLimiter {
    pub fn new(period: Duration) -> Self {
        RateLimiter {
            period,
            last: HashMap::new(),
        }
    }

    /// `Some(suppressed)` when this occurrence should be logged, with the count of
    /// occurrences suppressed since the last logged one; `None` to stay quiet.
    pub fn check(&mut self, key: &'static str, now: Instant) -> Option<u64> {
        match self.last.get_mut(key) {
            Some((at, suppressed)) if now.duration_since(*at) < self.period => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                let n = *suppressed;
                *at = now;
                *suppressed = 0;
                Some(n)
            }
            None => {
                self.last.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

/// Decodes and applies messages; the part of the consumer with no network.
#[derive(Debug)]
pub struct Ingestor {
    shared: Arc<Shared>,
    limiter: RateLimiter,
    hooks: Hooks,
}

/// What the consumer does besides ingesting: wake the signals engine, record the
/// traffic, publish the `_signals` messages.
#[derive(Debug, Default)]
pub struct Hooks {
    /// Notified after each message, so that the engine runs after an ingest burst.
    pub ingested: Option<Arc<Notify>>,
    /// Writes every message received (`--record FILE`).
    pub recorder: Option<Recorder>,
    /// Retained messages to publish through the consumer's client.
    pub outgoing: Option<mpsc::Receiver<Outgoing>>,
}

impl Ingestor {
    pub fn new(shared: Arc<Shared>) -> Self {
        Ingestor::with_hooks(shared, Hooks::default())
    }

    pub fn with_hooks(shared: Arc<Shared>, hooks: Hooks) -> Self {
        Ingestor {
            shared,
            limiter: RateLimiter::new(REJECTION_LOG_PERIOD),
            hooks,
        }
    }

    /// Handles one received publish, now.
    pub fn handle(&mut self, topic: &str, payload: &[u8], retained: bool) {
        let now = self.shared.clock.now_ms();
        self.handle_at(topic, payload, retained, now);
    }

    /// Handles one publish received at `now` (Unix ms): the live clock, or a
    /// replay's simulated one.
    pub fn handle_at(&mut self, topic: &str, payload: &[u8], retained: bool, now: i64) {
        if let Some(r) = &self.hooks.recorder {
            r.record(topic, payload, retained, now);
        }
        self.apply(topic, payload, retained, now);
        if let Some(n) = &self.hooks.ingested {
            n.notify_one();
        }
    }

    fn apply(&mut self, topic: &str, payload: &[u8], retained: bool, now: i64) {
        // Decoding (the expensive part) happens outside the lock.
        match decode(topic, payload) {
            Ok(msg) => {
                let applied = self.shared.write().apply(&msg, retained, now);
                match applied {
                    Applied::Forgotten => {
                        tracing::info!(topic, "retained state cleared: host forgotten")
                    }
                    Applied::Restarted => tracing::warn!(
                        topic,
                        "sequence restarted without a new boot: birth missed or out of order"
                    ),
                    Applied::Readings { gap, .. } if gap > 0 => {
                        tracing::debug!(topic, gap, "sequence gap")
                    }
                    _ => {}
                }
            }
            Err(rejection) => {
                self.shared.write().count_rejection(&rejection);
                self.log_rejection(topic, &rejection);
            }
        }
    }

    fn log_rejection(&mut self, topic: &str, rejection: &Rejection) {
        let reason = rejection.reason();
        if let Some(suppressed) = self.limiter.check(reason, Instant::now()) {
            // The topic is attacker-controlled text; cap what goes in the log.
            let topic: String = topic.chars().take(200).collect();
            tracing::warn!(
                reason,
                topic,
                error = %rejection,
                suppressed,
                "message rejected"
            );
        }
    }
}

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub embedded: bool,
    /// MQTT 5 (share groups) or 3.1.1.
    pub v5: bool,
}

impl Endpoint {
    /// The endpoint the settings name.
    pub fn from_settings(s: &Settings) -> Self {
        let v5 = s.share_group.is_some();
        match &s.broker {
            BrokerMode::Embedded {
                v4, v5: v5_addr, ..
            } => {
                let addr = if v5 { v5_addr } else { v4 };
                // A wildcard listen address is reached over loopback.
                let ip = if addr.ip().is_unspecified() {
                    if addr.is_ipv4() {
                        "127.0.0.1".to_owned()
                    } else {
                        "::1".to_owned()
                    }
                } else {
                    addr.ip().to_string()
                };
                Endpoint {
                    host: ip,
                    port: addr.port(),
                    tls: false,
                    embedded: true,
                    v5,
                }
            }
            BrokerMode::External(url) => Endpoint {
                host: url.host.clone(),
                port: url.port,
                tls: url.tls,
                embedded: false,
                v5,
            },
        }
    }
}

/// Everything the consumer needs, resolved before it starts (files read, TLS built).
#[derive(Clone)]
pub struct ConsumerConfig {
    pub endpoint: Endpoint,
    pub client_id: String,
    /// A configured client id asks for a persistent session.
    pub persistent: bool,
    pub credentials: Option<(String, String)>,
    pub transport: rumqttc::Transport,
    pub keep_alive: Duration,
    pub session_expiry: Duration,
    pub subscriptions: Vec<Subscription>,
}

impl std::fmt::Debug for ConsumerConfig {
    // By hand: rumqttc's `Transport` has no `Debug`, and the password stays out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerConfig")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("persistent", &self.persistent)
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .field("keep_alive", &self.keep_alive)
            .field("session_expiry", &self.session_expiry)
            .field("subscriptions", &self.subscriptions)
            .finish_non_exhaustive()
    }
}

impl ConsumerConfig {
    /// Resolves the consumer's configuration; reads the password and CA files.
    pub fn from_settings(s: &Settings) -> Result<Self, Error> {
        let endpoint = Endpoint::from_settings(s);
        let credentials = match (&s.username, &s.password_file) {
            (Some(u), Some(p)) => Some((u.clone(), read_password(p)?)),
            (Some(u), None) => Some((u.clone(), String::new())),
            _ => None,
        };
        let transport = if endpoint.tls {
            tls_transport(s)?
        } else {
            rumqttc::Transport::Tcp
        };
        let subscriptions = subscriptions(endpoint.embedded, s.share_group.as_deref());
        Ok(ConsumerConfig {
            client_id: s.client_id.clone().unwrap_or_else(|| default_client_id(s)),
            // Always a persistent session: QoS 1 batches published while the
            // collector is reconnecting (after a broker restart, agents often come
            // back first) are queued for it, so nothing is lost.
            persistent: true,
            endpoint,
            credentials,
            transport,
            keep_alive: s.keep_alive,
            session_expiry: s.session_expiry,
            subscriptions,
        })
    }
}

/// A client id that is stable across restarts (so the broker resumes the
/// session) and distinct for each collector on one machine (its HTTP port).
fn default_client_id(s: &Settings) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("sitewatch-collector-{host}-{}", s.listen.port())
}

fn tls_transport(s: &Settings) -> Result<rumqttc::Transport, Error> {
    let config = crate::tls::mqtt_client_config(s.tls_ca.as_deref(), s.tls_client.as_ref())?;
    Ok(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(config),
    ))
}

fn qos(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        2 => rumqttc::QoS::ExactlyOnce,
        _ => rumqttc::QoS::AtLeastOnce,
    }
}

/// A connection to the broker is up: count it, and when it is not the first, give
/// the heartbeat rule its startup grace again. While the collector was away it
/// heard nobody; the broker now redelivers what it queued and the agents' retained
/// states, and until it has, silence is not a sign of death.
fn connected(shared: &Shared) {
    shared.connected.store(true, Ordering::Relaxed);
    let previous = shared.connections.fetch_add(1, Ordering::Relaxed);
    if previous > 0 {
        let now = shared.clock.now_ms();
        shared.write().restart_heartbeat_grace(now);
    }
}

/// Publishes the `_signals` messages handed over by the signals loop, from a task
/// of its own: the client's request queue is drained by the event loop, which must
/// never wait on it.
fn spawn_publisher<F, Fut>(mut outgoing: mpsc::Receiver<Outgoing>, publish: F)
where
    F: Fn(Outgoing) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    tokio::spawn(async move {
        while let Some(m) = outgoing.recv().await {
            let topic = m.topic.clone();
            if let Err(e) = publish(m).await {
                tracing::warn!(topic, error = e, "cannot publish");
            }
        }
    });
}

fn set_connected(shared: &Shared, connected: bool) {
    let was = shared.connected.swap(connected, Ordering::Relaxed);
    if was != connected && !connected {
        tracing::warn!("disconnected from the broker");
    }
}

/// Runs the consumer until the process stops.
pub async fn run(cfg: ConsumerConfig, shared: Arc<Shared>, hooks: Hooks) {
    if cfg.endpoint.v5 {
        run_v5(cfg, shared, hooks).await
    } else {
        run_v4(cfg, shared, hooks).await
    }
}

async fn run_v4(cfg: ConsumerConfig, shared: Arc<Shared>, mut hooks: Hooks) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, SubscribeReasonCode};
    let mut opts = MqttOptions::new(&cfg.client_id, &cfg.endpoint.host, cfg.endpoint.port);
    opts.set_keep_alive(cfg.keep_alive)
        .set_clean_session(!cfg.persistent)
        .set_max_packet_size(MAX_INCOMING_PACKET, 64 * 1024)
        .set_transport(cfg.transport.clone());
    if let Some((u, p)) = &cfg.credentials {
        opts.set_credentials(u, p);
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    if let Some(outgoing) = hooks.outgoing.take() {
        let publisher = client.clone();
        spawn_publisher(outgoing, move |m| {
            let publisher = publisher.clone();
            async move {
                publisher
                    .publish(m.topic, qos(1), true, m.payload)
                    .await
                    .map_err(|e| e.to_string())
            }
        });
    }
    let mut ingestor = Ingestor::with_hooks(Arc::clone(&shared), hooks);
    let mut backoff = Backoff::default();
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                ingestor.handle(&p.topic, &p.payload, p.retain);
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                on_connack(
                    &cfg,
                    &shared,
                    &mut backoff,
                    ack.session_present,
                    "MQTT 3.1.1",
                    |s| {
                        client
                            .try_subscribe(s.filter.clone(), qos(s.qos))
                            .map_err(|e| e.to_string())
                    },
                );
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    tracing::error!(
                        pkid = ack.pkid,
                        "the broker refused a subscription (ACL?): no messages on it"
                    );
                }
            }
            Ok(_) => {}
            Err(e) => {
                let delay = connection_failed(&shared, &mut backoff, &e);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn run_v5(cfg: ConsumerConfig, shared: Arc<Shared>, mut hooks: Hooks) {
    use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let mut opts = MqttOptions::new(&cfg.client_id, &cfg.endpoint.host, cfg.endpoint.port);
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
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    if let Some(outgoing) = hooks.outgoing.take() {
        let publisher = client.clone();
        spawn_publisher(outgoing, move |m| {
            let publisher = publisher.clone();
            async move {
                publisher
                    .publish(m.topic, v5_qos(1), true, m.payload)
                    .await
                    .map_err(|e| e.to_string())
            }
        });
    }
    let mut ingestor = Ingestor::with_hooks(Arc::clone(&shared), hooks);
    let mut backoff = Backoff::default();
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = String::from_utf8_lossy(&p.topic);
                ingestor.handle(&topic, &p.payload, p.retain);
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                on_connack(
                    &cfg,
                    &shared,
                    &mut backoff,
                    ack.session_present,
                    "MQTT 5",
                    |s| {
                        client
                            .try_subscribe(s.filter.clone(), v5_qos(s.qos))
                            .map_err(|e| e.to_string())
                    },
                );
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                for code in &ack.return_codes {
                    if !matches!(code, SubscribeReasonCode::Success(_)) {
                        tracing::error!(
                            pkid = ack.pkid,
                            reason = ?code,
                            "the broker refused a subscription: no messages on it"
                        );
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                let delay = connection_failed(&shared, &mut backoff, &e);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// A CONNACK, on either protocol version: the backoff starts over, the
/// collector counts as connected, and every filter is subscribed again (a clean
/// session has none; for a persistent one it is harmless and replays retained
/// states).
fn on_connack(
    cfg: &ConsumerConfig,
    shared: &Shared,
    backoff: &mut Backoff,
    session_present: bool,
    protocol: &'static str,
    subscribe: impl Fn(&Subscription) -> Result<(), String>,
) {
    backoff.reset();
    connected(shared);
    tracing::info!(
        host = %cfg.endpoint.host,
        port = cfg.endpoint.port,
        session_present,
        protocol,
        "connected to the broker"
    );
    for s in &cfg.subscriptions {
        if let Err(e) = subscribe(s) {
            tracing::error!(filter = %s.filter, error = %e, "cannot subscribe");
        }
    }
}

/// A failed connection, on either protocol version: not connected any more;
/// returns how long to wait before the next attempt.
fn connection_failed(
    shared: &Shared,
    backoff: &mut Backoff,
    error: &dyn std::fmt::Display,
) -> Duration {
    set_connected(shared, false);
    let delay = backoff.next_delay();
    tracing::warn!(error = %error, retry_in = ?delay, "broker connection failed");
    delay
}

fn v5_qos(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS;
    match q {
        0 => QoS::AtMostOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Clock;
    use crate::state::{State, StateConfig};

    #[test]
    fn subscriptions_per_mode() {
        let f = |e, g| {
            subscriptions(e, g)
                .into_iter()
                .map(|s| format!("{}@{}", s.filter, s.qos))
                .collect::<Vec<_>>()
        };
        assert_eq!(f(false, None), ["sitewatch/v1/+/+/+@1"]);
        assert_eq!(
            f(true, None),
            [
                "sitewatch/v1/+/+/readings@1",
                "sitewatch/v1/+/+/events@1",
                "sitewatch/v1/+/+/state@0"
            ]
        );
        assert_eq!(
            f(false, Some("g")),
            [
                "$share/g/sitewatch/v1/+/+/readings@1",
                "$share/g/sitewatch/v1/+/+/events@1",
                "sitewatch/v1/+/+/state@1"
            ]
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<_> = (0..12).map(|_| b.next_delay()).collect();
        assert_eq!(delays[0], BACKOFF_MIN);
        assert_eq!(delays[1], BACKOFF_MIN * 2);
        assert_eq!(*delays.last().unwrap(), BACKOFF_MAX);
        b.reset();
        assert_eq!(b.next_delay(), BACKOFF_MIN);
    }

    #[test]
    fn rate_limiter_logs_once_per_period_with_the_suppressed_count() {
        let mut r = RateLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(r.check("not_json", t0), Some(0));
        assert_eq!(r.check("not_json", t0 + Duration::from_secs(1)), None);
        assert_eq!(r.check("not_json", t0 + Duration::from_secs(2)), None);
        // Another reason has its own budget.
        assert_eq!(r.check("too_large", t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(r.check("not_json", t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(r.check("not_json", t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn rejected_messages_are_counted_by_reason_and_the_rest_still_ingested() {
        let shared = Arc::new(Shared::new(
            State::new(StateConfig::default()),
            Clock::Fixed(1_000_000),
        ));
        let mut ing = Ingestor::new(Arc::clone(&shared));
        ing.handle("sitewatch/v1/bj1/web-01/readings", b"{not json", false);
        ing.handle("sitewatch/v1/bj1/web-01/readings", b"{not json", false);
        ing.handle("sitewatch/v1/BJ1/web-01/readings", b"{}", false);
        ing.handle(
            "sitewatch/v1/bj1/web-01/readings",
            br#"{"v":2,"seq":1,"ts":1,"readings":[]}"#,
            false,
        );
        ing.handle(
            "sitewatch/v1/bj1/web-01/readings",
            br#"{"v":1,"seq":1,"ts":1,"readings":[{"src":"host","dev":"cpu","name":"cpu","q":"cpu_usage_ratio","value":0.5,"state":"ok"}]}"#,
            false,
        );
        let state = shared.read();
        let c = state.counters();
        let count = |reason: &str| {
            let i = Rejection::REASONS
                .iter()
                .position(|r| *r == reason)
                .unwrap();
            c.rejected[i]
        };
        assert_eq!(count("not_json"), 2);
        assert_eq!(count("bad_topic"), 1);
        assert_eq!(count("wrong_version"), 1);
        assert_eq!(c.rejected.iter().sum::<u64>(), 4);
        assert_eq!(c.readings, 1);
    }
}
