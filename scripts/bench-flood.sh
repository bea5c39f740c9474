#!/usr/bin/env bash
# Issue 11's flood, measured on the whole release collector (its embedded
# broker on loopback): one publisher sends NAMES distinct sensor names (default
# 200,000) in batches of 1,000 readings, then goes quiet; a second, real host
# keeps publishing ups_on_battery=1 throughout. Prints the collector's RSS
# before, at the flood's peak and after the flood's series expired (stale after
# 3 x 1 s, dropped by the 30 s expiry pass, tables swept), the series and
# refusals it counted, and whether the real reading was kept.
#
#   scripts/bench-flood.sh [NAMES] [MAX_SERIES_PER_HOST]
#
# Needs mosquitto_pub (mosquitto-clients) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
names="${1:-200000}"
per_host="${2:-20000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}"
cargo build --release -q -p sitewatch-collector --bin sitewatch-collector
bin="$CARGO_TARGET_DIR/release/sitewatch-collector"

dir="$(mktemp -d)"
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true
  [ -n "${real:-}" ] && kill "$real" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mqtt="$(free_port)"; mqtt5="$(free_port)"; http="$(free_port)"
cat > "$dir/collector.toml" <<EOF
listen = "127.0.0.1:$http"
[embedded_broker]
listen_v4 = "127.0.0.1:$mqtt"
listen_v5 = "127.0.0.1:$mqtt5"
state_dir = "$dir/broker"
[state]
max_series_per_host = $per_host
EOF
"$bin" --config "$dir/collector.toml" > "$dir/collector.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$http/healthz" > /dev/null && break
  sleep 0.1
done

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
metric() { curl -fs "http://127.0.0.1:$http/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'; }
now_ms() { date +%s%3N; }

# The real host: a UPS on battery, every second.
pub() { mosquitto_pub -p "$mqtt" -q 1 -i "$1" -t "$2" -m "$3" ${4:-}; }
pub real-birth sitewatch/v1/bj1/gw-01/state \
  "{\"v\":1,\"status\":\"online\",\"ts\":$(now_ms),\"boot\":\"r1\",\"interval_ms\":1000,\"sources\":{\"modbus\":1000}}" -r
(
  seq=1
  while true; do
    pub real-$seq sitewatch/v1/bj1/gw-01/readings \
      "{\"v\":1,\"seq\":$seq,\"ts\":$(now_ms),\"readings\":[{\"src\":\"modbus\",\"dev\":\"ups-a\",\"name\":\"on_battery\",\"q\":\"ups_on_battery\",\"value\":1,\"state\":\"ok\"}]}" || true
    seq=$((seq + 1))
    sleep 1
  done
) &
real=$!
sleep 3
# The baseline after a first scrape (the encoder's buffers are part of it).
metric sitewatch_collector_series > /dev/null
before="$(rss_kib)"

# The flood: one host, NAMES distinct names, 1 s interval so they expire fast.
pub flood-birth sitewatch/v1/bj1/flood-01/state \
  "{\"v\":1,\"status\":\"online\",\"ts\":$(now_ms),\"boot\":\"f1\",\"interval_ms\":1000,\"sources\":{\"env\":1000}}" -r
base="$(echo "$(metric sitewatch_collector_readings_total) + $(metric sitewatch_collector_dropped_readings_total)" | bc)"
start="$(date +%s.%N)"
python3 - "$names" "$(now_ms)" > "$dir/flood.jsonl" <<'EOF'
import json, sys
names, ts = int(sys.argv[1]), int(sys.argv[2])
batch = 1000
for seq, first in enumerate(range(0, names, batch), start=1):
    readings = [{"src": "env", "dev": "probe", "name": f"sensor-{i}", "q": "temperature_celsius",
                 "value": 21.5, "state": "ok"} for i in range(first, min(first + batch, names))]
    print(json.dumps({"v": 1, "seq": seq, "ts": ts, "readings": readings}, separators=(",", ":")))
EOF
mosquitto_pub -p "$mqtt" -q 1 -i flood -t sitewatch/v1/bj1/flood-01/readings -l < "$dir/flood.jsonl"
sent="$(date +%s.%N)"
# The peak: once ingest has caught up (every flood reading ingested or dropped).
seen() { echo "$(metric sitewatch_collector_readings_total) + $(metric sitewatch_collector_dropped_readings_total)" | bc; }
for _ in $(seq 240); do
  [ "$(echo "$(seen) - $base >= $names" | bc)" = 1 ] && break
  sleep 0.5
done
peak="$(rss_kib)"
peak_series="$(metric sitewatch_collector_series)"
refused="$(metric sitewatch_collector_dropped_readings_total)"
real_kept="$(curl -fs "http://127.0.0.1:$http/metrics" | grep -c '^sitewatch_ups_on_battery{.*host="gw-01"' || true)"

# Expiry: stale after 3 s, dropped by the 30 s pass, then the tables swept.
sleep 65
after="$(rss_kib)"
after_series="$(metric sitewatch_collector_series)"
strings="$(metric sitewatch_collector_interned_strings)"
echo "names=$names max_series_per_host=$per_host"
echo "flood published in $(echo "$sent - $start" | bc) s, ingested $(echo "$(seen) - $base" | bc) readings"
echo "RSS KiB: before $before, peak $peak, after expiry $after"
echo "series: peak $peak_series, after expiry $after_series (interned strings $strings); dropped readings (all reasons): $refused"
echo "RSS after expiry / before: $(echo "scale=2; $after / $before" | bc)"
echo "real host's ups_on_battery series present during the flood: $real_kept"
