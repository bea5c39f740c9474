#!/usr/bin/env bash
# Checks the packages in dist/ (packaging/build.sh makes them), as CI does:
#  - every .deb: lintian (no error; every warning must be one of ALLOWED_WARNINGS
#    below, each with its reason), and the glibc version its binaries need;
#  - every .rpm: rpm -qpi / -qpl / --scripts / --requires, xz payload;
#  - the host's .debs: installed with dpkg -i, checked (user, conffiles, units
#    with systemd-analyze verify and security, check-config), removed (dpkg -r:
#    conffiles stay), purged (dpkg -P: nothing left), reinstalled and purged
#    again (an existing sitewatch user is fine). Needs root; skipped without it.
#  - the Grafana dashboard: valid JSON, datasource as a variable, PromQL parsed
#    by promtool.
# A throwaway machine is assumed for the install test (CI); it leaves the
# machine as it found it, the sitewatch user included.
set -euo pipefail
cd "$(dirname "$0")/.."

# lintian warnings we accept, and why.
declare -A ALLOWED_WARNINGS=(
  # Debian's changelog convention for an archive's first upload (closing the
  # ITP bug); these packages are published outside Debian's archive.
  [initial-upload-closes-no-bugs]="not uploaded to Debian: no ITP bug to close"
  # `--help` documents every command and flag; a man page (clap_mangen) is
  # future work.
  [no-manual-page]="--help is the reference for now"
  # x86_64 musl builds are static-pie: ELF type DYN without DT_NEEDED, which
  # lintian takes for a shared library missing its libc. They are executables;
  # static-pie keeps ASLR for the main binary.
  [shared-library-lacks-prerequisites]="static-pie executables, not libraries"
)

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

shopt -s nullglob
debs=(dist/*.deb)
rpms=(dist/*.rpm)
[ "${#debs[@]}" -gt 0 ] || { echo "no .deb in dist/: run packaging/build.sh first" >&2; exit 1; }

glibc_needed() { # the highest GLIBC_x.y symbol version an ELF file references
  { readelf --dyn-syms --wide "$1" 2>/dev/null || true; } | { grep -o 'GLIBC_[0-9.]*' || true; } \
    | sort -uV | tail -1 | sed 's/GLIBC_//'
}

echo "== lintian"
for deb in "${debs[@]}"; do
  out="$(lintian --tag-display-limit 0 "$deb" 2>&1 || true)"
  echo "$deb: ${out:-clean}"
  while read -r severity _pkg tag _rest; do
    case "$severity" in
      E:) fail "$deb: lintian error $tag" ;;
      W:) [ -n "${ALLOWED_WARNINGS[$tag]:-}" ] || fail "$deb: lintian warning $tag is not in ALLOWED_WARNINGS" ;;
    esac
  done <<<"$out"
done

echo "== binaries: libc"
for deb in "${debs[@]}"; do
  tmp="$(mktemp -d)"
  dpkg-deb -x "$deb" "$tmp"
  for exe in "$tmp"/usr/bin/*; do
    need="$(glibc_needed "$exe")"
    case "$deb" in
      *-static_*)
        if readelf -l "$exe" | grep INTERP >/dev/null || [ -n "$need" ]; then
          fail "$deb: $(basename "$exe") is not static"
        else
          echo "$deb: $(basename "$exe"): static"
        fi ;;
      *)
        echo "$deb: $(basename "$exe"): needs glibc $need"
        # Keep in step with `depends = "libc6 (>= 2.34)"` in the Cargo.toml files.
        [ "$(printf '%s\n2.34\n' "$need" | sort -V | tail -1)" = 2.34 ] \
          || fail "$deb: needs glibc $need, but the package says >= 2.34" ;;
    esac
  done
  rm -rf "$tmp"
done

echo "== rpm"
for rpm in "${rpms[@]}"; do
  echo "--- $rpm"
  rpm -qpi "$rpm"
  rpm -qpl "$rpm"
  rpm -qp --scripts "$rpm"
  echo "requires:"; rpm -qp --requires "$rpm" | sed 's/^/  /'
  comp="$(rpm -qp --qf '%{PAYLOADCOMPRESSOR}' "$rpm")"
  [ "$comp" = xz ] || fail "$rpm: payload compressed with $comp, EL8 needs xz or gzip"
done

echo "== dashboard"
dash=packaging/grafana/sitewatch-dashboard.json
tmp="$(mktemp -d)"
python3 - "$dash" "$tmp/rules.json" <<'PY' || fail "$dash"
import json, sys
d = json.load(open(sys.argv[1]))
names = [v["name"] for v in d["templating"]["list"]]
assert "datasource" in names, "no datasource variable"
rules = []
for p in d["panels"]:
    if p["type"] == "row":
        continue
    assert p["datasource"]["uid"] == "${datasource}", p["title"]
    for t in p["targets"]:
        assert t["datasource"]["uid"] == "${datasource}", p["title"]
        rules.append({"record": "dashboard:panel%d:%s" % (p["id"], t["refId"]),
                      # Grafana's variables, as it would fill them in.
                      "expr": t["expr"].replace("$site", ".*")
                                      .replace("$__rate_interval", "1m")
                                      .replace("$__interval", "1m")
                                      .replace("$__range", "1h")})
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))
print("%d panels, %d queries" % (len(d["panels"]), len(rules)))
PY
promtool check rules "$tmp/rules.json" >/dev/null || fail "$dash: a query does not parse"
rm -rf "$tmp"

echo "== gateway files"
# The modbus and ipmi sources are not in every branch yet, so `check-config`
# cannot judge this file everywhere; its TOML syntax at least.
python3 -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' firmware-config/gateway/agent.toml \
  && echo "firmware-config/gateway/agent.toml: TOML ok" || fail "firmware-config/gateway/agent.toml"

if [ "$(id -u)" -ne 0 ]; then
  echo "== install test skipped: needs root"
else
  arch="$(dpkg --print-architecture)"
  agent="$(ls dist/sitewatch-agent_*_"$arch".deb 2>/dev/null | tail -1 || true)"
  collector="$(ls dist/sitewatch-collector_*_"$arch".deb 2>/dev/null | tail -1 || true)"
  if [ -z "$agent" ] || [ -z "$collector" ]; then
    echo "== install test skipped: no $arch packages"
  else
    static_agent="$(ls dist/sitewatch-agent-static_*_"$arch".deb 2>/dev/null | tail -1 || true)"
    packaging/install-test.sh "$agent" "$collector" "$static_agent" || fail "install test"
  fi
fi

if [ "$failures" -gt 0 ]; then
  echo "packaging/check.sh: $failures failure(s)" >&2
  exit 1
fi
echo "packaging/check.sh: all good"
