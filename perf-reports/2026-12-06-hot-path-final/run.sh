#!/usr/bin/env bash
# Issue 14 hot-path A/B: one 1-shard broker (pinned to core 1) per run, rmq-bench on core 0
# (async producers, 4 connections x 64 in flight), ASYNC_FLUSH and SYNC_FLUSH, 128 B / 1 KiB /
# 16 KiB unbatched and batches of 32 x 128 B. Passes alternate the order of the two builds
# (A B, B A, A B, ...), so drift on this shared VM hits both alike.
#
#   A_RMQ=<before rmq> B_RMQ=<after rmq> BENCH=<rmq-bench> PASSES=3 DURATION=10 ./run.sh
#
# Writes raw/<config>-<build>-pass<N>.json (the harness report, with the broker's CPU from
# /proc via --broker-pid) and summary.md (summarize.py: medians and B/A ratios). Later reports
# reuse it: OUT=<their raw dir> SUMMARY=<their summary.md>, and CONFIGS="async-128 async-1024"
# runs only those configs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
a_rmq="${A_RMQ:?before broker binary}"
b_rmq="${B_RMQ:?after broker binary}"
bench="${BENCH:-target/release/rmq-bench}"
passes="${PASSES:-3}"
duration="${DURATION:-10}"
out="${OUT:-$here/raw}"
work="${WORK:-target/perf-hot-path}"
mkdir -p "$out" "$work"

run_one() {
  local build="$1" rmq="$2" name="$3" flush="$4" size="$5" batch="$6" pass="$7"
  local tag="$name-$build-pass$pass" dir="$work/store"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'brokerName=broker-a\nmappedFileSizeCommitLog=268435456\nflushDiskType=%s\n' "$flush" >"$work/broker.conf"
  taskset -c 1 "$rmq" standalone --namesrv-port 0 --broker-port 0 --store-dir "$dir" \
    --shards 1 -c "$work/broker.conf" >"$work/stdout" 2>"$out/$tag.broker.log" &
  local pid=$! addr=""
  for _ in $(seq 1 300); do
    addr="$(sed -n 's/^READY namesrv //p' "$work/stdout" | head -1)"
    grep -q '^READY broker' "$work/stdout" && [[ -n "$addr" ]] && break
    sleep 0.1
  done
  [[ -n "$addr" ]] || { echo "broker did not start: $tag" >&2; kill -TERM "$pid"; exit 1; }
  sleep 1
  local extra=()
  [[ "$batch" -gt 1 ]] && extra=(--batch "$batch")
  "$bench" --mode produce --namesrv "$addr" --send-mode async --producers 4 --connections 4 \
    --inflight 64 --size "$size" "${extra[@]}" --duration "$duration" --threads 1 --first-core 0 \
    --broker-pid "$pid" --quiet --label "$tag" --report "$out/$tag.json" >/dev/null
  kill -TERM "$pid"
  wait "$pid" || echo "broker exit status $? ($tag)" >&2
  rm -rf "$dir"
  rm -f "$out/$tag".*.svg
}

configs=(
  "async-128 ASYNC_FLUSH 128 1"
  "async-batch32 ASYNC_FLUSH 128 32"
  "async-1024 ASYNC_FLUSH 1024 1"
  "async-16384 ASYNC_FLUSH 16384 1"
  "sync-128 SYNC_FLUSH 128 1"
  "sync-batch32 SYNC_FLUSH 128 32"
  "sync-1024 SYNC_FLUSH 1024 1"
  "sync-16384 SYNC_FLUSH 16384 1"
)
if [[ -n "${CONFIGS:-}" ]]; then
  chosen=()
  for config in "${configs[@]}"; do
    [[ " $CONFIGS " == *" ${config%% *} "* ]] && chosen+=("$config")
  done
  configs=("${chosen[@]}")
fi
summary="${SUMMARY:-$here/summary.md}"
for pass in $(seq 1 "$passes"); do
  for config in "${configs[@]}"; do
    if (( pass % 2 == 1 )); then order=("A $a_rmq" "B $b_rmq"); else order=("B $b_rmq" "A $a_rmq"); fi
    for build in "${order[@]}"; do
      # shellcheck disable=SC2086
      run_one ${build% *} "${build#* }" $config "$pass"
      echo "done: ${build% *} $config pass $pass"
    done
  done
done
python3 "$here/summarize.py" "$out" >"$summary"
cat "$summary"
