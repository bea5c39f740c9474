//! The committed corpus (`fuzz/corpus/<target>/`, minimized by
//! `fuzz/cmin.sh`) replayed through every target: each input libFuzzer kept
//! for its coverage, and each one that once crashed a target, must pass
//! without a panic. This is how `cargo test` and CI keep the fuzzers' findings
//! fixed without building libFuzzer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use sitewatch_fuzz_targets::TARGETS;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// The committed inputs (the run-time seeds and what a run grows live in
/// `fuzz/seeds/` and `fuzz/work/`, git-ignored).
fn committed(target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(corpus_dir(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_committed_corpus() {
    let empty: Vec<&str> = TARGETS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| committed(name).is_empty())
        .collect();
    assert!(
        empty.is_empty(),
        "no committed corpus in fuzz/corpus/ for {empty:?}: run fuzz/run.sh then fuzz/cmin.sh"
    );
}

#[test]
fn every_committed_input_passes_its_target_without_a_panic() {
    let mut failed = Vec::new();
    let mut total = 0;
    for (name, run) in TARGETS {
        let files = committed(name);
        for file in &files {
            let data = match std::fs::read(file) {
                Ok(d) => d,
                Err(e) => panic!("{}: {e}", file.display()),
            };
            if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                failed.push(file.display().to_string());
            }
        }
        eprintln!("{name}: {} inputs", files.len());
        total += files.len();
    }
    eprintln!("{total} inputs in all");
    assert!(failed.is_empty(), "inputs that panic: {failed:#?}");
}
