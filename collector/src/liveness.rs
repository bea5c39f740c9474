//! Agent liveness as a pure function of what was last reported and the time now.
//!
//! No timer marks an agent lost: whoever reads (a scrape, the API, the signals
//! engine) asks [`liveness`] with its own `now`, so a replay on a simulated clock
//! gets exactly what the live collector would have said.
//!
//! The DR plan's rule: an agent sends a readings message at least every
//! `interval_ms` (its heartbeat); three missed intervals or its MQTT will mark it
//! lost. A clean stop is `shutdown`, not lost; `maintenance` is planned downtime and
//! never counts as lost.

use serde::Serialize;
use sitewatch_protocol::{OfflineReason, Status};

/// What the agent itself last said on its state topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// No state message yet: the host is known from its readings only (another
    /// publisher, or the birth not received). Treated as online.
    Nothing,
    Online,
    Offline(Option<OfflineReason>),
    Maintenance,
}

impl Reported {
    /// From a state message's status and reason.
    pub fn from_state(status: Status, reason: Option<OfflineReason>) -> Self {
        match status {
            Status::Online => Reported::Online,
            Status::Offline => Reported::Offline(reason),
            Status::Maintenance => Reported::Maintenance,
        }
    }
}

/// The status exposed in metrics and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Online,
    /// Its will was published, or it missed its heartbeats.
    Lost,
    /// It stopped cleanly.
    Shutdown,
    /// Planned downtime set by an operator.
    Maintenance,
}

impl AgentStatus {
    /// Every status, in the order the `sitewatch_agent_status` samples are written.
    pub const ALL: [AgentStatus; 4] = [
        AgentStatus::Online,
        AgentStatus::Lost,
        AgentStatus::Shutdown,
        AgentStatus::Maintenance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Online => "online",
            AgentStatus::Lost => "lost",
            AgentStatus::Shutdown => "shutdown",
            AgentStatus::Maintenance => "maintenance",
        }
    }

    /// `sitewatch_agent_up`: only an online agent is up.
    pub fn is_up(self) -> bool {
        self == AgentStatus::Online
    }
}

/// A status with the reason behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub status: AgentStatus,
    /// `will`, `heartbeat` or `offline` when lost, `shutdown` when shut down.
    pub reason: Option<&'static str>,
    /// When lost: since when (Unix ms, the collector's clock): the will's receipt,
    /// or the moment the last heartbeat window closed.
    pub since_ms: Option<i64>,
}

/// The rules' parameters, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Missed heartbeats after which an online agent is lost (default 3).
    pub lost_after_missed_heartbeats: u32,
    /// The heartbeat assumed when an agent did not announce its `interval_ms`.
    pub default_interval_ms: u64,
    /// When the collector started (Unix ms) and for how long after that no agent
    /// is declared lost by heartbeat: the broker is still delivering what it held.
    pub started_at_ms: i64,
    pub startup_grace_ms: u64,
    /// With a shared subscription a collector sees only part of each agent's
    /// readings; it then judges the heartbeat only of agents whose readings it has
    /// received since their birth (see `ingest.rs`).
    pub heartbeat_needs_readings: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            lost_after_missed_heartbeats: 3,
            default_interval_ms: 60_000,
            started_at_ms: 0,
            startup_grace_ms: 0,
            heartbeat_needs_readings: false,
        }
    }
}

/// What liveness needs to know about one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub reported: Reported,
    /// The announced heartbeat, if any.
    pub interval_ms: Option<u64>,
    /// When the collector last heard from the agent (Unix ms, the collector's
    /// clock: an agent's clock may be off, the heartbeat rule must not depend on it).
    pub last_heard_ms: i64,
    /// Whether readings arrived since the last state message.
    pub readings_heard: bool,
    /// When the last state message arrived (Unix ms, the collector's clock).
    pub reported_at_ms: i64,
}

/// The agent's status at `now_ms`.
pub fn liveness(facts: &Facts, rules: &Rules, now_ms: i64) -> Liveness {
    match facts.reported {
        Reported::Maintenance => {
            return Liveness {
                status: AgentStatus::Maintenance,
                reason: None,
                since_ms: None,
            };
        }
        Reported::Offline(Some(OfflineReason::Shutdown)) => {
            return Liveness {
                status: AgentStatus::Shutdown,
                reason: Some("shutdown"),
                since_ms: None,
            };
        }
        Reported::Offline(Some(OfflineReason::Lost)) => {
            return Liveness {
                status: AgentStatus::Lost,
                reason: Some("will"),
                since_ms: Some(facts.reported_at_ms),
            };
        }
        // An offline message without a reason is not a planned stop as far as
        // anyone can tell: treat it like a will.
        Reported::Offline(None) => {
            return Liveness {
                status: AgentStatus::Lost,
                reason: Some("offline"),
                since_ms: Some(facts.reported_at_ms),
            };
        }
        Reported::Online | Reported::Nothing => {}
    }
    match heartbeat_deadline(facts, rules, now_ms) {
        Some(deadline) => Liveness {
            status: AgentStatus::Lost,
            reason: Some("heartbeat"),
            since_ms: Some(deadline),
        },
        None => Liveness {
            status: AgentStatus::Online,
            reason: None,
            since_ms: None,
        },
    }
}

/// The deadline that passed, when the agent missed its heartbeats at `now_ms`.
fn heartbeat_deadline(facts: &Facts, rules: &Rules, now_ms: i64) -> Option<i64> {
    if rules.heartbeat_needs_readings && !facts.readings_heard {
        return None;
    }
    let grace_end = rules
        .started_at_ms
        .saturating_add(i64::try_from(rules.startup_grace_ms).unwrap_or(i64::MAX));
    if now_ms < grace_end {
        return None;
    }
    let interval = facts.interval_ms.unwrap_or(rules.default_interval_ms);
    let window = interval.saturating_mul(u64::from(rules.lost_after_missed_heartbeats));
    let deadline = facts
        .last_heard_ms
        .saturating_add(i64::try_from(window).unwrap_or(i64::MAX));
    // Lost once the deadline has passed: 3 intervals of silence are still tolerated
    // (the third heartbeat may be on its way), a moment more is not.
    (now_ms > deadline).then_some(deadline.max(grace_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online(last_heard_ms: i64) -> Facts {
        Facts {
            reported: Reported::Online,
            interval_ms: Some(5_000),
            last_heard_ms,
            readings_heard: true,
            reported_at_ms: 0,
        }
    }

    #[test]
    fn online_agent_is_lost_after_three_missed_heartbeats() {
        let rules = Rules::default();
        let facts = online(100_000);
        for now in [100_000, 105_000, 114_999, 115_000] {
            assert_eq!(liveness(&facts, &rules, now).status, AgentStatus::Online);
        }
        let lost = liveness(&facts, &rules, 115_001);
        assert_eq!(lost.status, AgentStatus::Lost);
        assert_eq!(lost.reason, Some("heartbeat"));
        assert_eq!(lost.since_ms, Some(115_000));
        assert!(!lost.status.is_up());
    }

    #[test]
    fn will_means_lost_at_once_and_shutdown_is_not_lost() {
        let rules = Rules::default();
        let mut facts = online(0);
        facts.reported = Reported::Offline(Some(OfflineReason::Lost));
        assert_eq!(
            liveness(&facts, &rules, 1),
            Liveness {
                status: AgentStatus::Lost,
                reason: Some("will"),
                since_ms: Some(0),
            }
        );
        facts.reported = Reported::Offline(Some(OfflineReason::Shutdown));
        assert_eq!(
            liveness(&facts, &rules, 1),
            Liveness {
                status: AgentStatus::Shutdown,
                reason: Some("shutdown"),
                since_ms: None,
            }
        );
        facts.reported = Reported::Offline(None);
        assert_eq!(liveness(&facts, &rules, 1).reason, Some("offline"));
    }

    #[test]
    fn maintenance_never_becomes_lost() {
        let rules = Rules::default();
        let mut facts = online(0);
        facts.reported = Reported::Maintenance;
        let l = liveness(&facts, &rules, 10_000_000);
        assert_eq!(l.status, AgentStatus::Maintenance);
        assert!(!l.status.is_up());
    }

    #[test]
    fn unknown_interval_uses_the_default() {
        let rules = Rules {
            default_interval_ms: 60_000,
            ..Rules::default()
        };
        let mut facts = online(0);
        facts.interval_ms = None;
        facts.reported = Reported::Nothing;
        assert_eq!(
            liveness(&facts, &rules, 180_000).status,
            AgentStatus::Online
        );
        assert_eq!(liveness(&facts, &rules, 180_001).status, AgentStatus::Lost);
    }

    #[test]
    fn no_heartbeat_loss_during_startup_grace() {
        let rules = Rules {
            started_at_ms: 1_000_000,
            startup_grace_ms: 30_000,
            ..Rules::default()
        };
        let facts = online(0);
        assert_eq!(
            liveness(&facts, &rules, 1_029_999).status,
            AgentStatus::Online
        );
        assert_eq!(
            liveness(&facts, &rules, 1_030_000).status,
            AgentStatus::Lost
        );
    }

    #[test]
    fn shared_subscription_judges_only_agents_whose_readings_arrive_here() {
        let rules = Rules {
            heartbeat_needs_readings: true,
            ..Rules::default()
        };
        let mut facts = online(0);
        facts.readings_heard = false;
        assert_eq!(
            liveness(&facts, &rules, 1_000_000).status,
            AgentStatus::Online
        );
        facts.readings_heard = true;
        assert_eq!(
            liveness(&facts, &rules, 1_000_000).status,
            AgentStatus::Lost
        );
    }
}
