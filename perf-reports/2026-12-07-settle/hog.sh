#!/bin/bash
# usage: hog.sh OUT PASSES ; A = no hog, B = SCHED_IDLE spinner on core 1
cd /work/main
for p in $(seq 1 $2); do
  if (( p % 2 )); then order="A B"; dir=forward; else order="B A"; dir=reverse; fi
  for x in $order; do
    hog=""
    if [[ $x == B ]]; then chrt -i 0 taskset -c 1 python3 -c 'while True: pass' & hog=$!; fi
    OUT=$1/$x DIAG=pair1k DURATION=12 GATE_BUSY=2 RMQ_BIN=/work/new-final/rmq BENCH_BIN=/work/new-final/rmq-bench perf-reports/2026-12-06-replication/run.sh pass $p $dir
    [[ -n $hog ]] && kill $hog
  done
done
echo ALLDONE
