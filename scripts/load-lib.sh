# Shared by scripts/soak.sh and scripts/bench-reconnect.sh: a mosquitto with
# persistence on a free port, the collector on it, and a few helpers.
# Sourced, not run. Needs: $work (a scratch folder), $bin (the release binaries).

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Writes $work/mosquitto.conf for $mqtt_port; persistence so that the
# collector's session (and what is queued for it) survives a restart.
mosquitto_conf() {
  local user=""
  [ "$(id -u)" = 0 ] && user="user root"
  mkdir -p "$work/mosquitto"
  cat > "$work/mosquitto.conf" <<CONF
$user
per_listener_settings false
allow_anonymous true
persistence true
persistence_location $work/mosquitto/
autosave_interval 30
log_dest file $work/mosquitto.log
log_type error
log_type warning
log_type notice
max_connections -1
max_queued_messages 2000000
max_inflight_messages 100
listener $mqtt_port 127.0.0.1
CONF
}

# Writes $work/mosquitto.conf for $mqtt_port without persistence: mosquitto as
# installed, or with the queue settings of packaging/mosquitto/sitewatch.conf
# when $1 is "shipped".
plain_mosquitto_conf() {
  local user=""
  [ "$(id -u)" = 0 ] && user="user root"
  {
    echo "$user"
    echo "allow_anonymous true"
    echo "max_connections -1"
    echo "log_dest file $work/mosquitto.log"
    echo "listener $mqtt_port 127.0.0.1"
    if [ "${1:-}" = shipped ]; then
      grep -E '^(max_queued_messages|max_queued_bytes|max_inflight_messages) ' \
        packaging/mosquitto/sitewatch.conf
    fi
  } > "$work/mosquitto.conf"
}

start_mosquitto() {
  ( ulimit -n "$(ulimit -Hn)"; exec /usr/sbin/mosquitto -c "$work/mosquitto.conf" ) &
  mosquitto_pid=$!
  wait_port "$mqtt_port"
}

# SIGTERM: mosquitto saves its sessions before it exits.
stop_mosquitto() {
  kill -TERM "$mosquitto_pid" 2>/dev/null || true
  wait "$mosquitto_pid" 2>/dev/null || true
}

wait_port() {
  local i
  for i in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# $collector_config, when set, is the collector's --config.
start_collector() {
  http_port=$(free_port)
  "$bin/sitewatch-collector" ${collector_config:+--config "$collector_config"} --listen "127.0.0.1:$http_port" --mqtt "mqtt://127.0.0.1:$mqtt_port" \
    > "$work/collector.log" 2>&1 &
  collector_pid=$!
  local i
  for i in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$http_port/healthz" > /dev/null && return 0
    sleep 0.1
  done
  echo "the collector did not come up" >&2
  return 1
}

# Fetches the collector's /metrics once and keeps in $work/metrics.txt what
# `metric` reads: the collector's, the broker's and the agents' own families.
# At a million series the whole is 112 MB: kept and read through awk at every
# sample, it cost the scripts seconds of a core that the collector, sharing
# the machine, paid for in its figures. The body goes to a file first so that
# $scrape_s is the response's own time (curl's time_total), not the filter's.
scrape() {
  scrape_s=$(curl -sf -o "$work/metrics.full" -w '%{time_total}' \
    "http://127.0.0.1:$http_port/metrics") || scrape_s=NA
  grep -E '^sitewatch_(collector_|broker_|agent_up)' "$work/metrics.full" > "$work/metrics.txt" || :
  rm -f "$work/metrics.full"
}

# The value of a sample without labels (sum over labels otherwise) in the last scrape.
metric() {
  awk -v name="$1" '$1 == name || index($1, name "{") == 1 { s += $NF; found = 1 } END { if (found) print s; else print "NA" }' "$work/metrics.txt"
}

# RSS (KiB) and CPU ticks (utime + stime) of a process: "rss ticks".
proc_sample() {
  local pid=$1
  [ -r "/proc/$pid/stat" ] || { echo "NA NA"; return; }
  local rss ticks
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
  ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null)
  echo "${rss:-NA} ${ticks:-NA}"
}
