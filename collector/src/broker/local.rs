//! The in-process link: the collector subscribes to its own broker without a
//! socket, and nothing a publisher had acknowledged is dropped on the way.
//!
//! A [`LocalSubscription`] is a subscriber whose queue waits instead of dropping
//! (`Overflow::Wait`, see `queue.rs`): a publisher's PUBACK (QoS 1) or PUBREC
//! (QoS 2) is sent only once its message is in every local subscriber's queue
//! and each is back within its bound. A collector that reads slowly therefore
//! slows the publishers down (their inflight windows fill and they wait), and an
//! acknowledged message is never lost between broker and collector.
//!
//! Retained messages matching the filters are queued first, at subscription.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::Core;
use super::router::{Queued, Subscriber};

/// Taken from the queue at a time: fewer lock round trips at high rates. The
/// queue's bound plus this is what the link holds at most.
const BATCH: usize = 64;

/// A message handed to the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub topic: Arc<str>,
    pub payload: Bytes,
    /// Replayed from the retained store at subscription (not live).
    pub retain: bool,
    /// As published: 0, 1 or 2.
    pub qos: u8,
}

impl From<Queued> for Delivery {
    fn from(q: Queued) -> Self {
        Delivery {
            topic: Arc::clone(&q.msg.topic),
            payload: q.msg.payload.clone(),
            retain: q.retain,
            qos: q.msg.qos,
        }
    }
}

/// The collector's end of the link. Dropping it unsubscribes.
#[derive(Debug)]
pub struct LocalSubscription {
    core: Arc<Core>,
    subscriber: Arc<Subscriber>,
    filters: Vec<String>,
    taken: Vec<Queued>,
    ready: VecDeque<Queued>,
}

impl LocalSubscription {
    pub(crate) fn new(core: Arc<Core>, subscriber: Arc<Subscriber>, filters: Vec<String>) -> Self {
        LocalSubscription {
            core,
            subscriber,
            filters,
            taken: Vec::with_capacity(BATCH),
            ready: VecDeque::with_capacity(BATCH),
        }
    }

    fn refill(&mut self) -> bool {
        let n = self.subscriber.queue.pop_into(BATCH, &mut self.taken);
        self.core
            .metrics
            .messages_sent
            .fetch_add(n as u64, Ordering::Relaxed);
        self.ready.extend(self.taken.drain(..));
        n > 0
    }

    /// The next message, or `None` once the broker has shut down.
    pub async fn recv(&mut self) -> Option<Delivery> {
        loop {
            if let Some(q) = self.ready.pop_front() {
                return Some(q.into());
            }
            if self.refill() {
                continue;
            }
            if self.subscriber.queue.is_closed() {
                return None;
            }
            self.subscriber.queue.readable().await;
        }
    }

    /// The next message if one is there, without waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        if self.ready.is_empty() {
            self.refill();
        }
        self.ready.pop_front().map(Delivery::from)
    }

    /// Messages waiting (queued and taken).
    pub fn len(&self) -> usize {
        self.ready.len() + self.subscriber.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for LocalSubscription {
    fn drop(&mut self) {
        self.core
            .router
            .unsubscribe_all(self.subscriber.id, self.filters.iter().map(String::as_str));
        // Publishers waiting on this queue go on.
        self.subscriber.queue.close();
    }
}
