"""confluent-kafka consumer group under membership churn: while a producer keeps writing,
consumers join and leave one group every few hundred milliseconds (seeded, so a failure can be
replayed), each committing synchronously after every batch. Commits refused because a rebalance
overtook them are expected (the group is at-least-once then); what must hold is that the group
never gets stuck and loses nothing: once the churn stops, the remaining members settle on a
split of every partition, read every message that was produced at least once, and the group's
committed offsets reach the log ends.

usage: confluent_group_churn.py BOOTSTRAP TOPIC PARTITIONS GROUP [SEED]"""

import faulthandler
import random
import sys
import time

from confluent_kafka import (Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError,
                             KafkaException, Producer)
from confluent_kafka.admin import AdminClient

from common import Deadline, check, fail, key, value

bootstrap, topic, partitions, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 1
rng = random.Random(seed)
# If a client call ever blocks (a close or a synchronous commit that gets no answer), show where
# before the test's own deadline kills the script.
faulthandler.dump_traceback_later(75, exit=True)
ALL = set(range(partitions))
CHURN_SECONDS = 8.0
MAX_MEMBERS = 5
# A rebalance may overtake a commit; the client reports it with one of these.
REBALANCE_ERRORS = {KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION,
                    KafkaError.UNKNOWN_MEMBER_ID, KafkaError._ASSIGNMENT_LOST, KafkaError._NO_OFFSET,
                    KafkaError._STATE}

admin = AdminClient({"bootstrap.servers": bootstrap})
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
produced = {}  # (partition, offset) -> i
delivery_errors = []


def on_delivery(err, msg):
    if err is not None:
        delivery_errors.append(str(err))
    else:
        produced[(msg.partition(), msg.offset())] = int(msg.key()[4:])


consumed = {}  # i -> times read
positions = {}  # (partition, offset) -> i, as read (checked against the delivery reports at the end)
members = []  # (consumer, name)
serial = [0]


def add_member():
    serial[0] += 1
    name = f"churn-{serial[0]}"
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 300})
    c.subscribe([topic])
    members.append((c, name))


def poll_members():
    for c, name in members:
        msgs = c.consume(num_messages=200, timeout=0.02)
        for msg in msgs:
            if msg.error():
                fail(f"{name}: consumer error {msg.error()}")
            # A message may be read before its delivery report arrives: identify it by its key.
            i = int(msg.key()[4:])
            check(msg.key() == key(i) and msg.value() == value(i), f"{name}: content differs for message {i}")
            where = (msg.partition(), msg.offset())
            check(positions.setdefault(where, i) == i,
                  f"{name}: partition {where[0]} offset {where[1]} read as message {i} and as {positions[where]}")
            consumed[i] = consumed.get(i, 0) + 1
        if msgs:
            try:
                for tp in c.commit(asynchronous=False):
                    if tp.error is not None and tp.error.code() not in REBALANCE_ERRORS:
                        fail(f"{name}: commit of partition {tp.partition}: {tp.error}")
            except KafkaException as e:
                if e.args[0].code() not in REBALANCE_ERRORS:
                    fail(f"{name}: commit: {e}")


next_i = 0
add_member()
add_member()
churn_end = time.monotonic() + CHURN_SECONDS
next_change = time.monotonic() + 0.3
joins = leaves = 0
while time.monotonic() < churn_end:
    for _ in range(20):
        producer.produce(topic, key=key(next_i), value=value(next_i), partition=next_i % partitions,
                         on_delivery=on_delivery)
        next_i += 1
    producer.poll(0)
    poll_members()
    if time.monotonic() >= next_change:
        next_change = time.monotonic() + rng.uniform(0.2, 0.6)
        if len(members) < 2 or (len(members) < MAX_MEMBERS and rng.random() < 0.5):
            add_member()
            joins += 1
        else:
            c, _ = members.pop(rng.randrange(len(members)))
            c.close()
            leaves += 1
check(producer.flush(30) == 0, "messages undelivered after flush")
check(not delivery_errors, f"delivery errors: {delivery_errors[:5]}")
print(f"seed {seed}: {joins} joins and {leaves} leaves while producing {next_i} messages", flush=True)

while len(members) > 2:
    c, _ = members.pop()
    c.close()
while len(members) < 2:
    add_member()


def settled():
    """Every message read, the members' assignments split every partition, and the coordinator
    agrees: Stable with exactly these members (their assignments may lag a rebalance otherwise)."""
    split = [{tp.partition for tp in c.assignment()} for c, _ in members]
    if not (all(split) and sum(len(s) for s in split) == partitions and set().union(*split) == ALL
            and len(consumed) == len(produced)):
        return False
    d = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    return (d.state == ConsumerGroupState.STABLE
            and sorted(m.client_id for m in d.members) == sorted(name for _, name in members))


settle_start = time.monotonic()
deadline = Deadline(30, "the group settling after the churn and reading everything")
while not settled():
    deadline.check()
    for _ in range(10):
        poll_members()
print(f"settled and caught up {time.monotonic() - settle_start:.1f} s after the churn", flush=True)
missing = set(produced.values()) - set(consumed)
check(not missing, f"{len(missing)} messages never read, e.g. {sorted(missing)[:10]}")
wrong = {where: i for where, i in positions.items() if produced.get(where) != i}
check(not wrong, f"messages read at other positions than acknowledged: {list(wrong.items())[:5]}")
ends = {p: 0 for p in ALL}
for (p, o) in produced:
    ends[p] = max(ends[p], o + 1)
deadline = Deadline(10, "the committed offsets reaching the log ends")
while True:
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                            request_timeout=10)[group].result(timeout=15)
    committed = {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic}
    if committed == ends:
        break
    if deadline.left() <= 0:
        fail(f"committed {committed}, want the log ends {ends}")
    poll_members()
again = sum(1 for n in consumed.values() if n > 1)
print(f"every one of {len(produced)} messages read ({again} more than once, after rebalances)", flush=True)
for c, _ in members:
    c.close()
print("OK", flush=True)
