#!/usr/bin/env bash
# A/B of timer delivery (batched delivery, branch tdeliver): the timer-deliver variant of
# ../run.sh, interleaved A B B A A B, each run its own raw dir; summarize.py per run.
#   A_RMQ=/tmp/tdeliver-base/target/release/rmq B_RMQ=target/release/rmq \
#   BENCH=/tmp/tdeliver-base/target/release/rmq-bench ORDER="A B B A A B" [RAW=raw] ./ab.sh
# (COUNT, DELIVER_FROM_S, DELIVER_TO_S, CONSUME, SETTLE_S as ../run.sh; defaults 3x10^5, 30..40 s, 1, 3)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
order="${ORDER:-A B B A A B}"
n=0
for side in $order; do
  n=$((n + 1))
  if [[ "$side" == A ]]; then rmq="$A_RMQ"; else rmq="$B_RMQ"; fi
  out="$here/${RAW:-raw}/$n-$side"
  mkdir -p "$out"
  echo "== run $n ($side) $(date -u +%T) load: $(cut -d' ' -f1-3 /proc/loadavg)"
  uptime >"$out/loadavg-before"
  RMQ="$rmq" BENCH="$BENCH" OUT="$out" WORK="target/perf-deliver-batch" \
    COUNT="${COUNT:-300000}" VARIANTS=timer-deliver DELIVER_FROM_S="${DELIVER_FROM_S:-30}" \
    DELIVER_TO_S="${DELIVER_TO_S:-40}" CONSUME="${CONSUME:-1}" SETTLE_S="${SETTLE_S:-3}" \
    "$here/../run.sh" | grep -v '^|' || true
  uptime >"$out/loadavg-after"
  python3 "$here/../summarize.py" "$out" >"$out/summary.md"
done
git -C "$here" checkout -- ../summary.md 2>/dev/null || true
