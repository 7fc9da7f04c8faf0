#!/usr/bin/env bash
# A/B of the replication follow-up (after this report's first measurements): A = the commit
# the report measured (df2a038), B = the follow-up (group commit across frames on a SYNC_FLUSH
# slave, frames carrying everything pending up to 4 MiB, read-ahead on the master). Same
# harness binary, same machine, interleaved: pass 1 A B, pass 2 B A, pass 3 A B, each pass the
# DIAG=ab configurations of run.sh (async and sync at 1 KiB, sync-syncflush at 128 B and 1 KiB);
# then one catch-up each (COUNT messages of 1 KiB, one repeat).
# Usage (repo root): BASE_RMQ=/path/to/df2a038/rmq DURATION=10 COUNT=1000000 \
#   perf-reports/2026-12-06-replication/ab.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
base="${BASE_RMQ:?set BASE_RMQ to the baseline rmq binary}"
run() { # NAME BIN PASS ORDER
  RMQ_BIN="$2" OUT="$here/raw-ab-$1" DIAG=ab "$here/run.sh" pass "$3" "$4"
}
run A "$base" 1 forward
run B target/release/rmq 1 forward
run B target/release/rmq 2 reverse
run A "$base" 2 reverse
run A "$base" 3 forward
run B target/release/rmq 3 forward
for side in A B; do
  bin="$base"; [[ "$side" == B ]] && bin=target/release/rmq
  RMQ_BIN="$bin" BENCH_BIN=target/release/rmq-bench COUNT="${COUNT:-1000000}" REPEATS=1 \
    python3 "$here/catchup.py" "$here/raw-ab-$side"
done
