#!/usr/bin/env python3
"""summary.md from raw/: per variant, broker RSS at 0 / 1e5 / 1e6 / 3e6 / 1e7 messages (stored
for `plain`, pending timers for the timer variants), the smaps split at the last milestone,
send and scheduling rates, broker CPU per message and, for timer-deliver, delivery rate and
lateness."""
import csv
import json
import pathlib
import sys

raw = pathlib.Path(sys.argv[1])
MILESTONES = [0, 100_000, 1_000_000, 3_000_000, 10_000_000]


def rows_of(path):
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def first_at(rows, key, value):
    for row in rows:
        if row[key] >= value:
            return row
    return None


def kib(value):
    return f"{value / 1024:,.1f}"


print("## RSS (MiB) against the count that matters: stored messages (plain) or pending timers\n")
print("| variant | " + " | ".join(f"{m:,}" for m in MILESTONES) +
      " | peak | Anonymous / Pss_File at the last milestone (MiB) |")
print("|---|" + "---:|" * (len(MILESTONES) + 2))
details = []
for csv_path in sorted(raw.glob("*.csv")):
    tag = csv_path.stem
    rows = [r for r in rows_of(csv_path) if r["vmrss_kib"] > 0]
    if not rows:
        continue
    key = "put_total" if tag.startswith("plain") else "timer_pending"
    cells, last = [], None
    for milestone in MILESTONES:
        row = rows[0] if milestone == 0 else first_at(rows, key, milestone)
        cells.append(kib(row["vmrss_kib"]) if row else "–")
        last = row or last
    peak = max(r["vmrss_kib"] for r in rows)
    split = f"{kib(last['anonymous_kib'])} / {kib(last['pss_file_kib'])}" if last else "–"
    print(f"| {tag} | " + " | ".join(cells) + f" | {kib(peak)} | {split} |")

    report = json.loads((raw / f"{tag}.json").read_text())["results"]
    acked = report["acked"]
    cpu = report.get("broker_cpu") or {}
    total = acked["messages"]
    base = rows[0]
    if key == "timer_pending":
        done = first_at(rows, "timer_pending", total)
    else:
        done = first_at(rows, "put_total", total)
    line = (f"- **{tag}**: {total:,} acknowledged in {report['produce_s']:.1f} s = "
            f"{acked['msgs_per_s']:,.0f} msgs/s; send p50/p99 "
            f"{report['send_latency']['p50_us']:,.0f}/{report['send_latency']['p99_us']:,.0f} µs; "
            f"broker CPU during the sends {cpu.get('us_per_message') or float('nan'):.2f} µs/msg")
    if done:
        cpu_us = (done["cpu_s"] - base["cpu_s"]) * 1e6 / total
        line += (f"; until all {'scheduled' if key == 'timer_pending' else 'stored'} "
                 f"({done['t_s'] - base['t_s']:.0f} s after the sampler started): "
                 f"{cpu_us:.2f} µs/msg")
    store = raw / f"{tag}.store-bytes"
    disk = max(r["disk_bytes"] for r in rows)
    line += f"; store on disk: peak {disk / 2**30:.2f} GiB"
    if store.exists():
        line += f", {int(store.read_text()) / 2**30:.2f} GiB at the end"
    details.append(line)
    if tag.startswith("timer-deliver"):
        delivered = [r for r in rows if r["timer_delivered"] > 0]
        if delivered:
            first, end = delivered[0], max(rows, key=lambda r: r["timer_delivered"])
            end = first_at(rows, "timer_delivered", end["timer_delivered"])
            span = end["t_s"] - first["t_s"]
            rate = (end["timer_delivered"] - first["timer_delivered"]) / span if span else 0
            peak_rss = max(r["vmrss_kib"] for r in delivered)
            details.append(
                f"  - delivery: {int(end['timer_delivered']):,} delivered over {span:.0f} s "
                f"({rate:,.0f} msgs/s between the first and last sample that moved; the due "
                f"times span the configured window); RSS during delivery peak {kib(peak_rss)} "
                f"MiB; broker CPU {(end['cpu_s'] - first['cpu_s']) * 1e6 / max(1, end['timer_delivered'] - first['timer_delivered']):.2f} µs/delivered msg")
        consume = raw / f"{tag}.consume.json"
        if consume.exists():
            c = json.loads(consume.read_text())["results"]
            e2e = c.get("end_to_end_latency") or {}
            details.append(
                f"  - consumer: {c['consumed']['messages']:,} consumed; lateness (receipt − "
                f"TIMER_DELIVER_MS) p50 {e2e.get('p50_us', 0) / 1000:,.0f} ms, p99 "
                f"{e2e.get('p99_us', 0) / 1000:,.0f} ms, p99.9 "
                f"{e2e.get('p99_9_us', 0) / 1000:,.0f} ms, max {e2e.get('max_us', 0) / 1000:,.0f} ms")
print()
print("\n".join(details))
