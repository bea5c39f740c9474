#!/usr/bin/env bash
# Builds the fuzz targets and runs one (or all, one after the other) until
# RUNS executions or SECONDS seconds, whichever comes first; the last lines of
# each log are the figures FUZZING.md records. See FUZZING.md.
#
#   fuzz/run.sh modbus                 # 10 million executions, at most 8 min
#   RUNS=1000000 SECONDS_MAX=60 fuzz/run.sh
set -euo pipefail
cd "$(dirname "$0")"
RUNS=${RUNS:-10000000}
SECONDS_MAX=${SECONDS_MAX:-480}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
# Stable toolchain: cargo-fuzz passes -Z flags, which RUSTC_BOOTSTRAP allows.
# No sanitizer: our crates forbid unsafe code, and ASan would halve the speed
# of what we look for (panics, overflows, hangs, runaway memory).
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none --target-dir "$TARGET_DIR/fuzz"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
python3 seed.py "${targets[@]}"
for t in "${targets[@]}"; do
    mkdir -p "artifacts/$t" logs
    echo "== $t" >&2
    nice -n 10 "$TARGET_DIR/fuzz/x86_64-unknown-linux-gnu/release/$t" "corpus/$t" \
        -runs="$RUNS" -max_total_time="$SECONDS_MAX" -timeout=10 -rss_limit_mb=2048 \
        -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
        2>&1 | tee "logs/$t.log" | grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)|^stat::|^==|panicked|SUMMARY' || true
done
