"""confluent-kafka round trip: an idempotent producer (acks=all) writes N messages over P
partitions with explicit timestamps; a consumer with manual assignment reads them all back and
checks content, timestamps and per-partition order.

usage: confluent_roundtrip.py BOOTSTRAP TOPIC PARTITIONS MESSAGES"""

import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from common import Deadline, check, fail, headers, key, value

bootstrap, topic = sys.argv[1], sys.argv[2]
partitions, messages = int(sys.argv[3]), int(sys.argv[4])
# Timestamps are base + i ms, so the first offset at or after a timestamp is known.
base_ts = int(time.time() * 1000) - 10 * messages

producer = Producer({
    "bootstrap.servers": bootstrap,
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "queue.buffering.max.messages": 200000,
    "message.timeout.ms": 60000,
})
# partition -> list of (offset, i) in delivery order
delivered = {p: [] for p in range(partitions)}
errors = []


def on_delivery(err, msg):
    if err is not None:
        errors.append(f"{err} for {msg.key()!r}")
    else:
        delivered[msg.partition()].append((msg.offset(), int(msg.key()[4:])))


deadline = Deadline(120, "producing")
for i in range(messages):
    while True:
        try:
            producer.produce(topic, value=value(i), key=key(i), partition=i % partitions,
                             headers=headers(i), timestamp=base_ts + i, on_delivery=on_delivery)
            break
        except BufferError:
            producer.poll(0.05)
            deadline.check()
    producer.poll(0)
remaining = producer.flush(deadline.left())
check(remaining == 0, f"{remaining} messages still undelivered after flush")
check(not errors, f"{len(errors)} delivery errors, first: {errors[:5]}")
total = sum(len(v) for v in delivered.values())
check(total == messages, f"{total} delivery reports for {messages} messages")
for p, recs in delivered.items():
    recs.sort()
    offsets = [o for o, _ in recs]
    check(offsets == list(range(len(recs))),
          f"partition {p}: acknowledged offsets are not 0..{len(recs) - 1}: {offsets[:20]}...")
    order = [i for _, i in recs]
    check(order == sorted(order), f"partition {p}: offsets do not follow produce order")
print(f"produced {messages} messages, all acknowledged", flush=True)

consumer = Consumer({
    "bootstrap.servers": bootstrap,
    # The client insists on a group id; assign() never joins the group and nothing is committed.
    "group.id": "riffle-tests-unused",
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
})
consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
expected_counts = {p: len(delivered[p]) for p in range(partitions)}
next_offset = {p: 0 for p in range(partitions)}
eof = set()
deadline = Deadline(120, "consuming")
read = 0
while len(eof) < partitions or read < messages:
    deadline.check()
    for msg in consumer.consume(num_messages=1000, timeout=1.0):
        p = msg.partition()
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                if next_offset[p] >= expected_counts[p]:
                    eof.add(p)
                continue
            fail(f"consumer error: {msg.error()}")
        check(msg.offset() == next_offset[p],
              f"partition {p}: offset {msg.offset()} where {next_offset[p]} was next")
        i = delivered[p][msg.offset()][1]
        check(msg.key() == key(i), f"partition {p} offset {msg.offset()}: key {msg.key()!r}, want {key(i)!r}")
        check(msg.value() == value(i), f"partition {p} offset {msg.offset()}: value differs for {key(i)!r}")
        got_headers = [(k, v) for k, v in (msg.headers() or [])]
        check(got_headers == headers(i),
              f"partition {p} offset {msg.offset()}: headers {got_headers}, want {headers(i)}")
        ts_type, ts = msg.timestamp()
        check(ts == base_ts + i, f"partition {p} offset {msg.offset()}: timestamp {ts}, want {base_ts + i}")
        next_offset[p] += 1
        read += 1
check(read == messages, f"read {read} of {messages}")
print(f"consumed {read} messages, content and order checked", flush=True)

consumer.close()
print("OK", flush=True)
