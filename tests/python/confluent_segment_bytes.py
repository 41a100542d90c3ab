"""confluent-kafka AdminClient against Kafka 4's minimum segment.bytes (1 MiB): create_topics
with segment.bytes 1048575 and incremental_alter_configs to 1048575 are both refused with
INVALID_CONFIG, the refused topic does not exist, and 1048576 is accepted.

usage: confluent_segment_bytes.py BOOTSTRAP"""

import sys

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic, ResourceType)

from common import check, fail

bootstrap = sys.argv[1]
admin = AdminClient({"bootstrap.servers": bootstrap})
BELOW, MINIMUM = "1048575", "1048576"


def error_of(future):
    try:
        future.result(timeout=20)
    except KafkaException as e:
        return e.args[0]
    return None


def expect_invalid_config(future, what):
    err = error_of(future)
    check(err is not None, f"{what} was accepted, want INVALID_CONFIG")
    check(err.code() == KafkaError.INVALID_CONFIG, f"{what}: {err}, want INVALID_CONFIG")
    check(MINIMUM in err.str(), f"{what}: the message {err.str()!r} does not name the minimum {MINIMUM}")
    print(f"{what}: refused with {err.name()}: {err.str()}", flush=True)


small = NewTopic("tiny-segments", num_partitions=1, replication_factor=1,
                 config={"segment.bytes": BELOW})
expect_invalid_config(admin.create_topics([small], request_timeout=15)["tiny-segments"],
                      "create_topics segment.bytes=1048575")
check("tiny-segments" not in admin.list_topics(timeout=10).topics, "the refused topic exists")

ok = NewTopic("min-segments", num_partitions=1, replication_factor=1,
              config={"segment.bytes": MINIMUM})
err = error_of(admin.create_topics([ok], request_timeout=15)["min-segments"])
if err is not None:
    fail(f"create_topics segment.bytes={MINIMUM}: {err}")

alter = ConfigResource(ResourceType.TOPIC, "min-segments", incremental_configs=[
    ConfigEntry("segment.bytes", BELOW, incremental_operation=AlterConfigOpType.SET)])
for _, fut in admin.incremental_alter_configs([alter], request_timeout=15).items():
    expect_invalid_config(fut, "incremental_alter_configs segment.bytes=1048575")

res = admin.describe_configs([ConfigResource(ResourceType.TOPIC, "min-segments")], request_timeout=10)
configs = list(res.values())[0].result(timeout=15)
check(configs["segment.bytes"].value == MINIMUM,
      f"segment.bytes is {configs['segment.bytes'].value} after a refused change, want {MINIMUM}")
print("segment.bytes minimum checked", flush=True)
