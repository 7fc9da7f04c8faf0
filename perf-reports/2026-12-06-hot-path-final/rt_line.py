#!/usr/bin/env python3
"""One line per round-trip run: harness figures from its JSON report, broker syscalls,
io_uring_enter calls and context switches per message from `perf stat -x,` over `window_s`
seconds (scaled by the run's acknowledged rate)."""
import json
import sys

report, perfstat, window_s, name, load = sys.argv[1:6]
results = json.loads(open(report).read())["results"]
acked = results["acked"]
lat = results["send_latency"]
cpu = results.get("broker_cpu") or {}
us = cpu.get("us_per_message")
if us is None and cpu.get("cpu_s") is not None and acked["messages"]:
    us = cpu["cpu_s"] * 1e6 / acked["messages"]
counts = {}
for line in open(perfstat):
    parts = line.strip().split(",")
    if len(parts) > 3 and parts[0] and parts[0][0].isdigit():
        counts[parts[2]] = float(parts[0])
msgs = acked["msgs_per_s"] * float(window_s)
def per(event):
    value = counts.get(event)
    return f"{value / msgs:.2f}" if value is not None and msgs else "n/a"
print(f"{name}: {acked['msgs_per_s']:,.0f} msgs/s p50 {lat['p50_us']:.1f} p99 {lat['p99_us']:.1f} "
      f"p99.9 {lat['p99_9_us']:.1f} us; broker {us:.2f} us/msg; per msg: syscalls "
      f"{per('raw_syscalls:sys_enter')} io_uring_enter {per('syscalls:sys_enter_io_uring_enter')} "
      f"ctxsw {per('context-switches')} (task-clock {per('task-clock')} ms); load {load}")
