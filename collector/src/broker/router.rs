//! Routing: the subscription tree (with `+`, `#` and `$share/<group>/` shared
//! subscriptions), the retained store, and delivery into subscribers' queues.
//!
//! Everything sits behind one `RwLock`. A message that is not retained routes
//! under the read lock, so publishers on different cores route in parallel; a
//! retained one, a subscription and an unsubscription take the write lock. The
//! write lock is what keeps a subscriber's view consistent: the retained replay
//! of a new subscription and a concurrent retained update of the same topic are
//! ordered, so a subscriber never gets a live message and then an older retained
//! one for the same topic (a host's stale birth after its will).
//!
//! Delivery never blocks: a message is pushed into each matching subscriber's
//! [`Queue`]; the publisher's session then waits for the queues that asked it to
//! (the in-process link, see `queue.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;

use super::metrics::DropReason;
use super::queue::{Pushed, Queue};
use super::topic::{self, FilterError};

/// Who published a message (MQTT 5's No Local option needs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The broker itself: wills are the session's, `Broker::publish` is this.
    Broker,
    /// A subscriber's id.
    Session(u64),
}

/// A message as routed: shared by every queue it is delivered to.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: Arc<str>,
    pub payload: Bytes,
    /// As published: 0, 1 or 2.
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 properties forwarded to MQTT 5 subscribers (content type, user
    /// properties, response topic, correlation data, payload format).
    pub properties: Option<Arc<PublishProperties>>,
    pub origin: Origin,
}

/// A message in a subscriber's queue, with what this subscriber gets.
#[derive(Debug, Clone)]
pub struct Queued {
    pub msg: Arc<Message>,
    /// The delivery QoS: the lower of the message's and the subscription's.
    pub qos: u8,
    /// The RETAIN flag as sent: set for a retained replay (and MQTT 5's Retain
    /// As Published), clear for a live message (MQTT 3.1.1 3.3.1.3).
    pub retain: bool,
    /// Sent before and not acknowledged: resent with DUP after a reconnect.
    pub dup: bool,
}

impl Queued {
    pub fn new(msg: Arc<Message>, qos: u8, retain: bool) -> Self {
        Queued {
            msg,
            qos,
            retain,
            dup: false,
        }
    }
}

/// Someone messages can be routed to: a session or the in-process link.
#[derive(Debug)]
pub struct Subscriber {
    pub id: u64,
    /// Who it is, for logs and `subscriber_dropped_messages_total{client_id}`:
    /// the session's client id.
    pub name: Arc<str>,
    pub queue: Queue,
    /// Whether a connection is attached. QoS 0 messages are not queued for a
    /// session that is away (as mosquitto's default `queue_qos0_messages false`).
    online: AtomicBool,
    /// Deliveries not made to this subscriber, by reason ([`DropReason`] order).
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl Subscriber {
    pub fn new(id: u64, name: &str, queue: Queue, online: bool) -> Self {
        Subscriber {
            id,
            name: Arc::from(name),
            queue,
            online: AtomicBool::new(online),
            dropped: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Counts `n` deliveries to this subscriber not made for `reason`.
    pub fn count_drop(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.dropped[reason as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Deliveries not made to this subscriber so far, by reason
    /// ([`DropReason::ALL`] order).
    pub fn dropped(&self) -> [u64; DropReason::ALL.len()] {
        std::array::from_fn(|i| self.dropped[i].load(Ordering::Relaxed))
    }

    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Release);
    }

    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }
}

/// Retained messages at subscription: MQTT 5's Retain Handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// Send them at every subscribe (MQTT 3.1.1 always).
    #[default]
    Always,
    /// Only if the subscription is new.
    IfNew,
    Never,
}

/// What a subscription asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubOptions {
    /// Granted QoS: at most 1 (QoS 2 deliveries are not implemented).
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

#[derive(Debug, Clone)]
struct Entry {
    sub: Arc<Subscriber>,
    opts: SubOptions,
}

#[derive(Debug)]
struct SharedGroup {
    name: Box<str>,
    members: Vec<Entry>,
    next: AtomicUsize,
}

impl SharedGroup {
    /// Round robin, skipping members that are away while any is connected.
    fn pick(&self) -> Option<&Entry> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.members[(start + i) % n])
            .find(|e| e.sub.is_online())
            .or_else(|| self.members.get(start % n))
    }
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    entries: Vec<Entry>,
    shared: Vec<SharedGroup>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.entries.is_empty() && self.shared.is_empty()
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Entry>, shared: &mut Vec<&'a SharedGroup>) {
        out.extend(self.entries.iter());
        shared.extend(self.shared.iter());
    }

    /// Every subscription matching the rest of a topic. `first`: at the root,
    /// where a `$` topic is not matched by wildcards.
    fn matches<'a>(
        &'a self,
        rest: Option<&str>,
        first: bool,
        dollar: bool,
        out: &mut Vec<&'a Entry>,
        shared: &mut Vec<&'a SharedGroup>,
    ) {
        let wildcards = !(first && dollar);
        if wildcards && let Some(hash) = self.children.get("#") {
            hash.collect(out, shared);
        }
        let Some(rest) = rest else {
            self.collect(out, shared);
            return;
        };
        let (level, next) = match rest.split_once('/') {
            Some((l, r)) => (l, Some(r)),
            None => (rest, None),
        };
        if let Some(child) = self.children.get(level) {
            child.matches(next, false, dollar, out, shared);
        }
        if wildcards && let Some(plus) = self.children.get("+") {
            plus.matches(next, false, dollar, out, shared);
        }
    }

    fn remove(
        &mut self,
        mut levels: std::str::Split<'_, char>,
        group: Option<&str>,
        id: u64,
    ) -> bool {
        match levels.next() {
            None => match group {
                None => {
                    let before = self.entries.len();
                    self.entries.retain(|e| e.sub.id != id);
                    before != self.entries.len()
                }
                Some(g) => {
                    let Some(i) = self.shared.iter().position(|s| &*s.name == g) else {
                        return false;
                    };
                    let members = &mut self.shared[i].members;
                    let before = members.len();
                    members.retain(|e| e.sub.id != id);
                    let removed = before != members.len();
                    if members.is_empty() {
                        self.shared.remove(i);
                    }
                    removed
                }
            },
            Some(level) => {
                let Some(child) = self.children.get_mut(level) else {
                    return false;
                };
                let removed = child.remove(levels, group, id);
                if child.is_empty() {
                    self.children.remove(level);
                }
                removed
            }
        }
    }
}

#[derive(Debug, Default)]
struct Tables {
    root: Node,
    retained: HashMap<Arc<str>, Arc<Message>>,
}

/// What routing one message did.
#[derive(Debug, Default)]
pub struct Routed {
    /// Subscribers it was delivered to.
    pub delivered: usize,
    /// Dropped: a full queue ([`super::queue::Overflow::Drop`]).
    pub dropped_full: usize,
    /// Not queued for a session that is away (QoS 0).
    pub dropped_offline: usize,
    /// Queues now beyond their bound that the publisher must wait for.
    pub waits: Vec<Arc<Subscriber>>,
    /// Subscribers whose full queue dropped this message (for the log).
    pub full: Vec<Arc<Subscriber>>,
}

/// The routing tables.
#[derive(Debug, Default)]
pub struct Router {
    tables: RwLock<Tables>,
    /// +1 at every change of the retained store (persistence watches it).
    retained_changes: AtomicU64,
}

impl Router {
    pub fn new() -> Self {
        Router::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        // Critical sections never panic midway (no unwrap, no indexing out of a
        // checked range): a poisoned lock is still consistent.
        self.tables.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Routes a message to every matching subscription, updating the retained
    /// store first when it is retained (an empty retained payload deletes).
    pub fn publish(&self, msg: Arc<Message>) -> Routed {
        if msg.retain {
            let mut tables = self.write();
            if msg.payload.is_empty() {
                tables.retained.remove(&msg.topic);
            } else {
                tables
                    .retained
                    .insert(Arc::clone(&msg.topic), Arc::clone(&msg));
            }
            self.retained_changes.fetch_add(1, Ordering::Release);
            deliver(&tables.root, &msg)
        } else {
            deliver(&self.read().root, &msg)
        }
    }

    /// Adds (or replaces) a subscription and queues the matching retained
    /// messages. Returns whether the subscription existed already.
    pub fn subscribe(
        &self,
        sub: &Arc<Subscriber>,
        requested: &str,
        opts: SubOptions,
    ) -> Result<bool, FilterError> {
        let parsed = topic::parse_subscription(requested)?;
        let mut tables = self.write();
        let tables = &mut *tables;
        let mut node = &mut tables.root;
        for level in parsed.filter.split('/') {
            node = node.children.entry(Box::from(level)).or_default();
        }
        let entry = Entry {
            sub: Arc::clone(sub),
            opts,
        };
        let existed = match parsed.group {
            None => match node.entries.iter_mut().find(|e| e.sub.id == sub.id) {
                Some(e) => {
                    e.opts = opts;
                    true
                }
                None => {
                    node.entries.push(entry);
                    false
                }
            },
            Some(group) => {
                let g = match node.shared.iter().position(|s| &*s.name == group) {
                    Some(i) => &mut node.shared[i],
                    None => {
                        node.shared.push(SharedGroup {
                            name: Box::from(group),
                            members: Vec::new(),
                            next: AtomicUsize::new(0),
                        });
                        let last = node.shared.len() - 1;
                        &mut node.shared[last]
                    }
                };
                match g.members.iter_mut().find(|e| e.sub.id == sub.id) {
                    Some(e) => {
                        e.opts = opts;
                        true
                    }
                    None => {
                        g.members.push(entry);
                        false
                    }
                }
            }
        };
        // MQTT 5 4.8.2: no retained messages for a shared subscription.
        let replay = parsed.group.is_none()
            && match opts.retain_handling {
                RetainHandling::Always => true,
                RetainHandling::IfNew => !existed,
                RetainHandling::Never => false,
            };
        if replay {
            for msg in tables.retained.values() {
                if topic::matches(parsed.filter, &msg.topic) {
                    let qos = msg.qos.min(opts.qos);
                    sub.queue
                        .push_unbounded(Queued::new(Arc::clone(msg), qos, true));
                }
            }
        }
        Ok(existed)
    }

    /// Removes a subscription; whether it existed.
    pub fn unsubscribe(&self, id: u64, requested: &str) -> bool {
        let Ok(parsed) = topic::parse_subscription(requested) else {
            return false;
        };
        self.write()
            .root
            .remove(parsed.filter.split('/'), parsed.group, id)
    }

    /// Removes several subscriptions of one subscriber at once.
    pub fn unsubscribe_all<'a>(&self, id: u64, requested: impl IntoIterator<Item = &'a str>) {
        let mut tables = self.write();
        for r in requested {
            if let Ok(parsed) = topic::parse_subscription(r) {
                tables
                    .root
                    .remove(parsed.filter.split('/'), parsed.group, id);
            }
        }
    }

    /// Every retained message (for persistence).
    pub fn retained(&self) -> Vec<Arc<Message>> {
        self.read().retained.values().cloned().collect()
    }

    /// Loads retained messages (at start, from disk), replacing none that exist.
    pub fn restore_retained(&self, messages: impl IntoIterator<Item = Message>) {
        let mut tables = self.write();
        for m in messages {
            if m.payload.is_empty() {
                continue;
            }
            let topic = Arc::clone(&m.topic);
            tables.retained.entry(topic).or_insert_with(|| Arc::new(m));
        }
    }

    pub fn retained_len(&self) -> usize {
        self.read().retained.len()
    }

    /// Changes to the retained store so far.
    pub fn retained_changes(&self) -> u64 {
        self.retained_changes.load(Ordering::Acquire)
    }
}

fn deliver(root: &Node, msg: &Arc<Message>) -> Routed {
    let mut entries: Vec<&Entry> = Vec::new();
    let mut groups: Vec<&SharedGroup> = Vec::new();
    root.matches(
        Some(&msg.topic),
        true,
        msg.topic.starts_with('$'),
        &mut entries,
        &mut groups,
    );
    // One copy per subscriber, at the highest QoS of its matching
    // subscriptions (MQTT 3.1.1 3.3.5; MQTT 5 allows it too).
    let mut targets: Vec<(&Arc<Subscriber>, SubOptions)> = Vec::with_capacity(entries.len());
    for e in entries {
        if e.opts.no_local && msg.origin == Origin::Session(e.sub.id) {
            continue;
        }
        match targets.iter_mut().find(|(s, _)| s.id == e.sub.id) {
            Some((_, opts)) => {
                opts.qos = opts.qos.max(e.opts.qos);
                opts.retain_as_published |= e.opts.retain_as_published;
            }
            None => targets.push((&e.sub, e.opts)),
        }
    }
    for g in groups {
        if let Some(e) = g.pick() {
            targets.push((&e.sub, e.opts));
        }
    }
    let mut routed = Routed::default();
    for (sub, opts) in targets {
        let qos = msg.qos.min(opts.qos);
        if qos == 0 && !sub.is_online() {
            routed.dropped_offline += 1;
            sub.count_drop(DropReason::OfflineQos0, 1);
            continue;
        }
        let retain = opts.retain_as_published && msg.retain;
        match sub.queue.push(Queued::new(Arc::clone(msg), qos, retain)) {
            Pushed::Queued => routed.delivered += 1,
            Pushed::OverCapacity => {
                routed.delivered += 1;
                routed.waits.push(Arc::clone(sub));
            }
            Pushed::Dropped => {
                routed.dropped_full += 1;
                sub.count_drop(DropReason::QueueFull, 1);
                routed.full.push(Arc::clone(sub));
            }
            Pushed::Closed => {}
        }
    }
    routed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::queue::Overflow;
    use std::sync::atomic::AtomicI64;

    fn subscriber(id: u64, capacity: usize) -> Arc<Subscriber> {
        Arc::new(Subscriber::new(
            id,
            &format!("s{id}"),
            Queue::new(capacity, Overflow::Drop, Arc::new(AtomicI64::new(0))),
            true,
        ))
    }

    fn msg(topic: &str, payload: &str, qos: u8, retain: bool) -> Arc<Message> {
        Arc::new(Message {
            topic: Arc::from(topic),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            qos,
            retain,
            properties: None,
            origin: Origin::Broker,
        })
    }

    fn drain(s: &Subscriber) -> Vec<(String, String, u8, bool)> {
        let mut out = Vec::new();
        s.queue.pop_into(usize::MAX, &mut out);
        out.into_iter()
            .map(|q| {
                (
                    q.msg.topic.to_string(),
                    String::from_utf8_lossy(&q.msg.payload).into_owned(),
                    q.qos,
                    q.retain,
                )
            })
            .collect()
    }

    fn qos1() -> SubOptions {
        SubOptions {
            qos: 1,
            ..SubOptions::default()
        }
    }

    #[test]
    fn wildcards_route_and_overlaps_deliver_once_at_the_highest_qos() {
        let r = Router::new();
        let a = subscriber(1, 100);
        let b = subscriber(2, 100);
        r.subscribe(&a, "sitewatch/v1/+/+/+", qos1()).unwrap();
        r.subscribe(&a, "sitewatch/#", SubOptions::default())
            .unwrap();
        r.subscribe(&b, "sitewatch/v1/bj1/+/state", SubOptions::default())
            .unwrap();
        let routed = r.publish(msg("sitewatch/v1/bj1/web-01/state", "x", 1, false));
        assert_eq!(routed.delivered, 2);
        assert_eq!(
            drain(&a),
            [("sitewatch/v1/bj1/web-01/state".into(), "x".into(), 1, false)]
        );
        assert_eq!(
            drain(&b),
            [("sitewatch/v1/bj1/web-01/state".into(), "x".into(), 0, false)]
        );
        r.publish(msg("sitewatch/v1/bj1/_signals", "s", 1, false));
        assert_eq!(drain(&a).len(), 1, "sitewatch/# matches");
        assert!(drain(&b).is_empty());
        // Unsubscribed: nothing more.
        assert!(r.unsubscribe(1, "sitewatch/#"));
        assert!(!r.unsubscribe(1, "sitewatch/#"));
        r.publish(msg("sitewatch/v1/bj1/_signals", "s", 1, false));
        assert!(drain(&a).is_empty());
    }

    #[test]
    fn retained_replay_is_unbounded_and_flagged_and_empty_payload_deletes() {
        let r = Router::new();
        for i in 0..500 {
            r.publish(msg(
                &format!("sitewatch/v1/bj1/h{i}/state"),
                "birth",
                1,
                true,
            ));
        }
        assert_eq!(r.retained_len(), 500);
        // A queue bound of 10 does not cut the replay short.
        let s = subscriber(1, 10);
        r.subscribe(&s, "sitewatch/v1/+/+/state", qos1()).unwrap();
        let got = drain(&s);
        assert_eq!(got.len(), 500);
        assert!(got.iter().all(|(_, _, qos, retain)| *qos == 1 && *retain));
        // Live messages are not flagged (MQTT 3.1.1 3.3.1.3) ...
        r.publish(msg("sitewatch/v1/bj1/h1/state", "will", 1, true));
        assert_eq!(
            drain(&s),
            [("sitewatch/v1/bj1/h1/state".into(), "will".into(), 1, false)]
        );
        // ... and update the store.
        let t = subscriber(2, 10);
        r.subscribe(&t, "sitewatch/v1/bj1/h1/state", qos1())
            .unwrap();
        assert_eq!(
            drain(&t),
            [("sitewatch/v1/bj1/h1/state".into(), "will".into(), 1, true)]
        );
        let before = r.retained_changes();
        r.publish(msg("sitewatch/v1/bj1/h1/state", "", 1, true));
        assert_eq!(r.retained_len(), 499);
        assert!(r.retained_changes() > before);
        r.subscribe(&t, "sitewatch/v1/bj1/h1/state", qos1())
            .unwrap();
        assert!(
            drain(&t).iter().all(|(_, p, _, _)| p.is_empty()),
            "the live delete only"
        );
    }

    #[test]
    fn retain_handling_and_retain_as_published() {
        let r = Router::new();
        r.publish(msg("a/b", "r", 1, true));
        let s = subscriber(1, 10);
        let opts = SubOptions {
            qos: 1,
            retain_handling: RetainHandling::IfNew,
            retain_as_published: true,
            ..SubOptions::default()
        };
        assert!(!r.subscribe(&s, "a/#", opts).unwrap());
        assert_eq!(drain(&s).len(), 1);
        assert!(r.subscribe(&s, "a/#", opts).unwrap());
        assert!(drain(&s).is_empty(), "not new: no replay");
        r.publish(msg("a/b", "live", 1, true));
        assert_eq!(drain(&s), [("a/b".into(), "live".into(), 1, true)]);
        let never = subscriber(2, 10);
        let opts = SubOptions {
            retain_handling: RetainHandling::Never,
            ..qos1()
        };
        r.subscribe(&never, "a/b", opts).unwrap();
        assert!(drain(&never).is_empty());
    }

    #[test]
    fn shared_groups_round_robin_and_get_no_retained() {
        let r = Router::new();
        r.publish(msg("x/1", "r", 1, true));
        let a = subscriber(1, 100);
        let b = subscriber(2, 100);
        let c = subscriber(3, 100);
        r.subscribe(&a, "$share/g/x/+", qos1()).unwrap();
        r.subscribe(&b, "$share/g/x/+", qos1()).unwrap();
        r.subscribe(&c, "x/+", qos1()).unwrap();
        assert!(drain(&a).is_empty() && drain(&b).is_empty());
        assert_eq!(drain(&c).len(), 1);
        for i in 0..10 {
            r.publish(msg(&format!("x/{i}"), "m", 1, false));
        }
        assert_eq!(drain(&a).len(), 5);
        assert_eq!(drain(&b).len(), 5);
        assert_eq!(drain(&c).len(), 10, "a plain subscriber gets everything");
        // A member that is away is skipped while another is connected.
        b.set_online(false);
        for i in 0..4 {
            r.publish(msg(&format!("x/{i}"), "m", 1, false));
        }
        assert_eq!(drain(&a).len(), 4);
        assert!(drain(&b).is_empty());
        assert!(r.unsubscribe(1, "$share/g/x/+"));
        assert!(r.unsubscribe(2, "$share/g/x/+"));
        r.publish(msg("x/1", "m", 1, false));
        assert!(drain(&a).is_empty() && drain(&b).is_empty());
    }

    #[test]
    fn no_local_full_queues_and_offline_qos0() {
        let r = Router::new();
        let s = subscriber(7, 2);
        r.subscribe(
            &s,
            "t",
            SubOptions {
                no_local: true,
                ..qos1()
            },
        )
        .unwrap();
        let mut own = (*msg("t", "mine", 1, false)).clone();
        own.origin = Origin::Session(7);
        assert_eq!(r.publish(Arc::new(own)).delivered, 0);
        r.publish(msg("t", "1", 1, false));
        r.publish(msg("t", "2", 1, false));
        let routed = r.publish(msg("t", "3", 1, false));
        assert_eq!(routed.dropped_full, 1);
        assert_eq!(drain(&s).len(), 2);
        s.set_online(false);
        assert_eq!(r.publish(msg("t", "q0", 0, false)).dropped_offline, 1);
        assert_eq!(r.publish(msg("t", "q1", 1, false)).delivered, 1);
    }

    #[test]
    fn dollar_topics_escape_leading_wildcards() {
        let r = Router::new();
        let s = subscriber(1, 10);
        r.subscribe(&s, "#", qos1()).unwrap();
        r.subscribe(&s, "+/x", qos1()).unwrap();
        assert_eq!(r.publish(msg("$SYS/x", "m", 1, false)).delivered, 0);
        r.subscribe(&s, "$SYS/#", qos1()).unwrap();
        assert_eq!(r.publish(msg("$SYS/x", "m", 1, false)).delivered, 1);
    }

    #[test]
    fn emptied_branches_are_pruned() {
        let r = Router::new();
        let s = subscriber(1, 10);
        r.subscribe(&s, "a/b/c/d", qos1()).unwrap();
        r.subscribe(&s, "$share/g/a/b", qos1()).unwrap();
        r.unsubscribe_all(1, ["a/b/c/d", "$share/g/a/b"]);
        assert!(r.read().root.is_empty());
    }
}
