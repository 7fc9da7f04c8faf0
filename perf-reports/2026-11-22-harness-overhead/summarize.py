#!/usr/bin/env python3
"""Median table over the repetitions in raw/: one row per configuration (report label minus
' rep N'), medians of throughput, latency percentiles, harness CPU per message, and the share
of the run each thread spent runnable but waiting for a CPU (the shared machine's noise)."""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

raw = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "raw")
runs = defaultdict(list)
for path in sorted(raw.glob("*.json")):
    report = json.loads(path.read_text())
    runs[report["label"].rsplit(" rep ", 1)[0]].append(report)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    return "-" if value is None else f"{value:,.{digits}f}"


print(
    "| config | runs | msgs/s | msgs/s range | MB/s | p50 µs | p99 µs | p99.9 µs | harness CPU µs/msg "
    "| msgs/s per harness core | harness busy | harness wait | echo CPU µs/msg | echo wait | load 1 min |"
)
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, reports in runs.items():
    oneway = reports[0]["parameters"]["send_mode"] == "oneway"
    kind = "sent" if oneway else "acked"
    rate = median(r["results"][kind]["msgs_per_s"] for r in reports)
    rates = [r["results"][kind]["msgs_per_s"] for r in reports]
    spread = f"{min(rates):,.0f}–{max(rates):,.0f}"
    mb = median(r["results"][kind]["mb_per_s"] for r in reports)
    lat = [r["results"]["send_latency"] for r in reports]
    p50 = median(l and l["p50_us"] for l in lat)
    p99 = median(l and l["p99_us"] for l in lat)
    p999 = median(l and l["p99_9_us"] for l in lat)
    cpu = median(r["results"]["harness_cpu_us_per_message"] for r in reports)
    busy = median(r["results"]["harness_threads"][0]["utilisation"] for r in reports)
    wait = median(
        r["results"]["harness_threads"][0]["runqueue_wait_s"] / r["results"]["produce_s"] for r in reports
    )
    echo_wait = median(
        r["results"]["echo"]["usage"]["runqueue_wait_ns"] / 1e9 / r["results"]["produce_s"] for r in reports
    )
    load = median(r["machine"]["load_average"][0] for r in reports if r["machine"]["load_average"])
    echo = median(
        r["results"]["echo"]["usage"]["cpu_ns"] / 1e3 / max(r["results"]["echo"]["send_messages"], 1)
        for r in reports
    )
    print(
        f"| {name} | {len(reports)} | {fmt(rate)} | {spread} | {fmt(mb, 1)} | {fmt(p50, 1)} | {fmt(p99, 1)} | {fmt(p999, 1)} "
        f"| {fmt(cpu, 2)} | {fmt(cpu and 1e6 / cpu)} | {fmt(busy and busy * 100)}% | {fmt(wait and wait * 100)}% "
        f"| {fmt(echo, 2)} | {fmt(echo_wait and echo_wait * 100)}% | {fmt(load, 1)} |"
    )
