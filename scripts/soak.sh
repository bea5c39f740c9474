#!/usr/bin/env bash
# The soak: mosquitto + the collector + `sitewatch-sim load` (1,000 agents x 50
# series at 5 s by default) + two real agents, with the broker restarted every
# few minutes, and churn: every SOAK_CHURN_EVERY seconds a wave of short-lived
# simulated hosts (a new host prefix each time, so new series) comes and goes,
# every other wave killed with SIGKILL (its wills fire) rather than stopped;
# their series expire and the hosts are forgotten (`forget_after` 1m). Samples
# every process's RSS, CPU, open file descriptors and threads every 10 s into a
# CSV; at the end asserts 0 sequence gaps at the collector, no RSS growth of
# the collector or the agents beyond a bound, and no growth of their file
# descriptors or threads. Exit 0 pass, 1 fail.
#
#   scripts/soak.sh [DURATION]      default 30m (s, m or h)
#
#   SOAK_AGENTS=1000 SOAK_SERIES=50 SOAK_INTERVAL=5s
#   SOAK_RESTART_EVERY=300          seconds between broker restarts
#   SOAK_RSS_GROWTH_PCT=20          allowed growth of the median RSS from the
#                                   first window after warm-up to the last (+4 MiB)
#   SOAK_WINDOW=300                 seconds per RSS window; the first is warm-up
#   SOAK_CHURN_EVERY=120 SOAK_CHURN_AGENTS=200   a churn wave's period and size (0: none)
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
churn_every=${SOAK_CHURN_EVERY:-120}
churn_agents=${SOAK_CHURN_AGENTS:-200}
bin=${BIN:-${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}/release}
out=${SOAK_OUT:-/var/tmp/sitewatch-soak-$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$out"
work=$out
# shellcheck source=scripts/load-lib.sh
. scripts/load-lib.sh

mosquitto_pid="" collector_pid="" load_pid="" agent1_pid="" agent2_pid="" churn_pid=""
cleanup() {
  for p in $churn_pid $load_pid $agent1_pid $agent2_pid $collector_pid $mosquitto_pid; do
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
# Hosts that left are forgotten after a minute (the least `forget_after` takes),
# so that churn exercises the collector's whole expiry path within the soak.
cat > "$out/collector.toml" <<CONF
[state]
forget_after = "1m"
CONF
collector_config=$out/collector.toml
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
echo "t_s,proc,pid,rss_kib,cpu_percent,fds,threads" > "$out/samples.csv"
echo "t_s,sequence_gaps,messages,readings,duplicates,hosts,series,forgotten_hosts" > "$out/collector.csv"
hz=$(getconf CLK_TCK)
declare -A last_ticks
start=$(date +%s)
next_restart=$restart_every
restarts=0
next_churn=$churn_every
waves=0
# A churn wave: $churn_agents new hosts for 60 s; an odd wave is killed
# (SIGKILL: no clean stop, the broker publishes the wills), an even one stops
# by itself (clean-stop states).
start_wave() {
  waves=$(( waves + 1 ))
  local prefix="churn$waves"
  ( ulimit -n "$(ulimit -Hn)"; exec "$bin/sitewatch-sim" load --mqtt "mqtt://127.0.0.1:$mqtt_port" \
      --site soak --host-prefix "$prefix" --agents "$churn_agents" --series "$series" \
      --interval "$interval" --duration 60s --ramp 5s --drain 10s ) \
    > "$out/churn-$waves.json" 2> "$out/churn-$waves.log" &
  churn_pid=$!
  churn_kill_at=$(( now + 45 ))
  (( waves % 2 == 1 )) || churn_kill_at=""
}
churn_kill_at=""
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
    fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    threads=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    prev=${last_ticks[$name.$pid]:-}
    cpu=NA
    [ -n "$prev" ] && cpu=$(awk -v a="$prev" -v b="$ticks" -v hz="$hz" 'BEGIN { printf "%.1f", (b - a) * 100 / hz / 10 }')
    last_ticks[$name.$pid]=$ticks
    echo "$now,$name,$pid,$rss,$cpu,$fds,${threads:-NA}" >> "$out/samples.csv"
  done
  scrape
  echo "$now,$(metric sitewatch_collector_sequence_gaps_total),$(metric sitewatch_collector_messages_total),$(metric sitewatch_collector_readings_total),$(metric sitewatch_collector_duplicate_messages_total),$(metric sitewatch_collector_hosts),$(metric sitewatch_collector_series),$(metric sitewatch_collector_forgotten_hosts_total)" >> "$out/collector.csv"
  if [ -n "$churn_kill_at" ] && [ "$now" -ge "$churn_kill_at" ]; then
    kill -KILL "$churn_pid" 2>/dev/null || true
    wait "$churn_pid" 2>/dev/null || true
    churn_pid="" churn_kill_at=""
  fi
  if [ "$churn_every" -gt 0 ] && [ "$now" -ge "$next_churn" ] && [ "$now" -lt "$(( load_for - 90 ))" ]; then
    if [ -n "$churn_pid" ]; then wait "$churn_pid" 2>/dev/null || true; fi
    start_wave
    next_churn=$(( next_churn + churn_every ))
  fi
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
if [ -n "$churn_pid" ]; then wait "$churn_pid" 2>/dev/null || true; churn_pid=""; fi
sleep 10
scrape
gaps=$(metric sitewatch_collector_sequence_gaps_total)
echo "soak: broker restarts $restarts, churn waves $waves, collector sequence gaps $gaps"
echo "soak: load summary $(cat "$out/load-summary.json")"

python3 - "$out" "$window" "$growth_pct" "$gaps" <<'PY'
import csv, statistics, sys
out, window, growth, gaps = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
rows = list(csv.DictReader(open(f"{out}/samples.csv")))
procs = ["collector", "real-01", "real-02", "mosquitto", "load"]
windows = {}
for r in rows:
    windows.setdefault(r["proc"], {}).setdefault(int(r["t_s"]) // window, []).append(r)
lines = [f"| process | window (min) | RSS min / median / max (MiB) | CPU median / max (%) | fds max | threads max |", "|---|---|---|---|---|---|"]
failed = []
for p in procs:
    for w, rs in sorted(windows.get(p, {}).items()):
        rss = [int(r["rss_kib"]) / 1024 for r in rs]
        cpu = [float(r["cpu_percent"]) for r in rs if r["cpu_percent"] != "NA"]
        c = f"{statistics.median(cpu):.1f} / {max(cpu):.1f}" if cpu else "-"
        fds = max((int(r["fds"]) for r in rs if r.get("fds", "NA") not in ("NA", "")), default="-")
        thr = max((int(r["threads"]) for r in rs if r.get("threads", "NA") not in ("NA", "")), default="-")
        lines.append(f"| {p} | {w*window//60}-{(w+1)*window//60} | {min(rss):.1f} / {statistics.median(rss):.1f} / {max(rss):.1f} | {c} | {fds} | {thr} |")
    ws = sorted(windows.get(p, {}).items())
    if p in ("collector", "real-01", "real-02") and len(ws) >= 3:
        first = statistics.median(int(r["rss_kib"]) for r in ws[1][1]) / 1024
        last = statistics.median(int(r["rss_kib"]) for r in ws[-1][1]) / 1024
        bound = first * (1 + growth / 100) + 4
        verdict = "ok" if last <= bound else "GROWTH"
        print(f"soak: {p} median RSS {first:.1f} MiB after warm-up, {last:.1f} MiB in the last window (bound {bound:.1f}): {verdict}")
        if last > bound:
            failed.append(p)
        # Descriptors and threads: a leak grows them without bound; a few come
        # and go (a scrape's connection, a blocking-pool thread).
        for key, slack in (("fds", 4), ("threads", 4)):
            a = [int(r[key]) for r in ws[1][1] if r.get(key, "NA") not in ("NA", "")]
            b = [int(r[key]) for r in ws[-1][1] if r.get(key, "NA") not in ("NA", "")]
            if a and b:
                fa, lb = statistics.median(a), statistics.median(b)
                verdict = "ok" if lb <= fa + slack else "GROWTH"
                print(f"soak: {p} median {key} {fa:g} after warm-up, {lb:g} in the last window (max {max(b)}): {verdict}")
                if lb > fa + slack:
                    failed.append(f"{p} {key}")
open(f"{out}/rss-windows.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
if gaps != "0":
    print(f"soak: FAIL: {gaps} sequence gaps")
    sys.exit(1)
if failed:
    print(f"soak: FAIL: growth in {', '.join(failed)}")
    sys.exit(1)
print("soak: PASS")
PY
