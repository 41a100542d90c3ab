"""confluent-kafka with large messages (700 KiB, incompressible): produce COUNT over 2 partitions
with acks=all, read them back with an assigned consumer and compare digests. Large batches cross
the broker's multi-buffer (zero-copy) Fetch path and partial batches at response ends.

usage: confluent_large.py BOOTSTRAP TOPIC COUNT"""

import hashlib
import sys

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from common import Deadline, check, fail

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
SIZE = 700 * 1024


def payload(i):
    # Deterministic, incompressible bytes: a SHA-256 stream seeded by i.
    out = bytearray()
    block = hashlib.sha256(f"large-{i}".encode()).digest()
    while len(out) < SIZE:
        out += block
        block = hashlib.sha256(block).digest()
    return bytes(out[:SIZE])


producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                     "enable.idempotence": True})
errors = []
for i in range(count):
    producer.produce(topic, value=payload(i), key=str(i).encode(), partition=i % 2,
                     on_delivery=lambda err, msg: err and errors.append(str(err)))
    producer.poll(0)
check(producer.flush(60) == 0, "undelivered after flush")
check(not errors, f"delivery errors: {errors[:3]}")

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "riffle-tests-unused",
                     "enable.auto.commit": False, "enable.partition.eof": True,
                     "fetch.max.bytes": 3 * 1024 * 1024, "max.partition.fetch.bytes": 1024 * 1024})
consumer.assign([TopicPartition(topic, p, 0) for p in range(2)])
seen = {}
eof = set()
deadline = Deadline(90, "consuming large messages")
while len(seen) < count or len(eof) < 2:
    deadline.check()
    for msg in consumer.consume(num_messages=10, timeout=1.0):
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
                continue
            fail(f"consumer error: {msg.error()}")
        eof.discard(msg.partition())
        i = int(msg.key())
        check(i not in seen, f"message {i} read twice")
        check(msg.partition() == i % 2, f"message {i} on partition {msg.partition()}")
        check(msg.offset() == i // 2, f"message {i} at offset {msg.offset()}, want {i // 2}")
        check(msg.value() == payload(i),
              f"message {i}: {len(msg.value())} bytes, digest differs from what was produced")
        seen[i] = True
consumer.close()
check(len(seen) == count, f"read {len(seen)} of {count}")
print("OK", flush=True)
