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
# EMBEDDED=1 adds a third leg to each run: the collector with its embedded
# broker, fed by the same load generator (the same agents and batch count,
# every 1 ms) from its start, timed from the load's start to its last
# acknowledged reading ingested. The embedded broker queues nothing for the
# collector (a slow collector slows the publishers: README "Slow
# subscribers"), so this leg cannot be queued first: the publisher shares the
# cores with the collector, where the drains have them alone. Its ratio is to
# the same run's `mosquitto_sub` drain.
#
# Prints one line per run and a summary (medians); exit 0 when the median
# ratio is >= 0.9, 1 otherwise. PROFILE=1 records each collector drain with
# `perf record -g` into $OUT/perf-<run>.data.
#
#   AGENTS=100 SERIES=100 BATCHES=100000 RUNS=3 PROFILE= EMBEDDED=
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

# The embedded leg of run $1: sets $embedded to
# "readings,seconds,readings/s,ratio,cpu", the ratio to the drain of $2
# seconds for $3 readings. Not in a subshell, so that the trap stops its
# collector if it fails.
embedded_leg() {
  local run=$1 sub_s=$2 sub_n=$3
  local attempt
  # A port free when picked can be taken by the time the collector binds it
  # (the load's many connections take ephemeral ports): try a few pairs.
  for attempt in 1 2 3 4 5; do
    mqtt_port=$(free_port)
    http_port=$(free_port)
    "$bin/sitewatch-collector" --listen "127.0.0.1:$http_port" \
      --embedded-broker "127.0.0.1:$mqtt_port" > "$work/collector-embedded.log" 2>&1 &
    collector_pid=$!
    for _ in $(seq 1 200); do
      curl -sf "http://127.0.0.1:$http_port/healthz" > /dev/null && break 2
      kill -0 "$collector_pid" 2>/dev/null || break
      sleep 0.1
    done
    wait "$collector_pid" 2>/dev/null || true; collector_pid=""
    echo "run $run: the embedded collector did not start (attempt $attempt)" >&2
  done
  [ -n "$collector_pid" ] || exit 1
  wait_port "$mqtt_port"
  local t0 n e_s ticks acked want deadline
  t0=$(now)
  "$bin/sitewatch-sim" load --mqtt "mqtt://127.0.0.1:$mqtt_port" --site bench \
    --agents "$agents" --series "$series" --interval 1ms --first-batch-within 1ms \
    --ramp 100ms --duration "${per_agent}ms" --drain 60s \
    > "$out/load-embedded-$run.json" 2> "$out/load-embedded-$run.log"
  acked=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["messages"]["acked"])' "$out/load-embedded-$run.json")
  want=$((acked * series))
  deadline=$(( $(date +%s) + 300 ))
  while :; do
    n=$(readings_ingested)
    [ "$n" = "$want" ] && break
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "run $run: the embedded collector ingested $n of $want readings in 300 s" >&2
      exit 1
    fi
    sleep 0.1
  done
  e_s=$(elapsed "$t0" "$(now)")
  read -r _ ticks <<< "$(proc_sample "$collector_pid")"
  kill -TERM "$collector_pid"; wait "$collector_pid" 2>/dev/null || true; collector_pid=""
  embedded=$(awk -v n="$want" -v e="$e_s" -v s="$sub_s" -v sn="$sub_n" -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    printf "%d,%.3f,%.0f,%.3f,%.0f", n, e, n / e, (n / e) / (sn / s), 100 * t / hz / e }')
}

echo "run,readings,sub_s,sub_readings_per_s,collector_s,collector_readings_per_s,ratio,collector_cpu_pct,embedded_readings,embedded_s,embedded_readings_per_s,embedded_ratio,embedded_cpu_pct" > "$out/runs.csv"
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

  embedded=",,,,"
  if [ -n "${EMBEDDED:-}" ]; then
    embedded_leg "$run" "$sub_s" "$want"
  fi

  line=$(awk -v run="$run" -v n="$want" -v s="$sub_s" -v c="$collector_s" -v cpu="$cpu" -v e="$embedded" 'BEGIN {
    printf "%d,%d,%.3f,%.0f,%.3f,%.0f,%.3f,%d,%s", run, n, s, n / s, c, n / c, s / c, cpu, e }')
  echo "$line" >> "$out/runs.csv"
  echo "  $line"
done

awk -F, 'NR > 1 { s[NR - 1] = $4; c[NR - 1] = $6; r[NR - 1] = $7; er[NR - 1] = $12; ec[NR - 1] = $11; n = NR - 1 }
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    printf "mosquitto_sub median %.0f readings/s, collector median %.0f readings/s, ratio median %.3f\n",
      median(s, n), median(c, n), median(r, n)
    if (ec[1] != "")
      printf "embedded broker: collector median %.0f readings/s, ratio median %.3f\n", median(ec, n), median(er, n)
    print (median(r, n) >= 0.9 ? "PASS" : "FAIL")
  }' "$out/runs.csv" | tee "$out/result.txt"
grep -q PASS "$out/result.txt"
