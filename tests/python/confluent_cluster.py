"""confluent-kafka against a cluster: the admin client bootstrapped at one node sees every broker
and the active controller, partitions led by several brokers; an idempotent producer
bootstrapped at that node writes to every partition (librdkafka sends each partition's batches
to its leader); a consumer bootstrapped at another node reads every record back.

usage: confluent_cluster.py PRODUCE_BOOTSTRAP CONSUME_BOOTSTRAP TOPIC PARTITIONS MESSAGES BROKERS"""

import sys

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from common import Deadline, check, fail, key, value

produce_at, consume_at, topic = sys.argv[1], sys.argv[2], sys.argv[3]
partitions, messages, brokers = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])

admin = AdminClient({"bootstrap.servers": produce_at})
metadata = admin.list_topics(topic, timeout=15)
check(len(metadata.brokers) == brokers,
      f"Metadata from {produce_at} lists brokers {sorted(metadata.brokers)}, not {brokers}")
described = metadata.topics[topic]
check(described.error is None, f"topic {topic}: {described.error}")
leaders = {p.id: p.leader for p in described.partitions.values()}
check(sorted(leaders) == list(range(partitions)), f"partitions {sorted(leaders)}")
check(all(l in metadata.brokers for l in leaders.values()), f"leaders {leaders} not all live")
check(len(set(leaders.values())) > 1, f"every partition led by one broker: {leaders}")
cluster = admin.describe_cluster(request_timeout=15).result()
ids = sorted(n.id for n in cluster.nodes)
check(len(ids) == brokers, f"DescribeCluster lists {ids}")
check(cluster.controller is not None and cluster.controller.id in ids,
      f"DescribeCluster controller {cluster.controller} is not one of {ids}")
print(f"leaders {leaders}; controller {cluster.controller.id}", flush=True)

producer = Producer({
    "bootstrap.servers": produce_at,
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "message.timeout.ms": 30000,
})
delivered = {}
errors = []


def on_delivery(err, msg):
    if err is not None:
        errors.append(f"{err} for {msg.key()!r}")
    else:
        delivered[(msg.partition(), msg.offset())] = int(msg.key()[4:])


for i in range(messages):
    producer.produce(topic, value=value(i), key=key(i), partition=i % partitions,
                     on_delivery=on_delivery)
    producer.poll(0)
remaining = producer.flush(30)
check(remaining == 0, f"{remaining} messages undelivered")
check(not errors, f"{len(errors)} delivery errors, first: {errors[:5]}")
check(len(delivered) == messages, f"{len(delivered)} deliveries for {messages} messages")
print(f"produced {messages} messages through {produce_at}", flush=True)

consumer = Consumer({
    "bootstrap.servers": consume_at,
    "group.id": "riffle-tests-unused",
    "enable.auto.commit": False,
    "enable.partition.eof": True,
})
consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
seen = {}
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
        i = delivered.get((msg.partition(), msg.offset()))
        check(i is not None, f"record at {msg.partition()}/{msg.offset()} was never produced")
        check(msg.value() == value(i), f"record {i}: wrong value")
        seen[(msg.partition(), msg.offset())] = i
consumer.close()
check(sorted(seen.values()) == list(range(messages)), "not every record was read back")
print(f"consumed {messages} messages through {consume_at}", flush=True)
