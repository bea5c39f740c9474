#!/usr/bin/env bash
# Measures the gateway budget (firmware-config/gateway/README.md): the size of
# the stripped static aarch64 agent, and its resident memory while it polls and
# publishes to a mosquitto on loopback - under qemu-aarch64, and natively as the
# x86_64 static build, since qemu-user's RSS includes the emulator itself.
#
#   packaging/gateway-budget.sh [seconds]      # default 60 s per run
#
# Builds what is missing (release, both musl targets). Figures go to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}"
seconds="${1:-60}"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

for target in aarch64-unknown-linux-musl x86_64-unknown-linux-musl; do
  [ -x "$CARGO_TARGET_DIR/$target/release/sitewatch-agent" ] \
    || cargo build --release --locked --target "$target" -p sitewatch-agent
done
cp "$CARGO_TARGET_DIR/aarch64-unknown-linux-musl/release/sitewatch-agent" "$work/agent-aarch64"
cp "$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/sitewatch-agent" "$work/agent-x86_64"
aarch64-linux-gnu-strip "$work/agent-aarch64"
strip "$work/agent-x86_64"
echo "== size (stripped)"
for f in "$work"/agent-*; do
  printf '%s: %d bytes (%.2f MB)\n' "$(basename "$f")" "$(stat -c %s "$f")" "$(echo "$(stat -c %s "$f") / 1000000" | bc -l)"
done

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mosquitto -p "$port" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

measure() { # measure <label> <command...>: peak VmRSS sampled every second, and VmHWM
  local label="$1"; shift
  mosquitto_sub -p "$port" -t "sitewatch/v1/bench/#" -v >"$work/$label.sub" &
  local sub=$!
  pids+=("$sub")
  "$@" run --mqtt "mqtt://127.0.0.1:$port" --site bench --host "$label" 2>"$work/$label.log" &
  local pid=$!
  pids+=("$pid")
  local peak=0 rss hwm=0 guest=0 g
  for _ in $(seq "$seconds"); do
    sleep 1
    rss="$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")"
    hwm="$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")"
    g="$(guest_rss "$pid")"
    [ "$rss" -gt "$peak" ] && peak="$rss"
    [ "$g" -gt "$guest" ] && guest="$g"
  done
  kill -TERM "$pid"; wait "$pid" || true
  kill "$sub" 2>/dev/null || true
  printf '%s: peak VmRSS %d KiB (%.2f MiB), VmHWM %d KiB; %d readings messages received by mosquitto in %d s\n' \
    "$label" "$peak" "$(echo "$peak / 1024" | bc -l)" "$hwm" "$(grep -c "/$label/readings" "$work/$label.sub")" "$seconds"
  case "$label" in
    *qemu*) printf '%s: of which the guest (mappings below 1 TiB): peak %d KiB (%.2f MiB)\n' \
              "$label" "$guest" "$(echo "$guest / 1024" | bc -l)" ;;
  esac
}

# qemu-user maps a 64-bit guest at its own addresses (the binary at 0x400000, its
# heap after it, its mmaps from 0x5500000000), far below where Linux puts the
# host's PIE executable and libraries (0x55xx_xxxx_xxxx, 0x7fxx_xxxx_xxxx). So
# the resident pages below 1 TiB are the agent's own, without the emulator's
# translation cache, heap and libraries.
guest_rss() {
  awk '/^[0-9a-f]+-[0-9a-f]+ / { split($1, a, "-"); low = length(a[1]) < 11 }
       /^Rss:/ { if (low) sum += $2 }
       END { print sum + 0 }' "/proc/$1/smaps"
}

echo "== resident memory, host source every 5 s, heartbeat 5 s, publishing to mosquitto"
measure x86_64-native "$work/agent-x86_64"
measure aarch64-qemu qemu-aarch64 "$work/agent-aarch64"
