//! The broker's self-metrics (`sitewatch_broker_*`): atomics bumped on the hot
//! path, encoded at each scrape by a prometheus-client [`Collector`] that the
//! collector registers next to its own.
//!
//! - `sitewatch_broker_connections` (gauge): connected clients.
//! - `sitewatch_broker_sessions` (gauge): sessions, connected or kept for a
//!   client that is away (persistent sessions).
//! - `sitewatch_broker_connects_total{result}`: CONNECT outcomes ([`CONNECT_RESULTS`]).
//! - `sitewatch_broker_messages_received_total`, `..._messages_sent_total`:
//!   PUBLISH packets in, and deliveries out (to clients and to the in-process link).
//! - `sitewatch_broker_received_bytes_total`, `..._sent_bytes_total`: on the wire.
//! - `sitewatch_broker_denied_total{action="publish|subscribe",reason}`: refused by
//!   authorization (`acl.rs`).
//! - `sitewatch_broker_dropped_messages_total{reason}`: deliveries not made
//!   ([`DROP_REASONS`]).
//! - `sitewatch_broker_subscriber_dropped_messages_total{client_id,reason}`:
//!   the same for each subscriber the broker holds a session of that lost
//!   something (the [`MAX_LISTED_SUBSCRIBERS`] that lost the most): which slow
//!   consumer it was. The in-process link never loses anything (it waits).
//! - `sitewatch_broker_protocol_errors_total{reason}`: connections closed for
//!   what the client sent ([`PROTOCOL_ERRORS`]).
//! - `sitewatch_broker_retained_messages`, `sitewatch_broker_queued_messages`
//!   (gauges).
//! - `sitewatch_broker_persist_errors_total{reason}`: the retained store on disk.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::acl::Denial;
use super::router::Router;
use super::sessions::Sessions;
use crate::ingest::RateLimiter;

/// Metric names, without the `_total` and unit suffixes the encoder appends.
pub mod names {
    pub const CONNECTIONS: &str = "sitewatch_broker_connections";
    pub const SESSIONS: &str = "sitewatch_broker_sessions";
    pub const CONNECTS: &str = "sitewatch_broker_connects";
    pub const MESSAGES_RECEIVED: &str = "sitewatch_broker_messages_received";
    pub const MESSAGES_SENT: &str = "sitewatch_broker_messages_sent";
    pub const RECEIVED: &str = "sitewatch_broker_received";
    pub const SENT: &str = "sitewatch_broker_sent";
    pub const DENIED: &str = "sitewatch_broker_denied";
    pub const DROPPED: &str = "sitewatch_broker_dropped_messages";
    pub const SUBSCRIBER_DROPPED: &str = "sitewatch_broker_subscriber_dropped_messages";
    pub const PROTOCOL_ERRORS: &str = "sitewatch_broker_protocol_errors";
    pub const RETAINED: &str = "sitewatch_broker_retained_messages";
    pub const QUEUED: &str = "sitewatch_broker_queued_messages";
    pub const PERSIST_ERRORS: &str = "sitewatch_broker_persist_errors";
}

/// `connects_total{result}`.
pub const CONNECT_RESULTS: [&str; 12] = [
    "accepted",
    "bad_credentials",
    "no_credentials",
    "not_authorized",
    "bad_client_id",
    "unsupported_version",
    "malformed",
    "timeout",
    "tls_error",
    "max_connections",
    "takeover_timeout",
    "shutting_down",
];

/// Why a delivery to a subscriber was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A network subscriber's queue was full (`max_queued_messages`).
    QueueFull = 0,
    /// QoS 0 for a session whose client is away.
    OfflineQos0 = 1,
    /// Over an MQTT 5 client's Maximum Packet Size.
    TooLargeForClient = 2,
    /// Queued for a session that expired before its client came back.
    SessionExpired = 3,
}

impl DropReason {
    pub const ALL: [DropReason; 4] = [
        DropReason::QueueFull,
        DropReason::OfflineQos0,
        DropReason::TooLargeForClient,
        DropReason::SessionExpired,
    ];

    pub fn as_str(self) -> &'static str {
        DROP_REASONS[self as usize]
    }
}

/// `dropped_messages_total{reason}`, in [`DropReason`] order.
pub const DROP_REASONS: [&str; 4] = [
    "queue_full",
    "offline_qos0",
    "too_large_for_client",
    "session_expired",
];

/// At most this many subscribers are listed in
/// `subscriber_dropped_messages_total` (those that lost the most): a bound on
/// its series whatever connects.
pub const MAX_LISTED_SUBSCRIBERS: usize = 100;

/// `protocol_errors_total{reason}`: why a connection was closed for what it sent.
pub const PROTOCOL_ERRORS: [&str; 10] = [
    "malformed",
    "packet_too_large",
    "wildcard_topic",
    "empty_topic",
    "nul_in_topic",
    "invalid_utf8",
    "topic_alias",
    "protocol_violation",
    "unsupported_version",
    "keepalive_timeout",
];

/// `persist_errors_total{reason}`.
pub const PERSIST_ERRORS: [&str; 3] = ["load_corrupt", "load_io", "write_io"];

/// One counter per label value.
#[derive(Debug)]
pub struct Counters<const N: usize> {
    labels: &'static [&'static str; N],
    values: [AtomicU64; N],
}

impl<const N: usize> Counters<N> {
    pub(crate) fn new(labels: &'static [&'static str; N]) -> Self {
        Counters {
            labels,
            values: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Adds one to `label` (a label not in the list is a bug; it is ignored).
    pub fn inc(&self, label: &str) {
        self.add(label, 1);
    }

    pub fn add(&self, label: &str, n: u64) {
        if let Some(i) = self.labels.iter().position(|l| *l == label) {
            self.values[i].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(&self, label: &str) -> u64 {
        self.labels
            .iter()
            .position(|l| *l == label)
            .map_or(0, |i| self.values[i].load(Ordering::Relaxed))
    }

    fn pairs(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.labels
            .iter()
            .zip(&self.values)
            .map(|(l, v)| (*l, v.load(Ordering::Relaxed)))
    }
}

/// Everything the broker counts.
#[derive(Debug)]
pub struct Metrics {
    pub connections: AtomicI64,
    pub connects: Counters<12>,
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub denied_publish: Counters<5>,
    pub denied_subscribe: Counters<5>,
    pub dropped: Counters<4>,
    pub protocol_errors: Counters<10>,
    pub persist_errors: Counters<3>,
    /// Every queue's length, summed (shared with each queue).
    pub queued: Arc<AtomicI64>,
    log: Mutex<RateLimiter>,
}

/// A repeated broker problem is logged at most once per reason in this period.
pub const LOG_PERIOD: Duration = Duration::from_secs(10);

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections: AtomicI64::new(0),
            connects: Counters::new(&CONNECT_RESULTS),
            messages_received: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            denied_publish: Counters::new(&Denial::KINDS),
            denied_subscribe: Counters::new(&Denial::KINDS),
            dropped: Counters::new(&DROP_REASONS),
            protocol_errors: Counters::new(&PROTOCOL_ERRORS),
            persist_errors: Counters::new(&PERSIST_ERRORS),
            queued: Arc::new(AtomicI64::new(0)),
            log: Mutex::new(RateLimiter::new(LOG_PERIOD)),
        }
    }
}

impl Metrics {
    /// Counts what routing one message dropped, and names (at most once per
    /// [`LOG_PERIOD`]) a subscriber whose full queue dropped it.
    pub fn count_routed(&self, routed: &super::router::Routed) {
        self.dropped
            .add(DropReason::QueueFull.as_str(), routed.dropped_full as u64);
        self.dropped.add(
            DropReason::OfflineQos0.as_str(),
            routed.dropped_offline as u64,
        );
        if let Some(slow) = routed.full.first()
            && let Some(suppressed) = self.should_log("subscriber_queue_full")
        {
            let dropped = slow.dropped()[DropReason::QueueFull as usize];
            tracing::warn!(
                client_id = &*slow.name,
                dropped,
                queued = slow.queue.len(),
                suppressed,
                "a subscriber that does not keep up: its queue is full and messages for it are dropped \
                 (it alone; publishers and other subscribers go on)"
            );
        }
    }

    /// `Some(suppressed)` when a problem with this key should be logged now
    /// (see `ingest::RateLimiter`).
    pub fn should_log(&self, key: &'static str) -> Option<u64> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(key, Instant::now())
    }
}

/// The prometheus-client collector over the broker's live counters.
#[derive(Debug)]
pub struct BrokerCollector {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) router: Arc<Router>,
    pub(crate) sessions: Arc<Sessions>,
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> Result<(), fmt::Error> {
    e.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: u64,
) -> Result<(), fmt::Error> {
    e.encode_descriptor(name, help, unit, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn labeled<const N: usize>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    c: &Counters<N>,
) -> Result<(), fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in c.pairs() {
        m.encode_family(&[(label, value)])?
            .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
    }
    Ok(())
}

impl Collector for BrokerCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), fmt::Error> {
        let m = &self.metrics;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        gauge(
            &mut e,
            names::CONNECTIONS,
            "Clients connected to the embedded broker.",
            m.connections.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut e,
            names::SESSIONS,
            "Sessions held by the embedded broker, connected or kept for a client that is away.",
            i64::try_from(self.sessions.len()).unwrap_or(i64::MAX),
        )?;
        labeled(
            &mut e,
            names::CONNECTS,
            "CONNECT attempts, by outcome.",
            "result",
            &m.connects,
        )?;
        counter(
            &mut e,
            names::MESSAGES_RECEIVED,
            "PUBLISH packets received from clients.",
            None,
            load(&m.messages_received),
        )?;
        counter(
            &mut e,
            names::MESSAGES_SENT,
            "Messages delivered to subscribers (clients and the in-process link).",
            None,
            load(&m.messages_sent),
        )?;
        counter(
            &mut e,
            names::RECEIVED,
            "Bytes received from clients.",
            Some(&Unit::Bytes),
            load(&m.bytes_received),
        )?;
        counter(
            &mut e,
            names::SENT,
            "Bytes sent to clients.",
            Some(&Unit::Bytes),
            load(&m.bytes_sent),
        )?;
        let mut d = e.encode_descriptor(
            names::DENIED,
            "Publishes and subscriptions refused by authorization, by action and reason.",
            None,
            MetricType::Counter,
        )?;
        for (action, c) in [
            ("publish", &m.denied_publish),
            ("subscribe", &m.denied_subscribe),
        ] {
            for (reason, n) in c.pairs() {
                d.encode_family(&[("action", action), ("reason", reason)])?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        labeled(
            &mut e,
            names::DROPPED,
            "Deliveries not made, by reason.",
            "reason",
            &m.dropped,
        )?;
        let mut listed = self.sessions.subscriber_drops();
        listed.sort_by(|a, b| {
            let total = |d: &[u64; 4]| d.iter().sum::<u64>();
            total(&b.1).cmp(&total(&a.1)).then_with(|| a.0.cmp(&b.0))
        });
        listed.truncate(MAX_LISTED_SUBSCRIBERS);
        let mut d = e.encode_descriptor(
            names::SUBSCRIBER_DROPPED,
            "Deliveries not made, by subscriber (sessions held that lost something, the most first) and reason.",
            None,
            MetricType::Counter,
        )?;
        for (client_id, counts) in &listed {
            for (reason, n) in DropReason::ALL.iter().zip(counts) {
                d.encode_family(&[("client_id", &**client_id), ("reason", reason.as_str())])?
                    .encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
        }
        labeled(
            &mut e,
            names::PROTOCOL_ERRORS,
            "Connections closed for what the client sent, by reason.",
            "reason",
            &m.protocol_errors,
        )?;
        gauge(
            &mut e,
            names::RETAINED,
            "Retained messages held.",
            i64::try_from(self.router.retained_len()).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut e,
            names::QUEUED,
            "Messages queued for subscribers, not yet sent (inflight ones excluded).",
            m.queued.load(Ordering::Relaxed),
        )?;
        labeled(
            &mut e,
            names::PERSIST_ERRORS,
            "Failures reading or writing the retained store on disk, by reason.",
            "reason",
            &m.persist_errors,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_by_label_and_ignore_unknown_ones() {
        let m = Metrics::default();
        m.connects.inc("accepted");
        m.connects.add("accepted", 2);
        m.connects.inc("no such label");
        assert_eq!(m.connects.get("accepted"), 3);
        assert_eq!(m.connects.pairs().map(|(_, n)| n).sum::<u64>(), 3);
    }

    #[test]
    fn the_exposition_names_every_family_once() {
        let c = BrokerCollector {
            metrics: Arc::new(Metrics::default()),
            router: Arc::new(Router::new()),
            sessions: Arc::new(Sessions::default()),
        };
        c.metrics.denied_publish.inc("other_host");
        c.metrics.bytes_sent.fetch_add(10, Ordering::Relaxed);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(c));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "sitewatch_broker_denied_total{action=\"publish\",reason=\"other_host\"} 1",
            "sitewatch_broker_denied_total{action=\"subscribe\",reason=\"other_host\"} 0",
            "sitewatch_broker_sent_bytes_total 10",
            "sitewatch_broker_connects_total{result=\"accepted\"} 0",
            "sitewatch_broker_retained_messages 0",
            "sitewatch_broker_sessions 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
