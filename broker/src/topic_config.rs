//! Topic configs: every key Kafka 4 defines for a topic (its `TopicConfig` list, with Kafka's
//! types, ranges and defaults), their validation, the effective value of each (override, broker
//! setting or default) with its source, and the settings the broker acts on for a topic.

use std::collections::BTreeMap;
use std::time::Duration;

use riffle_storage::LogConfig;

use crate::config::{BrokerConfig, MIN_SEGMENT_BYTES};

/// How a value must look, with Kafka's validator for the key.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// A long in `min..=max`.
    Long {
        min: i64,
        max: i64,
    },
    /// An int in `min..=max`, or exactly `also` (gzip's -1 "library default").
    Int {
        min: i64,
        max: i64,
        also: i64,
    },
    /// A double in `min..=max`.
    Double {
        min: f64,
        max: f64,
    },
    Bool,
    /// One string of a fixed set.
    Choice(&'static [&'static str]),
    /// A comma-separated list of choices (`cleanup.policy`).
    ChoiceList(&'static [&'static str]),
    /// Throttled replicas: empty, `*`, or `partition:broker` pairs.
    ReplicaList,
}

impl Kind {
    /// Kafka's ConfigType as DescribeConfigs v3+ reports it.
    pub(crate) fn config_type(self) -> i8 {
        match self {
            Kind::Bool => 1,
            Kind::Choice(_) => 2,
            Kind::Int { .. } => 3,
            Kind::Long { .. } => 5,
            Kind::Double { .. } => 6,
            Kind::ChoiceList(_) | Kind::ReplicaList => 7,
        }
    }
}

/// A topic's default: a constant, or the broker setting that Kafka names as its synonym.
#[derive(Clone, Copy)]
enum DefaultValue {
    Fixed(&'static str),
    Broker(fn(&BrokerConfig) -> String),
}

struct Key {
    name: &'static str,
    kind: Kind,
    default: DefaultValue,
    /// The broker config Kafka reports as this key's synonym (DEFAULT_CONFIG or
    /// STATIC_BROKER_CONFIG), when Kafka has one.
    synonym: Option<&'static str>,
}

const LONG_MAX: i64 = i64::MAX;
const INT_MAX: i64 = i32::MAX as i64;
/// Kafka's `Long.MAX_VALUE` default, as it prints it.
const LONG_MAX_TEXT: &str = "9223372036854775807";
const NO_ALSO: i64 = i64::MIN;

const fn long(min: i64) -> Kind {
    Kind::Long { min, max: LONG_MAX }
}

const fn int(min: i64) -> Kind {
    Kind::Int {
        min,
        max: INT_MAX,
        also: NO_ALSO,
    }
}

const fn key(
    name: &'static str,
    kind: Kind,
    default: DefaultValue,
    synonym: Option<&'static str>,
) -> Key {
    Key {
        name,
        kind,
        default,
        synonym,
    }
}

use DefaultValue::{Broker, Fixed};

/// Kafka 4.0's topic configs (`TopicConfig`, `LogConfig`, `QuotaConfig`), by name.
#[rustfmt::skip]
const KEYS: &[Key] = &[
    key("cleanup.policy", Kind::ChoiceList(&["compact", "delete"]), Fixed("delete"), Some("log.cleanup.policy")),
    key("compression.gzip.level", Kind::Int { min: 1, max: 9, also: -1 }, Fixed("-1"), Some("compression.gzip.level")),
    key("compression.lz4.level", Kind::Int { min: 1, max: 17, also: NO_ALSO }, Fixed("9"), Some("compression.lz4.level")),
    key("compression.type", Kind::Choice(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), Fixed("producer"), Some("compression.type")),
    key("compression.zstd.level", Kind::Int { min: -131072, max: 22, also: NO_ALSO }, Fixed("3"), Some("compression.zstd.level")),
    key("delete.retention.ms", long(0), Fixed("86400000"), Some("log.cleaner.delete.retention.ms")),
    key("file.delete.delay.ms", long(0), Fixed("60000"), Some("log.segment.delete.delay.ms")),
    key("flush.messages", long(1), Fixed(LONG_MAX_TEXT), Some("log.flush.interval.messages")),
    key("flush.ms", long(0), Fixed(LONG_MAX_TEXT), Some("log.flush.interval.ms")),
    key("follower.replication.throttled.replicas", Kind::ReplicaList, Fixed(""), None),
    key("index.interval.bytes", int(0), Fixed("4096"), Some("log.index.interval.bytes")),
    key("leader.replication.throttled.replicas", Kind::ReplicaList, Fixed(""), None),
    key("local.retention.bytes", long(-2), Fixed("-2"), Some("log.local.retention.bytes")),
    key("local.retention.ms", long(-2), Fixed("-2"), Some("log.local.retention.ms")),
    key("max.compaction.lag.ms", long(1), Fixed(LONG_MAX_TEXT), Some("log.cleaner.max.compaction.lag.ms")),
    key("max.message.bytes", int(0), Broker(|b| b.message_max_bytes.to_string()), Some("message.max.bytes")),
    key("message.timestamp.after.max.ms", long(0), Fixed("3600000"), Some("log.message.timestamp.after.max.ms")),
    key("message.timestamp.before.max.ms", long(0), Fixed(LONG_MAX_TEXT), Some("log.message.timestamp.before.max.ms")),
    key("message.timestamp.type", Kind::Choice(&["CreateTime", "LogAppendTime"]), Fixed("CreateTime"), Some("log.message.timestamp.type")),
    key("min.cleanable.dirty.ratio", Kind::Double { min: 0.0, max: 1.0 }, Fixed("0.5"), Some("log.cleaner.min.cleanable.ratio")),
    key("min.compaction.lag.ms", long(0), Fixed("0"), Some("log.cleaner.min.compaction.lag.ms")),
    key("min.insync.replicas", int(1), Fixed("1"), Some("min.insync.replicas")),
    key("preallocate", Kind::Bool, Fixed("false"), Some("log.preallocate")),
    key("remote.log.copy.disable", Kind::Bool, Fixed("false"), None),
    key("remote.log.delete.on.disable", Kind::Bool, Fixed("false"), None),
    key("remote.storage.enable", Kind::Bool, Fixed("false"), None),
    key("retention.bytes", long(i64::MIN), Broker(|b| b.log_retention_bytes.to_string()), Some("log.retention.bytes")),
    key("retention.ms", long(-1), Broker(|b| b.log_retention_ms.to_string()), Some("log.retention.ms")),
    // Kafka 4's minimum (KIP-1030): tiny segments only multiply files and descriptors.
    key("segment.bytes", Kind::Int { min: MIN_SEGMENT_BYTES as i64, max: INT_MAX, also: NO_ALSO }, Broker(|b| b.log_segment_bytes.min(INT_MAX as u64).to_string()), Some("log.segment.bytes")),
    key("segment.index.bytes", int(4), Fixed("10485760"), Some("log.index.size.max.bytes")),
    key("segment.jitter.ms", long(0), Fixed("0"), Some("log.roll.jitter.ms")),
    key("segment.ms", long(1), Fixed("604800000"), Some("log.roll.ms")),
    key("unclean.leader.election.enable", Kind::Bool, Fixed("false"), Some("unclean.leader.election.enable")),
];

/// The keys Riffle stores and describes but does not act on (README lists them, a test checks).
#[cfg(test)]
const STORED_ONLY: &[&str] = &[
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "preallocate",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "segment.index.bytes",
    "segment.jitter.ms",
    "unclean.leader.election.enable",
];

fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// Checks one key and value; the error is the message returned to the client (INVALID_CONFIG).
pub fn validate(name: &str, value: Option<&str>) -> Result<(), String> {
    let key = find(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    let Some(value) = value else {
        return Ok(()); // null resets to the default
    };
    check_value(key.kind, value.trim())
        .map_err(|rule| format!("Invalid value {value} for configuration {name}: {rule}"))
}

fn in_range<T: PartialOrd + std::fmt::Display>(v: T, min: T, max: T) -> Result<(), String> {
    if v < min {
        Err(format!("Value must be at least {min}"))
    } else if v > max {
        Err(format!("Value must be no more than {max}"))
    } else {
        Ok(())
    }
}

pub(crate) fn check_value(kind: Kind, value: &str) -> Result<(), String> {
    let not_a = |what: &str| format!("Expected value to be a {what}");
    match kind {
        Kind::Long { min, max } => {
            in_range(value.parse::<i64>().map_err(|_| not_a("long"))?, min, max)
        }
        Kind::Int { min, max, also } => match value.parse::<i32>().map(i64::from) {
            Ok(v) if v == also => Ok(()),
            Ok(v) => in_range(v, min, max),
            Err(_) => Err(not_a("32-bit integer")),
        },
        Kind::Double { min, max } => match value.parse::<f64>() {
            Ok(v) if v.is_finite() => in_range(v, min, max),
            _ => Err(not_a("double")),
        },
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => Err("Expected value to be either true or false".into()),
        },
        Kind::Choice(choices) => choices
            .contains(&value)
            .then_some(())
            .ok_or_else(|| format!("String must be one of: {}", choices.join(", "))),
        Kind::ChoiceList(choices) => value
            .split(',')
            .all(|v| choices.contains(&v.trim()))
            .then_some(())
            .ok_or_else(|| format!("Every item must be one of: {}", choices.join(", "))),
        Kind::ReplicaList => check_replica_list(value),
    }
}

/// Kafka's ThrottledReplicaListValidator: `*`, or `partition:broker` pairs of integers.
fn check_replica_list(value: &str) -> Result<(), String> {
    if value.is_empty() || value == "*" {
        return Ok(());
    }
    let pair_ok = |item: &str| {
        item.split_once(':').is_some_and(|(p, b)| {
            p.trim().parse::<i32>().is_ok() && b.trim().parse::<i32>().is_ok()
        })
    };
    value.split(',').all(pair_ok).then_some(()).ok_or_else(|| {
        "Must be the literal '*' or a list of replicas in the form [PartitionId]:[BrokerId]".into()
    })
}

/// The value a topic without an override has for `name`.
pub fn default_value(name: &str, broker: &BrokerConfig) -> Option<String> {
    find(name).map(|k| match k.default {
        Fixed(v) => v.to_string(),
        Broker(of) => of(broker),
    })
}

/// The broker configs Kafka names as synonyms of topic configs, with the topic key's type and
/// default: the topic defaults a broker describes (`log.cleanup.policy`, `log.flush.interval.ms`).
pub fn broker_defaults(broker: &BrokerConfig) -> Vec<(&'static str, Kind, String)> {
    KEYS.iter()
        .filter_map(|k| {
            let value = match k.default {
                Fixed(v) => v.to_string(),
                Broker(of) => of(broker),
            };
            Some((k.synonym?, k.kind, value))
        })
        .collect()
}

/// Where a described value comes from (Kafka's ConfigSource values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    StaticBroker = 4,
    Default = 5,
    DynamicBrokerLogger = 6,
    Group = 8,
}

/// One value of a config as DescribeConfigs lists it among the synonyms.
#[derive(Debug, Clone, PartialEq)]
pub struct Synonym {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
}

/// One row of DescribeConfigs: the effective value first, then every synonym in Kafka's order
/// (topic override, broker setting from the config file, default).
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
    pub config_type: i8,
    pub synonyms: Vec<Synonym>,
}

/// The broker-level values of a key: from the config file when it differs from Kafka's default,
/// then the default itself. Keys without a broker synonym have none.
fn broker_synonyms(key: &Key, broker: &BrokerConfig) -> Vec<Synonym> {
    let Some(name) = key.synonym else {
        return Vec::new();
    };
    let synonym = |value, source| Synonym {
        name: name.to_string(),
        value,
        source,
    };
    match key.default {
        Fixed(v) => vec![synonym(v.to_string(), ConfigSource::Default)],
        Broker(of) => {
            let (value, default) = (of(broker), of(&BrokerConfig::default()));
            let mut rows = Vec::with_capacity(2);
            if value != default {
                rows.push(synonym(value, ConfigSource::StaticBroker));
            }
            rows.push(synonym(default, ConfigSource::Default));
            rows
        }
    }
}

/// Every key with its effective value for a topic with `overrides`.
pub fn describe(overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> Vec<ConfigEntry> {
    KEYS.iter()
        .map(|k| {
            let mut synonyms = broker_synonyms(k, broker);
            if let Some(v) = overrides.get(k.name) {
                let own = Synonym {
                    name: k.name.to_string(),
                    value: v.clone(),
                    source: ConfigSource::DynamicTopic,
                };
                synonyms.insert(0, own);
            }
            let (value, source) = match synonyms.first() {
                Some(s) => (s.value.clone(), s.source),
                None => (
                    default_value(k.name, broker).unwrap_or_default(),
                    ConfigSource::Default,
                ),
            };
            ConfigEntry {
                name: k.name,
                value,
                source,
                config_type: k.kind.config_type(),
                synonyms,
            }
        })
        .collect()
}

/// The effective settings the broker acts on for one topic.
#[derive(Debug, Clone)]
pub struct TopicSettings {
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    /// With CreateTime, how far a record's timestamp may lie before the broker's clock
    /// (`message.timestamp.before.max.ms`) and after it (`message.timestamp.after.max.ms`).
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `min.insync.replicas`: acks=all needs this many in-sync replicas, and a single node has one.
    pub min_insync_replicas: i32,
    /// `cleanup.policy` includes `compact`: every record must have a key (Kafka refuses the
    /// batch otherwise, whether or not the log is ever compacted).
    pub compacted: bool,
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
        timestamp_before_max_ms: effective(overrides, broker, "message.timestamp.before.max.ms")
            .unwrap_or(i64::MAX),
        timestamp_after_max_ms: effective(overrides, broker, "message.timestamp.after.max.ms")
            .unwrap_or(i64::MAX),
        min_insync_replicas: effective(overrides, broker, "min.insync.replicas").unwrap_or(1),
        compacted: effective::<String>(overrides, broker, "cleanup.policy")
            .is_some_and(|policy| policy.split(',').any(|p| p.trim() == "compact")),
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
        assert!(validate("delete.retention.ms", Some("1")).is_ok());
        assert!(validate("max.message.bytes", None).is_ok());
    }

    /// Kafka 4.0's `TopicConfig` constants plus the throttled-replica keys of `QuotaConfig`.
    const KAFKA_4_TOPIC_CONFIGS: [&str; 33] = [
        "cleanup.policy",
        "compression.gzip.level",
        "compression.lz4.level",
        "compression.type",
        "compression.zstd.level",
        "delete.retention.ms",
        "file.delete.delay.ms",
        "flush.messages",
        "flush.ms",
        "follower.replication.throttled.replicas",
        "index.interval.bytes",
        "leader.replication.throttled.replicas",
        "local.retention.bytes",
        "local.retention.ms",
        "max.compaction.lag.ms",
        "max.message.bytes",
        "message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms",
        "message.timestamp.type",
        "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms",
        "min.insync.replicas",
        "preallocate",
        "remote.log.copy.disable",
        "remote.log.delete.on.disable",
        "remote.storage.enable",
        "retention.bytes",
        "retention.ms",
        "segment.bytes",
        "segment.index.bytes",
        "segment.jitter.ms",
        "segment.ms",
        "unclean.leader.election.enable",
    ];

    #[test]
    fn every_kafka_4_topic_config_is_accepted_at_its_default_and_described() {
        let broker = BrokerConfig::default();
        let rows = describe(&BTreeMap::new(), &broker);
        assert_eq!(rows.len(), KAFKA_4_TOPIC_CONFIGS.len());
        for name in KAFKA_4_TOPIC_CONFIGS {
            let default = default_value(name, &broker).unwrap();
            assert_eq!(validate(name, Some(&default)), Ok(()), "{name}={default}");
            let row = rows.iter().find(|r| r.name == name).unwrap();
            assert_eq!(
                (row.value.as_str(), row.source),
                (default.as_str(), ConfigSource::Default)
            );
        }
        let readme = include_str!("../../README.md");
        for name in STORED_ONLY {
            assert!(KAFKA_4_TOPIC_CONFIGS.contains(name), "{name}");
            assert!(
                readme.contains(&format!("`{name}`")),
                "README does not list {name}"
            );
        }
    }

    #[test]
    fn values_are_checked_against_kafkas_ranges_at_their_limits() {
        let cases: &[(&str, &str, bool)] = &[
            ("delete.retention.ms", "0", true),
            ("delete.retention.ms", "-1", false),
            ("flush.messages", "1", true),
            ("flush.messages", "0", false),
            ("flush.ms", "9223372036854775807", true),
            ("flush.ms", "9223372036854775808", false),
            ("compression.gzip.level", "-1", true),
            ("compression.gzip.level", "0", false),
            ("compression.gzip.level", "9", true),
            ("compression.gzip.level", "10", false),
            ("compression.lz4.level", "17", true),
            ("compression.lz4.level", "18", false),
            ("compression.zstd.level", "-131072", true),
            ("compression.zstd.level", "23", false),
            ("min.cleanable.dirty.ratio", "1", true),
            ("min.cleanable.dirty.ratio", "1.01", false),
            ("min.cleanable.dirty.ratio", "NaN", false),
            ("preallocate", "TRUE", true),
            ("preallocate", "yes", false),
            ("local.retention.ms", "-2", true),
            ("local.retention.ms", "-3", false),
            ("segment.index.bytes", "4", true),
            ("segment.index.bytes", "3", false),
            ("max.message.bytes", "2147483647", true),
            ("max.message.bytes", "2147483648", false),
            ("leader.replication.throttled.replicas", "*", true),
            ("leader.replication.throttled.replicas", "0:0,1:0", true),
            ("leader.replication.throttled.replicas", "0-0", false),
            ("message.timestamp.type", "LogAppendTime", true),
            ("message.timestamp.type", "logappendtime", false),
        ];
        for (name, value, ok) in cases {
            assert_eq!(validate(name, Some(value)).is_ok(), *ok, "{name}={value}");
        }
        let err = validate("flush.messages", Some("0")).unwrap_err();
        assert!(
            err.contains("flush.messages") && err.contains("at least 1"),
            "{err}"
        );
    }

    #[test]
    fn a_broker_setting_from_the_config_file_is_the_static_synonym() {
        let broker = BrokerConfig {
            log_retention_ms: 1000,
            ..BrokerConfig::default()
        };
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_string(), "5000".to_string());
        let rows = describe(&overrides, &broker);
        let r = rows.iter().find(|r| r.name == "retention.ms").unwrap();
        let sources: Vec<_> = r
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_str(), s.source))
            .collect();
        assert_eq!(
            sources,
            [
                ("retention.ms", "5000", ConfigSource::DynamicTopic),
                ("log.retention.ms", "1000", ConfigSource::StaticBroker),
                ("log.retention.ms", "604800000", ConfigSource::Default),
            ]
        );
        let rows = describe(&BTreeMap::new(), &broker);
        let r = rows.iter().find(|r| r.name == "retention.ms").unwrap();
        assert_eq!(
            (r.value.as_str(), r.source),
            ("1000", ConfigSource::StaticBroker)
        );
        let remote = rows
            .iter()
            .find(|r| r.name == "remote.storage.enable")
            .unwrap();
        assert!(remote.synonyms.is_empty());
    }

    #[test]
    fn settings_carry_the_configs_the_produce_path_acts_on() {
        let broker = BrokerConfig::default();
        let s = settings(&BTreeMap::new(), &broker);
        assert_eq!(
            (s.timestamp_before_max_ms, s.timestamp_after_max_ms),
            (i64::MAX, 3_600_000)
        );
        assert_eq!(s.min_insync_replicas, 1);
        let overrides: BTreeMap<String, String> = [
            ("min.insync.replicas", "2"),
            ("message.timestamp.before.max.ms", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = settings(&overrides, &broker);
        assert_eq!(s.min_insync_replicas, 2);
        assert_eq!(s.timestamp_before_max_ms, 1000);
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
        assert_eq!(r.source, ConfigSource::DynamicTopic);
        assert_eq!(r.value, "1000");
        let c = rows.iter().find(|r| r.name == "cleanup.policy").unwrap();
        assert_eq!(c.source, ConfigSource::Default);
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
