"""confluent-kafka AdminClient: create a topic, describe its configs, change retention.ms with
incremental_alter_configs and with alter_configs, see each change in a new describe, delete the
topic and see it gone from list_topics.

With --no-list-topics, topics are checked through describe_configs only (list_topics is not used).

usage: confluent_admin.py BOOTSTRAP [--no-list-topics]"""

import sys
import time

from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewPartitions, NewTopic, ResourceType)

from common import Deadline, check, fail

bootstrap = sys.argv[1]
use_list_topics = "--no-list-topics" not in sys.argv[2:]
admin = AdminClient({"bootstrap.servers": bootstrap})
topic = "admin-topic"
resource = ConfigResource(ResourceType.TOPIC, topic)


def describe():
    res = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=10)
    configs = list(res.values())[0].result(timeout=15)
    return {name: entry.value for name, entry in configs.items()}


def wait_listed(present):
    deadline = Deadline(15, f"topic {topic} {'listed' if present else 'gone'}")
    while True:
        listed = admin.list_topics(timeout=10).topics
        if (topic in listed) == present:
            return listed
        deadline.check()
        time.sleep(0.1)


new = NewTopic(topic, num_partitions=3, replication_factor=1, config={"retention.ms": "86400000"})
for name, fut in admin.create_topics([new], operation_timeout=10, request_timeout=15).items():
    try:
        fut.result(timeout=20)
    except Exception as e:  # noqa: BLE001 -- any error is the failure we report
        fail(f"create_topics {name}: {e}")
if use_list_topics:
    listed = wait_listed(True)
    check(len(listed[topic].partitions) == 3, f"{topic} has {len(listed[topic].partitions)} partitions, want 3")

# Creating it again is refused with TOPIC_ALREADY_EXISTS.
try:
    admin.create_topics([NewTopic(topic, 3, 1)], request_timeout=15)[topic].result(timeout=20)
    fail("creating an existing topic succeeded")
except Exception as e:  # noqa: BLE001
    check("TOPIC_ALREADY_EXISTS" in str(e) or "already exists" in str(e),
          f"creating an existing topic: {e}, want TOPIC_ALREADY_EXISTS")

configs = describe()
check(configs.get("retention.ms") == "86400000",
      f"describe_configs retention.ms = {configs.get('retention.ms')!r}, want '86400000' (all: {configs})")
print("create_topics + describe_configs checked", flush=True)

inc = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
    ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
for res, fut in admin.incremental_alter_configs([inc], request_timeout=15).items():
    try:
        fut.result(timeout=20)
    except Exception as e:  # noqa: BLE001
        fail(f"incremental_alter_configs: {e}")
configs = describe()
check(configs.get("retention.ms") == "3600000",
      f"after incremental_alter_configs retention.ms = {configs.get('retention.ms')!r}, want '3600000'")
print("incremental_alter_configs checked", flush=True)

legacy = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "7200000"})
for res, fut in admin.alter_configs([legacy], request_timeout=15).items():
    try:
        fut.result(timeout=20)
    except Exception as e:  # noqa: BLE001
        fail(f"alter_configs: {e}")
configs = describe()
check(configs.get("retention.ms") == "7200000",
      f"after alter_configs retention.ms = {configs.get('retention.ms')!r}, want '7200000'")
print("alter_configs checked", flush=True)

cluster = admin.describe_cluster(request_timeout=15).result(timeout=20)
nodes = [(n.id, f"{n.host}:{n.port}") for n in cluster.nodes]
check(nodes == [(0, bootstrap)], f"describe_cluster nodes {nodes}, want [(0, {bootstrap!r})]")
check(cluster.controller is not None and cluster.controller.id == 0,
      f"describe_cluster controller {cluster.controller}")
print("describe_cluster checked", flush=True)

try:
    admin.create_partitions([NewPartitions(topic, 5)], request_timeout=15)[topic].result(timeout=20)
except Exception as e:  # noqa: BLE001
    fail(f"create_partitions 3 -> 5: {e}")
if use_list_topics:
    deadline = Deadline(15, f"{topic} listed with 5 partitions")
    while len(admin.list_topics(timeout=10).topics[topic].partitions) != 5:
        deadline.check()
        time.sleep(0.1)
print("create_partitions checked", flush=True)

for name, fut in admin.delete_topics([topic], operation_timeout=10, request_timeout=15).items():
    try:
        fut.result(timeout=20)
    except Exception as e:  # noqa: BLE001
        fail(f"delete_topics {name}: {e}")
if use_list_topics:
    wait_listed(False)
else:
    try:
        describe()
        fail("describe_configs of a deleted topic succeeded")
    except Exception as e:  # noqa: BLE001 -- UNKNOWN_TOPIC_OR_PARTITION is expected
        check("UNKNOWN_TOPIC" in str(e) or "Unknown topic" in str(e),
              f"describe_configs of a deleted topic: {e}, want UNKNOWN_TOPIC_OR_PARTITION")
print("delete_topics checked", flush=True)
print("OK", flush=True)
