#!/usr/bin/env python3
"""A/B table of two broker-matrix runs (raw dirs written by perf-reports/2026-11-22-broker/run.sh):
per configuration the median over passes of msgs/s, send latency p50/p99/p99.9 and broker CPU
(cores busy) for A and B, and the ratio B/A. Usage: compare.py RAW_A RAW_B"""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def load(raw):
    runs = defaultdict(list)
    for path in sorted(Path(raw).glob("*-pass*.json")):
        if path.name.endswith(".broker-cpu.json"):
            continue
        r = json.loads(path.read_text())
        label = r["label"]
        cpu_path = Path(raw) / f"{label}.broker-cpu.json"
        cpu = json.loads(cpu_path.read_text()) if cpu_path.exists() else {}
        res = r["results"]
        lat = res["send_latency"] or {}
        runs[label.rsplit("-pass", 1)[0]].append({
            "msgs": res["acked"]["msgs_per_s"],
            "p50": lat.get("p50_us"), "p99": lat.get("p99_us"), "p999": lat.get("p99_9_us"),
            "cpu": cpu.get("busy_cores"),
            "cpu_us_per_msg": (cpu.get("busy_cores") or 0) * 1e6 / res["acked"]["msgs_per_s"]
            if res["acked"]["msgs_per_s"] else None,
        })
    return runs


def med(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


a, b = load(sys.argv[1]), load(sys.argv[2])
print("| configuration | n A/B | msgs/s A | msgs/s B | B/A | p50 µs A | p50 µs B | p99 µs A | p99 µs B "
      "| p99.9 µs A | p99.9 µs B | broker µs CPU/msg A | B | B/A |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
ratios = []
for name in sorted(set(a) | set(b)):
    ra, rb = a.get(name, []), b.get(name, [])
    ma, mb = med(ra, "msgs"), med(rb, "msgs")
    ca, cb = med(ra, "cpu_us_per_msg"), med(rb, "cpu_us_per_msg")
    ratio = mb / ma if ma and mb else None
    cratio = cb / ca if ca and cb else None
    if ratio:
        ratios.append(ratio)
    fmt = lambda v, d=0: "–" if v is None else f"{v:,.{d}f}"
    print(f"| {name} | {len(ra)}/{len(rb)} | {fmt(ma)} | {fmt(mb)} | {fmt(ratio, 2)} "
          f"| {fmt(med(ra, 'p50'))} | {fmt(med(rb, 'p50'))} | {fmt(med(ra, 'p99'))} | {fmt(med(rb, 'p99'))} "
          f"| {fmt(med(ra, 'p999'))} | {fmt(med(rb, 'p999'))} | {fmt(ca, 1)} | {fmt(cb, 1)} | {fmt(cratio, 2)} |")
if ratios:
    print(f"\nMedian throughput ratio B/A over {len(ratios)} configurations: "
          f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}).")
