#!/usr/bin/env bash
# Filtered pull throughput: one `rmq standalone` (1 shard, enablePropertyFilter=true) is filled
# with COUNT messages of 128 B with tags t00..t99 round-robin, then one consumer group per run
# reads the whole backlog from the first offset with a filter matching 100 %, 50 %, 1 % or
# none (TAG `*`), twice each, interleaved. Usage (repo root, release binaries built):
#   perf-reports/2026-12-06-sql92/run.sh [COUNT]
set -euo pipefail
count="${1:-200000}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${CARGO_TARGET_DIR:-$root/target}/release"
out="$root/perf-reports/2026-12-06-sql92/raw"
work="$(mktemp -d)"
mkdir -p "$out"
ns_port=$((20000 + RANDOM % 20000)); br_port=$((ns_port + 7))
printf 'enablePropertyFilter=true\n' >"$work/broker.conf"
"$bin/rmq" standalone --namesrv-port "$ns_port" --broker-port "$br_port" --store-dir "$work/store" \
    -c "$work/broker.conf" --shards 1 >"$work/rmq.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q READY "$work/rmq.log" && break; sleep 0.1; done
tags="$(printf 't%02d,' $(seq 0 99))"; tags="${tags%,}"
half="$(printf "'t%02d'," $(seq 0 49))"; half="${half%,}"
sleep 3  # the broker's first registration with the NameServer
"$bin/rmq" admin update-topic -n "127.0.0.1:$ns_port" -t SqlBench -r 4 -w 4 >/dev/null
sleep 2
common=(--namesrv "127.0.0.1:$ns_port" --topic SqlBench --queues 4 --quiet)
"$bin/rmq-bench" "${common[@]}" --mode backlog --count "$count" --size 128 --batch 32 \
    --send-mode async --producers 2 --connections 2 --inflight 8 --tags "$tags" >"$out/fill.txt"
run() { # name expected-matches bench-args...
    local name="$1" want="$2"; shift 2
    local started ended
    started=$(date +%s.%N)
    "$bin/rmq-bench" "${common[@]}" --mode consume --consume-from first --count "$want" \
        --group-prefix "g-$name-$RANDOM" --pull-batch 32 --long-poll-ms 1000 --duration 120 "$@" \
        >"$out/$name.txt" 2>&1
    ended=$(date +%s.%N)
    echo "$name $want $(echo "$ended - $started" | bc)" | tee -a "$out/summary.txt"
}
: >"$out/summary.txt"
for rep in 1 2 3; do
    run "none-$rep" "$count" --subscription '*'
    run "sql100-$rep" "$count" --sql92 --subscription 'TAGS IS NOT NULL'
    run "sql50-$rep" "$((count / 2))" --sql92 --subscription "TAGS IN ($half)"
    run "sql1-$rep" "$((count / 100))" --sql92 --subscription "TAGS = 't00'"
done
