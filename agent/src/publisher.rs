//! The MQTT side: one task owns rumqttc's event loop, the store-and-forward
//! buffer, the batcher and the self-metrics.
//!
//! A single `select!` loop receives poll outcomes, ticks the heartbeat and drives
//! the event loop; publishes go out with `try_publish`, never an awaiting
//! `publish`, because the task that would wait for room in rumqttc's request
//! channel is the one that must poll the event loop to make that room. The window
//! of in-flight messages is smaller than the channel, so `try_publish` finds room.
//!
//! The event loop's `poll()` future is never cancelled mid-way (a cancelled
//! connect would restart, a cancelled write could lose a packet): it owns the
//! `EventLoop`, returns it when done, and is kept across loop turns. After a
//! connection error the next poll starts after the backoff delay.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, NetworkOptions,
    Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use sitewatch_protocol::{OfflineReason, StatePayload, Status, Topic, encode, limits};
use tokio::sync::{mpsc, watch};

use crate::{
    backoff::Backoff,
    batch::Batcher,
    buffer::{self, Acked, Buffer, Control},
    config::Config,
    scheduler::PollOutcome,
    selfmetrics::SelfMetrics,
    tls::{self, TlsError},
    unix_ms,
};

/// Readings messages published and not yet acknowledged, at most.
pub const WINDOW: usize = 16;
/// rumqttc's request channel: the window plus room for the state publishes and
/// the disconnect.
const REQUEST_CHANNEL: usize = WINDOW + 4;
/// How long a clean stop waits for the broker to acknowledge the offline state.
pub const SHUTDOWN_ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a clean stop waits for the DISCONNECT to be written.
const DISCONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Why the publisher could not start.
#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    #[error("mqtt.tls: {0}")]
    Tls(#[from] TlsError),
    #[error("mqtt.password_file {path}: {source}")]
    PasswordFile {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot encode a message: {0}")]
    Encode(#[from] serde_json::Error),
}

impl PublisherError {
    pub fn kind(&self) -> &'static str {
        match self {
            PublisherError::Tls(e) => e.kind(),
            PublisherError::PasswordFile { .. } => "password_file",
            PublisherError::Encode(_) => "encode",
        }
    }
}

/// What the state message announces about this agent.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// Random per process start.
    pub boot: String,
    /// Each source's poll interval in milliseconds.
    pub sources: BTreeMap<String, u64>,
}

impl Announcement {
    pub fn new(sources: BTreeMap<String, u64>) -> Self {
        Announcement {
            boot: format!("{:016x}", rand::random::<u64>()),
            sources,
        }
    }
}

/// The `agent` field of the state message.
pub fn agent_name() -> String {
    format!("sitewatch-agent/{}", env!("CARGO_PKG_VERSION"))
}

/// rumqttc options: clean session (the buffer, not rumqttc, redelivers), the will,
/// credentials, TLS and packet limits.
pub fn mqtt_options(config: &Config) -> Result<MqttOptions, PublisherError> {
    let url = &config.mqtt.url;
    let mut options = MqttOptions::new(config.client_id(), url.host.clone(), url.port);
    options
        .set_keep_alive(config.mqtt.keepalive)
        // A resumed session would make rumqttc resend its own in-flight copies
        // next to the buffer's: double states, and pkids the buffer does not know.
        .set_clean_session(true)
        .set_last_will(LastWill::new(
            Topic::state(&config.site, &config.host).to_string(),
            encode(&StatePayload::will())?,
            QoS::AtLeastOnce,
            true,
        ))
        .set_max_packet_size(
            limits::MAX_PAYLOAD_BYTES + 1024,
            limits::MAX_PAYLOAD_BYTES + 1024,
        )
        .set_inflight(u16::try_from(WINDOW * 4).unwrap_or(u16::MAX));
    if let Some(user) = &config.mqtt.username {
        let password = match &config.mqtt.password_file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|source| PublisherError::PasswordFile {
                    path: path.display().to_string(),
                    source,
                })?
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
            None => String::new(),
        };
        options.set_credentials(user.clone(), password);
    }
    if url.tls
        && let Some(tls) = &config.mqtt.tls
    {
        options.set_transport(Transport::Tls(TlsConfiguration::Rustls(
            tls::client_config(tls)?,
        )));
    }
    Ok(options)
}

type PollFuture = Pin<Box<dyn Future<Output = (EventLoop, Result<Event, ConnectionError>)> + Send>>;

/// One `eventloop.poll()`, after `delay`; owns the event loop so it never has to
/// be cancelled.
fn poll_after(mut eventloop: EventLoop, delay: Duration) -> PollFuture {
    Box::pin(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let result = eventloop.poll().await;
        (eventloop, result)
    })
}

/// Everything the publisher task owns besides the event loop.
struct Publisher {
    client: AsyncClient,
    state_topic: String,
    birth: StatePayload,
    broker: String,
    tls_ca: Option<String>,
    buffer: Buffer,
    batcher: Batcher,
    metrics: SelfMetrics,
    backoff: Backoff,
    /// The last connection error logged, to log on change only.
    last_error: Option<String>,
    shutdown_acked: bool,
}

/// Runs until `shutdown` turns true, then publishes the offline state, waits for
/// its PUBACK (bounded) and disconnects.
pub async fn run(
    config: &Config,
    announcement: Announcement,
    mut outcomes: mpsc::Receiver<PollOutcome>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PublisherError> {
    let options = mqtt_options(config)?;
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CHANNEL);
    let mut network = NetworkOptions::new();
    network.set_connection_timeout(config.mqtt.connect_timeout.as_secs().max(1));
    eventloop.set_network_options(network);

    let readings_topic: Arc<str> = Topic::readings(&config.site, &config.host)
        .to_string()
        .into();
    let mut publisher = Publisher {
        client,
        state_topic: Topic::state(&config.site, &config.host).to_string(),
        birth: StatePayload {
            v: sitewatch_protocol::VERSION,
            status: Status::Online,
            reason: None,
            ts: None,
            boot: Some(announcement.boot.clone()),
            agent: Some(agent_name()),
            interval_ms: Some(duration_ms(config.heartbeat)),
            sources: announcement.sources,
            labels: config.labels.clone(),
            site: None,
            host: None,
        },
        broker: config.mqtt.url.to_string(),
        tls_ca: config.mqtt.tls.as_ref().map(|t| t.ca.display().to_string()),
        buffer: Buffer::new(buffer::Limits {
            max_messages: config.buffer.max_messages,
            max_bytes: config.buffer.max_bytes,
            window: WINDOW,
        }),
        batcher: Batcher::new(
            readings_topic,
            Topic::events(&config.site, &config.host).to_string().into(),
        ),
        metrics: SelfMetrics::default(),
        backoff: Backoff::new(config.mqtt.reconnect_min, config.mqtt.reconnect_max),
        last_error: None,
        shutdown_acked: false,
    };
    tracing::info!(
        broker = %publisher.broker,
        site = %config.site,
        host = %config.host,
        boot = %announcement.boot,
        "publisher starting"
    );

    let mut poll = poll_after(eventloop, Duration::ZERO);
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + config.heartbeat,
        config.heartbeat,
    );
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            (eventloop, result) = &mut poll => {
                let delay = publisher.on_event(result);
                poll = poll_after(eventloop, delay);
            }
            Some(outcome) = outcomes.recv() => publisher.on_outcome(outcome),
            _ = heartbeat.tick() => publisher.on_heartbeat(),
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        publisher.pump();
    }
    publisher.shut_down(poll).await;
    Ok(())
}

impl Publisher {
    /// Handles one event-loop result; returns how long to wait before the next poll.
    fn on_event(&mut self, result: Result<Event, ConnectionError>) -> Duration {
        match result {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                self.metrics.record_connect();
                tracing::info!(
                    broker = %self.broker,
                    failures = self.backoff.failures(),
                    buffered = self.buffer.stats().messages,
                    "connected"
                );
                self.backoff.reset();
                self.last_error = None;
                self.buffer.connected();
                self.publish_birth();
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if self.buffer.on_puback(ack.pkid) == Acked::Control(Control::Shutdown) {
                    self.shutdown_acked = true;
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => self.buffer.on_outgoing_publish(pkid),
            Ok(_) => {}
            Err(e) => return self.on_connection_error(&e),
        }
        Duration::ZERO
    }

    fn on_connection_error(&mut self, error: &ConnectionError) -> Duration {
        let was_connected = self.buffer.is_connected();
        let requeued = self.buffer.stats().in_flight;
        self.buffer.disconnected();
        self.metrics.record_connection_error();
        let delay = self.backoff.next_delay(&mut rand::rng());
        let message = error.to_string();
        let changed = self.last_error.as_deref() != Some(message.as_str());
        self.last_error = Some(message);
        if let Some(cause) = tls::rustls_cause(error) {
            if changed {
                tracing::error!(
                    broker = %self.broker,
                    ca = self.tls_ca.as_deref().unwrap_or("-"),
                    error = %cause,
                    hint = tls::hint(cause),
                    retry_in = ?delay,
                    "TLS connection to the broker failed; retrying with backoff"
                );
            } else {
                tracing::debug!(error = %cause, retry_in = ?delay, "TLS connection failed again");
            }
        } else if was_connected {
            tracing::warn!(
                broker = %self.broker,
                error = %error,
                requeued,
                buffered = self.buffer.stats().messages,
                retry_in = ?delay,
                "connection lost"
            );
        } else if changed {
            tracing::warn!(
                broker = %self.broker,
                kind = connection_error_kind(error),
                error = %error,
                retry_in = ?delay,
                "cannot connect to the broker; retrying with backoff"
            );
        } else {
            tracing::debug!(error = %error, retry_in = ?delay, "cannot connect, again");
        }
        delay
    }

    fn on_outcome(&mut self, outcome: PollOutcome) {
        self.metrics.record_poll(
            outcome.source,
            outcome.duration,
            outcome.result.as_ref().err(),
        );
        if let Ok(polled) = outcome.result {
            self.enqueue(outcome.ts_ms, polled.readings);
            match self.batcher.encode_events(outcome.ts_ms, polled.events) {
                Ok(messages) => messages.into_iter().for_each(|m| self.buffer.push(m)),
                Err(e) => tracing::error!(error = %e, "cannot encode events"),
            }
        }
    }

    /// The heartbeat: the self-metrics, which also tell the collector the agent lives.
    fn on_heartbeat(&mut self) {
        let readings = self.metrics.readings(&self.buffer.stats());
        self.enqueue(unix_ms(), readings);
    }

    fn enqueue(&mut self, ts_ms: i64, readings: Vec<sitewatch_protocol::Reading>) {
        match self.batcher.encode(ts_ms, readings) {
            Ok(messages) => messages.into_iter().for_each(|m| self.buffer.push(m)),
            Err(e) => tracing::error!(error = %e, "cannot encode readings"),
        }
    }

    fn publish_birth(&mut self) {
        let birth = StatePayload {
            ts: Some(unix_ms()),
            ..self.birth.clone()
        };
        self.publish_control(Control::Birth, &birth);
    }

    fn publish_control(&mut self, control: Control, state: &StatePayload) {
        let payload = match encode(state) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the state");
                return;
            }
        };
        match self
            .client
            .try_publish(self.state_topic.clone(), QoS::AtLeastOnce, true, payload)
        {
            Ok(()) => self.buffer.control_sent(control),
            Err(e) => tracing::warn!(error = %e, state = ?control, "cannot publish the state"),
        }
    }

    /// Hands buffered messages to rumqttc while the window has room.
    fn pump(&mut self) {
        while let Some(message) = self.buffer.next_unsent() {
            let topic = message.topic.to_string();
            let payload = message.payload.clone();
            match self
                .client
                .try_publish(topic, QoS::AtLeastOnce, false, payload)
            {
                Ok(()) => self.buffer.mark_sent(),
                // The channel is full: the next loop turn tries again.
                Err(e) => {
                    tracing::debug!(error = %e, "request channel full");
                    break;
                }
            }
        }
    }

    /// The clean stop: offline/shutdown state (retained), its PUBACK, DISCONNECT.
    async fn shut_down(mut self, mut poll: PollFuture) {
        if !self.buffer.is_connected() {
            tracing::warn!(
                buffered = self.buffer.stats().messages,
                "stopping while disconnected: the offline state cannot be published"
            );
            return;
        }
        let offline = StatePayload::offline(OfflineReason::Shutdown, Some(unix_ms()));
        self.publish_control(Control::Shutdown, &offline);
        let deadline = Instant::now() + SHUTDOWN_ACK_TIMEOUT;
        while !self.shutdown_acked && self.buffer.is_connected() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, &mut poll).await {
                Ok((eventloop, result)) => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "connection lost while stopping");
                        return;
                    }
                    self.on_event(result);
                    poll = poll_after(eventloop, Duration::ZERO);
                }
                Err(_) => {
                    tracing::warn!(timeout = ?SHUTDOWN_ACK_TIMEOUT, "no PUBACK for the offline state");
                    break;
                }
            }
        }
        if let Err(e) = self.client.try_disconnect() {
            tracing::warn!(error = %e, "cannot disconnect");
            return;
        }
        let deadline = Instant::now() + DISCONNECT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, &mut poll).await {
                Ok((_, Ok(Event::Outgoing(Outgoing::Disconnect)))) | Ok((_, Err(_))) | Err(_) => {
                    break;
                }
                Ok((eventloop, Ok(_))) => poll = poll_after(eventloop, Duration::ZERO),
            }
        }
        let stats = self.buffer.stats();
        tracing::info!(
            shutdown_acked = self.shutdown_acked,
            unsent = stats.messages,
            "disconnected"
        );
    }
}

/// A bounded label for a connection failure.
pub fn connection_error_kind(error: &ConnectionError) -> &'static str {
    match error {
        ConnectionError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => "refused",
        ConnectionError::Io(_) => "io",
        ConnectionError::ConnectionRefused(_) => "rejected_by_broker",
        ConnectionError::NetworkTimeout | ConnectionError::FlushTimeout => "timeout",
        ConnectionError::Tls(_) => "tls",
        ConnectionError::MqttState(_) => "connection",
        _ => "other",
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
