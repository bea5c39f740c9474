#!/usr/bin/env bash
# The main job on one machine: the collector with its embedded MQTT broker, and
# an agent reading this host. Ctrl-C stops both (the agent says goodbye first).
#
#   SITEWATCH_HTTP=127.0.0.1:9184   where /metrics and the API listen
#   SITEWATCH_MQTT=127.0.0.1:1883   where the embedded broker listens
#   SITEWATCH_SITE=local            this host's site name
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}"
http="${SITEWATCH_HTTP:-127.0.0.1:9184}"
mqtt="${SITEWATCH_MQTT:-127.0.0.1:1883}"
site="${SITEWATCH_SITE:-local}"

cargo build --release --locked -p sitewatch-collector -p sitewatch-agent
bin="$CARGO_TARGET_DIR/release"

"$bin/sitewatch-collector" --listen "$http" --embedded-broker "$mqtt" &
collector=$!
agent=""
stop() {
  [ -n "$agent" ] && kill -TERM "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
  kill -TERM "$collector" 2>/dev/null
  wait "$collector" 2>/dev/null
}
trap stop EXIT INT TERM

# The agent retries with backoff, so it may start before the broker listens.
"$bin/sitewatch-agent" run --mqtt "mqtt://$mqtt" --site "$site" &
agent=$!

echo
echo "sitewatch is running: curl -s http://$http/metrics | grep ^sitewatch_"
echo "                      curl -s http://$http/api/v1/hosts"
echo "Ctrl-C stops it."
wait "$collector"
