#!/usr/bin/env python3
"""Tables of the allocator comparison from raw/: per allocator, the median over passes of the
broker's VmRSS around waves of connections (waves-*.json, from waves.py) and of rmq-bench
throughput and latency (bench-*.json) with the broker's memory after the run."""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

raw = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "raw")
order = ["old-glibc", "glibc", "mimalloc", "jemalloc"]


def mib(kib):
    return f"{kib / 1024:,.0f}"


def med(values):
    return statistics.median(values)


waves = defaultdict(list)
for path in sorted(raw.glob("waves-*-pass*.json")):
    alloc = path.name[len("waves-"):].rsplit("-pass", 1)[0]
    waves[alloc].append(json.loads(path.read_text()))

print("## Waves of 10,000 connections (2 shards): broker VmRSS, MiB, median over passes\n")
print("| allocator | passes | start | settled after wave 1 | 2 | 3 | 4 | 5 | wave 5 / wave 1 "
      "| peak wave 1 | peak wave 5 | late after wave 5 |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for alloc in order:
    runs = waves.get(alloc)
    if not runs:
        continue
    settled = [med([r["waves"][i]["settled_rss_kib"] for r in runs]) for i in range(5)]
    ratio = med([r["waves"][4]["settled_rss_kib"] / r["waves"][0]["settled_rss_kib"] for r in runs])
    print(f"| {alloc} | {len(runs)} | {mib(med([r['start_rss_kib'] for r in runs]))} | "
          + " | ".join(mib(s) for s in settled)
          + f" | {ratio:.2f} | {mib(med([r['waves'][0]['peak_rss_kib'] for r in runs]))} "
          f"| {mib(med([r['waves'][4]['peak_rss_kib'] for r in runs]))} "
          f"| {mib(med([r['waves'][4]['late_rss_kib'] for r in runs]))} |")

print("\nPer pass (settled MiB after waves 1..5):\n")
for alloc in order:
    for r in waves.get(alloc, []):
        print(f"- {alloc}: " + ", ".join(mib(w["settled_rss_kib"]) for w in r["waves"])
              + f" (peaks " + ", ".join(mib(w["peak_rss_kib"]) for w in r["waves"]) + ")")

bench = defaultdict(list)
for path in sorted(raw.glob("bench-*-pass*.json")):
    if path.name.endswith(".memory.json"):
        continue
    name = path.name[len("bench-"):].rsplit("-pass", 1)[0]
    alloc, size = name.rsplit("-", 1)
    report = json.loads(path.read_text())
    memory_path = path.with_name(path.name.replace(".json", ".memory.json"))
    memory = json.loads(memory_path.read_text()) if memory_path.exists() else {}
    res = report["results"]
    lat = res["send_latency"] or {}
    bench[(alloc, int(size))].append({
        "msgs": res["acked"]["msgs_per_s"], "p50": lat.get("p50_us"), "p99": lat.get("p99_us"),
        "p999": lat.get("p99_9_us"), "rss": memory.get("vm_rss_kib"), "hwm": memory.get("vm_hwm_kib"),
    })

print("\n## rmq-bench send, 1 shard on core 1, async 4 × 64 in flight, 10 s: median over passes\n")
print("| allocator | body | passes | msgs/s | msgs/s per pass | vs glibc | p50 µs | p99 µs | p99.9 µs "
      "| broker VmRSS after, MiB | VmHWM, MiB |")
print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
for size in (128, 1024):
    base = bench.get(("glibc", size))
    base_msgs = med([x["msgs"] for x in base]) if base else None
    for alloc in order:
        runs = bench.get((alloc, size))
        if not runs:
            continue
        msgs = med([x["msgs"] for x in runs])
        rel = f"{msgs / base_msgs:.3f}" if base_msgs else "-"
        per = ", ".join(f"{x['msgs']:,.0f}" for x in runs)
        print(f"| {alloc} | {size} B | {len(runs)} | {msgs:,.0f} | {per} | {rel} "
              f"| {med([x['p50'] for x in runs]):,.0f} | {med([x['p99'] for x in runs]):,.0f} "
              f"| {med([x['p999'] for x in runs]):,.0f} | {mib(med([x['rss'] for x in runs]))} "
              f"| {mib(med([x['hwm'] for x in runs]))} |")
