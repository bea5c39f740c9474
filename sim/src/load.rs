//! `sitewatch-sim load`: many simulated agents speaking the v1 protocol to a
//! broker, bounded in count and time, to load a collector and a broker and to
//! measure how they come back from a restart.
//!
//! Each agent has its own MQTT connection with the retained will, publishes a
//! retained birth on every CONNACK, then a readings batch (`seq` +1, its
//! `boot`) every interval; the batches are its heartbeat. A batch is kept
//! until its PUBACK, sent again after a reconnect (full-jitter backoff), so
//! that a broker restart costs the collector no sequence gap. At the end each
//! agent sends its clean-stop state and disconnects; [`Summary`] counts what
//! was sent and acknowledged and the reconnects per second.
//!
//! - [`message`]: the messages, encoded once through the protocol crate (pure).
//! - [`mqtt`]: the MQTT 3.1.1 packets it needs (pure).
//! - [`run`]: the tasks and counters.

pub mod message;
pub mod mqtt;
pub mod run;

use std::{
    net::{SocketAddr, ToSocketAddrs},
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use rand::Rng;
use serde_json::{Value, json};

use message::AgentMessages;
use run::{Run, Stats};

/// What `sitewatch-sim load` is told.
#[derive(Debug, Clone)]
pub struct Options {
    /// `mqtt://host:port` or `host:port`.
    pub broker: String,
    pub site: String,
    /// Host names are `<prefix>-<n>`, n from 1, five digits.
    pub host_prefix: String,
    pub agents: usize,
    pub series: usize,
    pub interval: Duration,
    /// How long the agents send batches, after the ramp.
    pub duration: Duration,
    /// The first connections are spread over this.
    pub ramp: Duration,
    /// Each agent's first batch comes at a random moment within this after
    /// it connects (its phase in the interval: one interval by default).
    pub first_batch_within: Duration,
    /// After the duration, how long to wait for outstanding acks.
    pub drain: Duration,
    pub keepalive: Duration,
    pub connect_timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Batches an agent keeps while disconnected before it drops the oldest.
    pub max_buffered: usize,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
}

/// Why the load could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("broker address {0:?}: expected mqtt://HOST:PORT or HOST:PORT")]
    Broker(String),
    #[error("reading the password file: {0}")]
    Password(std::io::Error),
    #[error("{0}")]
    Build(#[from] message::BuildError),
    #[error("--interval must be positive")]
    Interval,
}

/// The broker's address: `mqtt://` (or `tcp://`) is optional, TLS is not
/// spoken.
pub fn broker_address(url: &str) -> Result<SocketAddr, LoadError> {
    let hostport = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .unwrap_or(url)
        .trim_end_matches('/');
    hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| LoadError::Broker(url.to_owned()))
}

/// A boot id of 8 hex digits, new each run, shared by the run's agents with
/// their index (`<run>-<n>`), so that a second run is a new boot of each host.
fn run_boot() -> String {
    format!("{:08x}", rand::rng().random::<u32>())
}

/// Runs the load to its end and returns the summary.
pub async fn load(options: Options) -> Result<Value, LoadError> {
    if options.interval.is_zero() {
        return Err(LoadError::Interval);
    }
    let broker = broker_address(&options.broker)?;
    let password = match &options.password_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(LoadError::Password)?;
            Some(text.lines().next().unwrap_or("").as_bytes().to_vec())
        }
        None => None,
    };
    let boot = run_boot();
    let mut all = Vec::with_capacity(options.agents);
    for n in 1..=options.agents {
        let host = format!("{}-{n:05}", options.host_prefix);
        all.push(AgentMessages::new(
            &options.site,
            &host,
            &format!("{boot}-{n}"),
            options.interval.as_millis() as u64,
            options.series,
        )?);
    }
    let seconds = (options.ramp + options.duration + options.drain).as_secs() as usize + 8;
    let run = Arc::new(Run {
        options,
        broker,
        password,
        stats: Stats::new(seconds),
        start: tokio::time::Instant::now(),
        start_ms: run::wall_clock_ms(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (index, messages) in all.into_iter().enumerate() {
        tasks.spawn(run::agent(Arc::clone(&run), index, messages));
    }
    while tasks.join_next().await.is_some() {}
    Ok(summary(&run, boot))
}

fn per_second(series: &[std::sync::atomic::AtomicU64]) -> Vec<u64> {
    let mut v: Vec<u64> = series.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn summary(run: &Run, boot: String) -> Value {
    let s = &run.stats;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let reconnects = per_second(&s.reconnects);
    let first = reconnects.iter().position(|&n| n > 0);
    let last = reconnects.iter().rposition(|&n| n > 0);
    let o = &run.options;
    json!({
        "agents": o.agents,
        "series": o.series,
        "interval_ms": o.interval.as_millis() as u64,
        "duration_s": o.duration.as_secs_f64(),
        "boot": boot,
        "elapsed_s": (tokio::time::Instant::now() - run.start).as_secs_f64(),
        "first_connects": get(&s.first_connects),
        "connect_failures": get(&s.connect_failures),
        "connections_lost": get(&s.connections_lost),
        "births_acked": get(&s.births_acked),
        "messages": {
            "made": get(&s.batches_made),
            "sent": get(&s.batches_sent),
            "resent": get(&s.batches_resent),
            "acked": get(&s.batches_acked),
            "dropped": get(&s.batches_dropped),
            "unacked": get(&s.batches_unacked),
        },
        "readings_acked": get(&s.readings_acked),
        "shutdowns_acked": get(&s.shutdowns_acked),
        "reconnects": {
            "total": reconnects.iter().sum::<u64>(),
            "max_per_second": reconnects.iter().copied().max().unwrap_or(0),
            "window_s": match (first, last) { (Some(a), Some(b)) => b - a + 1, _ => 0 },
            "per_second": reconnects,
        },
        "losses_per_second": per_second(&s.losses),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_address_takes_a_url_or_host_and_port() {
        assert_eq!(
            broker_address("mqtt://127.0.0.1:1883").unwrap(),
            "127.0.0.1:1883".parse().unwrap()
        );
        assert_eq!(
            broker_address("127.0.0.1:9").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert!(broker_address("mqtt://127.0.0.1").is_err());
    }
}
