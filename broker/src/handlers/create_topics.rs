//! CreateTopics: validated by the controller (name, partitions, replication factor, configs);
//! a manual replica assignment is checked here first; `validate_only` checks without creating.

use std::rc::Rc;

use riffle_protocol::messages::create_topics_request::CreatableTopic;
use riffle_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use riffle_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use riffle_protocol::{error_code, RequestHeader};

use crate::errors;
use crate::metadata::{calls, NewTopic};
use crate::replica_assignment::{self, Refusal};
use crate::shard::Shard;
use crate::topic_config;

/// The partition count a manual replica assignment asks for (None without one), or Kafka's
/// refusal of it.
fn assigned_partitions(shard: &Shard, topic: &CreatableTopic) -> Result<Option<i32>, Refusal> {
    if topic.assignments.is_empty() {
        return Ok(None);
    }
    let assignments: Vec<(i32, Vec<i32>)> = topic
        .assignments
        .iter()
        .map(|a| (a.partition_index, a.broker_ids.clone()))
        .collect();
    replica_assignment::partitions_of_new_topic(
        topic.num_partitions,
        topic.replication_factor,
        &assignments,
        &[shard.config().node_id],
    )
    .map(Some)
}

pub async fn handle(
    shard: &Rc<Shard>,
    _header: &RequestHeader,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let validate_only = request.validate_only;
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.clone();
        let assigned = assigned_partitions(shard, &t);
        let outcome = if let Err(refusal) = assigned {
            Err(refusal)
        } else if let Some(c) = t.configs.iter().find(|c| c.value.is_none()) {
            Err((
                error_code::INVALID_CONFIG,
                format!("config '{}' has a null value", c.name),
            ))
        } else {
            let topic = NewTopic {
                name: t.name,
                num_partitions: assigned.ok().flatten().unwrap_or(t.num_partitions),
                replication_factor: t.replication_factor,
                configs: t
                    .configs
                    .into_iter()
                    .filter_map(|c| Some((c.name, c.value?)))
                    .collect(),
            };
            calls::create_topic(shard, topic, validate_only)
                .await
                .map_err(errors::controller_answer)
        };
        results.push(match outcome {
            Ok(meta) => CreatableTopicResult {
                name,
                topic_id: meta.uuid(),
                error_code: error_code::NONE,
                error_message: None,
                num_partitions: meta.partitions.len() as i32,
                replication_factor: 1,
                configs: Some(
                    topic_config::describe(&meta.configs, shard.config())
                        .into_iter()
                        .map(|e| CreatableTopicConfigs {
                            name: e.name.to_string(),
                            value: Some(e.value),
                            read_only: false,
                            config_source: e.source as i8,
                            is_sensitive: false,
                        })
                        .collect(),
                ),
                ..Default::default()
            },
            Err((code, message)) => CreatableTopicResult {
                name,
                error_code: code,
                error_message: Some(message),
                num_partitions: -1,
                replication_factor: -1,
                configs: None,
                ..Default::default()
            },
        });
    }
    CreateTopicsResponse {
        topics: results,
        ..Default::default()
    }
}
