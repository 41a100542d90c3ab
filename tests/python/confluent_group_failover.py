"""confluent-kafka consumer group, member failure: a second consumer process (the victim) shares
the partitions with this one (the survivor); both consume and commit synchronously; the victim
is killed with SIGKILL, so it never leaves the group. The coordinator must drop it once its
session.timeout.ms (6000) has passed without a heartbeat, not much earlier and not much later,
and the survivor then owns every partition and resumes the victim's at its committed offsets.

usage: confluent_group_failover.py BOOTSTRAP TOPIC PARTITIONS GROUP
       confluent_group_failover.py --victim BOOTSTRAP TOPIC GROUP   (the child this one starts)"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

from common import Deadline, NumberedProducer, check, fail

SESSION_TIMEOUT_MS = 6000
VICTIM_HEARTBEAT_MS = 1000
# The victim's last heartbeat is at most VICTIM_HEARTBEAT_MS before the kill, so it may expire
# from SESSION_TIMEOUT_MS - VICTIM_HEARTBEAT_MS after it on; a little slack below that.
EARLIEST_EXPIRY_S = (SESSION_TIMEOUT_MS - VICTIM_HEARTBEAT_MS) / 1000 - 0.5
# Expiry, then the survivor's next heartbeat, rejoin and sync.
LATEST_TAKEOVER_S = SESSION_TIMEOUT_MS / 1000 + 6


def consumer(bootstrap, group, name, heartbeat_ms):
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": name,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": heartbeat_ms,
    })


def victim(bootstrap, topic, group):
    """Consumes and commits synchronously, reporting its assignment as JSON lines on stdout, until
    it is killed (or 90 s pass, so that it never outlives a broken parent for long)."""
    c = consumer(bootstrap, group, "riffle-victim", VICTIM_HEARTBEAT_MS)
    c.subscribe([topic])
    reported = None
    end = time.monotonic() + 90
    while time.monotonic() < end:
        msgs = c.consume(num_messages=500, timeout=0.1)
        mine = sorted(tp.partition for tp in c.assignment())
        if mine != reported:
            print(json.dumps({"assigned": mine}), flush=True)
            reported = mine
        for msg in msgs:
            if msg.error():
                fail(f"victim: consumer error {msg.error()}")
        if msgs:
            for tp in c.commit(asynchronous=False):
                check(tp.error is None, f"victim: commit of partition {tp.partition} failed: {tp.error}")
    fail("victim: not killed within 90 s")


if sys.argv[1] == "--victim":
    victim(*sys.argv[2:5])
    sys.exit(0)

bootstrap, topic, partitions, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ALL = set(range(partitions))
admin = AdminClient({"bootstrap.servers": bootstrap})
numbered = NumberedProducer(bootstrap, topic, partitions)
produce = numbered.produce


end_offsets = numbered.end_offsets


child = subprocess.Popen([sys.executable, "-u", __file__, "--victim", bootstrap, topic, group],
                         stdout=subprocess.PIPE, text=True)
lines = queue.Queue()
threading.Thread(target=lambda: [lines.put(line) for line in child.stdout], daemon=True).start()
victim_state = {"assigned": None}


def read_victim():
    while True:
        try:
            line = lines.get_nowait()
        except queue.Empty:
            return
        victim_state["assigned"] = set(json.loads(line)["assigned"])


survivor = consumer(bootstrap, group, "riffle-survivor", 500)
survivor.subscribe([topic])
got = {}  # i -> partition, read by the survivor


def assigned():
    return {tp.partition for tp in survivor.assignment()}


def committed_offsets():
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                            request_timeout=10)[group].result(timeout=15)
    return {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic}


def pump(until, seconds, what):
    deadline = Deadline(seconds, what)
    while not until():
        deadline.check()
        check(child.poll() is None or victim_state.get("killed"),
              f"the victim exited on its own ({child.returncode})")
        read_victim()
        msgs = survivor.consume(num_messages=500, timeout=0.1)
        mine = assigned()
        for msg in msgs:
            if msg.error():
                fail(f"survivor: consumer error {msg.error()}")
            p, o = msg.partition(), msg.offset()
            check(p in mine, f"survivor: message from partition {p}, assigned {sorted(mine)}")
            i = numbered.number_of(msg, "survivor")
            check(i not in got, f"survivor: message {i} (partition {p} offset {o}) read twice")
            got[i] = p
        if msgs:
            for tp in survivor.commit(asynchronous=False):
                check(tp.error is None, f"survivor: commit of partition {tp.partition} failed: {tp.error}")


def drain(seconds):
    """Keeps polling for a while: anything read now is checked (and must not be a duplicate)."""
    end = time.monotonic() + seconds
    pump(lambda: time.monotonic() > end, seconds + 10, "polling")


try:
    def split():
        mine, theirs = assigned(), victim_state["assigned"]
        return bool(mine) and bool(theirs) and not (mine & theirs) and (mine | theirs) == ALL

    pump(split, 30, "the survivor and the victim splitting the partitions")
    mine, theirs = assigned(), victim_state["assigned"]
    print(f"split: survivor {sorted(mine)}, victim {sorted(theirs)}", flush=True)

    first = produce(2000)
    mine_first = {i for i in first if i % partitions in mine}
    everything_committed = Deadline(30, "both consumers reading and committing their partitions")
    while committed_offsets() != end_offsets(ALL):
        everything_committed.check()
        drain(0.2)
    check(len(got) == len(mine_first), f"the survivor read {len(got)} of its {len(mine_first)} messages")
    print("both members consumed and committed everything", flush=True)

    os.kill(child.pid, signal.SIGKILL)
    victim_state["killed"] = True
    killed_at = time.monotonic()
    child.wait(10)
    pump(lambda: assigned() == ALL, LATEST_TAKEOVER_S, "the survivor taking over the killed member's partitions")
    took = time.monotonic() - killed_at
    print(f"the survivor owns every partition {took:.1f} s after the kill", flush=True)
    check(took >= EARLIEST_EXPIRY_S,
          f"the killed member was dropped {took:.1f} s after the kill; its last heartbeat was at most "
          f"{VICTIM_HEARTBEAT_MS} ms before it, so its {SESSION_TIMEOUT_MS} ms session had not expired")
    d = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    check(d.state == ConsumerGroupState.STABLE and [m.client_id for m in d.members] == ["riffle-survivor"],
          f"describe after the takeover: state {d.state}, members {[m.client_id for m in d.members]}")

    second = produce(600)
    pump(lambda: len(got) == len(mine_first) + len(second), 30, "the survivor reading the new messages")
    drain(1.0)
    check(set(got) == mine_first | second,
          "the survivor read messages the victim had already committed")
    print(f"the survivor resumed the victim's partitions at their committed offsets "
          f"and read the {len(second)} new messages once", flush=True)
    survivor.close()
finally:
    if child.poll() is None:
        child.kill()
        child.wait(10)
print("OK", flush=True)
