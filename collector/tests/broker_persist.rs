//! The retained store on disk: it survives a clean restart of the broker and
//! a crash (the runtime torn down with no shutdown), is written within its
//! one-second window, and a corrupt file starts the broker empty, counted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod broker_common;

use broker_common::*;
use sitewatch_collector::broker::persist;

fn stored(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = persist::load(dir)
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.topic.to_string(),
                String::from_utf8_lossy(&m.payload).into_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

fn retained_seen(b: &Running) -> Vec<(String, String)> {
    let mut local = b.local(&["#", "end"], 100);
    let mut v = Vec::new();
    publish(b.p(), &["-q", "1", "-t", "end", "-m", "end"]);
    loop {
        let d = local.next();
        if &*d.topic == "end" {
            break;
        }
        assert!(d.retain);
        v.push((
            d.topic.to_string(),
            String::from_utf8_lossy(&d.payload).into_owned(),
        ));
    }
    v.sort();
    v
}

#[test]
fn retained_messages_survive_a_restart_and_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("broker");
    let mut cfg = config();
    cfg.state_dir = Some(state.clone());

    let b = Running::start(cfg.clone());
    publish(
        b.p(),
        &[
            "-q",
            "1",
            "-r",
            "-t",
            "sitewatch/v1/bj1/a/state",
            "-m",
            "lost",
        ],
    );
    publish(
        b.p(),
        &[
            "-q",
            "1",
            "-r",
            "-t",
            "sitewatch/v1/bj1/b/state",
            "-m",
            "online",
        ],
    );
    publish(
        b.p(),
        &["-q", "1", "-r", "-t", "sitewatch/v1/bj1/b/state", "-n"],
    );
    b.stop();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&state).unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o700,
        "the state directory is the broker's alone"
    );

    let b = Running::start(cfg.clone());
    assert_eq!(
        retained_seen(&b),
        [("sitewatch/v1/bj1/a/state".into(), "lost".into())]
    );
    // Written within the window while running, without a shutdown...
    publish(
        b.p(),
        &[
            "-q",
            "1",
            "-r",
            "-t",
            "sitewatch/v1/bj1/c/state",
            "-m",
            "lost",
        ],
    );
    wait_until("the store to hold c", || {
        (stored(&state).len() == 2).then_some(())
    });
    // ... so that a crash (the runtime dropped, no flush) keeps it.
    drop(b);
    let b = Running::start(cfg);
    assert_eq!(
        retained_seen(&b),
        [
            ("sitewatch/v1/bj1/a/state".into(), "lost".into()),
            ("sitewatch/v1/bj1/c/state".into(), "lost".into())
        ]
    );
}

#[test]
fn a_corrupt_store_is_counted_and_the_broker_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("retained.db"),
        b"SWRETv1\nthis is not what was written",
    )
    .unwrap();
    let mut cfg = config();
    cfg.state_dir = Some(dir.path().to_owned());
    let b = Running::start(cfg);
    assert_eq!(
        b.metric("sitewatch_broker_persist_errors_total{reason=\"load_corrupt\"}"),
        1.0
    );
    assert_eq!(b.metric("sitewatch_broker_retained_messages"), 0.0);
    // And it goes on persisting.
    publish(b.p(), &["-q", "1", "-r", "-t", "x/1", "-m", "1"]);
    wait_until("the store to be rewritten", || {
        let ok = persist::load(dir.path()).is_ok_and(|m| m.len() == 1);
        ok.then_some(())
    });
}
