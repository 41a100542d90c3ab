"""confluent-kafka offsets_for_times (ListOffsets by timestamp): the answer is the offset of the
first record whose timestamp is at or after the query, also inside a batch of many records.

usage: confluent_offsets_for_times.py BOOTSTRAP TOPIC"""

import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from common import Deadline, check

bootstrap, topic = sys.argv[1], sys.argv[2]
PARTITIONS, MESSAGES = 2, 20000
# Record i goes to partition i % 2 with timestamp base + i: in partition p, offset j holds i = 2j + p.
base_ts = int(time.time() * 1000) - 10 * MESSAGES

producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20})
errors = []
for i in range(MESSAGES):
    producer.produce(topic, value=b"t" * 50, partition=i % PARTITIONS, timestamp=base_ts + i,
                     on_delivery=lambda err, msg: err and errors.append(str(err)))
    if i % 1000 == 0:
        producer.poll(0)
check(producer.flush(60) == 0, "undelivered messages after flush")
check(not errors, f"delivery errors: {errors[:5]}")

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "riffle-tests-unused",
                     "enable.auto.commit": False})
per_partition = MESSAGES // PARTITIONS
deadline = Deadline(60, "offsets_for_times queries")
for p in range(PARTITIONS):
    queries = [(base_ts - 1000, 0)]                          # before everything: the first record
    for j in (0, 1, 100, per_partition // 2, per_partition - 1):
        queries.append((base_ts + 2 * j + p, j))             # exactly record j's timestamp
        queries.append((base_ts + 2 * j + p - 1, j))         # between record j-1 and j
    queries.append((base_ts + MESSAGES + 1000, -1))          # after everything: none (-1)
    for ts, want in queries:
        deadline.check()
        got = consumer.offsets_for_times([TopicPartition(topic, p, ts)], timeout=10)[0]
        check(got.error is None, f"offsets_for_times partition {p} ts base+{ts - base_ts}: {got.error}")
        check(got.offset == want,
              f"offsets_for_times partition {p} ts base+{ts - base_ts}: offset {got.offset}, want {want} "
              f"(the first record whose timestamp is at or after the query)")
consumer.close()
print("OK", flush=True)
