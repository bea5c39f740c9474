#!/usr/bin/env bash
# The main job on one machine: the collector with its embedded MQTT broker, and
# an agent reading this host. Ctrl-C stops everything (the agent says goodbye
# first).
#
#   scripts/run.sh               collector + agent reading this host
#   scripts/run.sh --with-site   also a simulated machine room (sitewatch-sim site:
#                                UPS, generator, CRAC, two probes) that the agent
#                                reads over Modbus TCP; or SITEWATCH_SIM=1
#
#   SITEWATCH_HTTP=127.0.0.1:9184          where /metrics and the API listen
#   SITEWATCH_MQTT=127.0.0.1:1883          where the embedded broker listens
#   SITEWATCH_SITE=local                   this host's site name
#   SITEWATCH_SIM_MODBUS=127.0.0.1:15020   first simulated device (the others: next 4 ports)
#   SITEWATCH_SIM_CONTROL=127.0.0.1:16020  first control port, likewise
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}"
http="${SITEWATCH_HTTP:-127.0.0.1:9184}"
mqtt="${SITEWATCH_MQTT:-127.0.0.1:1883}"
site="${SITEWATCH_SITE:-local}"
with_site="${SITEWATCH_SIM:-0}"
sim_modbus="${SITEWATCH_SIM_MODBUS:-127.0.0.1:15020}"
sim_control="${SITEWATCH_SIM_CONTROL:-127.0.0.1:16020}"

for arg in "$@"; do
  case "$arg" in
    --with-site) with_site=1 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done
[ "$with_site" = 1 ] || with_site=0

cargo build --release --locked -p sitewatch-collector -p sitewatch-agent
# Separately: built together, the simulator's tokio-modbus server features
# would change the agent's build, and every switch of mode would rebuild it.
[ "$with_site" = 0 ] || cargo build --release --locked -p sitewatch-sim
bin="$CARGO_TARGET_DIR/release"

collector="" agent="" sim="" workdir=""
stop() {
  trap - EXIT INT TERM
  if [ -n "$agent" ]; then kill -TERM "$agent" 2>/dev/null || true; wait "$agent" 2>/dev/null || true; fi
  if [ -n "$sim" ]; then kill -TERM "$sim" 2>/dev/null || true; wait "$sim" 2>/dev/null || true; fi
  if [ -n "$collector" ]; then kill -TERM "$collector" 2>/dev/null || true; wait "$collector" 2>/dev/null || true; fi
  if [ -n "$workdir" ]; then rm -rf "$workdir"; fi
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

"$bin/sitewatch-collector" --listen "$http" --embedded-broker "$mqtt" &
collector=$!

agent_args=(run --mqtt "mqtt://$mqtt" --site "$site")
if [ "$with_site" = 1 ]; then
  workdir="$(mktemp -d "${TMPDIR:-/tmp}/sitewatch-run.XXXXXX")"
  "$bin/sitewatch-sim" site --listen-base "$sim_modbus" --control-base "$sim_control" \
    --agent-config "$workdir/site-devices.toml" &
  sim=$!
  # The simulator writes the agent's device tables once every device listens.
  for _ in $(seq 100); do
    [ -e "$workdir/site-devices.toml" ] && break
    if ! kill -0 "$sim" 2>/dev/null; then
      echo "run.sh: sitewatch-sim did not start (ports $sim_modbus-+4 or $sim_control-+4 in use?)" >&2
      exit 1
    fi
    sleep 0.1
  done
  [ -e "$workdir/site-devices.toml" ] || { echo "run.sh: sitewatch-sim never listened" >&2; exit 1; }
  {
    printf 'site = "%s"\n\n[sources.modbus]\ninterval = "2s"\n\n' "$site"
    cat "$workdir/site-devices.toml"
  } >"$workdir/agent.toml"
  agent_args+=(--config "$workdir/agent.toml")
fi

# The agent retries with backoff, so it may start before the broker listens.
"$bin/sitewatch-agent" "${agent_args[@]}" &
agent=$!

echo
echo "sitewatch is running: curl -s http://$http/metrics | grep ^sitewatch_"
echo "                      curl -s http://$http/api/v1/hosts"
if [ "$with_site" = 1 ]; then
  control_host="${sim_control%:*}" control_port="${sim_control##*:}"
  echo "simulated site:       curl -s http://$http/metrics | grep -E 'ups_on_battery|mains_available'"
  echo "  UPS ups-a, generator genset, CRAC crac-1, probes probe-cold-aisle and probe-hot-aisle"
  echo "  control ports $control_host:$control_port (UPS) .. $((control_port + 4)) (hot-aisle probe); e.g. lose the mains:"
  echo "    printf 'mains_lost\\n' | socat - TCP:$sim_control"
  echo "    (no socat: exec 3<>/dev/tcp/$control_host/$control_port; echo mains_lost >&3; head -1 <&3; exec 3>&-)"
  echo "  then 'healthy' to restore; others: battery_low, generator_fails_to_start, cooling_alarm, slow 2000, silent"
fi
echo "Ctrl-C stops it."
wait "$collector"
