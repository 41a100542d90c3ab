"""kafka-python against the Kafka 4.1 maxima Riffle advertises (issue 19, item 5): it infers broker
4.1 from ApiVersions, and the newest versions answer as Kafka's do, sent with kafka-python's own
codec at exactly that version: Metadata v13 (top-level error code), Produce v13 (topics named by
id, an unknown id is UNKNOWN_TOPIC_ID), Fetch v18 (the records just produced), DescribeCluster v2
(the node, not fenced) and DescribeGroups v6 (an unknown group is GROUP_ID_NOT_FOUND).

usage: kafka_python_api_versions.py BOOTSTRAP"""

import sys
import time
import uuid

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.protocol.admin import DescribeClusterRequest, DescribeGroupsRequest
from kafka.protocol.consumer import FetchRequest
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.producer import ProduceRequest
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder

from common import check

NONE, GROUP_ID_NOT_FOUND, UNKNOWN_TOPIC_ID = 0, 69, 100
TOPIC = "api-versions-41"

bootstrap = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
check(admin._manager.broker_version == (4, 1),
      f"kafka-python infers broker {admin._manager.broker_version}, want (4, 1)")
admin.create_topics([NewTopic(TOPIC, 1, 1)])


def call(request_class, version, **fields):
    request = request_class(min_version=version, max_version=version, **fields)

    async def send():
        return await admin._manager.send(request)
    # min_version = max_version: kafka-python refuses to send it at any other version.
    return admin._manager.run(send)


metadata = call(MetadataRequest, 13, topics=[MetadataRequest.MetadataRequestTopic(name=TOPIC)],
                allow_auto_topic_creation=False)
check(metadata.error_code == NONE, f"metadata v13 top-level error {metadata.error_code}")
check([t.name for t in metadata.topics] == [TOPIC], f"metadata topics {metadata.topics}")
topic_id = metadata.topics[0].topic_id
check(topic_id not in (None, uuid.UUID(int=0)), f"topic id {topic_id}")

builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
now_ms = int(time.time() * 1000)
for i in range(3):
    builder.append(now_ms, f"k{i}".encode(), f"v{i}".encode(), [])
builder.close()
Topic = ProduceRequest.TopicProduceData
Partition = Topic.PartitionProduceData


def produce(tid):
    return call(ProduceRequest, 13, transactional_id=None, acks=-1, timeout_ms=10000,
                topic_data=[Topic(topic_id=tid, partition_data=[
                    Partition(index=0, records=builder.buffer())])])


produced = produce(topic_id)
answer = produced.responses[0]
check(answer.topic_id == topic_id, f"produce v13 answered topic {answer.topic_id}, want {topic_id}")
part = answer.partition_responses[0]
check(part.error_code == NONE and part.base_offset == 0, f"produce v13: {part}")
unknown = produce(uuid.uuid4()).responses[0].partition_responses[0]
check(unknown.error_code == UNKNOWN_TOPIC_ID, f"produce v13 to an unknown id: {unknown}")
print("produce v13 by topic id checked", flush=True)

FetchTopic = FetchRequest.FetchTopic
fetched = call(FetchRequest, 18, max_wait_ms=100, min_bytes=1, max_bytes=1 << 20,
               isolation_level=0, session_id=0, session_epoch=-1,
               topics=[FetchTopic(topic_id=topic_id, partitions=[FetchTopic.FetchPartition(
                   partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
                   log_start_offset=-1, partition_max_bytes=1 << 20)])],
               forgotten_topics_data=[], rack_id="")
check(fetched.error_code == NONE, f"fetch v18 error {fetched.error_code}")
fpart = fetched.responses[0].partitions[0]
check(fetched.responses[0].topic_id == topic_id and fpart.error_code == NONE,
      f"fetch v18: {fetched.responses[0]}")
records = MemoryRecords(fpart.records)
values = []
while records.has_next():
    batch = records.next_batch()
    values += [(r.offset, r.value) for r in batch]
check(values == [(0, b"v0"), (1, b"v1"), (2, b"v2")], f"fetch v18 records {values}")
print("fetch v18 by topic id checked", flush=True)

cluster = call(DescribeClusterRequest, 2, include_cluster_authorized_operations=False,
               endpoint_type=1, include_fenced_brokers=True)
check(cluster.error_code == NONE and [(b.broker_id, b.is_fenced) for b in cluster.brokers] == [(0, False)],
      f"describe cluster v2: {cluster}")

groups = call(DescribeGroupsRequest, 6, groups=["api-versions-no-such-group"],
              include_authorized_operations=False)
g = groups.groups[0]
check(g.error_code == GROUP_ID_NOT_FOUND and g.group_state == "Dead" and g.error_message,
      f"describe groups v6 of an unknown group: {g}")
print("describe cluster v2 and describe groups v6 checked", flush=True)
admin.close()
