#!/usr/bin/env bash
# Flame graph of a 1-shard broker under one load of ../2026-12-06-hot-path/run.sh (env SIZE,
# BATCH, FLUSH; default ASYNC_FLUSH 128 B unbatched): perf samples the broker (cpu-clock, DWARF
# call graphs) for 4 s in the middle of a 12 s run; inferno folds the
# stacks and draws the SVG. Needs `perf` and `cargo install inferno`.
#
#   ./flame.sh <rmq binary> <name>   -> flame-<name>.svg, flame-<name>.folded
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rmq="$1"; name="$2"
size="${SIZE:-128}"; batch="${BATCH:-1}"; flush="${FLUSH:-ASYNC_FLUSH}"
extra=(); [[ "$batch" -gt 1 ]] && extra=(--batch "$batch")
bench="${BENCH:-target/release/rmq-bench}"
work="${WORK:-target/perf-hot-path}/flame-$name"
rm -rf "$work"; mkdir -p "$work/store"
printf 'brokerName=broker-a\nmappedFileSizeCommitLog=268435456\nflushDiskType=%s\n' "$flush" >"$work/broker.conf"
taskset -c 1 "$rmq" standalone --namesrv-port 0 --broker-port 0 --store-dir "$work/store" \
  --shards 1 -c "$work/broker.conf" >"$work/stdout" 2>"$work/broker.log" &
pid=$! addr=""
for _ in $(seq 1 300); do
  addr="$(sed -n 's/^READY namesrv //p' "$work/stdout" | head -1)"
  grep -q '^READY broker' "$work/stdout" && [[ -n "$addr" ]] && break
  sleep 0.1
done
[[ -n "$addr" ]] || { echo "broker did not start" >&2; kill -TERM "$pid"; exit 1; }
sleep 1
( sleep 4; perf record -e cpu-clock --call-graph dwarf,16384 -p "$pid" -o "$work/perf.data" -- sleep 4 \
    >/dev/null 2>&1 ) &
recorder=$!
"$bench" --mode produce --namesrv "$addr" --send-mode async --producers 4 --connections 4 \
  --inflight 64 --size "$size" "${extra[@]}" --duration 12 --threads 1 --first-core 0 --broker-pid "$pid" \
  --quiet --label "flame-$name" --report "$work/report.json" >/dev/null
wait "$recorder"
kill -TERM "$pid"; wait "$pid" || true
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$here/flame-$name.folded"
inferno-flamegraph --title "rmq broker, 1 shard, $flush $size B x $batch ($name)" \
  <"$here/flame-$name.folded" >"$here/flame-$name.svg"
rm -rf "$work/store"
echo "wrote $here/flame-$name.svg"
