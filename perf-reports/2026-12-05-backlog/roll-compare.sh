#!/usr/bin/env bash
# Side-by-side fill of COUNT messages with two broker binaries, alternating A B A B: BEFORE
# writes consume-queue blocks one at a time inside the reput every append waits for; AFTER
# writes up to CQ_WRITES_IN_FLIGHT_MAX queues' blocks at once. Same harness, pinning and config
# as run.sh's fill phase (1 shard, ASYNC_FLUSH, 1 GiB segments, 128 B messages in async
# batches of 32). The difference shows right after segment rolls, while the next segment is
# zero-filled and each small write waits behind it in the device queue.
# Usage (repo root): perf-reports/2026-12-05-backlog/roll-compare.sh BEFORE_RMQ AFTER_RMQ [COUNT]
#   (default COUNT 20000000: ~8 segment rolls each). Needs target/release/rmq-bench.
set -euo pipefail
before="$1"
after="$2"
count="${3:-20000000}"
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/raw"
work=target/perf-roll
bench=target/release/rmq-bench
mkdir -p "$out" "$work"
conf="$work/broker.conf"
printf 'brokerName=broker-a\nflushDiskType=ASYNC_FLUSH\ndefaultTopicQueueNums=8\n' >"$conf"

fill() {
  local name="$1" rmq="$2" store="$work/store" log="$work/$1.log" addr=""
  rm -rf "$store"
  taskset -c 1 "$rmq" standalone --namesrv-port 0 --broker-port 0 --store-dir "$store" \
    --shards 1 -c "$conf" >"$log" 2>"$log.err" &
  local pid=$!
  for _ in $(seq 1 3000); do
    addr="$(sed -n 's/^READY namesrv //p' "$log" | head -1)"
    grep -q '^READY broker' "$log" && [[ -n "$addr" ]] && break
    sleep 0.01
  done
  [[ -n "$addr" ]] || { echo "broker did not start ($name)" >&2; kill -TERM "$pid"; exit 1; }
  sleep 1
  "$bench" --mode backlog --namesrv "$addr" --topic BacklogTopic --queues 8 --size 128 \
    --threads 1 --first-core 0 --quiet --store-dir "$store" --o-direct on --count "$count" \
    --batch 32 --send-mode async --producers 4 --connections 4 --inflight 8 \
    --broker-pid "$pid" --label "$name" --report "$out/$name.json" | tail -6
  kill -TERM "$pid"
  wait "$pid" || echo "broker exit status $? ($name)" >&2
  rm -rf "$store" "$log" "$log.err"
}

for round in 1 2; do
  fill "roll-before-$round" "$before"
  fill "roll-after-$round" "$after"
done
