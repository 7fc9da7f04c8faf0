#!/usr/bin/env python3
"""Tables of the broker matrix from raw/: one row per run (label NAME-passN), then one row per
configuration with the median over passes. Broker CPU comes from raw/<label>.broker-cpu.json
(procstat.py): cores' worth of CPU the broker process used, and the run-queue wait of its shard
threads summed (as a share of the wall time; with 2 shards it can reach 200 %)."""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

raw = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "raw")
rows = []
for path in sorted(raw.glob("*-pass*.json")):
    if path.name.endswith(".broker-cpu.json"):
        continue
    r = json.loads(path.read_text())
    label = r["label"]
    cpu_path = raw / f"{label}.broker-cpu.json"
    cpu = json.loads(cpu_path.read_text()) if cpu_path.exists() else None
    res = r["results"]
    lat = res["send_latency"] or {}
    e2e = res.get("end_to_end_latency") or {}
    h = res["harness_threads"][0]
    rows.append({
        "name": label.rsplit("-pass", 1)[0],
        "pass": label.rsplit("-pass", 1)[1],
        "msgs": res["acked"]["msgs_per_s"],
        "mb": res["acked"]["mb_per_s"],
        "p50": lat.get("p50_us"), "p99": lat.get("p99_us"), "p999": lat.get("p99_9_us"),
        "max": lat.get("max_us"),
        "consumed": res["consumed"]["msgs_per_s"] if res["consumed"]["messages"] else None,
        "e2e50": e2e.get("p50_us"), "e2e99": e2e.get("p99_us"), "e2e999": e2e.get("p99_9_us"),
        "e2emax": e2e.get("max_us"),
        "hbusy": h["utilisation"], "hwait": h["runqueue_wait_s"] / res["produce_s"],
        "bcores": cpu and cpu["busy_cores"],
        "bwait": cpu and sum(t["runqueue_wait_s"] for t in cpu["threads"] if t["name"].startswith("rmq-shard"))
        / cpu["wall_s"],
        "load": (r["machine"].get("load_average") or [None])[0],
    })


def fmt(v, d=0):
    return "-" if v is None else f"{v:,.{d}f}"


def pct(v):
    return "-" if v is None else f"{v * 100:.0f}%"


head = ("| run | pass | msgs/s | MB/s | p50 µs | p99 µs | p99.9 µs | max µs | harness busy | harness wait "
        "| broker CPU (cores) | shard wait | load 1m |")
print(head)
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for x in rows:
    print(f"| {x['name']} | {x['pass']} | {fmt(x['msgs'])} | {fmt(x['mb'], 1)} | {fmt(x['p50'])} | {fmt(x['p99'])} "
          f"| {fmt(x['p999'])} | {fmt(x['max'])} | {pct(x['hbusy'])} | {pct(x['hwait'])} | {fmt(x['bcores'], 2)} "
          f"| {pct(x['bwait'])} | {fmt(x['load'], 1)} |")

pcs = [x for x in rows if x["consumed"] is not None]
if pcs:
    print()
    print("| run | pass | produced msgs/s | consumed msgs/s | e2e p50 µs | e2e p99 µs | e2e p99.9 µs | e2e max µs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for x in pcs:
        print(f"| {x['name']} | {x['pass']} | {fmt(x['msgs'])} | {fmt(x['consumed'])} | {fmt(x['e2e50'])} "
              f"| {fmt(x['e2e99'])} | {fmt(x['e2e999'])} | {fmt(x['e2emax'])} |")

groups = defaultdict(list)
for x in rows:
    groups[x["name"]].append(x)
print()
print("| config | passes | msgs/s (median) | msgs/s per pass | MB/s | p50 µs | p99 µs | p99.9 µs | max µs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, xs in groups.items():
    med = lambda k: statistics.median([x[k] for x in xs if x[k] is not None]) if any(x[k] is not None for x in xs) else None
    per = " / ".join(fmt(x["msgs"]) for x in sorted(xs, key=lambda x: x["pass"]))
    print(f"| {name} | {len(xs)} | {fmt(med('msgs'))} | {per} | {fmt(med('mb'), 1)} | {fmt(med('p50'))} "
          f"| {fmt(med('p99'))} | {fmt(med('p999'))} | {fmt(med('max'))} |")

# Ratios of the medians: SYNC_FLUSH / ASYNC_FLUSH per shard count and size, 2 shards / 1 shard
# per flush type and size (msgs/s).
def median_of(name):
    xs = groups.get(name)
    return statistics.median(x["msgs"] for x in xs) if xs else None


print()
print("| size | flush | 1 shard msgs/s | 2 shards msgs/s | 2 shards / 1 shard |")
print("|---:|---|---:|---:|---:|")
for size in (128, 1024, 16384):
    for flush in ("async-flush", "sync-flush"):
        a, b = median_of(f"s1-{flush}-{size}"), median_of(f"s2-{flush}-{size}")
        if a and b:
            print(f"| {size} | {flush} | {fmt(a)} | {fmt(b)} | {b / a:.2f} |")
print()
print("| size | shards | async flush msgs/s | sync flush msgs/s | sync / async |")
print("|---:|---:|---:|---:|---:|")
for size in (128, 1024, 16384):
    for shards in (1, 2):
        a, b = median_of(f"s{shards}-async-flush-{size}"), median_of(f"s{shards}-sync-flush-{size}")
        if a and b:
            print(f"| {size} | {shards} | {fmt(a)} | {fmt(b)} | {b / a:.2f} |")
