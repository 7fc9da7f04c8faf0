#!/usr/bin/env python3
"""Medians of the ab-fair.sh runs: msgs/s and p99 per side, configuration and size, the ratio
SYNC_MASTER+SYNC_FLUSH / ASYNC_MASTER+SYNC_FLUSH, and any run with errors or events
(FLUSH_DISK_TIMEOUT 10, SLAVE_NOT_AVAILABLE 11, FLUSH_SLAVE_TIMEOUT 12). Usage: summarize-fair.py DIR"""
import glob
import json
import statistics
import sys
from pathlib import Path

here = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
table = {}
for side in ("A", "B"):
    for path in sorted(glob.glob(str(here / f"raw-fair-{side}" / "*-pass*.json"))):
        name = Path(path).stem
        if "." in name:
            continue
        config, size, _ = name.rsplit("-", 2)
        r = json.loads(Path(path).read_text())["results"]
        bad = r["errors"] or r["events"]
        table.setdefault((side, config, size), []).append(
            (r["acked"]["msgs_per_s"], r["send_latency"]["p99_us"], bad, name))
print("| side | config | size | msgs/s per pass | p99 µs per pass | median msgs/s | median p99 µs |")
print("|---|---|---:|---|---|---:|---:|")
med = {}
for (side, config, size), runs in sorted(table.items()):
    good = [x for x in runs if not x[2]]
    for x in runs:
        if x[2]:
            print(f"invalid run {x[3]}: {x[2]}", file=sys.stderr)
    m = (statistics.median(x[0] for x in good), statistics.median(x[1] for x in good))
    med[(side, config, size)] = m
    print(f"| {side} | {config} | {size} | {' / '.join(f'{x[0]:,.0f}' for x in runs)} | "
          f"{' / '.join(f'{x[1]:,.0f}' for x in runs)} | {m[0]:,.0f} | {m[1]:,.0f} |")
print()
print("| side | size | sync-syncflush / async-syncflush msgs/s | p99 |")
print("|---|---:|---:|---:|")
for side in ("A", "B"):
    for size in ("128", "1024"):
        s, a = med.get((side, "sync-syncflush", size)), med.get((side, "async-syncflush", size))
        if s and a:
            print(f"| {side} | {size} | {s[0] / a[0]:.2f} | {s[1] / a[1]:.2f} |")
