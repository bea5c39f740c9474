//! A subscriber's outbound queue: messages routed to it, waiting to be sent (a
//! TCP client, up to its inflight window) or read (the in-process link).
//!
//! Two policies, because the two kinds of subscriber need opposite things:
//!
//! - [`Overflow::Drop`] (network clients): a full queue drops the new message
//!   and says so; a slow or stuck client never slows anyone else (as mosquitto's
//!   `max_queued_messages`).
//! - [`Overflow::Wait`] (the collector's in-process link): every message is
//!   queued, and the publisher then waits until the queue is back within its
//!   bound before acknowledging. A publisher adds at most one message beyond
//!   the bound before it waits, so the overshoot is bounded by the number of
//!   connections, and nothing acknowledged is ever dropped.
//!
//! Retained messages replayed at subscription are queued regardless of the
//! bound: they are already bounded by the retained store, and dropping them
//! would lose state (a host's birth or will).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::router::Queued;

/// What a full queue does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    Drop,
    Wait,
}

/// The outcome of [`Queue::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Queued beyond the bound ([`Overflow::Wait`]): the publisher must wait.
    OverCapacity,
    /// Not queued: full ([`Overflow::Drop`]).
    Dropped,
    /// Not queued: the subscriber is gone.
    Closed,
}

/// A bounded FIFO with one consumer.
#[derive(Debug)]
pub struct Queue {
    items: Mutex<VecDeque<Queued>>,
    capacity: usize,
    overflow: Overflow,
    closed: AtomicBool,
    /// Woken when a message arrives (one consumer).
    readable: Notify,
    /// Woken when a [`Overflow::Wait`] queue is back within its bound.
    space: Notify,
    /// Every queue's length, summed: the `queued_messages` gauge.
    total: Arc<AtomicI64>,
}

impl Queue {
    pub fn new(capacity: usize, overflow: Overflow, total: Arc<AtomicI64>) -> Self {
        Queue {
            items: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            overflow,
            closed: AtomicBool::new(false),
            readable: Notify::new(),
            space: Notify::new(),
            total,
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Queued>> {
        // Every critical section is a push or a pop: nothing to leave half done.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// Queues a routed message under the queue's policy.
    pub fn push(&self, item: Queued) -> Pushed {
        if self.closed.load(Ordering::Acquire) {
            return Pushed::Closed;
        }
        let mut items = self.lock();
        if self.overflow == Overflow::Drop && items.len() >= self.capacity {
            return Pushed::Dropped;
        }
        items.push_back(item);
        let over = items.len() > self.capacity;
        drop(items);
        self.total.fetch_add(1, Ordering::Relaxed);
        self.readable.notify_one();
        if over {
            Pushed::OverCapacity
        } else {
            Pushed::Queued
        }
    }

    /// Queues regardless of the bound (retained replay, resent messages).
    pub fn push_unbounded(&self, item: Queued) -> Pushed {
        if self.closed.load(Ordering::Acquire) {
            return Pushed::Closed;
        }
        self.lock().push_back(item);
        self.total.fetch_add(1, Ordering::Relaxed);
        self.readable.notify_one();
        Pushed::Queued
    }

    /// Moves up to `max` messages, oldest first, into `out`; how many.
    pub fn pop_into(&self, max: usize, out: &mut Vec<Queued>) -> usize {
        let mut items = self.lock();
        let n = max.min(items.len());
        out.extend(items.drain(..n));
        let within = items.len() <= self.capacity;
        drop(items);
        if n > 0 {
            self.total.fetch_sub(n as i64, Ordering::Relaxed);
            if within && self.overflow == Overflow::Wait {
                self.space.notify_waiters();
            }
        }
        n
    }

    /// Drops everything queued (a session cleared by a clean start).
    pub fn clear(&self) {
        let mut items = self.lock();
        let n = items.len();
        items.clear();
        drop(items);
        self.total.fetch_sub(n as i64, Ordering::Relaxed);
        self.space.notify_waiters();
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Waits until something is queued or the queue is closed.
    pub async fn readable(&self) {
        loop {
            let notified = self.readable.notified();
            if !self.is_empty() || self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Waits until the queue is within its bound, or closed.
    pub async fn wait_for_space(&self) {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            // Registered before the check: a pop in between still wakes us.
            notified.as_mut().enable();
            if self.len() <= self.capacity || self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// No more messages: the subscriber is gone. Waiting publishers go on.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.clear();
        self.readable.notify_one();
        self.space.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        let n = self.lock().len();
        self.total.fetch_sub(n as i64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::router::{Message, Origin};
    use std::time::Duration;

    fn item(n: u8) -> Queued {
        Queued::new(
            Arc::new(Message {
                topic: Arc::from("t"),
                payload: bytes::Bytes::from(vec![n]),
                qos: 1,
                retain: false,
                properties: None,
                origin: Origin::Broker,
            }),
            1,
            false,
        )
    }

    #[test]
    fn a_full_drop_queue_refuses_new_messages_and_keeps_the_old() {
        let total = Arc::new(AtomicI64::new(0));
        let q = Queue::new(2, Overflow::Drop, Arc::clone(&total));
        assert_eq!(q.push(item(1)), Pushed::Queued);
        assert_eq!(q.push(item(2)), Pushed::Queued);
        assert_eq!(q.push(item(3)), Pushed::Dropped);
        assert_eq!(q.push_unbounded(item(4)), Pushed::Queued);
        assert_eq!(total.load(Ordering::Relaxed), 3);
        let mut out = Vec::new();
        assert_eq!(q.pop_into(10, &mut out), 3);
        let payloads: Vec<u8> = out.iter().map(|q| q.msg.payload[0]).collect();
        assert_eq!(payloads, [1, 2, 4]);
        assert_eq!(total.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_wait_queue_takes_everything_and_holds_publishers_until_drained() {
        let total = Arc::new(AtomicI64::new(0));
        let q = Arc::new(Queue::new(2, Overflow::Wait, total));
        assert_eq!(q.push(item(1)), Pushed::Queued);
        assert_eq!(q.push(item(2)), Pushed::Queued);
        assert_eq!(q.push(item(3)), Pushed::OverCapacity);
        let waiter = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.wait_for_space().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "over capacity: the publisher waits");
        let mut out = Vec::new();
        q.pop_into(1, &mut out);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("space frees the publisher")
            .unwrap();
        assert_eq!(q.len(), 2);
    }

    #[tokio::test]
    async fn closing_releases_waiters_and_refuses_pushes() {
        let q = Arc::new(Queue::new(1, Overflow::Wait, Arc::new(AtomicI64::new(0))));
        q.push(item(1));
        q.push(item(2));
        let waiter = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.wait_for_space().await }
        });
        q.close();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(q.push(item(3)), Pushed::Closed);
        tokio::time::timeout(Duration::from_secs(5), q.readable())
            .await
            .expect("a closed queue is readable (end)");
    }
}
