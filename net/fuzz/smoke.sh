#!/usr/bin/env bash
# Fuzz smoke test for the rmq-net codec: builds every cargo-fuzz target in this directory and
# runs each one for a bounded time. Exits non-zero if a build fails or a target crashes (the
# crashing input is then in artifacts/<target>/).
#
# Usage: net/fuzz/smoke.sh [seconds_per_target]     (default 30)
# Needs: nightly toolchain (`cargo +nightly`) and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail

seconds="${1:-30}"
case "$seconds" in
    '' | *[!0-9]*) echo "usage: $0 [seconds_per_target]" >&2; exit 2 ;;
esac

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
captures="$fuzz_dir/../tests/data/wire-captures"
cd "$fuzz_dir"

# A single allocation above this is a crash: the codec never needs more than one frame
# (16 MiB) plus its decoded copy, and fuzz inputs are far smaller.
malloc_limit_mb=64

targets="$(cargo +nightly fuzz list)"
if [ -z "$targets" ]; then
    echo "no fuzz targets found" >&2
    exit 1
fi

for target in $targets; do
    corpus="$fuzz_dir/corpus/$target"
    mkdir -p "$corpus"
    # Seed with real client bytes so the fuzzer starts past the frame words.
    if [ "$target" = decode_frame ]; then
        for capture in "$captures"/*/*.bin; do
            client="$(basename "$(dirname "$capture")")"
            cp -f "$capture" "$corpus/$client-$(basename "$capture")"
        done
    fi
    # Seed with the object-keyed bodies Java writes (ConsumeStats, TopicStatsTable).
    if [ "$target" = decode_object_keys ]; then
        printf '%s' '{"consumeTps":1.5,"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:{"brokerOffset":10,"consumerOffset":7,"lastTimestamp":1700000000000,"pullOffset":8}}}' \
            >"$corpus/seed-consume-stats.json"
        printf '%s' '{"offsetTable":{{"brokerName":"b","queueId":1,"topic":"t"}:{"lastUpdateTimestamp":9,"maxOffset":5,"minOffset":0}}}' \
            >"$corpus/seed-topic-stats.json"
        printf '%s' ' { "offsetTable" : { "{\"brokerName\":\"b\",\"queueId\":2,\"topic\":\"t\"}" : {} } , 0 : [1, {"y":2e3}], "s":"\u00e9" } ' \
            >"$corpus/seed-loose.json"
    fi
    if [ -d "$fuzz_dir/seeds/$target" ]; then
        cp -f "$fuzz_dir/seeds/$target"/* "$corpus/"
    fi
    echo "== building $target"
    cargo +nightly fuzz build "$target"
    echo "== running $target for ${seconds}s"
    cargo +nightly fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -malloc_limit_mb="$malloc_limit_mb" -print_final_stats=1
    echo "== $target: no crash in ${seconds}s"
done
echo "fuzz smoke passed: $(echo "$targets" | wc -w) target(s), ${seconds}s each"
