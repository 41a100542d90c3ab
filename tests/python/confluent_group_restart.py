"""confluent-kafka consumer group across a broker restart, with the consumer running throughout:
it reads and commits (synchronously) everything produced, creates READY_FILE and keeps polling
while the test restarts the broker; once RESTARTED_FILE exists, more messages are produced and
the same consumer, back in the group, must read exactly those: nothing from before the restart
again (it was committed) and nothing lost.

usage: confluent_group_restart.py BOOTSTRAP TOPIC PARTITIONS GROUP READY_FILE RESTARTED_FILE"""

import os
import sys
import time

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError
from confluent_kafka.admin import AdminClient

from common import Deadline, NumberedProducer, check, fail

bootstrap, topic, partitions, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ready_file, restarted_file = sys.argv[5], sys.argv[6]
# Reconnect quickly once the broker is back.
QUICK_RECONNECT = {"reconnect.backoff.ms": 100, "reconnect.backoff.max.ms": 500}

numbered = NumberedProducer(bootstrap, topic, partitions, fresh_client=True)
produce = numbered.produce


consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": "riffle-restart",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, **QUICK_RECONNECT})
consumer.subscribe([topic])
got = set()
# While the broker is down the client reports these; they are not failures of the group.
TRANSIENT = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE}


def pump(until, seconds, what):
    deadline = Deadline(seconds, what)
    while not until():
        deadline.check()
        msgs = consumer.consume(num_messages=500, timeout=0.1)
        read = 0
        for msg in msgs:
            if msg.error():
                if msg.error().code() in TRANSIENT:
                    continue
                fail(f"consumer error {msg.error()}")
            p, o = msg.partition(), msg.offset()
            i = numbered.number_of(msg, "consumer")
            check(i not in got, f"message {i} (partition {p} offset {o}) read twice")
            got.add(i)
            read += 1
        if read:
            for tp in consumer.commit(asynchronous=False):
                check(tp.error is None, f"commit of partition {tp.partition} failed: {tp.error}")


first = produce(2000)
pump(lambda: len(got) == len(first), 30, f"consuming {len(first)} messages")
print(f"consumed and committed {len(first)} messages; the broker may restart", flush=True)
open(ready_file, "w").close()
pump(lambda: os.path.exists(restarted_file), 60, "the test restarting the broker")
restarted_at = time.monotonic()
second = produce(1000)
pump(lambda: len(got) == len(first) + len(second), 45,
     f"the consumer reading the {len(second)} messages produced after the restart")
print(f"read the {len(second)} new messages {time.monotonic() - restarted_at:.1f} s after the restart", flush=True)
end = time.monotonic() + 1.0
pump(lambda: time.monotonic() > end, 10, "polling")
check(got == first | second, "the consumer missed or re-read messages across the restart")

admin = AdminClient({"bootstrap.servers": bootstrap})
res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                        request_timeout=10)[group].result(timeout=15)
committed = {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic}
ends = numbered.end_offsets()
check(committed == ends, f"committed {committed}, want the log ends {ends}")
consumer.close()
print("OK", flush=True)
