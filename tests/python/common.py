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


class NumberedProducer:
    """Produces messages numbered from 0 (key(i), value(i), headers none) round-robin over the
    partitions with an idempotent acks=all confluent-kafka producer, and remembers where each one
    landed: `produced[(partition, offset)] = i`. `fresh_client=True` makes a new client for every
    call (for scripts that run across a broker restart)."""

    def __init__(self, bootstrap, topic, partitions, fresh_client=False):
        self.conf = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                     "linger.ms": 5, "message.timeout.ms": 30000}
        self.topic = topic
        self.partitions = partitions
        self.fresh_client = fresh_client
        self.client = None
        self.produced = {}
        self.next_i = 0

    def produce(self, count):
        """Produces the next `count` messages, waits for every delivery, returns their numbers."""
        from confluent_kafka import Producer

        if self.client is None or self.fresh_client:
            self.client = Producer(self.conf)
        errors = []

        def on_delivery(err, msg):
            if err is not None:
                errors.append(str(err))
            else:
                self.produced[(msg.partition(), msg.offset())] = int(msg.key()[4:])

        first = self.next_i
        for i in range(first, first + count):
            self.client.produce(self.topic, key=key(i), value=value(i), partition=i % self.partitions,
                                on_delivery=on_delivery)
            self.client.poll(0)
        check(self.client.flush(30) == 0, "messages undelivered after flush")
        check(not errors, f"delivery errors: {errors[:5]}")
        self.next_i += count
        return set(range(first, first + count))

    def end_offsets(self, parts=None):
        """{partition: offset after the last message produced to it} for `parts` (default all)."""
        ends = {p: 0 for p in (range(self.partitions) if parts is None else parts)}
        for (p, o) in self.produced:
            if p in ends:
                ends[p] = max(ends[p], o + 1)
        return ends

    def number_of(self, msg, who):
        """The number of a consumed message, checked to be one produced here, content intact."""
        p, o = msg.partition(), msg.offset()
        i = self.produced.get((p, o))
        check(i is not None, f"{who}: partition {p} offset {o} was never produced")
        check(msg.key() == key(i) and msg.value() == value(i),
              f"{who}: partition {p} offset {o}: content differs from message {i}")
        return i
