"""Reads every partition from offset 0 to its end and checks that each message listed in
ACKED_FILE ("partition offset i" lines, as confluent_produce.py writes them) is there at its
offset with its key, value and headers. With --exact, the partitions hold nothing else. With
--from-log-start, each partition is read from its log start offset (retention deleted what is
below it), and only the messages acknowledged at or past it are checked.

usage: confluent_verify.py BOOTSTRAP TOPIC PARTITIONS ACKED_FILE [--exact] [--from-log-start]"""

import sys

from confluent_kafka import Consumer, KafkaError, TopicPartition

from common import Deadline, check, fail, headers, key, value

bootstrap, topic = sys.argv[1], sys.argv[2]
partitions, acked_path = int(sys.argv[3]), sys.argv[4]
exact = "--exact" in sys.argv[5:]
from_log_start = "--from-log-start" in sys.argv[5:]

acked = {}  # (partition, offset) -> i
with open(acked_path) as f:
    lines = f.read().split("\n")
# A producer killed mid-write may leave a partial last line; every other line is whole.
for line in lines[:-1]:
    p, o, i = (int(x) for x in line.split())
    if (p, o) in acked:
        fail(f"partition {p} offset {o} acknowledged twice ({acked[(p, o)]} and {i})")
    acked[(p, o)] = i
check(acked, "no acknowledged message to verify")

consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "riffle-tests-unused",
    "enable.auto.commit": False,
    "enable.partition.eof": True,
})
starts, ends = {}, {}
for p in range(partitions):
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
    check(from_log_start or low == 0, f"partition {p}: log start offset {low}, want 0")
    starts[p], ends[p] = low, high
if from_log_start:
    acked = {(p, o): i for (p, o), i in acked.items() if o >= starts[p]}
    check(acked, "no acknowledged message left at or past the log starts")
for (p, o), i in acked.items():
    check(o < ends[p], f"partition {p}: acknowledged offset {o} (message {i}) is past the end {ends[p]}")
consumer.assign([TopicPartition(topic, p, starts[p]) for p in range(partitions)])
found = 0
next_offset = dict(starts)
done = {p for p in range(partitions) if ends[p] == starts[p]}
deadline = Deadline(120, "reading back")
while len(done) < partitions:
    deadline.check()
    for msg in consumer.consume(num_messages=1000, timeout=1.0):
        p = msg.partition()
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                if next_offset[p] >= ends[p]:
                    done.add(p)
                continue
            fail(f"consumer error: {msg.error()}")
        o = msg.offset()
        check(o == next_offset[p], f"partition {p}: offset {o} where {next_offset[p]} was next")
        next_offset[p] += 1
        if next_offset[p] >= ends[p]:
            done.add(p)
        i = acked.get((p, o))
        if i is None:
            if exact:
                fail(f"partition {p} offset {o}: a message that was never acknowledged ({msg.key()!r})")
            continue
        check(msg.key() == key(i), f"partition {p} offset {o}: key {msg.key()!r}, want {key(i)!r}")
        check(msg.value() == value(i), f"partition {p} offset {o}: value differs for {key(i)!r}")
        check(list(msg.headers() or []) == headers(i), f"partition {p} offset {o}: headers differ")
        found += 1
consumer.close()
check(found == len(acked), f"found {found} of {len(acked)} acknowledged messages")
print(f"all {found} acknowledged messages are there", flush=True)
print("OK", flush=True)
