//! Wiring: the embedded broker (if any), the broker links and ingest, the
//! signals loop and its outputs, the Alertmanager tasks, housekeeping and HTTP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::broker::Broker;
use crate::config::{BrokerSettings, EMBEDDED_LINK, Settings, read_password};
use crate::http::App;
use crate::ingest::{Hooks, Ingestor};
use crate::link::mqtt::LinkConfig;
use crate::link::{INBOUND_QUEUE, LinkHandle, LinkStatus, Links, subscriptions};
use crate::output::presence::{Identity, Presence};
use crate::output::{Output, alerts::Alerts, api::Api, mqtt::MqttSignals};
use crate::replay::Recorder;
use crate::signals::{self, Signals};
use crate::state::State;
use crate::topology::Peers;
use crate::{Clock, Error, Shared, alertmanager, metrics};

/// What the command line adds to the settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Record every message received to this replay file.
    pub record: Option<PathBuf>,
}

/// How often expired series are dropped from memory. Readers never see expired
/// series regardless; this only bounds memory.
pub const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// Runs the collector until SIGINT or SIGTERM.
pub async fn run(settings: Settings, options: RunOptions) -> Result<(), Error> {
    let started_at = Clock::System.now_ms();
    // A flood of large messages must not leave the arenas fragmented at its
    // peak (issue 11: memory comes back once a flood's series are gone).
    sitewatch_heap_trim::fix_mmap_threshold();
    let identity = identity(&settings, started_at);
    // Everything that can fail on configuration fails before anything starts.
    let mut links = link_configs(&settings)?;
    if let Some(me) = &identity {
        for l in &mut links {
            l.will = Some(me.will());
        }
    }
    let pushers = match &settings.alertmanager {
        Some(am) => Some((am.clone(), alertmanager::client(am)?)),
        None => None,
    };
    let recorder = options
        .record
        .as_deref()
        .map(|path| Recorder::create(path, started_at))
        .transpose()?;
    let web = Arc::new(settings.web()?);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: settings.listen,
            source,
        })?;
    // Listening once started.
    let embedded = match &settings.embedded_broker {
        Some(config) => {
            let b = Broker::start(config.clone()).await?;
            b.reload_on_sighup();
            // The collector consumes its own broker in-process
            // (`link/local.rs`); the credentials serve a TCP link to it, should
            // one be configured.
            if let Some(link) = links.iter_mut().find(|l| l.name == EMBEDDED_LINK) {
                link.credentials = Some(b.internal_credentials());
            }
            Some(b)
        }
        None => None,
    };
    let peers = Peers::new(&settings.signals.topology, settings.name.as_deref());
    let shared = Arc::new(Shared::with_config(
        State::with_peers(settings.state, peers),
        Clock::System,
        settings.signals.clone(),
        started_at,
    ));

    let ingested = Arc::new(Notify::new());
    let hooks = Hooks {
        ingested: Some(Arc::clone(&ingested)),
        recorder,
        path_names: links.iter().map(|l| l.name.clone()).collect(),
    };
    let links = start_links(links, &shared, hooks, embedded.as_ref())?;

    let mut exposition = metrics::Exposition::new(Arc::clone(&shared));
    let registry = exposition.registry_mut();
    if let Some(b) = &embedded {
        registry.register_collector(Box::new(b.collector()));
    }
    let mut outputs: Vec<Box<dyn Output>> = vec![
        Box::new(Api::new(Arc::clone(&shared))),
        Box::new(MqttSignals::new(&links)),
    ];
    if let Some(me) = &identity {
        tracing::info!(
            name = me.name,
            site = me.site,
            "announcing this collector to its peers"
        );
        outputs.push(Box::new(Presence::new(me.clone(), &links)));
    }
    if let Some((am, (client, authorization))) = pushers {
        let stats = Arc::new(alertmanager::Stats::default());
        let (output, watched) = Alerts::new(Arc::clone(&stats));
        let regions = signals::regions(&settings.signals);
        let watchdog = match &identity {
            Some(me) => alertmanager::watchdog_labels(&me.name, Some(&me.site)),
            None => alertmanager::watchdog_labels(&default_client_id(&settings), None),
        };
        for url in &am.urls {
            tracing::info!(url, resend_interval = ?am.resend_interval, "pushing signals to Alertmanager");
            let pusher = alertmanager::Pusher {
                base_url: url.clone(),
                settings: am.clone(),
                client: client.clone(),
                authorization: authorization.clone(),
                regions: regions.clone(),
                stats: Arc::clone(&stats),
                clock: Clock::System,
                watchdog: watchdog.clone(),
            };
            tokio::spawn(alertmanager::run(pusher, watched.clone()));
        }
        outputs.push(Box::new(output));
    }
    for o in &outputs {
        o.register(registry);
    }
    tokio::spawn(signals::run(
        Arc::clone(&shared),
        Signals::new(settings.signals.clone(), started_at),
        ingested,
        outputs,
    ));
    let pruned = Arc::clone(&shared);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tick.tick().await;
            let now = pruned.clock.now_ms();
            let sites = &pruned.signals_config.sites;
            let expected = |site: &str, host: &str| {
                sites
                    .get(site)
                    .is_some_and(|s| s.expected_hosts.iter().any(|h| h == host))
            };
            let n = pruned.write().prune_keeping(now, expected);
            if n > 0 {
                tracing::debug!(series = n, "expired series dropped");
                // The allocator keeps what the dropped series (and the flood
                // that made them) freed; without this the RSS stays at its peak.
                // Off the workers: the trim holds the allocator's locks.
                let _ = tokio::task::spawn_blocking(sitewatch_heap_trim::release_free_memory).await;
            }
        }
    });

    let local = listener.local_addr().map_err(Error::Http)?;
    tracing::info!(
        listen = %local,
        tls = web.tls(),
        web_config_file = settings.web_config_file.as_ref().map(|p| p.display().to_string()),
        "serving /metrics, /healthz, /api/v1/hosts, /api/v1/signals"
    );
    crate::http::register_web(registry, &web);
    crate::http::serve(
        listener,
        App::new(shared, exposition),
        web,
        settings.http,
        shutdown_signal(),
    )
    .await;
    if let Some(me) = &identity {
        // A clean stop is not a lost collector: say so on every broker, and give
        // the links a moment to send it (best effort: a link that is down keeps
        // its will).
        for l in links.iter() {
            let _ = l.try_publish(me.shutdown(Clock::System.now_ms()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(b) = &embedded {
        // Retained messages written a last time.
        b.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// This collector's identity among its peers, when it has a name.
fn identity(settings: &Settings, started_at: i64) -> Option<Identity> {
    let name = settings.name.clone()?;
    let site = settings
        .signals
        .topology
        .collector(&name)
        .map(|c| c.site.clone())?;
    Some(Identity {
        name,
        site,
        boot: format!("{:x}", started_at ^ i64::from(std::process::id())),
        interval_ms: crate::topology::VIEW_INTERVAL_MS,
    })
}

/// Starts one task per link and the ingest task that applies what they
/// receive; registers the links with `shared`. With `embedded`, the link to
/// the collector's own broker is in-process ([`crate::link::local`]) rather
/// than a TCP client.
pub fn start_links(
    configs: Vec<LinkConfig>,
    shared: &Arc<Shared>,
    hooks: Hooks,
    embedded: Option<&Broker>,
) -> Result<Links, Error> {
    let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
    let mut handles = Vec::with_capacity(configs.len());
    for cfg in configs {
        let local = embedded.filter(|_| cfg.name == EMBEDDED_LINK);
        let address = if local.is_some() {
            "in-process".to_owned()
        } else {
            format!("{}:{}", cfg.host, cfg.port)
        };
        let status = Arc::new(LinkStatus::new(cfg.name.clone(), address));
        let (handle, outgoing) = LinkHandle::new(Arc::clone(&status));
        handles.push(handle);
        match local {
            Some(broker) => crate::link::local::spawn(
                cfg.path,
                broker.clone(),
                &cfg.subscriptions,
                status,
                tx.clone(),
                outgoing,
                shared.clock,
            )?,
            None => {
                tokio::spawn(crate::link::mqtt::run(
                    cfg,
                    status,
                    tx.clone(),
                    outgoing,
                    shared.clock,
                ));
            }
        }
    }
    let links = Links::new(handles);
    shared.set_links(links.iter().map(|l| Arc::clone(&l.status)).collect());
    tokio::spawn(crate::ingest::run(
        rx,
        Ingestor::with_hooks(Arc::clone(shared), hooks),
    ));
    Ok(links)
}

/// The links the settings name, resolved (password and CA files read, TLS
/// built): the embedded broker's first (path 0), then the external brokers in
/// order.
pub fn link_configs(s: &Settings) -> Result<Vec<LinkConfig>, Error> {
    let mut out = Vec::new();
    let v5 = s.share_group.is_some();
    // No broker of ours needs the state topics at QoS 0 (see `subscriptions`).
    let subs = |state_qos0: bool| subscriptions(s.share_group.as_deref(), state_qos0);
    if let Some(e) = &s.embedded {
        let addr = connectable(if v5 { e.v5 } else { e.v4 });
        out.push(LinkConfig {
            path: 0,
            name: EMBEDDED_LINK.to_owned(),
            host: addr.ip().to_string(),
            port: addr.port(),
            v5,
            client_id: default_client_id(s),
            persistent: true,
            credentials: None,
            transport: rumqttc::Transport::Tcp,
            keep_alive: Duration::from_secs(30),
            session_expiry: Duration::from_secs(3600),
            subscriptions: subs(false),
            will: None,
        });
    }
    for b in &s.brokers {
        let path = u8::try_from(out.len()).unwrap_or(u8::MAX);
        out.push(external_link(s, b, path, subs(false))?);
    }
    Ok(out)
}

fn external_link(
    s: &Settings,
    b: &BrokerSettings,
    path: u8,
    subscriptions: Vec<crate::link::Subscription>,
) -> Result<LinkConfig, Error> {
    let credentials = match (&b.username, &b.password_file) {
        (Some(u), Some(p)) => Some((u.clone(), read_password(p)?)),
        (Some(u), None) => Some((u.clone(), String::new())),
        _ => None,
    };
    let transport = if b.url.tls {
        crate::tls::transport(b.tls_ca.as_deref(), b.tls_client.as_ref())?
    } else {
        rumqttc::Transport::Tcp
    };
    Ok(LinkConfig {
        path,
        name: b.name.clone(),
        host: b.url.host.clone(),
        port: b.url.port,
        // Shared subscriptions need MQTT 5; otherwise as configured (5 by default).
        v5: b.v5 || s.share_group.is_some(),
        client_id: b.client_id.clone().unwrap_or_else(|| default_client_id(s)),
        // Always a persistent session: QoS 1 batches published while the
        // collector is reconnecting (after a broker restart, agents often come
        // back first) are queued for it, so nothing is lost.
        persistent: true,
        credentials,
        transport,
        keep_alive: b.keep_alive,
        session_expiry: b.session_expiry,
        subscriptions,
        will: None,
    })
}

/// A client id that is stable across restarts (so the broker resumes the
/// session) and distinct for each collector: its topology name when it has one
/// (collectors of one deployment share their brokers), else the machine's name
/// and its HTTP port.
fn default_client_id(s: &Settings) -> String {
    if let Some(name) = &s.name {
        return format!("sitewatch-collector-{name}");
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("sitewatch-collector-{host}-{}", s.listen.port())
}

/// A wildcard listen address is reached over loopback.
fn connectable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            // Without a SIGTERM handler, wait for Ctrl-C alone.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
