#!/usr/bin/env bash
# Broker throughput/latency matrix: shards {1,2} x flushDiskType {ASYNC_FLUSH,SYNC_FLUSH} x
# body {128 B, 1 KiB, 16 KiB}, async producers (4 connections x 64 in flight), 15 s each, plus
# one produce-consume run per shard count (1 KiB, ASYNC_FLUSH). Each run gets a fresh broker
# (`rmq standalone`, ports 0) with a fresh store dir under target/ (the real disk), which is
# killed with SIGTERM and deleted afterwards.
# Pinning: the harness thread is pinned to core 0 (`--threads 1 --first-core 0`). With 1
# shard the broker process is confined to core 1 (`taskset -c 1`; its shard thread and the
# NameServer thread both run there). With 2 shards the broker pins shard i to core i, so
# shard 0 shares core 0 with the harness: on a 2-vCPU machine there is no disjoint split.
# Broker CPU per thread is sampled from /proc before and after each harness run (procstat.py).
# Usage (repo root): perf-reports/2026-11-22-broker/run.sh PASS [forward|reverse]
# (this report: passes 1 forward, 2 reverse, 3 forward). DURATION=s overrides the 15 s;
# OUT=DIR writes the raw files to DIR instead of this folder's raw/ (later reports);
# RMQ_BIN / BENCH_BIN pick other binaries (A/B comparisons of two commits).
# Needs: target/release/rmq and target/release/rmq-bench
#   (cargo build --release -p rmq --bin rmq -p rmq-bench --bin rmq-bench).
set -euo pipefail
pass="${1:-1}"
order="${2:-forward}"
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$here/raw}"
work=target/perf-broker
mkdir -p "$out" "$work"
rmq="${RMQ_BIN:-target/release/rmq}"
bench="${BENCH_BIN:-target/release/rmq-bench}"
duration="${DURATION:-15}"

# run_one NAME SHARDS FLUSH SIZE MODE
run_one() {
  local name="$1" shards="$2" flush="$3" size="$4" mode="$5"
  local tag="$name-pass$pass"
  local dir="$work/$tag" conf="$work/$tag.conf" log="$work/$tag.log"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'brokerName=broker-a\nmappedFileSizeCommitLog=268435456\nflushDiskType=%s\n' "$flush" >"$conf"
  local pin=()
  [[ "$shards" == 1 ]] && pin=(taskset -c 1)
  "${pin[@]}" "$rmq" standalone --namesrv-port 0 --broker-port 0 --store-dir "$dir" \
    --shards "$shards" -c "$conf" >"$log" 2>"$log.err" &
  local pid=$! addr=""
  for _ in $(seq 1 300); do
    addr="$(sed -n 's/^READY namesrv //p' "$log" | head -1)"
    grep -q '^READY broker' "$log" && [[ -n "$addr" ]] && break
    sleep 0.1
  done
  [[ -n "$addr" ]] || { echo "broker did not start: $tag" >&2; kill -TERM "$pid"; exit 1; }
  sleep 1 # let the broker register with its NameServer
  local extra=()
  if [[ "$mode" == produce-consume ]]; then
    extra=(--mode produce-consume --consumers 1 --consume-from last)
  else
    extra=(--mode produce)
  fi
  python3 "$here/procstat.py" "$pid" >"$work/$tag.before"
  "$bench" "${extra[@]}" --namesrv "$addr" --send-mode async --producers 4 --connections 4 \
    --inflight 64 --size "$size" --duration "$duration" --threads 1 --first-core 0 \
    --store-dir "$dir" --o-direct on --quiet --label "$tag" --report "$out/$tag.json"
  python3 "$here/procstat.py" "$pid" >"$work/$tag.after"
  python3 "$here/procstat.py" --diff "$work/$tag.before" "$work/$tag.after" >"$out/$tag.broker-cpu.json"
  kill -TERM "$pid"
  wait "$pid" || echo "broker exit status $? ($tag)" >&2
  rm -rf "$dir" "$conf" "$work/$tag.before" "$work/$tag.after"
  mv "$log.err" "$out/$tag.broker.log"
  rm -f "$log"
}

runs=()
for shards in 1 2; do
  for flush in ASYNC_FLUSH SYNC_FLUSH; do
    for size in 128 1024 16384; do
      f="$(echo "$flush" | tr 'A-Z_' 'a-z-')"
      runs+=("s$shards-$f-$size $shards $flush $size produce")
    done
  done
  runs+=("s$shards-async-flush-1024-pc $shards ASYNC_FLUSH 1024 produce-consume")
done
if [[ "$order" == reverse ]]; then
  reversed=(); for ((i=${#runs[@]}-1; i>=0; i--)); do reversed+=("${runs[i]}"); done
  runs=("${reversed[@]}")
fi
for run in "${runs[@]}"; do
  # shellcheck disable=SC2086
  run_one $run
done
python3 "$here/summarize.py" "$out"
