//! Wiring: the embedded broker (if any), the consumer, the signals loop, the
//! Alertmanager tasks, housekeeping and HTTP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use crate::broker::Broker;
use crate::config::{BrokerMode, Settings};
use crate::http::{App, router};
use crate::ingest::{ConsumerConfig, Hooks, run as run_consumer};
use crate::replay::Recorder;
use crate::signals::{self, Outputs, Published, Signals};
use crate::state::State;
use crate::{Clock, Error, Shared, alertmanager};

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
    let mut consumer = ConsumerConfig::from_settings(&settings)?;
    let pushers = match &settings.alertmanager {
        Some(am) => Some((am.clone(), alertmanager::client(am)?)),
        None => None,
    };
    let recorder = options
        .record
        .as_deref()
        .map(|path| Recorder::create(path, started_at))
        .transpose()?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: settings.listen,
            source,
        })?;
    let embedded = match (&settings.broker, &settings.embedded_broker) {
        (BrokerMode::Embedded { .. }, Some(config)) => {
            let b = Broker::start(config.clone()).await?;
            b.reload_on_sighup();
            // The collector consumes its own broker over TCP, as its own
            // full-access identity (whatever authentication agents need).
            let (user, password) = b.internal_credentials();
            consumer.credentials = Some((user, password));
            Some(b)
        }
        _ => None,
    };
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
        "serving /metrics, /healthz, /api/v1/hosts, /api/v1/signals"
    );
    let collectors: Vec<Box<dyn prometheus_client::collector::Collector>> = match &embedded {
        Some(b) => vec![Box::new(b.collector())],
        None => Vec::new(),
    };
    axum::serve(listener, router(App::with_collectors(shared, collectors)))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(Error::Http)?;
    if let Some(b) = &embedded {
        // Retained messages written a last time.
        b.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
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
