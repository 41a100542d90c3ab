"""confluent-kafka on a compacted topic (cleanup.policy=compact): records without a key are
refused with INVALID_RECORD, the keyed records of the same batch with librdkafka's
_INVALID_DIFFERENT_RECORD (KIP-467: the broker names the records at fault), and nothing refused
is stored; keyed batches are accepted. Run once per compression codec.

usage: confluent_compacted_keys.py BOOTSTRAP TOPIC CODEC"""

import sys

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import check, fail

bootstrap, topic, codec = sys.argv[1], sys.argv[2], sys.argv[3]

admin = AdminClient({"bootstrap.servers": bootstrap})
created = admin.create_topics(
    [NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"})], operation_timeout=10)
created[topic].result(timeout=15)

producer = Producer({
    "bootstrap.servers": bootstrap,
    "acks": "all",
    "linger.ms": 50,  # each round below goes as one batch
    "compression.type": codec,
    "retries": 0,
    "message.timeout.ms": 15000,
})


def produce_round(messages):
    """Produces (key, value) pairs in one batch; the delivery error code of each, in order."""
    results = [None] * len(messages)

    def reporter(i):
        def on_delivery(err, _msg):
            results[i] = err.code() if err is not None else KafkaError.NO_ERROR
        return on_delivery

    for i, (k, v) in enumerate(messages):
        producer.produce(topic, key=k, value=v, partition=0, on_delivery=reporter(i))
    check(producer.flush(20) == 0, "deliveries outstanding after 20 s")
    return results


keyed = [(f"k{i}".encode(), f"kept-{i}".encode()) for i in range(10)]
results = produce_round(keyed)
check(results == [KafkaError.NO_ERROR] * 10, f"keyed batch refused: {results}")

keyless = [(None, f"keyless-{i}".encode()) for i in range(5)]
results = produce_round(keyless)
check(results == [KafkaError.INVALID_RECORD] * 5, f"keyless batch: {results}")

mixed = [(None if i % 3 == 0 else f"m{i}".encode(), f"mixed-{i}".encode()) for i in range(9)]
results = produce_round(mixed)
expected = [KafkaError.INVALID_RECORD if i % 3 == 0 else KafkaError._INVALID_DIFFERENT_RECORD
            for i in range(9)]
check(results == expected, f"mixed batch: {results}, expected {expected}")

check(produce_round(keyed[:3]) == [KafkaError.NO_ERROR] * 3, "keyed batch after refusals")

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader",
                     "enable.auto.commit": False})
consumer.assign([TopicPartition(topic, 0, 0)])
values = []
while len(values) < 13:
    msg = consumer.poll(10)
    if msg is None:
        fail(f"only {len(values)} of 13 records read back: {values}")
    check(msg.error() is None, f"consume error: {msg.error()}")
    values.append(msg.value().decode())
consumer.close()
check(values == [v.decode() for _, v in keyed + keyed[:3]],
      f"the log holds exactly the accepted records: {values}")
print("ok")
