#!/usr/bin/env bash
# Detection time of the site drills (site-link-cut, site-isolated, site-down):
# runs tests/tests/site_drills.rs RUNS times (default 5) against the
# network-namespace deployment (needs root and iproute2) and prints, per
# drill, each run's detection time (fault to signal at every observer that
# owes it, as `sitewatch-sim drill` measures it) with the median and the worst.
# The figures go to BENCHMARKS.md, "Surviving the loss of a site".
#
#   sudo scripts/site-drills-bench.sh            # RUNS=5
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-5}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}"
cargo build -q -p sitewatch-sim -p sitewatch-collector -p sitewatch-agent --bins
cargo test -q -p sitewatch-tests --test site_drills --no-run
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for i in $(seq 1 "$runs"); do
  echo "== run $i of $runs" >&2
  # One deployment at a time: the timings are not shared with another one's.
  cargo test -q -p sitewatch-tests --test site_drills -- --nocapture --test-threads 1 \
    >>"$log" 2>&1 || { tail -50 "$log" >&2; exit 1; }
done
python3 - "$log" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    try:
        step = json.loads(line)
    except ValueError:
        continue
    if step.get("step") == "result":
        runs.setdefault(step["drill"], []).append(step)
print("| drill | runs | passed | detection (s), each run | median | worst |")
print("|---|---|---|---|---|---|")
for drill, results in sorted(runs.items()):
    times = [r["detect_ms"] / 1000 for r in results if r.get("detect_ms") is not None]
    each = ", ".join(f"{t:.1f}" for t in times)
    med = f"{statistics.median(times):.1f}" if times else "-"
    worst = f"{max(times):.1f}" if times else "-"
    passed = sum(1 for r in results if r.get("pass"))
    print(f"| {drill} | {len(results)} | {passed} | {each} | {med} | {worst} |")
PY
