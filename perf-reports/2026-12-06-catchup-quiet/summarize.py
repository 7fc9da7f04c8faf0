#!/usr/bin/env python3
"""Table of this report's catch-up runs (catchup.py with TAG=-shards1 / -shards2): per repeat the
transfer rate (from the slave's first bytes to equal), dd O_DIRECT bs=1M before and after, transfer
/ mean(dd), the master's RSS range, both processes' CPU; then medians per run. Usage: summarize.py RAW"""
import glob
import json
import statistics
import sys
from pathlib import Path

raw = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "raw")
print("| run | shards | rep | bg cores | GB | transfer MB/s | overall MB/s | dd 1M before / after MB/s "
      "| transfer / dd | master RSS MiB | master / slave CPU s | slave CPU s per GB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
summary = []
for path in sorted(p for p in glob.glob(str(raw / "catchup-*.json")) if not p.endswith("-fill.json")):
    name = Path(path).stem.replace("catchup-", "")
    d = json.loads(Path(path).read_text())
    gb = d["master_max_offset"] / 1e9
    rows = []
    for r in d["repeats"]:
        dd = (r["dd_before"][0]["mb_per_s"] + r["dd_after"][0]["mb_per_s"]) / 2
        rows.append((r["mb_per_s_transfer"], dd, r["mb_per_s_transfer"] / dd, r["master_cpu_s"], r["slave_cpu_s"]))
        print(f"| {name} | {d.get('shards', 1)} | {r['repeat']} | {r['background_busy_cores']} | {gb:.2f} | "
              f"{r['mb_per_s_transfer']:.0f} | {r['mb_per_s_total']:.0f} | "
              f"{r['dd_before'][0]['mb_per_s']:.0f} / {r['dd_after'][0]['mb_per_s']:.0f} | "
              f"{r['mb_per_s_transfer'] / dd * 100:.0f} % | "
              f"{r['master_rss_min_kib'] / 1024:.0f}-{r['master_rss_max_kib'] / 1024:.0f} | "
              f"{r['master_cpu_s']:.2f} / {r['slave_cpu_s']:.2f} | {r['slave_cpu_s'] / gb:.2f} |")
    med = lambda i: statistics.median(x[i] for x in rows)
    summary.append(f"| {name} | {len(rows)} | {med(0):.0f} | {med(1):.0f} | {med(2) * 100:.0f} % | "
                   f"{med(3):.2f} / {med(4):.2f} |")
print()
print("| run | repeats | median transfer MB/s | median dd MB/s | median transfer / dd | median master / slave CPU s |")
print("|---|---:|---:|---:|---:|---:|")
print("\n".join(summary))
