#!/bin/bash
# brt.sh RMQ EXTRA_CONF_LINE SPIN SECS
rmq=$1; extra=$2; spin=$3; secs=${4:-5}; bc=${BC:-./bc}
w=${WORK:-/tmp/brt-work}; rm -rf $w; mkdir -p $w/store
printf 'brokerName=broker-a\nmappedFileSizeCommitLog=268435456\nflushDiskType=ASYNC_FLUSH\n%s\n' "$extra" > $w/broker.conf
taskset -c 1 $rmq standalone --namesrv-port 0 --broker-port 0 --store-dir $w/store --shards 1 -c $w/broker.conf > $w/stdout 2> $w/stderr &
pid=$!
for _ in $(seq 1 100); do grep -q '^READY broker' $w/stdout && break; sleep 0.1; done
port=$(sed -n 's/^READY broker .*:\([0-9]*\)$/\1/p' $w/stdout | head -1)
sleep 1
$bc $port $spin 1 ${SHARED:-../../../shared}/wire-captures/ali-ons/route-mode-broker-conn-send-v2.bin > /dev/null
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
[ -n "$PERF" ] && (perf record -q -e cpu-clock -g -F 5000 -p $pid -o ${PERF_OUT:-b.perf.data} -- sleep 3 2>/dev/null &)
out=$($bc $port $spin $secs ${SHARED:-../../../shared}/wire-captures/ali-ons/route-mode-broker-conn-send-v2.bin)
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
n=$(echo "$out" | sed -n 's/.* n=\([0-9]*\).*/\1/p')
echo "[$extra spin=$spin] $out broker_cpu_us_per_msg=$(python3 -c "print(round(($t1-$t0)*10000/$n,1))")"
kill -TERM $pid; wait $pid
