#!/bin/bash
# io_uring operations of a 1-shard broker (core 1) under rmq-bench async 4 x 64 in flight (core 0):
# perf records the io_uring submit / punt-to-worker / complete tracepoints for 2 s, 3 s into an
# 8 s run. Usage (repo root): trace.sh FLUSH RMQ BENCH OUT   (env SIZE, default 128)
#   -> OUT/trace.txt (perf script), OUT/r.json (the harness report); opcounts.py OUT
set -e
flush=$1; rmq=$2; bench=$3; out=$4; mkdir -p $out
work=target/cq-batch-trace; dir=$work/store; rm -rf $dir; mkdir -p $dir
printf 'brokerName=broker-a\nmappedFileSizeCommitLog=268435456\nflushDiskType=%s\n' "$flush" > $work/broker.conf
taskset -c 1 $rmq standalone --namesrv-port 0 --broker-port 0 --store-dir $dir --shards 1 -c $work/broker.conf > $work/stdout 2>$out/broker.log &
pid=$!
for _ in $(seq 1 300); do addr="$(sed -n 's/^READY namesrv //p' $work/stdout | head -1)"; grep -q '^READY broker' $work/stdout && [[ -n "$addr" ]] && break; sleep 0.1; done
sleep 1
( sleep 3; perf record -q -e io_uring:io_uring_queue_async_work -e io_uring:io_uring_submit_req -e io_uring:io_uring_complete -p $pid -o $work/trace.data -- sleep 2 2>/dev/null ) &
perfp=$!
$bench --mode produce --namesrv "$addr" --send-mode async --producers 4 --connections 4 --inflight 64 --size ${SIZE:-128} --duration 8 --threads 1 --first-core 0 --broker-pid $pid --quiet --label trace --report $out/r.json > /dev/null
wait $perfp || true
kill -TERM $pid; wait $pid || true
perf script -i $work/trace.data > $out/trace.txt 2>/dev/null
