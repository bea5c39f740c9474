//! The embedded MQTT broker (rumqttd as a library): the one-machine setup, where
//! agents publish to the collector's own broker and nothing else is installed.
//!
//! rumqttd runs its router and one listener per protocol version on threads of its
//! own; [`start`] puts the blocking `Broker::start` on a dedicated thread too. The
//! collector then consumes it over TCP like any external broker, so that both
//! setups exercise the same ingest path.
//!
//! What rumqttd 0.20 does and does not do, as the collector relies on it:
//!
//! - Retained messages: kept and replayed on subscription. **But** for a QoS 1 or 2
//!   subscription it replays at most 100 of them (its hard-coded `MAX_INFLIGHT`;
//!   the rest are dropped silently, `router/routing.rs`). A site with more than 100
//!   agents would lose most retained births and wills at collector start. The
//!   consumer therefore subscribes to the state topics at QoS 0 on the embedded
//!   broker (QoS 0 replays up to `max_outgoing_packet_count`, set high below); over
//!   loopback QoS 0 loses nothing in practice, and every reconnection replays the
//!   retained states in full anyway (see `ingest::subscriptions`).
//! - Wills: published when a client's connection dies without DISCONNECT, with the
//!   retain flag honoured (so the retained state becomes `offline/lost`).
//! - MQTT 5 shared subscriptions (`$share/...`) on the v5 listener: supported,
//!   round-robin by default.
//! - No TLS and no authentication here (the workspace builds rumqttd without TLS):
//!   bind it to loopback or a trusted network, or use an external broker.
//! - A listener that cannot bind is only logged by rumqttd, so [`start`] binds each
//!   address once itself first to report the error properly.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::Error;

/// Largest MQTT packet the broker accepts. The contract's payload limit is 256 KiB;
/// anything up to this size still reaches the collector, which counts it as
/// `too_large`, instead of the broker cutting the agent's connection without a
/// trace.
pub const MAX_PACKET_BYTES: usize = 1024 * 1024;

/// The rumqttd configuration for the two listeners.
pub fn config(v4: SocketAddr, v5: SocketAddr, max_connections: usize) -> Config {
    let connections = ConnectionSettings {
        // Time allowed between TCP accept and the CONNECT packet.
        connection_timeout_ms: 10_000,
        max_payload_size: MAX_PACKET_BYTES,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = |name: &str, listen: SocketAddr| ServerSettings {
        name: name.to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: connections.clone(),
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections,
            // Also the cap on retained messages replayed to a QoS 0 subscription:
            // one per agent, so room for a large site.
            max_outgoing_packet_count: 100_000,
            // rumqttd keeps publishes in an in-memory commit log per filter:
            // 4 segments of 16 MiB bounds it at 64 MiB per filter.
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 4,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("v4".to_owned(), server("mqtt-v4", v4))])),
        v5: Some(HashMap::from([("v5".to_owned(), server("mqtt-v5", v5))])),
        ..Config::default()
    }
}

/// Starts the embedded broker on its own thread. Returns once the thread runs; the
/// listeners come up a moment later (the consumer's reconnect loop waits for them).
pub fn start(v4: SocketAddr, v5: SocketAddr, max_connections: usize) -> Result<(), Error> {
    for addr in [v4, v5] {
        // Dropped at once: only to turn "address in use" into an error here.
        TcpListener::bind(addr).map_err(|source| Error::Listen { addr, source })?;
    }
    let config = config(v4, v5, max_connections);
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            // `start` blocks for the life of the listeners.
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(|e| Error::Broker(format!("cannot spawn its thread: {e}")))?;
    tracing::info!(%v4, %v5, "embedded MQTT broker starting");
    Ok(())
}

/// Waits until a listener accepts TCP connections: rumqttd reports a listener that
/// failed only in its log, so the collector checks before relying on it.
pub async fn wait_ready(addr: SocketAddr, timeout: std::time::Duration) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // The probe connects and closes without CONNECT, which rumqttd notes at
        // ERROR in a module the default log filter silences (see main.rs).
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Broker(format!(
                "the listener on {addr} did not come up within {timeout:?}"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
