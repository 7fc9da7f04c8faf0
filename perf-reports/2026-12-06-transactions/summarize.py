#!/usr/bin/env python3
"""Medians per (shards, flush, kind) of plain and transactional sends, tx/plain ratios, and the
pending count left after every tx run, as a Markdown table."""
import json
import pathlib
import statistics
import sys
from collections import defaultdict

raw = pathlib.Path(sys.argv[1])
rows = defaultdict(list)
pending = []
for path in sorted(raw.glob("*-pass*.json")):
    if path.name.endswith(".pending.json"):
        report = json.loads(path.read_text())
        pending.append((path.name, report["total"], report["untracked"]))
        continue
    shards, flush, kind, _ = path.stem.split("-")
    results = json.loads(path.read_text())["results"]
    acked = results["acked"]
    latency = results["send_latency"]
    cpu = results.get("broker_cpu") or {}
    us = cpu.get("us_per_message")
    if us is None and cpu.get("cpu_s") is not None and acked["messages"]:
        us = cpu["cpu_s"] * 1e6 / acked["messages"]
    errors = sum(results.get("errors", {}).values()) if isinstance(results.get("errors"), dict) else 0
    rows[(shards, flush, kind)].append(
        (acked["msgs_per_s"], latency["p50_us"], latency["p99_us"], latency["p99_9_us"], us, errors)
    )


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


print("| shards | flush | msgs/s plain | msgs/s tx | tx/plain | p50 µs plain / tx "
      "| p99 µs plain / tx | p99.9 µs plain / tx | broker CPU µs/msg plain / tx | errors | runs |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for shards, flush in sorted({(s, f) for s, f, _ in rows}):
    p = rows.get((shards, flush, "plain"), [])
    t = rows.get((shards, flush, "tx"), [])
    if not p or not t:
        continue
    mp = [med(col) for col in zip(*p)]
    mt = [med(col) for col in zip(*t)]
    errors = sum(r[5] for r in p) + sum(r[5] for r in t)
    print(f"| {shards[:-1]} | {flush} | {mp[0]:,.0f} | {mt[0]:,.0f} | {mt[0] / mp[0]:.2f} "
          f"| {mp[1]:,.0f} / {mt[1]:,.0f} | {mp[2]:,.0f} / {mt[2]:,.0f} "
          f"| {mp[3]:,.0f} / {mt[3]:,.0f} | {mp[4]:.1f} / {mt[4]:.1f} | {errors} "
          f"| {len(p)} / {len(t)} |")
print()
left = [(name, total) for name, total, _ in pending if total != 0]
print(f"Pending after the tx runs: {len(pending)} reports, "
      f"{'all 0' if not left else 'NOT all 0: ' + repr(left)}.")
