#!/usr/bin/env bash
# The agent's resident memory with one broker and with two ([[mqtt.brokers]],
# a dual-homed agent), the configuration otherwise the same: the release
# agent publishing its host source (every second) and heartbeats (every
# second) to mosquittos on free loopback ports for SECONDS (default 60),
# VmRSS sampled every second; prints the peak VmRSS, VmHWM and the messages
# each broker received. Figures go to BENCHMARKS.md, "Surviving the loss of a
# site".
#
#   scripts/agent-brokers-rss.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}"
seconds="${1:-60}"
[ -n "${NO_BUILD:-}" ] || cargo build -q --release -p sitewatch-agent   # NO_BUILD=1: use the one built
agent="$CARGO_TARGET_DIR/release/sitewatch-agent"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ports=()
for b in 1 2; do
  p="$(free_port)"
  mosquitto -p "$p" >"$work/mosquitto-$b.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
  ports+=("$p")
done

config() { # config <brokers>: the same agent, one or two [[mqtt.brokers]]
  printf 'site = "bench"\nhost = "rss-%s"\nheartbeat = "1s"\n\n[mqtt]\nkeepalive = "10s"\n' "$1"
  for b in $(seq 1 "$1"); do
    printf '[[mqtt.brokers]]\nname = "b%s"\nurl = "mqtt://127.0.0.1:%s"\n' "$b" "${ports[$((b - 1))]}"
  done
  printf '\n[sources.host]\ninterval = "1s"\n'
}

for n in 1 2; do
  config "$n" >"$work/agent-$n.toml"
  subs=()
  for b in $(seq 1 "$n"); do
    mosquitto_sub -p "${ports[$((b - 1))]}" -t "sitewatch/v1/bench/rss-$n/readings" -v >"$work/sub-$n-$b" &
    subs+=($!)
  done
  "$agent" run --config "$work/agent-$n.toml" >"$work/agent-$n.log" 2>&1 &
  a=$!
  peak=0
  for _ in $(seq "$seconds"); do
    sleep 1
    rss="$(awk '/^VmRSS/ {print $2}' "/proc/$a/status")"
    [ "$rss" -gt "$peak" ] && peak="$rss"
  done
  hwm="$(awk '/^VmHWM/ {print $2}' "/proc/$a/status")"
  kill "$a"; wait "$a" 2>/dev/null || true
  for s in "${subs[@]}"; do kill "$s" 2>/dev/null || true; done
  got=""
  for b in $(seq 1 "$n"); do got="$got b$b: $(wc -l <"$work/sub-$n-$b")"; done
  printf '%s broker(s): peak VmRSS %.2f MiB, VmHWM %.2f MiB, readings messages received:%s\n' \
    "$n" "$(echo "$peak / 1024" | bc -l)" "$(echo "$hwm / 1024" | bc -l)" "$got"
done
