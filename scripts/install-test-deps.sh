#!/usr/bin/env bash
# Installs what sitewatch's tests talk to, when it is missing: real peers
# (mosquitto, Prometheus and promtool, Alertmanager, OpenIPMI's ipmi_sim,
# ipmitool, smartctl, socat, pymodbus, sushy-tools, htpasswd, curl, NUT's upsd,
# dummy-ups, upsc and upsmon), packaging tools and
# checkers (cargo-deb, cargo-generate-rpm, lintian, rpm, systemd-analyze), cross
# toolchains and qemu-user, and the Rust components and targets. Safe to run
# again: it only installs what is not there.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

# Debian package -> a file it installs, to tell whether it is there.
declare -A PACKAGES=(
  [mosquitto]=/usr/sbin/mosquitto
  [mosquitto-clients]=/usr/bin/mosquitto_pub
  [prometheus]=/usr/bin/promtool
  [prometheus-alertmanager]=/usr/bin/prometheus-alertmanager
  [openipmi]=/usr/bin/ipmi_sim
  [ipmitool]=/usr/bin/ipmitool
  [smartmontools]=/usr/sbin/smartctl
  [socat]=/usr/bin/socat
  [openssl]=/usr/bin/openssl
  # htpasswd -B: the bcrypt hashes of the web config's basic_auth_users; curl: the
  # HTTP client of the web tests.
  [apache2-utils]=/usr/bin/htpasswd
  [curl]=/usr/bin/curl
  [lintian]=/usr/bin/lintian
  [rpm]=/usr/bin/rpmbuild
  [gcc-aarch64-linux-gnu]=/usr/bin/aarch64-linux-gnu-gcc
  [gcc-arm-linux-gnueabihf]=/usr/bin/arm-linux-gnueabihf-gcc
  # The cross compilers only recommend their libc headers and libraries, and
  # recommends are not installed here: without them nothing links (and ring's
  # C does not compile, for the musl targets either).
  [libc6-dev-arm64-cross]=/usr/aarch64-linux-gnu/include/stdio.h
  [libc6-dev-armhf-cross]=/usr/arm-linux-gnueabihf/include/stdio.h
  [qemu-user]=/usr/bin/qemu-aarch64
  [systemd]=/usr/bin/systemd-analyze
  [iproute2]=/usr/sbin/ip
  [python3-pip]=/usr/bin/pip3
  # SNMP peers: net-snmp's agent, its command-line tools (snmpget, snmptrap
  # as the trap sender), snmpsim (serves .snmprec recordings), and
  # snmp_exporter for the benchmark beside the agent.
  [snmpd]=/usr/sbin/snmpd
  [snmp]=/usr/bin/snmpget
  [snmpsim]=/usr/bin/snmpsimd
  [prometheus-snmp-exporter]=/usr/bin/prometheus-snmp-exporter
  # Network UPS Tools: upsd and the dummy-ups driver (the nut source's peer),
  # upsc and upsmon (the facade's clients).
  [nut-server]=/lib/nut/dummy-ups
  [nut-client]=/lib/nut/upsmon
  # NSS's certutil and pk12util: NUT's TLS keeps its certificates in an NSS
  # database (upsd's CERTPATH/CERTIDENT, upsmon's CERTPATH).
  [libnss3-tools]=/usr/bin/certutil
)

missing=()
for pkg in "${!PACKAGES[@]}"; do
  [ -e "${PACKAGES[$pkg]}" ] || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  # These packages are test peers: keep Debian from starting their daemons
  # (mosquitto would take port 1883, which the collector's embedded broker uses).
  created_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    created_policy=yes
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  if [ -n "$created_policy" ]; then
    $SUDO rm -f /usr/sbin/policy-rc.d
  fi
fi

# pymodbus: the Modbus TCP/RTU device simulator the modbus tests talk to;
# pyserial: its RTU transport (the socat pty tests).
if ! python3 -c 'import pymodbus, serial' 2>/dev/null; then
  echo "installing: pymodbus, pyserial"
  python3 -m pip install --quiet 'pymodbus>=3.6,<4' pyserial \
    || python3 -m pip install --quiet --break-system-packages 'pymodbus>=3.6,<4' pyserial
fi

# sushy-tools: sushy-static, the Redfish server the redfish tests serve DMTF's
# mockups with (TLS; it checks no credentials, which the tests' own server does).
if ! command -v sushy-static >/dev/null 2>&1; then
  echo "installing: sushy-tools"
  python3 -m pip install --quiet 'sushy-tools==2.2.0' \
    || python3 -m pip install --quiet --break-system-packages 'sushy-tools==2.2.0'
fi

# The toolchain pinned in rust-toolchain.toml, with its components and the
# targets the packaging builds.
cd "$(dirname "$0")/.."
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install "$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)"
rustup component add rustfmt clippy >/dev/null 2>&1
for target in aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf \
              aarch64-unknown-linux-musl x86_64-unknown-linux-musl; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done

# The package builders (packaging/build.sh), pinned: cargo-deb 3 brings the
# sysusers.d support the units rely on, cargo-generate-rpm the xz payload.
for tool in cargo-deb@3.8.0 cargo-generate-rpm@0.21.1; do
  name="${tool%@*}"
  version="${tool#*@}"
  if ! "$name" --version 2>/dev/null | grep -qF "$version"; then
    echo "installing: $tool"
    cargo install --locked --quiet "$tool"
  fi
done
