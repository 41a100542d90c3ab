"""Two client implementations in one consumer group: confluent-kafka (librdkafka, offering only
the roundrobin assignor) and kafka-python (offering range, then roundrobin). The coordinator must
pick the protocol every member supports (roundrobin), whichever of them leads; the two split the
partitions and read every message exactly once, committing synchronously. A third consumer that
offers only range is refused with INCONSISTENT_GROUP_PROTOCOL and the group stays as it was.

usage: mixed_clients_group.py BOOTSTRAP TOPIC PARTITIONS GROUP"""

import sys
import time

from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer

from common import Deadline, check, fail, key, value

bootstrap, topic, partitions, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ALL = set(range(partitions))
admin = AdminClient({"bootstrap.servers": bootstrap})

rdkafka = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": "riffle-rdkafka",
                    "partition.assignment.strategy": "roundrobin", "enable.auto.commit": False,
                    "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                    "heartbeat.interval.ms": 500})
rdkafka.subscribe([topic])
kpy = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, client_id="riffle-kafka-python",
                    enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=6000,
                    heartbeat_interval_ms=500)
produced = {}  # (partition, offset) -> i
got = {}  # i -> which client read it


def assigned():
    return ({tp.partition for tp in rdkafka.assignment()}, {tp.partition for tp in kpy.assignment()})


def record(name, p, o, k, v):
    i = produced.get((p, o))
    check(i is not None, f"{name}: partition {p} offset {o} was never produced")
    check(k == key(i) and v == value(i), f"{name}: partition {p} offset {o}: content differs")
    check(i not in got, f"message {i} read twice: by {got.get(i)} and by {name}")
    got[i] = name


def pump(until, seconds, what):
    deadline = Deadline(seconds, what)
    while not until():
        deadline.check()
        msgs = rdkafka.consume(num_messages=500, timeout=0.05)
        mine = assigned()[0]
        for msg in msgs:
            if msg.error():
                fail(f"confluent-kafka: consumer error {msg.error()}")
            check(msg.partition() in mine, f"confluent-kafka: partition {msg.partition()} is not its own")
            record("confluent-kafka", msg.partition(), msg.offset(), msg.key(), msg.value())
        if msgs:
            for tp in rdkafka.commit(asynchronous=False):
                check(tp.error is None, f"confluent-kafka: commit of partition {tp.partition}: {tp.error}")
        batches = kpy.poll(timeout_ms=50, max_records=500)
        for tp, records in batches.items():
            check(tp.partition in assigned()[1], f"kafka-python: partition {tp.partition} is not its own")
            for msg in records:
                record("kafka-python", tp.partition, msg.offset, msg.key, msg.value)
        if batches:
            kpy.commit()


def drain(seconds):
    """Keeps both members polling for a while; anything read now is checked."""
    end = time.monotonic() + seconds
    pump(lambda: time.monotonic() > end, seconds + 10, "polling")


def split():
    a, b = assigned()
    return bool(a) and bool(b) and not (a & b) and (a | b) == ALL


pump(split, 30, "confluent-kafka and kafka-python splitting the partitions")
print(f"split: confluent-kafka {sorted(assigned()[0])}, kafka-python {sorted(assigned()[1])}", flush=True)
d = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
check(d.state == ConsumerGroupState.STABLE and d.partition_assignor == "roundrobin",
      f"describe: state {d.state}, assignor {d.partition_assignor!r}, want Stable with roundrobin "
      f"(the only assignor both members offer)")



def on_delivery(err, msg):
    if err is None:
        produced[(msg.partition(), msg.offset())] = int(msg.key()[4:])


producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
for i in range(3000):
    producer.produce(topic, key=key(i), value=value(i), partition=i % partitions, on_delivery=on_delivery)
    producer.poll(0)
check(producer.flush(30) == 0 and len(produced) == 3000, f"{len(produced)} of 3000 messages acknowledged")
pump(lambda: len(got) == len(produced), 60, "the two clients reading every message")
by = {name: sum(1 for n in got.values() if n == name) for name in ("confluent-kafka", "kafka-python")}
check(all(by.values()), f"a client read nothing: {by}")
res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                        request_timeout=10)[group].result(timeout=15)
committed = {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic}
ends = {p: 0 for p in ALL}
for (p, o) in produced:
    ends[p] = max(ends[p], o + 1)
check(committed == ends, f"committed {committed}, want the log ends {ends}")
print(f"every message read once ({by}), offsets committed", flush=True)

outsider = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": "riffle-range-only",
                     "partition.assignment.strategy": "range", "session.timeout.ms": 6000})
outsider.subscribe([topic])
deadline = Deadline(10, "the range-only consumer being refused")
refused = False
while not refused:
    deadline.check()
    for msg in outsider.consume(num_messages=10, timeout=0.1):
        if msg.error() and msg.error().code() == KafkaError.INCONSISTENT_GROUP_PROTOCOL:
            refused = True
        elif msg.error():
            fail(f"range-only consumer: {msg.error()}, want INCONSISTENT_GROUP_PROTOCOL")
        else:
            fail("the range-only consumer read a message")
    drain(0.1)
drain(1.0)
check(not outsider.assignment(), f"the refused consumer has partitions {outsider.assignment()}")
outsider.close()
d = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
check(d.state == ConsumerGroupState.STABLE
      and sorted(m.client_id for m in d.members) == ["riffle-kafka-python", "riffle-rdkafka"],
      f"after the refusal: state {d.state}, members {[m.client_id for m in d.members]}")
check(split(), f"the members' assignments changed: {assigned()}")
print("a consumer without a common assignor was refused; the group kept its members", flush=True)
rdkafka.close()
kpy.close()
print("OK", flush=True)
