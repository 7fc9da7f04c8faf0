#!/usr/bin/env bash
# Delivery-memory investigation: COUNT timers due 25..40 s after start, no consumer; sampler +
# perf page-fault call graphs during delivery.
set -euo pipefail
cd /work/wt/timerbench
count="${COUNT:-300000}"
work=target/perf-timer-rss-inv; out="${OUT:-/tmp/timerbench-inv}"
rm -rf "$work"; mkdir -p "$work/store" "$out"
printf 'brokerName=broker-a\nmappedFileSizeCommitLog=1073741824\nflushDiskType=ASYNC_FLUSH\n' >"$work/broker.conf"
taskset -c 1 target/release/rmq standalone --namesrv-port 0 --broker-port 0 --store-dir "$work/store" --shards 1 -c "$work/broker.conf" >"$work/stdout" 2>"$out/broker.log" &
pid=$!
for _ in $(seq 1 300); do
  ns="$(sed -n 's/^READY namesrv //p' "$work/stdout" | head -1)"; br="$(sed -n 's/^READY broker //p' "$work/stdout" | head -1)"
  [[ -n "$ns" && -n "$br" ]] && break; sleep 0.1
done
rm -f "$work/stop"
taskset -c 0 python3 perf-reports/2026-12-06-timer-rss/sample.py "$pid" target/release/rmq "$br" "$work/store" "$out/inv.csv" "$work/stop" &
sampler=$!
start=$SECONDS
taskset -c 0 target/release/rmq-bench --mode produce --namesrv "$ns" --send-mode async --producers 4 --connections 4 --inflight 64 --size 128 --count "$count" --timer-delay-ms 25000..40000 --timer-anchor start --quiet --report "$out/inv.json" >/dev/null
echo "sent at $((SECONDS-start)) s"
taskset -c 0 target/release/rmq-bench --mode consume --namesrv "$ns" --consumers 4 --consume-from first --pull-batch 32 --count "$count" --duration 120 --quiet --report "$out/consume.json" >/dev/null &
cons=$!
while (( SECONDS - start < 27 )); do sleep 0.5; done
perf record -e page-faults -c 4 --call-graph dwarf,8192 -p "$pid" -o "$out/faults.data" -- sleep 12 2>"$out/perf.err" || true
while (( SECONDS - start < 75 )); do sleep 1; done
wait $cons || true; sleep 5; touch "$work/stop"; wait "$sampler" || true
kill -TERM "$pid"; wait "$pid" || true
rm -rf "$work"
