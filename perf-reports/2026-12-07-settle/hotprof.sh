#!/bin/bash
# A DWARF profile of a 1-shard broker (core 1) under ASYNC_FLUSH, then SYNC_FLUSH, SIZE (default 128) B, rmq-bench
# async 4 x 64 in flight on core 0; 5 s of perf from 2 s into a 10 s run. Usage (repo root):
#   hotprof.sh OUT RMQ BENCH   -> OUT/{async,sync}.{folded,json,perf.data}; hotprof_diff.py OUT
set -e
out=$1; rmq=$2; bench=$3; mkdir -p $out; work=target/perf-hotprof; mkdir -p $work
for flush in ${FLUSHES:-ASYNC_FLUSH SYNC_FLUSH}; do
  tag=$([[ $flush == SYNC_FLUSH ]] && echo sync || echo async)
  dir=$work/store; rm -rf $dir; mkdir -p $dir
  printf 'brokerName=broker-a\nmappedFileSizeCommitLog=268435456\nflushDiskType=%s\n' "$flush" > $work/broker.conf
  taskset -c 1 $rmq standalone --namesrv-port 0 --broker-port 0 --store-dir $dir --shards 1 -c $work/broker.conf > $work/stdout 2>$out/$tag.broker.log &
  pid=$!
  for _ in $(seq 1 300); do addr="$(sed -n 's/^READY namesrv //p' $work/stdout | head -1)"; grep -q '^READY broker' $work/stdout && [[ -n "$addr" ]] && break; sleep 0.1; done
  sleep 1
  ( sleep 2; perf record -q -e cpu-clock --call-graph dwarf,16384 -F 2000 -p $pid -o $out/$tag.perf.data -- sleep 5 2>/dev/null ) &
  perfp=$!
  $bench --mode produce --namesrv "$addr" --send-mode async --producers 4 --connections 4 --inflight 64 --size ${SIZE:-128} --duration 10 --threads 1 --first-core 0 --broker-pid $pid --quiet --label $tag --report $out/$tag.json > /dev/null
  wait $perfp || true
  kill -TERM $pid; wait $pid || true
  perf script -i $out/$tag.perf.data 2>/dev/null | inferno-collapse-perf > $out/$tag.folded
done
