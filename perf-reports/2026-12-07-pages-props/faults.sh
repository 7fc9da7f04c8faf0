#!/usr/bin/env bash
# Page faults, context switches and CPU of a catching-up slave (issue 13), builds interleaved:
# one ../2026-12-06-replication/catchup.py session per run (1 shard, COUNT=1,000,000 x 1 KiB,
# one catch-up), with `perf stat -e page-faults,context-switches,cpu-clock` attached to the
# slave from its start to its exit (so its start and shutdown are included).
#   A=<dir with rmq, rmq-bench> B=<dir> SLAVE_DISK=/mnt/slave-disk RUNS=3 ./faults.sh
# Writes OUT/faults-<build>-<n>.txt (perf stat) and the catch-up logs; OUT defaults to raw/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
out="${OUT:-$here/raw}"
slave_disk="${SLAVE_DISK:?mount point of the second file system}"
mkdir -p "$out"
for n in $(seq 1 "${RUNS:-3}"); do
  for v in B A; do
    d="${!v}"
    rm -rf "${slave_disk:?}"/*
    RMQ_BIN=$d/rmq BENCH_BIN=$d/rmq-bench COUNT=1000000 REPEATS=1 GATE_MAX=30 TAG=-faults-$v-$n \
      SLAVE_STORE_DIR="$slave_disk" python3 perf-reports/2026-12-06-replication/catchup.py "$out" \
      2>"$out/faults-$v-$n.log" &
    session=$!
    pid=""
    for _ in $(seq 1 3000); do
      pid="$(pgrep -f "rmq broker -c .*slave.conf" | head -1 || true)"
      [[ -n "$pid" ]] && break
      sleep 0.05
    done
    perf stat -e page-faults,context-switches,cpu-clock -p "$pid" -o "$out/faults-$v-$n.txt" &
    stat=$!
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    wait "$stat" || true
    wait "$session"
    grep "slave equal" "$out/faults-$v-$n.log" || true
  done
done
