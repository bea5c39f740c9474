//! The trap and inform receiver: notifications from configured devices become
//! events (once per repeat window) and make the sending device due at once;
//! the source's next poll, which the receiver wakes, reads it.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_snmp::notification::{NotificationAcceptance, NotificationReceiver};
use sitewatch_protocol::{Event, Severity};
use sitewatch_snmp_profile::{Oid, Profile, oid_string};
use tokio::{sync::Notify, time::Instant};

use super::NAME;
use crate::unix_ms;

/// A configured device as the receiver matches senders against it.
#[derive(Debug, Clone)]
pub struct Sender {
    pub device: String,
    pub ips: Vec<IpAddr>,
    pub profile: Arc<Profile>,
}

/// Counters of the receiver, reported as `dev = "snmp/traps"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrapStats {
    pub received: u64,
    /// From an address no device has.
    pub unknown_sender: u64,
    /// Undecodable, or refused (community, USM).
    pub rejected: u64,
    /// Repeats inside the window: no second event.
    pub repeated: u64,
}

/// What the receiver shares with the source's polls.
#[derive(Default)]
pub struct Shared {
    pub events: Mutex<Vec<Event>>,
    pub hurry: Mutex<BTreeSet<String>>,
    pub stats: Mutex<TrapStats>,
    pub wake: Arc<Notify>,
    /// The bound receiver, for its USM counters (refused v3 notifications
    /// never reach `recv`).
    pub receiver: Mutex<Option<NotificationReceiver>>,
}

impl Shared {
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        // A poisoned lock only means a panic elsewhere; the data is plain values.
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *Self::lock(&self.events))
    }

    pub fn take_hurried(&self) -> BTreeSet<String> {
        std::mem::take(&mut *Self::lock(&self.hurry))
    }

    pub fn stats(&self) -> TrapStats {
        let mut stats = Self::lock(&self.stats).clone();
        if let Some(r) = &*Self::lock(&self.receiver) {
            stats.rejected += u64::from(r.usm_unknown_engine_ids())
                + u64::from(r.usm_unknown_usernames())
                + u64::from(r.usm_wrong_digests())
                + u64::from(r.usm_not_in_time_windows())
                + u64::from(r.usm_unsupported_sec_levels())
                + u64::from(r.usm_decryption_errors());
        }
        stats
    }
}

impl std::fmt::Debug for Shared {
    // NotificationReceiver has no Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Most notifications remembered for de-duplication.
const MAX_REMEMBERED: usize = 4096;

/// Decides what a notification is (pure, time passed in).
#[derive(Debug)]
pub struct Classifier {
    senders: Vec<Sender>,
    window: Duration,
    seen: HashMap<(String, String), Instant>,
}

/// What to do with one notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// No configured device sends from that address.
    UnknownSender,
    /// A new notification: its events and the devices to poll now.
    Event {
        events: Vec<Event>,
        poll: Vec<String>,
    },
    /// The same notification again within the window: poll, no event.
    Repeat { poll: Vec<String> },
}

impl Classifier {
    pub fn new(senders: Vec<Sender>, window: Duration) -> Self {
        Classifier {
            senders,
            window,
            seen: HashMap::new(),
        }
    }

    /// `key` identifies the notification's content (its OID and varbinds,
    /// without uptime), so that a repeat is recognised.
    pub fn classify(&mut self, from: IpAddr, trap: &[u32], key: &str, now: Instant) -> Verdict {
        let devices: Vec<&Sender> = self
            .senders
            .iter()
            .filter(|s| s.ips.contains(&from))
            .collect();
        if devices.is_empty() {
            return Verdict::UnknownSender;
        }
        let poll: Vec<String> = devices.iter().map(|s| s.device.clone()).collect();
        self.seen
            .retain(|_, at| now.duration_since(*at) < self.window);
        let id = (poll.join(","), format!("{}|{key}", oid_string(trap)));
        if self.seen.contains_key(&id) {
            return Verdict::Repeat { poll };
        }
        if self.seen.len() < MAX_REMEMBERED {
            self.seen.insert(id, now);
        }
        // The first device whose profile knows the notification names it;
        // others (linkDown from a PDU's card) are reported as they came.
        let known = devices
            .iter()
            .find_map(|s| s.profile.trap(trap).map(|t| (s, t)));
        let events = match known {
            Some((s, t)) => vec![Event {
                src: NAME.to_owned(),
                dev: s.device.clone(),
                event_type: t.name.clone(),
                severity: t.severity,
                message: format!("{}: {}", s.device, t.message),
                labels: BTreeMap::from([("trap_oid".to_owned(), oid_string(trap))]),
                ts: Some(unix_ms()),
                // A trap is received once and never read again: no id to keep
                // a redelivery apart (the repeat window above drops resends).
                id: None,
            }],
            None => vec![Event {
                src: NAME.to_owned(),
                dev: devices[0].device.clone(),
                event_type: "snmp_trap".to_owned(),
                severity: Severity::Low,
                message: format!("{}: notification {}", devices[0].device, oid_string(trap)),
                labels: BTreeMap::from([("trap_oid".to_owned(), oid_string(trap))]),
                ts: Some(unix_ms()),
                // A trap is received once and never read again: no id to keep
                // a redelivery apart (the repeat window above drops resends).
                id: None,
            }],
        };
        Verdict::Event { events, poll }
    }
}

/// The communities and v3 users the receiver accepts.
#[derive(Debug, Clone, Default)]
pub struct Accepted {
    pub communities: Vec<String>,
    /// (user, auth protocol and passphrase, privacy protocol and passphrase).
    pub users: Vec<V3User>,
}

#[derive(Debug, Clone)]
pub struct V3User {
    pub name: String,
    pub auth: Option<(async_snmp::AuthProtocol, String)>,
    pub privacy: Option<(async_snmp::PrivProtocol, String)>,
}

/// What a notification is about, for telling a repeat apart: its varbinds
/// without sysUpTime and snmpTrapOID, which are in every notification (the
/// rest says which port, which alarm).
pub fn notification_key(varbinds: &[async_snmp::VarBind]) -> String {
    varbinds
        .iter()
        .filter(|vb| {
            let o = vb.oid.arcs();
            !o.starts_with(&[1, 3, 6, 1, 2, 1, 1, 3])
                && !o.starts_with(&[1, 3, 6, 1, 6, 3, 1, 1, 4])
        })
        .map(|vb| format!("{}={:?}", oid_string(vb.oid.arcs()), vb.value))
        .collect::<Vec<_>>()
        .join(";")
}

/// Binds the receiver and runs it until the process ends.
pub async fn run(
    listen: String,
    accepted: Accepted,
    mut classifier: Classifier,
    shared: Arc<Shared>,
) {
    let mut builder = NotificationReceiver::builder()
        .bind(listen.clone())
        .communities(accepted.communities.clone())
        // v3 only when authenticated: noAuthNoPriv content is a spoofable claim.
        .acceptance_policy(|n| {
            if n.security_level
                .is_some_and(|l| l < async_snmp::SecurityLevel::AuthNoPriv)
            {
                NotificationAcceptance::Reject
            } else {
                NotificationAcceptance::Accept
            }
        });
    if !accepted.users.is_empty() {
        // v3 needs a local engine (authoritative for informs; a trap's sender
        // is its own). A fresh ID each start: no engine state is persisted,
        // so a v3 inform sender re-discovers it after a restart.
        let engine = async_snmp::v3::generate_engine_id().and_then(|id| {
            async_snmp::AuthoritativeEngine::install(id, |_| Ok::<(), std::convert::Infallible>(()))
        });
        match engine {
            Ok(e) => builder = builder.authoritative_engine(e),
            Err(e) => {
                tracing::error!(source = NAME, error = %e, "cannot set up the v3 engine of the trap receiver");
                return;
            }
        }
    }
    for u in &accepted.users {
        let user = u.clone();
        let added = builder.usm_user(u.name.clone().into_bytes(), move |usm| {
            match (user.auth, user.privacy) {
                (Some((a, ap)), Some((p, pp))) => usm.auth_priv(a, ap, p, pp),
                (Some((a, ap)), None) => usm.auth(a, ap),
                _ => Ok(usm),
            }
        });
        builder = match added {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(source = NAME, user = %u.name, error = %e, "cannot add the v3 trap user");
                return;
            }
        };
    }
    let receiver = match builder.build().await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(source = NAME, listen = %listen, error = %e, "cannot start the trap receiver");
            return;
        }
    };
    tracing::info!(source = NAME, listen = %receiver.local_addr(), "listening for traps and informs");
    *Shared::lock(&shared.receiver) = Some(receiver.clone());
    let mut last_error: Option<Instant> = None;
    loop {
        let received = match receiver.recv().await {
            Ok(r) => r,
            Err(e) => {
                Shared::lock(&shared.stats).rejected += 1;
                // Rate-limited: a flood of garbage is counted, logged once a minute.
                let now = Instant::now();
                if last_error.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60)) {
                    last_error = Some(now);
                    tracing::warn!(source = NAME, error = %e, "notification refused");
                }
                if e.kind().as_str() == "network" {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        Shared::lock(&shared.stats).received += 1;
        let Ok(trap) = received.notification.trap_oid() else {
            Shared::lock(&shared.stats).rejected += 1;
            continue;
        };
        let trap: Oid = trap.arcs().to_vec();
        let key = notification_key(received.notification.varbinds());
        let ip = received.source.ip().to_canonical();
        match classifier.classify(ip, &trap, &key, Instant::now()) {
            Verdict::UnknownSender => {
                Shared::lock(&shared.stats).unknown_sender += 1;
                tracing::debug!(source = NAME, from = %received.source, trap = %oid_string(&trap), "notification from an unknown sender");
                continue;
            }
            Verdict::Repeat { poll } => {
                Shared::lock(&shared.stats).repeated += 1;
                Shared::lock(&shared.hurry).extend(poll);
            }
            Verdict::Event { events, poll } => {
                tracing::info!(source = NAME, from = %received.source, trap = %oid_string(&trap), "notification");
                Shared::lock(&shared.events).extend(events);
                Shared::lock(&shared.hurry).extend(poll);
            }
        }
        shared.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_snmp::{Oid as SnmpOid, Value as SnmpValue, VarBind};

    #[test]
    fn a_notification_key_leaves_out_uptime_and_the_trap_oid() {
        let vb = |arcs: &[u32], value| VarBind::new(SnmpOid::from_slice(arcs), value);
        let ifindex = [1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 3];
        let trap =
            SnmpValue::ObjectIdentifier(SnmpOid::from_slice(&[1, 3, 6, 1, 6, 3, 1, 1, 5, 3]));
        let at = |uptime| {
            notification_key(&[
                vb(&[1, 3, 6, 1, 2, 1, 1, 3, 0], SnmpValue::TimeTicks(uptime)),
                vb(&[1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0], trap.clone()),
                vb(&ifindex, SnmpValue::Integer(3)),
            ])
        };
        assert_eq!(at(100), at(200));
        assert!(at(100).starts_with("1.3.6.1.2.1.2.2.1.1.3="));
        assert!(!at(100).contains(';'));
    }

    fn sender(device: &str, ip: &str, profile: &str) -> Sender {
        Sender {
            device: device.into(),
            ips: vec![ip.parse().unwrap()],
            profile: Arc::new(
                sitewatch_snmp_profile::shipped::load(profile)
                    .unwrap()
                    .unwrap(),
            ),
        }
    }

    #[test]
    fn a_known_trap_is_one_event_per_window_and_polls_its_device() {
        let mut c = Classifier::new(
            vec![
                sender("ups-a", "10.0.0.5", "ups-mib"),
                sender("sw1", "10.0.0.9", "if-mib"),
            ],
            Duration::from_secs(60),
        );
        let t0 = Instant::now();
        let on_battery = [1, 3, 6, 1, 2, 1, 33, 2, 1];
        let from = "10.0.0.5".parse().unwrap();
        let Verdict::Event { events, poll } = c.classify(from, &on_battery, "", t0) else {
            panic!("not an event");
        };
        assert_eq!(poll, vec!["ups-a".to_owned()]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, "ups_on_battery");
        assert_eq!(events[0].severity, Severity::Critical);
        assert_eq!(events[0].dev, "ups-a");
        // Repeated within the window: polled again, no second event.
        assert_eq!(
            c.classify(from, &on_battery, "", t0 + Duration::from_secs(30)),
            Verdict::Repeat {
                poll: vec!["ups-a".into()]
            }
        );
        // After it: a new event.
        assert!(matches!(
            c.classify(from, &on_battery, "", t0 + Duration::from_secs(61)),
            Verdict::Event { .. }
        ));
        // The v2 form some agents send is the same notification.
        let Verdict::Event { events, .. } =
            c.classify(from, &[1, 3, 6, 1, 2, 1, 33, 2, 0, 1], "", t0)
        else {
            panic!("alias not known");
        };
        assert_eq!(events[0].event_type, "ups_on_battery");
        // linkDown for two ports is two notifications.
        let sw = "10.0.0.9".parse().unwrap();
        let link_down = [1, 3, 6, 1, 6, 3, 1, 1, 5, 3];
        assert!(matches!(
            c.classify(sw, &link_down, "ifIndex=1", t0),
            Verdict::Event { .. }
        ));
        assert!(matches!(
            c.classify(sw, &link_down, "ifIndex=2", t0),
            Verdict::Event { .. }
        ));
        // Unknown to the profile: reported as it came.
        let Verdict::Event { events, .. } = c.classify(sw, &[1, 3, 6, 1, 4, 1, 9, 0, 1], "", t0)
        else {
            panic!();
        };
        assert_eq!(events[0].event_type, "snmp_trap");
        assert_eq!(
            c.classify("10.9.9.9".parse().unwrap(), &on_battery, "", t0),
            Verdict::UnknownSender
        );
    }
}
