#!/usr/bin/env bash
# Transactional sends beside plain sends, same broker binary, same run: one fresh standalone
# broker per measurement, sync producers (16 producers on 8 connections, one request
# outstanding each), 1 KiB bodies, ASYNC_FLUSH and SYNC_FLUSH, 1 and 2 shards. "tx" sends a
# half message and then a two-way END_TRANSACTION commit per message (rmq-bench
# --transactional): a message counts, and its latency ends, when the commit is answered.
# Passes alternate plain/tx order, so drift on this shared VM hits both alike. After every tx
# run `rmq admin trans-pending --json` is saved: every acknowledged commit must have left
# nothing pending.
#
#   RMQ=target/release/rmq BENCH=target/release/rmq-bench PASSES=3 DURATION=10 ./run.sh
#
# Writes raw/<shards>s-<flush>-<kind>-pass<N>.json (harness reports, with the broker's CPU from
# /proc via --broker-pid), raw/*.pending.json, and summary.md (summarize.py).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rmq="${RMQ:-target/release/rmq}"
bench="${BENCH:-target/release/rmq-bench}"
passes="${PASSES:-3}"
duration="${DURATION:-10}"
out="${OUT:-$here/raw}"
work="${WORK:-target/perf-transactions}"
mkdir -p "$out" "$work"

run_one() {
  local shards="$1" flush="$2" kind="$3" pass="$4"
  local tag="${shards}s-$flush-$kind-pass$pass" dir="$work/store"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'brokerName=broker-a\nmappedFileSizeCommitLog=268435456\nflushDiskType=%s\n' "$flush" >"$work/broker.conf"
  "$rmq" standalone --namesrv-port 0 --broker-port 0 --store-dir "$dir" \
    --shards "$shards" -c "$work/broker.conf" >"$work/stdout" 2>"$out/$tag.broker.log" &
  local pid=$! addr="" broker=""
  for _ in $(seq 1 300); do
    addr="$(sed -n 's/^READY namesrv //p' "$work/stdout" | head -1)"
    broker="$(sed -n 's/^READY broker //p' "$work/stdout" | head -1)"
    [[ -n "$broker" && -n "$addr" ]] && break
    sleep 0.1
  done
  [[ -n "$addr" ]] || { echo "broker did not start: $tag" >&2; kill -TERM "$pid"; exit 1; }
  sleep 1
  local extra=()
  [[ "$kind" == tx ]] && extra=(--transactional)
  "$bench" --mode produce --namesrv "$addr" --send-mode sync --producers 16 --connections 8 \
    --size 1024 "${extra[@]}" --duration "$duration" --threads 1 --first-core 0 \
    --topic "Bench$kind" --producer-group "bench-$kind" \
    --broker-pid "$pid" --quiet --label "$tag" --report "$out/$tag.json" >/dev/null
  if [[ "$kind" == tx ]]; then
    "$rmq" admin trans-pending -b "${broker%% *}" --json >"$out/$tag.pending.json"
  fi
  kill -TERM "$pid"
  wait "$pid" || echo "broker exit status $? ($tag)" >&2
  rm -rf "$dir"
  rm -f "$out/$tag".*.svg
}

configs=(
  "1 ASYNC_FLUSH"
  "1 SYNC_FLUSH"
  "2 ASYNC_FLUSH"
  "2 SYNC_FLUSH"
)
for pass in $(seq 1 "$passes"); do
  for config in "${configs[@]}"; do
    if (( pass % 2 == 1 )); then order=(plain tx); else order=(tx plain); fi
    for kind in "${order[@]}"; do
      # shellcheck disable=SC2086
      run_one $config "$kind" "$pass"
      echo "done: $config $kind pass $pass"
    done
  done
done
python3 "$here/summarize.py" "$out" >"$here/summary.md"
cat "$here/summary.md"
