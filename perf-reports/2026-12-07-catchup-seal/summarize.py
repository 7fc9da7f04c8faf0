#!/usr/bin/env python3
"""Summarises raw/catchup-<setup>-<A|B>-p<pass>.json (catchup.py reports) into a markdown table:
per setup and build, every repeat's transfer rate, dd rate, their ratio and both processes' CPU,
then medians and B/A ratios. Usage: summarize.py RAW_DIR"""
import glob
import json
import re
import statistics
import sys
from pathlib import Path

raw = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "raw")
rows = {}
for path in sorted(glob.glob(str(raw / "catchup-*-p[0-9].json"))):
    m = re.match(r"catchup-(.+)-([AB])-p(\d)\.json", Path(path).name)
    setup, build, npass = m.group(1), m.group(2), int(m.group(3))
    d = json.load(open(path))
    gb = d["master_max_offset"] / 1e9
    for r in d["repeats"]:
        dd = r["dd_before"][0]["mb_per_s"]
        rows.setdefault((setup, build), []).append({
            "pass": npass, "repeat": r["repeat"], "transfer": r["mb_per_s_transfer"], "dd": dd,
            "ratio": r["mb_per_s_transfer"] / dd, "master_cpu_per_gb": r["master_cpu_s"] / gb,
            "slave_cpu_per_gb": r["slave_cpu_s"] / gb, "master_rss_max_mib": r["master_rss_max_kib"] / 1024,
            "equal": r["equal"]})

print("| setup | build | pass.repeat | transfer MB/s | dd MB/s | transfer / dd | master CPU s/GB | slave CPU s/GB | master RSS max MiB | equal |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
for (setup, build), rs in sorted(rows.items()):
    for r in rs:
        print(f"| {setup} | {build} | {r['pass']}.{r['repeat']} | {r['transfer']:.0f} | {r['dd']:.0f} | {r['ratio']:.0%} | "
              f"{r['master_cpu_per_gb']:.2f} | {r['slave_cpu_per_gb']:.2f} | {r['master_rss_max_mib']:.0f} | {r['equal']} |")
print()
print("| setup | build | runs | median transfer MB/s | median dd MB/s | median transfer / dd | median master CPU s/GB | median slave CPU s/GB |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
med = {}
for (setup, build), rs in sorted(rows.items()):
    m = {k: statistics.median(r[k] for r in rs) for k in ("transfer", "dd", "ratio", "master_cpu_per_gb", "slave_cpu_per_gb")}
    med[(setup, build)] = m
    print(f"| {setup} | {build} | {len(rs)} | {m['transfer']:.0f} | {m['dd']:.0f} | {m['ratio']:.0%} | {m['master_cpu_per_gb']:.2f} | {m['slave_cpu_per_gb']:.2f} |")
print()
print("| setup | B/A transfer | B/A master CPU | B/A slave CPU |")
print("|---|---:|---:|---:|")
for setup in sorted({s for s, _ in med}):
    a, b = med.get((setup, "A")), med.get((setup, "B"))
    if a and b:
        print(f"| {setup} | {b['transfer'] / a['transfer']:.2f} | {b['master_cpu_per_gb'] / a['master_cpu_per_gb']:.2f} | {b['slave_cpu_per_gb'] / a['slave_cpu_per_gb']:.2f} |")
