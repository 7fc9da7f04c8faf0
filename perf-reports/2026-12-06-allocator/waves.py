#!/usr/bin/env python3
"""Waves of connections against one `rmq standalone`: each wave opens N connections in
batches (each sends a producer HEART_BEAT and reads the answer), keeps them all open, then
closes them a batch at a time. Records the broker's VmRSS at start, at each wave's peak (all N open and
answered), settled after the wave (lowest of 10 samples over 1 s once the broker closed its
sockets) and late (3 s after that). Writes one JSON object.
Usage: waves.py RMQ_BIN OUT.json [--shards 2] [--waves 5] [--connections 10000]"""
import argparse
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("rmq")
ap.add_argument("out")
ap.add_argument("--shards", default="2")
ap.add_argument("--waves", type=int, default=5)
ap.add_argument("--connections", type=int, default=10000)
ap.add_argument("--batch", type=int, default=500)
args = ap.parse_args()

store = tempfile.mkdtemp(prefix="rmq-waves-", dir=os.environ.get("WORK_DIR", "target"))
conf = os.path.join(store, "broker.conf")
with open(conf, "w") as f:
    f.write("brokerName=broker-a\nmappedFileSizeCommitLog=268435456\n")
env = dict(os.environ, RUST_LOG="warn")
broker = subprocess.Popen(
    [args.rmq, "standalone", "--namesrv-port", "0", "--broker-port", "0",
     "--store-dir", os.path.join(store, "store"), "-c", conf, "--shards", args.shards],
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
addr = None
for line in broker.stdout:
    if line.startswith("READY broker"):
        addr = line.split()[2]
        break
host, port = addr.rsplit(":", 1)
port = int(port)


def rss_kib():
    status = open(f"/proc/{broker.pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def fds():
    return len(os.listdir(f"/proc/{broker.pid}/fd"))


def heartbeat(opaque, client_id, group):
    body = json.dumps({"clientID": client_id, "consumerDataSet": [],
                       "producerDataSet": [{"groupName": group}]}).encode()
    header = json.dumps({"code": 34, "language": "JAVA", "version": 0, "opaque": opaque,
                         "flag": 0, "extFields": {}}).encode()
    return struct.pack(">II", 4 + len(header) + len(body), len(header)) + header + body


def read_reply_code(sock):
    got = b""
    while len(got) < 4 or len(got) < 4 + struct.unpack(">I", got[:4])[0]:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("broker closed a wave connection")
        got += chunk
    header_len = struct.unpack(">I", got[4:8])[0] & 0xFFFFFF
    return json.loads(got[8:8 + header_len])["code"]


time.sleep(1)
fds_idle = fds()
result = {"rmq": args.rmq, "shards": int(args.shards), "connections": args.connections,
          "start_rss_kib": rss_kib(), "waves": []}
for wave in range(1, args.waves + 1):
    started = time.time()
    open_socks = []
    for first in range(0, args.connections, args.batch):
        batch = [socket.create_connection((host, port))
                 for _ in range(min(args.batch, args.connections - first))]
        for index, sock in enumerate(batch):
            # One producer group per batch: a group holds at most 4096 clients.
            sock.sendall(heartbeat(first + index, f"w{wave}@{first + index}", f"Waves{first}"))
        for sock in batch:
            code = read_reply_code(sock)
            if code != 0:
                raise SystemExit(f"heartbeat answered with code {code}")
        open_socks += batch
    peak = rss_kib()
    open_secs = time.time() - started
    # Closed a batch at a time, each once the broker closed the previous one: all at once
    # overflows the notices of closed connections to the control shard (dropped when its
    # channel is full; those clients then expire after 120 s, which would count here).
    while open_socks:
        for sock in open_socks[-args.batch:]:
            sock.close()
        del open_socks[-args.batch:]
        while fds() > fds_idle + len(open_socks) + 8:
            time.sleep(0.01)
    samples = []
    for _ in range(10):
        time.sleep(0.1)
        samples.append(rss_kib())
    time.sleep(2)
    late = rss_kib()
    result["waves"].append({"wave": wave, "peak_rss_kib": peak, "settled_rss_kib": min(samples),
                            "late_rss_kib": late, "open_secs": round(open_secs, 2)})
    print(f"wave {wave}: peak {peak // 1024} MiB, settled {min(samples) // 1024} MiB, "
          f"late {late // 1024} MiB, {open_secs:.1f} s to open", flush=True)
broker.terminate()
broker.wait()
shutil.rmtree(store, ignore_errors=True)
with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
