#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Walks `tests/scenarios/*/`: a timeline of snapshots and the changes it must give.

use std::{fs, path::Path};

use serde::{Deserialize, Serialize};
use sitewatch_protocol::{Cause, Severity};
use sitewatch_signals::{ChangeKind, Engine, SignalsConfig, SiteSnapshot, Snapshot};

const STEP_MS: i64 = 1000;

#[derive(Debug, Deserialize)]
struct Frame {
    t_ms: i64,
    sites: Vec<SiteSnapshot>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    t_ms: i64,
    kind: ChangeKind,
    site: String,
    cause: Cause,
    subject: String,
    severity: Severity,
}

fn run(dir: &Path) -> Result<(), String> {
    let config = match fs::read_to_string(dir.join("config.toml")) {
        Ok(text) => toml::from_str::<SignalsConfig>(&text).unwrap(),
        Err(_) => SignalsConfig::default(),
    };
    config.validate().unwrap();
    let frames: Vec<Frame> =
        serde_json::from_str(&fs::read_to_string(dir.join("frames.json")).unwrap()).unwrap();
    let expected: Vec<Expected> = fs::read_to_string(dir.join("expected.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        frames.windows(2).all(|w| w[0].t_ms < w[1].t_ms),
        "frames out of order"
    );
    let end = frames.last().map_or(0, |f| f.t_ms);

    let mut engine = Engine::new(config, 0);
    let mut actual = Vec::new();
    let mut current = Snapshot::default();
    let mut next = frames.into_iter().peekable();
    let mut t = 0;
    while t <= end {
        while let Some(frame) = next.next_if(|f| f.t_ms <= t) {
            current = Snapshot::new(frame.sites);
        }
        for c in engine.evaluate(&current, t).changes {
            actual.push(Expected {
                t_ms: c.t_ms,
                kind: c.kind,
                site: c.site,
                cause: c.cause,
                subject: c.subject,
                severity: c.severity,
            });
        }
        t += STEP_MS;
    }
    if actual == expected {
        Ok(())
    } else {
        let lines: Vec<String> = actual
            .iter()
            .map(|c| serde_json::to_string(c).unwrap())
            .collect();
        Err(format!(
            "{}: the engine reported\n{}\n",
            dir.display(),
            lines.join("\n")
        ))
    }
}

#[test]
fn every_scenario_gives_its_expected_changes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut dirs: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 4,
        "scenarios missing under {}",
        root.display()
    );
    let failures: Vec<String> = dirs.iter().filter_map(|d| run(d).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
