"""confluent-kafka: a group's committed offsets for a topic go with the topic. A group consumes and
commits a topic; the topic is deleted (AdminClient), its offsets disappear from
list_consumer_group_offsets, and when a topic of the same name is created again with more
messages than before, a member of the group reads it from the start (auto.offset.reset=earliest)
instead of resuming at the old topic's offsets and skipping messages.

usage: confluent_group_topic_recreate.py BOOTSTRAP TOPIC GROUP"""

import sys
import time

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common import Deadline, check, fail, key, value

bootstrap, topic, group = sys.argv[1], sys.argv[2], sys.argv[3]
PARTITIONS = 2
admin = AdminClient({"bootstrap.servers": bootstrap})


def create_topic():
    deadline = Deadline(15, f"creating {topic}")
    while True:
        try:
            admin.create_topics([NewTopic(topic, PARTITIONS, 1)], request_timeout=10)[topic].result(timeout=15)
            return
        except KafkaException as e:
            # Deletion may still be finishing; anything else is a failure.
            if "TOPIC_ALREADY_EXISTS" not in str(e) and "already exists" not in str(e):
                fail(f"create_topics {topic}: {e}")
        deadline.check()
        time.sleep(0.2)


def produce(count):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    producer_cb = (lambda err, msg: errors.append(str(err)) if err is not None else None)
    for i in range(count):
        producer.produce(topic, key=key(i), value=value(i), partition=i % PARTITIONS, on_delivery=producer_cb)
        producer.poll(0)
    check(producer.flush(30) == 0, "messages undelivered after flush")
    check(not errors, f"delivery errors: {errors[:5]}")


def consume(count):
    """A new member of the group reads `count` messages; returns partition -> offsets read."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                  "topic.metadata.refresh.interval.ms": 1000})
    c.subscribe([topic])
    read = {p: [] for p in range(PARTITIONS)}
    deadline = Deadline(30, f"the group reading {count} messages of {topic}")
    while sum(len(v) for v in read.values()) < count:
        deadline.check()
        msgs = c.consume(num_messages=500, timeout=0.2)
        for msg in msgs:
            if msg.error():
                fail(f"consumer error {msg.error()}")
            read[msg.partition()].append(msg.offset())
        if msgs:
            c.commit(asynchronous=False)
    c.close()
    return read


def committed():
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                            request_timeout=10)[group].result(timeout=15)
    return {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic}


create_topic()
produce(200)
read = consume(200)
check(all(offsets == list(range(100)) for offsets in read.values()), f"first read {read}")
check(committed() == {0: 100, 1: 100}, f"committed after the first read: {committed()}")
print("the group consumed and committed the topic", flush=True)

for name, fut in admin.delete_topics([topic], operation_timeout=10, request_timeout=15).items():
    fut.result(timeout=20)
deadline = Deadline(5, f"the offsets of the deleted {topic} disappearing")
while committed():
    deadline.check()
    time.sleep(0.1)
print("deleting the topic removed the group's offsets for it", flush=True)

create_topic()
produce(600)
read = consume(600)
for p, offsets in read.items():
    check(offsets == list(range(300)),
          f"partition {p} of the new {topic}: read offsets {offsets[:3]}..{offsets[-3:]} "
          f"({len(offsets)} of them), want 0..299: the old topic's committed offsets were applied")
check(committed() == {0: 300, 1: 300}, f"committed after reading the new topic: {committed()}")
print("the recreated topic was read from the start", flush=True)
print("OK", flush=True)
