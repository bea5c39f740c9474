#!/usr/bin/env bash
# The agent's size budget (issue 18, README "Feature sets"): the stripped
# release agent for a target, with every source (what the packages ship) and
# as a gateway build (Modbus, SNMP and network probes only), each against its
# budget. Exit 1 when a build is over.
#
#   packaging/size-budget.sh [TARGET]     # default aarch64-unknown-linux-gnu (the arm64 deb)
#
#   FULL_BUDGET=6000000 GATEWAY_BUDGET=4000000 GATEWAY_FEATURES=modbus,snmp,net
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}"
target="${1:-aarch64-unknown-linux-gnu}"
full_budget="${FULL_BUDGET:-6000000}"
gateway_budget="${GATEWAY_BUDGET:-4000000}"
gateway_features="${GATEWAY_FEATURES:-modbus,snmp,net}"
case "$target" in
  x86_64-*) strip=strip ;;
  aarch64-*) strip=aarch64-linux-gnu-strip ;;
  armv7-*) strip=arm-linux-gnueabihf-strip ;;
  *) echo "size-budget: no strip known for $target" >&2; exit 2 ;;
esac
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
over=0
# measure LABEL BUDGET CARGO-FEATURE-ARGS...
measure() {
  local label="$1" budget="$2"; shift 2
  cargo build --release --locked --target "$target" -p sitewatch-agent "$@"
  cp "$CARGO_TARGET_DIR/$target/release/sitewatch-agent" "$work/$label"
  "$strip" "$work/$label"
  local size
  size="$(stat -c %s "$work/$label")"
  local verdict=ok
  [ "$size" -le "$budget" ] || { verdict=OVER; over=1; }
  printf 'size-budget: %s %s: %d bytes stripped (budget %d): %s\n' "$target" "$label" "$size" "$budget" "$verdict"
}
measure full "$full_budget"
measure "gateway[$gateway_features]" "$gateway_budget" --no-default-features --features "$gateway_features"
# Leave the full build in place for whatever packages it next.
cargo build --release --locked --target "$target" -p sitewatch-agent > /dev/null 2>&1
exit "$over"
