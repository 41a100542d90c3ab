//! DescribeQuorum (KIP-595, KIP-836, KIP-853), as `kafka-metadata-quorum describe` asks it: the
//! metadata quorum's leader, epoch (the Raft term), high watermark (the commit index) and its
//! voters, from what this node's controller last published. The leader knows each voter's log
//! end offset (its matched index) and when it last answered and was caught up; a follower
//! answers what it knows and -1 for the rest. Broker-only nodes are listed as observers; a
//! broker-only node answers with the view its leader last sent it. Kafka's brokers forward this
//! request to the active controller; Riffle answers on any node of the quorum.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use riffle_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse};

use crate::cluster::{wall_clock_ms, ClusterStatus, VoterStatus};
use crate::shard::Shard;

/// KRaft's name for the metadata log, the one "topic" DescribeQuorum describes.
const METADATA_TOPIC: &str = "__cluster_metadata";
/// What the controller listeners are called in the answer's `nodes` (v2).
const CONTROLLER_LISTENER_NAME: &str = "CONTROLLER";

pub fn handle(shard: &Rc<Shard>, request: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let Some(status) = shard.shared.cluster_view.status() else {
        return DescribeQuorumResponse {
            error_code: error_code::INVALID_REQUEST,
            error_message: Some(
                "this node runs no controller quorum (controller_quorum is unset)".into(),
            ),
            ..Default::default()
        };
    };
    let now_ms = wall_clock_ms();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| TopicData {
            partitions: topic
                .partitions
                .iter()
                .map(|p| {
                    if topic.topic_name == METADATA_TOPIC && p.partition_index == 0 {
                        describe(&status, now_ms)
                    } else {
                        PartitionData {
                            partition_index: p.partition_index,
                            error_code: error_code::UNKNOWN_TOPIC_OR_PARTITION,
                            error_message: Some(format!(
                                "the quorum's log is {METADATA_TOPIC} partition 0"
                            )),
                            leader_id: -1,
                            leader_epoch: -1,
                            high_watermark: -1,
                            ..Default::default()
                        }
                    }
                })
                .collect(),
            topic_name: topic.topic_name,
        })
        .collect();
    DescribeQuorumResponse {
        error_code: error_code::NONE,
        error_message: None,
        topics,
        nodes: status.voters.iter().map(node).collect(),
    }
}

fn describe(status: &ClusterStatus, now_ms: i64) -> PartitionData {
    let leader = status.leader_id;
    PartitionData {
        partition_index: 0,
        error_code: error_code::NONE,
        error_message: None,
        leader_id: leader.map_or(-1, to_i32),
        leader_epoch: i32::try_from(status.term).unwrap_or(i32::MAX),
        high_watermark: i64::try_from(status.commit_index).unwrap_or(i64::MAX),
        current_voters: status
            .voters
            .iter()
            .map(|v| replica(v, leader == Some(v.node_id), now_ms))
            .collect(),
        // Broker-only nodes follow the log without a vote; the leader knows what each applied.
        observers: status
            .observers
            .iter()
            .map(|o| ReplicaState {
                replica_id: to_i32(o.node_id),
                log_end_offset: i64::try_from(o.applied_index).unwrap_or(i64::MAX),
                last_fetch_timestamp: o.last_fetch_ms,
                last_caught_up_timestamp: if o.lag == 0 { o.last_fetch_ms } else { -1 },
                ..Default::default()
            })
            .collect(),
    }
}

fn replica(voter: &VoterStatus, is_leader: bool, now_ms: i64) -> ReplicaState {
    let offset = |v: Option<u64>| v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
    ReplicaState {
        replica_id: to_i32(voter.node_id),
        log_end_offset: offset(voter.matched_index),
        // Kafka reports -1 as the leader's last fetch and now as its last caught-up time.
        last_fetch_timestamp: if is_leader {
            -1
        } else {
            voter.last_fetch_ms.unwrap_or(-1)
        },
        last_caught_up_timestamp: match (is_leader, voter.matched_index) {
            (true, Some(_)) => now_ms,
            _ => voter.last_caught_up_ms.unwrap_or(-1),
        },
        ..Default::default()
    }
}

/// A voter and its controller listener (v2, KIP-853).
fn node(voter: &VoterStatus) -> Node {
    let (host, port) = voter
        .address
        .rsplit_once(':')
        .map(|(host, port)| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            (host.to_string(), port.parse().unwrap_or(0))
        })
        .unwrap_or_default();
    Node {
        node_id: to_i32(voter.node_id),
        listeners: vec![Listener {
            name: CONTROLLER_LISTENER_NAME.into(),
            host,
            port,
        }],
    }
}

/// Node ids are at most i32::MAX (`controller_quorum` refuses larger ones).
fn to_i32(node_id: u64) -> i32 {
    i32::try_from(node_id).unwrap_or(-1)
}
