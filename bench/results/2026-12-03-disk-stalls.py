#!/usr/bin/env python3
"""Does the disk itself stall under the broker's write pattern, with no broker?

Two threads on DIR for SECONDS:
  streamer  sequential O_DIRECT writes of 1 MiB into a new file at RATE MB/s (the bytes a broker
            writes at 150 k msgs/s of 1 KiB: data plus the zeros written ahead), fallocate'd
            ahead in 16 MiB steps as the log's prefill does
  syncer    16 KiB O_DIRECT overwrite + fdatasync of a pre-written file, back to back (an
            acks=all round's device flush)
Prints, per second, the syncer's count, p50 and max latency (ms) and the MB the streamer wrote.
Usage: 2026-12-03-disk-stalls.py DIR [RATE_MB=300] [SECONDS=40]"""
import mmap, os, sys, threading, time

d = sys.argv[1]
rate = float(sys.argv[2]) if len(sys.argv) > 2 else 300.0
seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 40
MIB = 1 << 20
stop = time.monotonic() + seconds
per_sec = {}
written = {}


def streamer():
    fd = os.open(os.path.join(d, "stream"), os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
    buf = mmap.mmap(-1, MIB)
    t0 = time.monotonic()
    pos = 0
    while time.monotonic() < stop:
        if pos % (16 * MIB) == 0:
            os.posix_fallocate(fd, pos, 16 * MIB)
        os.pwrite(fd, buf, pos)
        pos += MIB
        sec = int(time.monotonic() - t0)
        written[sec] = written.get(sec, 0) + 1
        ahead = pos / (rate * MIB) - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    os.close(fd)


def syncer():
    fd = os.open(os.path.join(d, "sync"), os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
    buf = mmap.mmap(-1, 16384)
    for i in range(256):
        os.pwrite(fd, mmap.mmap(-1, MIB) if False else buf, i * 16384)
    os.fsync(fd)
    t0 = time.monotonic()
    i = 0
    while time.monotonic() < stop:
        a = time.monotonic()
        os.pwrite(fd, buf, (i % 256) * 16384)
        os.fdatasync(fd)
        b = time.monotonic()
        per_sec.setdefault(int(a - t0), []).append((b - a) * 1000)
        i += 1
    os.close(fd)


ts = [threading.Thread(target=streamer), threading.Thread(target=syncer)]
for t in ts:
    t.start()
for t in ts:
    t.join()
for s in sorted(per_sec):
    v = sorted(per_sec[s])
    print(f"sec={s:3d} syncs={len(v):5d} p50_ms={v[len(v)//2]:.2f} max_ms={v[-1]:.1f} streamed_mb={written.get(s, 0)}")
os.unlink(os.path.join(d, "stream"))
os.unlink(os.path.join(d, "sync"))
