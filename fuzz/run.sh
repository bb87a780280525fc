#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, with ASan and UBSan) and runs each.
#   fuzz/run.sh [SECONDS_PER_HARNESS]   (default 60; CI uses this)
# Inputs that once crashed a harness live in fuzz/regressions/<harness>/ and
# are replayed first: a regression fails the run before any fuzzing.
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${FUZZ_WORK:-$root/build/fuzz}
captures=${FUZZ_CAPTURES:-$root/../shared/captures}
[ -d "$captures" ] || captures=$root/tests/data
mkdir -p "$work"
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I$root/csrc"
core=$(ls "$root"/csrc/core/*.c)
# the seeds are decoded by this checkout's pcapflow (built in place, as
# `pip install -e .` does), not by whichever one is installed
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" python3 "$root/fuzz/make_seeds.py" "$captures" "$work/seeds"
for harness in decode capture writer follow; do
    clang $flags -o "$work/fuzz_$harness" "$root/fuzz/fuzz_$harness.c" $core -lpcap
    mkdir -p "$work/corpus/$harness" "$root/fuzz/regressions/$harness"
    if ls "$root/fuzz/regressions/$harness"/* >/dev/null 2>&1; then
        "$work/fuzz_$harness" "$root/fuzz/regressions/$harness"/*
    fi
    echo "fuzz_$harness: ${seconds}s"
    "$work/fuzz_$harness" -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$work/crash-$harness-" \
        "$work/corpus/$harness" "$work/seeds/$harness" 2>&1 | grep -E "^(stat::|INFO: Seed|==|SUMMARY|Done)" || true
    # a crash leaves an artifact; make the run fail and keep it for a regression test
    if ls "$work"/crash-$harness-* >/dev/null 2>&1; then
        echo "fuzz_$harness found a crash: $(ls "$work"/crash-$harness-*)" >&2
        exit 1
    fi
done
