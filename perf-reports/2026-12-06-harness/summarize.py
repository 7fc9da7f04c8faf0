#!/usr/bin/env python3
"""Median table of the runs in raw/: <side>-<config>-<rep>.json (side = before | after)."""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

raw = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "raw")
runs = defaultdict(list)
for path in sorted(raw.glob("*.json")):
    side, _, rest = path.stem.partition("-")
    if side not in ("before", "after"):
        continue
    config, _, rep = rest.rpartition("-")
    report = json.loads(path.read_text())
    results = report["results"]
    harness = results["harness_threads"][0]
    echo = results["echo"]
    acked = results["acked"]["messages"]
    runs[(config, side)].append({
        "msgs": results["acked"]["msgs_per_s"],
        "harness_us": results["harness_cpu_us_per_message"],
        "echo_us": echo["usage"]["cpu_ns"] / 1e3 / acked if acked else float("nan"),
        "busy": harness["utilisation"],
        "wait": harness["runqueue_wait_s"] / max(results["produce_s"], 1e-9),
        "p50": (results["send_latency"] or {}).get("p50_us", float("nan")),
        "p99": (results["send_latency"] or {}).get("p99_us", float("nan")),
        "errors": sum(results["errors"].values()) if isinstance(results["errors"], dict) else 0,
    })

def med(values):
    return statistics.median(values)

print("| config | side | runs | msgs/s (median) | msgs/s range | harness CPU µs/msg (range) "
      "| msgs/s per harness core | echo CPU µs/msg | harness busy | harness wait | p50 µs | p99 µs |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (config, side) in sorted(runs, key=lambda key: (key[0], key[1] != "before")):
    rows = runs[(config, side)]
    msgs = [row["msgs"] for row in rows]
    harness = [row["harness_us"] for row in rows]
    print(f"| {config} | {side} | {len(rows)} | {med(msgs):,.0f} | {min(msgs):,.0f}–{max(msgs):,.0f} "
          f"| {med(harness):.2f} ({min(harness):.2f}–{max(harness):.2f}) | {1e6 / med(harness):,.0f} "
          f"| {med([r['echo_us'] for r in rows]):.2f} | {med([r['busy'] for r in rows]):.0%} "
          f"| {med([r['wait'] for r in rows]):.0%} | {med([r['p50'] for r in rows]):,.0f} "
          f"| {med([r['p99'] for r in rows]):,.0f} |")
