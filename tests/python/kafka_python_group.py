"""kafka-python consumer group (pure Python, independent of librdkafka), in two steps around a
broker restart:

  first COUNT   produces COUNT messages, consumes them all with a subscribed KafkaConsumer
                (enable_auto_commit=False), commit()s, and checks committed() is the log end
                of every partition. Exits as soon as the commit is acknowledged.
  resume COUNT  checks committed() still is the log end of every partition (nothing consumed
                since), produces COUNT more, and a new subscribed consumer in the same group
                reads exactly those, starting at the committed offsets; commits again.

usage: kafka_python_group.py BOOTSTRAP TOPIC PARTITIONS GROUP (first|resume) COUNT"""

import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from common import Deadline, check, key, value

bootstrap, topic, partitions, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
step, count = sys.argv[5], int(sys.argv[6])
tps = [TopicPartition(topic, p) for p in range(partitions)]


def new_consumer():
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, client_id=f"riffle-{step}",
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         session_timeout_ms=10000, heartbeat_interval_ms=1000,
                         request_timeout_ms=30000)


def committed(consumer):
    return {tp.partition: consumer.committed(tp, timeout_ms=15000) for tp in tps}


def produce(first_i):
    """Produces COUNT messages with indexes first_i.. round-robin; returns (partition, offset) -> i."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    futures = [(i, producer.send(topic, key=key(i), value=value(i), partition=i % partitions))
               for i in range(first_i, first_i + count)]
    producer.flush(timeout=60)
    produced = {}
    for i, fut in futures:
        md = fut.get(timeout=30)
        produced[(md.partition, md.offset)] = i
    producer.close(timeout=10)
    return produced


def consume_all(consumer, produced, start):
    """Subscribes and reads until every produced message was read once; start[p] is the first
    offset each partition must be read from."""
    consumer.subscribe([topic])
    read = {}
    next_offset = dict(start)
    deadline = Deadline(60, f"consuming {len(produced)} messages in group {group}")
    while len(read) < len(produced):
        deadline.check()
        for tp, records in consumer.poll(timeout_ms=500, max_records=2000).items():
            for msg in records:
                p, o = tp.partition, msg.offset
                check(o == next_offset[p], f"partition {p}: read offset {o} where {next_offset[p]} was next "
                                           f"(the group's consumption started at {start[p]})")
                i = produced.get((p, o))
                check(i is not None, f"partition {p} offset {o} is not one of the messages produced in this step")
                check(msg.key == key(i) and msg.value == value(i), f"partition {p} offset {o}: content differs")
                read[i] = (p, o)
                next_offset[p] += 1
    check(set(consumer.assignment()) == set(tps), f"one member, assigned {consumer.assignment()}")
    consumer.commit()
    return next_offset


consumer = new_consumer()
if step == "first":
    produced = produce(0)
    ends = consume_all(consumer, produced, {p: 0 for p in range(partitions)})
    got = committed(consumer)
    check(got == ends, f"committed {got} after commit(), want the log ends {ends}")
    print(f"consumed {count} messages and committed {got}", flush=True)
    consumer.close(autocommit=False)
elif step == "resume":
    ends = consumer.end_offsets(tps, timeout_ms=15000)
    ends = {tp.partition: o for tp, o in ends.items()}
    check(sum(ends.values()) > 0, "the topic is empty")
    before = committed(consumer)
    check(before == ends, f"committed offsets after the restart {before}, want the log ends {ends}")
    print(f"committed offsets survived: {before}", flush=True)
    produced = produce(sum(ends.values()))
    after = consume_all(consumer, produced, before)
    got = committed(consumer)
    check(got == after, f"committed {got} after the second commit(), want {after}")
    print(f"a new member resumed at the committed offsets and read only the {count} new messages", flush=True)
    consumer.close(autocommit=False)
else:
    sys.exit(f"unknown step {step}")
print("OK", flush=True)
