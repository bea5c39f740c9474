#!/usr/bin/env bash
# Resident memory of aarch64 glibc agent binaries, side by side: each runs the
# host source (every 5 s) publishing to a mosquitto on loopback under
# qemu-aarch64, and the peak of its own pages (mappings below 1 TiB, as in
# packaging/gateway-budget.sh: without the emulator's) is printed.
#
#   scripts/agent-rss-qemu.sh SECONDS BINARY...
set -euo pipefail
seconds="$1"; shift
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mosquitto -p "$port" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
guest_rss() {
  awk '/^[0-9a-f]+-[0-9a-f]+ / { split($1, a, "-"); low = length(a[1]) < 11 }
       /^Rss:/ { if (low) sum += $2 }
       END { print sum + 0 }' "/proc/$1/smaps"
}
for bin in "$@"; do
  label="$(basename "$bin")"
  qemu-aarch64 -L /usr/aarch64-linux-gnu "$bin" run --mqtt "mqtt://127.0.0.1:$port" --site bench --host "$label" 2>"$work/$label.log" &
  pid=$!
  pids+=("$pid")
  peak=0
  for _ in $(seq "$seconds"); do
    sleep 1
    g="$(guest_rss "$pid")"
    [ "$g" -gt "$peak" ] && peak="$g"
  done
  kill -TERM "$pid"; wait "$pid" || true
  printf '%s: %d bytes; guest peak RSS %d KiB (%.2f MiB) over %d s\n' \
    "$label" "$(stat -c %s "$bin")" "$peak" "$(echo "$peak / 1024" | bc -l)" "$seconds"
done
