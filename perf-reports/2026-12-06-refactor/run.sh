#!/usr/bin/env bash
# The broker matrix (perf-reports/2026-11-22-broker/run.sh, unchanged but for its binary
# overrides), interleaved between two builds on the same machine in one session:
#   A = BASE_RMQ (the commit before the refactor), B = target/release/rmq (the refactor).
# Passes: 1 A then B (forward order), 2 B then A (reverse order), 3 A then B (forward), so
# each configuration of A and B runs 3 times, spread over the session.
# The same harness binary (target/release/rmq-bench) drives both.
# Usage (repo root): BASE_RMQ=/path/to/base/rmq DURATION=10 perf-reports/2026-12-06-refactor/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
matrix=perf-reports/2026-11-22-broker/run.sh
base="${BASE_RMQ:?set BASE_RMQ to the baseline rmq binary}"
run() { # NAME BIN PASS ORDER
  RMQ_BIN="$2" OUT="$here/raw-$1" "$matrix" "$3" "$4"
}
run A "$base" 1 forward
run B target/release/rmq 1 forward
run B target/release/rmq 2 reverse
run A "$base" 2 reverse
run A "$base" 3 forward
run B target/release/rmq 3 forward
python3 "$here/compare.py" "$here/raw-A" "$here/raw-B" > "$here/compare.md"
