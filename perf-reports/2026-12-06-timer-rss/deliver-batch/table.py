#!/usr/bin/env python3
"""One row per run of ab.sh (raw dir given): deliveries/s, broker CPU us per delivery,
lateness p50/p99/max from each run's summary.md, then medians per side and B/A ratios."""
import re, statistics, sys
from pathlib import Path

root = Path(sys.argv[1])
rows = []
for run in sorted(root.iterdir(), key=lambda p: int(p.name.split('-')[0])):
    text = (run / "summary.md").read_text()
    rate = float(re.search(r"\(([\d,]+) msgs/s between", text).group(1).replace(",", ""))
    cpu = float(re.search(r"broker CPU ([\d.]+) µs/delivered", text).group(1))
    lat = re.search(r"p50 ([\d,]+) ms, p99 ([\d,]+) ms, p99.9 ([\d,]+) ms, max ([\d,]+) ms", text)
    # Without a consumer (CONSUME=0) there is no lateness.
    p50, p99, _, mx = (
        (float(x.replace(",", "")) for x in lat.groups()) if lat else (float("nan"),) * 4
    )
    load = (run / "loadavg-before").read_text().split("load average:")[1].strip()
    rows.append((run.name, rate, cpu, p50, p99, mx, load))
print("| run | deliveries/s | broker CPU µs/delivery | lateness p50 / p99 / max (ms) | load avg before |")
print("|---|---:|---:|---:|---|")
for name, rate, cpu, p50, p99, mx, load in rows:
    print(f"| {name} | {rate:,.0f} | {cpu:.2f} | {p50:,.0f} / {p99:,.0f} / {mx:,.0f} | {load} |")
med = {}
for side in "AB":
    sel = [r for r in rows if r[0].endswith(side)]
    med[side] = [statistics.median(r[i] for r in sel) for i in range(1, 6)]
    m = med[side]
    print(f"| **median {side}** | **{m[0]:,.0f}** | **{m[1]:.2f}** | **{m[2]:,.0f} / {m[3]:,.0f} / {m[4]:,.0f}** | |")
a, b = med["A"], med["B"]
print(f"| B / A | {b[0]/a[0]:.2f}× | {b[1]/a[1]:.2f}× | {b[2]/a[2]:.2f}× / {b[3]/a[3]:.2f}× / {b[4]/a[4]:.2f}× | |")
