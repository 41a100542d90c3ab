//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for TOPIC, BROKER, BROKER_LOGGER
//! and GROUP (IncrementalAlterConfigs only, as Kafka) resources. A topic or broker change is validated and stored by the controller,
//! which has every shard apply a topic's to its open partitions; log levels apply at once.

use std::collections::BTreeMap;
use std::rc::Rc;

use riffle_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use riffle_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use riffle_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use riffle_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResourceResponse;
use riffle_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use riffle_protocol::{error_code, RequestHeader};

use crate::broker_config;
use crate::errors;
use crate::group_config;
use crate::logging;
use crate::metadata::calls;
use crate::shard::Shard;
use crate::topic_config::{self, ConfigSource, Synonym};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
const RESOURCE_GROUP: i8 = 32;

/// One described config, whatever its resource.
struct Row {
    name: String,
    value: String,
    read_only: bool,
    source: ConfigSource,
    config_type: i8,
    synonyms: Vec<Synonym>,
}

pub fn describe(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let version = header.request_api_version;
    let include_synonyms = request.include_synonyms;
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
                        .filter(|row| {
                            r.configuration_keys
                                .as_ref()
                                .is_none_or(|keys| keys.contains(&row.name))
                        })
                        .map(|row| described(row, version, include_synonyms))
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

/// Whether a BROKER or BROKER_LOGGER resource names this broker ("" is the cluster default).
fn is_this_broker(shard: &Shard, resource_type: i8, name: &str) -> bool {
    let node = shard.config().node_id.to_string();
    name == node || (resource_type == RESOURCE_BROKER && name.is_empty())
}

fn topic_rows(shard: &Shard, name: &str) -> Result<Vec<Row>, (i16, String)> {
    let topic = shard.image().topic(name).cloned().ok_or_else(|| {
        (
            error_code::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        )
    })?;
    Ok(topic_config::describe(&topic.configs, shard.config())
        .into_iter()
        .map(|e| Row {
            name: e.name.to_string(),
            value: e.value,
            read_only: false,
            source: e.source,
            config_type: e.config_type,
            synonyms: e.synonyms,
        })
        .collect())
}

fn broker_rows(shard: &Shard) -> Vec<Row> {
    broker_config::describe(shard.config(), &shard.image().broker_configs)
        .into_iter()
        .map(|e| Row {
            name: e.name,
            value: e.value,
            read_only: e.read_only,
            source: e.source,
            config_type: e.config_type,
            synonyms: e.synonyms,
        })
        .collect()
}

fn group_rows(shard: &Shard, group_id: &str) -> Vec<Row> {
    let image = shard.image();
    let overrides = image
        .group_configs
        .get(group_id)
        .cloned()
        .unwrap_or_default();
    group_config::describe(&overrides)
        .into_iter()
        .map(|(name, value, source, config_type, synonyms)| Row {
            name: name.to_string(),
            value,
            read_only: false,
            source,
            config_type,
            synonyms,
        })
        .collect()
}

fn logger_rows() -> Vec<Row> {
    logging::loggers()
        .into_iter()
        .map(|(name, value)| Row {
            name,
            value,
            read_only: false,
            source: ConfigSource::DynamicBrokerLogger,
            config_type: CONFIG_TYPE_STRING,
            synonyms: Vec::new(),
        })
        .collect()
}

const CONFIG_TYPE_STRING: i8 = 2;

/// Every config of one resource, or the error the resource is answered with.
fn config_rows(shard: &Shard, resource_type: i8, name: &str) -> Result<Vec<Row>, (i16, String)> {
    match resource_type {
        RESOURCE_TOPIC => topic_rows(shard, name),
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER if !is_this_broker(shard, resource_type, name) => {
            Err((
                error_code::INVALID_REQUEST,
                format!(
                    "unknown broker '{name}': this is broker {}",
                    shard.config().node_id
                ),
            ))
        }
        RESOURCE_BROKER => Ok(broker_rows(shard)),
        RESOURCE_BROKER_LOGGER => Ok(logger_rows()),
        RESOURCE_GROUP => Ok(group_rows(shard, name)),
        other => Err((
            error_code::INVALID_REQUEST,
            format!("resource type {other} is not supported"),
        )),
    }
}

fn described(row: Row, version: i16, include_synonyms: bool) -> DescribeConfigsResourceResult {
    let synonyms = if include_synonyms {
        row.synonyms
            .into_iter()
            .map(|s| DescribeConfigsSynonym {
                name: s.name,
                value: Some(s.value),
                source: s.source as i8,
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult {
        name: row.name,
        value: Some(row.value),
        read_only: row.read_only,
        is_default: row.source == ConfigSource::Default && version == 0,
        config_source: row.source as i8,
        is_sensitive: false,
        synonyms,
        config_type: row.config_type,
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

type Outcome = Result<(), (i16, String)>;

fn answer(outcome: Outcome) -> (i16, Option<String>) {
    match outcome {
        Ok(()) => (error_code::NONE, None),
        Err((code, message)) => (code, Some(message)),
    }
}

fn unsupported(resource_type: i8, name: &str) -> (i16, String) {
    (
        error_code::INVALID_REQUEST,
        format!("resource type {resource_type} ('{name}') cannot be altered"),
    )
}

/// Stores the dynamic broker configs; the controller validates them.
async fn set_broker_configs(
    shard: &Rc<Shard>,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Outcome {
    calls::set_broker_configs(shard, configs, validate_only)
        .await
        .map_err(errors::controller_answer)
}

pub async fn alter(shard: &Rc<Shard>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        // AlterConfigs replaces every override of the resource with the ones it names.
        let configs = r
            .configs
            .into_iter()
            .filter_map(|c| Some((c.name, c.value?)))
            .collect();
        let outcome = match r.resource_type {
            RESOURCE_TOPIC => {
                let name = r.resource_name.clone();
                set_topic_configs(shard, name, configs, request.validate_only).await
            }
            RESOURCE_BROKER if is_this_broker(shard, r.resource_type, &r.resource_name) => {
                set_broker_configs(shard, configs, request.validate_only).await
            }
            other => Err(unsupported(other, &r.resource_name)),
        };
        let (error_code, error_message) = answer(outcome);
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

/// Applies one incremental operation to a resource's overrides; `default_of` gives the value a
/// list starts from when it has no override (APPEND/SUBTRACT).
fn apply_op(
    overrides: &mut BTreeMap<String, String>,
    name: &str,
    op: i8,
    value: Option<&str>,
    default_of: &dyn Fn(&str) -> Option<String>,
) -> Outcome {
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
                .or_else(|| default_of(name))
                .unwrap_or_default();
            overrides.insert(name.to_string(), edit_list(&current, v, op == OP_APPEND));
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

/// A comma-separated list with `items` appended (each once) or removed.
fn edit_list(current: &str, items: &str, append: bool) -> String {
    let split = |s: &str| {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let mut list = split(current);
    for item in split(items) {
        if append && !list.contains(&item) {
            list.push(item);
        } else if !append {
            list.retain(|i| *i != item);
        }
    }
    list.join(",")
}

/// The overrides of a resource after the request's operations.
fn edited(
    mut overrides: BTreeMap<String, String>,
    configs: &[AlterableConfig],
    default_of: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, (i16, String)> {
    for c in configs {
        apply_op(
            &mut overrides,
            &c.name,
            c.config_operation,
            c.value.as_deref(),
            default_of,
        )?;
    }
    Ok(overrides)
}

async fn alter_topic(
    shard: &Rc<Shard>,
    name: &str,
    configs: &[AlterableConfig],
    validate_only: bool,
) -> Outcome {
    let topic = shard.image().topic(name).cloned().ok_or_else(|| {
        (
            error_code::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        )
    })?;
    let broker = shard.config();
    let overrides = edited(topic.configs.clone(), configs, &|key| {
        topic_config::default_value(key, broker)
    })?;
    set_topic_configs(shard, name.to_string(), overrides, validate_only).await
}

async fn alter_broker(
    shard: &Rc<Shard>,
    configs: &[AlterableConfig],
    validate_only: bool,
) -> Outcome {
    let rows = broker_rows(shard);
    let overrides = edited(shard.image().broker_configs.clone(), configs, &|key| {
        rows.iter().find(|r| r.name == key).map(|r| r.value.clone())
    })?;
    set_broker_configs(shard, overrides, validate_only).await
}

async fn alter_group(
    shard: &Rc<Shard>,
    group_id: &str,
    configs: &[AlterableConfig],
    validate_only: bool,
) -> Outcome {
    let current = shard.image().group_configs.get(group_id).cloned();
    let overrides = edited(
        current.unwrap_or_default(),
        configs,
        &group_config::default_value,
    )?;
    calls::set_group_configs(shard, group_id.to_string(), overrides, validate_only)
        .await
        .map_err(errors::controller_answer)
}

/// Log levels: only SET and DELETE, as Kafka allows for BROKER_LOGGER.
fn alter_loggers(configs: &[AlterableConfig], validate_only: bool) -> Outcome {
    let mut changes = Vec::with_capacity(configs.len());
    for c in configs {
        let level = match c.config_operation {
            OP_SET => c.value.clone(),
            OP_DELETE => None,
            _ => {
                return Err((
                    error_code::INVALID_REQUEST,
                    format!("{}: a logger's level can only be SET or DELETEd", c.name),
                ))
            }
        };
        logging::validate(&c.name, level.as_deref())
            .map_err(|message| (error_code::INVALID_CONFIG, message))?;
        changes.push((c.name.clone(), level));
    }
    if validate_only {
        return Ok(());
    }
    logging::apply(&changes).map_err(|message| (error_code::INVALID_CONFIG, message))
}

pub async fn incremental_alter(
    shard: &Rc<Shard>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let validate_only = request.validate_only;
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        let this_broker = is_this_broker(shard, r.resource_type, &r.resource_name);
        let outcome = match r.resource_type {
            RESOURCE_TOPIC => alter_topic(shard, &r.resource_name, &r.configs, validate_only).await,
            RESOURCE_BROKER if this_broker => alter_broker(shard, &r.configs, validate_only).await,
            RESOURCE_BROKER_LOGGER if this_broker => alter_loggers(&r.configs, validate_only),
            RESOURCE_GROUP => alter_group(shard, &r.resource_name, &r.configs, validate_only).await,
            other => Err(unsupported(other, &r.resource_name)),
        };
        let (error_code, error_message) = answer(outcome);
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
        let config = crate::config::BrokerConfig::default();
        let broker = &|key: &str| topic_config::default_value(key, &config);
        let mut o = BTreeMap::new();
        apply_op(&mut o, "retention.ms", OP_SET, Some("100"), broker).unwrap();
        assert_eq!(o["retention.ms"], "100");
        apply_op(&mut o, "cleanup.policy", OP_APPEND, Some("compact"), broker).unwrap();
        assert_eq!(o["cleanup.policy"], "delete,compact");
        apply_op(
            &mut o,
            "cleanup.policy",
            OP_SUBTRACT,
            Some("delete"),
            broker,
        )
        .unwrap();
        assert_eq!(o["cleanup.policy"], "compact");
        apply_op(&mut o, "retention.ms", OP_DELETE, None, broker).unwrap();
        assert!(!o.contains_key("retention.ms"));
        assert!(apply_op(&mut o, "retention.ms", 9, None, broker).is_err());
    }
}
