"""confluent-kafka static membership (group.instance.id, KIP-345): two static members split the
partitions; one closes (a static member sends no LeaveGroup, so the group keeps it) and a new
process with the same group.instance.id joins within session.timeout.ms. As in Kafka, the group
does not rebalance: the newcomer takes over the old incarnation's partitions and the other
member is neither revoked nor reassigned anything.

usage: confluent_group_static.py BOOTSTRAP TOPIC PARTITIONS GROUP"""

import sys
import time

from confluent_kafka import Consumer, ConsumerGroupState
from confluent_kafka.admin import AdminClient

from common import Deadline, check, fail

bootstrap, topic, partitions, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ALL = set(range(partitions))
SESSION_TIMEOUT_MS = 10000
admin = AdminClient({"bootstrap.servers": bootstrap})
events = []  # (client id, "assign" | "revoke", partitions)


def static_member(name, instance_id):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                  "group.instance.id": instance_id, "session.timeout.ms": SESSION_TIMEOUT_MS,
                  "heartbeat.interval.ms": 500, "enable.auto.commit": False})
    c.subscribe([topic],
                on_assign=lambda _, ps: events.append((name, "assign", sorted(p.partition for p in ps))),
                on_revoke=lambda _, ps: events.append((name, "revoke", sorted(p.partition for p in ps))))
    return c


def assigned(c):
    return {tp.partition for tp in c.assignment()}


def poll(members, until, seconds, what):
    deadline = Deadline(seconds, what)
    while not until():
        deadline.check()
        for c in members:
            for msg in c.consume(num_messages=100, timeout=0.05):
                if msg.error():
                    fail(f"consumer error {msg.error()}")
                fail("a message arrived on a topic nobody produced to")


def describe():
    d = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    return d.state, sorted((m.client_id, m.group_instance_id) for m in d.members)


one, two = static_member("static-one", "instance-1"), static_member("static-two", "instance-2")
poll([one, two], lambda: assigned(one) and assigned(two) and not (assigned(one) & assigned(two))
     and (assigned(one) | assigned(two)) == ALL, 30, "two static members splitting the partitions")
old_one, old_two = assigned(one), assigned(two)
print(f"split: instance-1 {sorted(old_one)}, instance-2 {sorted(old_two)}", flush=True)
state = describe()
check(state == (ConsumerGroupState.STABLE, [("static-one", "instance-1"), ("static-two", "instance-2")]),
      f"describe: {state}")
del events[:]

one.close()
closed_at = time.monotonic()
poll([two], lambda: time.monotonic() - closed_at > 1.0, 5, "")
state = describe()
check(state == (ConsumerGroupState.STABLE, [("static-one", "instance-1"), ("static-two", "instance-2")]),
      f"a static member that closed (without LeaveGroup) must stay in the group until its session "
      f"times out: describe {state}")

back = static_member("static-one-restarted", "instance-1")
poll([back, two], lambda: bool(assigned(back)), (SESSION_TIMEOUT_MS / 1000) - 2,
     "the restarted static member getting its partitions back")
print(f"instance-1 back with {sorted(assigned(back))} {time.monotonic() - closed_at:.1f} s after it closed",
      flush=True)
settle = time.monotonic()
poll([back, two], lambda: time.monotonic() - settle > 2.0, 10, "")
check(assigned(back) == old_one,
      f"the restarted instance-1 has {sorted(assigned(back))}, its old incarnation had {sorted(old_one)}")
check(assigned(two) == old_two, f"instance-2 has {sorted(assigned(two))}, had {sorted(old_two)}")
others = [e for e in events if e[0] == "static-two"]
check(not others,
      f"instance-2 went through a rebalance when instance-1 rejoined with its group.instance.id "
      f"(Kafka replaces a static member without rebalancing a Stable group): its callbacks {others}")
state = describe()
check(state == (ConsumerGroupState.STABLE, [("static-one-restarted", "instance-1"), ("static-two", "instance-2")]),
      f"describe after the restart: {state}")
back.close()
two.close()
print("OK", flush=True)
