//! Topic building and parsing.
//!
//! ```text
//! sitewatch/v1/<site>/<host>/state      retained, QoS 1
//! sitewatch/v1/<site>/<host>/readings   QoS 1
//! sitewatch/v1/<site>/<host>/events     QoS 1
//! sitewatch/v1/<site>/_signals          retained, QoS 1 (the collector's)
//! sitewatch/v1/_collectors/<name>/state  retained, QoS 1 (a collector's presence)
//! sitewatch/v1/_collectors/<name>/view   QoS 0 (a collector's heartbeat and view)
//! ```

use std::fmt;

use crate::name::{HostName, NameError, SiteName};

/// Every topic starts with this.
pub const PREFIX: &str = "sitewatch/v1";
/// The last level of the collector's per-site signals topic.
pub const SIGNALS_LEVEL: &str = "_signals";
/// What a collector subscribes to (it also matches the collectors' topics).
pub const SUBSCRIPTION: &str = "sitewatch/v1/+/+/+";
/// The reserved level under which collectors announce themselves.
pub const COLLECTORS_LEVEL: &str = "_collectors";
/// Every collector's presence (retained).
pub const COLLECTOR_STATES: &str = "sitewatch/v1/_collectors/+/state";
/// Every collector's periodic view.
pub const COLLECTOR_VIEWS: &str = "sitewatch/v1/_collectors/+/view";

/// The retained presence topic of a collector named `name` (a valid name).
pub fn collector_state_topic(name: &str) -> String {
    format!("{PREFIX}/{COLLECTORS_LEVEL}/{name}/state")
}

/// The view topic of a collector named `name`.
pub fn collector_view_topic(name: &str) -> String {
    format!("{PREFIX}/{COLLECTORS_LEVEL}/{name}/view")
}

/// The prefix of one collector's own topics, `sitewatch/v1/_collectors/<name>/`:
/// everything below it belongs to that collector (a broker's ACL grants it
/// write access there and to no other collector).
pub fn collector_prefix(name: &str) -> String {
    format!("{PREFIX}/{COLLECTORS_LEVEL}/{name}/")
}

/// The retained signals topic of a site (the collector's output), for a site
/// name already validated.
pub fn signals_topic(site: &str) -> String {
    format!("{PREFIX}/{site}/{SIGNALS_LEVEL}")
}

/// The MQTT v5 shared subscription for collectors splitting the load.
pub fn shared_subscription(group: &str) -> String {
    format!("$share/{group}/{SUBSCRIPTION}")
}

/// The per-host message kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    State,
    Readings,
    Events,
}

impl TopicKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TopicKind::State => "state",
            TopicKind::Readings => "readings",
            TopicKind::Events => "events",
        }
    }
}

/// What a collector publishes about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CollectorKind {
    /// Retained presence: online, or its will / clean stop.
    State,
    /// The periodic heartbeat with what it sees.
    View,
}

/// A parsed sitewatch topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A collector's own topics (the name follows the host-name rules).
    Collector {
        name: HostName,
        kind: CollectorKind,
    },
    Host {
        site: SiteName,
        host: HostName,
        kind: TopicKind,
    },
    Signals {
        site: SiteName,
    },
}

/// Why a topic is not a sitewatch v1 topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("does not start with {PREFIX}/")]
    WrongPrefix,
    #[error("has {0} levels after {PREFIX}/, expected <site>/<host>/<kind> or <site>/_signals")]
    WrongLevelCount(usize),
    #[error("site {0}")]
    Site(NameError),
    #[error("host {0}")]
    Host(NameError),
    #[error("unknown message kind {0:?}, expected state, readings or events")]
    UnknownKind(String),
}

impl Topic {
    pub fn state(site: &SiteName, host: &HostName) -> Self {
        Self::host(site, host, TopicKind::State)
    }

    pub fn readings(site: &SiteName, host: &HostName) -> Self {
        Self::host(site, host, TopicKind::Readings)
    }

    pub fn events(site: &SiteName, host: &HostName) -> Self {
        Self::host(site, host, TopicKind::Events)
    }

    pub fn signals(site: &SiteName) -> Self {
        Topic::Signals { site: site.clone() }
    }

    fn host(site: &SiteName, host: &HostName, kind: TopicKind) -> Self {
        Topic::Host {
            site: site.clone(),
            host: host.clone(),
            kind,
        }
    }

    /// The site the topic is about (none for a collector's own topics).
    pub fn site(&self) -> Option<&SiteName> {
        match self {
            Topic::Host { site, .. } | Topic::Signals { site } => Some(site),
            Topic::Collector { .. } => None,
        }
    }

    /// Parses a topic as received (never with a `$share/` prefix: brokers strip it).
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        let rest = topic
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or(TopicError::WrongPrefix)?;
        let levels: Vec<&str> = rest.split('/').collect();
        match levels.as_slice() {
            [reserved, name, kind] if *reserved == COLLECTORS_LEVEL => {
                let name = HostName::new(name).map_err(TopicError::Host)?;
                let kind = match *kind {
                    "state" => CollectorKind::State,
                    "view" => CollectorKind::View,
                    other => return Err(TopicError::UnknownKind(truncate(other, 64))),
                };
                Ok(Topic::Collector { name, kind })
            }
            [site, last] if *last == SIGNALS_LEVEL => Ok(Topic::Signals {
                site: SiteName::new(site).map_err(TopicError::Site)?,
            }),
            [site, host, kind] => {
                let site = SiteName::new(site).map_err(TopicError::Site)?;
                let host = HostName::new(host).map_err(TopicError::Host)?;
                let kind = match *kind {
                    "state" => TopicKind::State,
                    "readings" => TopicKind::Readings,
                    "events" => TopicKind::Events,
                    other => return Err(TopicError::UnknownKind(truncate(other, 64))),
                };
                Ok(Topic::Host { site, host, kind })
            }
            other => Err(TopicError::WrongLevelCount(other.len())),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Host { site, host, kind } => {
                write!(f, "{PREFIX}/{site}/{host}/{}", kind.as_str())
            }
            Topic::Signals { site } => write!(f, "{PREFIX}/{site}/{SIGNALS_LEVEL}"),
            Topic::Collector { name, kind } => {
                let kind = match kind {
                    CollectorKind::State => "state",
                    CollectorKind::View => "view",
                };
                write!(f, "{PREFIX}/{COLLECTORS_LEVEL}/{name}/{kind}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (SiteName, HostName) {
        (
            SiteName::new("bj1").unwrap(),
            HostName::new("web-01").unwrap(),
        )
    }

    #[test]
    fn host_topics_round_trip() {
        let (site, host) = names();
        for t in [
            Topic::state(&site, &host),
            Topic::readings(&site, &host),
            Topic::events(&site, &host),
            Topic::signals(&site),
        ] {
            assert_eq!(Topic::parse(&t.to_string()), Ok(t));
        }
        assert_eq!(
            Topic::readings(&site, &host).to_string(),
            "sitewatch/v1/bj1/web-01/readings"
        );
        assert_eq!(
            Topic::signals(&site).to_string(),
            "sitewatch/v1/bj1/_signals"
        );
    }

    #[test]
    fn malformed_topics_are_rejected_with_their_reason() {
        assert_eq!(
            Topic::parse("other/v1/a/b/state"),
            Err(TopicError::WrongPrefix)
        );
        assert_eq!(Topic::parse("sitewatch/v1"), Err(TopicError::WrongPrefix));
        assert_eq!(
            Topic::parse("sitewatch/v1/a/b/c/state"),
            Err(TopicError::WrongLevelCount(4))
        );
        assert_eq!(
            Topic::parse("sitewatch/v1/a/b/metrics"),
            Err(TopicError::UnknownKind("metrics".into()))
        );
        assert!(matches!(
            Topic::parse("sitewatch/v1/BJ1/b/state"),
            Err(TopicError::Site(_))
        ));
        assert!(matches!(
            Topic::parse("sitewatch/v1/bj1/_x/state"),
            Err(TopicError::Host(NameError::Reserved))
        ));
    }

    #[test]
    fn collector_prefix_is_below_the_reserved_level() {
        assert_eq!(
            collector_prefix("col-bj1"),
            "sitewatch/v1/_collectors/col-bj1/"
        );
    }

    #[test]
    fn collector_topics_are_reserved_and_round_trip() {
        let t = Topic::parse("sitewatch/v1/_collectors/collector-bj1/state").unwrap();
        assert_eq!(
            t,
            Topic::Collector {
                name: HostName::new("collector-bj1").unwrap(),
                kind: CollectorKind::State
            }
        );
        assert_eq!(t.to_string(), collector_state_topic("collector-bj1"));
        assert_eq!(t.site(), None);
        let v = Topic::parse(&collector_view_topic("w")).unwrap();
        assert!(matches!(
            v,
            Topic::Collector {
                kind: CollectorKind::View,
                ..
            }
        ));
        assert!(Topic::parse("sitewatch/v1/_collectors/x/readings").is_err());
        // Any other reserved site is still refused.
        assert!(Topic::parse("sitewatch/v1/_other/x/state").is_err());
    }

    #[test]
    fn shared_subscription_prefixes_the_group() {
        assert_eq!(
            shared_subscription("collectors"),
            "$share/collectors/sitewatch/v1/+/+/+"
        );
    }
}
