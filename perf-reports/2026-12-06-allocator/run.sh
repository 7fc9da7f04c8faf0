#!/usr/bin/env bash
# Allocators side by side in one session (issue 11, defect 7): glibc malloc, mimalloc and
# jemalloc as the `rmq` binary's global allocator (same commit, cargo features), and the
# commit before the connection-buffer changes with glibc (`old-glibc`) as the baseline.
# Per pass and allocator, in the order given (pass 1 forward, 2 reverse, 3 forward):
#  1. waves.py: 5 waves of 10,000 connections (producer HEART_BEAT each) against a 2-shard
#     `rmq standalone`; broker VmRSS at start, peak, settled and late per wave.
#  2. rmq-bench: async producers (4 connections x 64 in flight), 10 s, 128 B and 1 KiB bodies,
#     against a fresh 1-shard broker confined to core 1 (`taskset -c 1`), harness on core 0
#     (as perf-reports/2026-11-22-broker/run.sh); broker VmRSS/VmHWM read before SIGTERM.
# Usage (repo root): ALLOC_DIR=/tmp/alloc perf-reports/2026-12-06-allocator/run.sh
#   where $ALLOC_DIR/{glibc,mimalloc,jemalloc}/rmq are release builds:
#   cargo build --release -p rmq --bin rmq --no-default-features [--features mimalloc|jemalloc]
#   and $ALLOC_DIR/old-glibc/rmq the same build of the baseline commit.
#   and $ALLOC_DIR/rmq-bench (cargo build --release -p rmq-bench --bin rmq-bench).
# PASSES=3 DURATION=10 override; OUT=DIR writes raw files elsewhere than ./raw.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
alloc_dir="${ALLOC_DIR:?set ALLOC_DIR}"
out="${OUT:-$here/raw}"
work=target/perf-allocator
passes="${PASSES:-3}"
duration="${DURATION:-10}"
bench="$alloc_dir/rmq-bench"
mkdir -p "$out" "$work"
ulimit -n 20000

status_kib() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }

# bench_one ALLOCATOR SIZE PASS
bench_one() {
  local alloc="$1" size="$2" pass="$3"
  local tag="$alloc-$size-pass$pass" dir="$work/$alloc-$size-pass$pass"
  local conf="$dir.conf" log="$dir.log"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'brokerName=broker-a\nmappedFileSizeCommitLog=268435456\nflushDiskType=ASYNC_FLUSH\n' >"$conf"
  taskset -c 1 "$alloc_dir/$alloc/rmq" standalone --namesrv-port 0 --broker-port 0 \
    --store-dir "$dir" --shards 1 -c "$conf" >"$log" 2>"$log.err" &
  local pid=$! addr=""
  for _ in $(seq 1 300); do
    addr="$(sed -n 's/^READY namesrv //p' "$log" | head -1)"
    grep -q '^READY broker' "$log" && [[ -n "$addr" ]] && break
    sleep 0.1
  done
  [[ -n "$addr" ]] || { echo "broker did not start: $tag" >&2; kill -TERM "$pid"; exit 1; }
  sleep 1
  "$bench" --mode produce --namesrv "$addr" --send-mode async --producers 4 --connections 4 \
    --inflight 64 --size "$size" --duration "$duration" --threads 1 --first-core 0 \
    --store-dir "$dir" --o-direct on --quiet --label "$tag" --report "$out/bench-$tag.json"
  printf '{"vm_rss_kib": %s, "vm_hwm_kib": %s}\n' "$(status_kib "$pid" VmRSS)" \
    "$(status_kib "$pid" VmHWM)" >"$out/bench-$tag.memory.json"
  kill -TERM "$pid"
  wait "$pid" || echo "broker exit status $? ($tag)" >&2
  rm -rf "$dir" "$conf" "$log" "$log.err"
}

run_pass() { # PASS ALLOCATORS...
  local pass="$1"; shift
  for alloc in "$@"; do
    echo "== pass $pass: $alloc"
    WORK_DIR="$work" python3 "$here/waves.py" "$alloc_dir/$alloc/rmq" "$out/waves-$alloc-pass$pass.json"
    for size in 128 1024; do
      bench_one "$alloc" "$size" "$pass"
    done
  done
}

for pass in $(seq 1 "$passes"); do
  if (( pass % 2 == 1 )); then
    run_pass "$pass" old-glibc glibc mimalloc jemalloc
  else
    run_pass "$pass" jemalloc mimalloc glibc old-glibc
  fi
done
python3 "$here/summarize.py" "$out" >"$here/summary.md"
cat "$here/summary.md"
