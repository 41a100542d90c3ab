"""OffsetDelete through kafka-python's KafkaAdminClient.delete_group_offsets (confluent-kafka's
Python AdminClient has no call for it), with confluent-kafka committing and listing: commits
offsets for two partitions, deletes one, and checks only that one is gone; then, while a
subscribed member is in the group, deleting the offsets of its topic is refused with
GROUP_SUBSCRIBED_TO_TOPIC and nothing is removed; once the member has left, the rest goes.

usage: mixed_offset_delete.py BOOTSTRAP TOPIC GROUP"""

import sys
import time

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient

from common import Deadline, check

bootstrap, topic, group = sys.argv[1], sys.argv[2], sys.argv[3]
admin = AdminClient({"bootstrap.servers": bootstrap})
kp_admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)


def committed():
    """{partition: offset} the group has committed for the topic (absent: none)."""
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0), TopicPartition(topic, 1)])]
    result = admin.list_consumer_group_offsets(request)[group].result(timeout=15)
    return {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}


def delete(partitions):
    """{partition: error name} of one OffsetDelete ("NoError" when deleted)."""
    result = kp_admin.delete_group_offsets(group, [KpTopicPartition(topic, p) for p in partitions])
    return {tp.partition: error.__name__ for tp, error in result.items()}


# 1. Offsets committed from outside the group (manual assignment), then one of them deleted.
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
c.commit(offsets=[TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 7)], asynchronous=False)
c.close()
check(committed() == {0: 5, 1: 7}, f"committed before the delete: {committed()}")
deleted = delete([0])
check(deleted == {0: "NoError"}, f"delete answer: {deleted}")
check(committed() == {1: 7}, f"after deleting partition 0: {committed()}")

# 2. A subscribed member: its topic's offsets are protected.
member = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                   "session.timeout.ms": 6000})
member.subscribe([topic])
deadline = Deadline(30, "the member gets its assignment")
while not member.assignment():
    deadline.check()
    member.poll(0.2)
refused = delete([1])
check(refused == {1: "GroupSubscribedToTopicError"}, f"expected GROUP_SUBSCRIBED_TO_TOPIC: {refused}")
check(committed() == {1: 7}, f"a refused delete removed something: {committed()}")
member.close()

# 3. Once the member has left (LeaveGroup in close), the rest can go.
deadline = Deadline(15, "the offsets can be deleted after the member left")
while delete([1]) != {1: "NoError"}:
    deadline.check()
    time.sleep(0.2)
check(committed() == {}, f"after deleting everything: {committed()}")
kp_admin.close()
print("ok")
