//! Surviving the loss of any one site: two sites (`a`, `b`) and a witness (`w`)
//! in network namespaces the test creates, joined by veth pairs; agents
//! dual-homed to their site's broker and the other site's; a collector per site
//! consuming every broker; one real Alertmanager. Faults are real: processes
//! killed, links set down. Each case has a time budget (the DR plan's 30 s)
//! and a must-not list, checked throughout.
//!
//! Skipped (with a message) where network namespaces cannot be made.

use std::time::{Duration, Instant};

use sitewatch_tests::deployment::Deployment;
use sitewatch_tests::netns;

/// The DR plan's budget from fault to signal.
const BUDGET: Duration = Duration::from_secs(30);
/// How long the must-nots are watched after the expected state is reached.
const SETTLE: Duration = Duration::from_secs(12);

type Sig = (String, String, String, String);

fn skip() -> bool {
    if netns::available() {
        return false;
    }
    eprintln!("SKIPPED: network namespaces cannot be created here (needs root and iproute2)");
    true
}

fn is(s: &Sig, site: &str, level: &str, cause: &str) -> bool {
    s.0 == site && s.1 == level && s.2 == cause
}

/// Polls until `done` holds for every observer, checking `must_not` on every
/// signal seen at each poll; then keeps checking `must_not` for SETTLE. Returns
/// the time from `fault` to `done`.
fn watch(
    d: &Deployment,
    observers: &[&str],
    fault: Instant,
    done: impl Fn(&str, &[Sig]) -> bool,
    must_not: impl Fn(&str, &Sig) -> bool,
) -> Duration {
    let check = |o: &str, sigs: &[Sig]| {
        for s in sigs {
            assert!(!must_not(o, s), "{o} raised {s:?}\n{}", d.logs());
        }
    };
    let detected = loop {
        let mut all = true;
        for o in observers {
            let sigs = d.signals(o);
            check(o, &sigs);
            all &= done(o, &sigs);
        }
        if all {
            break fault.elapsed();
        }
        assert!(
            fault.elapsed() < BUDGET,
            "not within {BUDGET:?}: {:?}\n{}",
            observers
                .iter()
                .map(|o| (o, d.signals(o)))
                .collect::<Vec<_>>(),
            d.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let until = Instant::now() + SETTLE;
    while Instant::now() < until {
        for o in observers {
            check(o, &d.signals(o));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("detected after {detected:?}");
    detected
}

fn any_l3(s: &Sig) -> bool {
    s.1 == "L3" || s.1 == "L4"
}

#[test]
fn site_a_losing_power_is_an_l3_from_b_and_w_within_30s_and_one_alert() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Deployment::start(dir.path());
    let fault = Instant::now();
    d.kill_site("a");
    d.net.set_site_links("a", false);
    watch(
        &d,
        &["b", "w"],
        fault,
        |_, sigs| sigs.iter().any(|s| is(s, "a", "L3", "network")),
        // Nothing about b or w, and no L4 (one site of the region is down).
        |_, s| any_l3(s) && !is(s, "a", "L3", "network"),
    );
    // Both collectors pushed it with the same labels: Alertmanager holds one.
    let alerts: Vec<_> = d
        .am
        .alerts()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == "SitewatchNetwork" && a["labels"]["site"] == "a")
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let watchdogs =
        d.am.alerts()
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == "SitewatchWatchdog")
            .count();
    assert!(watchdogs >= 2, "watchdogs of b and w: {watchdogs}");
}

#[test]
fn a_cut_between_a_and_b_is_an_l2_site_link_and_no_l3_anywhere() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::start(dir.path());
    let fault = Instant::now();
    d.net.set_link("a", "b", false);
    watch(
        &d,
        &["a", "b"],
        fault,
        |_, sigs| sigs.iter().any(|s| s.2 == "site_link" && s.3 == "a<->b"),
        |_, s| any_l3(s) || s.2 == "host_hardware" || s.2 == "collector_lost",
    );
    // The witness still sees every agent, and each site its own.
    for (observer, host) in [("w", "a-1"), ("w", "b-1"), ("a", "a-2"), ("b", "b-2")] {
        assert_eq!(
            d.host_status(observer, host).as_deref(),
            Some("online"),
            "{observer} on {host}"
        );
    }
    for s in d.signals("w") {
        assert!(!any_l3(&s), "w raised {s:?}");
    }
}

#[test]
fn site_a_cut_off_is_an_l3_for_b_and_w_and_vantage_isolated_at_a() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::start(dir.path());
    let fault = Instant::now();
    d.net.set_site_links("a", false);
    watch(
        &d,
        &["a", "b", "w"],
        fault,
        |o, sigs| match o {
            "a" => sigs.iter().any(|s| s.2 == "vantage_isolated"),
            _ => sigs.iter().any(|s| is(s, "a", "L3", "network")),
        },
        |o, s| match o {
            "a" => any_l3(s),
            _ => any_l3(s) && !is(s, "a", "L3", "network"),
        },
    );
}

#[test]
fn a_collector_killed_alone_is_collector_lost_and_its_agents_are_still_seen() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Deployment::start(dir.path());
    let fault = Instant::now();
    d.kill_collector("a");
    watch(
        &d,
        &["b", "w"],
        fault,
        |_, sigs| {
            sigs.iter()
                .any(|s| s.2 == "collector_lost" && s.3 == "collector-a")
        },
        |_, s| any_l3(s) || s.2 == "host_hardware",
    );
    for i in 1..=3 {
        assert_eq!(
            d.host_status("b", &format!("a-{i}")).as_deref(),
            Some("online")
        );
    }
}

#[test]
fn site_a_broker_killed_leaves_its_agents_seen_through_b_and_the_dead_path_visible() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Deployment::start(dir.path());
    let fault = Instant::now();
    if let Some(mut b) = d.broker_a.take() {
        b.kill();
    }
    watch(
        &d,
        &["a", "b", "w"],
        fault,
        |o, _| {
            // Every collector shows the broker link to a down.
            let m = sitewatch_tests::scrape::get_at(
                std::net::SocketAddr::from((d.net.mgmt(o), 9184)),
                "/metrics",
                &[],
            );
            m.is_some_and(|r| {
                r.body
                    .lines()
                    .any(|l| l == r#"sitewatch_collector_broker_connected{broker="a"} 0"#)
            })
        },
        |_, s| any_l3(s) || s.2 == "host_hardware",
    );
    for o in ["a", "b", "w"] {
        for i in 1..=3 {
            assert_eq!(
                d.host_status(o, &format!("a-{i}")).as_deref(),
                Some("online"),
                "{o} on a-{i}"
            );
        }
    }
}

#[test]
fn restarts_of_single_collectors_and_brokers_raise_no_l3() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Deployment::start(dir.path());
    // SITEWATCH_CHURN_SECS of churn, 90 s by default so that the suite stays
    // fast (the issue's ten minutes is the soak recorded in BENCHMARKS.md):
    // each step restarts one collector or a's broker, in an order shuffled
    // from the clock so that runs differ.
    let steps: [&dyn Fn(&mut Deployment); 4] = [
        &|d| {
            d.kill_collector("b");
            d.start_collector("b");
        },
        &|d| {
            if let Some(mut b) = d.broker_a.take() {
                b.kill();
            }
            std::thread::sleep(Duration::from_secs(3));
            d.start_broker_a();
        },
        &|d| {
            d.kill_collector("w");
            d.start_collector("w");
        },
        &|d| {
            d.kill_collector("a");
            d.start_collector("a");
        },
    ];
    let secs = std::env::var("SITEWATCH_CHURN_SECS")
        .ok()
        .map(|v| {
            v.parse::<u64>()
                .expect("SITEWATCH_CHURN_SECS is whole seconds")
        })
        .unwrap_or(90);
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut rng = churn_seed();
    eprintln!("churn for {secs} s, seed {rng}");
    let mut i = 0;
    while Instant::now() < end {
        // xorshift64: a different order each run, the seed printed to replay it.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let step = usize::try_from(rng % steps.len() as u64).unwrap_or(0);
        steps[step](&mut d);
        i += 1;
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            for o in ["a", "b", "w"] {
                for s in d.signals(o) {
                    assert!(
                        !any_l3(&s),
                        "{o} raised {s:?} after {i} restarts\n{}",
                        d.logs()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    eprintln!(
        "churn: {i} restarts in {:?}, no L3 or L4 at any collector",
        started.elapsed()
    );
}

/// The churn's seed: SITEWATCH_CHURN_SEED to replay a run, else the clock.
fn churn_seed() -> u64 {
    std::env::var("SITEWATCH_CHURN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        })
}
