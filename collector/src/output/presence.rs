//! This collector's presence among its peers (`docs/protocol.md`, "Collector
//! presence"): a retained `online` state on every broker link, again after each
//! of its reconnections (the link's will replaces it with `offline`/`lost` when
//! the connection dies), and a view every interval: its links, the peers it
//! sees, and its own judgement of every site, which the peers weigh their own
//! against.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sitewatch_protocol::topic::{collector_state_topic, collector_view_topic};
use sitewatch_protocol::{CollectorStatePayload, CollectorViewPayload, OfflineReason, Status};
use sitewatch_signals::Liveness;

use super::{Output, Round};
use crate::link::{LinkHandle, Links, Outgoing};

/// Who this collector is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub site: String,
    /// Changes at every start.
    pub boot: String,
    pub interval_ms: u64,
}

impl Identity {
    fn state(&self, status: Status, reason: Option<OfflineReason>, ts: Option<i64>) -> Outgoing {
        let payload = CollectorStatePayload {
            v: sitewatch_protocol::VERSION,
            status,
            reason,
            ts,
            boot: (status == Status::Online).then(|| self.boot.clone()),
            site: Some(self.site.clone()),
            interval_ms: (status == Status::Online).then_some(self.interval_ms),
            agent: Some(concat!("sitewatch-collector/", env!("CARGO_PKG_VERSION")).to_owned()),
        };
        Outgoing {
            topic: collector_state_topic(&self.name),
            payload: serde_json::to_vec(&payload).unwrap_or_default(),
            retain: true,
        }
    }

    /// The retained presence.
    pub fn online(&self, now_ms: i64) -> Outgoing {
        self.state(Status::Online, None, Some(now_ms))
    }

    /// The will set on every link.
    pub fn will(&self) -> Outgoing {
        let mut w = self.state(Status::Offline, Some(OfflineReason::Lost), None);
        // The will is fixed at connect: nothing but the contract's minimum.
        w.payload = br#"{"v":1,"status":"offline","reason":"lost"}"#.to_vec();
        w
    }

    /// What a clean stop publishes.
    pub fn shutdown(&self, now_ms: i64) -> Outgoing {
        self.state(Status::Offline, Some(OfflineReason::Shutdown), Some(now_ms))
    }
}

/// Publishes the presence and the views.
#[derive(Debug)]
pub struct Presence {
    me: Identity,
    links: Vec<(LinkHandle, u64)>,
    seq: u64,
    last_view_ms: Option<i64>,
    views: Arc<AtomicU64>,
}

impl Presence {
    pub fn new(me: Identity, links: &Links) -> Self {
        Presence {
            me,
            links: links.iter().map(|l| (l.clone(), 0)).collect(),
            seq: 0,
            last_view_ms: None,
            views: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// The view payload of one evaluation.
pub fn view(
    me: &Identity,
    seq: u64,
    round: &Round<'_>,
    links: &[(LinkHandle, u64)],
) -> CollectorViewPayload {
    let peers = round
        .vantage
        .map(|v| {
            v.peers
                .iter()
                .map(|p| (p.name.clone(), p.liveness == Liveness::Online))
                .collect()
        })
        .unwrap_or_default();
    CollectorViewPayload {
        v: sitewatch_protocol::VERSION,
        seq,
        ts: round.now_ms,
        boot: Some(me.boot.clone()),
        site: Some(me.site.clone()),
        brokers: links
            .iter()
            .map(|(l, _)| (l.status.name.clone(), l.status.is_connected()))
            .collect::<BTreeMap<_, _>>(),
        peers,
        sites: round.evaluation.site_reports.clone(),
    }
}

impl Output for Presence {
    fn publish(&mut self, round: &Round<'_>) {
        for (link, published_on) in &mut self.links {
            let connection = link.status.connections();
            if connection != *published_on && link.try_publish(self.me.online(round.now_ms)).is_ok()
            {
                *published_on = connection;
            }
        }
        let interval = i64::try_from(self.me.interval_ms).unwrap_or(i64::MAX);
        if self
            .last_view_ms
            .is_some_and(|at| round.now_ms - at < interval)
        {
            return;
        }
        self.last_view_ms = Some(round.now_ms);
        self.seq += 1;
        let payload =
            serde_json::to_vec(&view(&self.me, self.seq, round, &self.links)).unwrap_or_default();
        for (link, _) in &self.links {
            // A full queue (the broker is away) drops this view: the next one
            // replaces it, and a peer judges silence, not a backlog.
            let message = Outgoing {
                topic: collector_view_topic(&self.me.name),
                payload: payload.clone(),
                retain: false,
            };
            if link.try_publish(message).is_ok() {
                self.views.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
