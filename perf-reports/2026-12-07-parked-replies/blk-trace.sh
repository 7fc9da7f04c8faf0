#!/bin/bash
# usage: run.sh OUT RMQ BENCH FLUSH  -> block_rq_issue counts during 4 s of a loaded 1-shard broker
set -e
out=$1; rmq=$2; bench=$3; flush=${4:-SYNC_FLUSH}; mkdir -p $out; work=/work/main/target/blk; mkdir -p $work
dir=$work/store; rm -rf $dir; mkdir -p $dir
printf 'brokerName=broker-a\nmappedFileSizeCommitLog=268435456\nflushDiskType=%s\n' "$flush" > $work/broker.conf
taskset -c 1 $rmq standalone --namesrv-port 0 --broker-port 0 --store-dir $dir --shards 1 -c $work/broker.conf > $work/stdout 2>$out/broker.log &
pid=$!
for _ in $(seq 1 300); do addr="$(sed -n 's/^READY namesrv //p' $work/stdout | head -1)"; grep -q '^READY broker' $work/stdout && [[ -n "$addr" ]] && break; sleep 0.1; done
sleep 1
( sleep 3; perf record -q -a -e block:block_rq_issue -e block:block_rq_complete -e ext4:ext4_sync_file_enter -o $out/blk.data -- sleep 4 2>/dev/null ) &
perfp=$!
$bench --mode produce --namesrv "$addr" --send-mode async --producers 4 --connections 4 --inflight 64 --size 128 --duration 10 --threads 1 --first-core 0 --broker-pid $pid --quiet --label x --report $out/r.json > /dev/null
wait $perfp || true
kill -TERM $pid; wait $pid || true
perf script -i $out/blk.data 2>/dev/null > $out/blk.txt
