"""confluent-kafka consumer group, end to end: two consumers subscribed in one group split the
partitions and together read every message exactly once, each committing synchronously; when
one closes (LeaveGroup) the other takes every partition and resumes at the committed offsets; a
third consumer, started after both closed, reads only what was produced since. AdminClient lists
and describes the group (Stable, its members and their assignments), reads its committed
offsets, cannot delete it while a member is active (NON_EMPTY_GROUP) and deletes it once empty,
which drops its offsets.

The broker must run with a short group_initial_rebalance_delay_ms; LeaveGroup effects are
required well within session.timeout.ms, so a member that only expires fails the script.

usage: confluent_group.py BOOTSTRAP TOPIC PARTITIONS GROUP"""

import sys
import time

from confluent_kafka import (OFFSET_INVALID, Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions,
                             KafkaError, KafkaException)
from confluent_kafka.admin import AdminClient

from common import Deadline, NumberedProducer, check, fail

bootstrap, topic, partitions, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ALL = set(range(partitions))
SESSION_TIMEOUT_MS = 6000
# A member that leaves must be out of the group well before it could have expired.
LEAVE_SECONDS = 4.0

admin = AdminClient({"bootstrap.servers": bootstrap})
numbered = NumberedProducer(bootstrap, topic, partitions)
produce = numbered.produce


end_offsets = numbered.end_offsets


def consumer(name):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": name,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": 500,
    })
    c.subscribe([topic])
    return c


def assigned(c):
    return {tp.partition for tp in c.assignment()}


got = {}  # i -> name of the consumer that read it


def pump(members, until, seconds, what):
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
                p, o = msg.partition(), msg.offset()
                check(p in mine, f"{name}: message from partition {p}, assigned {sorted(mine)}")
                i = numbered.number_of(msg, name)
                check(i not in got, f"message {i} (partition {p} offset {o}) consumed twice: "
                                    f"by {got.get(i)} and by {name}")
                got[i] = name
            if msgs:
                for tp in c.commit(asynchronous=False):
                    check(tp.error is None, f"{name}: commit of partition {tp.partition} failed: {tp.error}")


def describe():
    return admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)


def drain(members, seconds):
    """Keeps polling for a while: anything read now is checked (and must not be a duplicate)."""
    end = time.monotonic() + seconds
    pump(members, lambda: time.monotonic() > end, seconds + 10, "polling")


def wait_described(members, want_state, want_members, seconds, what):
    """Describes the group (polling the members meanwhile) until it is in want_state with
    members whose client ids are want_members; returns the description."""
    deadline = Deadline(seconds, what)
    while True:
        d = describe()
        if d.state == want_state and sorted(m.client_id for m in d.members) == sorted(want_members):
            return d
        if deadline.left() <= 0:
            fail(f"timed out: {what}: state {d.state}, members {[m.client_id for m in d.members]}")
        drain(members, 0.2)


def committed_offsets(deleted=False):
    req = [ConsumerGroupTopicPartitions(group)]
    try:
        res = admin.list_consumer_group_offsets(req, request_timeout=10)[group].result(timeout=15)
    except KafkaException as e:
        # A group that no longer exists may be answered GROUP_ID_NOT_FOUND instead of no offsets.
        if deleted and e.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
            return {}
        fail(f"list_consumer_group_offsets: {e}")
    return {tp.partition: tp.offset for tp in res.topic_partitions or [] if tp.topic == topic}


def listed_groups():
    res = admin.list_consumer_groups(request_timeout=10).result(timeout=15)
    check(not res.errors, f"list_consumer_groups errors: {res.errors}")
    return {g.group_id: g for g in res.valid}


# 1. Two members split the partitions (the topic is still empty, so nothing can be read twice
#    across a rebalance while they settle).
a, b = consumer("riffle-group-a"), consumer("riffle-group-b")
members = [(a, "riffle-group-a"), (b, "riffle-group-b")]


def split():
    pa, pb = assigned(a), assigned(b)
    return bool(pa) and bool(pb) and not (pa & pb) and (pa | pb) == ALL


pump(members, split, 30, "two consumers splitting the partitions between them")
print(f"split: a {sorted(assigned(a))}, b {sorted(assigned(b))}", flush=True)
d = wait_described(members, ConsumerGroupState.STABLE, ["riffle-group-a", "riffle-group-b"], 10,
                   "describe_consumer_groups showing Stable with both members")
for m in d.members:
    c = a if m.client_id == "riffle-group-a" else b
    described = {tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic}
    check(described == assigned(c),
          f"describe: {m.client_id} assigned {sorted(described)}, the consumer has {sorted(assigned(c))}")
check(group in listed_groups(), f"list_consumer_groups lacks {group}: {sorted(listed_groups())}")
print("describe_consumer_groups and list_consumer_groups checked", flush=True)

# 2. Both consume concurrently: every message exactly once, each from its own partitions.
first = produce(4000)
pump(members, lambda: len(got) == len(first), 60, f"the pair consuming {len(first)} messages")
by = {name: sum(1 for n in got.values() if n == name) for _, name in members}
check(all(by.values()), f"a consumer read nothing: {by}")
committed = committed_offsets()
check(committed == end_offsets(),
      f"list_consumer_group_offsets {committed}, want the end offsets {end_offsets()}")
print(f"pair consumed {len(got)} messages exactly once ({by}); committed offsets checked", flush=True)

try:
    admin.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    fail("delete_consumer_groups succeeded while the group has active members")
except KafkaException as e:
    check(e.args[0].code() == KafkaError.NON_EMPTY_GROUP,
          f"delete_consumer_groups of an active group: {e}, want NON_EMPTY_GROUP")
check(committed_offsets() == end_offsets(), "the refused delete changed the committed offsets")
print("delete_consumer_groups refused with NON_EMPTY_GROUP", flush=True)

# 3. a leaves; b takes every partition and resumes at the committed offsets.
left_at = time.monotonic()
a.close()
members = [(b, "riffle-group-b")]
pump(members, lambda: assigned(b) == ALL, LEAVE_SECONDS,
     "the remaining consumer getting every partition after the other one left")
print(f"b has all partitions {time.monotonic() - left_at:.1f} s after a left", flush=True)
d = wait_described(members, ConsumerGroupState.STABLE, ["riffle-group-b"], 5,
                   "describe_consumer_groups showing only b")
check({tp.partition for tp in d.members[0].assignment.topic_partitions} == ALL,
      f"describe: b's assignment {d.members[0].assignment.topic_partitions}")
second = produce(800)
pump(members, lambda: len(got) == len(first) + len(second), 30, f"b consuming {len(second)} new messages")
drain(members, 1.0)
check(committed_offsets() == end_offsets(), "committed offsets after b's consumption")
print(f"b consumed {len(second)} new messages, nothing twice", flush=True)

# 4. Everyone gone: the group is empty but keeps its offsets; a third consumer starts there.
closed_at = time.monotonic()
b.close()
d = describe()
deadline = Deadline(LEAVE_SECONDS, "the group becoming Empty after its last member left")
while d.state != ConsumerGroupState.EMPTY:
    deadline.check()
    time.sleep(0.1)
    d = describe()
check(not d.members, f"an empty group with members {[m.client_id for m in d.members]}")
print(f"group Empty {time.monotonic() - closed_at:.1f} s after the last member left", flush=True)
check(committed_offsets() == end_offsets(), "committed offsets of the empty group")
third = produce(400)
c = consumer("riffle-group-c")
members = [(c, "riffle-group-c")]
pump(members, lambda: len(got) == len(first) + len(second) + len(third), 30,
     f"a new consumer reading the {len(third)} messages produced after the last commit")
drain(members, 1.0)
check({i for i, n in got.items() if n == "riffle-group-c"} == third,
      "the new consumer read something other than the messages produced after the last commit")
check(committed_offsets() == end_offsets(), "committed offsets after the third consumer")
c.close()
print(f"a new member resumed at the committed offsets and read only the {len(third)} new messages", flush=True)

# 5. Delete the empty group: it disappears with its offsets.
deadline = Deadline(LEAVE_SECONDS, "the group becoming Empty after the third consumer left")
while describe().state != ConsumerGroupState.EMPTY:
    deadline.check()
    time.sleep(0.1)
try:
    admin.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
except KafkaException as e:
    fail(f"delete_consumer_groups of an empty group: {e}")
check(group not in listed_groups(), f"list_consumer_groups still shows the deleted {group}")
left = {p: o for p, o in committed_offsets(deleted=True).items() if o != OFFSET_INVALID}
check(not left, f"the deleted group still has committed offsets {left}")
print("delete_consumer_groups checked: the group and its offsets are gone", flush=True)
print("OK", flush=True)
