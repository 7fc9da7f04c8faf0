#!/usr/bin/env bash
# Re-runs the harness-overhead measurements of this folder: every configuration against the
# in-process echo server, 10 s each, 1 KiB messages, harness thread pinned to core 0 and the
# echo server to core 1. Repetitions are interleaved (rep 1 of every config, then rep 2, ...)
# so a burst of load from other processes spreads over all configurations.
# Usage: perf-reports/2026-11-22-harness-overhead/run.sh [repetitions]   (from the repo root)
set -euo pipefail
reps="${1:-3}"
out="$(dirname "$0")/raw"
mkdir -p "$out"
cargo build --release -p rmq-bench --bin rmq-bench
bench=target/release/rmq-bench
common=(--mode echo --duration 10 --size 1024 --first-core 0 --echo-core 1 --quiet)
declare -A configs=(
  [sync-1conn]="--send-mode sync --producers 1"
  [sync-16conn]="--send-mode sync --producers 16"
  [async-1conn-inflight64]="--send-mode async --inflight 64"
  [oneway-1conn]="--send-mode oneway"
  [async-1conn-inflight64-rocketmq]="--send-mode async --inflight 64 --serialize rocketmq"
  [async-1conn-inflight64-batch16]="--send-mode async --inflight 64 --batch 16"
)
order=(sync-1conn sync-16conn async-1conn-inflight64 oneway-1conn async-1conn-inflight64-rocketmq async-1conn-inflight64-batch16)
for rep in $(seq 1 "$reps"); do
  for name in "${order[@]}"; do
    # shellcheck disable=SC2086
    "$bench" "${common[@]}" ${configs[$name]} --label "$name rep $rep" --report "$out/$name-$rep.json"
  done
done
python3 "$(dirname "$0")/summarize.py" "$out"
