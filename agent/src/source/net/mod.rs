//! The `net` source: reachability probes to the site's switches, routers,
//! uplinks, peer sites and services, by ICMP echo or TCP connect.
//!
//! # Readings
//!
//! Per target (`dev` = `name` = the target's name), labelled `role`, `method`
//! and `address`:
//!
//! - `probe_up`: 1 answered, 0 not. Also labelled `reason`: `ok`, `refused` (a
//!   TCP RST: the host is up but nothing listens: the *service* is down),
//!   `timeout` (no answer within the timeout: a filtered port, a dead host, a cut
//!   link), `unreachable` (an ICMP unreachable or no route), `resolve` (the name
//!   does not resolve) or `error`. So a closed port and a filtered one are told
//!   apart. State when down: `critical` for `switch`, `router`, `uplink` and
//!   `peer_site`, `warning` for `service`. The series is identified by `src`, `dev`,
//!   `name` and `q`; `reason` describes the latest value, it does not make a new series.
//! - `probe_rtt_seconds`: the round-trip time (ICMP echo to reply, or the TCP
//!   handshake); `null` (state `unknown`) when down. `warning`/`critical` at
//!   `rtt_warning`/`rtt_critical` (default 200 ms / 500 ms, the DR plan's limit).
//! - `probe_loss_ratio`: failed probes over the sliding window (the last
//!   `window` probes, default 20, none older than `window_duration`, default
//!   1 min); `warning`/`critical` at `loss_warning`/`loss_critical` (20 % / 50 %).
//!
//! Each reading carries the time its probe started as its own `ts`.
//!
//! # Scheduling
//!
//! Every target is probed by its own task on its own `interval`, each probe under
//! its own `timeout`, so one slow or dead target never delays another. The
//! scheduler's poll of this source only collects the latest result of every
//! target (the first poll waits for every target's first probe, so `once` and a
//! freshly started agent report them all). The poll tick defaults to the shortest
//! target interval. A target slower than the tick is reported again with its
//! latest result and that result's `ts`.
//!
//! # Privileges
//!
//! - TCP probes need nothing.
//! - ICMP probes use an unprivileged ICMP socket (`SOCK_DGRAM, IPPROTO_ICMP`) where
//!   the kernel allows it: when `net.ipv4.ping_group_range` includes the process's
//!   group (it covers ICMPv6 too). For an agent running as group `sitewatch` (gid
//!   998): `sysctl -w net.ipv4.ping_group_range="998 998"`, persisted in
//!   `/etc/sysctl.d/`. Many distributions ship `"0 2147483647"` (everyone).
//! - Otherwise a raw ICMP socket, which needs `CAP_NET_RAW` (root, or systemd
//!   `AmbientCapabilities=CAP_NET_RAW`).
//! - With neither, the source fails to build, and the agent does not start, with
//!   a message naming what is missing (the range read from
//!   `/proc/sys/net/ipv4/ping_group_range`, the process's groups, the capability).
//!   An agent that silently stopped watching its switches would be worse.

pub mod config;
mod icmp;
mod tcp;

use std::{
    collections::VecDeque,
    io,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use sitewatch_protocol::{Reading, ReadingState, quantity};
use tokio::{sync::watch, task::JoinHandle, time::MissedTickBehavior};

pub use icmp::SocketKind;

use super::{Poll, Polled, SourceError};
use crate::{endpoint::Endpoint, unix_ms};
use config::{Method, NetSourceConfig, NetTarget};

/// The source's name and its readings' `src`.
pub const NAME: &str = "net";

/// Quantities this source emits beyond the shared vocabulary.
pub mod q {
    pub const PROBE_LOSS_RATIO: &str = "probe_loss_ratio";
}

/// Why a probe failed: the `reason` label of a `probe_up` 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The port answered with a RST: the host is up, the service is not.
    Refused,
    /// No answer within the timeout: filtered, dead, or cut off.
    Timeout,
    /// An ICMP unreachable, or no route to the address.
    Unreachable,
    /// The host name did not resolve (and never did).
    Resolve,
    /// Anything else (the detail is logged).
    Error,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Timeout => "timeout",
            Failure::Unreachable => "unreachable",
            Failure::Resolve => "resolve",
            Failure::Error => "error",
        }
    }

    /// Classifies a socket error.
    pub fn of(e: &io::Error) -> Failure {
        // EHOSTDOWN: the neighbour never answered ARP/NDP.
        const EHOSTDOWN: i32 = 112;
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            io::ErrorKind::TimedOut => Failure::Timeout,
            io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::AddrNotAvailable => Failure::Unreachable,
            _ if e.raw_os_error() == Some(EHOSTDOWN) => Failure::Unreachable,
            _ => Failure::Error,
        }
    }
}

/// One probe's outcome: the round-trip time, or why there was none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeResult {
    /// When the probe started, Unix milliseconds.
    pub ts_ms: i64,
    pub outcome: Result<Duration, Failure>,
}

/// The latest probes of one target, for the loss ratio.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// (start time in Unix ms, lost), oldest first.
    probes: VecDeque<(i64, bool)>,
}

impl Window {
    /// Adds a probe, keeping at most `max_probes`.
    pub fn push(&mut self, ts_ms: i64, lost: bool, max_probes: usize) {
        self.probes.push_back((ts_ms, lost));
        while self.probes.len() > max_probes.max(1) {
            self.probes.pop_front();
        }
    }

    /// Lost probes over probes, among those started within `max_age` before `now_ms`.
    pub fn loss_ratio(&self, now_ms: i64, max_age: Duration) -> Option<f64> {
        let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let (mut total, mut lost) = (0u32, 0u32);
        for &(ts, l) in &self.probes {
            if now_ms.saturating_sub(ts) <= max_age_ms {
                total += 1;
                lost += u32::from(l);
            }
        }
        (total > 0).then(|| f64::from(lost) / f64::from(total))
    }
}

fn level(value: f64, warning: f64, critical: f64) -> ReadingState {
    if value >= critical {
        ReadingState::Critical
    } else if value >= warning {
        ReadingState::Warning
    } else {
        ReadingState::Ok
    }
}

/// The readings of a target's latest probe, `loss` being its window's loss ratio.
pub fn readings(target: &NetTarget, result: &ProbeResult, loss: Option<f64>) -> Vec<Reading> {
    let method = target.method();
    let labelled = |q: &str, value: Option<f64>, state: ReadingState| {
        Reading::new(
            NAME,
            target.name.clone(),
            target.name.clone(),
            q,
            value,
            state,
        )
        .with_label("role", target.role.as_str())
        .with_label("method", method.as_str())
        .with_label("address", target.address.clone())
        .at(result.ts_ms)
    };
    let down_state = if target.role.is_infrastructure() {
        ReadingState::Critical
    } else {
        ReadingState::Warning
    };
    let (up, reason, rtt) = match result.outcome {
        Ok(rtt) => {
            let state = level(
                rtt.as_secs_f64(),
                target.rtt_warning.as_secs_f64(),
                target.rtt_critical.as_secs_f64(),
            );
            (
                labelled(quantity::PROBE_UP, Some(1.0), ReadingState::Ok),
                "ok",
                labelled(quantity::PROBE_RTT_SECONDS, Some(rtt.as_secs_f64()), state),
            )
        }
        Err(failure) => (
            labelled(quantity::PROBE_UP, Some(0.0), down_state),
            failure.as_str(),
            labelled(quantity::PROBE_RTT_SECONDS, None, ReadingState::Unknown),
        ),
    };
    let mut out = vec![up.with_label("reason", reason), rtt];
    if let Some(loss) = loss {
        let state = level(loss, target.loss_warning, target.loss_critical);
        out.push(labelled(q::PROBE_LOSS_RATIO, Some(loss), state));
    }
    out
}

/// A configured target with its address parsed.
#[derive(Debug)]
struct Target {
    config: NetTarget,
    endpoint: Endpoint,
}

#[derive(Debug, Default)]
struct TargetState {
    latest: Option<ProbeResult>,
    window: Window,
}

/// What the probe tasks share with the poll.
#[derive(Debug)]
struct Shared {
    states: Mutex<Vec<TargetState>>,
    /// Bumped after every recorded probe (the first poll waits on it).
    recorded: watch::Sender<()>,
}

impl Shared {
    fn record(&self, index: usize, target: &NetTarget, result: ProbeResult) {
        {
            // A poisoned lock only means a panic elsewhere; the data is plain values.
            let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(state) = states.get_mut(index) {
                state
                    .window
                    .push(result.ts_ms, result.outcome.is_err(), target.window);
                state.latest = Some(result);
            }
        }
        self.recorded.send_replace(());
    }

    fn all_probed(&self) -> bool {
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        states.iter().all(|s| s.latest.is_some())
    }

    fn readings(&self, targets: &[Arc<Target>]) -> Vec<Reading> {
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        targets
            .iter()
            .zip(states.iter())
            .filter_map(|(target, state)| {
                let latest = state.latest.as_ref()?;
                let loss = state
                    .window
                    .loss_ratio(latest.ts_ms, target.config.window_duration);
                Some(readings(&target.config, latest, loss))
            })
            .flatten()
            .collect()
    }
}

/// A failed probe: the bounded reason and the detail for the log.
#[derive(Debug)]
struct ProbeError {
    failure: Failure,
    detail: String,
}

impl ProbeError {
    fn io(e: &io::Error) -> Self {
        ProbeError {
            failure: Failure::of(e),
            detail: e.to_string(),
        }
    }
}

/// One target's prober: owned by its task.
#[derive(Debug)]
struct Prober {
    target: Arc<Target>,
    icmp: Option<SocketKind>,
    /// Our ICMP identifier (a raw socket keeps it; a datagram socket gets its own).
    identifier: u16,
    sequence: u16,
    /// The last address the name resolved to, reused while resolution fails.
    resolved: Option<IpAddr>,
}

impl Prober {
    async fn probe(&mut self) -> Result<Duration, ProbeError> {
        let timeout = self.target.config.timeout;
        match tokio::time::timeout(timeout, self.probe_unbounded()).await {
            Ok(result) => result,
            Err(_) => Err(ProbeError {
                failure: Failure::Timeout,
                detail: format!("no answer within {timeout:?}"),
            }),
        }
    }

    async fn probe_unbounded(&mut self) -> Result<Duration, ProbeError> {
        let ip = self.resolve().await?;
        let port = self.target.endpoint.port.unwrap_or(0);
        match (self.target.config.method(), self.icmp) {
            (Method::Tcp, _) => tcp::connect(SocketAddr::new(ip, port))
                .await
                .map_err(|e| ProbeError::io(&e)),
            (Method::Icmp, Some(kind)) => {
                self.sequence = self.sequence.wrapping_add(1);
                let mut payload = [0u8; 16];
                payload[..8].copy_from_slice(b"sitewtch");
                payload[8..].copy_from_slice(&rand::random::<u64>().to_be_bytes());
                icmp::ping(kind, ip, self.identifier, self.sequence, &payload)
                    .await
                    .map_err(|e| ProbeError::io(&e))
            }
            (Method::Icmp, None) => Err(ProbeError {
                failure: Failure::Error,
                detail: "no ICMP socket kind was detected".into(),
            }),
        }
    }

    async fn resolve(&mut self) -> Result<IpAddr, ProbeError> {
        if let Some(ip) = self.target.endpoint.ip() {
            return Ok(ip);
        }
        let host = self.target.endpoint.host.as_str();
        let looked_up = tokio::net::lookup_host((host, 0))
            .await
            .map(|mut addrs| addrs.next().map(|a| a.ip()));
        match (looked_up, self.resolved) {
            (Ok(Some(ip)), _) => {
                self.resolved = Some(ip);
                Ok(ip)
            }
            (_, Some(previous)) => Ok(previous),
            (Ok(None), None) => Err(ProbeError {
                failure: Failure::Resolve,
                detail: format!("{host} resolves to no address"),
            }),
            (Err(e), None) => Err(ProbeError {
                failure: Failure::Resolve,
                detail: format!("cannot resolve {host}: {e}"),
            }),
        }
    }
}

async fn run_target(mut prober: Prober, index: usize, shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(prober.target.config.interval);
    // A probe that overran is followed by the next one a full interval later.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last: Option<Failure> = None;
    let mut first = true;
    loop {
        ticks.tick().await;
        let ts_ms = unix_ms();
        let outcome = prober.probe().await;
        let name = prober.target.config.name.as_str();
        // Logged on change only: a dead target probed every second is one line.
        match (&outcome, last) {
            (Err(e), previous) if previous != Some(e.failure) => {
                tracing::warn!(target_name = name, reason = e.failure.as_str(), detail = %e.detail, "probe failing");
            }
            (Ok(rtt), Some(_)) => {
                tracing::info!(
                    target_name = name,
                    rtt_ms = rtt.as_secs_f64() * 1e3,
                    "probe answered again"
                );
            }
            (Ok(rtt), None) if first => {
                tracing::debug!(
                    target_name = name,
                    rtt_ms = rtt.as_secs_f64() * 1e3,
                    "probe answered"
                );
            }
            _ => {}
        }
        first = false;
        last = outcome.as_ref().err().map(|e| e.failure);
        let result = ProbeResult {
            ts_ms,
            outcome: outcome.map_err(|e| e.failure),
        };
        shared.record(index, &prober.target.config, result);
    }
}

/// The `net` source.
#[derive(Debug)]
pub struct NetSource {
    targets: Vec<Arc<Target>>,
    icmp: Option<SocketKind>,
    shared: Arc<Shared>,
    /// One task per target, started by the first poll (inside the runtime).
    tasks: Vec<JoinHandle<()>>,
    primed: bool,
}

impl NetSource {
    /// Parses the targets and, when any uses ICMP, finds which ICMP socket this
    /// process may open (failing with what is missing when neither).
    pub fn new(config: &NetSourceConfig) -> Result<Self, SourceError> {
        let targets = config
            .targets
            .iter()
            .map(|t| {
                let endpoint = t.endpoint().map_err(|message| SourceError::Read {
                    what: "a target address",
                    message,
                })?;
                Ok(Arc::new(Target {
                    config: t.clone(),
                    endpoint,
                }))
            })
            .collect::<Result<Vec<_>, SourceError>>()?;
        let icmp = if targets.iter().any(|t| t.config.method() == Method::Icmp) {
            let kind = icmp::detect().map_err(|message| SourceError::Read {
                what: "targets by ICMP",
                message,
            })?;
            tracing::info!(socket = kind.as_str(), "ICMP probes");
            Some(kind)
        } else {
            None
        };
        let states = targets.iter().map(|_| TargetState::default()).collect();
        Ok(NetSource {
            targets,
            icmp,
            shared: Arc::new(Shared {
                states: Mutex::new(states),
                recorded: watch::channel(()).0,
            }),
            tasks: Vec::new(),
            primed: false,
        })
    }

    /// The ICMP socket kind in use (`None` without ICMP targets).
    pub fn icmp_socket(&self) -> Option<SocketKind> {
        self.icmp
    }

    /// Starts the probe tasks, and restarts any that ended (none should: a probe
    /// failure is a result, not the task's end).
    fn ensure_running(&mut self) {
        if self.tasks.is_empty() {
            self.tasks = (0..self.targets.len()).map(|i| self.spawn(i)).collect();
            return;
        }
        for i in 0..self.tasks.len() {
            if self.tasks[i].is_finished() {
                tracing::error!(target_name = %self.targets[i].config.name, "probe task ended; restarting it");
                self.tasks[i] = self.spawn(i);
            }
        }
    }

    fn spawn(&self, index: usize) -> JoinHandle<()> {
        let prober = Prober {
            target: Arc::clone(&self.targets[index]),
            icmp: self.icmp,
            identifier: rand::random(),
            sequence: rand::random(),
            resolved: None,
        };
        tokio::spawn(run_target(prober, index, Arc::clone(&self.shared)))
    }
}

impl Drop for NetSource {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Poll for NetSource {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn poll(&mut self) -> Result<Polled, SourceError> {
        let shared = Arc::clone(&self.shared);
        let mut recorded = shared.recorded.subscribe();
        self.ensure_running();
        if !self.primed {
            // Every probe is bounded by its timeout, and the scheduler bounds this poll.
            let _ = recorded.wait_for(|_| shared.all_probed()).await;
            self.primed = true;
        }
        Ok(shared.readings(&self.targets).into())
    }
}

impl super::Build for NetSource {
    type Config = NetSourceConfig;

    fn build(config: &Self::Config) -> Result<Self, SourceError> {
        NetSource::new(config)
    }
}

#[cfg(test)]
mod tests {
    use super::config::Role;
    use super::*;

    fn find<'a>(readings: &'a [Reading], q: &str) -> &'a Reading {
        readings.iter().find(|r| r.q == q).unwrap()
    }

    fn up(ms: u64) -> ProbeResult {
        ProbeResult {
            ts_ms: 1_000,
            outcome: Ok(Duration::from_millis(ms)),
        }
    }

    fn down(failure: Failure) -> ProbeResult {
        ProbeResult {
            ts_ms: 1_000,
            outcome: Err(failure),
        }
    }

    #[test]
    fn an_answer_is_up_with_its_rtt_labels_and_time() {
        let target = NetTarget::new("tor-r12", "10.0.12.1", Role::Switch);
        let r = readings(&target, &up(12), Some(0.0));
        assert_eq!(r.len(), 3);
        let probe_up = find(&r, "probe_up");
        assert_eq!(
            (probe_up.value, probe_up.state),
            (Some(1.0), ReadingState::Ok)
        );
        assert_eq!(
            (probe_up.src.as_str(), probe_up.dev.as_str()),
            ("net", "tor-r12")
        );
        assert_eq!(probe_up.labels["role"], "switch");
        assert_eq!(probe_up.labels["method"], "icmp");
        assert_eq!(probe_up.labels["address"], "10.0.12.1");
        assert_eq!(probe_up.labels["reason"], "ok");
        assert_eq!(probe_up.ts, Some(1_000));
        let rtt = find(&r, "probe_rtt_seconds");
        assert_eq!((rtt.value, rtt.state), (Some(0.012), ReadingState::Ok));
        assert!(!rtt.labels.contains_key("reason"));
        assert_eq!(find(&r, "probe_loss_ratio").value, Some(0.0));
    }

    #[test]
    fn down_is_critical_for_infrastructure_and_warning_for_a_service() {
        for (role, state) in [
            (Role::Switch, ReadingState::Critical),
            (Role::Router, ReadingState::Critical),
            (Role::Uplink, ReadingState::Critical),
            (Role::PeerSite, ReadingState::Critical),
            (Role::Service, ReadingState::Warning),
        ] {
            let target = NetTarget::new("t", "db:5432", role);
            let r = readings(&target, &down(Failure::Refused), None);
            let probe_up = find(&r, "probe_up");
            assert_eq!(
                (probe_up.value, probe_up.state),
                (Some(0.0), state),
                "{role:?}"
            );
            assert_eq!(probe_up.labels["reason"], "refused");
            assert_eq!(probe_up.labels["method"], "tcp");
            let rtt = find(&r, "probe_rtt_seconds");
            assert_eq!((rtt.value, rtt.state), (None, ReadingState::Unknown));
            assert!(r.iter().all(|r| r.q != "probe_loss_ratio"));
        }
    }

    #[test]
    fn rtt_and_loss_thresholds_set_the_state() {
        let target = NetTarget::new("gw", "192.0.2.1", Role::PeerSite);
        let rtt_state = |ms| find(&readings(&target, &up(ms), None), "probe_rtt_seconds").state;
        assert_eq!(rtt_state(199), ReadingState::Ok);
        assert_eq!(rtt_state(200), ReadingState::Warning);
        assert_eq!(rtt_state(499), ReadingState::Warning);
        assert_eq!(rtt_state(500), ReadingState::Critical);
        let loss_state =
            |loss| find(&readings(&target, &up(1), Some(loss)), "probe_loss_ratio").state;
        assert_eq!(loss_state(0.15), ReadingState::Ok);
        assert_eq!(loss_state(0.2), ReadingState::Warning);
        assert_eq!(loss_state(0.5), ReadingState::Critical);
        assert_eq!(loss_state(1.0), ReadingState::Critical);
    }

    #[test]
    fn the_loss_window_keeps_the_last_probes_within_its_age() {
        let mut w = Window::default();
        let minute = Duration::from_secs(60);
        assert_eq!(w.loss_ratio(0, minute), None);
        for i in 0..20 {
            w.push(i * 1000, i % 4 == 0, 20); // 5 of 20 lost
        }
        assert_eq!(w.loss_ratio(19_000, minute), Some(0.25));
        // Ten more good probes push ten old ones out of the count window (3 lost of those).
        for i in 20..30 {
            w.push(i * 1000, false, 20);
        }
        assert_eq!(w.loss_ratio(29_000, minute), Some(2.0 / 20.0));
        // Age: only probes started within the last 5 s count.
        assert_eq!(w.loss_ratio(29_000, Duration::from_secs(5)), Some(0.0));
        w.push(30_000, true, 20);
        assert_eq!(w.loss_ratio(30_000, Duration::from_secs(1)), Some(0.5));
        // A long silence: nothing in the window is recent.
        assert_eq!(w.loss_ratio(1_000_000, minute), None);
    }

    #[test]
    fn socket_errors_are_classified() {
        let of = |kind: io::ErrorKind| Failure::of(&io::Error::from(kind));
        assert_eq!(of(io::ErrorKind::ConnectionRefused), Failure::Refused);
        assert_eq!(of(io::ErrorKind::TimedOut), Failure::Timeout);
        assert_eq!(of(io::ErrorKind::HostUnreachable), Failure::Unreachable);
        assert_eq!(of(io::ErrorKind::NetworkUnreachable), Failure::Unreachable);
        assert_eq!(
            Failure::of(&io::Error::from_raw_os_error(112)),
            Failure::Unreachable
        );
        assert_eq!(of(io::ErrorKind::PermissionDenied), Failure::Error);
    }
}
