#!/bin/bash
# usage: ab.sh OUTBASE DIAG PASSES  (A_BIN B_BIN env)
cd /work/main
for p in $(seq 1 $3); do
  if (( p % 2 )); then order="A B"; dir=forward; else order="B A"; dir=reverse; fi
  for x in $order; do
    if [[ $x == A ]]; then bin=$A_BIN; else bin=$B_BIN; fi
    OUT=$1/$x DIAG=$2 DURATION=${DURATION:-12} RMQ_BIN=$bin BENCH_BIN=${BENCH_BIN:-/work/new-final/rmq-bench} perf-reports/2026-12-06-replication/run.sh pass $p $dir
  done
done
echo ALLDONE
