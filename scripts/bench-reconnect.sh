#!/usr/bin/env bash
# Reconnect spread: 10,000 simulated agents (`sitewatch-sim load`) on one
# mosquitto, the collector behind it, and the broker restarted mid-run. Prints
# the reconnects per second over the backoff window (from the load's own
# summary), the messages acknowledged, and the collector's sequence gaps,
# which must be 0. Exit 0 pass, 1 fail.
#
#   scripts/bench-reconnect.sh
#
#   AGENTS=10000 SERIES=10 INTERVAL=5s RAMP=30s
#   RESTART_AT=60        seconds after the load started
#   OUTAGE=2             seconds the broker stays down
#   DURATION=120s        how long the agents send, after the ramp
#   BACKOFF_MAX=10s      the load's full-jitter backoff cap
#   OUT=/var/tmp/sitewatch-reconnect-<time>
#   BIN=$CARGO_TARGET_DIR/release
set -euo pipefail
cd "$(dirname "$0")/.."

agents=${AGENTS:-10000}
series=${SERIES:-10}
interval=${INTERVAL:-5s}
ramp=${RAMP:-30s}
restart_at=${RESTART_AT:-60}
outage=${OUTAGE:-2}
duration=${DURATION:-120s}
backoff_max=${BACKOFF_MAX:-10s}
bin=${BIN:-${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}/release}
out=${OUT:-/var/tmp/sitewatch-reconnect-$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$out"
work=$out
# shellcheck source=scripts/load-lib.sh
. scripts/load-lib.sh

mosquitto_pid="" collector_pid="" load_pid=""
cleanup() {
  for p in $load_pid $collector_pid $mosquitto_pid; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
# A TERM or Ctrl-C runs the EXIT trap too (bash skips it on a signal it does not trap).
trap 'exit 143' TERM
trap 'exit 130' INT

mqtt_port=$(free_port)
mosquitto_conf
start_mosquitto
start_collector

start=$(date +%s.%N)
( ulimit -n "$(ulimit -Hn)"; exec "$bin/sitewatch-sim" load --mqtt "mqtt://127.0.0.1:$mqtt_port" \
    --site bench --agents "$agents" --series "$series" --interval "$interval" \
    --duration "$duration" --ramp "$ramp" --drain 60s --backoff-max "$backoff_max" ) \
  > "$out/load-summary.json" 2> "$out/load.log" &
load_pid=$!

sleep "$restart_at"
echo "t=${restart_at}s: connections at the broker before the restart: $(ss -Htn state established "( sport = :$mqtt_port )" | wc -l)"
stop_mosquitto
down=$(date +%s.%N)
sleep "$outage"
start_mosquitto
up=$(date +%s.%N)
echo "broker down from t=$(awk -v a="$start" -v b="$down" 'BEGIN { printf "%.1f", b - a }')s to t=$(awk -v a="$start" -v b="$up" 'BEGIN { printf "%.1f", b - a }')s"

wait "$load_pid"
load_pid=""
sleep 5
scrape
gaps=$(metric sitewatch_collector_sequence_gaps_total)
readings=$(metric sitewatch_collector_readings_total)
duplicates=$(metric sitewatch_collector_duplicate_messages_total)
echo "collector: sequence gaps $gaps, readings ingested $readings, duplicates dropped $duplicates"
python3 - "$out/load-summary.json" "$gaps" "$readings" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
gaps, readings = sys.argv[2], sys.argv[3]
m, r = s["messages"], s["reconnects"]
print(f"agents {s['agents']}, first connects {s['first_connects']}, connections lost {s['connections_lost']}, connect failures {s['connect_failures']}")
print(f"messages made {m['made']}, sent {m['sent']}, resent {m['resent']}, acked {m['acked']}, dropped {m['dropped']}, unacked {m['unacked']}; readings acked {s['readings_acked']}")
print(f"reconnects {r['total']} over {r['window_s']} s, at most {r['max_per_second']} in one second")
per = r["per_second"]
first = next((i for i, n in enumerate(per) if n), None)
if first is not None:
    print("second (since the load started): reconnects")
    for i in range(first, len(per)):
        print(f"  {i:4d}: {per[i]:6d} {'#' * (per[i] * 60 // max(1, r['max_per_second']))}")
ok = gaps == "0" and m["unacked"] == 0 and m["dropped"] == 0 and r["total"] == s["connections_lost"]
ok = ok and float(readings) == float(s["readings_acked"])
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
