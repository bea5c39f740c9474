//! Agent liveness as a pure function of what each path last carried and the
//! time now; the policy on top (startup grace, maintenance windows, expected
//! hosts) is `sitewatch_signals::liveness`, the one truth the metrics, the API
//! and the engine all read (see [`Liveness::verdict`]).
//!
//! No timer marks an agent lost: whoever reads (a scrape, the API, the signals
//! engine) asks with its own `now`, so a replay on a simulated clock gets exactly
//! what the live collector would have said.
//!
//! # Paths
//!
//! A collector may consume several brokers (a dual-homed agent publishes to each
//! of them): each broker is a *path*, and the collector keeps per host and path
//! what that path last carried ([`PathFacts`]). The DR plan's rule, per path: an
//! agent sends a readings message at least every `interval_ms` (its heartbeat);
//! three missed intervals or its MQTT will mark it lost *on that path*. Then:
//!
//! - **Online** if any path sees it online: a broker that lost it (its own link
//!   to the agent died) is not the agent dying.
//! - **Lost** when no path sees it online and at least one observed the loss (a
//!   will, or silence on a connected path); since the moment the last path lost it.
//! - **Unobserved** when every path it was seen on belongs to a broker this
//!   collector cannot reach now: the collector's own blindness says nothing
//!   about the agent.
//! - What the agent says of itself (`maintenance`, a clean `shutdown`) holds on
//!   every path: the most recent state message decides.
//!
//! A path whose link came back counts its heartbeat window from the reconnection:
//! while the collector was away it heard nobody, and the broker is now replaying.

use sitewatch_protocol::{OfflineReason, Status as Announced};
pub use sitewatch_signals::liveness::{Status as AgentStatus, Verdict};
use sitewatch_signals::{Liveness as Observed, Policy};

/// One broker path, as the state numbers them (index into the link table).
pub type PathId = u8;

/// What the agent itself last said on its state topic over one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// No state message yet on this path: the host is known from its readings
    /// only (another publisher, or the birth not received). Treated as online.
    Nothing,
    Online,
    Offline(Option<OfflineReason>),
    Maintenance,
}

impl Reported {
    /// From a state message's status and reason.
    pub fn from_state(status: Announced, reason: Option<OfflineReason>) -> Self {
        match status {
            Announced::Online => Reported::Online,
            Announced::Offline => Reported::Offline(reason),
            Announced::Maintenance => Reported::Maintenance,
        }
    }
}

/// What one path carried of one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathFacts {
    pub path: PathId,
    pub reported: Reported,
    /// When the last state message arrived on this path (the collector's clock).
    pub reported_at_ms: i64,
    /// When this path last carried anything from the agent (the collector's
    /// clock: an agent's clock may be off, the heartbeat rule must not depend on it).
    pub last_heard_ms: i64,
    /// Whether readings arrived on this path since its last state message.
    pub readings_heard: bool,
}

impl PathFacts {
    pub fn new(path: PathId, now_ms: i64) -> Self {
        PathFacts {
            path,
            reported: Reported::Nothing,
            reported_at_ms: now_ms,
            last_heard_ms: now_ms,
            readings_heard: false,
        }
    }
}

/// A broker link as liveness needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathState {
    pub connected: bool,
    /// Since when the link has been up (Unix ms); meaningful when connected.
    pub since_ms: i64,
}

impl PathState {
    /// A link that has always been up (a replay, a test).
    pub const ALWAYS: PathState = PathState {
        connected: true,
        since_ms: i64::MIN,
    };
}

/// The heartbeat rule's parameters, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Missed heartbeats after which an online agent is lost (default 3).
    pub lost_after_missed_heartbeats: u32,
    /// The heartbeat assumed when an agent did not announce its `interval_ms`.
    pub default_interval_ms: u64,
    /// With a shared subscription a collector sees only part of each agent's
    /// readings; it then judges the heartbeat only of agents whose readings it has
    /// received since their birth (see `link/mod.rs`).
    pub heartbeat_needs_readings: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            lost_after_missed_heartbeats: 3,
            default_interval_ms: 60_000,
            heartbeat_needs_readings: false,
        }
    }
}

/// The observed liveness with the reason a loss was observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub observed: Observed,
    /// `will`, `heartbeat` or `offline` when lost.
    pub reason: Option<&'static str>,
}

impl Liveness {
    /// What sitewatch says of the host, the policy applied.
    pub fn verdict(self, policy: &Policy<'_>, site: &str, host: &str, now_ms: i64) -> Verdict {
        policy.host(site, host, self.observed, self.reason, now_ms)
    }
}

/// One path's own verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathVerdict {
    Online,
    Lost {
        since_ms: i64,
        reason: &'static str,
    },
    /// The link is down: nothing known.
    Unknown,
    /// An old shutdown or maintenance statement superseded on another path.
    Silent,
}

/// The agent's observed liveness at `now_ms`, from its paths. `links` is indexed
/// by [`PathId`]; a path beyond it counts as always connected.
pub fn observe(
    paths: &[PathFacts],
    links: &[PathState],
    interval_ms: Option<u64>,
    rules: &Rules,
    now_ms: i64,
) -> Liveness {
    let latest = paths
        .iter()
        .filter(|p| p.reported != Reported::Nothing)
        .max_by_key(|p| p.reported_at_ms);
    match latest.map(|p| p.reported) {
        Some(Reported::Maintenance) => {
            return Liveness {
                observed: Observed::Maintenance,
                reason: None,
            };
        }
        Some(Reported::Offline(Some(OfflineReason::Shutdown))) => {
            return Liveness {
                observed: Observed::Shutdown,
                reason: Some("shutdown"),
            };
        }
        _ => {}
    }
    let mut lost: Option<(i64, &'static str)> = None;
    let mut unknown = false;
    for p in paths {
        let link = links
            .get(usize::from(p.path))
            .copied()
            .unwrap_or(PathState::ALWAYS);
        match path_verdict(p, link, interval_ms, rules, now_ms) {
            PathVerdict::Online => {
                return Liveness {
                    observed: Observed::Online,
                    reason: None,
                };
            }
            PathVerdict::Lost { since_ms, reason } => {
                if lost.is_none_or(|(s, _)| since_ms >= s) {
                    lost = Some((since_ms, reason));
                }
            }
            PathVerdict::Unknown => unknown = true,
            PathVerdict::Silent => {}
        }
    }
    match (lost, unknown) {
        (Some((since_ms, reason)), _) => Liveness {
            observed: Observed::Lost { since_ms },
            reason: Some(reason),
        },
        (None, true) => Liveness {
            observed: Observed::Unobserved,
            reason: None,
        },
        // Only superseded statements: the agent's last word on any path. With no
        // path at all (cannot happen for a stored host), nothing says it is gone.
        (None, false) => Liveness {
            observed: Observed::Online,
            reason: None,
        },
    }
}

/// The first instant after `now_ms` at which [`observe`] may say something
/// else of these paths with nothing new heard and the links as they are: the
/// earliest heartbeat deadline not yet passed. `None`: only a message or a
/// link change can change it. Conservative: a deadline on one path may change
/// nothing while another path is online.
pub fn next_change_ms(
    paths: &[PathFacts],
    links: &[PathState],
    interval_ms: Option<u64>,
    rules: &Rules,
    now_ms: i64,
) -> Option<i64> {
    paths
        .iter()
        .filter(|p| matches!(p.reported, Reported::Online | Reported::Nothing))
        .filter_map(|p| {
            let link = links
                .get(usize::from(p.path))
                .copied()
                .unwrap_or(PathState::ALWAYS);
            if !link.connected || (rules.heartbeat_needs_readings && !p.readings_heard) {
                return None;
            }
            let deadline = heartbeat_window_end(p, link, interval_ms, rules);
            // Lost once now > deadline: the change happens at deadline + 1.
            (deadline >= now_ms).then(|| deadline.saturating_add(1))
        })
        .min()
}

/// When the heartbeat window of a path ends: its last word plus the missed
/// heartbeats tolerated.
fn heartbeat_window_end(
    p: &PathFacts,
    link: PathState,
    interval_ms: Option<u64>,
    rules: &Rules,
) -> i64 {
    let interval = interval_ms.unwrap_or(rules.default_interval_ms);
    let window = interval.saturating_mul(u64::from(rules.lost_after_missed_heartbeats));
    let heard = p.last_heard_ms.max(link.since_ms);
    heard.saturating_add(i64::try_from(window).unwrap_or(i64::MAX))
}

fn path_verdict(
    p: &PathFacts,
    link: PathState,
    interval_ms: Option<u64>,
    rules: &Rules,
    now_ms: i64,
) -> PathVerdict {
    if !link.connected {
        return PathVerdict::Unknown;
    }
    match p.reported {
        Reported::Offline(Some(OfflineReason::Lost)) => PathVerdict::Lost {
            since_ms: p.reported_at_ms,
            reason: "will",
        },
        // An offline message without a reason is not a planned stop as far as
        // anyone can tell: treat it like a will.
        Reported::Offline(None) => PathVerdict::Lost {
            since_ms: p.reported_at_ms,
            reason: "offline",
        },
        Reported::Offline(Some(OfflineReason::Shutdown)) | Reported::Maintenance => {
            PathVerdict::Silent
        }
        Reported::Online | Reported::Nothing => {
            match heartbeat_deadline(p, link, interval_ms, rules, now_ms) {
                Some(deadline) => PathVerdict::Lost {
                    since_ms: deadline,
                    reason: "heartbeat",
                },
                None => PathVerdict::Online,
            }
        }
    }
}

/// The deadline that passed, when the agent missed its heartbeats on a path.
fn heartbeat_deadline(
    p: &PathFacts,
    link: PathState,
    interval_ms: Option<u64>,
    rules: &Rules,
    now_ms: i64,
) -> Option<i64> {
    if rules.heartbeat_needs_readings && !p.readings_heard {
        return None;
    }
    let deadline = heartbeat_window_end(p, link, interval_ms, rules);
    // Lost once the deadline has passed: 3 intervals of silence are still tolerated
    // (the third heartbeat may be on its way), a moment more is not.
    (now_ms > deadline).then_some(deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online(path: PathId, last_heard_ms: i64) -> PathFacts {
        PathFacts {
            path,
            reported: Reported::Online,
            reported_at_ms: 0,
            last_heard_ms,
            readings_heard: true,
        }
    }

    fn obs(paths: &[PathFacts], links: &[PathState], now: i64) -> Liveness {
        observe(paths, links, Some(5_000), &Rules::default(), now)
    }

    const UP: PathState = PathState::ALWAYS;
    const DOWN: PathState = PathState {
        connected: false,
        since_ms: 0,
    };

    #[test]
    fn online_agent_is_lost_after_three_missed_heartbeats() {
        let facts = [online(0, 100_000)];
        for now in [100_000, 105_000, 114_999, 115_000] {
            assert_eq!(obs(&facts, &[UP], now).observed, Observed::Online);
        }
        let lost = obs(&facts, &[UP], 115_001);
        assert_eq!(lost.observed, Observed::Lost { since_ms: 115_000 });
        assert_eq!(lost.reason, Some("heartbeat"));
    }

    #[test]
    fn will_means_lost_at_once_and_shutdown_is_not_lost() {
        let mut f = online(0, 0);
        f.reported = Reported::Offline(Some(OfflineReason::Lost));
        let l = obs(&[f], &[UP], 1);
        assert_eq!(l.observed, Observed::Lost { since_ms: 0 });
        assert_eq!(l.reason, Some("will"));
        f.reported = Reported::Offline(Some(OfflineReason::Shutdown));
        assert_eq!(obs(&[f], &[UP], 1).observed, Observed::Shutdown);
        f.reported = Reported::Offline(None);
        assert_eq!(obs(&[f], &[UP], 1).reason, Some("offline"));
    }

    #[test]
    fn maintenance_never_becomes_lost() {
        let mut f = online(0, 0);
        f.reported = Reported::Maintenance;
        assert_eq!(obs(&[f], &[UP], 10_000_000).observed, Observed::Maintenance);
    }

    #[test]
    fn unknown_interval_uses_the_default() {
        let mut f = online(0, 0);
        f.reported = Reported::Nothing;
        let rules = Rules::default();
        assert_eq!(
            observe(&[f], &[UP], None, &rules, 180_000).observed,
            Observed::Online
        );
        assert_eq!(
            observe(&[f], &[UP], None, &rules, 180_001).reason,
            Some("heartbeat")
        );
    }

    #[test]
    fn shared_subscription_judges_only_agents_whose_readings_arrive_here() {
        let rules = Rules {
            heartbeat_needs_readings: true,
            ..Rules::default()
        };
        let mut f = online(0, 0);
        f.readings_heard = false;
        let l = observe(&[f], &[UP], Some(5_000), &rules, 1_000_000);
        assert_eq!(l.observed, Observed::Online);
        f.readings_heard = true;
        let l = observe(&[f], &[UP], Some(5_000), &rules, 1_000_000);
        assert_eq!(l.reason, Some("heartbeat"));
    }

    #[test]
    fn an_agent_is_lost_only_when_lost_on_every_path() {
        let mut a = online(0, 0);
        a.reported = Reported::Offline(Some(OfflineReason::Lost));
        a.reported_at_ms = 50_000;
        let b = online(1, 100_000);
        assert_eq!(obs(&[a, b], &[UP, UP], 110_000).observed, Observed::Online);
        // The second path falls silent too: lost since the later of the two.
        let l = obs(&[a, b], &[UP, UP], 116_000);
        assert_eq!(l.observed, Observed::Lost { since_ms: 115_000 });
        assert_eq!(l.reason, Some("heartbeat"));
    }

    #[test]
    fn a_path_whose_broker_is_unreachable_is_unknown_not_lost() {
        let f = online(0, 0);
        assert_eq!(obs(&[f], &[DOWN], 1_000_000).observed, Observed::Unobserved);
        // ...but a loss seen on another path still stands.
        let mut b = online(1, 0);
        b.reported = Reported::Offline(Some(OfflineReason::Lost));
        let l = obs(&[f, b], &[DOWN, UP], 1_000_000);
        assert_eq!(l.observed, Observed::Lost { since_ms: 0 });
    }

    #[test]
    fn a_reconnected_path_counts_its_window_from_the_reconnection() {
        let f = online(0, 0);
        let back = PathState {
            connected: true,
            since_ms: 100_000,
        };
        assert_eq!(obs(&[f], &[back], 110_000).observed, Observed::Online);
        assert_eq!(
            obs(&[f], &[back], 115_001).observed,
            Observed::Lost { since_ms: 115_000 }
        );
    }

    #[test]
    fn the_latest_statement_of_the_agent_holds_on_every_path() {
        // Shut down cleanly on path 1 after path 0's broker had fired its will.
        let mut a = online(0, 0);
        a.reported = Reported::Offline(Some(OfflineReason::Lost));
        a.reported_at_ms = 10_000;
        let mut b = online(1, 20_000);
        b.reported = Reported::Offline(Some(OfflineReason::Shutdown));
        b.reported_at_ms = 20_000;
        assert_eq!(obs(&[a, b], &[UP, UP], 30_000).observed, Observed::Shutdown);
        // Back online on path 0 only: the old shutdown on path 1 is superseded.
        a.reported = Reported::Online;
        a.reported_at_ms = 40_000;
        a.last_heard_ms = 40_000;
        assert_eq!(obs(&[a, b], &[UP, UP], 41_000).observed, Observed::Online);
    }
}
