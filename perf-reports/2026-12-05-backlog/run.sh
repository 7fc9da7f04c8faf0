#!/usr/bin/env bash
# Backlog run: fill a backlog of COUNT messages into one broker, then measure what a backlog
# costs. Phases, all against the same store directory (the real disk, ext4, O_DIRECT):
#   1. fill       rmq-bench --mode backlog: COUNT messages of SIZE bytes in batches of BATCH
#                 (async, 4 connections x 8 batches in flight); producer rate, p99 per second
#                 and broker RSS per second (--broker-pid) while segments roll.
#   2. tail       a steady producer (RATE msgs/s, single-message async sends) for TAIL_S
#                 seconds, three times: alone, with a consumer group reading the cold head of
#                 the backlog (offset 0, page cache dropped first), alone again. Producer
#                 p99/p99.9 with and without that consumer.
#   3. restart    SIGTERM (clean shutdown: time to exit), page cache dropped, start again
#                 (time to READY), the topic's offsets checked with `rmq admin topic-status`,
#                 idle RSS.
#   4. crash      SIGKILL during a producer run, page cache dropped, start again (time to
#                 READY and the store's recovery log line), offsets checked again (what was
#                 acknowledged and what survived).
# Pinning: harness on core 0, the broker process (1 shard + its NameServer thread) on core 1.
# Usage (repo root): perf-reports/2026-12-05-backlog/run.sh [COUNT]   (default 100000000)
# Env: SIZE (128) BATCH (32) RATE (20000) TAIL_S (60) WORK (target/perf-backlog) KEEP=1 keeps
# the store afterwards. Needs target/release/rmq and target/release/rmq-bench.
set -euo pipefail
count="${1:-100000000}"
size="${SIZE:-128}"
batch="${BATCH:-32}"
rate="${RATE:-20000}"
tail_s="${TAIL_S:-60}"
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/raw"
work="${WORK:-target/perf-backlog}"
store="$work/store"
rmq=target/release/rmq
bench=target/release/rmq-bench
topic=BacklogTopic
mkdir -p "$out" "$work"
rm -rf "$store"
conf="$work/broker.conf"
# Defaults of Apache RocketMQ except the data dir: 1 GiB CommitLog segments, ASYNC_FLUSH,
# 300,000-entry consume-queue files; 8 queues per auto-created topic.
printf 'brokerName=broker-a\nflushDiskType=ASYNC_FLUSH\ndefaultTopicQueueNums=8\n' >"$conf"
events="$out/events.txt"
: >"$events"
note() { echo "$*" | tee -a "$events" >&2; }
now() { date +%s.%N; }

pid=""
addr=""
log=""
start_broker() {
  local name="$1"
  log="$work/$name.log"
  local t0 t1
  t0="$(now)"
  taskset -c 1 "$rmq" standalone --namesrv-port 0 --broker-port 0 --store-dir "$store" \
    --shards 1 -c "$conf" >"$log" 2>"$out/$name.broker.log" &
  pid=$!
  addr=""
  for _ in $(seq 1 60000); do
    if grep -q '^READY broker' "$log" 2>/dev/null; then
      addr="$(sed -n 's/^READY namesrv //p' "$log" | head -1)"
      break
    fi
    kill -0 "$pid" 2>/dev/null || { note "broker died during start ($name)"; exit 1; }
    sleep 0.01
  done
  t1="$(now)"
  [[ -n "$addr" ]] || { note "broker did not start ($name)"; exit 1; }
  note "$name: READY after $(echo "$t1 - $t0" | bc) s (namesrv $addr, pid $pid)"
  note "$name: idle RSS $(grep VmRSS /proc/$pid/status | awk '{print $2}') KiB"
  sleep 1 # registration with the NameServer
}

stop_broker() {
  local t0 t1
  t0="$(now)"
  kill -TERM "$pid"
  wait "$pid" || note "broker exit status $?"
  t1="$(now)"
  note "SIGTERM: exited after $(echo "$t1 - $t0" | bc) s"
}

topic_status() {
  local name="$1"
  "$rmq" admin topic-status -n "$addr" -t "$topic" >"$out/$name.topic-status.txt"
  note "$name: $(tail -1 "$out/$name.topic-status.txt")"
}

disk_usage() {
  note "$1: disk $(du -sb "$store" | cut -f1) bytes (commitlog $(du -sb "$store"/shard-0/commitlog | cut -f1), consumequeue $(du -sb "$store"/shard-0/consumequeue | cut -f1), index $(du -sb "$store"/shard-0/index | cut -f1))"
}

common=(--topic "$topic" --queues 8 --size "$size" --threads 1 --first-core 0 --quiet
  --store-dir "$store" --o-direct on)

note "backlog run: count=$count size=$size batch=$batch rate=$rate tail_s=$tail_s commit=$(git rev-parse --short HEAD)"
start_broker start
"$bench" --mode backlog --namesrv "$addr" "${common[@]}" --count "$count" --batch "$batch" \
  --send-mode async --producers 4 --connections 4 --inflight 8 --broker-pid "$pid" \
  --label fill --report "$out/fill.json" | tee "$out/fill.txt"
disk_usage fill
topic_status fill

tail_run() {
  local name="$1"; shift
  "$bench" --namesrv "$addr" "${common[@]}" --duration "$tail_s" --rate "$rate" \
    --send-mode async --producers 4 --connections 4 --inflight 16 --broker-pid "$pid" \
    --label "$name" --report "$out/$name.json" "$@" | tee "$out/$name.txt"
}
tail_run tail-alone-1 --mode produce
sync; echo 3 >/proc/sys/vm/drop_caches
tail_run tail-with-cold-consumer --mode produce-consume --consume-from first \
  --group-prefix cold-reader --consumers 2 --pull-batch 256 --drain-timeout 0
tail_run tail-alone-2 --mode produce
topic_status tail

stop_broker
sync; echo 3 >/proc/sys/vm/drop_caches # a cold restart: nothing of the store in the page cache
start_broker restart
topic_status restart

# Crash: SIGKILL while a producer is sending; what it had acknowledged must survive.
"$bench" --namesrv "$addr" "${common[@]}" --duration 30 --rate "$rate" --mode produce \
  --send-mode async --producers 4 --connections 4 --inflight 16 --label crash-load \
  --report "$out/crash-load.json" >"$out/crash-load.txt" 2>&1 &
load=$!
sleep 10
note "SIGKILL during the crash-load producer"
kill -KILL "$pid"
wait "$pid" || true
wait "$load" || true
sync; echo 3 >/proc/sys/vm/drop_caches
start_broker recover
grep -h "store opened" "$out/recover.broker.log" | tail -1 | tee -a "$events" >&2 || true
topic_status recover
disk_usage end
stop_broker
[[ "${KEEP:-0}" == 1 ]] || rm -rf "$store"
python3 "$here/summarize.py" "$out" >"$here/summary.md"
cat "$here/summary.md"
