#!/usr/bin/env bash
# Echo-mode cost of the harness before and after the lean async send path: 128 B messages,
# async, unbatched, one harness thread on core 0, the echo server on core 1, 10 s per run.
# Repetitions are interleaved (before and after, every config, then the next repetition), so
# load from other processes on this shared machine spreads over all of them.
# Usage (repo root): perf-reports/2026-12-06-harness/run.sh <before-binary> <after-binary> [reps]
set -euo pipefail
before="$1"
after="$2"
reps="${3:-3}"
out="$(dirname "$0")/raw"
mkdir -p "$out"
common=(--mode echo --duration 10 --size 128 --first-core 0 --echo-core 1 --send-mode async --quiet)
declare -A configs=(
  [json-inflight64]="--inflight 64"
  [rocketmq-inflight64]="--inflight 64 --serialize rocketmq"
  [json-inflight1024]="--inflight 1024"
  [rocketmq-inflight1024]="--inflight 1024 --serialize rocketmq"
)
order=(json-inflight64 rocketmq-inflight64 json-inflight1024 rocketmq-inflight1024)
# CONFIGS="a b" runs only those (the rocketmq-inflight1024 runs were added in a second session).
if [ -n "${CONFIGS:-}" ]; then read -r -a order <<< "$CONFIGS"; fi
for rep in $(seq 1 "$reps"); do
  for name in "${order[@]}"; do
    for side in before after; do
      bin="$before"
      [ "$side" = after ] && bin="$after"
      # shellcheck disable=SC2086
      "$bin" "${common[@]}" ${configs[$name]} --label "$side $name rep $rep" \
        --report "$out/$side-$name-$rep.json" > /dev/null
    done
  done
done
python3 "$(dirname "$0")/summarize.py" "$out"
