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
echo "== packages: x86_64 deb, rpm and static tarball; lintian, rpm queries, install and purge"
packaging/build.sh --targets x86_64-unknown-linux-gnu,x86_64-unknown-linux-musl
packaging/check.sh
echo "== agent unit tests on aarch64 and armv7 (cross-compiled, run under qemu-user)"
# The release cross builds are packaging/build.sh's job (minutes each); CI checks
# that the agent compiles and behaves on the gateways' architectures.
for target in aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf; do
  cargo test -p sitewatch-agent --lib --locked --target "$target"
done
