#!/usr/bin/env bash
# Builds every package into dist/: for each target, the release binaries of
# sitewatch-agent and sitewatch-collector, then .deb (cargo-deb), .rpm
# (cargo-generate-rpm) and, for the static musl targets, a tarball.
#
#   packaging/build.sh                          # every target below
#   packaging/build.sh --targets x86_64-unknown-linux-gnu,aarch64-unknown-linux-musl
#   packaging/build.sh --no-build ...           # package binaries built already (e.g. by `cross`)
#
# | target                          | packages                                   | runs on                              |
# |---------------------------------|--------------------------------------------|--------------------------------------|
# | x86_64-unknown-linux-gnu        | deb amd64, rpm x86_64                      | glibc >= 2.34                        |
# | aarch64-unknown-linux-gnu       | deb arm64, rpm aarch64                     | glibc >= 2.34                        |
# | armv7-unknown-linux-gnueabihf   | deb armhf                                  | glibc >= 2.34 (gateways)             |
# | x86_64-unknown-linux-musl       | -static deb amd64, rpm x86_64, tar.gz      | any Linux (static)                   |
# | aarch64-unknown-linux-musl      | -static deb arm64, rpm aarch64, tar.gz     | any Linux (static; the gateway build)|
#
# dist/ keeps what earlier runs built for other targets (remove it for a fresh
# set); SHA256SUMS covers everything in it.
#
# Needs cargo-deb and cargo-generate-rpm (scripts/install-test-deps.sh installs
# them) and the cross toolchains named in .cargo/config.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sitewatch-target}"
ALL_TARGETS="x86_64-unknown-linux-gnu,aarch64-unknown-linux-gnu,armv7-unknown-linux-gnueabihf,x86_64-unknown-linux-musl,aarch64-unknown-linux-musl"
targets="$ALL_TARGETS"
build=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) targets="$2"; shift 2 ;;
    --targets=*) targets="${1#--targets=}"; shift ;;
    --no-build) build=no; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "packaging/build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
mkdir -p dist

# The binutils that understand each target's ELF (musl and glibc binaries alike).
strip_for() {
  case "$1" in
    x86_64-*) echo strip ;;
    aarch64-*) echo aarch64-linux-gnu-strip ;;
    armv7-*) echo arm-linux-gnueabihf-strip ;;
  esac
}

IFS=, read -r -a target_list <<<"$targets"
for target in "${target_list[@]}"; do
  echo "== $target"
  # The agent with the size-optimised `dist` profile (Cargo.toml; the size
  # budget measures the same build), the collector with `release`.
  if [ "$build" = yes ]; then
    cargo build --profile dist --locked --target "$target" -p sitewatch-agent
    cargo build --release --locked --target "$target" -p sitewatch-collector
  fi
  dist_bin="$CARGO_TARGET_DIR/$target/dist"
  bin="$CARGO_TARGET_DIR/$target/release"
  # cargo-generate-rpm packages binaries as they are: strip them first (cargo-deb
  # would strip its copy anyway). Symbols only matter for profiling, which uses
  # a build of its own.
  "$(strip_for "$target")" "$dist_bin/sitewatch-agent" "$bin/sitewatch-collector"

  variant=()
  case "$target" in *-musl) variant=(--variant static) ;; esac

  # For the -static variants cargo-deb 3.8 warns "Sysusers config found for Cargo
  # package name": harmless. (It would drop the sysusers file of a variant
  # altogether without packaging/systemd/*-static.sysusers, symlinks for that.)
  for pkg in sitewatch-agent sitewatch-collector; do
    dir="${pkg#sitewatch-}"
    # Both tools read `target/release/` in the assets as the profile's directory.
    profile=release
    [ "$pkg" = sitewatch-agent ] && profile=dist
    cargo deb --no-build --profile "$profile" --target "$target" -p "$pkg" "${variant[@]}" --output dist/
    # rpm: x86_64 and aarch64 only (no maintained RPM distribution ships armv7 now).
    # xz payload: EL8's rpm 4.14 reads gzip and xz, not zstd (cargo-generate-rpm's default).
    case "$target" in
      armv7-*) ;;
      *) cargo generate-rpm -p "$dir" --profile "$profile" --target "$target" "${variant[@]}" --payload-compress xz -o dist/ ;;
    esac
  done

  # The static binaries with what a package would install, for any Linux.
  case "$target" in
    *-musl)
      name="sitewatch-$version-${target%%-*}-linux-musl"
      stage="$(mktemp -d)"
      mkdir -p "$stage/$name"/{bin,systemd,sysusers.d,udev,config,share}
      cp "$dist_bin/sitewatch-agent" "$bin/sitewatch-collector" "$stage/$name/bin/"
      cp packaging/systemd/*.service "$stage/$name/systemd/"
      cp packaging/systemd/sitewatch-agent.sysusers "$stage/$name/sysusers.d/sitewatch.conf"
      cp packaging/udev/*.rules "$stage/$name/udev/"
      cp packaging/config/agent.toml collector/config/collector.toml "$stage/$name/config/"
      cp -r packaging/prometheus packaging/alertmanager packaging/grafana "$stage/$name/share/"
      cp README.md "$stage/$name/"
      cp -r docs "$stage/$name/"
      tar -C "$stage" --owner=0 --group=0 -czf "dist/$name.tar.gz" "$name"
      rm -rf "$stage"
      ;;
  esac
done

shopt -s nullglob
(cd dist && files=(*.deb *.rpm *.tar.gz) && sha256sum -- "${files[@]}" > SHA256SUMS)
echo "== dist/"
ls -l dist/
