"""confluent-kafka moving one group between the classic protocol and KIP-848's consumer protocol
(group.protocol), as a stop-and-restart client upgrade does: Kafka 4 converts an empty group to
the protocol of the next member that joins it, keeping its committed offsets.

1. Two classic consumers read and commit every message, then close: the group is empty, classic.
2. Two consumer-protocol consumers join it: they get every partition between them and resume at
   the classic group's committed offsets (they read only what is produced after them);
   AdminClient then describes and lists it as a CONSUMER group.
3. They close; a classic consumer joins again (the downgrade) and resumes at their offsets; the
   group is listed as CLASSIC again.

usage: confluent_group_protocol_upgrade.py BOOTSTRAP TOPIC PARTITIONS GROUP"""

import sys
import time

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException
from confluent_kafka.admin import AdminClient

from common import Deadline, NumberedProducer, check, fail

bootstrap, topic, partitions, group = sys.argv[1:5]
partitions = int(partitions)
ALL = set(range(partitions))

admin = AdminClient({"bootstrap.servers": bootstrap})
numbered = NumberedProducer(bootstrap, topic, partitions)


def consumer(name, protocol):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": protocol,
        "client.id": name,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    c.subscribe([topic])
    return c


def assigned(c):
    return {tp.partition for tp in c.assignment()}


def settle(members, what):
    """Polls until the members split the partitions between them, each with some: the reading
    that follows then runs without a rebalance."""
    deadline = Deadline(40, what)
    while True:
        parts = [assigned(c) for c, _ in members]
        if all(parts) and set().union(*parts) == ALL and sum(map(len, parts)) == len(ALL):
            return parts
        deadline.check()
        for c, name in members:
            for msg in c.consume(num_messages=10, timeout=0.1):
                fail(f"{name}: read {msg.error() or 'a message'} before anything was produced")


def read(members, want, seconds, what):
    """Polls every (consumer, name) until the messages numbered `want` were all read, each once and
    only those, committing synchronously after each non-empty batch."""
    got = {}
    deadline = Deadline(seconds, what)
    while set(got) != want:
        deadline.check()
        for c, name in members:
            msgs = c.consume(num_messages=500, timeout=0.1)
            for msg in msgs:
                if msg.error():
                    fail(f"{name}: consumer error {msg.error()}")
                i = numbered.number_of(msg, name)
                check(i in want, f"{name}: read message {i}, committed before it joined")
                check(i not in got, f"message {i} read twice: by {got.get(i)} and by {name}")
                got[i] = name
            if msgs:
                commit(c, name, deadline)
    return got


def commit(c, name, deadline):
    """Commits synchronously; a commit racing a rebalance is refused (STALE_MEMBER_EPOCH, or
    REBALANCE_IN_PROGRESS for a classic member) and made again once the rebalance is through."""
    while True:
        try:
            c.commit(asynchronous=False)
            return
        except KafkaException as e:
            print(f"{name}: commit refused ({e.args[0]}), again", flush=True)
        deadline.check()
        time.sleep(0.2)


def committed_offsets():
    req = [ConsumerGroupTopicPartitions(group)]
    try:
        res = admin.list_consumer_group_offsets(req, request_timeout=10)[group].result(timeout=15)
    except KafkaException as e:
        fail(f"list_consumer_group_offsets {group}: {e}")
    return {tp.partition: tp.offset for tp in res.topic_partitions or [] if tp.topic == topic}


def group_type():
    listed = admin.list_consumer_groups(request_timeout=10).result(timeout=15)
    types = {g.group_id: str(g.type) for g in listed.valid}
    return types.get(group, "not listed")


def close_all(members):
    for c, _ in members:
        c.close()
    check(committed_offsets() == numbered.end_offsets(),
          f"committed {committed_offsets()}, want the end offsets {numbered.end_offsets()}")


# 1. The classic group reads and commits everything, then empties.
classic = [(consumer(f"classic-{n}", "classic"), f"classic-{n}") for n in "ab"]
settle(classic, "the classic members splitting the partitions")
first = numbered.produce(1000)
read(classic, first, 60, "the classic members reading the first messages")
check(group_type().endswith("CLASSIC"), f"listed as {group_type()}, want CLASSIC")
close_all(classic)
print(f"classic members read {len(first)} messages, committed and left", flush=True)

# 2. Consumer-protocol members take the empty classic group over, from its offsets.
upgraded = [(consumer(f"kip848-{n}", "consumer"), f"kip848-{n}") for n in "ab"]
settle(upgraded, "the consumer-protocol members splitting the partitions")
second = numbered.produce(500)
got = read(upgraded, second, 60, "the consumer-protocol members resuming after the classic ones")
d = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
check(str(d.type).endswith("CONSUMER"), f"described as {d.type}, want CONSUMER")
check(group_type().endswith("CONSUMER"), f"listed as {group_type()}, want CONSUMER")
close_all(upgraded)
print(f"consumer-protocol members resumed at the classic offsets ({len(got)} new messages)",
      flush=True)

# 3. And back: a classic member takes the empty consumer group over, from its offsets.
downgraded = [(consumer("classic-c", "classic"), "classic-c")]
third = numbered.produce(300)
read(downgraded, third, 60, "a classic member resuming after the consumer-protocol ones")
check(group_type().endswith("CLASSIC"), f"listed as {group_type()}, want CLASSIC")
close_all(downgraded)
print("a classic member resumed at the consumer-protocol offsets", flush=True)
print("OK", flush=True)
