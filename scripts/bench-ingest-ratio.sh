#!/usr/bin/env bash
# Ingest through mosquitto as a ratio to `mosquitto_sub` on the same stream
# (issue 18: ">= 0.9"), on the release binaries.
#
# The stream is queued first, then drained by each consumer alone, so that
# neither shares the cores with the publisher or with the other: the
# collector and a `mosquitto_sub -c` each make a persistent session at QoS 1
# and leave; `sitewatch-sim load` publishes BATCHES batches of SERIES
# readings from AGENTS agents (mosquitto queues every one for both
# sessions); then `mosquitto_sub` comes back and takes its readings batches
# to /dev/null, and the collector comes back and ingests the whole queue.
# Each drain is timed from the consumer's start to its last reading (the
# collector's `sitewatch_collector_readings_total`, polled every 100 ms;
# its CPU over the drain is the last column).
# Mosquitto runs with the shipped queue settings but no byte limit on the
# queue (`max_queued_bytes 0`): the queue here is the whole stream at once.
#
# Prints one line per run and a summary (medians); exit 0 when the median
# ratio is >= 0.9, 1 otherwise. PROFILE=1 records each collector drain with
# `perf record -g` into $OUT/perf-<run>.data.
#
#   AGENTS=100 SERIES=100 BATCHES=100000 RUNS=3 PROFILE=
#   OUT=/var/tmp/sitewatch-ratio-<time>  BIN=$CARGO_TARGET_DIR/release
set -euo pipefail
cd "$(dirname "$0")/.."

agents=${AGENTS:-100}
series=${SERIES:-100}
batches=${BATCHES:-100000}
runs=${RUNS:-3}
bin=${BIN:-${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}/release}
out=${OUT:-/var/tmp/sitewatch-ratio-$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$out"
work=$out
# shellcheck source=scripts/load-lib.sh
. scripts/load-lib.sh

mosquitto_pid="" collector_pid="" sub_pid=""
cleanup() {
  for p in $sub_pid $collector_pid $mosquitto_pid; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

per_agent=$(( (batches + agents - 1) / agents ))
# Each agent sends a batch every 10 ms for per_agent × 10 ms: as fast as the
# load generator goes, bounded by the count.
duration_ms=$(( per_agent * 10 ))
readings_topic="sitewatch/v1/+/+/readings"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# The collector's readings counter, read from a small scrape (this fleet's
# exposition is about 1 MB).
readings_ingested() {
  scrape
  metric sitewatch_collector_readings_total
}

echo "run,readings,sub_s,sub_readings_per_s,collector_s,collector_readings_per_s,ratio,collector_cpu_pct" > "$out/runs.csv"
echo "ingest ratio: $agents agents x $per_agent batches x $series readings, queued in mosquitto, drained by each consumer; output in $out"
for run in $(seq 1 "$runs"); do
  rm -rf "$work/mosquitto"
  mqtt_port=$(free_port)
  plain_mosquitto_conf shipped
  sed -i 's/^max_queued_bytes .*/max_queued_bytes 0/' "$work/mosquitto.conf"
  start_mosquitto

  # The two persistent sessions, made and left.
  cat > "$out/collector.toml" <<CONF
[mqtt]
client_id = "bench-ratio-collector"
CONF
  collector_config=$out/collector.toml
  start_collector
  # Connected, then a second for its SUBACKs.
  for _ in $(seq 1 100); do
    scrape
    [ "$(metric sitewatch_collector_broker_connected)" = 1 ] && break
    sleep 0.1
  done
  sleep 1
  kill -TERM "$collector_pid"; wait "$collector_pid" 2>/dev/null || true; collector_pid=""
  mosquitto_sub -p "$mqtt_port" -c -i bench-ratio-sub -q 1 -t "$readings_topic" -E

  "$bin/sitewatch-sim" load --mqtt "mqtt://127.0.0.1:$mqtt_port" --site bench \
    --agents "$agents" --series "$series" --interval 10ms --first-batch-within 10ms \
    --ramp 1s --duration "${duration_ms}ms" --drain 30s \
    > "$out/load-$run.json" 2> "$out/load-$run.log"
  acked=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["messages"]["acked"])' "$out/load-$run.json")
  want=$((acked * series))

  t0=$(now)
  mosquitto_sub -p "$mqtt_port" -c -i bench-ratio-sub -q 1 -t "$readings_topic" -C "$acked" > /dev/null
  sub_s=$(elapsed "$t0" "$(now)")

  t0=$(now)
  start_collector
  perf_pid=""
  if [ -n "${PROFILE:-}" ]; then
    perf record -F 999 -g -p "$collector_pid" -o "$out/perf-$run.data" 2> "$out/perf-$run.log" &
    perf_pid=$!
  fi
  deadline=$(( $(date +%s) + 300 ))
  while :; do
    n=$(readings_ingested)
    [ "$n" = "$want" ] && break
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "run $run: the collector ingested $n of $want readings in 300 s" >&2
      exit 1
    fi
    sleep 0.1
  done
  collector_s=$(elapsed "$t0" "$(now)")
  read -r _ ticks <<< "$(proc_sample "$collector_pid")"
  cpu=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v s="$collector_s" 'BEGIN { printf "%.0f", 100 * t / hz / s }')
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  kill -TERM "$collector_pid"; wait "$collector_pid" 2>/dev/null || true; collector_pid=""
  stop_mosquitto; mosquitto_pid=""

  line=$(awk -v run="$run" -v n="$want" -v s="$sub_s" -v c="$collector_s" -v cpu="$cpu" 'BEGIN {
    printf "%d,%d,%.3f,%.0f,%.3f,%.0f,%.3f,%d", run, n, s, n / s, c, n / c, s / c, cpu }')
  echo "$line" >> "$out/runs.csv"
  echo "  $line"
done

awk -F, 'NR > 1 { s[NR - 1] = $4; c[NR - 1] = $6; r[NR - 1] = $7; n = NR - 1 }
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    printf "mosquitto_sub median %.0f readings/s, collector median %.0f readings/s, ratio median %.3f\n",
      median(s, n), median(c, n), median(r, n)
    print (median(r, n) >= 0.9 ? "PASS" : "FAIL")
  }' "$out/runs.csv" | tee "$out/result.txt"
grep -q PASS "$out/result.txt"
