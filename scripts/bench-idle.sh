#!/usr/bin/env bash
# The collector's idle cost (issue 18: "idle CPU at 1M series < 5 %"), on the
# release binaries: `sitewatch-sim load` connects AGENTS agents through
# mosquitto (the shipped queue settings), each sends one batch of SERIES
# readings as it connects and then nothing for an hour (its interval), so the
# collector holds every series and every host online with nothing coming in
# but keepalives. Once every reading is in, the collector's CPU and RSS are
# sampled every 10 s for IDLE seconds from /proc, without scraping /metrics
# (a scrape is work, not idleness); one scrape at the end checks that the
# series are all still there. Prints the samples and a summary line; exit 0
# when the mean CPU is under 5 % of a core, 1 otherwise.
#
#   AGENTS=10000 SERIES=100 RAMP=30s IDLE=120s
#   OUT=/var/tmp/sitewatch-idle-<time>  BIN=$CARGO_TARGET_DIR/release
set -euo pipefail
cd "$(dirname "$0")/.."

agents=${AGENTS:-10000}
series=${SERIES:-100}
ramp=${RAMP:-30s}
idle=${IDLE:-120}
bin=${BIN:-${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}/release}
out=${OUT:-/var/tmp/sitewatch-idle-$(date -u +%Y%m%dT%H%M%S)}
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
plain_mosquitto_conf shipped
start_mosquitto
start_collector

want=$((agents * series))
echo "idle: $agents agents x $series series ($want), one batch each within $ramp, then ${idle}s of silence"
# The run outlasts the measurement: the agents stay connected (and online
# for the collector: their interval is an hour) until it is over.
( ulimit -n "$(ulimit -Hn)"; exec "$bin/sitewatch-sim" load --mqtt "mqtt://127.0.0.1:$mqtt_port" \
    --site bench --agents "$agents" --series "$series" --interval 1h \
    --first-batch-within 0s --ramp "$ramp" --duration "$((idle + 600))s" --drain 5s ) \
  > "$out/load-summary.json" 2> "$out/load.log" &
load_pid=$!

# Every reading in: the collector's counter, from one scrape every 5 s.
deadline=$(( $(date +%s) + 600 ))
while :; do
  sleep 5
  scrape
  n=$(metric sitewatch_collector_readings_total)
  [ "$n" = "$want" ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "only $n of $want readings arrived in 10 minutes" >&2
    exit 1
  fi
done
series_held=$(metric sitewatch_collector_series)
echo "all $want readings in, $series_held series held; settling 10 s"
sleep 10

hz=$(getconf CLK_TCK)
echo "t_s,collector_rss_kib,collector_cpu_pct" > "$out/samples.csv"
read -r _ ticks_start <<< "$(proc_sample "$collector_pid")"
t_start=$(date +%s.%N)
ticks0=$ticks_start t_prev=$t_start
for _ in $(seq 1 $((idle / 10))); do
  sleep 10
  now=$(date +%s.%N)
  read -r rss ticks <<< "$(proc_sample "$collector_pid")"
  cpu=$(awk -v a="$ticks0" -v b="$ticks" -v hz="$hz" -v t0="$t_prev" -v t1="$now" \
    'BEGIN { printf "%.1f", 100 * (b - a) / hz / (t1 - t0) }')
  ticks0=$ticks t_prev=$now
  line="$(awk -v a="$t_start" -v b="$now" 'BEGIN { printf "%.0f", b - a }'),$rss,$cpu"
  echo "$line" >> "$out/samples.csv"
  echo "  $line"
done
scrape
still=$(metric sitewatch_collector_series)
up=$(metric sitewatch_agent_up)
mean=$(awk -v a="$ticks_start" -v b="$ticks0" -v hz="$hz" -v t0="$t_start" -v t1="$t_prev" \
  'BEGIN { printf "%.2f", 100 * (b - a) / hz / (t1 - t0) }')
{
  echo "series held at the end $still (of $want), agents up $up (of $agents)"
  echo "collector CPU over ${idle}s idle: mean $mean % of a core; RSS $rss KiB"
  if awk -v m="$mean" 'BEGIN { exit !(m < 5) }' && [ "$still" = "$want" ]; then
    echo PASS
  else
    echo FAIL
  fi
} | tee "$out/result.txt"
grep -q PASS "$out/result.txt"
