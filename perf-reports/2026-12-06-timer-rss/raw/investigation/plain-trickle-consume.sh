#!/usr/bin/env bash
# Same broker, no timers: plain sends at a trickle (RATE msgs/s) with consumers long-polling.
set -euo pipefail
cd /work/wt/timerbench
rate="${RATE:-5000}"; dur="${DUR:-60}"
work=target/perf-timer-rss-inv3; out="${OUT:-/tmp/timerbench-inv3}"
rm -rf "$work"; mkdir -p "$work/store" "$out"
printf 'brokerName=broker-a\nmappedFileSizeCommitLog=1073741824\nflushDiskType=ASYNC_FLUSH\n' >"$work/broker.conf"
env ${JE:+_RJEM_MALLOC_CONF=$JE} taskset -c 1 target/release/rmq standalone --namesrv-port 0 --broker-port 0 --store-dir "$work/store" --shards 1 -c "$work/broker.conf" >"$work/stdout" 2>"$out/broker.log" &
pid=$!
for _ in $(seq 1 300); do
  ns="$(sed -n 's/^READY namesrv //p' "$work/stdout" | head -1)"; br="$(sed -n 's/^READY broker //p' "$work/stdout" | head -1)"
  [[ -n "$ns" && -n "$br" ]] && break; sleep 0.1
done
rm -f "$work/stop"
taskset -c 0 python3 perf-reports/2026-12-06-timer-rss/sample.py "$pid" target/release/rmq "$br" "$work/store" "$out/inv.csv" "$work/stop" &
sampler=$!
taskset -c 0 target/release/rmq-bench --mode produce-consume --namesrv "$ns" --send-mode async --producers 4 --connections 4 --inflight 64 --size 128 --rate "$rate" --duration "$dur" --consumers 4 --consume-from first --long-poll-ms "${LP:-15000}" --quiet --report "$out/inv.json" >/dev/null
sleep "${TAIL:-5}"
touch "$work/stop"; wait "$sampler" || true
kill -TERM "$pid"; wait "$pid" || true
rm -rf "$work"
