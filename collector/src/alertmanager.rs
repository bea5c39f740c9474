//! Pushing the active signals to Alertmanager (`POST /api/v2/alerts`).
//!
//! The decisions are a pure [`Book`] (what to send at `now`, given the signals
//! active then and what was sent before); the I/O is one task per configured
//! Alertmanager that, every second, asks its book what is due and posts it.
//!
//! - Each published signal is one alert, labelled `alertname` (`Sitewatch<Cause>`,
//!   e.g. `SitewatchPower`), `site`, `level`, `cause`, `subject`, `severity`, and
//!   `region` when the site has one (so that the example configuration's L4 -> L3
//!   inhibition, `equal: [region]`, matches). Annotations: `summary` (the signal's
//!   one-line summary) and `description` (all its evidence, one per line).
//! - `startsAt` is the signal's `since`. An active alert is sent when it appears and
//!   again every `resend_interval`, with `endsAt` = now + 4 x `resend_interval`:
//!   Alertmanager keeps it firing between pushes, and resolves it by itself if
//!   the collector dies.
//! - A signal that clears is sent once more with `endsAt` = the time it cleared:
//!   resolved. A change of severity (an advisory becoming an alarm) is a new label
//!   set, so the old one is resolved the same way.
//! - Inhibited L2s are not published by the engine (they are evidence of their L3),
//!   so they are not pushed either.
//! - A failed push is retried at the next tick (1 s) with what is due then; it is
//!   counted in `sitewatch_collector_alertmanager_errors_total{kind}`, alerts
//!   accepted in `sitewatch_collector_alertmanager_alerts_sent_total`. Each request
//!   has a timeout, and each Alertmanager its own task: a dead one never delays
//!   another, nor the engine, nor ingest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::Serialize;
use sitewatch_protocol::{Cause, Evidence, Signal};
use tokio::sync::watch;

use crate::config::AlertmanagerSettings;
use crate::signals::ActiveSignals;
use crate::{Clock, Error};

/// How often each task looks for due alerts (and retries a failed push).
pub const TICK: Duration = Duration::from_secs(1);
/// `endsAt` is this many resend intervals ahead of each push.
pub const ENDS_AT_INTERVALS: i64 = 4;

/// The alert name of a cause: `Sitewatch` + the cause in CamelCase.
pub fn alertname(cause: Cause) -> String {
    let mut name = String::from("Sitewatch");
    for word in cause.as_str().split('_') {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            name.extend(first.to_uppercase());
            name.push_str(chars.as_str());
        }
    }
    name
}

/// One alert as Alertmanager's v2 API takes it (`postableAlert`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
}

/// An alert's identity: its label set.
type AlertKey = BTreeMap<String, String>;

#[derive(Debug, Clone)]
struct Entry {
    annotations: BTreeMap<String, String>,
    starts_at_ms: i64,
    /// When it was last accepted by Alertmanager.
    sent_ms: Option<i64>,
    /// When its signal stopped being published: sent once more, then forgotten.
    resolved_ms: Option<i64>,
}

/// What has been sent, and what is due.
#[derive(Debug, Clone)]
pub struct Book {
    resend_ms: i64,
    regions: BTreeMap<String, String>,
    entries: BTreeMap<AlertKey, Entry>,
}

impl Book {
    pub fn new(resend_interval: Duration, regions: BTreeMap<String, String>) -> Self {
        Book {
            resend_ms: i64::try_from(resend_interval.as_millis()).unwrap_or(i64::MAX),
            regions,
            entries: BTreeMap::new(),
        }
    }

    /// The label set of a signal.
    pub fn labels(&self, s: &Signal) -> AlertKey {
        let mut labels = BTreeMap::from([
            ("alertname".to_owned(), alertname(s.cause)),
            ("site".to_owned(), s.site.clone()),
            ("level".to_owned(), s.level.as_str().to_owned()),
            ("cause".to_owned(), s.cause.as_str().to_owned()),
            ("subject".to_owned(), s.subject.clone()),
            ("severity".to_owned(), s.severity.as_str().to_owned()),
        ]);
        let region = match s.cause {
            // An L4's subject is its region.
            Cause::Region => Some(s.subject.clone()),
            _ => self.regions.get(&s.site).cloned(),
        };
        if let Some(region) = region {
            labels.insert("region".to_owned(), region);
        }
        labels
    }

    /// Takes in the signals active at `now_ms`: new ones become due, missing ones
    /// are resolved (due once more).
    pub fn update(&mut self, active: &[Signal], now_ms: i64) {
        let mut seen: Vec<AlertKey> = Vec::with_capacity(active.len());
        for s in active {
            let key = self.labels(s);
            let annotations = annotations(s);
            match self.entries.get_mut(&key) {
                Some(e) => {
                    // Evidence changes (a host lost for 40 s, then 41 s) are sent
                    // with the next resend, not as a push of their own.
                    e.annotations = annotations;
                    e.starts_at_ms = s.since;
                    if e.resolved_ms.take().is_some() {
                        // Back before its resolution was sent: due again at once.
                        e.sent_ms = None;
                    }
                }
                None => {
                    self.entries.insert(
                        key.clone(),
                        Entry {
                            annotations,
                            starts_at_ms: s.since,
                            sent_ms: None,
                            resolved_ms: None,
                        },
                    );
                }
            }
            seen.push(key);
        }
        for (key, e) in &mut self.entries {
            if e.resolved_ms.is_none() && !seen.contains(key) {
                e.resolved_ms = Some(now_ms);
            }
        }
    }

    /// The alerts due at `now_ms`, with their keys for [`Book::sent`].
    pub fn due(&self, now_ms: i64) -> Vec<(AlertKey, PostableAlert)> {
        self.entries
            .iter()
            .filter(|(_, e)| {
                e.resolved_ms.is_some()
                    || e.sent_ms
                        .is_none_or(|at| now_ms.saturating_sub(at) >= self.resend_ms)
            })
            .map(|(key, e)| {
                let ends_at = e.resolved_ms.unwrap_or_else(|| {
                    now_ms.saturating_add(self.resend_ms.saturating_mul(ENDS_AT_INTERVALS))
                });
                let alert = PostableAlert {
                    labels: key.clone(),
                    annotations: e.annotations.clone(),
                    starts_at: rfc3339(e.starts_at_ms),
                    // Never before startsAt: Alertmanager refuses such an alert.
                    ends_at: rfc3339(ends_at.max(e.starts_at_ms)),
                };
                (key.clone(), alert)
            })
            .collect()
    }

    /// Records that these alerts were accepted at `now_ms`; resolved ones are done.
    pub fn sent(&mut self, keys: &[AlertKey], now_ms: i64) {
        for key in keys {
            let done = match self.entries.get_mut(key) {
                Some(e) if e.resolved_ms.is_some() => true,
                Some(e) => {
                    e.sent_ms = Some(now_ms);
                    false
                }
                None => false,
            };
            if done {
                self.entries.remove(key);
            }
        }
    }

    /// Alerts tracked (active, or resolved and not yet sent).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn annotations(s: &Signal) -> BTreeMap<String, String> {
    let lines: Vec<&str> = s
        .evidence
        .iter()
        .map(|e| match e {
            Evidence::Text(t) => t.as_str(),
            Evidence::Detail(d) => d.summary.as_str(),
        })
        .collect();
    let summary = lines.first().map_or_else(
        || format!("{} {} {}", s.level, s.cause, s.subject),
        |l| (*l).to_owned(),
    );
    BTreeMap::from([
        ("summary".to_owned(), summary),
        (
            "description".to_owned(),
            format!(
                "{} {} at {} ({}): {}",
                s.level,
                s.cause,
                s.site,
                s.subject,
                lines.join("\n")
            ),
        ),
    ])
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    let t = u64::try_from(ms).map_or(UNIX_EPOCH, |ms| UNIX_EPOCH + Duration::from_millis(ms));
    humantime::format_rfc3339_millis(t).to_string()
}

/// Why a push failed: the `kind` label of the errors counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    Connect,
    Timeout,
    /// Alertmanager answered with a non-2xx status.
    Status,
    Other,
}

impl PushError {
    pub const ALL: [PushError; 4] = [
        PushError::Connect,
        PushError::Timeout,
        PushError::Status,
        PushError::Other,
    ];

    pub fn kind(self) -> &'static str {
        match self {
            PushError::Connect => "connect",
            PushError::Timeout => "timeout",
            PushError::Status => "status",
            PushError::Other => "other",
        }
    }
}

/// The push counters, shared with `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    pub alerts_sent: AtomicU64,
    /// Indexed like [`PushError::ALL`].
    pub errors: [AtomicU64; 4],
}

impl Stats {
    pub fn error(&self, e: PushError) {
        if let Some(i) = PushError::ALL.iter().position(|k| *k == e) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The HTTP client for the configured Alertmanagers (reads secrets and CA now).
pub fn client(settings: &AlertmanagerSettings) -> Result<(reqwest::Client, Option<String>), Error> {
    let authorization = settings.read_secret()?;
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .user_agent(concat!("sitewatch-collector/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &settings.tls_ca {
        let pem = std::fs::read(ca).map_err(|source| Error::FileRead {
            path: ca.clone(),
            what: "the CA file (alertmanager.tls.ca)",
            source,
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Error::Tls(format!("{}: {e}", ca.display())))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder
        .build()
        .map_err(|e| Error::Tls(format!("Alertmanager client: {e}")))?;
    Ok((client, authorization))
}

/// One Alertmanager to push to, and how.
#[derive(Debug, Clone)]
pub struct Pusher {
    pub base_url: String,
    pub settings: AlertmanagerSettings,
    pub client: reqwest::Client,
    /// The `Authorization` header, secrets read.
    pub authorization: Option<String>,
    /// Site -> region, for the alerts' `region` label.
    pub regions: BTreeMap<String, String>,
    pub stats: Arc<Stats>,
    pub clock: Clock,
}

/// Pushes to one Alertmanager until the process stops.
pub async fn run(pusher: Pusher, mut active: watch::Receiver<ActiveSignals>) {
    let Pusher {
        base_url,
        settings,
        client,
        authorization,
        regions,
        stats,
        clock,
    } = pusher;
    let url = format!("{base_url}/api/v2/alerts");
    let mut book = Book::new(settings.resend_interval, regions);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error: Option<(PushError, Instant)> = None;
    loop {
        tick.tick().await;
        let current = active.borrow_and_update().clone();
        // Nothing is known before the engine's first evaluation.
        if current.now_ms != 0 {
            book.update(&current.signals, current.now_ms);
        }
        let now = clock.now_ms();
        let due = book.due(now);
        if due.is_empty() {
            continue;
        }
        let (keys, alerts): (Vec<AlertKey>, Vec<PostableAlert>) = due.into_iter().unzip();
        match post(&client, &url, authorization.as_deref(), &alerts).await {
            Ok(()) => {
                book.sent(&keys, now);
                stats
                    .alerts_sent
                    .fetch_add(alerts.len() as u64, Ordering::Relaxed);
                if last_error.take().is_some() {
                    tracing::info!(url = base_url, "Alertmanager reachable again");
                }
                tracing::debug!(url = base_url, alerts = alerts.len(), "alerts pushed");
            }
            Err((kind, message)) => {
                stats.error(kind);
                // Logged on change and then once a minute, not every second.
                let log = match last_error {
                    Some((k, at)) => k != kind || at.elapsed() >= Duration::from_secs(60),
                    None => true,
                };
                if log {
                    last_error = Some((kind, Instant::now()));
                    tracing::warn!(
                        url = base_url,
                        kind = kind.kind(),
                        error = message,
                        pending = alerts.len(),
                        "cannot push alerts to Alertmanager; retrying"
                    );
                }
            }
        }
    }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    authorization: Option<&str>,
    alerts: &[PostableAlert],
) -> Result<(), (PushError, String)> {
    let body = serde_json::to_vec(alerts).map_err(|e| (PushError::Other, e.to_string()))?;
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(auth) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, auth);
    }
    let response = request.send().await.map_err(|e| {
        let kind = if e.is_timeout() {
            PushError::Timeout
        } else if e.is_connect() {
            PushError::Connect
        } else {
            PushError::Other
        };
        (kind, e.to_string())
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().take(300).collect();
    Err((PushError::Status, format!("HTTP {status}: {text}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitewatch_protocol::{Level, Severity};

    fn signal(cause: Cause, subject: &str, severity: Severity, since: i64) -> Signal {
        Signal {
            site: "bj1".into(),
            level: cause.level(),
            cause,
            subject: subject.into(),
            severity,
            since,
            evidence: vec![
                Evidence::Text("bj1: on battery for 25s, no generator".into()),
                Evidence::Text("ups-a on battery".into()),
            ],
        }
    }

    fn book() -> Book {
        Book::new(
            Duration::from_secs(30),
            BTreeMap::from([("bj1".to_owned(), "cn-north".to_owned())]),
        )
    }

    #[test]
    fn alert_names_are_sitewatch_and_the_cause_in_camel_case() {
        assert_eq!(alertname(Cause::Power), "SitewatchPower");
        assert_eq!(alertname(Cause::HostResources), "SitewatchHostResources");
        assert_eq!(alertname(Cause::NetworkDevice), "SitewatchNetworkDevice");
    }

    #[test]
    fn a_new_signal_is_pushed_with_labels_annotations_and_ends_at_four_intervals_ahead() {
        let mut b = book();
        let s = signal(Cause::Power, "bj1", Severity::Critical, 1_000);
        b.update(std::slice::from_ref(&s), 21_000);
        let due = b.due(21_000);
        assert_eq!(due.len(), 1);
        let a = &due[0].1;
        let label = |k: &str| a.labels.get(k).map(String::as_str);
        assert_eq!(label("alertname"), Some("SitewatchPower"));
        assert_eq!(label("site"), Some("bj1"));
        assert_eq!(label("level"), Some("L3"));
        assert_eq!(label("cause"), Some("power"));
        assert_eq!(label("subject"), Some("bj1"));
        assert_eq!(label("severity"), Some("critical"));
        assert_eq!(label("region"), Some("cn-north"));
        assert_eq!(
            a.annotations.get("summary").map(String::as_str),
            Some("bj1: on battery for 25s, no generator")
        );
        assert!(a.annotations["description"].contains("ups-a on battery"));
        assert_eq!(a.starts_at, "1970-01-01T00:00:01.000Z");
        assert_eq!(a.ends_at, rfc3339(21_000 + 120_000));
    }

    #[test]
    fn an_active_alert_is_resent_every_interval_and_not_in_between() {
        let mut b = book();
        let s = vec![signal(Cause::Power, "bj1", Severity::Critical, 0)];
        b.update(&s, 1_000);
        let keys: Vec<_> = b.due(1_000).into_iter().map(|d| d.0).collect();
        b.sent(&keys, 1_000);
        for t in [2_000, 15_000, 30_999] {
            b.update(&s, t);
            assert!(b.due(t).is_empty(), "nothing due at {t}");
        }
        b.update(&s, 31_000);
        assert_eq!(b.due(31_000).len(), 1);
    }

    #[test]
    fn a_failed_push_is_due_again_at_the_next_tick() {
        let mut b = book();
        let s = vec![signal(Cause::Power, "bj1", Severity::Critical, 0)];
        b.update(&s, 1_000);
        assert_eq!(b.due(1_000).len(), 1);
        // Not acknowledged: still due a second later.
        b.update(&s, 2_000);
        assert_eq!(b.due(2_000).len(), 1);
    }

    #[test]
    fn a_cleared_signal_is_pushed_once_resolved_then_forgotten() {
        let mut b = book();
        let s = vec![signal(Cause::Power, "bj1", Severity::Critical, 0)];
        b.update(&s, 1_000);
        let keys: Vec<_> = b.due(1_000).into_iter().map(|d| d.0).collect();
        b.sent(&keys, 1_000);
        b.update(&[], 5_000);
        let due = b.due(6_000);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.ends_at, rfc3339(5_000));
        let keys: Vec<_> = due.into_iter().map(|d| d.0).collect();
        b.sent(&keys, 6_000);
        assert!(b.is_empty());
        assert!(b.due(7_000).is_empty());
    }

    #[test]
    fn an_escalation_resolves_the_advisory_and_fires_the_alarm() {
        let mut b = book();
        b.update(&[signal(Cause::Cooling, "bj1", Severity::Low, 0)], 1_000);
        let keys: Vec<_> = b.due(1_000).into_iter().map(|d| d.0).collect();
        b.sent(&keys, 1_000);
        b.update(
            &[signal(Cause::Cooling, "bj1", Severity::Critical, 0)],
            2_000,
        );
        let due = b.due(2_000);
        assert_eq!(due.len(), 2);
        let by_severity = |sev: &str| {
            due.iter()
                .find(|d| d.1.labels["severity"] == sev)
                .map(|d| d.1.ends_at.clone())
                .unwrap()
        };
        assert_eq!(by_severity("low"), rfc3339(2_000));
        assert_eq!(by_severity("critical"), rfc3339(2_000 + 120_000));
    }

    #[test]
    fn the_l4_carries_its_region_and_serializes_as_the_v2_api_wants() {
        let b = book();
        let mut s = signal(Cause::Region, "cn-north", Severity::Critical, 0);
        s.level = Level::L4;
        let labels = b.labels(&s);
        assert_eq!(labels["region"], "cn-north");
        assert_eq!(labels["alertname"], "SitewatchRegion");
        let mut b = book();
        b.update(&[s], 1_000);
        let json = serde_json::to_value(b.due(1_000)[0].1.clone()).unwrap();
        assert!(json.get("startsAt").is_some() && json.get("endsAt").is_some());
        assert_eq!(json["labels"]["level"], "L4");
    }
}
