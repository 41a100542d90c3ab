#!/usr/bin/env python3
"""How the disk under DIR answers durable 16 KiB writes when several files sync at once, the
pattern of one shard with several partitions (each partition's log syncs on its own).

Every file is pre-written with zeros first (so the timed writes are pure overwrites, as the
log's are), then each mode runs ROUNDS rounds over FILES files:

  threads    one thread per file: O_DIRECT write + fdatasync, all files at once (the broker today)
  serial     one thread: write each file, then fdatasync each file in turn
  syncfs     one thread: write each file, then one syncfs() for all of them

Prints per-operation latency (threads) or per-round latency (serial, syncfs) percentiles.
Usage: bench/fsync_concurrency.py [--dir DIR] [--files 4] [--rounds 2000] [--modes threads,serial,syncfs]
The directory must be on the disk to measure (not tmpfs)."""

import argparse
import ctypes
import mmap
import os
import tempfile
import threading
import time

BLOCK = 16384
FILE_BYTES = 64 << 20
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def open_prewritten(path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    zeros = mmap.mmap(-1, 1 << 20)  # page-aligned, as O_DIRECT needs
    for off in range(0, FILE_BYTES, 1 << 20):
        os.pwritev(fd, [zeros], off)
    os.fdatasync(fd)
    return fd


def summary(name, files, latencies, elapsed, unit):
    a = sorted(latencies)

    def q(f):
        return a[min(len(a) - 1, int(f * len(a)))] * 1e3

    print(
        f"{name:8s} files={files} {unit}/s={len(a) / elapsed:.0f} p50={q(0.5):.3f}ms p90={q(0.9):.3f} "
        f"p99={q(0.99):.3f} p99.9={q(0.999):.3f} max={a[-1] * 1e3:.3f}"
    )


def run_threads(fds, rounds):
    lat = [[] for _ in fds]

    def work(i):
        buf = mmap.mmap(-1, BLOCK)
        buf.write(b"t" * BLOCK)
        off = 0
        for _ in range(rounds):
            t = time.perf_counter()
            os.pwritev(fds[i], [buf], off)
            os.fdatasync(fds[i])
            lat[i].append(time.perf_counter() - t)
            off = (off + BLOCK) % FILE_BYTES

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(fds))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for per in lat for x in per], time.perf_counter() - t0


def run_rounds(fds, rounds, sync):
    buf = mmap.mmap(-1, BLOCK)
    buf.write(b"r" * BLOCK)
    lat, off = [], 0
    t0 = time.perf_counter()
    for _ in range(rounds):
        t = time.perf_counter()
        for fd in fds:
            os.pwritev(fd, [buf], off)
        sync(fds)
        lat.append(time.perf_counter() - t)
        off = (off + BLOCK) % FILE_BYTES
    return lat, time.perf_counter() - t0


def sync_each(fds):
    for fd in fds:
        os.fdatasync(fd)


def sync_fs(fds):
    if libc.syncfs(fds[0]) != 0:
        raise OSError(ctypes.get_errno(), "syncfs")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=".")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--modes", default="threads,serial,syncfs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fsync-concurrency-", dir=args.dir) as d:
        fds = [open_prewritten(os.path.join(d, f"f{i}")) for i in range(args.files)]
        try:
            for mode in args.modes.split(","):
                if mode == "threads":
                    lat, el = run_threads(fds, args.rounds)
                    summary(mode, args.files, lat, el, "ops")
                elif mode == "serial":
                    lat, el = run_rounds(fds, args.rounds, sync_each)
                    summary(mode, args.files, lat, el, "rounds")
                elif mode == "syncfs":
                    lat, el = run_rounds(fds, args.rounds, sync_fs)
                    summary(mode, args.files, lat, el, "rounds")
                else:
                    raise SystemExit(f"unknown mode {mode}")
        finally:
            for fd in fds:
                os.close(fd)


if __name__ == "__main__":
    main()
