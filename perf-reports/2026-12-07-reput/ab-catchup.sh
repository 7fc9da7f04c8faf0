#!/usr/bin/env bash
# A/B of catch-up only (a copy of ../2026-12-06-catchup/ab-catchup.sh writing into this report's raw/):
# one ../2026-12-06-replication/catchup.py session (fresh master filled by that binary with
# COUNT x 1 KiB, then REPEATS empty-slave catch-ups, each with dd O_DIRECT before and after on
# the same disk), interleaved A B B A A B. Same harness binary for both.
# Usage (repo root): BASE_RMQ=/path/to/baseline/rmq COUNT=1000000 REPEATS=2 \
#   perf-reports/2026-12-07-reput/ab-catchup.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
base="${BASE_RMQ:?set BASE_RMQ to the baseline rmq binary}"
candidate="${CANDIDATE_RMQ:-target/release/rmq}"
bench="${BENCH_BIN:-target/release/rmq-bench}"
n=0
for side in A B B A A B; do
  n=$((n + 1))
  bin="$base"; [[ "$side" == B ]] && bin="$candidate"
  RMQ_BIN="$bin" BENCH_BIN="$bench" COUNT="${COUNT:-1000000}" REPEATS="${REPEATS:-2}" \
    TAG="-$side-run$n" GATE_MAX="${GATE_MAX:-120}" \
    python3 "$here/../2026-12-06-replication/catchup.py" "$here/raw"
done
