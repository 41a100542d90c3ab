"""kafka-python (pure Python, an implementation independent of librdkafka): KafkaProducer with
acks='all' writes N messages over P partitions; KafkaConsumer without a group (assign +
seek_to_beginning) reads them back; content, timestamps and per-partition order are checked.

usage: kafka_python_roundtrip.py BOOTSTRAP TOPIC PARTITIONS MESSAGES"""

import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from common import Deadline, check, headers, key, value

bootstrap, topic = sys.argv[1], sys.argv[2]
partitions, messages = int(sys.argv[3]), int(sys.argv[4])
base_ts = int(time.time() * 1000) - 10 * messages

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                         request_timeout_ms=30000, max_block_ms=30000)
futures = []
for i in range(messages):
    futures.append((i, producer.send(topic, value=value(i), key=key(i), partition=i % partitions,
                                     headers=headers(i), timestamp_ms=base_ts + i)))
producer.flush(timeout=60)
delivered = {p: [] for p in range(partitions)}
for i, fut in futures:
    md = fut.get(timeout=30)  # raises the delivery error, if any
    check(md.partition == i % partitions, f"message {i} landed on partition {md.partition}")
    delivered[md.partition].append((md.offset, i))
producer.close(timeout=10)
for p, recs in delivered.items():
    offsets = [o for o, _ in recs]
    check(offsets == list(range(len(recs))),
          f"partition {p}: acknowledged offsets in send order are not 0..{len(recs) - 1}: {offsets[:20]}")
print(f"produced {messages} messages, all acknowledged", flush=True)

consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         consumer_timeout_ms=1000)
tps = [TopicPartition(topic, p) for p in range(partitions)]
consumer.assign(tps)
consumer.seek_to_beginning(*tps)
next_offset = {p: 0 for p in range(partitions)}
read = 0
deadline = Deadline(120, f"consuming {messages} messages")
while read < messages:
    deadline.check()
    for tp, records in consumer.poll(timeout_ms=1000, max_records=5000).items():
        p = tp.partition
        for msg in records:
            check(msg.offset == next_offset[p],
                  f"partition {p}: offset {msg.offset} where {next_offset[p]} was next")
            check(msg.offset < len(delivered[p]), f"partition {p}: unexpected offset {msg.offset}")
            i = delivered[p][msg.offset][1]
            check(msg.key == key(i), f"partition {p} offset {msg.offset}: key {msg.key!r}, want {key(i)!r}")
            check(msg.value == value(i), f"partition {p} offset {msg.offset}: value differs for {key(i)!r}")
            got = [(k, v) for k, v in msg.headers]
            check(got == headers(i), f"partition {p} offset {msg.offset}: headers {got}, want {headers(i)}")
            check(msg.timestamp == base_ts + i,
                  f"partition {p} offset {msg.offset}: timestamp {msg.timestamp}, want {base_ts + i}")
            next_offset[p] += 1
            read += 1
end = consumer.end_offsets(tps)
for tp in tps:
    check(end[tp] == len(delivered[tp.partition]),
          f"partition {tp.partition}: end offset {end[tp]}, want {len(delivered[tp.partition])}")
consumer.close()
print(f"consumed {read} messages, content and order checked", flush=True)
print("OK", flush=True)
