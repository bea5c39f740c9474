//! Wiring: the embedded broker (if any), the consumer, the signals loop, the
//! Alertmanager tasks, housekeeping and HTTP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use crate::config::{BrokerMode, Settings};
use crate::ingest::{ConsumerConfig, Hooks, run as run_consumer};
use crate::replay::Recorder;
use crate::signals::{self, Outputs, Published, Signals};
use crate::state::State;
use crate::{Clock, Error, Shared, alertmanager, broker};

/// `_signals` messages queued for the MQTT client; more wait in the signals loop.
const OUTGOING_QUEUE: usize = 256;

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
pub async fn run(mut settings: Settings, options: RunOptions) -> Result<(), Error> {
    let started_at = Clock::System.now_ms();
    settings.state.rules.started_at_ms = started_at;
    // Everything that can fail on configuration fails before anything starts.
    let consumer = ConsumerConfig::from_settings(&settings)?;
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
    if let BrokerMode::Embedded {
        v4,
        v5,
        max_connections,
    } = settings.broker
    {
        broker::start(v4, v5, max_connections)?;
        for addr in [v4, v5] {
            broker::wait_ready(connectable(addr), Duration::from_secs(10)).await?;
        }
    }
    let shared = Arc::new(Shared::new(State::new(settings.state), Clock::System));
    shared.set_signals(Published::initial(&settings.signals));

    let ingested = Arc::new(Notify::new());
    let (outgoing_tx, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
    let (alerts_tx, alerts_rx) = watch::channel(signals::ActiveSignals::default());
    if let Some((am, (client, authorization))) = pushers {
        let regions = signals::regions(&settings.signals);
        for url in &am.urls {
            tracing::info!(url, resend_interval = ?am.resend_interval, "pushing signals to Alertmanager");
            tokio::spawn(alertmanager::run(
                url.clone(),
                am.clone(),
                client.clone(),
                authorization.clone(),
                regions.clone(),
                alerts_rx.clone(),
                Arc::clone(&shared),
            ));
        }
    }
    let hooks = Hooks {
        ingested: Some(Arc::clone(&ingested)),
        recorder,
        outgoing: Some(outgoing_rx),
    };
    tokio::spawn(run_consumer(consumer, Arc::clone(&shared), hooks));
    tokio::spawn(signals::run(
        Arc::clone(&shared),
        Signals::new(settings.signals.clone(), started_at),
        ingested,
        Outputs {
            mqtt: Some(outgoing_tx),
            alerts: alerts_tx,
        },
    ));
    let pruned = Arc::clone(&shared);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tick.tick().await;
            let now = pruned.clock.now_ms();
            let n = pruned.write().prune(now);
            if n > 0 {
                tracing::debug!(series = n, "expired series dropped");
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
    crate::http::serve(listener, shared, web, settings.http, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
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
