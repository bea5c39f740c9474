//! sitewatch's own MQTT broker, embedded in the collector: the one-machine
//! setup, where agents publish to the collector and nothing else is installed.
//!
//! MQTT 3.1.1 and 5 on every listener (CONNECT's protocol level decides), plain
//! TCP and TLS (with client certificates), authentication (a mosquitto_passwd
//! password file, certificate CNs), per-identity authorization (an agent
//! publishes only as itself), retained messages kept on disk, persistent
//! sessions in memory, and an in-process link through which the collector
//! subscribes without a socket and without losing anything acknowledged. No
//! bridging, no clustering: past one machine, use an MQTT cluster.
//!
//! rumqttc's public codec frames and parses packets (`codec.rs`); everything
//! else is here:
//!
//! - [`config`] reads `[embedded_broker]` (anonymous access is refused beyond
//!   loopback unless asked for).
//! - `listener` accepts TCP and TLS, keeps the connection limit and the CONNECT
//!   deadline.
//! - `session` is one connection's state machine (CONNECT, reader, writer, will).
//! - `sessions` holds what outlives a connection: takeover and expiry.
//! - [`router`] keeps subscriptions (`+`, `#`, `$share/`) and the retained
//!   store, and delivers.
//! - `queue` is a subscriber's bounded queue: drop for clients, wait for the link.
//! - [`topic`] has the topic name and filter rules (pure).
//! - [`auth`] and [`cert`] say who a client is; [`acl`] what it may do (pure).
//! - [`persist`] keeps the retained store on disk.
//! - [`local`] is the in-process link.
//! - [`metrics`] has the `sitewatch_broker_*` self-metrics.
//! - [`passwd`] is the `passwd` command.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;

pub mod acl;
pub mod auth;
pub mod cert;
pub mod codec;
pub mod config;
mod listener;
pub mod local;
pub mod metrics;
pub mod passwd;
pub mod persist;
mod queue;
pub mod router;
mod session;
mod sessions;
pub mod topic;

pub use config::BrokerConfig;
pub use local::{Delivery, LocalSubscription};

use self::auth::Authenticator;
use self::metrics::{BrokerCollector, Metrics};
use self::persist::Persister;
use self::queue::{Overflow, Queue};
use self::router::{Message, Origin, RetainHandling, Router, SubOptions, Subscriber};
use self::sessions::{Sessions, StopReason};
use crate::Error;

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Core {
    config: BrokerConfig,
    router: Arc<Router>,
    sessions: Arc<Sessions>,
    auth: Authenticator,
    metrics: Arc<Metrics>,
    ids: AtomicU64,
    shutdown: tokio::sync::watch::Sender<bool>,
    locals: Mutex<Vec<Weak<Subscriber>>>,
}

impl Core {
    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// Why [`Broker::publish`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("topic {topic:?} {reason}")]
    Topic {
        topic: String,
        reason: topic::TopicNameError,
    },
    #[error("QoS {0} does not exist")]
    QoS(u8),
}

/// A running embedded broker. Cheap to clone; every clone is the same broker.
#[derive(Debug, Clone)]
pub struct Broker {
    core: Arc<Core>,
    bound: Vec<(&'static str, SocketAddr)>,
    persister: Option<Arc<Persister>>,
}

impl Broker {
    /// Loads the retained store, binds every listener and starts accepting.
    /// Once this returns, the listeners accept connections.
    pub async fn start(config: BrokerConfig) -> Result<Broker, Error> {
        let auth = Authenticator::new(config.password_file.as_deref(), config.allow_anonymous)?;
        let tls = config
            .tls
            .as_ref()
            .map(listener::tls_acceptor)
            .transpose()?;
        let router = Arc::new(Router::new());
        let metrics = Arc::new(Metrics::default());
        let persister = match &config.state_dir {
            Some(dir) => Some(Arc::new(Persister::open(
                dir,
                Arc::clone(&router),
                Arc::clone(&metrics),
            )?)),
            None => None,
        };
        let mut listeners = Vec::new();
        for (name, addr) in config.listeners() {
            let l = listener::bind(addr).await?;
            let local = l
                .local_addr()
                .map_err(|source| Error::Listen { addr, source })?;
            listeners.push((name, l, local));
        }
        if let Some((key, addr)) = config.exposed()
            && config.allow_anonymous
        {
            tracing::warn!(
                listener = key,
                %addr,
                "embedded broker: anonymous clients allowed on a listener reachable beyond this host: \
                 anyone who reaches it may publish anything"
            );
        }
        let core = Arc::new(Core {
            config,
            router,
            sessions: Arc::new(Sessions::default()),
            auth,
            metrics,
            ids: AtomicU64::new(1),
            shutdown: tokio::sync::watch::channel(false).0,
            locals: Mutex::new(Vec::new()),
        });
        let mut bound = Vec::new();
        for (name, l, local) in listeners {
            let tls = (name == "listen_tls").then(|| tls.clone()).flatten();
            tokio::spawn(listener::accept_loop(Arc::clone(&core), l, name, tls));
            bound.push((name, local));
        }
        if let Some(p) = &persister {
            tokio::spawn(Arc::clone(p).run(core.shutdown.subscribe()));
        }
        tracing::info!(
            listeners = ?bound,
            authentication = core.config.password_file.is_some()
                || core.config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
            anonymous = core.config.allow_anonymous,
            state_dir = ?core.config.state_dir,
            "embedded MQTT broker listening"
        );
        Ok(Broker {
            core,
            bound,
            persister,
        })
    }

    /// The address a listener is bound to (`listen_v4`, `listen_v5`,
    /// `listen_tls`): with port 0 in the configuration, the port chosen.
    pub fn local_addr(&self, listener: &str) -> Option<SocketAddr> {
        self.bound
            .iter()
            .find(|(n, _)| *n == listener)
            .map(|(_, a)| *a)
    }

    /// Subscribes in-process to `filters` (`$share/...` allowed); retained
    /// matches are queued first. `capacity`: messages held before publishers
    /// wait (see [`local`]).
    pub fn local_subscriber(
        &self,
        filters: &[&str],
        capacity: usize,
    ) -> Result<LocalSubscription, topic::FilterError> {
        for f in filters {
            topic::parse_subscription(f)?;
        }
        let subscriber = Arc::new(Subscriber::new(
            self.core.next_id(),
            "$in-process",
            Queue::new(
                capacity,
                Overflow::Wait,
                Arc::clone(&self.core.metrics.queued),
            ),
            true,
        ));
        let opts = SubOptions {
            qos: 1,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::Always,
        };
        for f in filters {
            self.core.router.subscribe(&subscriber, f, opts)?;
        }
        self.core
            .locals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(&subscriber));
        Ok(LocalSubscription::new(
            Arc::clone(&self.core),
            subscriber,
            filters.iter().map(|f| (*f).to_owned()).collect(),
        ))
    }

    /// Publishes the collector's own message (`_signals`, its presence),
    /// without authorization. It never waits for a slow in-process subscriber:
    /// the collector publishes little, and waiting on its own queue could
    /// deadlock it.
    pub fn publish(
        &self,
        topic: &str,
        payload: Bytes,
        retain: bool,
        qos: u8,
    ) -> Result<(), PublishError> {
        topic::validate_name(topic).map_err(|reason| PublishError::Topic {
            topic: topic.to_owned(),
            reason,
        })?;
        if qos > 2 {
            return Err(PublishError::QoS(qos));
        }
        let routed = self.core.router.publish(Arc::new(Message {
            topic: Arc::from(topic),
            payload,
            qos,
            retain,
            properties: None,
            origin: Origin::Broker,
        }));
        self.core.metrics.count_routed(&routed);
        Ok(())
    }

    /// The user name and password of the collector's own TCP connection to
    /// this broker: full access, made up at start, never written anywhere.
    pub fn internal_credentials(&self) -> (String, String) {
        self.core.auth.internal_credentials()
    }

    /// The `sitewatch_broker_*` metrics, for the collector's registry.
    pub fn collector(&self) -> BrokerCollector {
        BrokerCollector {
            metrics: Arc::clone(&self.core.metrics),
            router: Arc::clone(&self.core.router),
            sessions: Arc::clone(&self.core.sessions),
        }
    }

    /// Re-reads the password file (SIGHUP). On error the old one stays.
    pub fn reload_passwords(&self) -> Result<usize, Error> {
        self.core.auth.reload()
    }

    /// Re-reads the password file on every SIGHUP, until shutdown.
    pub fn reload_on_sighup(&self) {
        if self.core.config.password_file.is_none() {
            return;
        }
        let broker = self.clone();
        let mut shutdown = self.core.shutdown.subscribe();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::warn!("no SIGHUP handler: the password file is read at start only");
                return;
            };
            loop {
                tokio::select! {
                    _ = hup.recv() => match broker.reload_passwords() {
                        Ok(users) => tracing::info!(users, "password file re-read"),
                        Err(e) => tracing::error!(error = %e, "password file not re-read; the previous one stays in use"),
                    },
                    _ = shutdown.changed() => return,
                }
            }
        });
    }

    /// Stops accepting, closes every connection (MQTT 5 clients are told the
    /// server is shutting down; no will is published: the broker going away is
    /// not the client going away), ends the in-process links and writes the
    /// retained store a last time.
    pub async fn shutdown(&self) {
        self.core.shutdown.send_replace(true);
        self.core.sessions.stop_all(StopReason::Shutdown);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.core.metrics.connections.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let locals: Vec<Weak<Subscriber>> = std::mem::take(
            &mut *self
                .core
                .locals
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for s in locals.iter().filter_map(Weak::upgrade) {
            s.queue.close();
        }
        if let Some(p) = &self.persister {
            p.flush().await;
        }
        tracing::info!("embedded MQTT broker stopped");
    }
}
