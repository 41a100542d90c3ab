"""A consumer that follows the log while confluent_produce.py writes it: assigned to every
partition from offset 0, it reads COUNT messages as they arrive (long polls woken by appends)
and checks each against what the producer sends (message i at partition i % P, offset i // P).

usage: confluent_tail.py BOOTSTRAP TOPIC PARTITIONS COUNT"""

import sys

from confluent_kafka import Consumer, TopicPartition

from common import Deadline, check, fail, headers, key, value

bootstrap, topic = sys.argv[1], sys.argv[2]
partitions, count = int(sys.argv[3]), int(sys.argv[4])

consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "riffle-tests-unused",
    "enable.auto.commit": False,
    "fetch.wait.max.ms": 5000,
})
consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
print("assigned", flush=True)
next_offset = {p: 0 for p in range(partitions)}
read = 0
deadline = Deadline(120, f"tailing {count} messages")
while read < count:
    deadline.check()
    for msg in consumer.consume(num_messages=1000, timeout=1.0):
        if msg.error():
            fail(f"consumer error: {msg.error()}")
        p, o = msg.partition(), msg.offset()
        check(o == next_offset[p], f"partition {p}: offset {o} where {next_offset[p]} was next")
        i = o * partitions + p
        check(msg.key() == key(i), f"partition {p} offset {o}: key {msg.key()!r}, want {key(i)!r}")
        check(msg.value() == value(i), f"partition {p} offset {o}: value differs")
        check(list(msg.headers() or []) == headers(i), f"partition {p} offset {o}: headers differ")
        next_offset[p] += 1
        read += 1
consumer.close()
print(f"tailed {read} messages", flush=True)
print("OK", flush=True)
