//! The link to the collector's own embedded broker, in-process: no TCP, no
//! client, and nothing acknowledged is lost. The broker sends a publisher its
//! PUBACK only once the message is in this link's bounded queue, and this link
//! takes the next one only once ingest has taken the last: a slow collector
//! slows the agents (their inflight windows fill, they keep their buffers)
//! instead of dropping what they were told was delivered (issue 18).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Inbound, LinkStatus, Outgoing, Subscription};
use crate::broker::Broker;
use crate::liveness::PathId;

/// Messages the broker holds for the collector before publishers wait.
pub const CAPACITY: usize = 8_192;

/// Starts the in-process link: deliveries to ingest, outputs to the broker.
pub fn spawn(
    path: PathId,
    broker: Broker,
    subscriptions: &[Subscription],
    status: Arc<LinkStatus>,
    inbound: mpsc::Sender<Inbound>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    clock: crate::Clock,
) -> Result<(), crate::Error> {
    let filters: Vec<&str> = subscriptions.iter().map(|s| s.filter.as_str()).collect();
    let mut sub = broker
        .local_subscriber(&filters, CAPACITY)
        .map_err(|e| crate::Error::Broker(format!("cannot subscribe in-process: {e}")))?;
    // Up for as long as the process: the broker lives and dies with it.
    status.set_up(clock.now_ms());
    let name = status.name.clone();
    tokio::spawn(async move {
        while let Some(d) = sub.recv().await {
            status.count_message();
            let message = Inbound {
                path,
                topic: d.topic.to_string(),
                payload: d.payload,
                retain: d.retain,
            };
            if inbound.send(message).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(m) = outgoing.recv().await {
            if let Err(e) = broker.publish(&m.topic, Bytes::from(m.payload), m.retain, 1) {
                tracing::warn!(broker = name, topic = m.topic, error = %e, "cannot publish");
            }
        }
    });
    Ok(())
}
