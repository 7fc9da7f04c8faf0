#!/usr/bin/env python3
"""Raw 4 KiB write + fdatasync latency on the store's filesystem (the yardstick of the SYNC_FLUSH
goal), for SECONDS, in two shapes: appending to a fresh file (each fdatasync also commits the
size change), overwriting a file whose 64 MiB were written and synced first, and that overwrite
through O_DIRECT from an aligned buffer (the CommitLog's own shape). Prints count, p50, p99 and p99.9 in microseconds for each."""
import mmap
import os
import sys
import time

directory, seconds = sys.argv[1], float(sys.argv[2])
PREFILL_BYTES = 64 * 1024 * 1024
block = b"\x5a" * 4096


def probe(prefilled, direct=False):
    path = os.path.join(directory, "raw-fsync-probe")
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
    data = block
    if direct:
        data = mmap.mmap(-1, len(block))  # page-aligned, as O_DIRECT needs
        data.write(block)
    if prefilled:
        chunk = b"\0" * (1024 * 1024)
        for _ in range(PREFILL_BYTES // len(chunk)):
            os.write(fd, chunk)
        os.fsync(fd)
    if direct:
        os.close(fd)
        fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
    samples = []
    offset = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter_ns()
        os.pwrite(fd, data, offset)
        os.fdatasync(fd)
        samples.append((time.perf_counter_ns() - start) / 1000)
        offset = (offset + len(block)) % PREFILL_BYTES if prefilled else offset + len(block)
    os.close(fd)
    os.unlink(path)
    samples.sort()
    pct = lambda p: samples[min(len(samples) - 1, int(len(samples) * p))]
    shape = ("O_DIRECT " if direct else "") + ("overwrite" if prefilled else "append")
    print(f"raw 4KiB write+fdatasync ({shape}): {len(samples)} in {seconds:.0f}s, "
          f"p50 {pct(0.5):.1f} p99 {pct(0.99):.1f} p99.9 {pct(0.999):.1f} us")


probe(False)
probe(True)
probe(True, direct=True)
