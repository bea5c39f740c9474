//! The retained `sitewatch/v1/<site>/_signals` (`docs/protocol.md`): for every
//! site with a change, and for every site after each (re)connection of a link
//! (the broker may have lost its retained messages, and a restarted collector
//! must replace what the previous one left there), on every link.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use sitewatch_protocol::topic::signals_topic;
use sitewatch_signals::Evaluation;

use super::{Output, Round};
use crate::link::{HandOff, LinkHandle, Links, Outgoing};
use crate::metrics::names;

/// Hands each site's `_signals` payload to every link.
#[derive(Debug)]
pub struct MqttSignals {
    links: Vec<LinkState>,
}

#[derive(Debug)]
struct LinkState {
    link: LinkHandle,
    /// Sites whose payload is still to be handed to this link.
    pending: BTreeSet<String>,
    /// The link's connection count when everything was last queued for it.
    published_on: u64,
    handed: Arc<AtomicU64>,
}

impl MqttSignals {
    pub fn new(links: &Links) -> Self {
        MqttSignals {
            links: links
                .iter()
                .map(|l| LinkState {
                    link: l.clone(),
                    pending: BTreeSet::new(),
                    published_on: 0,
                    handed: Arc::new(AtomicU64::new(0)),
                })
                .collect(),
        }
    }
}

impl Output for MqttSignals {
    fn publish(&mut self, round: &Round<'_>) {
        let changed = round.evaluation.changed_sites();
        for l in &mut self.links {
            let connection = l.link.status.connections();
            if connection != l.published_on {
                l.pending
                    .extend(round.evaluation.disaster_level.keys().cloned());
                l.published_on = connection;
            }
            l.pending.extend(changed.iter().map(|s| (*s).to_owned()));
            hand_over(l, round.evaluation);
        }
    }

    fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(HandedCollector {
            links: self
                .links
                .iter()
                .map(|l| (l.link.status.name.clone(), Arc::clone(&l.handed)))
                .collect(),
        }));
    }
}

/// Hands the pending sites' payloads to the link; those that do not fit (the
/// link is backed up while its broker is away) stay pending.
fn hand_over(l: &mut LinkState, evaluation: &Evaluation) {
    while let Some(site) = l.pending.first().cloned() {
        let payload = match serde_json::to_vec(&evaluation.signals_for_site(&site)) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(site, error = %e, "cannot encode the _signals payload");
                l.pending.remove(&site);
                continue;
            }
        };
        let message = Outgoing {
            topic: signals_topic(&site),
            payload,
            retain: true,
        };
        match l.link.try_publish(message) {
            Ok(()) => {
                l.pending.remove(&site);
                l.handed.fetch_add(1, Ordering::Relaxed);
            }
            Err(HandOff::Full) => return,
            Err(HandOff::Closed) => {
                l.pending.clear();
                return;
            }
        }
    }
}

#[derive(Debug)]
struct HandedCollector {
    links: Vec<(String, Arc<AtomicU64>)>,
}

impl Collector for HandedCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut m = encoder.encode_descriptor(
            names::SIGNALS_PUBLISHED,
            "Retained _signals messages handed to each broker link.",
            None,
            MetricType::Counter,
        )?;
        for (name, n) in &self.links {
            m.encode_family(&[("broker", name.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&n.load(Ordering::Relaxed), None)?;
        }
        Ok(())
    }
}
