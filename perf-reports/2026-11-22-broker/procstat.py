#!/usr/bin/env python3
"""Snapshot of one process's threads: name, last CPU, CPU time (utime+stime, ns) and run-queue
wait (ns, /proc/PID/task/TID/schedstat). `procstat.py PID > snap.json`. `procstat.py --diff
before.json after.json` prints per-thread CPU and wait between the two snapshots as JSON."""
import json
import os
import sys
import time

TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")


def snapshot(pid):
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{tid}"
        try:
            stat = open(f"{base}/stat").read()
            sched = open(f"{base}/schedstat").read().split()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        threads[tid] = {
            "name": name,
            "cpu_ns": (int(fields[11]) + int(fields[12])) * TICK_NS,
            "runqueue_wait_ns": int(sched[1]),
            "last_cpu": int(fields[36]),
        }
    return {"t": time.monotonic(), "threads": threads}


def diff(before, after):
    wall = after["t"] - before["t"]
    out = {"wall_s": wall, "threads": []}
    total = 0.0
    for tid, a in after["threads"].items():
        b = before["threads"].get(tid, {"cpu_ns": 0, "runqueue_wait_ns": 0})
        cpu = (a["cpu_ns"] - b["cpu_ns"]) / 1e9
        wait = (a["runqueue_wait_ns"] - b["runqueue_wait_ns"]) / 1e9
        total += cpu
        if cpu > 0.01 or wait > 0.01:
            out["threads"].append(
                {"tid": tid, "name": a["name"], "cpu_s": round(cpu, 3), "busy": round(cpu / wall, 3),
                 "runqueue_wait_s": round(wait, 3), "last_cpu": a["last_cpu"]}
            )
    out["cpu_s"] = round(total, 3)
    out["busy_cores"] = round(total / wall, 3)
    return out


if __name__ == "__main__":
    if sys.argv[1] == "--diff":
        print(json.dumps(diff(json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))), indent=1))
    else:
        print(json.dumps(snapshot(sys.argv[1])))
