#!/bin/bash
# alloccount.sh RMQ [FLUSH] [EXTRA_BENCH_ARGS...]: allocator calls per message of a 1-shard broker, 200k async 128 B sends
rmq=$1; flush=${2:-ASYNC_FLUSH}; shift 2; bench=${BENCH:?rmq-bench binary}; w=/tmp/allocw; rm -rf $w; mkdir -p $w/store
printf 'brokerName=broker-a\nmappedFileSizeCommitLog=268435456\nflushDiskType=%s\n' $flush > $w/broker.conf
taskset -c 1 $rmq standalone --namesrv-port 0 --broker-port 0 --store-dir $w/store --shards 1 -c $w/broker.conf > $w/stdout 2>$w/stderr &
pid=$!
for _ in $(seq 1 100); do addr="$(sed -n 's/^READY namesrv //p' $w/stdout | head -1)"; grep -q '^READY broker' $w/stdout && [[ -n "$addr" ]] && break; sleep 0.1; done
sleep 1
# warm-up: creates the topic and the queues' files
$bench --mode produce --namesrv "$addr" --send-mode async --producers 4 --connections 4 --inflight 64 --size 128 --count 20000 --threads 1 --first-core 0 --quiet "$@" > /dev/null 2>&1
perf stat -x, -e 'probe_rmq:*' -p $pid -o $w/stat 2>/dev/null &
sp=$!
sleep 0.5
$bench --mode produce --namesrv "$addr" --send-mode async --producers 4 --connections 4 --inflight 64 --size 128 --count 200000 --threads 1 --first-core 0 --quiet "$@" > /dev/null 2>&1
sleep 0.5
kill -INT $sp; wait $sp
kill -TERM $pid; wait $pid
awk -F, '/probe/ {printf "%s %.2f\n", $3, $1/200000}' $w/stat
