"""kafka-python against DescribeLogDirs and DescribeProducers (issue 19, item 5).

describe_log_dirs reports the broker's one log directory (the data dir, as an absolute path) with
its volume's sizes and the size of each partition, offset lag 0 and no future logs; asked for a
topic that does not exist it leaves it out, as Kafka does. describe_producers reports the
idempotent producer that wrote a partition (its id, epoch, last sequence and last timestamp, no
coordinator epoch and no open transaction), no producer for a partition written without
idempotence, and UNKNOWN_TOPIC_OR_PARTITION for a topic that does not exist.

usage: kafka_python_log_dirs_producers.py BOOTSTRAP DATA_DIR"""

import os
import sys
import time

from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import UnknownTopicOrPartitionError

from common import check

RECORDS = 25

bootstrap, data_dir = sys.argv[1], sys.argv[2]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
admin.create_topics([NewTopic("dld-a", 2, 1), NewTopic("dld-b", 1, 1)])

before_ms = int(time.time() * 1000)
idempotent = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                           max_in_flight_requests_per_connection=1)
for i in range(RECORDS):
    idempotent.send("dld-a", value=b"v" * 100, partition=0).get(timeout=15)
idempotent.close()
plain = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks=1)
plain.send("dld-b", value=b"plain", partition=0).get(timeout=15)
plain.close()
after_ms = int(time.time() * 1000)

# Every partition of every topic.
answer = admin.describe_log_dirs()
check(len(answer) == 1 and answer[0]["broker"] == 0, f"brokers answered: {answer}")
dirs = answer[0]["log_dirs"]
check(len(dirs) == 1, f"log dirs: {dirs}")
log_dir = dirs[0]
check(log_dir["error_code"] == 0, f"log dir error: {log_dir}")
check(log_dir["log_dir"] == os.path.abspath(data_dir),
      f"log dir {log_dir['log_dir']}, want {os.path.abspath(data_dir)}")
check(log_dir["total_bytes"] > 0 and 0 <= log_dir["usable_bytes"] <= log_dir["total_bytes"],
      f"volume sizes: total {log_dir['total_bytes']} usable {log_dir['usable_bytes']}")
sizes = {(t["name"], p["partition_index"]): p for t in log_dir["topics"] for p in t["partitions"]}
check(set(sizes) == {("dld-a", 0), ("dld-a", 1), ("dld-b", 0)}, f"partitions listed: {sorted(sizes)}")
check(sizes[("dld-a", 0)]["partition_size"] >= RECORDS * 100,
      f"dld-a/0 holds {RECORDS} records of 100 bytes: {sizes[('dld-a', 0)]}")
check(sizes[("dld-a", 1)]["partition_size"] == 0, f"dld-a/1 is empty: {sizes[('dld-a', 1)]}")
check(0 < sizes[("dld-b", 0)]["partition_size"] < sizes[("dld-a", 0)]["partition_size"],
      f"dld-b/0 holds one small record: {sizes[('dld-b', 0)]}")
check(all(p["offset_lag"] == 0 and p["is_future_key"] is False for p in sizes.values()),
      f"offset lag and future flag: {sizes}")

# Only what is asked for; a topic that does not exist is left out.
answer = admin.describe_log_dirs({"dld-a": [0], "dld-missing": [0]})
topics = answer[0]["log_dirs"][0]["topics"]
listed = [(t["name"], p["partition_index"]) for t in topics for p in t["partitions"]]
check(listed == [("dld-a", 0)], f"asked dld-a/0 and a missing topic, listed {listed}")
print(f"describe_log_dirs: {log_dir['log_dir']}, dld-a/0 is "
      f"{sizes[('dld-a', 0)]['partition_size']} bytes", flush=True)

states = admin.describe_producers([TopicPartition("dld-a", 0), TopicPartition("dld-b", 0)])
producers = states[TopicPartition("dld-a", 0)].active_producers
check(len(producers) == 1, f"dld-a/0 producers: {producers}")
p = producers[0]
check(p.producer_id >= 0 and p.producer_epoch == 0, f"producer id and epoch: {p}")
check(p.last_sequence == RECORDS - 1, f"last sequence {p.last_sequence}, want {RECORDS - 1}")
check(before_ms <= p.last_timestamp <= after_ms,
      f"last timestamp {p.last_timestamp} not within [{before_ms}, {after_ms}]")
check(p.coordinator_epoch == -1 and p.current_transaction_start_offset == -1,
      f"no transaction: {p}")
check(states[TopicPartition("dld-b", 0)].active_producers == [],
      f"dld-b/0 was written without idempotence: {states[TopicPartition('dld-b', 0)]}")
try:
    admin.describe_producers([TopicPartition("dld-missing", 0)], broker_id=0)
    check(False, "describe_producers of a missing topic succeeded")
except UnknownTopicOrPartitionError:
    pass
print(f"describe_producers: producer {p.producer_id} at sequence {p.last_sequence}", flush=True)
admin.close()
