//! Recorded incidents and drills, replayed: every `tests/replay/<name>.jsonl` runs
//! through the collector's decode, ingest and signals engine on the simulated
//! clock, and must give exactly `<name>.expected.jsonl` (with `<name>.toml` as the
//! collector's configuration when present). A regression test is a new file here,
//! not new code; `tests/replay/README.md` says what each one shows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

use sitewatch_collector::config::{self, FileConfig, Overrides, Settings};
use sitewatch_collector::replay::{ReplayEvent, replay_all};

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay")
}

fn recordings() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".jsonl") && !name.ends_with(".expected.jsonl")
        })
        .collect();
    files.sort();
    files
}

fn settings_for(recording: &Path) -> Settings {
    let toml = recording.with_extension("toml");
    let file = if toml.exists() {
        config::load(&toml).unwrap()
    } else {
        FileConfig::default()
    };
    Settings::resolve(&file, &Overrides::default(), &toml.display().to_string()).unwrap()
}

fn timeline(recording: &Path) -> Vec<serde_json::Value> {
    let settings = settings_for(recording);
    let input = BufReader::new(std::fs::File::open(recording).unwrap());
    replay_all(input, settings.state, &settings.signals)
        .unwrap()
        .into_iter()
        .map(|e| match e {
            ReplayEvent::Timeline(line) => serde_json::to_value(line).unwrap(),
            ReplayEvent::Skipped(e) => panic!("{}: {e}", recording.display()),
        })
        .collect()
}

#[test]
fn every_recording_replays_to_its_expected_timeline() {
    let recordings = recordings();
    assert!(
        recordings.len() >= 16,
        "one recording per cause and per trap"
    );
    let mut failures = Vec::new();
    for recording in &recordings {
        let expected_path = recording.with_extension("expected.jsonl");
        let expected: Vec<serde_json::Value> = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let actual = timeline(recording);
        if actual != expected {
            let lines: Vec<String> = actual.iter().map(|v| v.to_string()).collect();
            failures.push(format!(
                "{}:\n--- expected\n{}\n--- actual\n{}",
                recording.display(),
                expected
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
                lines.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn replay_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sitewatch-collector"))
        .arg("replay")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn replay_prints_the_same_timeline_every_time() {
    let recording = folder().join("network.jsonl");
    let first = replay_cli(&[recording.to_str().unwrap()]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = replay_cli(&[recording.to_str().unwrap()]);
    assert_eq!(first.stdout, second.stdout);
    let expected = std::fs::read_to_string(recording.with_extension("expected.jsonl")).unwrap();
    let printed: Vec<serde_json::Value> = String::from_utf8(first.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: Vec<serde_json::Value> = expected
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed, expected);
}

#[test]
fn replay_reports_broken_lines_with_their_number_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.jsonl");
    // A power cut (UPS on battery, no generator) with three broken lines in it: not
    // JSON, a record without a topic, and a record whose t_ms goes backwards. A
    // malformed MQTT payload (line 4) is not a broken line: it replays as received
    // and the collector rejects it, as live.
    let mut lines = vec![
        r#"{"t_ms":0,"topic":"sitewatch/v1/bj1/gw-01/state","retain":true,"payload":{"v":1,"status":"online","ts":1764080000000,"interval_ms":5000}}"#.to_owned(),
        "this is not json".to_owned(),
        r#"{"t_ms":1000,"payload":{}}"#.to_owned(),
        r#"{"t_ms":1000,"topic":"sitewatch/v1/bj1/gw-01/readings","payload":"{not json"}"#.to_owned(),
    ];
    for (i, t) in (5_000..=70_000).step_by(5_000).enumerate() {
        lines.push(format!(
            r#"{{"t_ms":{t},"topic":"sitewatch/v1/bj1/gw-01/readings","payload":{{"v":1,"seq":{},"ts":{},"readings":[{{"src":"modbus","dev":"ups-a","name":"on_battery","q":"ups_on_battery","value":1,"state":"critical"}}]}}}}"#,
            i + 1,
            1_764_080_000_000i64 + t,
        ));
        if t == 10_000 {
            lines.push(
                r#"{"t_ms":2000,"topic":"sitewatch/v1/bj1/gw-01/readings","payload":{}}"#
                    .to_owned(),
            );
        }
    }
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = replay_cli(&[path.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 2: not a replay record"), "{stderr}");
    assert!(stderr.contains("line 3: not a replay record"), "{stderr}");
    assert!(stderr.contains("missing field `topic`"), "{stderr}");
    assert!(stderr.contains("line 7: t_ms 2000 is before"), "{stderr}");
    // The UPS went on battery at 5 s: the L3 power is raised 20 s later.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout,
        "{\"t_ms\":25000,\"event\":\"raised\",\"site\":\"bj1\",\"level\":\"L3\",\"cause\":\"power\",\"subject\":\"bj1\",\"severity\":\"critical\"}\n"
    );
}

#[test]
fn replay_takes_the_engine_configuration_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    // A shorter generator grace than the default 20 s.
    std::fs::write(&config, "[signals.power]\ngenerator_start_grace = \"5s\"\n").unwrap();
    let recording = folder().join("power.jsonl");
    let out = replay_cli(&[
        recording.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    // On battery from the batch at 41 s: raised 5 s later instead of 20 s.
    assert_eq!(first["t_ms"], 46_000);
    assert_eq!(first["cause"], "power");
}
