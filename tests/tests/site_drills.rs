//! The site drills as an operator runs them: the real `sitewatch-sim drill`
//! binary against the two-site deployment with a witness in network
//! namespaces (see `tests/src/deployment.rs`), watching all three collectors,
//! with fault and restore commands that set the test's veth links down and up
//! or kill a site's processes. Each drill judges itself (30 s target, its
//! must-not list); the test asserts its verdict and its JSON report.
//!
//! Every drill's JSON lines are printed to stderr (`--nocapture` shows them):
//! `scripts/site-drills-bench.sh` reads the `result` lines from there.
//!
//! Skipped (with a message) where network namespaces cannot be made.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use sitewatch_tests::deployment::Deployment;
use sitewatch_tests::drill::{DrillRun, run_drill};
use sitewatch_tests::netns;

const TARGET: Duration = Duration::from_secs(30);

fn skip() -> bool {
    if netns::available() {
        return false;
    }
    eprintln!("SKIPPED: network namespaces cannot be created here (needs root and iproute2)");
    true
}

/// Runs a site drill against every collector of the deployment; the drill's
/// windows fit the test's collectors (`clear_after` 5 s).
fn site_drill(d: &Deployment, scenario: &str, extra: &[String]) -> DrillRun {
    let mut args: Vec<String> = vec![scenario.to_owned()];
    args.extend(d.observer_args());
    args.extend(
        [
            "--timeout",
            "45s",
            "--settle",
            "10s",
            "--clear-timeout",
            "60s",
            "--poll",
            "250ms",
        ]
        .map(str::to_owned),
    );
    args.extend_from_slice(extra);
    let run = run_drill(&args);
    for step in &run.steps {
        eprintln!("{step}");
    }
    eprintln!("{}", run.summary);
    run
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// The drill passed, within the target, and said so in its JSON.
fn assert_passed(run: &DrillRun, d: &Deployment) {
    assert_eq!(run.code, Some(0), "{run}\n{}", d.logs());
    let result = run.step("result").unwrap();
    assert_eq!(result["pass"], true, "{run}");
    let detect = result["detect_ms"].as_u64().unwrap();
    assert!(
        Duration::from_millis(detect) <= TARGET,
        "{detect} ms: {run}"
    );
    assert!(run.summary.ends_with(": PASS"), "{run}");
}

#[test]
fn site_link_cut_then_site_isolated_drills_pass_against_the_netns_deployment() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::start(dir.path());

    let run = site_drill(
        &d,
        "site-link-cut",
        &[
            s("--site"),
            s("a"),
            s("--peer-site"),
            s("b"),
            s("--fault-cmd"),
            d.net.link_cmd("a", "b", false),
            s("--restore-cmd"),
            d.net.link_cmd("a", "b", true),
        ],
    );
    assert_passed(&run, &d);
    // Both ends raised it, the witness owed nothing; the clear was seen.
    let raised: Vec<&str> = run
        .steps
        .iter()
        .filter(|s| s["step"] == "raised")
        .map(|s| s["signal"]["subject"].as_str().unwrap())
        .collect();
    assert_eq!(raised, ["a<->b", "a<->b"], "{run}");
    assert!(run.step("cleared").is_some(), "{run}");

    d.wait_settled(Duration::from_secs(40));
    let run = site_drill(
        &d,
        "site-isolated",
        &[
            s("--site"),
            s("a"),
            s("--fault-cmd"),
            d.net.site_links_cmd("a", false),
            s("--restore-cmd"),
            d.net.site_links_cmd("a", true),
        ],
    );
    assert_passed(&run, &d);
    let causes: Vec<(&str, &str)> = run
        .steps
        .iter()
        .filter(|s| s["step"] == "raised")
        .map(|s| {
            (
                s["observer"].as_str().unwrap(),
                s["signal"]["cause"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(causes.len(), 3, "{run}");
    for (observer, cause) in causes {
        let want = if observer.contains(&d.net.mgmt("a").to_string()) {
            "vantage_isolated"
        } else {
            "network"
        };
        assert_eq!(cause, want, "{observer}: {run}");
    }
    assert!(run.step("cleared").is_some(), "{run}");
}

#[test]
fn site_down_drill_passes_when_a_sites_processes_die_and_its_links_go() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Deployment::start(dir.path());
    let pids: Vec<String> = d.site_pids("a").iter().map(u32::to_string).collect();
    // A power cut: a's links go dark and everything in it stops. The links
    // first, so that no FIN or RST of the dying processes reaches the other
    // sites (a power cut sends none): their brokers find the agents by
    // keepalive. No restore from the drill (the site is restarted by hand
    // after a real one).
    let fault = format!(
        "{} && kill -KILL {}",
        d.net.site_links_cmd("a", false),
        pids.join(" ")
    );
    let run = site_drill(
        &d,
        "site-down",
        &[s("--site"), s("a"), s("--fault-cmd"), fault],
    );
    assert_passed(&run, &d);
    assert!(run.step("restore").unwrap()["skipped"].is_string(), "{run}");
    // b and w each saw the L3; a's own collector, dead, owed nothing.
    let observers: Vec<&str> = run
        .steps
        .iter()
        .filter(|s| s["step"] == "raised")
        .map(|s| s["observer"].as_str().unwrap())
        .collect();
    assert_eq!(observers.len(), 2, "{run}");
}

#[test]
fn a_site_drill_without_a_fault_command_cannot_run_and_says_why() {
    // No deployment needed: the drill refuses before asking any collector.
    let run = run_drill(&[
        s("site-down"),
        s("--site"),
        s("a"),
        s("--collector"),
        s("http://127.0.0.1:9"),
    ]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.summary.contains("--fault-cmd"), "{run}");
    assert!(run.steps.is_empty(), "{run}");
}
