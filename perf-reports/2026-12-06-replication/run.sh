#!/usr/bin/env bash
# Replication benchmark (issue 13): a master alone vs. a master with a slave, async producers
# (4 connections x 64 in flight) against the master, for body 128 B and 1 KiB, 1 shard per
# broker. Configurations (same brokerName/brokerClusterName; master brokerId=0, slave 1):
#   none            ASYNC_MASTER, no slave,            ASYNC_FLUSH
#   async           ASYNC_MASTER + SLAVE,              ASYNC_FLUSH on both
#   sync            SYNC_MASTER  + SLAVE,              ASYNC_FLUSH on both
#   sync-syncflush  SYNC_MASTER  + SLAVE,              SYNC_FLUSH on both
# Each run: a fresh NameServer (`rmq namesrv`), fresh stores under target/perf-ha/ (the real
# disk), the master (and the slave) started from broker.conf files with explicit listenPort and
# haListenPort; with a slave the run waits until the master logged "HA slave connected"
# (RUST_LOG=info on every broker, in every configuration) and, for SYNC_MASTER, until a single
# sync send is answered SUCCESS. Then rmq-bench for DURATION s; broker CPU (master and slave
# separately) from /proc before/after the bench (../2026-11-22-broker/procstat.py). After the
# bench, the master's and the slave's commitLogMaxOffset are polled until equal (or 60 s):
# the replication lag left at the end of the run and how long it took to drain.
# Pinning (2 vCPUs): rmq-bench's one thread on core 0 (`--threads 1 --first-core 0`), the master
# on core 1 (`taskset -c 1`), the slave AND the NameServer on core 0 (`taskset -c 0`, sharing
# the harness's core: the master's core stays its own, as in `none`).
# Usage (repo root):
#   perf-reports/2026-12-06-replication/run.sh              # passes 1-3 + catch-up + passes 4-6
#   perf-reports/2026-12-06-replication/run.sh pass N forward|reverse
#   perf-reports/2026-12-06-replication/run.sh catchup     # see catchup.py
#   OUT=perf-reports/2026-12-06-replication/raw-diag DIAG=batch \
#     perf-reports/2026-12-06-replication/run.sh pass N forward|reverse
#       # diagnostic: sync-syncflush with haTransferBatchSize 32 KiB (default) vs 1 MiB
#   OUT=perf-reports/2026-12-06-replication/raw-diag-flush DIAG=flush \
#     perf-reports/2026-12-06-replication/run.sh pass N forward|reverse
#       # diagnostic (1 KiB): SYNC_FLUSH on the master only, the slave only, both; ASYNC_MASTER
#       # with SYNC_FLUSH, with and without a slave
#   OUT=perf-reports/2026-12-06-replication/raw-diag perf-reports/2026-12-06-replication/run.sh disk
#       # fdatasync latency of the disk (dd oflag=direct,dsync)
#   OUT=DIR DIAG=pair perf-reports/2026-12-06-replication/run.sh pass N forward|reverse
#       # ASYNC_MASTER and SYNC_MASTER only (ASYNC_FLUSH), both sizes: issue 13's ratio
#   OUT=DIR DIAG=roll ... pass N forward|reverse   # none/async/sync at 1 KiB only
#   OUT=DIR DIAG=pair1k ... pass N forward|reverse # the same pair at 1 KiB only
#   PERF_MASTER=1 ...   # also a `perf record -e cpu-clock -g` of the master and the slave over
#                       # each bench (<label>.master.perf.data / .slave.perf.data in OUT)
# Every run also writes <label>.client-segments.json (and, with a slave, .ha-segments.json):
# TCP segments per second out of/into the master's producer (HA) sockets (`ss -ti`, sampled
# from 2 s into the bench to 1 s before its end).
# DURATION=s (default 15); OUT=DIR (default raw/ here); RMQ_BIN / BENCH_BIN; GATE_BUSY=cores
# (0.5) / GATE_MAX=s (180): before each run, wait up to GATE_MAX s while other work uses more
# than GATE_BUSY cores (recorded per run in <label>.background.json).
# Needs: target/release/rmq and target/release/rmq-bench
#   (cargo build --release -p rmq --bin rmq -p rmq-bench --bin rmq-bench).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$here/raw}"
work=target/perf-ha
mkdir -p "$out" "$work"
rmq="${RMQ_BIN:-target/release/rmq}"
bench="${BENCH_BIN:-target/release/rmq-bench}"
duration="${DURATION:-15}"
procstat="$here/../2026-11-22-broker/procstat.py"
export RUST_LOG="${RUST_LOG:-info}"

free_ports() { # N
  python3 -c 'import socket,sys
socks=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

wait_line() { # FILE REGEX TIMEOUT_S -> prints the first match's rest
  local file="$1" re="$2" t="$3" v=""
  for _ in $(seq 1 $((t * 10))); do
    v="$(sed -n "s/^$re//p" "$file" | head -1)"
    [[ -n "$v" ]] && { echo "$v"; return 0; }
    sleep 0.1
  done
  return 1
}

# write_conf FILE ROLE ID FLUSH PORT HAPORT STORE EXTRA
write_conf() {
  cat >"$1" <<EOF
brokerClusterName=DefaultCluster
brokerName=broker-a
brokerId=$3
brokerRole=$2
flushDiskType=$4
brokerIP1=127.0.0.1
brokerIP2=127.0.0.1
listenPort=$5
haListenPort=$6
storePathRootDir=$7
mappedFileSizeCommitLog=268435456
EOF
  [[ "$8" == - ]] || echo "$8" >>"$1"
}

# busy_cores SECONDS: cores' worth of CPU the whole machine used over SECONDS (/proc/stat).
busy_cores() {
  python3 -c 'import sys,time
def snap():
    f=[int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f[:8]), f[3]+f[4]
a=snap(); time.sleep(float(sys.argv[1])); b=snap()
print(round(((b[0]-a[0])-(b[1]-a[1]))/(b[0]-a[0])*2,2))' "$1"
}

# quiet_gate TAG: before a run, wait (up to GATE_MAX s, default 180) until the machine's other
# work uses less than GATE_BUSY cores (default 0.5) over 2 s; records what it saw either way.
quiet_gate() {
  local tag="$1" waited=0 busy
  while :; do
    busy="$(busy_cores 2)"
    if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)' "$busy" "${GATE_BUSY:-0.5}" ||
      (( waited >= ${GATE_MAX:-180} )); then
      break
    fi
    sleep 8; waited=$((waited + 10))
  done
  echo "{\"background_busy_cores\": $busy, \"waited_s\": $waited}" >"$out/$tag.background.json"
  echo "$(date +%T) $tag: background $busy cores, waited ${waited} s" >&2
}

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# run_one NAME ROLE SLAVE(yes|no) FLUSH SIZE EXTRA(key=value for both confs, or -) PASS
run_one() {
  local name="$1" role="$2" with_slave="$3" flush="$4" size="$5" extra="$6" pass="$7"
  # FLUSH is one flushDiskType for both brokers, or MASTER/SLAVE (diagnostics).
  local mflush="${flush%/*}" sflush="${flush#*/}"
  local tag="$name-$size-pass$pass"
  local dir="$work/$tag"
  rm -rf "$dir"; mkdir -p "$dir"
  touch "$dir/ns.out" "$dir/master.out" "$dir/slave.out"
  quiet_gate "$tag"
  local ports; read -r -a ports <<<"$(free_ports 4)"
  # NameServer
  taskset -c 0 "$rmq" namesrv --port 0 --bind 127.0.0.1 --kv-config "$dir/kv.json" \
    >"$dir/ns.out" 2>"$dir/ns.log" &
  local ns_pid=$!; pids=("$ns_pid")
  local ns; ns="$(wait_line "$dir/ns.out" 'READY namesrv ' 10)" || { echo "namesrv did not start ($tag)" >&2; exit 1; }
  # master
  write_conf "$dir/master.conf" "$role" 0 "$mflush" "${ports[0]}" "${ports[1]}" "$dir/master" "$extra"
  taskset -c 1 "$rmq" broker -c "$dir/master.conf" -n "$ns" --shards 1 \
    >"$dir/master.out" 2>"$dir/master.log" &
  local m_pid=$!; pids+=("$m_pid")
  local maddr; maddr="$(wait_line "$dir/master.out" 'READY broker ' 30)" || { echo "master did not start ($tag)" >&2; cat "$dir/master.log" >&2; exit 1; }
  local s_pid="" saddr=""
  if [[ "$with_slave" == yes ]]; then
    write_conf "$dir/slave.conf" SLAVE 1 "$sflush" "${ports[2]}" "${ports[3]}" "$dir/slave" "$extra"
    taskset -c 0 "$rmq" broker -c "$dir/slave.conf" -n "$ns" --shards 1 \
      >"$dir/slave.out" 2>"$dir/slave.log" &
    s_pid=$!; pids+=("$s_pid")
    saddr="$(wait_line "$dir/slave.out" 'READY broker ' 30)" || { echo "slave did not start ($tag)" >&2; cat "$dir/slave.log" >&2; exit 1; }
    local t0=$SECONDS
    until grep -q 'HA slave connected' "$dir/master.log"; do
      (( SECONDS - t0 < 30 )) || { echo "slave never connected ($tag)" >&2; tail -20 "$dir/master.log" "$dir/slave.log" >&2; exit 1; }
      sleep 0.1
    done
    if [[ "$role" == SYNC_MASTER ]]; then
      # One sync send must come back SUCCESS (not SLAVE_NOT_AVAILABLE) before measuring.
      local ok=""
      for _ in $(seq 1 30); do
        if "$bench" --mode produce --namesrv "$ns" --send-mode sync --producers 1 --count 1 \
          --size 16 --quiet --no-pin --topic WarmupTopic --report "$dir/warmup.json" >/dev/null 2>&1 &&
          python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; sys.exit(0 if r["acked"]["messages"]==1 and not r["events"] and not r["errors"] else 1)' "$dir/warmup.json"; then
          ok=1; break
        fi
        sleep 0.5
      done
      [[ -n "$ok" ]] || { echo "SYNC_MASTER never answered SUCCESS ($tag)" >&2; cat "$dir/warmup.json" >&2; exit 1; }
    fi
  else
    sleep 1 # let the master register with its NameServer
  fi
  python3 "$procstat" "$m_pid" >"$dir/m.before"
  [[ -n "$s_pid" ]] && python3 "$procstat" "$s_pid" >"$dir/s.before"
  # TCP segment counters of the master's sockets, sampled 2 s into the bench and 1 s before
  # its end (the producers' connections exist only then).
  local ss_window=$((duration - 3))
  (
    sleep 2
    ss -tinH state established "( sport = :${ports[1]} )" >"$dir/ha-ss.before" 2>/dev/null
    ss -tinH state established "( sport = :${ports[0]} )" >"$dir/client-ss.before" 2>/dev/null
    sleep "$ss_window"
    ss -tinH state established "( sport = :${ports[1]} )" >"$dir/ha-ss.after" 2>/dev/null
    ss -tinH state established "( sport = :${ports[0]} )" >"$dir/client-ss.after" 2>/dev/null
  ) &
  local ss_pid=$!
  local perf_pid=""
  if [[ -n "${PERF_MASTER:-}" ]]; then
    # Diagnostic: a cpu-clock profile of the master (and the slave) over the bench.
    perf record -q -e cpu-clock ${PERF_CALLGRAPH:--g} -p "$m_pid" -o "$out/$tag.master.perf.data" 2>/dev/null &
    perf_pid=$!
    if [[ -n "$s_pid" ]]; then
      perf record -q -e cpu-clock ${PERF_CALLGRAPH:--g} -p "$s_pid" -o "$out/$tag.slave.perf.data" 2>/dev/null &
      perf_pid="$perf_pid $!"
    fi
  fi
  "$bench" --mode produce --namesrv "$ns" --send-mode async --producers 4 --connections 4 \
    --inflight 64 --size "$size" --duration "$duration" --threads 1 --first-core 0 \
    --store-dir "$dir/master" --o-direct on --quiet --label "$tag" --report "$out/$tag.json"
  if [[ -n "$perf_pid" ]]; then
    # shellcheck disable=SC2086
    kill -INT $perf_pid; wait $perf_pid || true
  fi
  wait "$ss_pid" || true
  # TCP segments per second out of / into the master's sockets (summed over connections): on
  # the HA connection ~ Data frames and Acks, on the producers' ~ reply and request writes.
  for side in ha client; do
    [[ -s "$dir/$side-ss.before" ]] || continue
    python3 - "$dir/$side-ss.before" "$dir/$side-ss.after" "$ss_window" >"$out/$tag.$side-segments.json" <<'EOF'
import json, re, sys
def counts(path):
    text = open(path).read()
    def get(key):
        return sum(int(v) for v in re.findall(r"\b" + key + r":(\d+)", text))
    return {k: get(k) for k in ("data_segs_out", "data_segs_in", "bytes_acked", "bytes_received")}
a, b = counts(sys.argv[1]), counts(sys.argv[2])
d = {k: b[k] - a[k] for k in a}
secs = float(sys.argv[3])
print(json.dumps({"data_segments_out_per_s": round(d["data_segs_out"] / secs),
                  "data_segments_in_per_s": round(d["data_segs_in"] / secs),
                  "bytes_per_segment_out": round(d["bytes_acked"] / max(d["data_segs_out"], 1)),
                  "bytes_per_segment_in": round(d["bytes_received"] / max(d["data_segs_in"], 1))}))
EOF
  done
  python3 "$procstat" "$m_pid" >"$dir/m.after"
  [[ -n "$s_pid" ]] && python3 "$procstat" "$s_pid" >"$dir/s.after"
  python3 "$procstat" --diff "$dir/m.before" "$dir/m.after" >"$out/$tag.master-cpu.json"
  if [[ -n "$s_pid" ]]; then
    python3 "$procstat" --diff "$dir/s.before" "$dir/s.after" >"$out/$tag.slave-cpu.json"
    # Replication lag left when the producers stopped, and how long it took to drain.
    python3 - "$rmq" "$maddr" "$saddr" >"$out/$tag.lag.json" <<'EOF'
import json, subprocess, sys, time
rmq, master, slave = sys.argv[1:4]
def off(addr):
    out = subprocess.run([rmq, "admin", "broker-status", "-b", addr], capture_output=True, text=True).stdout
    for line in out.splitlines():
        k, _, v = line.partition(":")
        if k.strip() == "commitLogMaxOffset":
            return int(v.strip())
t0 = time.monotonic()
m, s = off(master), off(slave)
first = {"master": m, "slave": s, "lag_bytes": m - s}
while s != m and time.monotonic() - t0 < 60:
    time.sleep(0.05)
    m, s = off(master), off(slave)
print(json.dumps({"at_end": first, "equal": s == m, "drain_s": round(time.monotonic() - t0, 3),
                  "master_max_offset": m, "slave_max_offset": s}))
EOF
  fi
  for p in $s_pid $m_pid; do
    kill -TERM "$p"
    wait "$p" || echo "broker exit status $? (pid $p, $tag)" >&2
  done
  kill -TERM "$ns_pid"; wait "$ns_pid" || true # the NameServer dies of SIGTERM (143)
  pids=()
  cp "$dir/master.log" "$out/$tag.master.log"
  [[ -n "$s_pid" ]] && cp "$dir/slave.log" "$out/$tag.slave.log"
  rm -rf "$dir"
}

run_pass() { # PASS ORDER
  local pass="$1" order="$2" runs=()
  for size in 128 1024; do
    if [[ "${DIAG:-}" == flush ]]; then
      # Diagnostic (1 KiB only): which side's SYNC_FLUSH slows SYNC_MASTER + SYNC_FLUSH down.
      [[ "$size" == 1024 ]] || continue
      runs+=("none-syncflush ASYNC_MASTER no SYNC_FLUSH $size -")
      runs+=("async-syncflush ASYNC_MASTER yes SYNC_FLUSH $size -")
      runs+=("sync-masterflush SYNC_MASTER yes SYNC_FLUSH/ASYNC_FLUSH $size -")
      runs+=("sync-slaveflush SYNC_MASTER yes ASYNC_FLUSH/SYNC_FLUSH $size -")
      runs+=("sync-syncflush SYNC_MASTER yes SYNC_FLUSH $size -")
      continue
    fi
    if [[ "${DIAG:-}" == ab ]]; then
      # A/B of the follow-up commit (ab.sh): the configurations it changes.
      [[ "$size" == 1024 ]] && runs+=("async ASYNC_MASTER yes ASYNC_FLUSH $size -")
      [[ "$size" == 1024 ]] && runs+=("sync SYNC_MASTER yes ASYNC_FLUSH $size -")
      runs+=("sync-syncflush SYNC_MASTER yes SYNC_FLUSH $size -")
      continue
    fi
    if [[ "${DIAG:-}" == fair ]]; then
      # SYNC_MASTER + SYNC_FLUSH against the fair baseline, ASYNC_MASTER + SYNC_FLUSH (both
      # brokers SYNC_FLUSH in both), same sizes (../2026-12-06-catchup/).
      runs+=("async-syncflush ASYNC_MASTER yes SYNC_FLUSH $size -")
      runs+=("sync-syncflush SYNC_MASTER yes SYNC_FLUSH $size -")
      continue
    fi
    if [[ "${DIAG:-}" == roll ]]; then
      # 1 KiB only, the three ASYNC_FLUSH configurations: segment rolls come every ~2 s here
      # (256 MiB segments), so their zero-fill's effect on latency shows.
      [[ "$size" == 1024 ]] || continue
      runs+=("none ASYNC_MASTER no ASYNC_FLUSH $size -")
      runs+=("async ASYNC_MASTER yes ASYNC_FLUSH $size -")
      runs+=("sync SYNC_MASTER yes ASYNC_FLUSH $size -")
      continue
    fi
    if [[ "${DIAG:-}" == pair1k ]]; then
      # The same pair at 1 KiB only.
      [[ "$size" == 1024 ]] || continue
      runs+=("async ASYNC_MASTER yes ASYNC_FLUSH $size -")
      runs+=("sync SYNC_MASTER yes ASYNC_FLUSH $size -")
      continue
    fi
    if [[ "${DIAG:-}" == pair ]]; then
      # ASYNC_MASTER against SYNC_MASTER only (both ASYNC_FLUSH): issue 13's throughput pair.
      runs+=("async ASYNC_MASTER yes ASYNC_FLUSH $size -")
      runs+=("sync SYNC_MASTER yes ASYNC_FLUSH $size -")
      continue
    fi
    if [[ "${DIAG:-}" == batch ]]; then
      # Diagnostic: the SYNC_FLUSH pair with Java's 32 KiB haTransferBatchSize and with 1 MiB.
      runs+=("sync-syncflush SYNC_MASTER yes SYNC_FLUSH $size -")
      runs+=("sync-syncflush-b1m SYNC_MASTER yes SYNC_FLUSH $size haTransferBatchSize=1048576")
      continue
    fi
    runs+=("none ASYNC_MASTER no ASYNC_FLUSH $size -")
    runs+=("async ASYNC_MASTER yes ASYNC_FLUSH $size -")
    runs+=("sync SYNC_MASTER yes ASYNC_FLUSH $size -")
    runs+=("sync-syncflush SYNC_MASTER yes SYNC_FLUSH $size -")
  done
  if [[ "$order" == reverse ]]; then
    local reversed=(); for ((i=${#runs[@]}-1; i>=0; i--)); do reversed+=("${runs[i]}"); done
    runs=("${reversed[@]}")
  fi
  for run in "${runs[@]}"; do
    echo "$(date +%T) pass $pass: $run" >&2
    # shellcheck disable=SC2086
    run_one $run "$pass"
  done
}

case "${1:-all}" in
  pass) run_pass "$2" "${3:-forward}" ;;
  catchup) RMQ_BIN="$rmq" BENCH_BIN="$bench" python3 "$here/catchup.py" "$out" ;;
  summary) python3 "$here/summarize.py" "$out" "$here/raw-diag" "$here/raw-diag-flush" >"$here/summary.md" ;;
  disk)
    # fdatasync latency of this disk: O_DIRECT writes, each followed by a sync (dsync).
    mkdir -p "$work"
    for bs in 4k 32k 1M; do
      n=2000; [[ "$bs" == 1M ]] && n=200
      printf 'bs=%s count=%s: ' "$bs" "$n"
      dd if=/dev/zero of="$work/dsync.tmp" bs="$bs" count="$n" oflag=direct,dsync 2>&1 | tail -1
      rm -f "$work/dsync.tmp"
    done | tee "$out/disk-dsync.txt"
    ;;
  all)
    # Two sets of the 3-pass protocol (forward, reverse, forward): this report's session ran
    # passes 1-3 while other builds loaded the machine, then 4-6 in a quieter spell.
    run_pass 1 forward
    run_pass 2 reverse
    run_pass 3 forward
    RMQ_BIN="$rmq" BENCH_BIN="$bench" python3 "$here/catchup.py" "$out"
    run_pass 4 forward
    run_pass 5 reverse
    run_pass 6 forward
    python3 "$here/summarize.py" "$out" "$here/raw-diag" "$here/raw-diag-flush" >"$here/summary.md"
    ;;
  *) echo "usage: $0 [all|pass N forward|reverse|catchup|summary|disk]" >&2; exit 2 ;;
esac
