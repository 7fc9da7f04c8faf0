#!/usr/bin/env python3
"""Medians per (config, build) of the hot-path A/B and B/A ratios, as a Markdown table."""
import json
import pathlib
import statistics
import sys
from collections import defaultdict

raw = pathlib.Path(sys.argv[1])
rows = defaultdict(list)
for path in sorted(raw.glob("*-pass*.json")):
    name = path.stem  # <config>-<build>-pass<N>
    config, build, _ = name.rsplit("-", 2)
    results = json.loads(path.read_text())["results"]
    acked = results["acked"]
    latency = results["send_latency"]
    cpu = results.get("broker_cpu") or {}
    us = cpu.get("us_per_message")
    if us is None and cpu.get("cpu_s") is not None and acked["messages"]:
        us = cpu["cpu_s"] * 1e6 / acked["messages"]
    rows[(config, build)].append(
        (acked["msgs_per_s"], latency["p50_us"], latency["p99_us"], latency["p99_9_us"], us)
    )

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")

print("| config | msgs/s A | msgs/s B | B/A | p50 µs A / B | p99 µs A / B | p99.9 µs A / B "
      "| broker CPU µs/msg A / B | B/A CPU | runs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
configs = sorted({config for config, _ in rows}, key=lambda c: (c.split("-")[0], c))
for config in configs:
    a = rows.get((config, "A"), [])
    b = rows.get((config, "B"), [])
    if not a or not b:
        continue
    ma = [med(col) for col in zip(*a)]
    mb = [med(col) for col in zip(*b)]
    print(f"| {config} | {ma[0]:,.0f} | {mb[0]:,.0f} | {mb[0] / ma[0]:.2f} "
          f"| {ma[1]:,.0f} / {mb[1]:,.0f} | {ma[2]:,.0f} / {mb[2]:,.0f} "
          f"| {ma[3]:,.0f} / {mb[3]:,.0f} | {ma[4]:.2f} / {mb[4]:.2f} | {mb[4] / ma[4]:.2f} "
          f"| {len(a)} / {len(b)} |")
