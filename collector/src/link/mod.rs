//! Broker links: the collector's connections to MQTT brokers. Each link owns its
//! client (MQTT 3.1.1 or 5, behind one loop: [`mqtt`]), subscribes on every
//! connection, hands what it receives to ingest ([`Inbound`], through a bounded
//! channel: a slow ingest slows the link, which leaves the messages queued at the
//! broker instead of dropping them), publishes what the outputs give it
//! ([`Outgoing`]), and reports its state ([`LinkStatus`]).
//!
//! A collector holds one link per broker it consumes: the embedded broker, an
//! external one, or several (a dual-homed deployment: the local site's broker
//! and the other site's). Each link is a *path* ([`PathId`]): liveness is judged
//! per path (`liveness.rs`), and a message that arrives through two paths is
//! ingested once (`dedup.rs`).
//!
//! # Subscriptions
//!
//! The contract's subscription is `sitewatch/v1/+/+/+` at QoS 1, and that is what
//! a link uses without a share group. With a share group,
//! `$share/<group>/sitewatch/v1/+/+/+` would also share the state topics, and MQTT
//! 5 does not send retained messages to a new shared subscription (MQTT 5.0,
//! 4.8.2): a restarted collector would know no agent until each one restarts. So
//! every collector subscribes to the state topics directly and shares only
//! readings and events: `sitewatch/v1/+/+/state` +
//! `$share/<group>/sitewatch/v1/+/+/readings` + `$share/<group>/.../events`. Each
//! collector thus knows every agent's liveness, and sees part of its readings
//! (see `liveness::Rules`). The state subscription goes last: brokers handle one
//! connection's SUBSCRIBEs in order, so once a retained state arrives the other
//! subscriptions are in place too (tests rely on it to avoid sleeping).

pub mod mqtt;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use sitewatch_protocol::topic::{PREFIX, SUBSCRIPTION};
use tokio::sync::mpsc;

use crate::liveness::{PathId, PathState};

/// Messages queued from the links to ingest; beyond this a link waits.
pub const INBOUND_QUEUE: usize = 4096;
/// Messages queued for one link to publish; beyond this an output keeps them
/// pending (see `output/mqtt.rs`).
pub const OUTGOING_QUEUE: usize = 256;

/// A message received through a link, for ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub path: PathId,
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
}

/// A message for a link to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// One subscription: filter and QoS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub filter: String,
    pub qos: u8,
}

/// The subscriptions of a link (see the module docs for why they differ with a
/// share group). `state_qos0`: rumqttd, the embedded broker until it is
/// replaced, replays at most 100 retained messages to a QoS 1 subscription, so
/// the state topics are subscribed at QoS 0 there.
pub fn subscriptions(share_group: Option<&str>, state_qos0: bool) -> Vec<Subscription> {
    let sub = |filter: String, qos| Subscription { filter, qos };
    let kind = |k: &str| format!("{PREFIX}/+/+/{k}");
    let state_qos = if state_qos0 { 0 } else { 1 };
    match share_group {
        None if !state_qos0 => vec![sub(SUBSCRIPTION.to_owned(), 1)],
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

/// Why a connection failed, as a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// TCP could not connect, or the connection dropped.
    Network,
    /// TLS handshake or certificate.
    Tls,
    /// The broker refused the CONNECT (credentials, authorization).
    Refused,
    /// The broker sent something the client would not take (a packet over the
    /// size limit, a protocol error).
    Protocol,
    /// Anything else (timeouts, the client's own state).
    Other,
}

impl FailureKind {
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Network,
        FailureKind::Tls,
        FailureKind::Refused,
        FailureKind::Protocol,
        FailureKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Network => "network",
            FailureKind::Tls => "tls",
            FailureKind::Refused => "refused",
            FailureKind::Protocol => "protocol",
            FailureKind::Other => "other",
        }
    }
}

/// What a link reports about itself; shared with liveness, `/healthz` and the
/// metrics (`sitewatch_collector_broker_*{broker}`).
#[derive(Debug)]
pub struct LinkStatus {
    /// The link's name: the `broker` label and what `/api/v1/hosts` shows.
    pub name: String,
    /// `host:port`, for logs.
    pub address: String,
    connected: AtomicBool,
    since_ms: AtomicI64,
    connections: AtomicU64,
    messages: AtomicU64,
    /// Indexed like [`FailureKind::ALL`].
    failures: [AtomicU64; 5],
}

impl LinkStatus {
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        LinkStatus {
            name: name.into(),
            address: address.into(),
            connected: AtomicBool::new(false),
            since_ms: AtomicI64::new(0),
            connections: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            failures: Default::default(),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Connections made so far (each one a CONNACK).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    pub fn failures(&self, kind: FailureKind) -> u64 {
        FailureKind::ALL
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.failures.get(i))
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// As liveness needs it.
    pub fn path_state(&self) -> PathState {
        PathState {
            connected: self.is_connected(),
            since_ms: self.since_ms.load(Ordering::Relaxed),
        }
    }

    /// A CONNACK arrived at `now_ms`.
    pub fn set_up(&self, now_ms: i64) {
        self.since_ms.store(now_ms, Ordering::Relaxed);
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.connected.store(true, Ordering::Relaxed);
    }

    /// The connection failed or dropped. Returns whether it was up.
    pub fn set_down(&self, kind: FailureKind) -> bool {
        if let Some(n) = FailureKind::ALL
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.failures.get(i))
        {
            n.fetch_add(1, Ordering::Relaxed);
        }
        self.connected.swap(false, Ordering::Relaxed)
    }

    pub fn count_message(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running link: its status and where to hand it messages to publish.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    pub status: Arc<LinkStatus>,
    outgoing: mpsc::Sender<Outgoing>,
}

/// Why a message could not be handed to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOff {
    /// Its queue is full (the broker is away or slow): try again later.
    Full,
    /// The link has stopped.
    Closed,
}

impl LinkHandle {
    /// A handle and the receiving end of its outgoing queue.
    pub fn new(status: Arc<LinkStatus>) -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(OUTGOING_QUEUE);
        (
            LinkHandle {
                status,
                outgoing: tx,
            },
            rx,
        )
    }

    /// Hands a message to the link without waiting.
    pub fn try_publish(&self, message: Outgoing) -> Result<(), HandOff> {
        self.outgoing.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => HandOff::Full,
            mpsc::error::TrySendError::Closed(_) => HandOff::Closed,
        })
    }
}

/// Every link of the collector, indexed by path.
#[derive(Debug, Clone, Default)]
pub struct Links {
    links: Vec<LinkHandle>,
}

impl Links {
    pub fn new(links: Vec<LinkHandle>) -> Self {
        Links { links }
    }

    pub fn iter(&self) -> impl Iterator<Item = &LinkHandle> {
        self.links.iter()
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The links' states, indexed by path (for liveness).
    pub fn path_states(&self) -> Vec<PathState> {
        self.links.iter().map(|l| l.status.path_state()).collect()
    }

    /// The links' names, indexed by path.
    pub fn names(&self) -> Vec<String> {
        self.links.iter().map(|l| l.status.name.clone()).collect()
    }

    /// Whether any link is connected: with none, the collector is blind.
    pub fn any_connected(&self) -> bool {
        self.links.iter().any(|l| l.status.is_connected())
    }
}

/// Capped exponential backoff that starts over only once a connection has
/// proven stable: a broker that accepts the CONNECT and then drops the
/// connection at once (a poisoned retained message, an ACL kicking the client)
/// must not turn into ten reconnections a second.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// How long a connection must have stayed up for the backoff to start over.
    pub const STABLE_AFTER: Duration = Duration::from_secs(10);

    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            next: min,
            min,
            max,
        }
    }

    /// The wait before the next attempt; doubles up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// A connection that was up for `up_for` failed: start over if it was stable.
    pub fn connection_lasted(&mut self, up_for: Duration) {
        if up_for >= Self::STABLE_AFTER {
            self.next = self.min;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_per_mode() {
        let f = |g, q0| {
            subscriptions(g, q0)
                .into_iter()
                .map(|s| format!("{}@{}", s.filter, s.qos))
                .collect::<Vec<_>>()
        };
        assert_eq!(f(None, false), ["sitewatch/v1/+/+/+@1"]);
        assert_eq!(
            f(None, true),
            [
                "sitewatch/v1/+/+/readings@1",
                "sitewatch/v1/+/+/events@1",
                "sitewatch/v1/+/+/state@0"
            ]
        );
        assert_eq!(
            f(Some("g"), false),
            [
                "$share/g/sitewatch/v1/+/+/readings@1",
                "$share/g/sitewatch/v1/+/+/events@1",
                "sitewatch/v1/+/+/state@1"
            ]
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_starts_over_only_after_a_stable_connection() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        let mut b = Backoff::new(min, max);
        let delays: Vec<_> = (0..12).map(|_| b.next_delay()).collect();
        assert_eq!(delays[0], min);
        assert_eq!(delays[1], min * 2);
        assert_eq!(*delays.last().unwrap(), max);
        // Connected, then dropped at once: no reset (the poison case).
        b.connection_lasted(Duration::from_millis(50));
        assert_eq!(b.next_delay(), max);
        b.connection_lasted(Backoff::STABLE_AFTER);
        assert_eq!(b.next_delay(), min);
    }

    #[test]
    fn link_status_counts_connections_and_failures() {
        let s = LinkStatus::new("bj1", "broker:1883");
        assert!(!s.path_state().connected);
        s.set_up(1_000);
        assert_eq!(
            s.path_state(),
            PathState {
                connected: true,
                since_ms: 1_000
            }
        );
        assert!(s.set_down(FailureKind::Protocol));
        assert!(!s.set_down(FailureKind::Network));
        assert_eq!(s.failures(FailureKind::Protocol), 1);
        assert_eq!(s.connections(), 1);
    }
}
