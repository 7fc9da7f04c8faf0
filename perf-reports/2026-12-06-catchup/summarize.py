#!/usr/bin/env python3
"""Table of the catch-up A/B (ab-catchup.sh): per repeat the transfer rate (from the slave's
first bytes to equal), the dd O_DIRECT bs=1M rates before and after it, transfer / mean(dd), the
master's RSS range and both processes' CPU; then medians per side. Usage: summarize.py RAW_DIR"""
import glob
import json
import statistics
import sys
from pathlib import Path

raw = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "raw")
rows = {"A": [], "B": []}
print("| run | side | rep | bg cores | GB | transfer MB/s | overall MB/s | dd 1M before / after MB/s "
      "| transfer / dd | master RSS MiB | master / slave CPU s |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
paths = [p for p in glob.glob(str(raw / "catchup-*-run*.json")) if not p.endswith("-fill.json")]
for path in sorted(paths, key=lambda p: int(p.split("run")[-1].split(".")[0])):
    name = Path(path).stem.replace("catchup-", "")
    side = name.split("-")[0]
    d = json.loads(Path(path).read_text())
    for r in d["repeats"]:
        dd = (r["dd_before"][0]["mb_per_s"] + r["dd_after"][0]["mb_per_s"]) / 2
        ratio = r["mb_per_s_transfer"] / dd
        rows[side].append({"transfer": r["mb_per_s_transfer"], "dd": dd, "ratio": ratio,
                           "overall": r["mb_per_s_total"], "slave_cpu": r["slave_cpu_s"],
                           "master_cpu": r["master_cpu_s"]})
        print(f"| {name} | {side} | {r['repeat']} | {r['background_busy_cores']} | "
              f"{d['master_max_offset'] / 1e9:.2f} | {r['mb_per_s_transfer']:.0f} | "
              f"{r['mb_per_s_total']:.0f} | {r['dd_before'][0]['mb_per_s']:.0f} / "
              f"{r['dd_after'][0]['mb_per_s']:.0f} | {ratio * 100:.0f} % | "
              f"{r['master_rss_min_kib'] / 1024:.0f}-{r['master_rss_max_kib'] / 1024:.0f} | "
              f"{r['master_cpu_s']:.2f} / {r['slave_cpu_s']:.2f} |")
print()
print("| side | repeats | median transfer MB/s | median dd MB/s | median transfer / dd | "
      "median master / slave CPU s |")
print("|---|---:|---:|---:|---:|---:|")
for side, rs in rows.items():
    if not rs:
        continue
    med = lambda k: statistics.median(x[k] for x in rs)
    print(f"| {side} | {len(rs)} | {med('transfer'):.0f} | {med('dd'):.0f} | "
          f"{med('ratio') * 100:.0f} % | {med('master_cpu'):.2f} / {med('slave_cpu'):.2f} |")
