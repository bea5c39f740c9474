#!/usr/bin/env bash
# Builds the fuzz targets and runs one (or all, one after the other) until
# RUNS executions or SECONDS_MAX seconds, whichever comes first; the last lines
# of each log are the figures FUZZING.md records. See FUZZING.md.
#
#   fuzz/run.sh modbus                 # 10 million executions, at most 8 min
#   RUNS=1000000 SECONDS_MAX=60 fuzz/run.sh
#   SMOKE=1 fuzz/run.sh                # CI: every target for 20 s, from the committed corpus
#
# Each target reads fuzz/corpus/<t> (committed), fuzz/seeds/<t> (fuzz/seed.py)
# and fuzz/work/<t>, and writes what it finds new to fuzz/work/<t>;
# fuzz/cmin.sh folds that into the committed corpus.
set -euo pipefail
cd "$(dirname "$0")"
RUNS=${RUNS:-10000000}
SECONDS_MAX=${SECONDS_MAX:-480}
if [ -n "${SMOKE:-}" ]; then
    SECONDS_MAX=${SMOKE_SECONDS:-20}
fi
TARGET_DIR=${CARGO_TARGET_DIR:-target}
# Stable toolchain: cargo-fuzz passes -Z flags, which RUSTC_BOOTSTRAP allows.
# No sanitizer: our crates forbid unsafe code, and ASan would halve the speed
# of what we look for (panics, overflows, hangs, runaway memory).
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version > /dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --version 0.13.2
fi
cargo fuzz build -s none --target-dir "$TARGET_DIR/fuzz"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
python3 seed.py "${targets[@]}"
failed=()
for t in "${targets[@]}"; do
    mkdir -p "artifacts/$t" "work/$t" "corpus/$t" logs
    # Configuration files and recordings: a few kilobytes hold every key and
    # record; longer inputs only slow the parser down (FUZZING.md).
    case $t in
        config_agent | config_collector | profiles_toml | replay_line | replay_run) max_len=(-max_len=4096) ;;
        *) max_len=() ;;
    esac
    # A replay evaluates the engine every simulated second, up to the 7-day
    # bound (about 600,000 evaluations, 10-20 s here): slow by design, not a
    # hang (FUZZING.md, finding 2). Elsewhere 10 s is a hang.
    timeout=10
    [ "$t" = replay_run ] && timeout=60
    echo "== $t" >&2
    status=0
    nice -n "${NICE:-10}" "$TARGET_DIR/fuzz/x86_64-unknown-linux-gnu/release/$t" "work/$t" "corpus/$t" "seeds/$t" \
        -runs="$RUNS" -max_total_time="$SECONDS_MAX" -timeout="$timeout" -rss_limit_mb=2048 \
        -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="artifacts/$t/" "${max_len[@]}" \
        > "logs/$t.log" 2>&1 || status=$?
    grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)|^stat::(number_of_executed_units|average_exec_per_sec)|^==|panicked|SUMMARY' "logs/$t.log" >&2 || true
    if [ "$status" != 0 ]; then
        echo "$t: the fuzzer stopped with status $status (a finding: artifacts/$t/, log logs/$t.log)" >&2
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: findings in ${failed[*]}" >&2
    exit 1
fi
