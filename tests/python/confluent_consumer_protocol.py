"""confluent-kafka with the KIP-848 consumer group protocol (group.protocol=consumer), end to end.

Phase "run": two consumers of one group split the partitions between them (the broker's server-side
assignor), read every message exactly once while committing synchronously, one leaves and the other
takes every partition and resumes at the committed offsets; AdminClient describes the group as a
"consumer" group with both members and lists it with type CONSUMER; a classic group
(group.protocol=classic) reads the same topic alongside, on its own offsets. Ends with both groups'
members closed and the committed offsets equal to the end offsets.

Phase "resume" (after a broker restart): the committed offsets are still there, and a new consumer
of the consumer-protocol group reads only what is produced after them.

usage: confluent_consumer_protocol.py BOOTSTRAP TOPIC PARTITIONS GROUP CLASSIC_GROUP run|resume"""

import sys
import time

from confluent_kafka import (Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException,
                             TopicPartition)
from confluent_kafka.admin import AdminClient

from common import Deadline, NumberedProducer, check, fail

bootstrap, topic, partitions, group, classic_group, phase = sys.argv[1:7]
partitions = int(partitions)
ALL = set(range(partitions))

admin = AdminClient({"bootstrap.servers": bootstrap})
numbered = NumberedProducer(bootstrap, topic, partitions)


def consumer(name, group_id=group, protocol="consumer"):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "group.protocol": protocol,
        "client.id": name,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    c.subscribe([topic])
    return c


def assigned(c):
    return {tp.partition for tp in c.assignment()}


got = {}  # message number -> name of the consumer (of the consumer-protocol group) that read it


def pump(members, until, seconds, what, record=got):
    """Polls every (consumer, name) in turn, checking and recording each message and committing
    synchronously after each non-empty batch, until until() holds."""
    deadline = Deadline(seconds, what)
    while not until():
        deadline.check()
        for c, name in members:
            msgs = c.consume(num_messages=500, timeout=0.1)
            mine = assigned(c)
            for msg in msgs:
                if msg.error():
                    fail(f"{name}: consumer error {msg.error()}")
                p = msg.partition()
                check(p in mine, f"{name}: message from partition {p}, assigned {sorted(mine)}")
                i = numbered.number_of(msg, name)
                check(i not in record, f"message {i} consumed twice: by {record.get(i)} and by {name}")
                record[i] = name
            if msgs:
                commit(c, name)


def commit(c, name):
    """Commits synchronously. A commit sent with the member epoch that a rebalance just moved past
    gets STALE_MEMBER_EPOCH, which librdkafka does not retry for manual commits (Kafka answers
    the same): commit again once the next heartbeat brought the new epoch."""
    deadline = Deadline(10, f"{name}: committing")
    while True:
        try:
            errors = [tp.error for tp in c.commit(asynchronous=False) if tp.error is not None]
        except KafkaException as e:
            errors = [e.args[0]]
        if not errors:
            return
        check(all(e.code() == KafkaError.STALE_MEMBER_EPOCH for e in errors),
              f"{name}: commit failed: {errors}")
        deadline.check()
        time.sleep(0.2)  # the background heartbeat brings the new epoch


def committed_offsets(group_id=group):
    req = [ConsumerGroupTopicPartitions(group_id)]
    try:
        res = admin.list_consumer_group_offsets(req, request_timeout=10)[group_id].result(timeout=15)
    except KafkaException as e:
        fail(f"list_consumer_group_offsets {group_id}: {e}")
    return {tp.partition: tp.offset for tp in res.topic_partitions or [] if tp.topic == topic}


def run():
    # 1. Two members split the (still empty) topic.
    a, b = consumer("kip848-a"), consumer("kip848-b")
    members = [(a, "kip848-a"), (b, "kip848-b")]

    def split():
        pa, pb = assigned(a), assigned(b)
        return bool(pa) and bool(pb) and not (pa & pb) and (pa | pb) == ALL

    pump(members, split, 40, "two consumer-protocol members splitting the partitions")
    print(f"split: a {sorted(assigned(a))}, b {sorted(assigned(b))}", flush=True)

    d = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    check(str(d.type).endswith("CONSUMER"), f"describe: group type {d.type}, want CONSUMER")
    check(sorted(m.client_id for m in d.members) == ["kip848-a", "kip848-b"],
          f"describe: members {[m.client_id for m in d.members]}")
    listed = admin.list_consumer_groups(request_timeout=10).result(timeout=15)
    types = {g.group_id: str(g.type) for g in listed.valid}
    check(types.get(group, "").endswith("CONSUMER"), f"list_consumer_groups: {types}")
    print(f"described and listed as a consumer group: state {d.state}", flush=True)

    # 2. A classic group reads the same topic alongside, with its own offsets.
    classic = consumer("classic-c", classic_group, "classic")
    classic_got = {}

    # 3. Both members consume: every message exactly once.
    first = numbered.produce(2000)
    pump(members, lambda: len(got) == len(first), 60, f"the pair consuming {len(first)} messages")
    by = {name: sum(1 for n in got.values() if n == name) for _, name in members}
    check(all(by.values()), f"a consumer read nothing: {by}")
    check(committed_offsets() == numbered.end_offsets(),
          f"committed {committed_offsets()}, want the end offsets {numbered.end_offsets()}")
    print(f"pair consumed {len(got)} messages exactly once ({by})", flush=True)

    pump([(classic, "classic-c")], lambda: len(classic_got) == len(first), 60,
         "the classic group reading the topic alongside", record=classic_got)
    check(committed_offsets(classic_group) == numbered.end_offsets(), "the classic group's offsets")
    print("classic group read everything alongside", flush=True)

    # 4. a leaves; b takes every partition and resumes at the committed offsets.
    left_at = time.monotonic()
    a.close()
    members = [(b, "kip848-b")]
    pump(members, lambda: assigned(b) == ALL, 30, "b getting every partition after a left")
    print(f"b has all partitions {time.monotonic() - left_at:.1f} s after a left", flush=True)
    second = numbered.produce(500)
    pump(members, lambda: len(got) == len(first) + len(second), 30, "b consuming the new messages")
    end = time.monotonic() + 1.0
    pump(members, lambda: time.monotonic() > end, 10, "polling for duplicates")
    check(committed_offsets() == numbered.end_offsets(), "committed offsets after b's consumption")
    b.close()
    classic.close()
    print(f"b consumed {len(second)} new messages, nothing twice", flush=True)


def resume():
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "kip848-probe"})
    high = {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)}
    probe.close()
    committed = committed_offsets()
    check(committed == high, f"after the restart: committed {committed}, want the ends {high}")
    third = numbered.produce(300)
    c = consumer("kip848-c")
    members = [(c, "kip848-c")]
    pump(members, lambda: len(got) == len(third), 60, "a new member reading after the commits")
    end = time.monotonic() + 1.0
    pump(members, lambda: time.monotonic() > end, 10, "polling for duplicates")
    check(set(got) == third, "the new member read something committed before the restart")
    c.close()
    print(f"after the restart a new member read only the {len(third)} new messages", flush=True)


if phase == "run":
    run()
elif phase == "resume":
    resume()
else:
    fail(f"unknown phase {phase}")
print("OK", flush=True)
