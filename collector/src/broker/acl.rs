//! Authorization: what an identity may publish and subscribe to. Pure: a role is
//! derived once at CONNECT from the identity's name and the configured lists,
//! then every PUBLISH and SUBSCRIBE is a lookup against it.
//!
//! | identity | publish | subscribe |
//! |---|---|---|
//! | `<site>/<host>` (both valid names) | `sitewatch/v1/<site>/<host>/{state,readings,events}` | nothing |
//! | listed in `collectors` | `sitewatch/v1/<any site>/_signals`, `sitewatch/v1/_collectors/<itself>/...` | anything |
//! | listed in `readers` | nothing | anything |
//! | anyone else | refused at CONNECT | |
//! | anonymous (trusted host) or the collector's own link | anything | anything |
//!
//! Topics starting with `$` are the broker's: nobody publishes there.

use std::collections::BTreeSet;

use sitewatch_protocol::topic::collector_prefix;
use sitewatch_protocol::{HostName, SiteName, Topic};

/// The configured role lists (`[embedded_broker.auth] collectors`, `readers`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclConfig {
    pub collectors: BTreeSet<String>,
    pub readers: BTreeSet<String>,
}

/// What one connection may do, fixed at CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Anonymous on a trusted host, and the collector's in-process link.
    Full,
    /// An agent: its three topics, exactly (built with the protocol's builders).
    Agent {
        site: SiteName,
        host: HostName,
        topics: [String; 3],
    },
    /// A collector: subscribes to anything, publishes `_signals` and below its
    /// own prefix.
    Collector { own_prefix: String },
    /// Subscribes to anything, publishes nothing (dashboards, `mosquitto_sub`).
    Reader,
}

impl Role {
    /// A bounded label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Role::Full => "full",
            Role::Agent { .. } => "agent",
            Role::Collector { .. } => "collector",
            Role::Reader => "reader",
        }
    }
}

/// Why a publish or subscribe is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// An agent publishing to another site's or host's topics.
    #[error("an agent may publish only to its own topics")]
    OtherHost,
    /// A topic outside everything the role may publish to.
    #[error("not a topic this identity may publish to")]
    NotPermitted,
    /// A reader publishing.
    #[error("a reader may not publish")]
    ReadOnly,
    /// An agent subscribing.
    #[error("an agent may not subscribe")]
    AgentSubscribe,
    /// A topic starting with `$`.
    #[error("topics starting with $ are reserved for the broker")]
    Reserved,
}

impl Denial {
    /// The `reason` label of `sitewatch_broker_denied_total`.
    pub fn kind(self) -> &'static str {
        match self {
            Denial::OtherHost => "other_host",
            Denial::NotPermitted => "not_permitted",
            Denial::ReadOnly => "read_only",
            Denial::AgentSubscribe => "agent_subscribe",
            Denial::Reserved => "reserved_topic",
        }
    }

    /// Every reason, for metrics that list them all.
    pub const KINDS: [&'static str; 5] = [
        "other_host",
        "not_permitted",
        "read_only",
        "agent_subscribe",
        "reserved_topic",
    ];
}

/// The role of an authenticated identity, or `None`: not authorized to connect.
/// A name in `collectors` or `readers` takes that role even if it also reads as
/// `<site>/<host>`: the lists are explicit.
pub fn role_of(identity: &str, acl: &AclConfig) -> Option<Role> {
    if acl.collectors.contains(identity) {
        return Some(Role::Collector {
            own_prefix: collector_prefix(identity),
        });
    }
    if acl.readers.contains(identity) {
        return Some(Role::Reader);
    }
    let (site, host) = identity.split_once('/')?;
    let site = SiteName::new(site).ok()?;
    let host = HostName::new(host).ok()?;
    let topics = [
        Topic::state(&site, &host).to_string(),
        Topic::readings(&site, &host).to_string(),
        Topic::events(&site, &host).to_string(),
    ];
    Some(Role::Agent { site, host, topics })
}

/// Whether `role` may publish to the (valid) topic name.
pub fn may_publish(role: &Role, topic: &str) -> Result<(), Denial> {
    if topic.starts_with('$') {
        return Err(Denial::Reserved);
    }
    match role {
        Role::Full => Ok(()),
        Role::Agent { topics, .. } => {
            if topics.iter().any(|t| t == topic) {
                Ok(())
            } else if matches!(Topic::parse(topic), Ok(Topic::Host { .. })) {
                Err(Denial::OtherHost)
            } else {
                Err(Denial::NotPermitted)
            }
        }
        Role::Collector { own_prefix } => {
            if topic.starts_with(own_prefix.as_str())
                || matches!(Topic::parse(topic), Ok(Topic::Signals { .. }))
            {
                Ok(())
            } else {
                Err(Denial::NotPermitted)
            }
        }
        Role::Reader => Err(Denial::ReadOnly),
    }
}

/// Whether `role` may subscribe to the (valid) filter, `$share/...` included.
pub fn may_subscribe(role: &Role, _filter: &str) -> Result<(), Denial> {
    match role {
        Role::Agent { .. } => Err(Denial::AgentSubscribe),
        Role::Full | Role::Collector { .. } | Role::Reader => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl() -> AclConfig {
        AclConfig {
            collectors: ["col-bj1".to_owned(), "bj1/web-09".to_owned()].into(),
            readers: ["grafana".to_owned()].into(),
        }
    }

    #[test]
    fn roles_come_from_the_lists_and_the_site_host_form() {
        let acl = acl();
        assert!(matches!(
            role_of("bj1/web-01", &acl),
            Some(Role::Agent { ref site, ref host, .. }) if site.as_str() == "bj1" && host.as_str() == "web-01"
        ));
        assert_eq!(
            role_of("col-bj1", &acl),
            Some(Role::Collector {
                own_prefix: "sitewatch/v1/_collectors/col-bj1/".into()
            })
        );
        assert_eq!(role_of("grafana", &acl), Some(Role::Reader));
        // Listed as a collector: the list wins over the <site>/<host> form.
        assert_eq!(
            role_of("bj1/web-09", &acl).map(|r| r.kind()),
            Some("collector")
        );
        for nobody in [
            "someone",
            "BJ1/web-01",
            "bj1/_signals",
            "_x/web-01",
            "bj1/web-01/x",
            "bj1/",
            "/web-01",
            "",
        ] {
            assert_eq!(role_of(nobody, &acl), None, "{nobody:?}");
        }
    }

    #[test]
    fn publish_table() {
        let acl = acl();
        let agent = role_of("bj1/web-01", &acl).unwrap();
        let collector = role_of("col-bj1", &acl).unwrap();
        let reader = role_of("grafana", &acl).unwrap();
        use Denial::*;
        let cases: &[(&Role, &str, Result<(), Denial>)] = &[
            (&agent, "sitewatch/v1/bj1/web-01/state", Ok(())),
            (&agent, "sitewatch/v1/bj1/web-01/readings", Ok(())),
            (&agent, "sitewatch/v1/bj1/web-01/events", Ok(())),
            // Another host's state: the forged offline/lost or maintenance.
            (&agent, "sitewatch/v1/bj1/web-02/state", Err(OtherHost)),
            // A host that does not exist, in the same site or another one.
            (&agent, "sitewatch/v1/bj1/ghost/readings", Err(OtherHost)),
            (&agent, "sitewatch/v1/sh2/web-01/readings", Err(OtherHost)),
            (&agent, "sitewatch/v1/bj1/_signals", Err(NotPermitted)),
            (&agent, "sitewatch/v1/bj1/web-01/metrics", Err(NotPermitted)),
            (&agent, "sitewatch/v1/bj1/web-01/state/x", Err(NotPermitted)),
            (
                &agent,
                "sitewatch/v1/_collectors/col-bj1/x",
                Err(NotPermitted),
            ),
            (&agent, "elsewhere", Err(NotPermitted)),
            (&agent, "$SYS/x", Err(Reserved)),
            (&collector, "sitewatch/v1/bj1/_signals", Ok(())),
            (&collector, "sitewatch/v1/sh2/_signals", Ok(())),
            (
                &collector,
                "sitewatch/v1/_collectors/col-bj1/presence",
                Ok(()),
            ),
            (&collector, "sitewatch/v1/_collectors/col-bj1/a/b", Ok(())),
            (
                &collector,
                "sitewatch/v1/_collectors/col-sh2/presence",
                Err(NotPermitted),
            ),
            (
                &collector,
                "sitewatch/v1/_collectors/col-bj1",
                Err(NotPermitted),
            ),
            (
                &collector,
                "sitewatch/v1/bj1/web-01/state",
                Err(NotPermitted),
            ),
            (&collector, "sitewatch/v1/BJ1/_signals", Err(NotPermitted)),
            (&reader, "sitewatch/v1/bj1/web-01/state", Err(ReadOnly)),
            (&reader, "anything", Err(ReadOnly)),
            (&Role::Full, "sitewatch/v1/bj1/web-02/state", Ok(())),
            (&Role::Full, "anything/at/all", Ok(())),
            (&Role::Full, "$SYS/broker", Err(Reserved)),
        ];
        for (role, topic, expected) in cases {
            assert_eq!(
                may_publish(role, topic),
                *expected,
                "{} -> {topic}",
                role.kind()
            );
        }
    }

    #[test]
    fn subscribe_table() {
        let acl = acl();
        let agent = role_of("bj1/web-01", &acl).unwrap();
        let collector = role_of("col-bj1", &acl).unwrap();
        let reader = role_of("grafana", &acl).unwrap();
        for filter in [
            "sitewatch/v1/+/+/+",
            "#",
            "$share/g/sitewatch/v1/+/+/readings",
        ] {
            assert_eq!(may_subscribe(&agent, filter), Err(Denial::AgentSubscribe));
            assert_eq!(may_subscribe(&collector, filter), Ok(()));
            assert_eq!(may_subscribe(&reader, filter), Ok(()));
            assert_eq!(may_subscribe(&Role::Full, filter), Ok(()));
        }
        // Even its own topics: an agent reads nothing back.
        assert_eq!(
            may_subscribe(&agent, "sitewatch/v1/bj1/web-01/state"),
            Err(Denial::AgentSubscribe)
        );
    }

    #[test]
    fn denial_kinds_are_all_listed() {
        for d in [
            Denial::OtherHost,
            Denial::NotPermitted,
            Denial::ReadOnly,
            Denial::AgentSubscribe,
            Denial::Reserved,
        ] {
            assert!(Denial::KINDS.contains(&d.kind()));
        }
    }
}
