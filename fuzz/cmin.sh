#!/usr/bin/env bash
# Folds what the fuzzers found (fuzz/work/<t>) and the seeds into the committed
# corpus fuzz/corpus/<t>, minimized by libFuzzer's merge (the smallest set of
# inputs with the same coverage), then drops every input that carries a piece
# of ../shared/testdata (those captures are not ours to commit: an input with
# 96 bytes in a row from one of them is left out; it stays in fuzz/work/).
#
#   fuzz/cmin.sh               # every target
#   fuzz/cmin.sh ipmi snmp
set -euo pipefail
cd "$(dirname "$0")"
TARGET_DIR=${CARGO_TARGET_DIR:-target}
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none --target-dir "$TARGET_DIR/fuzz"
shared=${SITEWATCH_SHARED_TESTDATA:-../../shared/testdata}
if [ ! -d "$shared" ]; then
    echo "cmin: SKIPPED: the shared seeds ($shared, ../shared/testdata) are not present: merging the repository's seeds and fuzz/work/ only" >&2
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "seeds/$t" "corpus/$t" logs
    rm -rf "merged/$t"
    mkdir -p "merged/$t"
    case $t in
        config_agent | config_collector | profiles_toml | replay_line | replay_run) max_len=(-max_len=4096) ;;
        *) max_len=() ;;
    esac
    # A fuzzer still running on work/ replaces its inputs as it shrinks them:
    # merge from a copy.
    rm -rf "snapshot/$t"
    mkdir -p "snapshot/$t"
    find "work/$t" -maxdepth 1 -type f -exec cp -t "snapshot/$t" {} + 2>/dev/null || true
    "$TARGET_DIR/fuzz/x86_64-unknown-linux-gnu/release/$t" -merge=1 -timeout=10 -rss_limit_mb=2048 \
        "${max_len[@]}" "merged/$t" "corpus/$t" "seeds/$t" "snapshot/$t" > "logs/cmin-$t.log" 2>&1
    rm -rf "snapshot/$t"
    python3 commit_filter.py "merged/$t"
    rm -rf "corpus/$t"
    mv "merged/$t" "corpus/$t"
    echo "$t: $(find "corpus/$t" -type f | wc -l) inputs, $(du -sk "corpus/$t" | cut -f1) KiB" >&2
done
rmdir merged snapshot 2>/dev/null || true
