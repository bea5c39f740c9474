#!/usr/bin/env bash
# Nothing acknowledged is lost (issue 18 item 3), measured on the release
# binaries: `sitewatch-sim load` publishes through a broker to the collector,
# and at the end every batch the simulated agents had acknowledged must have
# been ingested: the collector's readings counter at the acknowledged
# readings, 0 sequence gaps, 0 messages dropped by the broker. Prints one line
# per 10 s (the collector's RSS and CPU, the broker's queue for it, how long
# that sample's /metrics scrape took, the last signals evaluation's time) and a
# summary line; exit 0 pass, 1 fail.
#
#   scripts/bench-backpressure.sh embedded|mosquitto-default|mosquitto-shipped
#
#   embedded            the collector's own broker (in-process link with
#                       backpressure)
#   mosquitto-default   mosquitto 2 as installed: max_queued_messages 1000,
#                       max_inflight_messages 20
#   mosquitto-shipped   mosquitto with the queue settings of
#                       packaging/mosquitto/sitewatch.conf
#
#   AGENTS=500 SERIES=100 INTERVAL=100ms DURATION=20s RAMP=2s DRAIN=120s
#   OUT=/var/tmp/sitewatch-backpressure-<time>  BIN=$CARGO_TARGET_DIR/release
set -euo pipefail
cd "$(dirname "$0")/.."

broker=${1:?embedded, mosquitto-default or mosquitto-shipped}
agents=${AGENTS:-500}
series=${SERIES:-100}
interval=${INTERVAL:-100ms}
duration=${DURATION:-20s}
ramp=${RAMP:-2s}
drain=${DRAIN:-120s}
bin=${BIN:-${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}/release}
out=${OUT:-/var/tmp/sitewatch-backpressure-$(date -u +%Y%m%dT%H%M%S)}
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
trap 'exit 143' TERM
trap 'exit 130' INT

mqtt_port=$(free_port)
case "$broker" in
  embedded)
    http_port=$(free_port)
    ( ulimit -n "$(ulimit -Hn)"; exec "$bin/sitewatch-collector" --listen "127.0.0.1:$http_port" \
        --embedded-broker "127.0.0.1:$mqtt_port" --embedded-broker-v5 "127.0.0.1:$(free_port)" ) \
      > "$work/collector.log" 2>&1 &
    collector_pid=$!
    for _ in $(seq 1 200); do
      curl -sf "http://127.0.0.1:$http_port/healthz" > /dev/null && break
      sleep 0.1
    done
    ;;
  mosquitto-default|mosquitto-shipped)
    plain_mosquitto_conf "${broker#mosquitto-}"
    start_mosquitto
    start_collector
    ;;
  *) echo "unknown broker $broker" >&2; exit 2 ;;
esac
echo "broker: $broker; $agents agents x $series series every $interval for $duration (ramp $ramp)"
[ -f "$work/mosquitto.conf" ] && grep -E '^max_' "$work/mosquitto.conf" | sed 's/^/  mosquitto: /'

start=$(date +%s.%N)
( ulimit -n "$(ulimit -Hn)"; exec "$bin/sitewatch-sim" load --mqtt "mqtt://127.0.0.1:$mqtt_port" \
    --site bench --agents "$agents" --series "$series" --interval "$interval" \
    --duration "$duration" --ramp "$ramp" --drain "$drain" ) \
  > "$out/load-summary.json" 2> "$out/load.log" &
load_pid=$!

hz=$(getconf CLK_TCK)
read -r _ ticks0 <<< "$(proc_sample "$collector_pid")"
t_prev=$start
peak_queue=0
echo "t_s,collector_rss_kib,collector_cpu_pct,broker_queue,readings_total,scrape_s,evaluation_s" > "$out/samples.csv"
while kill -0 "$load_pid" 2>/dev/null; do
  for _ in $(seq 1 20); do
    kill -0 "$load_pid" 2>/dev/null || break
    sleep 0.5
    if [ "$broker" = embedded ]; then
      scrape
      q=$(metric sitewatch_broker_queued_messages)
      [ "$q" != NA ] && [ "${q%.*}" -gt "$peak_queue" ] && peak_queue=${q%.*}
    fi
  done
  # The 10 s scrape is timed (scrape_s): /metrics under load (issue 18's
  # p50/p99 row).
  scrape
  now=$(date +%s.%N)
  read -r rss ticks <<< "$(proc_sample "$collector_pid")"
  cpu=$(awk -v a="$ticks0" -v b="$ticks" -v hz="$hz" -v t0="$t_prev" -v t1="$now" \
    'BEGIN { if (a == "NA" || b == "NA") print "NA"; else printf "%.0f", 100 * (b - a) / hz / (t1 - t0) }')
  ticks0=$ticks t_prev=$now
  line="$(awk -v a="$start" -v b="$now" 'BEGIN { printf "%.0f", b - a }'),$rss,$cpu,$(metric sitewatch_broker_queued_messages),$(metric sitewatch_collector_readings_total),$scrape_s,$(metric sitewatch_collector_signal_evaluation_seconds)"
  echo "$line" >> "$out/samples.csv"
  echo "  $line"
done
wait "$load_pid" || true
load_pid=""

summary=$(grep '^{' "$out/load-summary.json" | tail -1)
acked_readings=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["readings_acked"])' "$summary")
elapsed=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["elapsed_s"])' "$summary")
# Ingest catches up on what is still queued (at mosquitto, or inside the
# collector): until every acknowledged reading is in, or the count has not
# moved for 30 s (what is missing then was lost), or 10 minutes.
last=-1 still=0
catch_up_end=$(( $(date +%s) + 600 ))
while [ "$(date +%s)" -lt "$catch_up_end" ]; do
  scrape
  n=$(metric sitewatch_collector_readings_total)
  [ "$n" = "$acked_readings" ] && break
  if [ "$n" = "$last" ]; then still=$((still + 1)); else still=0; fi
  [ "$still" -ge 6 ] && break
  last=$n
  sleep 5
done
done_at=$(date +%s.%N)
scrape
ingested=$(metric sitewatch_collector_readings_total)
gaps=$(metric sitewatch_collector_sequence_gaps_total)
broker_dropped=$(metric sitewatch_broker_dropped_messages_total)
[ "$broker" != embedded ] && broker_dropped="n/a (mosquitto does not say; the gaps do)"
python3 - "$summary" "$ingested" "$gaps" "$start" "$done_at" "$peak_queue" "$broker_dropped" <<'PY' | tee "$out/result.txt"
import json, sys
s = json.loads(sys.argv[1]); ingested = float(sys.argv[2]) if sys.argv[2] != "NA" else 0.0
gaps = sys.argv[3]; wall = float(sys.argv[5]) - float(sys.argv[4])
m = s["messages"]
print(f"batches made {m['made']}, acked {m['acked']}, dropped by the agents {m['dropped']}, never acked {m['unacked']}")
print(f"readings acked {s['readings_acked']}, ingested {ingested:.0f}, sequence gaps {gaps}, broker drops {sys.argv[7]}")
print(f"ingested {ingested / wall:,.0f} readings/s over {wall:.1f} s (load start to last reading ingested); broker queue peak {sys.argv[6]}")
ok = m["acked"] == m["made"] and ingested == s["readings_acked"] and gaps == "0"
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
