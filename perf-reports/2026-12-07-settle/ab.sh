#!/usr/bin/env bash
# Two builds' runs of ../2026-12-06-replication/run.sh, interleaved (A B, B A, A B, ...), 12 s
# each unless DURATION says otherwise. Usage (repo root):
#   A_BIN=<A rmq> B_BIN=<B rmq> BENCH_BIN=<rmq-bench> perf-reports/2026-12-07-settle/ab.sh OUT DIAG PASSES
# (DIAG: pair = ASYNC_MASTER and SYNC_MASTER at 128 B and 1 KiB; pair1k = 1 KiB only.)
# Writes OUT/A and OUT/B; medians.py OUT summarizes.
set -euo pipefail
run="$(cd "$(dirname "$0")" && pwd)/../2026-12-06-replication/run.sh"
for p in $(seq 1 "$3"); do
  if (( p % 2 )); then order="A B"; dir=forward; else order="B A"; dir=reverse; fi
  for x in $order; do
    if [[ $x == A ]]; then bin=$A_BIN; else bin=$B_BIN; fi
    OUT="$1/$x" DIAG="$2" DURATION="${DURATION:-12}" RMQ_BIN="$bin" BENCH_BIN="${BENCH_BIN:?}" \
      "$run" pass "$p" "$dir"
  done
done
