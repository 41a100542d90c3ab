"""Helpers shared by the client scripts the Rust tests drive: a failure exits non-zero with a
clear message on stderr, and every wait has a deadline."""

import sys
import time


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


class Deadline:
    def __init__(self, seconds, what):
        self.end = time.monotonic() + seconds
        self.what = what

    def left(self):
        return self.end - time.monotonic()

    def check(self):
        if self.left() <= 0:
            fail(f"timed out: {self.what}")


def key(i):
    return f"key-{i:06d}".encode()


def value(i):
    return (f"value-{i:06d}-" + "v" * (i % 113)).encode()


def headers(i):
    return [("seq", str(i).encode()), ("parity", b"odd" if i % 2 else b"even")]
