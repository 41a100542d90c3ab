//! CreateTopics: validated by the controller (name, partitions, replication factor, configs);
//! `validate_only` checks without creating.

use std::rc::Rc;

use riffle_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use riffle_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use riffle_protocol::{error_code, RequestHeader};

use crate::errors;
use crate::metadata::{calls, NewTopic};
use crate::shard::Shard;
use crate::topic_config;

pub async fn handle(
    shard: &Rc<Shard>,
    _header: &RequestHeader,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let validate_only = request.validate_only;
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.clone();
        let outcome = if !t.assignments.is_empty() {
            Err((
                error_code::INVALID_REQUEST,
                "manual replica assignment is not supported yet".to_string(),
            ))
        } else if let Some(c) = t.configs.iter().find(|c| c.value.is_none()) {
            Err((
                error_code::INVALID_CONFIG,
                format!("config '{}' has a null value", c.name),
            ))
        } else {
            let topic = NewTopic {
                name: t.name,
                num_partitions: t.num_partitions,
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
                            config_source: if e.is_override { 1 } else { 5 },
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
