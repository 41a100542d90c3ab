"""confluent-kafka AdminClient against a node whose controller quorum has lost its majority:
CreateTopics, DeleteTopics and CreatePartitions each fail within BOUND_S seconds with
REQUEST_TIMED_OUT, an error Kafka's protocol marks retriable. With `retry` (the quorum is
back), the same three changes are sent again and each takes effect, or was already applied
(a timed-out change may still have committed): the topics are then as asked.

usage: confluent_admin_no_majority.py BOOTSTRAP refused|retry NEW_TOPIC DOOMED_TOPIC GROW_TOPIC PARTITIONS BOUND_S"""

import sys
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from common import Deadline, check, fail

bootstrap, mode, new_topic, doomed, grow, partitions, bound_s = sys.argv[1:8]
partitions = int(partitions)
bound_s = float(bound_s)
admin = AdminClient({"bootstrap.servers": bootstrap})


def outcome(what, futures):
    """The KafkaError of the single future (None on success) and how long it took."""
    started = time.monotonic()
    (future,) = futures.values()
    try:
        future.result(timeout=bound_s + 10)
        error = None
    except KafkaException as e:
        error = e.args[0]
    elapsed = time.monotonic() - started
    print(f"{what}: {error.name() if error else 'ok'} after {elapsed:.2f} s "
          f"({error.str() if error else ''})", flush=True)
    return error, elapsed


def changes():
    timeout = {"operation_timeout": bound_s, "request_timeout": bound_s + 5}
    yield "CreateTopics", admin.create_topics([NewTopic(new_topic, 2, 1)], **timeout), \
        KafkaError.TOPIC_ALREADY_EXISTS
    yield "DeleteTopics", admin.delete_topics([doomed], **timeout), \
        KafkaError.UNKNOWN_TOPIC_OR_PART
    yield "CreatePartitions", admin.create_partitions([NewPartitions(grow, partitions)], **timeout), \
        KafkaError.INVALID_PARTITIONS


if mode == "refused":
    for what, futures, _ in changes():
        error, elapsed = outcome(what, futures)
        check(error is not None, f"{what} succeeded without a majority")
        check(error.code() == KafkaError.REQUEST_TIMED_OUT,
              f"{what}: {error.name()} ({error.str()}), want REQUEST_TIMED_OUT")
        check("NOT_CONTROLLER" not in error.str(),
              f"{what}: a client of a broker never sees NOT_CONTROLLER: {error.str()}")
        check(elapsed < bound_s, f"{what} answered after {elapsed:.2f} s, want < {bound_s} s")
elif mode == "retry":
    for what, futures, already in changes():
        error, _ = outcome(what, futures)
        check(error is None or error.code() == already,
              f"{what} retried: {error.name() if error else ''} ({error.str() if error else ''})")
    deadline = Deadline(15, "the retried changes listed")
    while True:
        listed = admin.list_topics(timeout=10).topics
        if new_topic in listed and doomed not in listed and grow in listed \
                and len(listed[grow].partitions) == partitions:
            break
        deadline.check()
        time.sleep(0.1)
else:
    fail(f"unknown mode {mode}")
