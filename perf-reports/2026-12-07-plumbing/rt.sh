#!/usr/bin/env bash
# Unloaded round trip (issue 14): 1 producer, 1 request in flight, 128 B, ASYNC_FLUSH (or
# FLUSH=SYNC_FLUSH), a 1-shard broker pinned to core 1 and rmq-bench on core 0. For each build
# in RUNS (a space-separated list of TAG=BINARY or TAG=BINARY@KEY=VALUE, the broker.conf line
# added for that run; run in that order) it prints the harness's
# msgs/s and latency percentiles, the broker's CPU per message (from /proc via --broker-pid)
# and, from `perf stat` on the broker process over the middle of the run, syscalls,
# io_uring_enter calls and context switches per acknowledged message.
#
#   RUNS="A1=/tmp/a/rmq B1=target/release/rmq B2=target/release/rmq A2=/tmp/a/rmq" \
#     BENCH=target/release/rmq-bench DURATION=8 MODE=sync INFLIGHT=1 ./rt.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bench="${BENCH:-target/release/rmq-bench}"
duration="${DURATION:-8}"
flush="${FLUSH:-ASYNC_FLUSH}"
size="${SIZE:-128}"
mode="${MODE:-sync}"
inflight="${INFLIGHT:-1}"
producers="${PRODUCERS:-1}"
out="${OUT:-$here/raw}"
work="${WORK:-target/perf-plumbing}"
mkdir -p "$out" "$work"

for run in ${RUNS:?TAG=BINARY ...}; do
  tag="${run%%=*}"; rmq="${run#*=}"; extra=""
  if [[ "$rmq" == *@* ]]; then extra="${rmq#*@}"; rmq="${rmq%%@*}"; fi
  name="$mode-$flush-$size-p$producers-i$inflight-$tag"
  dir="$work/store"; rm -rf "$dir"; mkdir -p "$dir"
  printf 'brokerName=broker-a\nmappedFileSizeCommitLog=268435456\nflushDiskType=%s\n%s\n' "$flush" "$extra" >"$work/broker.conf"
  taskset -c 1 "$rmq" standalone --namesrv-port 0 --broker-port 0 --store-dir "$dir" \
    --shards 1 -c "$work/broker.conf" >"$work/stdout" 2>"$out/$name.broker.log" &
  pid=$!; addr=""
  for _ in $(seq 1 300); do
    addr="$(sed -n 's/^READY namesrv //p' "$work/stdout" | head -1)"
    grep -q '^READY broker' "$work/stdout" && [[ -n "$addr" ]] && break
    sleep 0.1
  done
  [[ -n "$addr" ]] || { echo "broker did not start: $name" >&2; kill -TERM "$pid"; exit 1; }
  sleep 1
  # perf stat over the middle of the run (from 2 s in, for duration-4 s).
  ( sleep 2; perf stat -x, -p "$pid" -e raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter,context-switches,task-clock \
      -o "$out/$name.perfstat" -- sleep $((duration - 4)) ) &
  statpid=$!
  "$bench" --mode produce --namesrv "$addr" --send-mode "$mode" --producers "$producers" \
    --connections "$producers" --inflight "$inflight" --size "$size" --duration "$duration" \
    --threads 1 --first-core 0 --broker-pid "$pid" --quiet --label "$name" \
    --report "$out/$name.json" >/dev/null
  wait "$statpid" || true
  kill -TERM "$pid"; wait "$pid" || echo "broker exit status $? ($name)" >&2
  rm -rf "$dir"; rm -f "$out/$name".*.svg
  python3 "$here/rt_line.py" "$out/$name.json" "$out/$name.perfstat" "$((duration - 4))" "$name" "$(cut -d' ' -f1 /proc/loadavg)"
done
