#!/usr/bin/env bash
# Bytes an idle broker (no clients, no timers) writes: /proc/<pid>/io `wchar` (bytes passed to
# write-like syscalls) and `write_bytes` (bytes sent to the block layer) over a window, after
# a settle period. Usage: idle_io.sh <rmq binary> <shards> [window_s=30] [settle_s=10]
set -euo pipefail
bin=$1; shards=$2; window=${3:-30}; settle=${4:-10}
dir=$(mktemp -d -p "${IDLE_IO_DIR:-$PWD}" idle-io.XXXXXX)
printf 'brokerName=idle\n' > "$dir/broker.conf"
"$bin" standalone --namesrv-port 0 --broker-port 0 --store-dir "$dir/store" \
  -c "$dir/broker.conf" --shards "$shards" > "$dir/log" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
sleep "$settle"
read_io() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/io"; }
w0=$(read_io wchar); b0=$(read_io write_bytes)
sleep "$window"
w1=$(read_io wchar); b1=$(read_io write_bytes)
echo "bin=$bin shards=$shards window_s=$window wchar_per_s=$(( (w1 - w0) / window )) write_bytes_per_s=$(( (b1 - b0) / window ))"
