"""kafka-python's admin client against the BROKER and BROKER_LOGGER resources (issue 19, item 4),
on a broker started with num_partitions = 4 in its config file: describe_configs shows the
broker's settings with STATIC_BROKER_CONFIG or DEFAULT_CONFIG, a dynamic config is set and shown
as DYNAMIC_BROKER_CONFIG, a static one is refused; a logger's level is listed, set and reset; a
group's consumer.session.timeout.ms is described, set and checked against the broker's bounds.

usage: kafka_python_broker_configs.py BOOTSTRAP"""

import sys

from kafka import KafkaAdminClient
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType

from common import check

bootstrap = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
broker = ConfigResource(ConfigResourceType.BROKER, "0")
logger = ConfigResource(ConfigResourceType.BROKER_LOGGER, "0")


def describe(resource, synonyms=False):
    res = admin.describe_configs([resource], include_synonyms=synonyms, config_filter="all")
    return res[resource.resource_type.name.lower()][resource.name]


def alter(resource, configs):
    """The outcome of one incremental change: None, or the error's text."""
    target = ConfigResource(resource.resource_type, resource.name, configs)
    res = admin.alter_configs([target], raise_on_unknown=False, incremental=True)
    outcome = res[resource.resource_type.name.lower()][resource.name]
    return None if outcome == "OK" else outcome


configs = describe(broker, synonyms=True)
partitions = configs.get("num.partitions")
check(partitions is not None, f"num.partitions missing from {sorted(configs)}")
check(partitions["value"] == "4" and partitions["config_source"] == "STATIC_BROKER_CONFIG"
      and partitions["read_only"], f"num.partitions: {partitions}, want 4 STATIC_BROKER_CONFIG read-only")
for name in ("advertised.listeners", "log.dirs", "node.id", "log.cleanup.policy", "log.retention.ms"):
    check(name in configs, f"{name} missing from the broker's configs")
check(configs["advertised.listeners"]["value"] == f"PLAINTEXT://{bootstrap}",
      f"advertised.listeners {configs['advertised.listeners']['value']}, want PLAINTEXT://{bootstrap}")
check(configs["log.cleanup.policy"]["config_source"] == "DEFAULT_CONFIG",
      f"log.cleanup.policy: {configs['log.cleanup.policy']}")
print("describe_configs BROKER checked", flush=True)

err = alter(broker, {"log.retention.ms": (AlterConfigOp.SET, "3600000")})
check(err is None, f"SET log.retention.ms on the broker: {err}")
retention = describe(broker)["log.retention.ms"]
check(retention["value"] == "3600000" and retention["config_source"] == "DYNAMIC_BROKER_CONFIG",
      f"log.retention.ms after SET: {retention}")
err = alter(broker, {"num.partitions": (AlterConfigOp.SET, "8")})
check(err is not None and "InvalidRequest" in err, f"SET of the static num.partitions: {err}, want InvalidRequest")
err = alter(broker, {"background.threads": (AlterConfigOp.SET, "0")})
check(err is not None and "InvalidConfig" in err, f"background.threads=0: {err}, want InvalidConfig")
print("incremental_alter_configs BROKER checked", flush=True)

loggers = describe(logger)
check(loggers.get("root", {}).get("value") == "INFO", f"root logger: {loggers.get('root')}")
check("riffle::groups" in loggers, f"riffle::groups missing from {sorted(loggers)}")
err = alter(logger, {"riffle::groups": (AlterConfigOp.SET, "DEBUG")})
check(err is None, f"SET riffle::groups DEBUG: {err}")
check(describe(logger)["riffle::groups"]["value"] == "DEBUG", "riffle::groups after SET")
err = alter(logger, {"riffle::groups": (AlterConfigOp.DELETE, None)})
check(err is None, f"DELETE riffle::groups: {err}")
check(describe(logger)["riffle::groups"]["value"] == "INFO", "riffle::groups after DELETE")
err = alter(logger, {"kafka.server": (AlterConfigOp.SET, "DEBUG")})
check(err is not None, "SET of an unknown logger succeeded")
print("BROKER_LOGGER checked", flush=True)

group = ConfigResource(ConfigResourceType.GROUP, "configs-group")
session = describe(group)["consumer.session.timeout.ms"]
check(session["value"] == "45000" and session["config_source"] == "DEFAULT_CONFIG",
      f"a new group's consumer.session.timeout.ms: {session}")
err = alter(group, {"consumer.session.timeout.ms": (AlterConfigOp.SET, "50000")})
check(err is None, f"SET consumer.session.timeout.ms 50000: {err}")
session = describe(group)["consumer.session.timeout.ms"]
check(session["value"] == "50000" and session["config_source"] == "DYNAMIC_GROUP_CONFIG",
      f"consumer.session.timeout.ms after SET: {session}")
err = alter(group, {"consumer.session.timeout.ms": (AlterConfigOp.SET, "1000")})
check(err is not None and "InvalidConfig" in err, f"a session timeout below the broker's minimum: {err}")
print("GROUP configs checked", flush=True)
admin.close()
