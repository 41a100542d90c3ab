//! Topic configs: the keys a topic accepts (Kafka's names), their validation, the effective value
//! of each (override or broker default) and their translation into the storage `LogConfig`.

use std::collections::BTreeMap;
use std::time::Duration;

use riffle_storage::LogConfig;

use crate::config::{BrokerConfig, MIN_SEGMENT_BYTES};

/// How a value must look.
#[derive(Clone, Copy)]
enum Kind {
    /// A long; `min` is the smallest accepted value (-1 often means "unlimited").
    Long {
        min: i64,
    },
    Int {
        min: i64,
    },
    Choice(&'static [&'static str]),
    /// A comma-separated list of choices (cleanup.policy).
    ChoiceList(&'static [&'static str]),
}

struct Key {
    name: &'static str,
    kind: Kind,
    /// Kafka's ConfigType for DescribeConfigs v3+ (1 boolean, 2 string, 3 int, 4 short, 5 long, 7 list).
    config_type: i8,
}

const KEYS: &[Key] = &[
    Key {
        name: "cleanup.policy",
        kind: Kind::ChoiceList(&["delete", "compact"]),
        config_type: 7,
    },
    Key {
        name: "compression.type",
        kind: Kind::Choice(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
        config_type: 2,
    },
    Key {
        name: "max.message.bytes",
        kind: Kind::Int { min: 0 },
        config_type: 3,
    },
    Key {
        name: "message.timestamp.type",
        kind: Kind::Choice(&["CreateTime", "LogAppendTime"]),
        config_type: 2,
    },
    Key {
        name: "min.insync.replicas",
        kind: Kind::Int { min: 1 },
        config_type: 3,
    },
    Key {
        name: "retention.bytes",
        kind: Kind::Long { min: -1 },
        config_type: 5,
    },
    Key {
        name: "retention.ms",
        kind: Kind::Long { min: -1 },
        config_type: 5,
    },
    Key {
        name: "segment.bytes",
        // Kafka 4's minimum (KIP-1030): tiny segments only multiply files and descriptors.
        kind: Kind::Int {
            min: MIN_SEGMENT_BYTES as i64,
        },
        config_type: 3,
    },
    Key {
        name: "segment.ms",
        kind: Kind::Long { min: 1 },
        config_type: 5,
    },
    Key {
        name: "index.interval.bytes",
        kind: Kind::Int { min: 0 },
        config_type: 3,
    },
];

/// Checks one key and value; the error is the message returned to the client (INVALID_CONFIG).
pub fn validate(name: &str, value: Option<&str>) -> Result<(), String> {
    let key = KEYS
        .iter()
        .find(|k| k.name == name)
        .ok_or_else(|| format!("unknown topic config '{name}'"))?;
    let Some(value) = value else {
        return Ok(()); // null resets to the default
    };
    let bad = || format!("invalid value '{value}' for topic config '{name}'");
    let below = |min: i64| format!("{}: must be at least {min}", bad());
    match key.kind {
        Kind::Long { min } => match value.trim().parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            Ok(_) => Err(below(min)),
            Err(_) => Err(bad()),
        },
        Kind::Int { min } => match value.trim().parse::<i32>() {
            Ok(v) if i64::from(v) >= min => Ok(()),
            Ok(_) => Err(below(min)),
            Err(_) => Err(bad()),
        },
        Kind::Choice(choices) => choices
            .iter()
            .any(|c| *c == value.trim())
            .then_some(())
            .ok_or_else(bad),
        Kind::ChoiceList(choices) => value
            .split(',')
            .all(|v| choices.contains(&v.trim()))
            .then_some(())
            .ok_or_else(bad),
    }
}

/// The broker-level default of each key, as Kafka would report it.
pub fn default_value(name: &str, broker: &BrokerConfig) -> Option<String> {
    Some(match name {
        "cleanup.policy" => "delete".into(),
        "compression.type" => "producer".into(),
        "max.message.bytes" => broker.message_max_bytes.to_string(),
        "message.timestamp.type" => "CreateTime".into(),
        "min.insync.replicas" => "1".into(),
        "retention.bytes" => broker.log_retention_bytes.to_string(),
        "retention.ms" => broker.log_retention_ms.to_string(),
        "segment.bytes" => broker.log_segment_bytes.min(i32::MAX as u64).to_string(),
        "segment.ms" => (7 * 24 * 3600 * 1000i64).to_string(),
        "index.interval.bytes" => "4096".into(),
        _ => return None,
    })
}

/// One row of DescribeConfigs: name, value, whether it is a topic override, Kafka's ConfigType.
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub is_override: bool,
    pub config_type: i8,
}

/// Every key with its effective value for a topic with `overrides`.
pub fn describe(overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> Vec<ConfigEntry> {
    KEYS.iter()
        .map(|k| match overrides.get(k.name) {
            Some(v) => ConfigEntry {
                name: k.name,
                value: v.clone(),
                is_override: true,
                config_type: k.config_type,
            },
            None => ConfigEntry {
                name: k.name,
                value: default_value(k.name, broker).unwrap_or_default(),
                is_override: false,
                config_type: k.config_type,
            },
        })
        .collect()
}

/// The effective settings the broker acts on for one topic.
#[derive(Debug, Clone)]
pub struct TopicSettings {
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    pub log: LogConfig,
}

fn effective<T: std::str::FromStr>(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
    name: &str,
) -> Option<T> {
    overrides
        .get(name)
        .cloned()
        .or_else(|| default_value(name, broker))
        .and_then(|v| v.trim().parse().ok())
}

pub fn settings(overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> TopicSettings {
    let positive_ms = |v: Option<i64>| v.filter(|v| *v >= 0).map(|v| v as u64);
    let log = LogConfig {
        // A value stored before the minimum was enforced is raised to it.
        segment_bytes: effective::<u64>(overrides, broker, "segment.bytes")
            .unwrap_or(broker.log_segment_bytes)
            .max(MIN_SEGMENT_BYTES),
        segment_ms: positive_ms(effective(overrides, broker, "segment.ms")),
        retention_bytes: positive_ms(effective(overrides, broker, "retention.bytes")),
        retention_ms: positive_ms(effective(overrides, broker, "retention.ms")),
        index_interval_bytes: effective(overrides, broker, "index.interval.bytes").unwrap_or(4096),
        tail_cache_bytes: broker.log_tail_cache_bytes,
        preallocate_bytes: broker.log_preallocate_bytes,
        write_behind_depth: broker.log_write_behind_depth,
    };
    TopicSettings {
        max_message_bytes: effective::<i64>(overrides, broker, "max.message.bytes")
            .map_or(broker.message_max_bytes as usize, |v| v.max(0) as usize),
        log_append_time: overrides.get("message.timestamp.type").map(String::as_str)
            == Some("LogAppendTime"),
        log,
    }
}

/// How often each shard runs segment roll by age, retention and producer-state snapshots.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_accepts_kafka_values_and_rejects_others() {
        assert!(validate("retention.ms", Some("-1")).is_ok());
        assert!(validate("retention.ms", Some("86400000")).is_ok());
        assert!(validate("retention.ms", Some("-2")).is_err());
        assert!(validate("retention.ms", Some("soon")).is_err());
        assert!(validate("cleanup.policy", Some("compact,delete")).is_ok());
        assert!(validate("cleanup.policy", Some("forever")).is_err());
        assert!(validate("no.such.key", Some("1")).is_err());
        assert!(validate("max.message.bytes", None).is_ok());
    }

    #[test]
    fn overrides_win_over_broker_defaults() {
        let broker = BrokerConfig::default();
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_string(), "1000".to_string());
        overrides.insert("max.message.bytes".to_string(), "2048".to_string());
        let s = settings(&overrides, &broker);
        assert_eq!(s.log.retention_ms, Some(1000));
        assert_eq!(s.max_message_bytes, 2048);
        assert_eq!(s.log.retention_bytes, None);
        let rows = describe(&overrides, &broker);
        let r = rows.iter().find(|r| r.name == "retention.ms").unwrap();
        assert!(r.is_override);
        assert_eq!(r.value, "1000");
        let c = rows.iter().find(|r| r.name == "cleanup.policy").unwrap();
        assert!(!c.is_override);
        assert_eq!(c.value, "delete");
    }

    #[test]
    fn segment_bytes_below_kafka_minimum_is_refused_with_the_minimum_named() {
        let err = validate("segment.bytes", Some("1048575")).unwrap_err();
        assert!(
            err.contains("segment.bytes") && err.contains("1048576"),
            "{err}"
        );
        assert!(validate("segment.bytes", Some("14")).is_err());
        assert!(validate("segment.bytes", Some("1048576")).is_ok());
        let mut overrides = BTreeMap::new();
        overrides.insert("segment.bytes".to_string(), "65536".to_string());
        let s = settings(&overrides, &BrokerConfig::default());
        assert_eq!(
            s.log.segment_bytes, MIN_SEGMENT_BYTES,
            "a stored value from before the rule is raised to the minimum"
        );
    }
}
