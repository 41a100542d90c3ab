//! Metadata: brokers, controller and topics with their partitions, auto-creating topics that are
//! asked for by name when `auto.create.topics.enable` holds and the client allows it.

use std::rc::Rc;

use riffle_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use riffle_protocol::messages::{MetadataRequest, MetadataResponse};
use riffle_protocol::{error_code, RequestHeader, Uuid};

use super::topic_or_create;
use crate::authorized_operations;
use crate::metadata::image::TopicMeta;
use crate::shard::Shard;

fn describe_topic(topic: &TopicMeta, with_operations: bool) -> MetadataResponseTopic {
    MetadataResponseTopic {
        error_code: error_code::NONE,
        name: Some(topic.name.clone()),
        topic_id: topic.uuid(),
        is_internal: false,
        partitions: topic
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| MetadataResponsePartition {
                error_code: error_code::NONE,
                partition_index: i as i32,
                leader_id: p.leader,
                leader_epoch: p.leader_epoch,
                replica_nodes: p.replicas.clone(),
                isr_nodes: p.replicas.clone(),
                offline_replicas: Vec::new(),
            })
            .collect(),
        topic_authorized_operations: authorized_operations::bits(
            with_operations,
            authorized_operations::TOPIC,
        ),
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: MetadataRequest,
) -> MetadataResponse {
    let config = shard.config();
    let (host, port) = config.advertised_host_port();
    let with_operations = request.include_topic_authorized_operations;
    // v0 has no way to say "all topics" but an empty list; from v1 an empty list means none.
    let all = match &request.topics {
        None => true,
        Some(t) => t.is_empty() && header.request_api_version == 0,
    };
    let topics = if all {
        shard
            .image()
            .topics
            .values()
            .map(|t| describe_topic(t, with_operations))
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
                Ok(t) => describe_topic(&t, with_operations),
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
    MetadataResponse {
        brokers: vec![MetadataResponseBroker {
            node_id: config.node_id,
            host,
            port,
            rack: None,
        }],
        cluster_id: Some(config.cluster_id.clone()),
        controller_id: config.node_id,
        topics,
        cluster_authorized_operations: authorized_operations::bits(
            request.include_cluster_authorized_operations,
            authorized_operations::CLUSTER,
        ),
        ..Default::default()
    }
}
