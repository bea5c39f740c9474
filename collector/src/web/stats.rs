//! The HTTP side's own counters, encoded at each scrape next to the state.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::auth::Denied;
use crate::metrics::names;

/// Why a connection ended before or outside a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionError {
    /// The TLS handshake failed (no or a wrong client certificate, a plain
    /// HTTP client on a TLS port, ...).
    TlsHandshake,
    /// The TLS handshake did not finish within the header timeout.
    HandshakeTimeout,
    /// No complete request head within the header timeout (also an idle
    /// keep-alive connection).
    HeaderTimeout,
    /// A response write made no progress for the request timeout (a client
    /// that does not read).
    WriteStalled,
    /// Anything else: a malformed request, a reset connection.
    Other,
}

impl ConnectionError {
    pub const ALL: [ConnectionError; 5] = [
        ConnectionError::TlsHandshake,
        ConnectionError::HandshakeTimeout,
        ConnectionError::HeaderTimeout,
        ConnectionError::WriteStalled,
        ConnectionError::Other,
    ];

    pub fn kind(self) -> &'static str {
        match self {
            ConnectionError::TlsHandshake => "tls_handshake",
            ConnectionError::HandshakeTimeout => "handshake_timeout",
            ConnectionError::HeaderTimeout => "header_timeout",
            ConnectionError::WriteStalled => "write_stalled",
            ConnectionError::Other => "other",
        }
    }

    fn index(self) -> usize {
        match self {
            ConnectionError::TlsHandshake => 0,
            ConnectionError::HandshakeTimeout => 1,
            ConnectionError::HeaderTimeout => 2,
            ConnectionError::WriteStalled => 3,
            ConnectionError::Other => 4,
        }
    }
}

/// Counters shared by the accept loop, the guard and the config source.
#[derive(Debug, Default)]
pub struct WebStats {
    pub open_connections: AtomicI64,
    pub connections: AtomicU64,
    connection_errors: [AtomicU64; 5],
    denied: [AtomicU64; 4],
    pub rate_limited: AtomicU64,
    pub request_timeouts: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
}

impl WebStats {
    pub fn connection_error(&self, e: ConnectionError) {
        self.connection_errors[e.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn denied(&self, d: Denied) {
        self.denied[d.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_errors(&self, e: ConnectionError) -> u64 {
        self.connection_errors[e.index()].load(Ordering::Relaxed)
    }

    pub fn denied_count(&self, d: Denied) -> u64 {
        self.denied[d.index()].load(Ordering::Relaxed)
    }
}

/// Encodes [`WebStats`] at each scrape.
#[derive(Debug)]
pub struct WebStatsCollector(pub Arc<WebStats>);

impl Collector for WebStatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let s = &self.0;
        encoder
            .encode_descriptor(
                names::HTTP_OPEN_CONNECTIONS,
                "HTTP connections open now (at most [http] max_connections).",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&s.open_connections.load(Ordering::Relaxed))?;
        encoder
            .encode_descriptor(
                names::HTTP_CONNECTIONS,
                "HTTP connections accepted.",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, u64>(&s.connections.load(Ordering::Relaxed), None)?;
        let mut m = encoder.encode_descriptor(
            names::HTTP_CONNECTION_ERRORS,
            "HTTP connections closed without a response, by kind.",
            None,
            MetricType::Counter,
        )?;
        for e in ConnectionError::ALL {
            m.encode_family(&[("kind", e.kind())])?
                .encode_counter::<NoLabelSet, _, u64>(&s.connection_errors(e), None)?;
        }
        let mut m = encoder.encode_descriptor(
            names::HTTP_REQUESTS_DENIED,
            "HTTP requests refused, by reason (credentials, rate limit).",
            None,
            MetricType::Counter,
        )?;
        for d in Denied::ALL {
            m.encode_family(&[("reason", d.kind())])?
                .encode_counter::<NoLabelSet, _, u64>(&s.denied_count(d), None)?;
        }
        m.encode_family(&[("reason", "rate_limited")])?
            .encode_counter::<NoLabelSet, _, u64>(&s.rate_limited.load(Ordering::Relaxed), None)?;
        encoder
            .encode_descriptor(
                names::HTTP_REQUEST_TIMEOUTS,
                "HTTP requests answered 503 because they took longer than [http] request_timeout.",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, u64>(
                &s.request_timeouts.load(Ordering::Relaxed),
                None,
            )?;
        let mut m = encoder.encode_descriptor(
            names::WEB_CONFIG_RELOADS,
            "Reloads of the web config file after it or a file it names changed, by result.",
            None,
            MetricType::Counter,
        )?;
        m.encode_family(&[("result", "ok")])?
            .encode_counter::<NoLabelSet, _, u64>(&s.reloads_ok.load(Ordering::Relaxed), None)?;
        m.encode_family(&[("result", "error")])?
            .encode_counter::<NoLabelSet, _, u64>(
                &s.reloads_failed.load(Ordering::Relaxed),
                None,
            )?;
        Ok(())
    }
}
