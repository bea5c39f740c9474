//! Topic building and parsing.
//!
//! ```text
//! sitewatch/v1/<site>/<host>/state      retained, QoS 1
//! sitewatch/v1/<site>/<host>/readings   QoS 1
//! sitewatch/v1/<site>/<host>/events     QoS 1
//! sitewatch/v1/<site>/_signals          retained, QoS 1 (the collector's)
//! ```

use std::fmt;

use crate::name::{HostName, NameError, SiteName};

/// Every topic starts with this.
pub const PREFIX: &str = "sitewatch/v1";
/// The last level of the collector's per-site signals topic.
pub const SIGNALS_LEVEL: &str = "_signals";
/// What a collector subscribes to.
pub const SUBSCRIPTION: &str = "sitewatch/v1/+/+/+";

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

/// A parsed sitewatch topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
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

    pub fn site(&self) -> &SiteName {
        match self {
            Topic::Host { site, .. } | Topic::Signals { site } => site,
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
    fn shared_subscription_prefixes_the_group() {
        assert_eq!(
            shared_subscription("collectors"),
            "$share/collectors/sitewatch/v1/+/+/+"
        );
    }
}
