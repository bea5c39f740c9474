#!/usr/bin/env bash
# The soak: mosquitto + the collector + `sitewatch-sim load` (1,000 agents x 50
# series at 5 s by default) + two real agents, with the broker restarted every
# few minutes. Samples every process's RSS and CPU every 10 s into a CSV; at
# the end asserts 0 sequence gaps at the collector and no RSS growth of the
# collector or the agents beyond a bound. Exit 0 pass, 1 fail.
#
#   scripts/soak.sh [DURATION]      default 30m (s, m or h)
#
#   SOAK_AGENTS=1000 SOAK_SERIES=50 SOAK_INTERVAL=5s
#   SOAK_RESTART_EVERY=300          seconds between broker restarts
#   SOAK_RSS_GROWTH_PCT=20          allowed growth of the median RSS from the
#                                   first window after warm-up to the last (+4 MiB)
#   SOAK_WINDOW=300                 seconds per RSS window; the first is warm-up
#   SOAK_OUT=/var/tmp/sitewatch-soak-<time>   where the CSVs and logs go
#   BIN=$CARGO_TARGET_DIR/release   the binaries (built beforehand:
#     cargo build --release -p sitewatch-sim; cargo build --release -p sitewatch-collector -p sitewatch-agent)
set -euo pipefail
cd "$(dirname "$0")/.."

to_seconds() {
  local v=$1
  case "$v" in
    *h) echo $(( ${v%h} * 3600 )) ;;
    *m) echo $(( ${v%m} * 60 )) ;;
    *s) echo "${v%s}" ;;
    *) echo "$v" ;;
  esac
}

duration=$(to_seconds "${1:-30m}")
agents=${SOAK_AGENTS:-1000}
series=${SOAK_SERIES:-50}
interval=${SOAK_INTERVAL:-5s}
restart_every=${SOAK_RESTART_EVERY:-300}
growth_pct=${SOAK_RSS_GROWTH_PCT:-20}
window=${SOAK_WINDOW:-300}
bin=${BIN:-${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}/release}
out=${SOAK_OUT:-/var/tmp/sitewatch-soak-$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$out"
work=$out
# shellcheck source=scripts/load-lib.sh
. scripts/load-lib.sh

mosquitto_pid="" collector_pid="" load_pid="" agent1_pid="" agent2_pid=""
cleanup() {
  for p in $load_pid $agent1_pid $agent2_pid $collector_pid $mosquitto_pid; do
    kill -TERM "$p" 2>/dev/null || true
  done
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

start_agent() {
  "$bin/sitewatch-agent" run --mqtt "mqtt://127.0.0.1:$mqtt_port" --site soak --host "$1" \
    > "$out/agent-$1.log" 2>&1 &
}
start_agent real-01; agent1_pid=$!
start_agent real-02; agent2_pid=$!

# The load stops sending after $duration less a minute, then drains its acks.
load_for=$(( duration > 120 ? duration - 60 : duration / 2 ))
( ulimit -n "$(ulimit -Hn)"; exec "$bin/sitewatch-sim" load --mqtt "mqtt://127.0.0.1:$mqtt_port" \
    --site soak --agents "$agents" --series "$series" --interval "$interval" \
    --duration "${load_for}s" --ramp 10s --drain 40s ) > "$out/load-summary.json" 2> "$out/load.log" &
load_pid=$!

echo "soak: ${duration}s, $agents agents x $series series every $interval, broker restarts every ${restart_every}s; output in $out"
echo "t_s,proc,pid,rss_kib,cpu_percent" > "$out/samples.csv"
echo "t_s,sequence_gaps,messages,readings,duplicates,hosts" > "$out/collector.csv"
hz=$(getconf CLK_TCK)
declare -A last_ticks
start=$(date +%s)
next_restart=$restart_every
restarts=0
while :; do
  now=$(( $(date +%s) - start ))
  [ "$now" -ge "$duration" ] && break
  for name in collector mosquitto real-01 real-02 load; do
    case $name in
      collector) pid=$collector_pid ;; mosquitto) pid=$mosquitto_pid ;;
      real-01) pid=$agent1_pid ;; real-02) pid=$agent2_pid ;; load) pid=$load_pid ;;
    esac
    read -r rss ticks < <(proc_sample "$pid")
    [ "$rss" = NA ] && continue
    prev=${last_ticks[$name.$pid]:-}
    cpu=NA
    [ -n "$prev" ] && cpu=$(awk -v a="$prev" -v b="$ticks" -v hz="$hz" 'BEGIN { printf "%.1f", (b - a) * 100 / hz / 10 }')
    last_ticks[$name.$pid]=$ticks
    echo "$now,$name,$pid,$rss,$cpu" >> "$out/samples.csv"
  done
  scrape
  echo "$now,$(metric sitewatch_collector_sequence_gaps_total),$(metric sitewatch_collector_messages_total),$(metric sitewatch_collector_readings_total),$(metric sitewatch_collector_duplicate_messages_total),$(metric sitewatch_collector_hosts)" >> "$out/collector.csv"
  if [ "$now" -ge "$next_restart" ] && [ "$now" -lt "$(( load_for - 30 ))" ]; then
    echo "soak: t=${now}s restarting the broker"
    stop_mosquitto
    sleep 2
    start_mosquitto
    restarts=$(( restarts + 1 ))
    next_restart=$(( next_restart + restart_every ))
  fi
  sleep 10
done

wait "$load_pid" || echo "soak: the load exited with $?"
load_pid=""
sleep 10
scrape
gaps=$(metric sitewatch_collector_sequence_gaps_total)
echo "soak: broker restarts $restarts, collector sequence gaps $gaps"
echo "soak: load summary $(cat "$out/load-summary.json")"

python3 - "$out" "$window" "$growth_pct" "$gaps" <<'PY'
import csv, statistics, sys
out, window, growth, gaps = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
rows = list(csv.DictReader(open(f"{out}/samples.csv")))
procs = ["collector", "real-01", "real-02", "mosquitto", "load"]
windows = {}
for r in rows:
    windows.setdefault(r["proc"], {}).setdefault(int(r["t_s"]) // window, []).append(r)
lines = [f"| process | window (min) | RSS min / median / max (MiB) | CPU median / max (%) |", "|---|---|---|---|"]
failed = []
for p in procs:
    for w, rs in sorted(windows.get(p, {}).items()):
        rss = [int(r["rss_kib"]) / 1024 for r in rs]
        cpu = [float(r["cpu_percent"]) for r in rs if r["cpu_percent"] != "NA"]
        c = f"{statistics.median(cpu):.1f} / {max(cpu):.1f}" if cpu else "-"
        lines.append(f"| {p} | {w*window//60}-{(w+1)*window//60} | {min(rss):.1f} / {statistics.median(rss):.1f} / {max(rss):.1f} | {c} |")
    ws = sorted(windows.get(p, {}).items())
    if p in ("collector", "real-01", "real-02") and len(ws) >= 3:
        first = statistics.median(int(r["rss_kib"]) for r in ws[1][1]) / 1024
        last = statistics.median(int(r["rss_kib"]) for r in ws[-1][1]) / 1024
        bound = first * (1 + growth / 100) + 4
        verdict = "ok" if last <= bound else "GROWTH"
        print(f"soak: {p} median RSS {first:.1f} MiB after warm-up, {last:.1f} MiB in the last window (bound {bound:.1f}): {verdict}")
        if last > bound:
            failed.append(p)
open(f"{out}/rss-windows.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
if gaps != "0":
    print(f"soak: FAIL: {gaps} sequence gaps")
    sys.exit(1)
if failed:
    print(f"soak: FAIL: RSS growth in {', '.join(failed)}")
    sys.exit(1)
print("soak: PASS")
PY
