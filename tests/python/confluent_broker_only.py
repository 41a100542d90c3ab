"""confluent-kafka against a broker-only node (--roles broker): the admin client creates a topic
through it (the node sends it to the controller quorum), sees it listed and led by that node; an
idempotent acks=all producer writes to every partition and a consumer reads every record back,
both bootstrapped at the broker-only node.

usage: confluent_broker_only.py BOOTSTRAP TOPIC PARTITIONS MESSAGES LEADER_ID"""

import sys

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import Deadline, NumberedProducer, check, fail

bootstrap, topic = sys.argv[1], sys.argv[2]
partitions, messages, leader_id = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

admin = AdminClient({"bootstrap.servers": bootstrap})
created = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                              request_timeout=15)
try:
    created[topic].result(timeout=20)
except Exception as e:  # noqa: BLE001 - the message is the diagnosis
    fail(f"create_topics({topic}) through {bootstrap}: {e}")

deadline = Deadline(20, f"{topic} listed with {partitions} partitions led by {leader_id}")
while True:
    deadline.check()
    described = admin.list_topics(topic, timeout=10).topics.get(topic)
    if described is not None and described.error is None:
        leaders = {p.id: p.leader for p in described.partitions.values()}
        if sorted(leaders) == list(range(partitions)) and set(leaders.values()) == {leader_id}:
            break
print(f"created {topic} through {bootstrap}: leaders {leaders}", flush=True)

producer = NumberedProducer(bootstrap, topic, partitions)
producer.produce(messages)
print(f"produced {messages} messages through {bootstrap}", flush=True)

consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "riffle-tests-unused",
    "enable.auto.commit": False,
    "enable.partition.eof": True,
})
consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
seen = set()
eof = set()
deadline = Deadline(60, "consuming every record")
while len(seen) < messages or len(eof) < partitions:
    deadline.check()
    for msg in consumer.consume(num_messages=500, timeout=1.0):
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
                continue
            fail(f"consume error: {msg.error()}")
        seen.add(producer.number_of(msg, "consumer"))
consumer.close()
check(seen == set(range(messages)), "not every record was read back")
print(f"consumed {messages} messages through {bootstrap}", flush=True)
