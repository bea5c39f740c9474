//! Wiring: the embedded broker (if any), the consumer, housekeeping and HTTP.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{BrokerMode, Settings};
use crate::http::{App, router};
use crate::ingest::{ConsumerConfig, run as run_consumer};
use crate::state::State;
use crate::{Clock, Error, Shared, broker};

/// How often expired series are dropped from memory. Readers never see expired
/// series regardless; this only bounds memory.
pub const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// Runs the collector until SIGINT or SIGTERM.
pub async fn run(mut settings: Settings) -> Result<(), Error> {
    settings.state.rules.started_at_ms = Clock::System.now_ms();
    // Everything that can fail on configuration fails before anything starts.
    let consumer = ConsumerConfig::from_settings(&settings)?;
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

    tokio::spawn(run_consumer(consumer, Arc::clone(&shared)));
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
    tracing::info!(listen = %local, "serving /metrics, /healthz, /api/v1/hosts");
    axum::serve(listener, router(App::new(shared)))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(Error::Http)?;
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
