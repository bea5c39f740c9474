//! Alertmanager: the active signals of each evaluation handed to one push task
//! per Alertmanager (see [`crate::alertmanager`]) through a `watch` channel, so
//! that a slow Alertmanager never holds up the signals loop, which never holds
//! up ingest. The push counters are this output's self-metrics.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::{Output, Round};
use crate::alertmanager::{PushError, Stats};
use crate::metrics::names;
use crate::signals::ActiveSignals;

/// Hands the active signals to the push tasks.
#[derive(Debug)]
pub struct Alerts {
    tx: watch::Sender<ActiveSignals>,
    stats: Arc<Stats>,
}

impl Alerts {
    /// The output and what each push task watches.
    pub fn new(stats: Arc<Stats>) -> (Self, watch::Receiver<ActiveSignals>) {
        let (tx, rx) = watch::channel(ActiveSignals::default());
        (Alerts { tx, stats }, rx)
    }
}

impl Output for Alerts {
    fn publish(&mut self, round: &Round<'_>) {
        self.tx.send_replace(ActiveSignals {
            now_ms: round.now_ms,
            signals: Arc::new(round.evaluation.active.clone()),
        });
    }

    fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(StatsCollector(Arc::clone(&self.stats))));
    }
}

#[derive(Debug)]
struct StatsCollector(Arc<Stats>);

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats = &self.0;
        encoder
            .encode_descriptor(
                names::ALERTMANAGER_ALERTS_SENT,
                "Alerts (firing and resolved) accepted by Alertmanager.",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, u64>(
                &stats.alerts_sent.load(Ordering::Relaxed),
                None,
            )?;
        let mut m = encoder.encode_descriptor(
            names::ALERTMANAGER_ERRORS,
            "Failed pushes to Alertmanager, by kind (retried at the next tick).",
            None,
            MetricType::Counter,
        )?;
        for (kind, n) in PushError::ALL.iter().zip(&stats.errors) {
            m.encode_family(&[("kind", kind.kind())])?
                .encode_counter::<NoLabelSet, _, u64>(&n.load(Ordering::Relaxed), None)?;
        }
        Ok(())
    }
}
