//! The MQTT side: one task owns every broker's rumqttc event loop, the
//! store-and-forward buffer, the batcher and the self-metrics.
//!
//! A single `select!` loop receives poll outcomes, ticks the heartbeat and the
//! fsync timer, and drives the event loops; publishes go out with
//! `try_publish`, never an awaiting `publish`, because the task that would wait
//! for room in rumqttc's request channel is the one that must poll the event
//! loop to make that room. Each broker's window of in-flight messages is smaller
//! than its channel, so `try_publish` finds room.
//!
//! Each broker has its own client, event loop, will, birth, backoff and
//! PUBACK bookkeeping (see [`crate::buffer::queue`]): the event loops are polled
//! side by side, so a broker that is down, slow or in its backoff delays nobody
//! else. A message is made and stored once and sent to each broker on its own.
//!
//! An event loop's `poll()` future is never cancelled mid-way (a cancelled
//! connect would restart, a cancelled write could lose a packet): it owns the
//! `EventLoop`, returns it when done, and is kept across loop turns. After a
//! connection error the next poll starts after the backoff delay.
//!
//! fsyncs and checkpoint writes run on blocking threads, one job of each kind at
//! a time, so a slow disk never holds up the MQTT side.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::Poll,
    time::{Duration, Instant},
};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, NetworkOptions,
    Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use sitewatch_protocol::{OfflineReason, StatePayload, Status, Topic, encode, limits};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use crate::{
    backoff::Backoff,
    batch::Batcher,
    buffer::{
        Acked, Control,
        checkpoint::Checkpoints,
        log::write_durably,
        store::{FsyncPolicy, Store, StoreConfig, SyncOutcome},
    },
    config::{Broker, Config},
    scheduler::PollOutcome,
    selfmetrics::{BrokerReport, SelfMetrics},
    source::Checkpoint,
    tls::{self, TlsError},
    unix_ms,
};

/// Messages published to one broker and not yet acknowledged, at most.
pub const WINDOW: usize = 16;
/// rumqttc's request channel: the window plus room for the state publishes and
/// the disconnect.
const REQUEST_CHANNEL: usize = WINDOW + 4;
/// How long a clean stop keeps for the offline state's PUBACK at the end of
/// `mqtt.stop_timeout`.
pub const SHUTDOWN_ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a clean stop waits for the DISCONNECT to be written.
const DISCONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// With `fsync = "always"`, the cursors are still only written this often.
const ALWAYS_TICK: Duration = Duration::from_secs(1);

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

/// rumqttc options for one broker: clean session (the buffer, not rumqttc,
/// redelivers), the will, credentials, TLS and packet limits.
pub fn mqtt_options(config: &Config, broker: &Broker) -> Result<MqttOptions, PublisherError> {
    let url = &broker.url;
    let mut options = MqttOptions::new(broker.client_id.clone(), url.host.clone(), url.port);
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
    if let Some(user) = &broker.username {
        let password = match &broker.password_file {
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
        && let Some(tls) = &broker.tls
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

/// The first of the brokers' polls to finish: (broker, event loop, result).
/// Starts looking at a rotating broker so that a busy one starves nobody.
fn next_event<'a>(
    polls: &'a mut [PollFuture],
    start: &'a mut usize,
) -> impl Future<Output = (usize, EventLoop, Result<Event, ConnectionError>)> + 'a {
    std::future::poll_fn(move |cx| {
        let n = polls.len();
        for k in 0..n {
            let b = (*start + k) % n;
            if let Some(poll) = polls.get_mut(b)
                && let Poll::Ready((eventloop, result)) = poll.as_mut().poll(cx)
            {
                *start = (b + 1) % n;
                return Poll::Ready((b, eventloop, result));
            }
        }
        Poll::Pending
    })
}

/// The result of a blocking job, once it is done; pending while there is none.
/// The handle stays in place if the caller's `select!` takes another branch.
async fn finished<T>(job: &mut Option<JoinHandle<T>>) -> Option<T> {
    match job {
        Some(handle) => {
            let result = handle.await;
            *job = None;
            result.ok()
        }
        None => std::future::pending().await,
    }
}

/// One broker's connection.
struct Link {
    name: String,
    client: AsyncClient,
    url: String,
    tls_ca: Option<String>,
    backoff: Backoff,
    /// The last connection error logged, to log on change only.
    last_error: Option<String>,
    connects: u64,
    connection_errors: u64,
    /// The offline/shutdown state was handed over (at a stop).
    shutdown_sent: bool,
    shutdown_acked: bool,
}

/// Checkpoints a job wrote, each with its outcome.
type Written = Vec<(Checkpoint, std::io::Result<()>)>;

/// Everything the publisher task owns besides the event loops.
struct Publisher {
    links: Vec<Link>,
    state_topic: String,
    birth: StatePayload,
    store: Store,
    batcher: Batcher,
    metrics: SelfMetrics,
    checkpoints: Checkpoints,
    sync_job: Option<JoinHandle<SyncOutcome>>,
    checkpoint_job: Option<JoinHandle<Written>>,
    /// The latest NUT readings, for the upsd facade (when it runs).
    latest: Option<Arc<crate::latest::Latest>>,
}

/// Runs until `shutdown` turns true, then stops cleanly (see
/// [`Publisher::shut_down`]).
pub async fn run(
    config: &Config,
    announcement: Announcement,
    mut outcomes: mpsc::Receiver<PollOutcome>,
    mut shutdown: watch::Receiver<bool>,
    latest: Option<Arc<crate::latest::Latest>>,
) -> Result<(), PublisherError> {
    let brokers = config.brokers();
    let mut links = Vec::new();
    let mut polls = Vec::new();
    for broker in &brokers {
        let options = mqtt_options(config, broker)?;
        let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CHANNEL);
        let mut network = NetworkOptions::new();
        network.set_connection_timeout(config.mqtt.connect_timeout.as_secs().max(1));
        eventloop.set_network_options(network);
        links.push(Link {
            name: broker.name.clone(),
            client,
            url: broker.url.to_string(),
            tls_ca: broker.tls.as_ref().map(|t| t.ca.display().to_string()),
            backoff: Backoff::new(config.mqtt.reconnect_min, config.mqtt.reconnect_max),
            last_error: None,
            connects: 0,
            connection_errors: 0,
            shutdown_sent: false,
            shutdown_acked: false,
        });
        polls.push(poll_after(eventloop, Duration::ZERO));
    }
    let store = Store::open(
        StoreConfig {
            dir: config.buffer.dir.clone(),
            fsync: config.buffer.fsync,
            max_messages: config.buffer.max_messages,
            max_bytes: config.buffer.max_bytes,
            max_memory_bytes: config.buffer.max_memory_bytes,
            brokers: brokers.iter().map(|b| b.name.clone()).collect(),
            window: WINDOW,
        },
        Instant::now(),
    );
    let readings_topic: Arc<str> = Topic::readings(&config.site, &config.host)
        .to_string()
        .into();
    let mut publisher = Publisher {
        links,
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
        store,
        batcher: Batcher::new(
            readings_topic,
            Topic::events(&config.site, &config.host).to_string().into(),
        )
        .with_boot(announcement.boot.clone()),
        metrics: SelfMetrics::default(),
        checkpoints: Checkpoints::default(),
        sync_job: None,
        checkpoint_job: None,
        latest,
    };
    tracing::info!(
        brokers = ?brokers.iter().map(|b| format!("{}={}", b.name, b.url)).collect::<Vec<_>>(),
        site = %config.site,
        host = %config.host,
        boot = %announcement.boot,
        buffer = config.buffer.dir.as_ref().map_or_else(|| "memory".to_owned(), |d| d.display().to_string()),
        "publisher starting"
    );

    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + config.heartbeat,
        config.heartbeat,
    );
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (flush_every, flush_on_tick) = match config.buffer.fsync {
        FsyncPolicy::Always => (ALWAYS_TICK, false),
        FsyncPolicy::Every(d) => (d, true),
    };
    let mut flush_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + flush_every, flush_every);
    flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut start = 0;
    loop {
        tokio::select! {
            (b, eventloop, result) = next_event(&mut polls, &mut start) => {
                let delay = publisher.on_event(b, result);
                if let Some(poll) = polls.get_mut(b) {
                    *poll = poll_after(eventloop, delay);
                }
            }
            Some(outcome) = outcomes.recv() => publisher.on_outcome(outcome),
            _ = heartbeat.tick() => publisher.on_heartbeat(),
            _ = flush_tick.tick() => publisher.start_sync(flush_on_tick, false),
            Some(outcome) = finished(&mut publisher.sync_job) => publisher.store.sync_finished(outcome, Instant::now()),
            Some(results) = finished(&mut publisher.checkpoint_job) => publisher.checkpoints_written(results),
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        publisher.after_turn();
    }
    // Readings taken before the stop are kept too.
    while let Ok(outcome) = outcomes.try_recv() {
        publisher.on_outcome(outcome);
    }
    publisher
        .shut_down(polls, start, config.mqtt.stop_timeout)
        .await;
    Ok(())
}

impl Publisher {
    /// Handles one event-loop result of broker `b`; returns how long to wait
    /// before its next poll.
    fn on_event(&mut self, b: usize, result: Result<Event, ConnectionError>) -> Duration {
        match result {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let backlog = self.store.queue().delivery_stats(b).pending_messages;
                if let Some(link) = self.links.get_mut(b) {
                    link.connects += 1;
                    tracing::info!(
                        broker = %link.name,
                        url = %link.url,
                        failures = link.backoff.failures(),
                        buffered = backlog,
                        "connected"
                    );
                    link.backoff.reset();
                    link.last_error = None;
                }
                self.store.queue_mut().connected(b);
                self.publish_birth(b);
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if self.store.queue_mut().on_puback(b, ack.pkid)
                    == Acked::Control(Control::Shutdown)
                    && let Some(link) = self.links.get_mut(b)
                {
                    link.shutdown_acked = true;
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                self.store.queue_mut().on_outgoing_publish(b, pkid);
            }
            Ok(_) => {}
            Err(e) => return self.on_connection_error(b, &e),
        }
        Duration::ZERO
    }

    fn on_connection_error(&mut self, b: usize, error: &ConnectionError) -> Duration {
        let was_connected = self.store.queue().is_connected(b);
        let requeued = self.store.queue().delivery_stats(b).in_flight;
        self.store.queue_mut().disconnected(b);
        let buffered = self.store.queue().delivery_stats(b).pending_messages;
        let Some(link) = self.links.get_mut(b) else {
            return Duration::ZERO;
        };
        link.connection_errors += 1;
        let delay = link.backoff.next_delay(&mut rand::rng());
        let message = error.to_string();
        let changed = link.last_error.as_deref() != Some(message.as_str());
        link.last_error = Some(message);
        if let Some(cause) = tls::rustls_cause(error) {
            if changed {
                tracing::error!(
                    broker = %link.name,
                    url = %link.url,
                    ca = link.tls_ca.as_deref().unwrap_or("-"),
                    error = %cause,
                    hint = tls::hint(cause),
                    retry_in = ?delay,
                    "TLS connection to the broker failed; retrying with backoff"
                );
            } else {
                tracing::debug!(broker = %link.name, error = %cause, retry_in = ?delay, "TLS connection failed again");
            }
        } else if was_connected {
            tracing::warn!(
                broker = %link.name,
                url = %link.url,
                error = %error,
                requeued,
                buffered,
                retry_in = ?delay,
                "connection lost"
            );
        } else if changed {
            tracing::warn!(
                broker = %link.name,
                url = %link.url,
                kind = connection_error_kind(error),
                error = %error,
                retry_in = ?delay,
                "cannot connect to the broker; retrying with backoff"
            );
        } else {
            tracing::debug!(broker = %link.name, error = %error, retry_in = ?delay, "cannot connect, again");
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
            if let Some(latest) = &self.latest {
                latest.update(&polled.readings);
            }
            self.enqueue(outcome.ts_ms, polled.readings);
            let mut last = None;
            match self.batcher.encode_events(outcome.ts_ms, polled.events) {
                Ok(messages) => {
                    for m in messages {
                        last = Some(self.store.push(m, Instant::now()));
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot encode events"),
            }
            for checkpoint in polled.checkpoints {
                self.checkpoints.add(last, checkpoint);
            }
        }
    }

    /// The heartbeat: the self-metrics, which also tell the collector the agent lives.
    fn on_heartbeat(&mut self) {
        let readings = self.metrics.readings(&self.store.stats(), &self.reports());
        self.enqueue(unix_ms(), readings);
    }

    fn reports(&self) -> Vec<BrokerReport<'_>> {
        self.links
            .iter()
            .enumerate()
            .map(|(b, link)| BrokerReport {
                name: &link.name,
                connected: self.store.queue().is_connected(b),
                connects: link.connects,
                connection_errors: link.connection_errors,
                delivery: self.store.queue().delivery_stats(b),
            })
            .collect()
    }

    fn enqueue(&mut self, ts_ms: i64, readings: Vec<sitewatch_protocol::Reading>) {
        match self.batcher.encode(ts_ms, readings) {
            Ok(messages) => {
                for m in messages {
                    self.store.push(m, Instant::now());
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode readings"),
        }
    }

    fn publish_birth(&mut self, b: usize) {
        let birth = StatePayload {
            ts: Some(unix_ms()),
            ..self.birth.clone()
        };
        self.publish_control(b, Control::Birth, &birth);
    }

    fn publish_control(&mut self, b: usize, control: Control, state: &StatePayload) -> bool {
        let payload = match encode(state) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the state");
                return false;
            }
        };
        let Some(link) = self.links.get(b) else {
            return false;
        };
        match link
            .client
            .try_publish(self.state_topic.clone(), QoS::AtLeastOnce, true, payload)
        {
            Ok(()) => {
                self.store.queue_mut().control_sent(b, control);
                true
            }
            Err(e) => {
                tracing::warn!(broker = %link.name, error = %e, state = ?control, "cannot publish the state");
                false
            }
        }
    }

    /// Hands each broker its pending messages while its window has room.
    fn pump(&mut self) {
        for b in 0..self.links.len() {
            while let Some(index) = self.store.queue_mut().next_unsent(b) {
                let Some(topic) = self.store.queue().get(index).map(|r| r.topic.to_string()) else {
                    break;
                };
                // Unreadable (a disk error): dropped and counted; the next one.
                let Some(payload) = self.store.payload(index) else {
                    continue;
                };
                let Some(link) = self.links.get(b) else {
                    break;
                };
                match link
                    .client
                    .try_publish(topic, QoS::AtLeastOnce, false, payload)
                {
                    Ok(()) => self.store.queue_mut().mark_sent(b, index),
                    // The channel is full: the next loop turn tries again.
                    Err(e) => {
                        tracing::debug!(broker = %link.name, error = %e, "request channel full");
                        break;
                    }
                }
            }
        }
    }

    /// After every event: publish what may go, release what is done, start
    /// the fsync (`always`) and the checkpoints that are due.
    fn after_turn(&mut self) {
        self.pump();
        self.store.settle();
        if self.store.fsync_policy() == FsyncPolicy::Always {
            self.start_sync(true, false);
        }
        self.start_checkpoints();
    }

    /// Starts an fsync round on a blocking thread, unless one is running.
    fn start_sync(&mut self, flush: bool, stop: bool) {
        if self.sync_job.is_some() {
            return;
        }
        if let Some(job) = self.store.sync_job(Instant::now(), flush, stop) {
            self.sync_job = Some(tokio::task::spawn_blocking(move || job.run()));
        }
    }

    fn start_checkpoints(&mut self) {
        if self.checkpoint_job.is_some() || self.checkpoints.is_empty() {
            return;
        }
        let queue = self.store.queue();
        let ready = self.checkpoints.ready(|i| queue.is_done(i));
        if ready.is_empty() {
            return;
        }
        self.checkpoint_job = Some(tokio::task::spawn_blocking(move || {
            ready
                .into_iter()
                .map(|c| {
                    let result = write_durably(&c.path, &c.contents);
                    (c, result)
                })
                .collect()
        }));
    }

    fn checkpoints_written(&mut self, results: Written) {
        for (checkpoint, result) in results {
            if let Err(e) = result {
                self.metrics.record_checkpoint_error();
                tracing::warn!(path = %checkpoint.path.display(), error = %e, "cannot write a checkpoint; its events may be sent again after a restart");
            }
        }
    }

    /// The clean stop, bounded by `stop_timeout`: each broker gets what is
    /// buffered for it, then the retained offline/shutdown state, then a
    /// DISCONNECT; a broker that is away is retried (backoff capped to the
    /// time left) until the deadline. What is left stays in the disk buffer,
    /// fsynced with the brokers' cursors, or is lost in memory mode (logged).
    async fn shut_down(
        mut self,
        mut polls: Vec<PollFuture>,
        mut start: usize,
        stop_timeout: Duration,
    ) {
        let began = Instant::now();
        let deadline = began + stop_timeout;
        // The offline state needs its own moment at the end.
        let drain_deadline = began
            + stop_timeout
                .saturating_sub(SHUTDOWN_ACK_TIMEOUT)
                .max(stop_timeout / 2);
        tracing::info!(
            backlog = ?self.reports().iter().map(|r| (r.name.to_owned(), r.delivery.pending_messages)).collect::<Vec<_>>(),
            timeout = ?stop_timeout,
            "stopping: delivering what is buffered"
        );
        self.pump();
        loop {
            let now = Instant::now();
            let draining = now < drain_deadline;
            for b in 0..self.links.len() {
                let queue = self.store.queue();
                let ready = queue.is_connected(b) && (queue.is_drained(b) || !draining);
                if ready && self.links.get(b).is_some_and(|l| !l.shutdown_sent) {
                    let offline = StatePayload::offline(OfflineReason::Shutdown, Some(unix_ms()));
                    let sent = self.publish_control(b, Control::Shutdown, &offline);
                    if let Some(link) = self.links.get_mut(b) {
                        link.shutdown_sent = sent;
                    }
                }
            }
            if self.links.iter().all(|l| l.shutdown_acked) || now >= deadline {
                break;
            }
            let wake = if draining { drain_deadline } else { deadline };
            tokio::select! {
                (b, eventloop, result) = next_event(&mut polls, &mut start) => {
                    let delay = self.on_event(b, result);
                    let left = deadline.saturating_duration_since(Instant::now());
                    if let Some(poll) = polls.get_mut(b) {
                        *poll = poll_after(eventloop, delay.min(left));
                    }
                }
                Some(outcome) = finished(&mut self.sync_job) => self.store.sync_finished(outcome, Instant::now()),
                Some(results) = finished(&mut self.checkpoint_job) => self.checkpoints_written(results),
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            self.after_turn();
        }
        self.disconnect(&mut polls, &mut start).await;
        self.persist().await;
        for r in self.reports() {
            let left = r.delivery.pending_messages;
            let acked = self
                .links
                .iter()
                .find(|l| l.name == r.name)
                .is_some_and(|l| l.shutdown_acked);
            if left == 0 {
                tracing::info!(
                    broker = r.name,
                    shutdown_acked = acked,
                    "stopped: everything delivered"
                );
            } else if self.store.is_disk() {
                tracing::warn!(
                    broker = r.name,
                    shutdown_acked = acked,
                    unsent = left,
                    "stopped: the rest stays in the disk buffer, sent after the next start"
                );
            } else {
                tracing::warn!(
                    broker = r.name,
                    shutdown_acked = acked,
                    unsent = left,
                    "stopped: the rest is lost (memory buffer; set buffer.dir to keep it)"
                );
            }
        }
    }

    /// DISCONNECT to every broker that took the offline state (a broker that
    /// did not would otherwise drop the will too), bounded.
    async fn disconnect(&mut self, polls: &mut [PollFuture], start: &mut usize) {
        let mut waiting: Vec<bool> = (0..self.links.len())
            .map(|b| {
                let connected = self.store.queue().is_connected(b);
                let link = self.links.get(b);
                let goodbye = connected && link.is_some_and(|l| l.shutdown_acked);
                goodbye
                    && link.is_some_and(|l| match l.client.try_disconnect() {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(broker = %l.name, error = %e, "cannot disconnect");
                            false
                        }
                    })
            })
            .collect();
        let deadline = Instant::now() + DISCONNECT_TIMEOUT;
        while waiting.iter().any(|w| *w) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, next_event(polls, start)).await {
                Err(_) => break,
                Ok((b, eventloop, result)) => {
                    let done = matches!(result, Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_));
                    if done && let Some(w) = waiting.get_mut(b) {
                        *w = false;
                    }
                    if let Some(poll) = polls.get_mut(b) {
                        // Not polled again unless another broker is still waiting.
                        *poll = poll_after(
                            eventloop,
                            if done {
                                Duration::from_secs(3600)
                            } else {
                                Duration::ZERO
                            },
                        );
                    }
                }
            }
        }
    }

    /// The last fsync (with the cursors) and the checkpoints that are due.
    async fn persist(&mut self) {
        if let Some(outcome) = finished_now(&mut self.sync_job).await {
            self.store.sync_finished(outcome, Instant::now());
        }
        if let Some(results) = finished_now(&mut self.checkpoint_job).await {
            self.checkpoints_written(results);
        }
        self.store.settle();
        self.start_sync(true, true);
        if let Some(outcome) = finished_now(&mut self.sync_job).await {
            self.store.sync_finished(outcome, Instant::now());
        }
        self.start_checkpoints();
        if let Some(results) = finished_now(&mut self.checkpoint_job).await {
            self.checkpoints_written(results);
        }
    }
}

/// Waits for a job if there is one.
async fn finished_now<T>(job: &mut Option<JoinHandle<T>>) -> Option<T> {
    match job.take() {
        Some(handle) => handle.await.ok(),
        None => None,
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
