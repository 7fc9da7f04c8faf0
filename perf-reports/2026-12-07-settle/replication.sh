#!/usr/bin/env bash
# Issue 13's replication matrix for B (every configuration, both sizes), with A's
# ASYNC_MASTER/SYNC_MASTER pair run in the same passes (A B, B A, A B, ...), through
# ../2026-12-06-replication/run.sh. Usage (repo root):
#   A=/path/to/A-binaries B=/path/to/B-binaries PASSES=5 perf-reports/2026-12-07-settle/replication.sh
# (each directory holds rmq and rmq-bench; B's rmq-bench drives both builds).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
run="$here/../2026-12-06-replication/run.sh"
for pass in $(seq 1 "${PASSES:-5}"); do
  order=forward; (( pass % 2 )) || order=reverse
  a() { DIAG=pair OUT="$here/raw-replication-A" RMQ_BIN="$A/rmq" BENCH_BIN="$B/rmq-bench" "$run" pass "$pass" "$order"; }
  b() { OUT="$here/raw-replication" RMQ_BIN="$B/rmq" BENCH_BIN="$B/rmq-bench" "$run" pass "$pass" "$order"; }
  if [[ "$order" == reverse ]]; then b; a; else a; b; fi
done
python3 "$here/../2026-12-06-replication/summarize.py" "$here/raw-replication" >"$here/summary-replication.md"
python3 "$here/../2026-12-06-replication/summarize.py" "$here/raw-replication-A" >"$here/summary-replication-A.md"
