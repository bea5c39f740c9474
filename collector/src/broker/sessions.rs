//! Sessions: what outlives a connection (subscriptions, queued and inflight
//! QoS 1 messages, QoS 2 packet ids received), keyed by client, in memory.
//!
//! A session is keyed by its client: the authenticated identity when there is
//! one (so only the holder of a credential can take a connection over: the
//! client id a client sends is then ignored, as mosquitto's
//! `use_username_as_clientid`), else the client id as sent. The two namespaces
//! are apart: an anonymous client cannot take an authenticated one's session.
//!
//! One connection at a time holds a session (its `slot`). A second CONNECT for
//! the same client stops the first (takeover), waits for it to let go, and then
//! resumes the session or, with a clean start, starts it over. A session that
//! is not kept (clean session, MQTT 5 expiry 0) ends with its connection; a kept
//! one ends when its expiry passes without its client coming back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, OwnedMutexGuard, watch};

use super::metrics::{DropReason, Metrics};
use super::router::{Queued, Router, SubOptions, Subscriber};

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An anonymous client, by the client id it sent (or was assigned).
    Anonymous(Arc<str>),
    /// An authenticated identity; its client id is the identity.
    Identity(Arc<str>),
}

impl ClientKey {
    /// The effective client id.
    pub fn client_id(&self) -> &str {
        match self {
            ClientKey::Anonymous(id) | ClientKey::Identity(id) => id,
        }
    }
}

/// Why a connection is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Another connection of the same client arrived.
    TakenOver,
    /// The broker is shutting down.
    Shutdown,
    /// The connection's writer failed (the peer is gone).
    WriteFailed,
}

/// A connection's stop signal: reader and writer both watch it.
pub type Stop = Arc<watch::Sender<Option<StopReason>>>;

/// The part of a session its connections change.
#[derive(Debug, Default)]
pub struct SessionState {
    /// QoS 1 deliveries sent and not yet acknowledged, by packet id.
    pub inflight: BTreeMap<u16, Queued>,
    last_pkid: u16,
    /// QoS 2 packet ids received and not yet released (PUBREL): a resent
    /// PUBLISH with one of them is not delivered again.
    pub incoming_qos2: HashSet<u16>,
    /// Filters as subscribed (`$share/...` included), to undo them at the end.
    pub subscriptions: HashMap<String, SubOptions>,
    /// Whether a connection has used this session since it (re)started.
    established: bool,
}

impl SessionState {
    /// The next free packet id (1..=65535), or `None` if all are inflight.
    pub fn next_pkid(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.last_pkid = self.last_pkid.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&self.last_pkid) {
                return Some(self.last_pkid);
            }
        }
        None
    }
}

/// One client's session.
#[derive(Debug)]
pub struct Session {
    pub key: ClientKey,
    pub subscriber: Arc<Subscriber>,
    state: Mutex<SessionState>,
    /// Woken when a PUBACK frees a place in the inflight window.
    pub window: Notify,
    slot: Arc<tokio::sync::Mutex<()>>,
    /// Connections waiting for the slot (a takeover in progress).
    waiters: AtomicUsize,
    /// The attached connection's stop signal.
    current: Mutex<Option<Stop>>,
    /// +1 at every attach: timers started at a disconnect check it.
    generation: AtomicU64,
}

impl Session {
    fn new(key: ClientKey, subscriber: Arc<Subscriber>) -> Self {
        Session {
            key,
            subscriber,
            state: Mutex::new(SessionState::default()),
            window: Notify::new(),
            slot: Arc::new(tokio::sync::Mutex::new(())),
            waiters: AtomicUsize::new(0),
            current: Mutex::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// The session's state. Critical sections are short and never await.
    pub fn state(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current(&self) -> MutexGuard<'_, Option<Stop>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn inflight_len(&self) -> usize {
        self.state().inflight.len()
    }

    /// Ends the session's content: subscriptions, queued and inflight messages.
    /// Returns how many QoS 1 messages were dropped with it.
    fn clear(&self, router: &Router) -> usize {
        let mut st = self.state();
        router.unsubscribe_all(
            self.subscriber.id,
            st.subscriptions.keys().map(String::as_str),
        );
        st.subscriptions.clear();
        st.incoming_qos2.clear();
        let dropped = st.inflight.len() + self.subscriber.queue.len();
        st.inflight.clear();
        st.established = false;
        drop(st);
        self.subscriber.queue.clear();
        dropped
    }
}

/// A connection's hold on its session.
#[derive(Debug)]
pub struct Attached {
    pub session: Arc<Session>,
    /// CONNACK's Session Present.
    pub present: bool,
    pub generation: u64,
    _slot: OwnedMutexGuard<()>,
}

/// The session table.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<ClientKey, Arc<Session>>>,
}

/// How long a takeover waits for the previous connection to let go.
pub const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);

impl Sessions {
    fn map(&self) -> MutexGuard<'_, HashMap<ClientKey, Arc<Session>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Every held session's subscriber that lost a delivery: its client id
    /// and what it lost, by reason (`DropReason::ALL` order).
    pub fn subscriber_drops(&self) -> Vec<(Arc<str>, [u64; 4])> {
        self.map()
            .values()
            .filter_map(|s| {
                let d = s.subscriber.dropped();
                d.iter()
                    .any(|n| *n > 0)
                    .then(|| (Arc::clone(&s.subscriber.name), d))
            })
            .collect()
    }

    /// Attaches a connection to its client's session, taking it over from a
    /// connection that holds it. `make` builds the subscriber of a new session.
    /// `None` if the previous connection did not let go in time.
    pub async fn attach(
        &self,
        key: ClientKey,
        clean_start: bool,
        make: impl FnOnce() -> Arc<Subscriber>,
        router: &Router,
        stop: Stop,
    ) -> Option<Attached> {
        let session = {
            let mut map = self.map();
            let s = map
                .entry(key.clone())
                .or_insert_with(|| Arc::new(Session::new(key, make())));
            s.waiters.fetch_add(1, Ordering::AcqRel);
            if let Some(previous) = s.current().take() {
                previous.send_replace(Some(StopReason::TakenOver));
            }
            Arc::clone(s)
        };
        let slot = tokio::time::timeout(TAKEOVER_TIMEOUT, Arc::clone(&session.slot).lock_owned())
            .await
            .ok();
        session.waiters.fetch_sub(1, Ordering::AcqRel);
        let slot = slot?;
        *session.current() = Some(stop);
        let generation = session.generation.fetch_add(1, Ordering::AcqRel) + 1;
        if clean_start {
            session.clear(router);
        }
        let present = {
            let mut st = session.state();
            let present = st.established;
            st.established = true;
            present
        };
        session.subscriber.set_online(true);
        Some(Attached {
            session,
            present,
            generation,
            _slot: slot,
        })
    }

    /// Lets go of a session when its connection ends. `expiry`: seconds the
    /// session is kept (0: it ends now; `u32::MAX`: kept until a clean start).
    /// Messages still queued when the session ends (now or at its expiry) are
    /// dropped and counted (`session_expired`). Returns how many were dropped
    /// now.
    pub fn detach(
        self: &Arc<Self>,
        attached: Attached,
        router: &Arc<Router>,
        expiry: u32,
        metrics: &Arc<Metrics>,
    ) -> usize {
        let session = Arc::clone(&attached.session);
        session.current().take();
        session.subscriber.set_online(false);
        let mut dropped = 0;
        if expiry == 0 {
            let mut map = self.map();
            dropped = session.clear(router);
            count_expired(metrics, &session, dropped);
            // A takeover waiting for the slot gets the (now empty) session.
            if session.waiters.load(Ordering::Acquire) == 0
                && map
                    .get(&session.key)
                    .is_some_and(|s| Arc::ptr_eq(s, &session))
            {
                map.remove(&session.key);
            }
        } else if expiry != u32::MAX {
            let sessions = Arc::clone(self);
            let router = Arc::clone(router);
            let generation = attached.generation;
            let metrics = Arc::clone(metrics);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(u64::from(expiry))).await;
                let dropped = sessions.expire(&session, generation, &router);
                count_expired(&metrics, &session, dropped);
            });
        }
        drop(attached);
        dropped
    }

    /// Ends a session whose expiry passed, unless its client came back.
    fn expire(&self, session: &Arc<Session>, generation: u64, router: &Router) -> usize {
        let mut map = self.map();
        if session.generation() != generation || session.waiters.load(Ordering::Acquire) > 0 {
            return 0;
        }
        let Ok(_slot) = session.slot.try_lock() else {
            return 0;
        };
        let dropped = session.clear(router);
        if map
            .get(&session.key)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            map.remove(&session.key);
        }
        dropped
    }

    /// Asks every attached connection to stop.
    pub fn stop_all(&self, reason: StopReason) {
        for s in self.map().values() {
            if let Some(stop) = s.current().as_ref() {
                stop.send_replace(Some(reason));
            }
        }
    }
}

/// Counts (and logs) what an ending session still held for its client.
fn count_expired(metrics: &Metrics, session: &Session, dropped: usize) {
    if dropped == 0 {
        return;
    }
    let reason = DropReason::SessionExpired;
    metrics.dropped.add(reason.as_str(), dropped as u64);
    session.subscriber.count_drop(reason, dropped as u64);
    tracing::warn!(
        client_id = session.key.client_id(),
        dropped,
        "session ended with messages still queued for its client: dropped"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::queue::{Overflow, Queue};
    use std::sync::atomic::AtomicI64;

    fn make(id: u64) -> impl FnOnce() -> Arc<Subscriber> {
        move || {
            Arc::new(Subscriber::new(
                id,
                "test",
                Queue::new(10, Overflow::Drop, Arc::new(AtomicI64::new(0))),
                false,
            ))
        }
    }

    fn stop() -> Stop {
        Arc::new(watch::channel(None).0)
    }

    #[test]
    fn packet_ids_skip_those_inflight_and_wrap() {
        let mut st = SessionState::default();
        assert_eq!(st.next_pkid(), Some(1));
        st.last_pkid = u16::MAX - 1;
        assert_eq!(st.next_pkid(), Some(u16::MAX));
        let q = Queued::new(
            Arc::new(crate::broker::router::Message {
                topic: Arc::from("t"),
                payload: bytes::Bytes::new(),
                qos: 1,
                retain: false,
                properties: None,
                origin: crate::broker::router::Origin::Broker,
            }),
            1,
            false,
        );
        st.inflight.insert(1, q.clone());
        st.inflight.insert(2, q);
        assert_eq!(st.next_pkid(), Some(3));
    }

    #[tokio::test]
    async fn a_second_connection_takes_over_and_resumes_the_session() {
        let sessions = Arc::new(Sessions::default());
        let router = Arc::new(Router::new());
        let key = ClientKey::Identity(Arc::from("bj1/web-01"));
        let first_stop = stop();
        let mut first_seen = first_stop.subscribe();
        let first = sessions
            .attach(
                key.clone(),
                false,
                make(1),
                &router,
                Arc::clone(&first_stop),
            )
            .await
            .unwrap();
        assert!(!first.present);
        let second = tokio::spawn({
            let sessions = Arc::clone(&sessions);
            let router = Arc::clone(&router);
            let key = key.clone();
            async move { sessions.attach(key, false, make(2), &router, stop()).await }
        });
        // The first connection is told, then lets go.
        first_seen.changed().await.unwrap();
        assert_eq!(*first_seen.borrow(), Some(StopReason::TakenOver));
        sessions.detach(first, &router, u32::MAX, &Arc::new(Metrics::default()));
        let second = second.await.unwrap().unwrap();
        assert!(second.present, "same session, resumed");
        assert_eq!(second.session.subscriber.id, 1);
        assert_eq!(sessions.len(), 1);
    }

    #[tokio::test]
    async fn a_session_without_expiry_ends_with_its_connection() {
        let sessions = Arc::new(Sessions::default());
        let router = Arc::new(Router::new());
        let key = ClientKey::Anonymous(Arc::from("c1"));
        let a = sessions
            .attach(key.clone(), true, make(1), &router, stop())
            .await
            .unwrap();
        router
            .subscribe(&a.session.subscriber, "t/#", SubOptions::default())
            .unwrap();
        a.session
            .state()
            .subscriptions
            .insert("t/#".into(), SubOptions::default());
        sessions.detach(a, &router, 0, &Arc::new(Metrics::default()));
        assert_eq!(sessions.len(), 0);
        let b = sessions
            .attach(key, false, make(2), &router, stop())
            .await
            .unwrap();
        assert!(!b.present);
        assert_eq!(b.session.subscriber.id, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_session_expires_unless_its_client_returns() {
        let sessions = Arc::new(Sessions::default());
        let router = Arc::new(Router::new());
        let key = ClientKey::Anonymous(Arc::from("c1"));
        let a = sessions
            .attach(key.clone(), false, make(1), &router, stop())
            .await
            .unwrap();
        sessions.detach(a, &router, 60, &Arc::new(Metrics::default()));
        tokio::time::sleep(Duration::from_secs(30)).await;
        let b = sessions
            .attach(key.clone(), false, make(2), &router, stop())
            .await
            .unwrap();
        assert!(b.present, "back within the expiry");
        sessions.detach(b, &router, 60, &Arc::new(Metrics::default()));
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(sessions.len(), 0, "expired");
        // The first timer, from an older connection, found the client back.
        let c = sessions
            .attach(key, false, make(3), &router, stop())
            .await
            .unwrap();
        assert!(!c.present);
    }

    #[tokio::test]
    async fn anonymous_and_authenticated_clients_do_not_share_sessions() {
        let sessions = Arc::new(Sessions::default());
        let router = Arc::new(Router::new());
        let agent_stop = stop();
        let watch_agent = agent_stop.subscribe();
        let _agent = sessions
            .attach(
                ClientKey::Identity(Arc::from("bj1/web-01")),
                false,
                make(1),
                &router,
                agent_stop,
            )
            .await
            .unwrap();
        let _anon = sessions
            .attach(
                ClientKey::Anonymous(Arc::from("bj1/web-01")),
                false,
                make(2),
                &router,
                stop(),
            )
            .await
            .unwrap();
        assert_eq!(*watch_agent.borrow(), None, "not kicked");
        assert_eq!(sessions.len(), 2);
    }
}
