"""kafka-python's describe_metadata_quorum (DescribeQuorum, as kafka-metadata-quorum asks it):
the leader, its epoch, the high watermark and every voter; the voters' log end offsets are
known when the leader answered (all of them) and -1 when a follower did.

usage: kafka_python_quorum.py BOOTSTRAP LEADER_ID VOTER_IDS(comma-separated)"""

import json
import sys

from kafka import KafkaAdminClient

from common import check

bootstrap, leader = sys.argv[1], int(sys.argv[2])
voters = sorted(int(v) for v in sys.argv[3].split(","))

admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
quorum = admin.describe_metadata_quorum()
admin.close()
topics = quorum["topics"]
check(len(topics) == 1 and topics[0]["topic_name"] == "__cluster_metadata", f"topics {topics}")
partition = topics[0]["partitions"][0]
check(partition["error"] is None, f"error {partition['error']}")
check(partition["leader_id"] == leader, f"leader {partition['leader_id']}, not {leader}")
check(partition["leader_epoch"] > 0, f"epoch {partition['leader_epoch']}")
check(partition["high_watermark"] > 0, f"high watermark {partition['high_watermark']}")
ids = sorted(v["replica_id"] for v in partition["current_voters"])
check(ids == voters, f"voters {ids}, not {voters}")
offsets = [v["log_end_offset"] for v in partition["current_voters"]]
check(all(o == -1 for o in offsets) or all(0 < o <= partition["high_watermark"] for o in offsets),
      f"log end offsets {offsets} with high watermark {partition['high_watermark']}")
nodes = sorted(n["node_id"] for n in quorum["nodes"])
check(nodes == voters, f"nodes {quorum['nodes']}")
print(json.dumps(partition), flush=True)
