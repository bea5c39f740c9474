//! Where the interop tests find the shared test data, and what they do without it.
//!
//! Real device captures (smartctl output, ipmi_sim configurations, register
//! facts transcribed from vendors' documents) live in `../shared/testdata`
//! beside the checkout, never in the repository. A fresh clone has no such
//! folder: a test that needs it asks [`dir`], which then writes
//! `SKIPPED: ../shared/testdata not present (...)` to the test's stderr and
//! returns `None`, and the test returns early and passes.
//!
//! CI has the folder and must not skip silently: with
//! `SITEWATCH_REQUIRE_SHARED=1` (set by `.ci/run`) a missing folder fails the
//! test instead. A folder that is there but lacks the part a test asks for is a
//! broken copy and always fails.
//!
//! For tests only: failing loudly is its job, hence the panics.

#![allow(clippy::panic)] // test support: a missing required folder must fail the test

use std::io::Write;
use std::path::{Path, PathBuf};

/// Set to `1` to make a missing `../shared/testdata` a failure (CI does).
pub const REQUIRE_VAR: &str = "SITEWATCH_REQUIRE_SHARED";

/// Names the shared folder when it is not `../shared/testdata` beside the
/// checkout (a worktree elsewhere); the fuzz seed script reads it too.
pub const DIR_VAR: &str = "SITEWATCH_SHARED_TESTDATA";

/// `$SITEWATCH_SHARED_TESTDATA`, else `../shared/testdata` beside the checkout.
///
/// Found from the running test's package (cargo sets `CARGO_MANIFEST_DIR` for
/// every test process; each package sits one level below the checkout), not
/// from this crate's compile-time path: a target directory shared by two
/// checkouts (a fresh clone reusing `/var/tmp/sitewatch-target`) may hold this
/// crate compiled in the other one.
pub fn root() -> PathBuf {
    if let Some(dir) = std::env::var_os(DIR_VAR).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    package.join("../../shared/testdata")
}

/// `../shared/testdata/<sub>`, or `None` (after a SKIPPED line) when the shared
/// folder is absent and not required. `what` names the test data for the line.
pub fn dir(sub: &str, what: &str) -> Option<PathBuf> {
    let required = std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1");
    match locate(&root(), sub, required) {
        Located::Found(path) => Some(path),
        Located::Skip => {
            // Straight to the stderr handle: libtest captures `eprintln!` of a
            // passing test, and a skip must show in a plain `cargo test` run.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: ../shared/testdata not present ({what})"
            );
            None
        }
        Located::Fail(why) => panic!("{why}"),
    }
}

/// What [`dir`] decided.
#[derive(Debug, PartialEq, Eq)]
enum Located {
    Found(PathBuf),
    Skip,
    Fail(String),
}

fn locate(root: &Path, sub: &str, required: bool) -> Located {
    if !root.is_dir() {
        return if required {
            Located::Fail(format!(
                "{REQUIRE_VAR}=1 but the shared test data is missing: {} is not a directory",
                root.display()
            ))
        } else {
            Located::Skip
        };
    }
    let path = root.join(sub);
    if path.exists() {
        Located::Found(path)
    } else {
        Located::Fail(format!(
            "{} exists but has no {sub}: the shared test data is incomplete",
            root.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_absent_folder_is_skipped_unless_required() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("shared/testdata");
        assert_eq!(locate(&absent, "smartctl", false), Located::Skip);
        assert!(matches!(
            locate(&absent, "smartctl", true),
            Located::Fail(why) if why.contains(REQUIRE_VAR)
        ));
    }

    #[test]
    fn a_present_folder_gives_the_part_asked_for_or_fails_without_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("smartctl")).unwrap();
        for required in [false, true] {
            assert_eq!(
                locate(dir.path(), "smartctl", required),
                Located::Found(dir.path().join("smartctl"))
            );
            assert!(matches!(
                locate(dir.path(), "modbus", required),
                Located::Fail(why) if why.contains("incomplete")
            ));
        }
    }
}
