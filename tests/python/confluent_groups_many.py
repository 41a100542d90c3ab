"""confluent-kafka, several consumer groups at once (with --smp 2 their coordinators live on
different shards): one consumer per group reads every message produced by this run exactly once
and commits synchronously; AdminClient lists every group and returns each one's offsets at the
log ends; after all close, a new consumer per group reads only what was produced since. Run again
on the same topic and groups (say after a restart), the groups read only this run's messages:
anything older was committed before.

usage: confluent_groups_many.py BOOTSTRAP TOPIC PARTITIONS GROUP [GROUP...]"""

import sys

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

from common import Deadline, NumberedProducer, check, fail

bootstrap, topic, partitions, groups = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
check(len(set(groups)) == len(groups) > 1, f"want several distinct groups, got {groups}")
admin = AdminClient({"bootstrap.servers": bootstrap})
numbered = NumberedProducer(bootstrap, topic, partitions)
produce = numbered.produce


end_offsets = numbered.end_offsets


def consume_in_every_group(want, seconds):
    """One new consumer per group; each must read exactly `want` (a set of indexes)."""
    consumers = {}
    for g in groups:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": g, "client.id": f"riffle-{g}",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        c.subscribe([topic])
        consumers[g] = c
    got = {g: set() for g in groups}
    deadline = Deadline(seconds, f"every group reading {len(want)} messages")
    while any(len(got[g]) < len(want) for g in groups):
        deadline.check()
        for g, c in consumers.items():
            msgs = c.consume(num_messages=500, timeout=0.05)
            for msg in msgs:
                if msg.error():
                    fail(f"group {g}: consumer error {msg.error()}")
                p, o = msg.partition(), msg.offset()
                i = numbered.number_of(msg, f"group {g}")
                check(i in want, f"group {g}: read message {i} (partition {p} offset {o}), "
                                 f"which the group had already committed")
                check(i not in got[g], f"group {g}: message {i} read twice")
                got[g].add(i)
            if msgs:
                for tp in c.commit(asynchronous=False):
                    check(tp.error is None, f"group {g}: commit of partition {tp.partition} failed: {tp.error}")
    for g, c in consumers.items():
        check({tp.partition for tp in c.assignment()} == set(range(partitions)),
              f"group {g}: its only member has {c.assignment()}")
    return consumers


def check_offsets():
    futures = {g: admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)],
                                                    request_timeout=10)[g] for g in groups}
    for g, fut in futures.items():
        res = fut.result(timeout=15)
        got = {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic}
        check(got == end_offsets(), f"group {g}: committed {got}, want the log ends {end_offsets()}")


first = produce(1200)
consumers = consume_in_every_group(first, 60)
check_offsets()
listed = {g.group_id for g in admin.list_consumer_groups(request_timeout=10).result(timeout=15).valid}
check(set(groups) <= listed, f"list_consumer_groups {sorted(listed)} lacks some of {groups}")
print(f"{len(groups)} groups each read {len(first)} messages once and committed them", flush=True)
for c in consumers.values():
    c.close()

second = produce(240)
consumers = consume_in_every_group(second, 60)
check_offsets()
for c in consumers.values():
    c.close()
print(f"new members of {len(groups)} groups resumed at the committed offsets", flush=True)
print("OK", flush=True)
