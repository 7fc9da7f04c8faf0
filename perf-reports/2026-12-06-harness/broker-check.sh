#!/usr/bin/env bash
# End-to-end check of the lean async send path against a real broker: rmq standalone, one
# shard pinned to core 1, ASYNC_FLUSH, harness on core 0, 128 B async sends, 10 s, with
# --broker-pid so the report carries the broker's CPU µs per message. Runs the before and
# after harness binaries alternately, each against a fresh broker.
# Usage (repo root): perf-reports/2026-12-06-harness/broker-check.sh <before-bench> <after-bench> [reps]
set -euo pipefail
before="$1"
after="$2"
reps="${3:-1}"
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/raw-broker"
work=target/perf-harness-broker
rmq="${RMQ_BIN:-target/release/rmq}"
mkdir -p "$out" "$work"
# utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
run_one() {
  local side="$1" bench="$2" rep="$3"
  local tag="$side-s1-async-flush-128-$rep" dir="$work/store" conf="$work/broker.conf"
  local log="$work/broker.log"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'brokerName=broker-a\nmappedFileSizeCommitLog=268435456\nflushDiskType=ASYNC_FLUSH\n' >"$conf"
  taskset -c 1 "$rmq" standalone --namesrv-port 0 --broker-port 0 --store-dir "$dir" \
    --shards 1 -c "$conf" >"$log" 2>"$log.err" &
  local pid=$! addr=""
  for _ in $(seq 1 300); do
    addr="$(sed -n 's/^READY namesrv //p' "$log" | head -1)"
    grep -q '^READY broker' "$log" && [[ -n "$addr" ]] && break
    sleep 0.1
  done
  [[ -n "$addr" ]] || { echo "broker did not start: $tag" >&2; kill -TERM "$pid"; exit 1; }
  sleep 1 # let the broker register with its NameServer
  local cpu_before; cpu_before="$(cpu_ticks "$pid")"
  "$bench" --mode produce --namesrv "$addr" --send-mode async --producers 4 --connections 4 \
    --inflight 64 --size 128 --duration 10 --threads 1 --first-core 0 --broker-pid "$pid" \
    --store-dir "$dir" --o-direct on --label "$tag" --report "$out/$tag.json" | tail -9
  # Cross-check, whole bench process lifetime (route lookup and drain included).
  echo "script: broker CPU ticks over the whole bench run: $(( $(cpu_ticks "$pid") - cpu_before ))" \
    "(ticks of $(getconf CLK_TCK)/s)" | tee "$out/$tag.script-cpu.txt"
  kill -TERM "$pid"
  wait "$pid" || echo "broker exit status $? ($tag)" >&2
  rm -rf "$dir"
}
for rep in $(seq 1 "$reps"); do
  run_one before "$before" "$rep"
  run_one after "$after" "$rep"
done
