//! The one liveness truth: from what the collector observed of an agent (its MQTT
//! will, its heartbeats, its own state messages) to what sitewatch says of it,
//! applying the policy that belongs to the DR plan rather than to MQTT: the
//! startup grace, maintenance windows and expected hosts.
//!
//! `sitewatch_agent_status`, `GET /api/v1/hosts` and the engine's view of a site
//! ([`crate::causes::SiteView`]) all call [`Policy::host`] and
//! [`Policy::unseen_expected`] with the same inputs, so they cannot disagree.
//!
//! - **Startup grace**: for `startup_grace` after the collector starts, no loss
//!   counts for a signal: the broker is still replaying retained states and
//!   queued batches, and a retained will may be older than an agent that is
//!   already back. The host *is* shown lost (that is what the broker says), but a
//!   loss only raises something once the grace is over, dated at its end if it
//!   began before ([`Policy::counts_lost_since`]). Expected hosts never seen are
//!   not judged before the grace ends: they have had no chance to appear yet.
//! - **Maintenance**: the agent's own `maintenance` status, or a configured window
//!   for the host (or its whole site): never lost.
//! - **Expected hosts** never seen are lost once the grace is over (a server that
//!   died while the collector was down is still a lost server).

use serde::Serialize;

use crate::config::{SignalsConfig, ms};
use crate::snapshot::Liveness;

/// What sitewatch says of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Online,
    /// Its will arrived or it missed its heartbeats on every path it was seen on,
    /// or it is expected and was never seen.
    Lost,
    /// It stopped cleanly.
    Shutdown,
    /// Planned downtime: the agent said so, or a maintenance window is open.
    Maintenance,
    /// Nothing can be said now: every broker it was seen through is unreachable
    /// from this collector. Neither up nor lost.
    Unknown,
}

impl Status {
    /// Every status, in the order `sitewatch_agent_status` writes them.
    pub const ALL: [Status; 5] = [
        Status::Online,
        Status::Lost,
        Status::Shutdown,
        Status::Maintenance,
        Status::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Lost => "lost",
            Status::Shutdown => "shutdown",
            Status::Maintenance => "maintenance",
            Status::Unknown => "unknown",
        }
    }

    /// `sitewatch_agent_up`: only an online agent is up.
    pub fn is_up(self) -> bool {
        self == Status::Online
    }
}

/// A status with the reason and, when lost, since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    /// Lost: `will`, `heartbeat`, `offline` (a state without a reason) or
    /// `never_seen`; shut down: `shutdown`; maintenance: `agent` or `window`;
    /// unknown: `unobserved`.
    pub reason: Option<&'static str>,
    /// When lost: since when (Unix ms, the collector's clock).
    pub since_ms: Option<i64>,
}

impl Verdict {
    const fn of(status: Status, reason: Option<&'static str>) -> Self {
        Verdict {
            status,
            reason,
            since_ms: None,
        }
    }

    /// Whether the host counts as lost.
    pub fn is_lost(&self) -> bool {
        self.status == Status::Lost
    }
}

/// The policy, for one collector (or replay) started at a given instant.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    cfg: &'a SignalsConfig,
    grace_until_ms: i64,
}

impl<'a> Policy<'a> {
    /// The policy of a collector that started at `started_at_ms`.
    pub fn new(cfg: &'a SignalsConfig, started_at_ms: i64) -> Self {
        Policy {
            cfg,
            grace_until_ms: started_at_ms.saturating_add(ms(cfg.startup_grace)),
        }
    }

    pub fn config(&self) -> &'a SignalsConfig {
        self.cfg
    }

    /// When the startup grace ends (Unix ms).
    pub fn grace_until_ms(&self) -> i64 {
        self.grace_until_ms
    }

    /// Whether the startup grace is over at `now_ms`.
    pub fn grace_over(&self, now_ms: i64) -> bool {
        now_ms >= self.grace_until_ms
    }

    /// A host the collector has heard of, as observed at `now_ms`, and the
    /// reason the observation gave (`will`, `heartbeat`, ...) when lost.
    pub fn host(
        &self,
        site: &str,
        host: &str,
        observed: Liveness,
        lost_reason: Option<&'static str>,
        now_ms: i64,
    ) -> Verdict {
        if observed == Liveness::Maintenance {
            return Verdict::of(Status::Maintenance, Some("agent"));
        }
        if self.cfg.in_maintenance(site, Some(host), now_ms) {
            return Verdict::of(Status::Maintenance, Some("window"));
        }
        match observed {
            Liveness::Online => Verdict::of(Status::Online, None),
            Liveness::Shutdown => Verdict::of(Status::Shutdown, Some("shutdown")),
            Liveness::Unobserved => Verdict::of(Status::Unknown, Some("unobserved")),
            Liveness::Lost { since_ms } => Verdict {
                status: Status::Lost,
                reason: Some(lost_reason.unwrap_or("lost")),
                since_ms: Some(since_ms),
            },
            Liveness::Maintenance => Verdict::of(Status::Maintenance, Some("agent")),
        }
    }

    /// When a verdict counts as a loss for the signals: once the grace is over,
    /// since its start at the earliest (a loss observed during the grace may be
    /// older than the collector; it is dated at the grace's end, not at the
    /// restart). `None`: not lost, or not yet.
    pub fn counts_lost_since(&self, verdict: &Verdict, now_ms: i64) -> Option<i64> {
        if !verdict.is_lost() || !self.grace_over(now_ms) {
            return None;
        }
        Some(verdict.since_ms.unwrap_or(now_ms).max(self.grace_until_ms))
    }

    /// The expected hosts of `site` (`[signals.sites.<site>] expected_hosts`) for
    /// which `seen` is false and no maintenance window is open, with their verdict
    /// at `now_ms`: lost since the grace's end once it is over, `None` before
    /// (nothing is known yet, and nothing is lost during the grace).
    pub fn unseen_expected<'s>(
        &self,
        site: &'s str,
        seen: impl Fn(&str) -> bool + 's,
        now_ms: i64,
    ) -> impl Iterator<Item = (&'a str, Option<Verdict>)> + 's
    where
        'a: 's,
    {
        let cfg: &'a SignalsConfig = self.cfg;
        let verdict = self.grace_over(now_ms).then_some(Verdict {
            status: Status::Lost,
            reason: Some("never_seen"),
            since_ms: Some(self.grace_until_ms),
        });
        cfg.sites
            .get(site)
            .into_iter()
            .flat_map(|s| s.expected_hosts.iter())
            .filter(move |h| !seen(h) && !cfg.in_maintenance(site, Some(h), now_ms))
            .map(move |h| (h.as_str(), verdict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> SignalsConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_loss_during_the_grace_is_shown_but_counts_only_after_it_dated_at_its_end() {
        let c = cfg("startup_grace = \"30s\"");
        let p = Policy::new(&c, 1_000_000);
        let lost = Liveness::Lost { since_ms: 990_000 };
        let v = p.host("bj1", "web-01", lost, Some("will"), 1_029_999);
        assert_eq!((v.status, v.reason), (Status::Lost, Some("will")));
        assert_eq!(v.since_ms, Some(990_000));
        assert_eq!(p.counts_lost_since(&v, 1_029_999), None);
        let v = p.host("bj1", "web-01", lost, Some("will"), 1_030_000);
        assert_eq!(p.counts_lost_since(&v, 1_030_000), Some(1_030_000));
        let later = Liveness::Lost {
            since_ms: 1_040_000,
        };
        let v = p.host("bj1", "web-01", later, None, 1_050_000);
        assert_eq!(p.counts_lost_since(&v, 1_050_000), Some(1_040_000));
        let online = p.host("bj1", "web-01", Liveness::Online, None, 1_050_000);
        assert_eq!(p.counts_lost_since(&online, 1_050_000), None);
    }

    #[test]
    fn maintenance_from_the_agent_or_a_window_is_never_lost() {
        let c =
            cfg("[[maintenance]]\nsite = \"bj1\"\nhost = \"db-01\"\nstart = 0\nend = 2000000\n");
        let p = Policy::new(&c, 0);
        let lost = Liveness::Lost { since_ms: 0 };
        let v = p.host("bj1", "db-01", lost, Some("will"), 1_000_000);
        assert_eq!((v.status, v.reason), (Status::Maintenance, Some("window")));
        let v = p.host("bj1", "web-01", Liveness::Maintenance, None, 1_000_000);
        assert_eq!((v.status, v.reason), (Status::Maintenance, Some("agent")));
        let v = p.host("bj1", "db-01", lost, Some("will"), 3_000_000);
        assert_eq!(v.status, Status::Lost);
    }

    #[test]
    fn expected_hosts_never_seen_are_lost_after_the_grace_only() {
        let c = cfg("[sites.bj1]\nexpected_hosts = [\"web-01\", \"web-02\"]\n");
        let p = Policy::new(&c, 0);
        let seen = |h: &str| h == "web-01";
        let during: Vec<_> = p.unseen_expected("bj1", seen, 10_000).collect();
        assert_eq!(during, [("web-02", None)]);
        let after: Vec<_> = p.unseen_expected("bj1", seen, 30_000).collect();
        assert_eq!(after.len(), 1);
        let v = after[0].1.unwrap();
        assert_eq!((v.status, v.reason), (Status::Lost, Some("never_seen")));
        assert_eq!(v.since_ms, Some(30_000));
        assert_eq!(p.unseen_expected("sh1", seen, 30_000).count(), 0);
    }

    #[test]
    fn unobserved_is_neither_up_nor_lost() {
        let c = SignalsConfig::default();
        let p = Policy::new(&c, 0);
        let v = p.host("bj1", "web-01", Liveness::Unobserved, None, 100_000);
        assert_eq!(v.status, Status::Unknown);
        assert!(!v.status.is_up() && !v.is_lost());
    }
}
