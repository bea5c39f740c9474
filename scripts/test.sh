#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs every missing test peer, then
# formatting, lints, and every test (unit, interop and end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds live outside the checkout so that later runs on the same machine (and
# fresh clones, as in CI) reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

scripts/install-test-deps.sh

echo "== format"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== build"
# The end-to-end tests run the real binaries.
cargo build --workspace --bins --locked
echo "== test"
cargo test --workspace --locked --no-fail-fast
