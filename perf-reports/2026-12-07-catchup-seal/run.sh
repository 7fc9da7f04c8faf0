#!/usr/bin/env bash
# Catch-up A/B (issue 13): interleaved sessions of ../2026-12-06-replication/catchup.py for two
# builds, three setups each (1 shard with the slave's store on a second file system, 2 shards
# likewise, 1 shard on the one shared disk), 2 passes, 2 catch-ups per session.
#   A=<dir with rmq, rmq-bench> B=<dir> SLAVE_DISK=/mnt/slave-disk ./run.sh
# OUT=<raw dir> and SUMMARY=<file> override where the reports and the summary go.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
OUT="${OUT:-$here/raw}"
S=perf-reports/2026-12-06-replication/catchup.py
slave_disk="${SLAVE_DISK:?mount point of the second file system}"
for pass in 1 2; do
  for v in A B; do
    d="${!v}"
    rm -rf "$slave_disk"/*
    RMQ_BIN=$d/rmq BENCH_BIN=$d/rmq-bench COUNT=1000000 REPEATS=2 GATE_MAX=30 TAG=-s1-ram-$v-p$pass \
      SLAVE_STORE_DIR="$slave_disk" python3 $S "$OUT"
    rm -rf "$slave_disk"/*
    RMQ_BIN=$d/rmq BENCH_BIN=$d/rmq-bench COUNT=1000000 REPEATS=2 GATE_MAX=30 SHARDS=2 \
      TAG=-s2-ram-$v-p$pass SLAVE_STORE_DIR="$slave_disk" python3 $S "$OUT"
    RMQ_BIN=$d/rmq BENCH_BIN=$d/rmq-bench COUNT=1000000 REPEATS=2 GATE_MAX=30 TAG=-s1-disk-$v-p$pass \
      python3 $S "$OUT"
  done
done
python3 "$here/summarize.py" "$OUT" > "${SUMMARY:-$here/summary.md}"
