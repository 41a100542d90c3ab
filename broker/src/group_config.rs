//! Group configs (the GROUP resource of DescribeConfigs and IncrementalAlterConfigs, KIP-848 and
//! KIP-932): Kafka 4.0's `GroupConfig` keys with their broker defaults and the ranges the broker
//! allows. Stored per group id; the `consumer.*` ones govern KIP-848 consumer groups (read by the
//! coordinator with each heartbeat), the `share.*` ones share groups, which Riffle does not serve.

use std::collections::BTreeMap;

use crate::topic_config::{check_value, ConfigSource, Kind, Synonym};

struct GroupKey {
    name: &'static str,
    kind: Kind,
    default: &'static str,
    /// The broker config Kafka reports as its synonym.
    synonym: &'static str,
}

const fn between(min: i64, max: i64) -> Kind {
    Kind::Int {
        min,
        max,
        also: i64::MIN,
    }
}

/// Kafka 4.0's group configs; the ranges are its broker defaults for the minimum and maximum
/// (`group.consumer.min.session.timeout.ms` ...), which Riffle does not make configurable.
#[rustfmt::skip]
const KEYS: &[GroupKey] = &[
    GroupKey { name: "consumer.heartbeat.interval.ms", kind: between(5_000, 15_000), default: "5000", synonym: "group.consumer.heartbeat.interval.ms" },
    GroupKey { name: "consumer.session.timeout.ms", kind: between(45_000, 60_000), default: "45000", synonym: "group.consumer.session.timeout.ms" },
    GroupKey { name: "share.auto.offset.reset", kind: Kind::Choice(&["latest", "earliest"]), default: "latest", synonym: "group.share.auto.offset.reset" },
    GroupKey { name: "share.heartbeat.interval.ms", kind: between(5_000, 15_000), default: "5000", synonym: "group.share.heartbeat.interval.ms" },
    GroupKey { name: "share.record.lock.duration.ms", kind: between(15_000, 60_000), default: "30000", synonym: "group.share.record.lock.duration.ms" },
    GroupKey { name: "share.session.timeout.ms", kind: between(45_000, 60_000), default: "45000", synonym: "group.share.session.timeout.ms" },
];

/// Checks one key and value; the error is the message clients see (INVALID_CONFIG).
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let key = KEYS
        .iter()
        .find(|k| k.name == name)
        .ok_or_else(|| format!("Unknown group config name: {name}"))?;
    check_value(key.kind, value.trim())
        .map_err(|rule| format!("Invalid value {value} for configuration {name}: {rule}"))
}

/// The value a group without an override has for `name`.
pub fn default_value(name: &str) -> Option<String> {
    KEYS.iter()
        .find(|k| k.name == name)
        .map(|k| k.default.to_string())
}

/// One described group config: (name, value, source, config type, synonyms).
pub type GroupConfigEntry = (&'static str, String, ConfigSource, i8, Vec<Synonym>);

/// Every key with its effective value for a group with `overrides` (a group never configured,
/// or not existing, has the defaults, as in Kafka).
pub fn describe(overrides: &BTreeMap<String, String>) -> Vec<GroupConfigEntry> {
    KEYS.iter()
        .map(|k| {
            let mut synonyms = vec![Synonym {
                name: k.synonym.to_string(),
                value: k.default.to_string(),
                source: ConfigSource::Default,
            }];
            if let Some(v) = overrides.get(k.name) {
                let own = Synonym {
                    name: k.name.to_string(),
                    value: v.clone(),
                    source: ConfigSource::Group,
                };
                synonyms.insert(0, own);
            }
            let (value, source) = (synonyms[0].value.clone(), synonyms[0].source);
            (k.name, value, source, k.kind.config_type(), synonyms)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_configs_are_checked_against_the_brokers_bounds() {
        assert_eq!(validate("consumer.session.timeout.ms", "50000"), Ok(()));
        assert!(validate("consumer.session.timeout.ms", "44999").is_err());
        assert!(validate("consumer.session.timeout.ms", "60001").is_err());
        assert_eq!(validate("share.auto.offset.reset", "earliest"), Ok(()));
        assert!(validate("no.such.config", "1").is_err());
        let overrides = BTreeMap::from([(
            "consumer.session.timeout.ms".to_string(),
            "50000".to_string(),
        )]);
        let rows = describe(&overrides);
        assert_eq!(rows.len(), KEYS.len());
        let row = rows
            .iter()
            .find(|r| r.0 == "consumer.session.timeout.ms")
            .unwrap();
        assert_eq!((row.1.as_str(), row.2), ("50000", ConfigSource::Group));
        let row = rows
            .iter()
            .find(|r| r.0 == "consumer.heartbeat.interval.ms")
            .unwrap();
        assert_eq!((row.1.as_str(), row.2), ("5000", ConfigSource::Default));
    }
}
