#!/usr/bin/env bash
# SYNC_MASTER + SYNC_FLUSH vs ASYNC_MASTER + SYNC_FLUSH (SYNC_FLUSH on both brokers in both), at
# 128 B and 1 KiB, A (baseline binary) and B (this tree) interleaved: pass 1 A B, pass 2 B A,
# pass 3 A B; each pass is ../2026-12-06-replication/run.sh with DIAG=fair.
# Usage (repo root): BASE_RMQ=/path/to/baseline/rmq DURATION=10 perf-reports/2026-12-06-catchup/ab-fair.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
base="${BASE_RMQ:?set BASE_RMQ to the baseline rmq binary}"
candidate="${CANDIDATE_RMQ:-target/release/rmq}"
run() { # SIDE BIN PASS ORDER
  RMQ_BIN="$2" OUT="$here/raw-fair-$1" DIAG=fair "$here/../2026-12-06-replication/run.sh" pass "$3" "$4"
}
run A "$base" 1 forward
run B "$candidate" 1 forward
run B "$candidate" 2 reverse
run A "$base" 2 reverse
run A "$base" 3 forward
run B "$candidate" 3 forward
