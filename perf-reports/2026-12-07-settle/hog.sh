#!/usr/bin/env bash
# The pair at 1 KiB with (B) and without (A) a SCHED_IDLE spinner on the master's core 1, so
# that core never halts; same build for both. Usage (repo root):
#   RMQ_BIN=<rmq> BENCH_BIN=<rmq-bench> perf-reports/2026-12-07-settle/hog.sh OUT PASSES
set -euo pipefail
run="$(cd "$(dirname "$0")" && pwd)/../2026-12-06-replication/run.sh"
for p in $(seq 1 "$2"); do
  if (( p % 2 )); then order="A B"; dir=forward; else order="B A"; dir=reverse; fi
  for x in $order; do
    hog=""
    if [[ $x == B ]]; then chrt -i 0 taskset -c 1 python3 -c 'while True: pass' & hog=$!; fi
    # GATE_BUSY=2: the spinner itself must not hold the run back.
    OUT="$1/$x" DIAG=pair1k DURATION=12 GATE_BUSY=2 "$run" pass "$p" "$dir"
    [[ -n $hog ]] && kill "$hog"
  done
done
