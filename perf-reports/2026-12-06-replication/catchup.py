#!/usr/bin/env python3
"""Catch-up of an empty slave from a filled master, against the disk's raw O_DIRECT read rate.

1. A fresh NameServer (core 0) and an ASYNC_MASTER, ASYNC_FLUSH, 1 shard, 1 GiB CommitLog
   segments, on core 1, store under target/perf-ha/catchup/ (the real disk).
2. Fill it: `rmq-bench --mode backlog --count $COUNT --size 1024` (async, 4 connections x 64 in
   flight, harness on core 0). Then its commitLogMaxOffset is read (broker-status).
3. REPEATS times: `dd if=<first full master segment> of=/dev/null bs=1M iflag=direct` (and
   bs=32K, the default haTransferBatchSize); then an empty SLAVE (1 shard, core 0, fresh store)
   is started and its commitLogMaxOffset polled every 0.2 s (`rmq admin broker-status`) until it
   equals the master's. Meanwhile the master's and the slave's VmRSS are sampled every 0.5 s
   (/proc/PID/status) and both processes' CPU is taken before/after (procstat.py). The slave is
   stopped and its store deleted before the next repeat.
Writes OUT/catchup.json (every sample) and OUT/catchup-*.log (broker logs).
Usage: catchup.py OUT   (env: RMQ_BIN, BENCH_BIN, COUNT=2100000, REPEATS=3; HA_BATCH=bytes sets
haTransferBatchSize on both brokers, TAG=-x names the files catchup-x*.json for such a run;
SHARDS=2 runs both brokers with 2 shards, each free to use both cores: the backlog spreads over
both shards' CommitLogs and each shard replicates on its own connection; SLAVE_STORE_DIR=path
puts the slave's stores there, e.g. on another disk)."""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

here = Path(__file__).resolve().parent
out = Path(sys.argv[1] if len(sys.argv) > 1 else here / "raw")
out.mkdir(parents=True, exist_ok=True)
rmq = os.environ.get("RMQ_BIN", "target/release/rmq")
bench = os.environ.get("BENCH_BIN", "target/release/rmq-bench")
count = int(os.environ.get("COUNT", "2100000"))
repeats = int(os.environ.get("REPEATS", "3"))
# HA_BATCH=bytes sets haTransferBatchSize on both brokers (default: the broker's, 32 KiB);
# TAG names the output files (catchup{TAG}.json, ...).
ha_batch = os.environ.get("HA_BATCH")
extra_conf = f"haTransferBatchSize={ha_batch}\n" if ha_batch else ""
tag = os.environ.get("TAG", "")
shards = int(os.environ.get("SHARDS", "1"))
# SLAVE_STORE_DIR=path puts the slave's store on another file system (another disk), so the
# master's reads and the slave's writes do not share one device as they do by default.
slave_root = Path(os.environ["SLAVE_STORE_DIR"]) if os.environ.get("SLAVE_STORE_DIR") else None
# With one shard the master runs on core 1 and the slave on core 0; with more, both may use all.
master_core, slave_core = ("1", "0") if shards == 1 else ("0-1", "0-1")
procstat = here.parent / "2026-11-22-broker" / "procstat.py"
work = Path("target/perf-ha/catchup")
env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
procs = []


def log(msg):
    print(time.strftime("%H:%M:%S"), "catchup:", msg, file=sys.stderr, flush=True)


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start(args, name, core):
    stdout = open(work / f"{name}.out", "w")
    stderr = open(work / f"{name}.log", "w")
    p = subprocess.Popen(["taskset", "-c", str(core), *args], stdout=stdout, stderr=stderr, env=env)
    procs.append(p)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"^READY \S+ (\S+)$", (work / f"{name}.out").read_text(), re.M)
        if m:
            return p, m.group(1)
        if p.poll() is not None:
            break
        time.sleep(0.1)
    sys.exit(f"{name} did not start:\n" + (work / f"{name}.log").read_text()[-3000:])


def stop(p):
    p.terminate()
    p.wait(timeout=60)
    procs.remove(p)
    return p.returncode


def write_conf(path, role, broker_id, port, ha_port, store):
    path.write_text(
        f"brokerClusterName=DefaultCluster\nbrokerName=broker-a\nbrokerId={broker_id}\n"
        f"brokerRole={role}\nflushDiskType=ASYNC_FLUSH\nbrokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\n"
        f"listenPort={port}\nhaListenPort={ha_port}\nstorePathRootDir={store}\n"
        f"mappedFileSizeCommitLog=1073741824\n{extra_conf}")


def max_offset(addr):
    r = subprocess.run([rmq, "admin", "broker-status", "-b", addr], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        k, _, v = line.partition(":")
        if k.strip() == "commitLogMaxOffset":
            return int(v.strip())
    return None


def rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None


def snap(pid):
    return json.loads(subprocess.run([sys.executable, procstat, str(pid)], capture_output=True,
                                     text=True, check=True).stdout)


def cpu_s(before, after):
    total = 0.0
    for tid, a in after["threads"].items():
        b = before["threads"].get(tid, {"cpu_ns": 0})
        total += (a["cpu_ns"] - b["cpu_ns"]) / 1e9
    return total


def busy_cores(seconds=2.0):
    def snap():
        f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(f[:8]), f[3] + f[4]
    a = snap()
    time.sleep(seconds)
    b = snap()
    return round(((b[0] - a[0]) - (b[1] - a[1])) / (b[0] - a[0]) * os.cpu_count(), 2)


def quiet_gate():
    """Waits (up to GATE_MAX s) until other work uses < GATE_BUSY cores; returns (busy, waited)."""
    waited = 0
    while True:
        busy = busy_cores()
        if busy < float(os.environ.get("GATE_BUSY", "0.5")) or waited >= int(os.environ.get("GATE_MAX", "180")):
            return busy, waited
        time.sleep(8)
        waited += 10


def dd(path, bs):
    r = subprocess.run(["dd", f"if={path}", "of=/dev/null", f"bs={bs}", "iflag=direct"],
                       capture_output=True, text=True)
    line = r.stderr.strip().splitlines()[-1]
    # "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 2.5 s, 430 MB/s"
    m = re.match(r"(\d+) bytes .* copied, ([\d.]+) s", line)
    nbytes, secs = int(m.group(1)), float(m.group(2))
    return {"bs": bs, "bytes": nbytes, "s": secs, "mb_per_s": nbytes / secs / 1e6, "line": line}


def main():
    global slave_root
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    slave_root = slave_root or work
    result = {"shards": shards, "slave_store_dir": str(slave_root), "count": count, "ha_transfer_batch_size": int(ha_batch) if ha_batch else 32768, "repeats": []}
    ns_p, ns = start([rmq, "namesrv", "--port", "0", "--bind", "127.0.0.1", "--kv-config",
                      str(work / "kv.json")], "namesrv", 0)
    mport, mha, sport, sha = free_ports(4)
    write_conf(work / "master.conf", "ASYNC_MASTER", 0, mport, mha, work / "master")
    m_p, maddr = start([rmq, "broker", "-c", str(work / "master.conf"), "-n", ns, "--shards", str(shards)],
                       "master", master_core)
    time.sleep(1)
    result["fill_background_busy_cores"], result["fill_gate_waited_s"] = quiet_gate()
    log(f"filling the master with {count} x 1 KiB")
    t = time.monotonic()
    subprocess.run([bench, "--mode", "backlog", "--namesrv", ns, "--send-mode", "async",
                    "--producers", "4", "--connections", "4", "--inflight", "64", "--size", "1024",
                    "--count", str(count), "--threads", "1", "--first-core", "0",
                    "--store-dir", str(work / "master"), "--o-direct", "on", "--quiet",
                    "--label", f"catchup{tag}-fill", "--report", str(out / f"catchup{tag}-fill.json")],
                   check=True)
    result["fill_s"] = time.monotonic() - t
    time.sleep(3)  # the ASYNC_FLUSH tail reaches the disk
    master_end = max_offset(maddr)
    result["master_max_offset"] = master_end
    result["master_rss_kib_after_fill"] = rss_kib(m_p.pid)
    segments = sorted(p for p in glob.glob(str(work / "master" / "**" / "*"), recursive=True)
                      if os.path.isfile(p) and os.path.getsize(p) == 1 << 30)
    # Segments wholly written (named by their start offset): the ones dd reads. With one shard
    # the name and the max offset tell; with more (one directory per shard, the max offset a
    # sum over shards) every segment but the last of its directory.
    by_dir = {}
    for p in segments:
        if os.path.basename(p).isdigit():
            by_dir.setdefault(os.path.dirname(p), []).append(p)
    full = sorted(p for ps in by_dir.values()
                  for p in sorted(ps, key=lambda q: int(os.path.basename(q)))[:-1]
                  if shards > 1 or int(os.path.basename(p)) + (1 << 30) <= master_end)
    result["segments"], result["full_segments"] = segments, full
    log(f"master holds {master_end / 1e9:.2f} GB in {len(segments)} x 1 GiB segment files, "
        f"{len(full)} full")
    if not full:
        sys.exit("no full segment to read with dd: raise COUNT")

    for rep in range(1, repeats + 1):
        busy, waited = quiet_gate()
        log(f"repeat {rep}: background {busy} cores, waited {waited} s")
        seg = full[(rep - 1) % len(full)]
        r = {"repeat": rep, "background_busy_cores": busy, "gate_waited_s": waited, "dd_segment": seg, "dd_before": [dd(seg, "1M"), dd(seg, "32K")]}
        log(f"repeat {rep}: dd O_DIRECT {seg}: {r['dd_before'][0]['mb_per_s']:.0f} MB/s (1M), "
            f"{r['dd_before'][1]['mb_per_s']:.0f} MB/s (32K)")
        slave_store = slave_root / f"slave{rep}"
        shutil.rmtree(slave_store, ignore_errors=True)
        write_conf(work / "slave.conf", "SLAVE", 1, sport, sha, slave_store)
        m_before = snap(m_p.pid)
        t0 = time.monotonic()
        s_p, saddr = start([rmq, "broker", "-c", str(work / "slave.conf"), "-n", ns, "--shards", str(shards)],
                           f"slave{rep}", slave_core)
        r["slave_ready_s"] = time.monotonic() - t0
        s_before = snap(s_p.pid)
        rss, offsets = [], []
        done = threading.Event()

        def sample_rss():
            while not done.is_set():
                rss.append((round(time.monotonic() - t0, 2), rss_kib(m_p.pid), rss_kib(s_p.pid)))
                done.wait(0.5)

        sampler = threading.Thread(target=sample_rss)
        sampler.start()
        last_progress = time.monotonic()
        prev = -1
        perf_started = None
        perf_s = float(os.environ.get("PERF_S", "0"))
        while True:
            off = max_offset(saddr)
            now = time.monotonic()
            offsets.append((round(now - t0, 3), off))
            if off is not None and off != prev:
                prev, last_progress = off, now
            if perf_s and rep == 1 and perf_started is None and off:
                # PERF_S=s: profile both processes for s seconds once the transfer runs.
                perf_started = [subprocess.Popen(
                    ["perf", "record", "-e", "cpu-clock", "-F", "499", "-g", "-o", str(out / f"catchup{tag}-perf-{who}.data"),
                     "-p", str(pid), "--", "sleep", str(perf_s)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for who, pid in (("master", m_p.pid), ("slave", s_p.pid))]
            if off == master_end:
                break
            if now - last_progress > 60:
                r["stalled"] = True
                log(f"slave stalled at {off} of {master_end} for 60 s")
                break
            time.sleep(0.2)
        t_end = time.monotonic()
        for who, p in zip(("master", "slave"), perf_started or []):
            p.wait()
            rep_txt = subprocess.run(
                ["perf", "report", "-i", str(out / f"catchup{tag}-perf-{who}.data"), "--stdio", "--no-children",
                 "--sort", "symbol", "-g", "none", "--percent-limit", "0.5"],
                capture_output=True, text=True).stdout
            (out / f"catchup{tag}-perf-{who}.txt").write_text(rep_txt)
        done.set()
        sampler.join()
        m_after, s_after = snap(m_p.pid), snap(s_p.pid)
        wall = t_end - t0
        first = next((t for t, o in offsets if o), None)
        r.update({
            "equal": offsets[-1][1] == master_end,
            "total_s": wall,
            "first_bytes_s": first,
            "transfer_s": wall - first if first is not None else None,
            "mb_per_s_total": master_end / wall / 1e6,
            "mb_per_s_transfer": master_end / (wall - first) / 1e6 if first else None,
            "master_cpu_s": cpu_s(m_before, m_after), "slave_cpu_s": cpu_s(s_before, s_after),
            "master_rss_kib": [x[1] for x in rss if x[1]], "slave_rss_kib": [x[2] for x in rss if x[2]],
            "rss_samples": rss, "offset_samples": offsets,
        })
        r["master_rss_min_kib"], r["master_rss_max_kib"] = min(r["master_rss_kib"]), max(r["master_rss_kib"])
        r["slave_rss_min_kib"], r["slave_rss_max_kib"] = min(r["slave_rss_kib"]), max(r["slave_rss_kib"])
        r["dd_after"] = [dd(full[rep % len(full)], "1M")]
        log(f"repeat {rep}: slave equal={r['equal']} in {wall:.1f} s (first bytes at {first} s): "
            f"{r['mb_per_s_total']:.0f} MB/s overall, {r['mb_per_s_transfer'] or 0:.0f} MB/s transfer; "
            f"master RSS {r['master_rss_min_kib']}-{r['master_rss_max_kib']} KiB; "
            f"dd after {r['dd_after'][0]['mb_per_s']:.0f} MB/s")
        r["slave_exit"] = stop(s_p)
        shutil.copy(work / f"slave{rep}.log", out / f"catchup{tag}-slave{rep}.log")
        shutil.rmtree(slave_store, ignore_errors=True)
        result["repeats"].append(r)
        (out / f"catchup{tag}.json").write_text(json.dumps(result, indent=1))
        if r.get("stalled"):
            break
    result["master_exit"] = stop(m_p)
    stop(ns_p)
    shutil.copy(work / "master.log", out / f"catchup{tag}-master.log")
    (out / f"catchup{tag}.json").write_text(json.dumps(result, indent=1))
    shutil.rmtree(work, ignore_errors=True)


try:
    main()
finally:
    for p in procs:
        p.terminate()
