#!/usr/bin/env bash
# The agent's size budget (issue 18, README "Feature sets"): the stripped
# agent for a target, built with the packages' `dist` profile (Cargo.toml), with every source (what the packages ship) and
# as a gateway build (Modbus, SNMP and network probes only), each against its
# budget. Exit 1 when a build is over, naming the build and its figures.
# CI (.ci/run) runs it for aarch64.
#
#   packaging/size-budget.sh [TARGET]     # default aarch64-unknown-linux-gnu (the arm64 deb)
#
#   FULL_BUDGET=6000000 GATEWAY_BUDGET=4000000 GATEWAY_FEATURES=modbus,snmp,net PROFILE=dist
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}"
target="${1:-aarch64-unknown-linux-gnu}"
full_budget="${FULL_BUDGET:-6000000}"
gateway_budget="${GATEWAY_BUDGET:-4000000}"
gateway_features="${GATEWAY_FEATURES:-modbus,snmp,net}"
profile="${PROFILE:-dist}"
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
  cargo build --profile "$profile" --locked --target "$target" -p sitewatch-agent "$@"
  cp "$CARGO_TARGET_DIR/$target/$profile/sitewatch-agent" "$work/$label"
  "$strip" "$work/$label"
  local size
  size="$(stat -c %s "$work/$label")"
  if [ "$size" -le "$budget" ]; then
    printf 'size-budget: %s %s (profile %s): %d bytes stripped, budget %d: ok (%d to spare)\n' \
      "$target" "$label" "$profile" "$size" "$budget" "$((budget - size))"
  else
    printf 'size-budget: FAILED: %s %s (profile %s) is %d bytes stripped, over its budget of %d by %d bytes\n' \
      "$target" "$label" "$profile" "$size" "$budget" "$((size - budget))" >&2
    over=1
  fi
}
measure full "$full_budget"
measure "gateway[$gateway_features]" "$gateway_budget" --no-default-features --features "$gateway_features"
exit "$over"
