#!/usr/bin/env bash
# Broker RSS against pending timers (issue 16: "memory flat with 10^7 pending timers").
# One release broker per variant (fresh store), rmq-bench async producers (4 connections x 64
# in flight, 128 B bodies) on core 0, the broker on core 1 (--shards 1) or on both (2 shards).
# sample.py records the broker's VmRSS, smaps_rollup, CPU, stored-message count, timer
# pending / delivered / not-yet-enqueued and store disk use once a second.
#
#   RMQ=target/release/rmq BENCH=target/release/rmq-bench COUNT=10000000 SHARDS=1 \
#     VARIANTS="plain timer-long timer-deliver" ./run.sh
#
# Variants:
#   plain          COUNT ordinary messages (what the normal store costs: tail, queues, index)
#   timer-long     COUNT timers due 1 to 2 h after their send (none fires during the run)
#   timer-deliver  COUNT timers due DELIVER_FROM_S..DELIVER_TO_S after the run's start (after
#                  the sends); waits until every one is delivered. With CONSUME=1 a consumer
#                  (rmq-bench consume) reads the delivered messages meanwhile; its end-to-end
#                  latency is measured from each TIMER_DELIVER_MS (lateness). Leave it off for
#                  large counts: every long-polled pull leaks ~4 KiB in the broker (README).
# Writes raw/<variant>-shards<N>.{csv,json,broker.log} (+ .consume.json); summarize.py
# turns raw/ into summary.md. The store is deleted after each variant.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rmq="${RMQ:-target/release/rmq}"
bench="${BENCH:-target/release/rmq-bench}"
count="${COUNT:-10000000}"
shards="${SHARDS:-1}"
size="${SIZE:-128}"
variants="${VARIANTS:-plain timer-long timer-deliver}"
deliver_from_s="${DELIVER_FROM_S:-240}"
deliver_to_s="${DELIVER_TO_S:-420}"
settle_s="${SETTLE_S:-15}"
consume="${CONSUME:-0}"
out="${OUT:-$here/raw}"
work="${WORK:-target/perf-timer-rss}"
mkdir -p "$out" "$work"
if [[ "$shards" == 1 ]]; then broker_cpus=1; else broker_cpus=0,1; fi

# Column of a sample.py CSV row by name.
col() { awk -F, -v name="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==name) c=i; next} END{print $c}' "$1"; }

run_variant() {
  local variant="$1" tag="$1-shards$shards" dir="$work/store"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'brokerName=broker-a\nmappedFileSizeCommitLog=1073741824\nflushDiskType=ASYNC_FLUSH\n' \
    >"$work/broker.conf"
  taskset -c "$broker_cpus" "$rmq" standalone --namesrv-port 0 --broker-port 0 \
    --store-dir "$dir" --shards "$shards" -c "$work/broker.conf" \
    >"$work/stdout" 2>"$out/$tag.broker.log" &
  local pid=$! namesrv="" broker=""
  for _ in $(seq 1 300); do
    namesrv="$(sed -n 's/^READY namesrv //p' "$work/stdout" | head -1)"
    broker="$(sed -n 's/^READY broker //p' "$work/stdout" | head -1)"
    [[ -n "$namesrv" && -n "$broker" ]] && break
    sleep 0.1
  done
  [[ -n "$broker" ]] || { echo "broker did not start: $tag" >&2; kill -TERM "$pid"; exit 1; }
  rm -f "$work/stop"
  taskset -c 0 python3 "$here/sample.py" "$pid" "$rmq" "$broker" "$dir" "$out/$tag.csv" \
    "$work/stop" &
  local sampler=$!
  sleep 5
  local extra=()
  case "$variant" in
    plain) ;;
    timer-long) extra=(--timer-delay-ms 3600000..7200000) ;;
    timer-deliver)
      extra=(--timer-delay-ms "$((deliver_from_s * 1000))..$((deliver_to_s * 1000))"
        --timer-anchor start) ;;
    *) echo "unknown variant $variant" >&2; exit 2 ;;
  esac
  local started=$SECONDS
  taskset -c 0 "$bench" --mode produce --namesrv "$namesrv" --send-mode async --producers 4 \
    --connections 4 --inflight 64 --size "$size" --count "$count" --threads 1 --first-core 0 \
    "${extra[@]}" --broker-pid "$pid" --quiet --label "$tag" --report "$out/$tag.json" \
    --timeout-ms 30000 >/dev/null
  echo "$tag: $count sent in $((SECONDS - started)) s"
  # Timers are acknowledged once stored; the wheel takes them in behind the sends.
  if [[ "$variant" != plain ]]; then
    while sleep 1; do
      [[ "$(col "$out/$tag.csv" timer_unenqueued)" == 0 ]] && break
    done
    echo "$tag: all enqueued into the wheel at $((SECONDS - started)) s"
  fi
  if [[ "$variant" == timer-deliver && "$consume" == 1 ]]; then
    taskset -c 0 "$bench" --mode consume --namesrv "$namesrv" --consumers 4 \
      --consume-from first --pull-batch 32 --count "$count" --threads 1 --first-core 0 \
      --duration "$((deliver_to_s + 300))" --quiet --label "$tag-consume" \
      --report "$out/$tag.consume.json" >/dev/null
    echo "$tag: consumer done at $((SECONDS - started)) s"
  elif [[ "$variant" == timer-deliver ]]; then
    while sleep 2; do
      [[ "$(col "$out/$tag.csv" timer_delivered)" -ge "$count" ]] && break
    done
    echo "$tag: all delivered at $((SECONDS - started)) s"
  fi
  sleep "$settle_s"
  touch "$work/stop"
  wait "$sampler" || true
  kill -TERM "$pid"
  wait "$pid" || echo "broker exit status $? ($tag)" >&2
  du -s -B1 "$dir" | awk '{print $1}' >"$out/$tag.store-bytes"
  rm -rf "$dir"
  rm -f "$out/$tag".*svg
}

for variant in $variants; do
  run_variant "$variant"
done
python3 "$here/summarize.py" "$out" >"$here/summary.md"
cat "$here/summary.md"
