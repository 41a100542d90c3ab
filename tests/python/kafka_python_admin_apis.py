"""kafka-python against the newer admin APIs (issue 19, item 5): describe_topic_partitions
(DescribeTopicPartitions, KIP-966) pages through two topics two partitions at a time, following
the broker's cursor until it has none, and a topic that does not exist is answered with
UNKNOWN_TOPIC_OR_PARTITION; list_config_resources (ListConfigResources v1, KIP-1142) lists the
topics, the broker, its loggers and a group with configs, and filters by type;
AlterClientQuotas / DescribeClientQuotas (sent with kafka-python's own codec and connection, as
its admin client has no methods for them) store a user's and the default user's quotas, refuse
a key Kafka does not know, and describe them through exact, default and strict filters.

usage: kafka_python_admin_apis.py BOOTSTRAP"""

import sys

from kafka import KafkaAdminClient
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType, NewTopic
from kafka.protocol.admin import AlterClientQuotasRequest, DescribeClientQuotasRequest

from common import check

UNKNOWN_TOPIC_OR_PARTITION = 3
PAGE_PARTITIONS = 2
MAX_PAGES = 10

bootstrap = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
admin.create_topics([NewTopic("dtp-a", 3, 1), NewTopic("dtp-b", 2, 1)])

seen, cursor, pages, errors = [], None, 0, {}
while True:
    page = admin.describe_topic_partitions(["dtp-b", "dtp-a", "dtp-missing"],
                                           response_partition_limit=PAGE_PARTITIONS, cursor=cursor)
    pages += 1
    listed = [(t["name"], p["partition_index"]) for t in page["topics"] for p in t["partitions"]]
    check(len(listed) <= PAGE_PARTITIONS, f"page {pages} lists {len(listed)} partitions: {listed}")
    for t in page["topics"]:
        if t["error_code"]:
            errors[t["name"]] = t["error_code"]
        else:
            check(all(p["leader_id"] == 0 and p["replica_nodes"] == [0] for p in t["partitions"]),
                  f"{t['name']}: {t['partitions']}")
    seen += listed
    cursor = page["next_cursor"]
    if cursor is None:
        break
    check(pages < MAX_PAGES, f"still paging after {pages} pages: {seen}")

want = [("dtp-a", 0), ("dtp-a", 1), ("dtp-a", 2), ("dtp-b", 0), ("dtp-b", 1)]
check(seen == want, f"paged partitions {seen}, want {want}")
check(pages == 3, f"{pages} pages, want 3 of at most {PAGE_PARTITIONS} partitions")
check(errors == {"dtp-missing": UNKNOWN_TOPIC_OR_PARTITION}, f"topic errors {errors}")
print(f"describe_topic_partitions paged {len(seen)} partitions in {pages} pages", flush=True)

group = ConfigResource(ConfigResourceType.GROUP, "dtp-group",
                       {"consumer.session.timeout.ms": (AlterConfigOp.SET, "50000")})
outcome = admin.alter_configs([group], raise_on_unknown=False, incremental=True)
check(outcome["group"]["dtp-group"] == "OK", f"group config: {outcome}")
resources = admin.list_config_resources()
check(resources.get("topic") == ["dtp-a", "dtp-b"], f"listed topics {resources.get('topic')}")
check(resources.get("broker") == ["0"] and resources.get("broker_logger") == ["0"],
      f"listed broker resources: {resources}")
check(resources.get("group") == ["dtp-group"], f"listed groups {resources.get('group')}")
only_topics = admin.list_config_resources(["TOPIC"])
check(list(only_topics) == ["topic"], f"filtered by TOPIC: {only_topics}")
print("list_config_resources checked", flush=True)


def call(request):
    async def send():
        return await admin._manager.send(request)
    return admin._manager.run(send)


def alter_quotas(user, key, value):
    entry = AlterClientQuotasRequest.EntryData(
        entity=[AlterClientQuotasRequest.EntryData.EntityData(entity_type="user", entity_name=user)],
        ops=[AlterClientQuotasRequest.EntryData.OpData(key=key, value=value, remove=False)])
    response = call(AlterClientQuotasRequest(entries=[entry], validate_only=False))
    return response.entries[0].error_code


def describe_quotas(match_type, match, strict):
    component = DescribeClientQuotasRequest.ComponentData(entity_type="user", match_type=match_type,
                                                          match=match)
    response = call(DescribeClientQuotasRequest(components=[component], strict=strict))
    check(response.error_code == 0, f"describe quotas: {response}")
    return [({e.entity_type: e.entity_name for e in entry.entity},
             {v.key: v.value for v in entry.values}) for entry in response.entries]


INVALID_REQUEST = 42
check(alter_quotas("alice", "producer_byte_rate", 1048576.0) == 0, "set alice's producer_byte_rate")
check(alter_quotas(None, "consumer_byte_rate", 2097152.0) == 0, "set the default user's consumer_byte_rate")
check(alter_quotas("alice", "no_such_quota", 1.0) == INVALID_REQUEST, "an unknown quota key is refused")
exact = describe_quotas(0, "alice", True)
check(exact == [({"user": "alice"}, {"producer_byte_rate": 1048576.0})], f"alice's quotas: {exact}")
default = describe_quotas(1, None, False)
check(default == [({"user": None}, {"consumer_byte_rate": 2097152.0})], f"the default user's: {default}")
check(len(describe_quotas(2, None, False)) == 1, "MATCH_SPECIFIED lists only named users")
print("client quotas checked", flush=True)
admin.close()
