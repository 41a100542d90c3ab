//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (broker configs are
//! described read-only). A change is validated and stored by the controller, which has every
//! shard apply it to the topic's open partitions.

use std::collections::BTreeMap;
use std::rc::Rc;

use riffle_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use riffle_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use riffle_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResourceResponse;
use riffle_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use riffle_protocol::{error_code, RequestHeader};

use crate::errors;
use crate::metadata::calls;
use crate::shard::Shard;
use crate::topic_config;

/// name, value, read-only, config source, config type
type ConfigRow = (String, String, bool, i8, i8);

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's ConfigSource values.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

fn broker_configs(shard: &Shard) -> Vec<(String, String, i8)> {
    let c = shard.config();
    vec![
        (
            "auto.create.topics.enable".into(),
            c.auto_create_topics_enable.to_string(),
            1,
        ),
        ("num.partitions".into(), c.num_partitions.to_string(), 3),
        (
            "message.max.bytes".into(),
            c.message_max_bytes.to_string(),
            3,
        ),
        (
            "log.segment.bytes".into(),
            c.log_segment_bytes.to_string(),
            3,
        ),
        ("log.retention.ms".into(), c.log_retention_ms.to_string(), 5),
        (
            "log.retention.bytes".into(),
            c.log_retention_bytes.to_string(),
            5,
        ),
        (
            "socket.request.max.bytes".into(),
            c.socket_request_max_bytes.to_string(),
            3,
        ),
        ("node.id".into(), c.node_id.to_string(), 3),
    ]
}

pub fn describe(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let version = header.request_api_version;
    let results = request
        .resources
        .into_iter()
        .map(
            |r| match config_rows(shard, r.resource_type, &r.resource_name) {
                Ok(rows) => DescribeConfigsResult {
                    error_code: error_code::NONE,
                    error_message: None,
                    resource_type: r.resource_type,
                    configs: rows
                        .into_iter()
                        .filter(|(name, ..)| {
                            r.configuration_keys
                                .as_ref()
                                .is_none_or(|keys| keys.iter().any(|k| k == name))
                        })
                        .map(|row| described(row, version))
                        .collect(),
                    resource_name: r.resource_name,
                },
                Err((code, message)) => DescribeConfigsResult {
                    error_code: code,
                    error_message: Some(message),
                    resource_type: r.resource_type,
                    resource_name: r.resource_name,
                    configs: Vec::new(),
                },
            },
        )
        .collect();
    DescribeConfigsResponse {
        results,
        ..Default::default()
    }
}

/// Every config of one resource, or the error the resource is answered with.
fn config_rows(
    shard: &Rc<Shard>,
    resource_type: i8,
    name: &str,
) -> Result<Vec<ConfigRow>, (i16, String)> {
    match resource_type {
        RESOURCE_TOPIC => match shard.image().topic(name) {
            Some(topic) => Ok(topic_config::describe(&topic.configs, shard.config())
                .into_iter()
                .map(|e| {
                    let source = if e.is_override {
                        SOURCE_TOPIC
                    } else {
                        SOURCE_DEFAULT
                    };
                    (e.name.to_string(), e.value, false, source, e.config_type)
                })
                .collect()),
            None => Err((
                error_code::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            )),
        },
        RESOURCE_BROKER if name.is_empty() || name == shard.config().node_id.to_string() => {
            Ok(broker_configs(shard)
                .into_iter()
                .map(|(n, v, t)| (n, v, true, SOURCE_STATIC_BROKER, t))
                .collect())
        }
        RESOURCE_BROKER => Err((
            error_code::INVALID_REQUEST,
            format!("unknown broker '{name}'"),
        )),
        other => Err((
            error_code::INVALID_REQUEST,
            format!("resource type {other} is not supported"),
        )),
    }
}

fn described(row: ConfigRow, version: i16) -> DescribeConfigsResourceResult {
    let (name, value, read_only, source, config_type) = row;
    DescribeConfigsResourceResult {
        name,
        value: Some(value),
        read_only,
        is_default: source == SOURCE_DEFAULT && version == 0,
        config_source: source,
        is_sensitive: false,
        synonyms: Vec::new(),
        config_type,
        documentation: None,
    }
}

/// Stores a topic's new overrides; the controller has every shard apply them to the topic's
/// open partitions before it answers.
async fn set_topic_configs(
    shard: &Rc<Shard>,
    name: String,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    calls::set_topic_configs(shard, name, configs, validate_only)
        .await
        .map(|_| ())
        .map_err(errors::controller_answer)
}

fn non_topic_error(resource_type: i8) -> (i16, String) {
    if resource_type == RESOURCE_BROKER {
        (
            error_code::INVALID_REQUEST,
            "broker configs are static: set them in the config file".to_string(),
        )
    } else {
        (
            error_code::INVALID_REQUEST,
            format!("resource type {resource_type} is not supported"),
        )
    }
}

pub async fn alter(shard: &Rc<Shard>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let outcome = if r.resource_type != RESOURCE_TOPIC {
            Err(non_topic_error(r.resource_type))
        } else {
            let configs = r
                .configs
                .into_iter()
                .filter_map(|c| Some((c.name, c.value?)))
                .collect();
            set_topic_configs(
                shard,
                r.resource_name.clone(),
                configs,
                request.validate_only,
            )
            .await
        };
        let (error_code, error_message) = match outcome {
            Ok(()) => (error_code::NONE, None),
            Err((code, message)) => (code, Some(message)),
        };
        responses.push(AlterConfigsResourceResponse {
            error_code,
            error_message,
            resource_type: r.resource_type,
            resource_name: r.resource_name,
        });
    }
    AlterConfigsResponse {
        responses,
        ..Default::default()
    }
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Applies one incremental operation to a topic's overrides.
fn apply_op(
    overrides: &mut BTreeMap<String, String>,
    name: &str,
    op: i8,
    value: Option<&str>,
    broker: &crate::config::BrokerConfig,
) -> Result<(), (i16, String)> {
    match op {
        OP_SET => {
            let v = value.ok_or((
                error_code::INVALID_CONFIG,
                format!("SET of '{name}' needs a value"),
            ))?;
            overrides.insert(name.to_string(), v.to_string());
        }
        OP_DELETE => {
            overrides.remove(name);
        }
        OP_APPEND | OP_SUBTRACT => {
            let v = value.ok_or((
                error_code::INVALID_CONFIG,
                format!("APPEND/SUBTRACT of '{name}' needs a value"),
            ))?;
            let current = overrides
                .get(name)
                .cloned()
                .or_else(|| topic_config::default_value(name, broker))
                .unwrap_or_default();
            let mut items: Vec<String> = current
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if op == OP_APPEND {
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    }
                } else {
                    items.retain(|i| i != item);
                }
            }
            overrides.insert(name.to_string(), items.join(","));
        }
        other => {
            return Err((
                error_code::INVALID_REQUEST,
                format!("unknown config operation {other}"),
            ))
        }
    }
    Ok(())
}

pub async fn incremental_alter(
    shard: &Rc<Shard>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let outcome = if r.resource_type != RESOURCE_TOPIC {
            Err(non_topic_error(r.resource_type))
        } else {
            match shard.image().topic(&r.resource_name) {
                None => Err((
                    error_code::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("topic '{}' does not exist", r.resource_name),
                )),
                Some(topic) => {
                    let mut overrides = topic.configs.clone();
                    let applied = r.configs.iter().try_for_each(|c| {
                        apply_op(
                            &mut overrides,
                            &c.name,
                            c.config_operation,
                            c.value.as_deref(),
                            shard.config(),
                        )
                    });
                    match applied {
                        Ok(()) => {
                            set_topic_configs(
                                shard,
                                r.resource_name.clone(),
                                overrides,
                                request.validate_only,
                            )
                            .await
                        }
                        Err(e) => Err(e),
                    }
                }
            }
        };
        let (error_code, error_message) = match outcome {
            Ok(()) => (error_code::NONE, None),
            Err((code, message)) => (code, Some(message)),
        };
        responses.push(IncrementalResourceResponse {
            error_code,
            error_message,
            resource_type: r.resource_type,
            resource_name: r.resource_name,
        });
    }
    IncrementalAlterConfigsResponse {
        responses,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_operations_edit_overrides() {
        let broker = crate::config::BrokerConfig::default();
        let mut o = BTreeMap::new();
        apply_op(&mut o, "retention.ms", OP_SET, Some("100"), &broker).unwrap();
        assert_eq!(o["retention.ms"], "100");
        apply_op(
            &mut o,
            "cleanup.policy",
            OP_APPEND,
            Some("compact"),
            &broker,
        )
        .unwrap();
        assert_eq!(o["cleanup.policy"], "delete,compact");
        apply_op(
            &mut o,
            "cleanup.policy",
            OP_SUBTRACT,
            Some("delete"),
            &broker,
        )
        .unwrap();
        assert_eq!(o["cleanup.policy"], "compact");
        apply_op(&mut o, "retention.ms", OP_DELETE, None, &broker).unwrap();
        assert!(!o.contains_key("retention.ms"));
        assert!(apply_op(&mut o, "retention.ms", 9, None, &broker).is_err());
    }
}
