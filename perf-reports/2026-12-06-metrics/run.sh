#!/usr/bin/env bash
# Issue 17 metrics, hot-path cost: the same broker binary with the Prometheus exporter off (A)
# and on (B, scraped every SCRAPE_EVERY seconds during the run, as a Prometheus would), one
# broker per run pinned to core 1, rmq-bench on core 0 (async producers, 4 connections x 64 in
# flight). Passes alternate the order (A B, B A, ...), so drift on this shared VM hits both.
#
#   RMQ=target/release/rmq BENCH=target/release/rmq-bench PASSES=3 DURATION=10 ./run.sh
#
# Writes raw/<config>-<A|B>-pass<N>.json (harness report with the broker's CPU from /proc via
# --broker-pid), raw/*.scrapes (bytes of each scrape in B runs) and summary.md (the hot-path
# report's summarize.py: medians and B/A ratios).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rmq="${RMQ:-target/release/rmq}"
bench="${BENCH:-target/release/rmq-bench}"
passes="${PASSES:-3}"
duration="${DURATION:-10}"
scrape_every="${SCRAPE_EVERY:-1}"
out="${OUT:-$here/raw}"
work="${WORK:-target/perf-metrics}"
mkdir -p "$out" "$work"

run_one() {
  local build="$1" name="$2" shards="$3" size="$4" batch="$5" pass="$6"
  local tag="$name-$build-pass$pass" dir="$work/store"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'brokerName=broker-a\nmappedFileSizeCommitLog=268435456\n' >"$work/broker.conf"
  if [[ "$build" == B ]]; then
    printf 'metricsExporterType=PROM\nmetricsPromExporterHost=127.0.0.1\nmetricsPromExporterPort=0\n' >>"$work/broker.conf"
  fi
  local cores=1
  [[ "$shards" -gt 1 ]] && cores=0,1
  taskset -c "$cores" "$rmq" standalone --namesrv-port 0 --broker-port 0 --store-dir "$dir" \
    --shards "$shards" -c "$work/broker.conf" >"$work/stdout" 2>"$out/$tag.broker.log" &
  local pid=$! addr=""
  for _ in $(seq 1 300); do
    addr="$(sed -n 's/^READY namesrv //p' "$work/stdout" | head -1)"
    grep -q '^READY broker' "$work/stdout" && [[ -n "$addr" ]] && break
    sleep 0.1
  done
  [[ -n "$addr" ]] || { echo "broker did not start: $tag" >&2; kill -TERM "$pid"; exit 1; }
  local metrics scraper=""
  metrics="$(sed -n 's/^READY metrics //p' "$work/stdout" | head -1)"
  sleep 1
  if [[ -n "$metrics" ]]; then
    ( while sleep "$scrape_every"; do
        curl -s -o /dev/null -w '%{size_download} %{time_total}\n' "http://$metrics/metrics" || true
      done ) >"$out/$tag.scrapes" &
    scraper=$!
  fi
  local extra=()
  [[ "$batch" -gt 1 ]] && extra=(--batch "$batch")
  "$bench" --mode produce --namesrv "$addr" --send-mode async --producers 4 --connections 4 \
    --inflight 64 --size "$size" "${extra[@]}" --duration "$duration" --threads 1 --first-core 0 \
    --broker-pid "$pid" --quiet --label "$tag" --report "$out/$tag.json" >/dev/null
  [[ -n "$scraper" ]] && kill "$scraper" 2>/dev/null || true
  kill -TERM "$pid"
  wait "$pid" || echo "broker exit status $? ($tag)" >&2
  rm -rf "$dir"
  rm -f "$out/$tag".*.svg
}

configs=(
  "1shard-async-128 1 128 1"
  "1shard-async-batch32 1 128 32"
  "2shards-async-128 2 128 1"
)
for pass in $(seq 1 "$passes"); do
  for config in "${configs[@]}"; do
    if (( pass % 2 == 1 )); then order=(A B); else order=(B A); fi
    for build in "${order[@]}"; do
      # shellcheck disable=SC2086
      run_one "$build" $config "$pass"
      echo "done: $build $config pass $pass"
    done
  done
done
python3 "$here/../2026-12-06-hot-path/summarize.py" "$out" >"$here/summary.md"
cat "$here/summary.md"
