#!/usr/bin/env python3
"""Summarises a backlog run (run.sh): the fill, the fill rate and RSS by tenths of the backlog,
the tail runs with and without the cold-head consumer, and the restart/crash events.
Usage: summarize.py RAW_DIR  (prints Markdown)."""
import json
import os
import sys

raw = sys.argv[1]


def load(name):
    path = os.path.join(raw, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def lat(r, key="send_latency"):
    s = r["results"].get(key)
    if not s:
        return ["-"] * 4
    return [f"{s[k] / 1000:,.1f}" for k in ("p50_us", "p99_us", "p99_9_us", "max_us")]


def mib(b):
    return f"{b / 1048576:,.1f}"


out = []
fill = load("fill")
if fill:
    r = fill["results"]
    out.append("## Fill\n")
    out.append("| messages | seconds | msgs/s | MB/s (bodies) | p50 ms | p99 ms | p99.9 ms | max ms | errors | stored = acked |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    b = r.get("backlog") or {}
    out.append(
        f"| {r['acked']['messages']:,} | {r['produce_s']:,.0f} | {r['acked']['msgs_per_s']:,.0f} | "
        f"{r['acked']['mb_per_s']:,.1f} | " + " | ".join(lat(fill)) +
        f" | {sum(r['errors'].values()) if r['errors'] else 0} | {b.get('stored', '-'):,} = {b.get('acked', '-'):,}: "
        f"{'match' if b.get('matches') else 'MISMATCH'} |"
    )
    rss = r.get("broker_rss")
    if rss:
        out.append(
            f"\nBroker RSS over the fill: {mib(rss['first_bytes'])} MiB at start, max "
            f"{mib(rss['max_bytes'])} MiB, {mib(rss['last_bytes'])} MiB at the end.\n"
        )
    # By tenths of the backlog: rate, worst per-second p99, RSS.
    series = [s for s in fill["time_series"] if s["duration_s"] >= 0.25]
    total = series[-1]["acked_total"] if series else 0
    if total:
        out.append("| backlog (messages) | seconds | msgs/s (median of seconds) | min msgs/s | worst per-second p99 ms | RSS MiB (max) | broker CPU (cores, median) |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for tenth in range(10):
            lo, hi = total * tenth / 10, total * (tenth + 1) / 10
            part = [s for s in series if lo < s["acked_total"] <= hi]
            if not part:
                continue
            rates = sorted(s["acked_msgs_per_s"] for s in part)
            p99 = max((s["send_p99_us"] or 0) for s in part)
            rss = max((s.get("broker_rss_bytes") or 0) for s in part)
            cpu = sorted((s.get("broker_cpu_cores") or 0) for s in part)
            out.append(
                f"| {lo / 1e6:,.0f}M–{hi / 1e6:,.0f}M | {len(part)} | {rates[len(rates) // 2]:,.0f} | "
                f"{rates[0]:,.0f} | {p99 / 1000:,.1f} | {mib(rss)} | {cpu[len(cpu) // 2]:.2f} |"
            )
        out.append("")

# prealloc-compare.sh: the same fill with the unpaced and the paced segment zero-fill.
rows = []
for name in sorted(f[:-5] for f in os.listdir(raw) if f.startswith("roll-") and f.endswith(".json")):
    t = load(name)
    r = t["results"]
    series = [x for x in t["time_series"] if x["duration_s"] >= 0.5]
    rates = sorted(x["acked_msgs_per_s"] for x in series)
    median = rates[len(rates) // 2] if rates else 0
    slow = sum(1 for x in rates if x < 0.8 * median)
    cpu = sorted((x.get("broker_cpu_cores") or 0) for x in series)
    rows.append(
        f"| {name} | {r['acked']['messages']:,} | {r['produce_s']:,.1f} | {r['acked']['msgs_per_s']:,.0f} | "
        f"{median:,.0f} | {rates[0] if rates else 0:,.0f} | {slow} | " + " | ".join(lat(t)) +
        f" | {cpu[len(cpu) // 2] if cpu else 0:.2f} |"
    )
if rows:
    out.append("## Fill across segment rolls: before and after concurrent consume-queue writes (roll-compare.sh)\n")
    out.append("| run | messages | seconds | msgs/s | median per-second msgs/s | min per-second msgs/s | seconds < 80 % of median | p50 ms | p99 ms | p99.9 ms | max ms | broker CPU (cores, median) |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    out.extend(rows)
    out.append("")

rows = []
for name in ("tail-alone-1", "tail-with-cold-consumer", "tail-alone-2"):
    t = load(name)
    if not t:
        continue
    r = t["results"]
    rss = r.get("broker_rss") or {}
    cpu = sorted((s.get("broker_cpu_cores") or 0) for s in t["time_series"] if s["duration_s"] >= 0.5)
    rows.append(
        f"| {name} | {r['acked']['msgs_per_s']:,.0f} | " + " | ".join(lat(t)) +
        f" | {r['consumed']['msgs_per_s']:,.0f} | {r['consumed']['mb_per_s']:,.1f} | "
        f"{mib(rss['max_bytes']) if rss else '-'} | {cpu[len(cpu) // 2] if cpu else 0:.2f} | "
        f"{sum(r['errors'].values()) if r['errors'] else 0} |"
    )
if rows:
    out.append("## Tail writes with and without a cold-head reader\n")
    out.append("| run | produced msgs/s | send p50 ms | p99 ms | p99.9 ms | max ms | consumed msgs/s | consumed MB/s | broker RSS max MiB | broker CPU (cores, median) | errors |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    out.extend(rows)
    out.append("")

events = os.path.join(raw, "events.txt")
if os.path.exists(events):
    out.append("## Events (restart, crash, disk)\n")
    out.append("```")
    with open(events) as f:
        out.append(f.read().rstrip())
    out.append("```")
crash = load("crash-load")
if crash:
    out.append(
        f"\nCrash-load producer: {crash['results']['acked']['messages']:,} acknowledged before the "
        f"SIGKILL ({sum(crash['results']['errors'].values()) if crash['results']['errors'] else 0} errors after it)."
    )


def max_sum(name):
    path = os.path.join(raw, name + ".topic-status.txt")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        last = f.read().strip().splitlines()[-1]
    return int(last.split("maxOffsetSum=")[1])


before, after = max_sum("restart"), max_sum("recover")
if crash and before is not None and after is not None:
    acked = crash["results"]["acked"]["messages"]
    rate = crash["parameters"].get("rate") or crash["results"]["acked"]["msgs_per_s"]
    commit_ms = int((crash.get("broker_config") or {}).get("commitIntervalCommitLog", 10))
    stored = after - before
    out.append(
        f"After recovery the topic holds {stored:,} of the crash-load messages: "
        f"{acked:,} were acknowledged, so {max(acked - stored, 0):,} acknowledged messages were lost. "
        f"ASYNC_FLUSH acknowledges before the O_DIRECT write, which follows within "
        f"`commitIntervalCommitLog` ({commit_ms} ms): at the producer's {rate:,.0f} msgs/s a SIGKILL may lose up "
        f"to ~{rate * commit_ms / 1000:,.0f} of them (a power loss: up to `flushIntervalCommitLog`, 500 ms). "
        f"SYNC_FLUSH loses none."
    )
print("\n".join(out))
