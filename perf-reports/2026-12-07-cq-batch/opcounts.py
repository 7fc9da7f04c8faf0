#!/usr/bin/env python3
"""io_uring operations per second of a trace.sh run, by opcode: submitted, punted to an io_uring
worker thread (io_uring_queue_async_work), and submit-to-complete latency; plus the run's
msgs/s and broker CPU per message. Usage: opcounts.py OUT [OUT...]"""
import collections, json, re, sys

for out in sys.argv[1:]:
    submitted, punted = collections.Counter(), collections.Counter()
    started, latency = {}, collections.defaultdict(list)
    first = last = None
    for line in open(f"{out}/trace.txt"):
        m = re.search(r" ([0-9]+\.[0-9]+): +io_uring:io_uring_(\w+): .*?user_data (0x[0-9a-f]+)", line)
        if not m:
            continue
        t, kind, user_data = float(m.group(1)), m.group(2), m.group(3)
        first = t if first is None else first
        last = t
        op = re.search(r"opcode ([A-Z_]+)", line)
        if kind == "submit_req":
            submitted[op.group(1)] += 1
            started[user_data] = (t, op.group(1))
        elif kind == "queue_async_work":
            punted[op.group(1)] += 1
        elif kind == "complete" and user_data in started:
            t0, name = started.pop(user_data)
            latency[name].append((t - t0) * 1e6)
    span = (last - first) if first is not None and last > first else 1.0
    results = json.load(open(f"{out}/r.json"))["results"]
    print(f"== {out}: {results['acked']['msgs_per_s']:,.0f} msgs/s, broker "
          f"{results['broker_cpu']['us_per_message']:.2f} µs/msg, trace {span:.2f} s")
    print(f"{'op':10} {'submitted/s':>12} {'punted/s':>10} {'p50 µs':>8} {'p99 µs':>8}")
    for name, n in submitted.most_common():
        lat = sorted(latency.get(name, [0]))
        print(f"{name:10} {n / span:12,.0f} {punted[name] / span:10,.0f} "
              f"{lat[len(lat) // 2]:8.0f} {lat[int(len(lat) * 0.99)]:8.0f}")
