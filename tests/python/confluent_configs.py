"""confluent-kafka AdminClient against Kafka 4's topic configs and manual replica assignments
(issue 19, items 2 and 3).

topic-configs: a topic created with configs Kafka 4 defines and Riffle stores without acting on
them (delete.retention.ms, flush.ms) and ones it acts on (min.insync.replicas,
message.timestamp.before.max.ms); describe_configs lists all 33 with their sources and synonyms;
out-of-range and unknown values are refused with INVALID_CONFIG; a producer sees
NOT_ENOUGH_REPLICAS and INVALID_TIMESTAMP where Kafka would answer them.

assignment: create_topics and create_partitions with a replica assignment naming broker 0 work
(librdkafka sends num_partitions and replication_factor as -1 with an assignment, as Kafka wants);
one naming an unknown broker gets INVALID_REPLICA_ASSIGNMENT.

usage: confluent_configs.py topic-configs|assignment BOOTSTRAP"""

import sys
import time

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewPartitions, NewTopic, ResourceType)

from common import check, fail

mode, bootstrap = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": bootstrap})
TIMEOUT_S = 20

KAFKA_4_TOPIC_CONFIGS = {
    "cleanup.policy", "compression.gzip.level", "compression.lz4.level", "compression.type",
    "compression.zstd.level", "delete.retention.ms", "file.delete.delay.ms", "flush.messages",
    "flush.ms", "follower.replication.throttled.replicas", "index.interval.bytes",
    "leader.replication.throttled.replicas", "local.retention.bytes", "local.retention.ms",
    "max.compaction.lag.ms", "max.message.bytes", "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms", "message.timestamp.type", "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms", "min.insync.replicas", "preallocate", "remote.log.copy.disable",
    "remote.log.delete.on.disable", "remote.storage.enable", "retention.bytes", "retention.ms",
    "segment.bytes", "segment.index.bytes", "segment.jitter.ms", "segment.ms",
    "unclean.leader.election.enable",
}


def create(topic, expect_error=None):
    """Creates `topic` (a NewTopic); returns the error text when `expect_error` is in it."""
    try:
        admin.create_topics([topic], request_timeout=15)[topic.topic].result(timeout=TIMEOUT_S)
    except Exception as e:  # noqa: BLE001 -- the error is what we check
        if expect_error and expect_error in str(e):
            return str(e)
        fail(f"create_topics {topic.topic}: {e}")
    if expect_error:
        fail(f"create_topics {topic.topic} succeeded, want {expect_error}")
    return None


def describe(topic):
    res = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=15)
    return list(res.values())[0].result(timeout=TIMEOUT_S)


def alter(topic, name, value, expect_error=None):
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
    try:
        list(admin.incremental_alter_configs([res], request_timeout=15).values())[0].result(timeout=TIMEOUT_S)
    except Exception as e:  # noqa: BLE001
        if expect_error and expect_error in str(e):
            return
        fail(f"incremental_alter_configs {name}={value}: {e}")
    if expect_error:
        fail(f"incremental_alter_configs {name}={value} succeeded, want {expect_error}")


def produce_error(topic, acks, timestamp_ms=0):
    """The delivery error of one record (None when it was acknowledged)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks, "retries": 0,
                         "enable.idempotence": False, "message.timeout.ms": 10000})
    outcome = []
    producer.produce(topic, b"value", key=b"key", timestamp=timestamp_ms,
                     on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(15)
    check(outcome, f"no delivery report for {topic}")
    return outcome[0]


def topic_configs():
    topic = "configs-topic"
    create(NewTopic(topic, 1, 1, config={
        "delete.retention.ms": "3600000", "flush.ms": "1000", "min.insync.replicas": "2",
        "message.timestamp.before.max.ms": "60000"}))
    configs = describe(topic)
    check(set(configs) == KAFKA_4_TOPIC_CONFIGS,
          f"described keys differ from Kafka 4's: missing {KAFKA_4_TOPIC_CONFIGS - set(configs)}, "
          f"extra {set(configs) - KAFKA_4_TOPIC_CONFIGS}")
    dr = configs["delete.retention.ms"]
    check(dr.value == "3600000" and dr.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
          f"delete.retention.ms: {dr.value} source {dr.source}, want 3600000 DYNAMIC_TOPIC_CONFIG")
    jitter = configs["segment.jitter.ms"]
    check(jitter.value == "0" and jitter.is_default and jitter.source == ConfigSource.DEFAULT_CONFIG.value,
          f"segment.jitter.ms: {jitter.value} default={jitter.is_default} source {jitter.source}")
    retention = configs["retention.ms"]
    synonyms = {(s.name, s.source) for s in retention.synonyms.values()}
    check(("log.retention.ms", ConfigSource.DEFAULT_CONFIG.value) in synonyms,
          f"retention.ms synonyms {synonyms}, want log.retention.ms as DEFAULT_CONFIG")
    check(configs["flush.messages"].value == "9223372036854775807", "flush.messages default")
    print("create_topics with Kafka 4 configs + describe_configs checked", flush=True)

    create(NewTopic("configs-bad", 1, 1, config={"flush.messages": "0"}), "INVALID_CONFIG")
    create(NewTopic("configs-bad", 1, 1, config={"no.such.config": "1"}), "INVALID_CONFIG")
    alter(topic, "compression.zstd.level", "23", "INVALID_CONFIG")
    alter(topic, "min.cleanable.dirty.ratio", "0.8")
    check(describe(topic)["min.cleanable.dirty.ratio"].value == "0.8", "min.cleanable.dirty.ratio after SET")
    print("invalid values refused, valid ones stored", flush=True)

    err = produce_error(topic, "all")
    check(err is not None and err.code() == KafkaError.NOT_ENOUGH_REPLICAS,
          f"acks=all with min.insync.replicas=2 on one node: {err}, want NOT_ENOUGH_REPLICAS")
    check(produce_error(topic, "1") is None, "acks=1 with min.insync.replicas=2 should succeed")
    ten_minutes_ago_ms = int(time.time() * 1000) - 600_000
    err = produce_error(topic, "1", ten_minutes_ago_ms)
    check(err is not None and err.code() == KafkaError.INVALID_TIMESTAMP,
          f"a record 10 min old with message.timestamp.before.max.ms=60000: {err}, want INVALID_TIMESTAMP")
    print("min.insync.replicas and message.timestamp.before.max.ms acted on", flush=True)


def partitions_of(topic):
    return admin.list_topics(topic, timeout=10).topics[topic].partitions


def assignment():
    topic = "assigned-topic"
    create(NewTopic(topic, 3, -1, replica_assignment=[[0], [0], [0]]))
    parts = partitions_of(topic)
    check(len(parts) == 3 and all(p.replicas == [0] for p in parts.values()),
          f"{topic}: {[(p.id, p.replicas) for p in parts.values()]}, want 3 partitions on [0]")
    err = create(NewTopic("assigned-bad", 1, -1, replica_assignment=[[1]]), "INVALID_REPLICA_ASSIGNMENT")
    check("broker 1" in err, f"the error names the unknown broker: {err}")
    grow = NewPartitions(topic, 5, replica_assignment=[[0], [0]])
    admin.create_partitions([grow], request_timeout=15)[topic].result(timeout=TIMEOUT_S)
    check(len(partitions_of(topic)) == 5, f"{topic} has {len(partitions_of(topic))} partitions, want 5")
    try:
        bad = NewPartitions(topic, 6, replica_assignment=[[7]])
        admin.create_partitions([bad], request_timeout=15)[topic].result(timeout=TIMEOUT_S)
        fail("create_partitions onto broker 7 succeeded")
    except Exception as e:  # noqa: BLE001
        check("INVALID_REPLICA_ASSIGNMENT" in str(e), f"create_partitions onto broker 7: {e}")
    check(len(partitions_of(topic)) == 5, "a refused create_partitions added partitions")
    print("manual replica assignments checked", flush=True)


{"topic-configs": topic_configs, "assignment": assignment}[mode]()
