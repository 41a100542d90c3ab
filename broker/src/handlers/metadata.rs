//! Metadata: brokers, controller and topics with their partitions, auto-creating topics that are
//! asked for by name when `auto.create.topics.enable` holds and the client allows it. With a
//! controller quorum the brokers are every live registered broker and each partition names the
//! leader, replicas and ISR of the quorum's image; a partition whose leader is fenced has leader
//! -1 and LEADER_NOT_AVAILABLE. The controller named is this node (it forwards admin changes).

use std::rc::Rc;

use riffle_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use riffle_protocol::messages::{MetadataRequest, MetadataResponse};
use riffle_protocol::{error_code, RequestHeader, Uuid};

use super::topic_or_create;
use crate::authorized_operations;
use crate::metadata::image::{ClusterMembers, PartitionMeta, TopicMeta};
use crate::shard::Shard;

fn describe_partition(
    index: usize,
    p: &PartitionMeta,
    members: Option<&ClusterMembers>,
) -> MetadataResponsePartition {
    let offline = |id: &i32| members.is_some_and(|m| m.broker(*id).is_none_or(|b| b.fenced));
    MetadataResponsePartition {
        error_code: if p.leader < 0 {
            error_code::LEADER_NOT_AVAILABLE
        } else {
            error_code::NONE
        },
        partition_index: index as i32,
        leader_id: p.leader,
        leader_epoch: p.leader_epoch,
        replica_nodes: p.replicas.clone(),
        isr_nodes: p.in_sync().to_vec(),
        offline_replicas: p.replicas.iter().copied().filter(offline).collect(),
    }
}

fn describe_topic(
    topic: &TopicMeta,
    members: Option<&ClusterMembers>,
    with_operations: bool,
) -> MetadataResponseTopic {
    MetadataResponseTopic {
        error_code: error_code::NONE,
        name: Some(topic.name.clone()),
        topic_id: topic.uuid(),
        is_internal: false,
        partitions: topic
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| describe_partition(i, p, members))
            .collect(),
        topic_authorized_operations: authorized_operations::bits(
            with_operations,
            authorized_operations::TOPIC,
        ),
    }
}

/// The brokers a client may use and the controller id it is told: with a quorum, every live
/// broker and the quorum's leader when it is one of them (else this node, which forwards admin
/// changes to the quorum); alone, this node.
pub(super) fn brokers_and_controller(shard: &Shard) -> (Vec<MetadataResponseBroker>, i32) {
    let config = shard.config();
    let this = config.node_id;
    let members = shard.image().cluster.clone();
    let brokers: Vec<MetadataResponseBroker> = members
        .iter()
        .flat_map(|m| m.live_brokers())
        .map(|b| MetadataResponseBroker {
            node_id: b.node_id,
            host: b.host.clone(),
            port: b.port,
            rack: b.rack.clone(),
        })
        .collect();
    if brokers.is_empty() {
        // No quorum, or its brokers are not known yet: this node is all a client can use.
        let (host, port) = config.advertised_host_port();
        let broker = MetadataResponseBroker {
            node_id: this,
            host,
            port,
            rack: config.broker_rack.clone(),
        };
        return (vec![broker], this);
    }
    let controller = members
        .and_then(|m| m.controller_id)
        .filter(|id| brokers.iter().any(|b| b.node_id == *id))
        .unwrap_or(this);
    (brokers, controller)
}

pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: MetadataRequest,
) -> MetadataResponse {
    let config = shard.config();
    let with_operations = request.include_topic_authorized_operations;
    // v0 has no way to say "all topics" but an empty list; from v1 an empty list means none.
    let all = match &request.topics {
        None => true,
        Some(t) => t.is_empty() && header.request_api_version == 0,
    };
    let topics = if all {
        let image = shard.image();
        let members = image.cluster.as_deref();
        image
            .topics
            .values()
            .map(|t| describe_topic(t, members, with_operations))
            .collect()
    } else {
        let mut out = Vec::new();
        for wanted in request.topics.unwrap_or_default() {
            let found = match &wanted.name {
                Some(name) => topic_or_create(shard, name, request.allow_auto_topic_creation).await,
                None => shard
                    .image()
                    .topic_by_id(&wanted.topic_id)
                    .cloned()
                    .ok_or(error_code::UNKNOWN_TOPIC_ID),
            };
            out.push(match found {
                Ok(t) => describe_topic(&t, shard.image().cluster.as_deref(), with_operations),
                Err(code) => MetadataResponseTopic {
                    error_code: code,
                    name: wanted.name.clone(),
                    topic_id: if wanted.name.is_some() {
                        Uuid::default()
                    } else {
                        wanted.topic_id
                    },
                    ..Default::default()
                },
            });
        }
        out
    };
    let (brokers, active_controller) = brokers_and_controller(shard);
    // Clients send admin requests to the controller Metadata names. This node forwards them to
    // the quorum and is alive (the client just reached it), where the quorum's leader may have
    // died a moment ago and not yet be fenced: librdkafka then waited for a dead controller
    // until its request timed out. Kafka's KRaft brokers likewise name a live broker here.
    let this = config.node_id;
    let controller_id = if brokers.iter().any(|b| b.node_id == this) {
        this
    } else {
        active_controller
    };
    MetadataResponse {
        brokers,
        cluster_id: Some(config.cluster_id.clone()),
        controller_id,
        topics,
        cluster_authorized_operations: authorized_operations::bits(
            request.include_cluster_authorized_operations,
            authorized_operations::CLUSTER,
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::BrokerMeta;

    fn broker(node_id: i32, fenced: bool) -> BrokerMeta {
        BrokerMeta {
            node_id,
            host: "127.0.0.1".into(),
            port: 9090 + node_id,
            rack: None,
            fenced,
        }
    }

    fn partition(leader: i32, replicas: Vec<i32>) -> PartitionMeta {
        PartitionMeta {
            shard: 0,
            leader,
            leader_epoch: 3,
            isr: replicas.clone(),
            replicas,
        }
    }

    #[test]
    fn a_fenced_leaders_partition_has_no_leader_and_its_replica_is_offline() {
        let members = ClusterMembers {
            brokers: vec![broker(1, false), broker(2, true)],
            controller_id: Some(1),
        };
        let led = describe_partition(0, &partition(1, vec![1]), Some(&members));
        assert_eq!(led.error_code, error_code::NONE);
        assert_eq!((led.leader_id, led.leader_epoch), (1, 3));
        assert!(led.offline_replicas.is_empty());
        let orphaned = describe_partition(1, &partition(-1, vec![2]), Some(&members));
        assert_eq!(orphaned.error_code, error_code::LEADER_NOT_AVAILABLE);
        assert_eq!(orphaned.offline_replicas, vec![2]);
        assert_eq!(orphaned.isr_nodes, vec![2]);
        // A replica on a broker the quorum does not know is offline too.
        let unknown = describe_partition(2, &partition(-1, vec![7]), Some(&members));
        assert_eq!(unknown.offline_replicas, vec![7]);
    }

    #[test]
    fn alone_no_replica_is_offline() {
        let alone = describe_partition(0, &partition(0, vec![0]), None);
        assert_eq!(alone.error_code, error_code::NONE);
        assert!(alone.offline_replicas.is_empty());
    }
}
