#!/usr/bin/env python3
"""Samples a broker process once a second until it exits or STOP_FILE appears.

Per sample (one CSV row): seconds since start, VmRSS and the smaps_rollup split (Rss,
Pss_Anon, Pss_File, Anonymous), the process's CPU seconds (utime+stime), the messages stored
(`putMessageTimesTotal` of `rmq admin broker-status --json`), the timer pending, delivered
and not-yet-enqueued counts from `rmq admin timer-status --json`, and the store's disk use
(st_blocks of every file under the store dir, every 5th sample).

  sample.py PID RMQ_BIN BROKER_ADDR STORE_DIR OUT.csv STOP_FILE
"""
import json
import os
import subprocess
import sys
import time

pid, rmq, broker, store, out_path, stop_file = sys.argv[1:7]
ticks = os.sysconf("SC_CLK_TCK")


def kib(text, key):
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return -1


def disk_bytes(root):
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def find_key(value, key):
    if isinstance(value, dict):
        if key in value:
            return value[key]
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found = find_key(item, key)
            if found is not None:
                return found
    return None


def put_total():
    try:
        done = subprocess.run([rmq, "admin", "broker-status", "-b", broker, "--json"],
                              capture_output=True, text=True, timeout=5)
        return int(find_key(json.loads(done.stdout), "putMessageTimesTotal"))
    except (subprocess.SubprocessError, ValueError, TypeError, OSError):
        return -1


def timer_status():
    try:
        done = subprocess.run([rmq, "admin", "timer-status", "-b", broker, "--json"],
                              capture_output=True, text=True, timeout=5)
        report = json.loads(done.stdout)
        delivered = sum(s.get("deliveredSinceStart", 0) for s in report.get("shards", []))
        unenqueued = sum(s.get("unenqueued", 0)
                      for s in report.get("shards", []))
        return report.get("pending", -1), delivered, unenqueued
    except (subprocess.SubprocessError, ValueError, OSError):
        return -1, -1, -1


with open(out_path, "w", buffering=1) as out:
    out.write("t_s,vmrss_kib,rss_kib,pss_anon_kib,pss_file_kib,anonymous_kib,cpu_s,"
              "put_total,timer_pending,timer_delivered,timer_unenqueued,disk_bytes\n")
    start = time.time()
    disk = disk_bytes(store)
    n = 0
    while not os.path.exists(stop_file):
        tick = time.time()
        try:
            with open(f"/proc/{pid}/status") as f:
                status = f.read()
            with open(f"/proc/{pid}/smaps_rollup") as f:
                rollup = f.read()
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            break
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        puts = put_total()
        pending, delivered, unenqueued = timer_status()
        if n % 5 == 0:
            disk = disk_bytes(store)
        n += 1
        out.write(f"{tick - start:.1f},{kib(status, 'VmRSS')},{kib(rollup, 'Rss')},"
                  f"{kib(rollup, 'Pss_Anon')},{kib(rollup, 'Pss_File')},"
                  f"{kib(rollup, 'Anonymous')},{cpu:.2f},{puts},{pending},{delivered},{unenqueued},"
                  f"{disk}\n")
        time.sleep(max(0.0, 1.0 - (time.time() - tick)))
