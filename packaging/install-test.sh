#!/usr/bin/env bash
# Installs, checks, removes and purges the agent and collector .debs given as
# arguments, on a throwaway machine as root (packaging/check.sh calls it).
# Daemons are kept from starting (policy-rc.d), so a machine running tests is
# not disturbed; the sitewatch user is deleted at the end if this test made it.
set -euo pipefail
agent_deb="$1"
collector_deb="$2"
static_agent_deb="${3:-}" # optional: the -static agent, swapped in for the glibc one
gateway_dropin="$(dirname "$0")/../firmware-config/gateway/sitewatch-agent.service.d/gateway.conf"

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
expect() { # expect <description> <command...>
  local what="$1"; shift
  if "$@" >/dev/null 2>&1; then echo "ok: $what"; else fail "$what"; fi
}
gone() { [ ! -e "$1" ] && [ ! -L "$1" ]; }

user_existed=no
getent passwd sitewatch >/dev/null && user_existed=yes

created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=yes
fi
cleanup() {
  dpkg -P sitewatch-agent sitewatch-collector sitewatch-agent-static sitewatch-collector-static >/dev/null 2>&1 || true
  [ -n "$created_policy" ] && rm -f /usr/sbin/policy-rc.d
  if [ "$user_existed" = no ] && getent passwd sitewatch >/dev/null; then
    userdel sitewatch 2>/dev/null || true
    getent group sitewatch >/dev/null && groupdel sitewatch 2>/dev/null || true
  fi
}
trap cleanup EXIT

units=/usr/lib/systemd/system
wants=/etc/systemd/system/multi-user.target.wants

for round in 1 2; do
  echo "== install ($round)"
  dpkg -i "$agent_deb" "$collector_deb"
  expect "sitewatch user exists" getent passwd sitewatch
  expect "agent.toml is a conffile" sh -c 'dpkg-query -W -f="\${Conffiles}" sitewatch-agent | grep -q /etc/sitewatch/agent.toml'
  expect "collector.toml is a conffile" sh -c 'dpkg-query -W -f="\${Conffiles}" sitewatch-collector | grep -q /etc/sitewatch/collector.toml'
  expect "agent unit enabled" test -L "$wants/sitewatch-agent.service"
  expect "collector unit enabled" test -L "$wants/sitewatch-collector.service"
  expect "sysusers snippets installed" test -f /usr/lib/sysusers.d/sitewatch-agent.conf -a -f /usr/lib/sysusers.d/sitewatch-collector.conf
  expect "udev rule installed" test -f /usr/lib/udev/rules.d/60-sitewatch-agent.rules
  expect "dashboard and rules installed" test -f /usr/share/sitewatch/grafana/sitewatch-dashboard.json -a -f /usr/share/sitewatch/prometheus/sitewatch-rules.yml
  expect "collector.toml is valid" sitewatch-collector check-config /etc/sitewatch/collector.toml
  # The shipped agent.toml holds a placeholder site that the agent refuses (exit 2).
  set +e; sitewatch-agent check-config /etc/sitewatch/agent.toml >/dev/null 2>&1; rc=$?; set -e
  if [ "$rc" = 2 ]; then echo "ok: placeholder site refused (exit 2)"; else fail "agent check-config exit $rc, expected 2"; fi
  if [ "$round" = 1 ]; then
    echo "== systemd-analyze verify"
    if systemd-analyze verify "$units/sitewatch-agent.service" "$units/sitewatch-collector.service"; then
      echo "ok: units verify clean"
    else
      fail "systemd-analyze verify"
    fi
    echo "== systemd-analyze security"
    for u in sitewatch-agent sitewatch-collector; do
      systemd-analyze security --offline=yes --no-pager "$units/$u.service" | tail -1
    done
    echo "== the gateway's drop-in over the packaged agent unit"
    dropin=/etc/systemd/system/sitewatch-agent.service.d
    mkdir -p "$dropin"
    cp "$gateway_dropin" "$dropin/gateway.conf"
    if systemd-analyze verify sitewatch-agent.service; then
      echo "ok: unit with the gateway drop-in verifies clean"
    else
      fail "systemd-analyze verify with the gateway drop-in"
    fi
    systemd-analyze security --offline=yes --no-pager sitewatch-agent.service | tail -1
    rm -rf "$dropin"
  fi

  echo "== remove the agent (conffiles stay)"
  dpkg -r sitewatch-agent
  expect "binary removed" gone /usr/bin/sitewatch-agent
  expect "conffile kept on remove" test -f /etc/sitewatch/agent.toml
  mkdir -p /var/lib/sitewatch/ipmi # state the service would have made

  echo "== purge"
  dpkg -P sitewatch-agent sitewatch-collector
  expect "/etc/sitewatch gone" gone /etc/sitewatch
  expect "/var/lib/sitewatch gone" gone /var/lib/sitewatch
  expect "/usr/share/sitewatch gone" gone /usr/share/sitewatch
  expect "no unit left enabled" sh -c "! ls $wants/sitewatch-* >/dev/null 2>&1"
  expect "no deb-systemd-helper state left" sh -c '! ls /var/lib/systemd/deb-systemd-helper-enabled/ 2>/dev/null | grep -q sitewatch && ! find /var/lib/systemd/deb-systemd-helper-enabled -name "*sitewatch*" | grep -q .'
  expect "dpkg forgot both" sh -c '! dpkg-query -W sitewatch-agent sitewatch-collector 2>/dev/null | grep -q .'
  # The user stays on purge (shared by both packages, Debian practice); round 2
  # installs over it.
done

if [ -n "$static_agent_deb" ]; then
  echo "== the -static agent replaces the glibc one, keeping the configuration"
  dpkg -i "$agent_deb"
  echo 'site = "bj1"' >/etc/sitewatch/agent.toml # a local edit
  dpkg -i "$static_agent_deb"
  expect "glibc agent gone" sh -c '! dpkg-query -W -f="\${Status}\n" sitewatch-agent 2>/dev/null | grep -qx "install ok installed"'
  expect "static agent installed" sh -c 'dpkg-query -W -f="\${Status}\n" sitewatch-agent-static | grep -qx "install ok installed"'
  # The old package's postrm masks the unit; the new one's postinst unmasks it.
  expect "unit enabled, not masked" sh -c "test -L $wants/sitewatch-agent.service && ! test -L /etc/systemd/system/sitewatch-agent.service"
  expect "local edit kept" grep -q bj1 /etc/sitewatch/agent.toml
  expect "static binary runs" sitewatch-agent check-config /etc/sitewatch/agent.toml
  dpkg -P sitewatch-agent-static sitewatch-agent
  expect "/etc/sitewatch gone" gone /etc/sitewatch
  expect "no unit left enabled" sh -c "! ls $wants/sitewatch-* >/dev/null 2>&1"
fi

exit "$((failures > 0))"
