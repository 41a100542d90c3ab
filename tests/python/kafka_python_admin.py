"""kafka-python's KafkaAdminClient (a second admin implementation): create a topic with a config,
describe it, alter it, create partitions, delete the topic; plus a gzip-compressed produce read
back, the codec implemented in Python rather than in librdkafka.

usage: kafka_python_admin.py BOOTSTRAP"""

import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic

from common import Deadline, check

bootstrap = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
topic = "kp-admin"

admin.create_topics([NewTopic(topic, 2, 1, topic_configs={"retention.ms": "86400000"})])


def wait_topics(present):
    deadline = Deadline(15, f"{topic} {'listed' if present else 'gone'}")
    while (topic in admin.list_topics()) != present:
        deadline.check()
        time.sleep(0.1)


def retention_ms():
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    # kafka-python 3: {'topic': {name: {config: {'value': ...}}}}
    return res.get("topic", {}).get(topic, {}).get("retention.ms", {}).get("value")


wait_topics(True)
check(retention_ms() == "86400000", f"describe_configs retention.ms = {retention_ms()!r}")
admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "3600000"})])
check(retention_ms() == "3600000", f"after alter_configs retention.ms = {retention_ms()!r}")
admin.create_partitions({topic: NewPartitions(4)})
deadline = Deadline(15, "4 partitions")
while len(admin.describe_topics([topic])[0]["partitions"]) != 4:
    deadline.check()
    time.sleep(0.1)
print("admin checked", flush=True)

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip", linger_ms=20)
values = [f"gzip message {i} ".encode() * 20 for i in range(2000)]
futures = [producer.send(topic, value=v, partition=3) for v in values]
producer.flush(timeout=30)
offsets = [f.get(timeout=30).offset for f in futures]
check(offsets == list(range(len(values))), "gzip produce offsets are not 0..1999")
producer.close(timeout=10)
consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
tp = TopicPartition(topic, 3)
consumer.assign([tp])
consumer.seek_to_beginning(tp)
got = []
deadline = Deadline(60, "reading the gzip batch back")
while len(got) < len(values):
    deadline.check()
    for records in consumer.poll(timeout_ms=1000).values():
        got.extend(r.value for r in records)
consumer.close()
check(got == values, "the gzip-compressed messages read back differ")
print("gzip round trip checked", flush=True)

admin.delete_topics([topic])
wait_topics(False)
admin.close()
print("OK", flush=True)
