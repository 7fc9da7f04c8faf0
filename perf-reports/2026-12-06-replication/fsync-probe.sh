#!/usr/bin/env bash
# Diagnostic: fdatasyncs per second and their duration on the master and the slave while
# rmq-bench runs (1 KiB, the run.sh producer settings), from the ext4 tracepoints
# ext4_sync_file_enter/exit recorded system-wide for 5 s in the middle of a 15 s run
# (io_uring runs the fdatasyncs on io-wq worker threads of each broker, hence -a and the
# split by process afterwards). Pinning as run.sh.
# Usage (repo root, root for perf): perf-reports/2026-12-06-replication/fsync-probe.sh \
#   NAME MASTER_ROLE MASTER_FLUSH SLAVE_FLUSH   (e.g. sync-slaveflush SYNC_MASTER ASYNC_FLUSH SYNC_FLUSH)
# Writes raw-diag-flush/NAME.fsync.txt.
set -euo pipefail
name="$1" role="$2" mflush="$3" sflush="$4"
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/raw-diag-flush"
rmq=target/release/rmq bench=target/release/rmq-bench
dir=target/perf-ha/probe-$name
rm -rf "$dir"; mkdir -p "$dir" "$out"
export RUST_LOG=info
read -r p1 p2 p3 p4 <<<"$(python3 -c 'import socket
s=[socket.socket() for _ in range(4)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')"
conf() { # FILE ROLE ID FLUSH PORT HAPORT STORE
  printf 'brokerClusterName=DefaultCluster\nbrokerName=broker-a\nbrokerId=%s\nbrokerRole=%s\nflushDiskType=%s\nbrokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\nlistenPort=%s\nhaListenPort=%s\nstorePathRootDir=%s\nmappedFileSizeCommitLog=268435456\n' \
    "$3" "$2" "$4" "$5" "$6" "$7" >"$1"
}
ready() { until grep -q '^READY' "$1"; do sleep 0.1; done; sed -n 's/^READY [a-z]* //p' "$1"; }
touch "$dir/ns.out" "$dir/m.out" "$dir/s.out"
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done' EXIT
taskset -c 0 "$rmq" namesrv --port 0 --bind 127.0.0.1 --kv-config "$dir/kv.json" >"$dir/ns.out" 2>/dev/null &
ns_pid=$!; pids+=("$ns_pid"); ns="$(ready "$dir/ns.out")"
conf "$dir/m.conf" "$role" 0 "$mflush" "$p1" "$p2" "$dir/master"
conf "$dir/s.conf" SLAVE 1 "$sflush" "$p3" "$p4" "$dir/slave"
taskset -c 1 "$rmq" broker -c "$dir/m.conf" -n "$ns" --shards 1 >"$dir/m.out" 2>"$dir/m.log" &
m_pid=$!; pids+=("$m_pid"); ready "$dir/m.out" >/dev/null
taskset -c 0 "$rmq" broker -c "$dir/s.conf" -n "$ns" --shards 1 >"$dir/s.out" 2>"$dir/s.log" &
s_pid=$!; pids+=("$s_pid"); ready "$dir/s.out" >/dev/null
until grep -q 'HA slave connected' "$dir/m.log"; do sleep 0.1; done
sleep 1
"$bench" --mode produce --namesrv "$ns" --send-mode async --producers 4 --connections 4 --inflight 64 \
  --size 1024 --duration 15 --threads 1 --first-core 0 --quiet --label "$name-probe" \
  --report "$dir/bench.json" >/dev/null 2>&1 &
b_pid=$!
sleep 5
perf record -q -a -e ext4:ext4_sync_file_enter -e ext4:ext4_sync_file_exit -o "$dir/perf.data" -- sleep 5 2>/dev/null
wait "$b_pid"
perf script -i "$dir/perf.data" -F pid,time,event 2>/dev/null | python3 -c '
import sys, collections
m, s = int(sys.argv[1]), int(sys.argv[2])
enter, durs = {}, collections.defaultdict(list)
for line in sys.stdin:
    f = line.split()
    if len(f) < 3: continue
    pid, t, ev = int(f[0]), float(f[1].rstrip(":")), f[2]
    who = "master" if pid == m else "slave" if pid == s else None
    if who is None: continue
    key = (who, line.split()[0])
    if "enter" in ev: enter[who] = t
    elif who in enter: durs[who].append(t - enter.pop(who))
for who in ("master", "slave"):
    d = sorted(durs[who])
    if d:
        print(f"{who}: {len(d)/5:.0f} fdatasync/s, median {d[len(d)//2]*1e6:.0f} us, p90 {d[int(len(d)*0.9)]*1e6:.0f} us, busy {sum(d)/5*100:.0f}% of the time")
    else:
        print(f"{who}: no fdatasync")
' "$m_pid" "$s_pid" | tee "$out/$name.fsync.txt"
python3 -c 'import json,sys
r=json.load(open(sys.argv[1]))["results"]
print("bench: %.0f msgs/s, p50 %.0f us, events %s, errors %s" % (r["acked"]["msgs_per_s"], r["send_latency"]["p50_us"], r["events"], r["errors"]))' "$dir/bench.json" | tee -a "$out/$name.fsync.txt"
kill -TERM "$s_pid" "$m_pid"; wait "$s_pid" "$m_pid" || true
kill -TERM "$ns_pid"; wait "$ns_pid" || true
pids=()
rm -rf "$dir"
