#!/usr/bin/env python3
"""Tables of the replication benchmark from raw/ (written by run.sh and catchup.py): one row per
run (label CONFIG-SIZE-passN), one row per configuration with medians over the valid passes,
the SYNC/ASYNC ratios against the issue's goals, and the catch-up repeats; then the same for
the haTransferBatchSize diagnostic (DIAG_RAW) and the flushDiskType diagnostic (DIAG_FLUSH_RAW)
if given.
CPU µs per message = a process's busy cores over the bench window (procstat.py) x 1e6 / acked
msgs/s. A run is invalid when its report counts any send error, or any send answered
FLUSH_DISK_TIMEOUT / FLUSH_SLAVE_TIMEOUT / SLAVE_NOT_AVAILABLE (rmq-bench counts these as
events and as acknowledged, without a latency sample): the medians leave it out.
Usage: summarize.py [RAW [DIAG_RAW [DIAG_FLUSH_RAW]]]"""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

CONFIGS = ["none", "async", "sync", "sync-syncflush", "sync-syncflush-b1m", "none-syncflush", "async-syncflush",
           "sync-masterflush", "sync-slaveflush"]
SIZES = [128, 1024]
SIDE_FILES = (".master-cpu.json", ".slave-cpu.json", ".lag.json", ".background.json",
              ".ha-segments.json", ".client-segments.json")


def fmt(v, d=0):
    return "–" if v is None else f"{v:,.{d}f}"


def pct(v):
    return "–" if v is None else f"{v * 100:.0f}%"


def load_json(path):
    return json.loads(path.read_text()) if path.exists() else None


def load_rows(raw):
    rows = []
    for path in sorted(raw.glob("*-pass*.json")):
        if path.name.endswith(SIDE_FILES):
            continue
        r = json.loads(path.read_text())
        label = r["label"]
        base, p = label.rsplit("-pass", 1)
        config, size = base.rsplit("-", 1)
        res = r["results"]
        lat = res["send_latency"] or {}
        msgs = res["acked"]["msgs_per_s"]
        mcpu = load_json(raw / f"{label}.master-cpu.json")
        scpu = load_json(raw / f"{label}.slave-cpu.json")
        lag = load_json(raw / f"{label}.lag.json")
        bg = load_json(raw / f"{label}.background.json")
        ha = load_json(raw / f"{label}.ha-segments.json")
        client = load_json(raw / f"{label}.client-segments.json")
        events, errors = res.get("events") or {}, res.get("errors") or {}
        h = res["harness_threads"][0]
        rows.append({
            "config": config, "size": int(size), "pass": int(p), "msgs": msgs,
            "p50": lat.get("p50_us"), "p99": lat.get("p99_us"), "p999": lat.get("p99_9_us"),
            "max": lat.get("max_us"),
            "mcores": mcpu and mcpu["busy_cores"], "scores": scpu and scpu["busy_cores"],
            "mus": mcpu and mcpu["busy_cores"] * 1e6 / msgs,
            "sus": scpu and scpu["busy_cores"] * 1e6 / msgs,
            "hbusy": h["utilisation"], "hwait": h["runqueue_wait_s"] / res["produce_s"],
            "mwait": mcpu and sum(t["runqueue_wait_s"] for t in mcpu["threads"]) / mcpu["wall_s"],
            "bg": bg and bg["background_busy_cores"],
            "lag_mb": lag and lag["at_end"]["lag_bytes"] / 1e6, "drain": lag and lag["drain_s"],
            "lag_ok": None if lag is None else lag["equal"],
            "events": events, "errors": errors, "valid": not events and not errors,
            "acks": ha and ha["data_segments_in_per_s"],
            "replies": client and client["data_segments_out_per_s"],
        })
    return rows


def print_runs(rows):
    print("| config | size | pass | msgs/s | p50 µs | p99 µs | p99.9 µs | max µs | master cores | slave cores "
          "| master µs/msg | slave µs/msg | harness busy | harness wait | master wait | lag at end MB "
          "| drained in s | events / errors | other load before (cores) | HA segments in/s (~Acks) "
          "| producer segments out/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for x in sorted(rows, key=lambda x: (x["size"], CONFIGS.index(x["config"]), x["pass"])):
        ev = " ".join(f"{k}={v}" for k, v in {**x["events"], **x["errors"]}.items()) or "none"
        drained = fmt(x["drain"], 2) + ("" if x["lag_ok"] in (None, True) else " (NOT equal)")
        print(f"| {x['config']} | {x['size']} | {x['pass']} | {fmt(x['msgs'])} | {fmt(x['p50'])} "
              f"| {fmt(x['p99'])} | {fmt(x['p999'])} | {fmt(x['max'])} | {fmt(x['mcores'], 2)} "
              f"| {fmt(x['scores'], 2)} | {fmt(x['mus'], 1)} | {fmt(x['sus'], 1)} | {pct(x['hbusy'])} "
              f"| {pct(x['hwait'])} | {pct(x['mwait'])} | {fmt(x['lag_mb'], 1)} | {drained} | {ev} "
              f"| {fmt(x['bg'], 2)} | {fmt(x['acks'])} | {fmt(x['replies'])} |")


class Medians:
    def __init__(self, rows):
        self.groups = defaultdict(list)
        for x in rows:
            self.groups[(x["config"], x["size"])].append(x)

    def __call__(self, config, size, key):
        xs = [x[key] for x in self.groups.get((config, size), []) if x["valid"] and x[key] is not None]
        return statistics.median(xs) if xs else None

    def print_table(self):
        print("| config | size | valid/runs | msgs/s | msgs/s per pass | p50 µs | p99 µs | p99.9 µs "
              "| master µs/msg | slave µs/msg | master+slave µs/msg |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size in SIZES:
            for c in CONFIGS:
                xs = self.groups.get((c, size), [])
                if not xs:
                    continue
                per = " / ".join(fmt(x["msgs"]) + ("" if x["valid"] else "*")
                                 for x in sorted(xs, key=lambda x: x["pass"]))
                m, s = self(c, size, "mus"), self(c, size, "sus")
                print(f"| {c} | {size} | {sum(x['valid'] for x in xs)}/{len(xs)} | {fmt(self(c, size, 'msgs'))} "
                      f"| {per} | {fmt(self(c, size, 'p50'))} | {fmt(self(c, size, 'p99'))} "
                      f"| {fmt(self(c, size, 'p999'))} | {fmt(m, 1)} | {fmt(s, 1)} "
                      f"| {fmt(m + s if m and s else m, 1)} |")
        print("\n(* = invalid run: send errors or FLUSH_*_TIMEOUT / SLAVE_NOT_AVAILABLE answers; "
              "left out of the medians)")

    def print_ratios(self, pairs):
        print("| size | B / A | msgs/s | p50 | p99 | p99.9 | throughput goal (≥ 0.7) | p99 goal (≤ 2) |")
        print("|---:|---|---:|---:|---:|---:|---|---|")
        for size in SIZES:
            for b, a, goal in pairs:
                def r(k):
                    va, vb = self(a, size, k), self(b, size, k)
                    return vb / va if va and vb else None
                if r("msgs") is None:
                    continue
                tg = ("met" if r("msgs") >= 0.7 else "NOT met") if goal else ""
                pg = ("met" if r("p99") <= 2 else "NOT met") if goal and r("p99") else ""
                print(f"| {size} | {b} / {a} | {r('msgs'):.2f} | {fmt(r('p50'), 2)} | {fmt(r('p99'), 2)} "
                      f"| {fmt(r('p999'), 2)} | {tg} | {pg} |")


def print_catchup(raw, tag, title):
    c = load_json(raw / f"catchup{tag}.json")
    if not c:
        return
    print(f"\n## {title} ({c['master_max_offset'] / 1e9:.2f} GB of CommitLog on the master, "
          f"haTransferBatchSize {c.get('ha_transfer_batch_size', 32768):,} B)\n")
    print("| repeat | caught up | slave start → equal s | first bytes at s | MB/s overall | MB/s from first bytes "
          "| dd O_DIRECT 1M MB/s (before / after) | dd 32K MB/s | catch-up / dd 1M | master RSS min–max MiB "
          "| slave RSS min–max MiB | master CPU s | slave CPU s | other load before (cores) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in c["repeats"]:
        dd1 = statistics.mean([r["dd_before"][0]["mb_per_s"], r["dd_after"][0]["mb_per_s"]])
        print(f"| {r['repeat']} | {r['equal']} | {r['total_s']:.1f} | {fmt(r['first_bytes_s'], 1)} "
              f"| {r['mb_per_s_total']:.0f} | {fmt(r['mb_per_s_transfer'])} "
              f"| {r['dd_before'][0]['mb_per_s']:.0f} / {r['dd_after'][0]['mb_per_s']:.0f} "
              f"| {r['dd_before'][1]['mb_per_s']:.0f} | {r['mb_per_s_transfer'] / dd1 * 100:.0f}% "
              f"| {r['master_rss_min_kib'] / 1024:.0f}–{r['master_rss_max_kib'] / 1024:.0f} "
              f"| {r['slave_rss_min_kib'] / 1024:.0f}–{r['slave_rss_max_kib'] / 1024:.0f} "
              f"| {r['master_cpu_s']:.1f} | {r['slave_cpu_s']:.1f} | {fmt(r.get('background_busy_cores'), 2)} |")
    fill = load_json(raw / f"catchup{tag}-fill.json")
    if fill:
        res = fill["results"]
        print(f"\nFill: {res['acked']['messages']:,} x 1 KiB acknowledged in {res['produce_s']:.1f} s "
              f"({res['acked']['msgs_per_s']:,.0f} msgs/s, {res['acked']['mb_per_s']:.0f} MB/s); "
              f"errors {res.get('errors')}, events {res.get('events')}; backlog check {res.get('backlog')}")


raw = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "raw")
rows = load_rows(raw)
med = Medians(rows)
print("## Runs\n")
print_runs(rows)
print("\n## Medians over the valid passes\n")
med.print_table()
print("\n## Ratios of the medians (issue 13's goal: SYNC_MASTER ≥ 0.7× ASYNC_MASTER msgs/s, p99 ≤ 2×)\n")
med.print_ratios([("sync", "async", True), ("sync-syncflush", "async", True), ("async", "none", False),
                  ("sync", "none", False), ("sync-syncflush", "sync", False)])
quiet = [x for x in rows if x["pass"] >= 4]
if quiet:
    # This session's passes 1-3 ran while other builds loaded the machine, 4-6 in a quieter spell.
    qmed = Medians(quiet)
    print("\n## Passes 4–6 only (the quieter second set)\n")
    qmed.print_table()
    print()
    qmed.print_ratios([("sync", "async", True), ("sync-syncflush", "async", True), ("async", "none", False),
                       ("sync", "none", False), ("sync-syncflush", "sync", False)])
print_catchup(raw, "", "Catch-up of an empty slave")
print_catchup(raw, "-b1m", "Catch-up, diagnostic: haTransferBatchSize 1 MiB")
print_catchup(raw, "-profile", "Catch-up, default settings, repeat 1 profiled (perf record 5 s on both brokers)")

DIAGS = {
    "raw-diag": ("Diagnostic: SYNC_MASTER + SYNC_FLUSH with haTransferBatchSize 32 KiB (default) vs 1 MiB",
                 [("sync-syncflush-b1m", "sync-syncflush", False)]),
    "raw-diag-flush": ("Diagnostic (1 KiB): which SYNC_FLUSH slows SYNC_MASTER + SYNC_FLUSH down "
                       "(config names: masterflush = SYNC_FLUSH on the master only, slaveflush = on the slave only)",
                       [("sync-syncflush", "async-syncflush", True), ("async-syncflush", "none-syncflush", False),
                        ("sync-masterflush", "sync-syncflush", False), ("sync-slaveflush", "sync-syncflush", False),
                        ("sync-masterflush", "none-syncflush", False)]),
}
for arg in sys.argv[2:]:
    d = Path(arg)
    if not d.is_dir():
        continue
    title, pairs = DIAGS.get(d.name, (f"Diagnostic {d.name}", []))
    drows = load_rows(d)
    if drows:
        dmed = Medians(drows)
        print(f"\n## {title}\n")
        print_runs(drows)
        print()
        dmed.print_table()
        if pairs:
            print()
            dmed.print_ratios(pairs)
    dsync = d / "disk-dsync.txt"
    if dsync.exists():
        print("\nfdatasync cost of the disk (`dd oflag=direct,dsync`, one sync per block):\n")
        print("```\n" + dsync.read_text().strip() + "\n```")
    probes = sorted(d.glob("*.fsync.txt"))
    if probes:
        print("\nfdatasyncs per broker during a 1 KiB run (`fsync-probe.sh`: ext4_sync_file_enter/exit, 5 s "
              "in the middle of a 15 s run):\n")
        print("```")
        for probe in probes:
            print(f"{probe.name.removesuffix('.fsync.txt')}:")
            print("  " + probe.read_text().strip().replace("\n", "\n  "))
        print("```")
