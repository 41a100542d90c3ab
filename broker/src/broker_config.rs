//! The broker's own configs as DescribeConfigs shows them for a BROKER resource: Riffle's
//! settings under Kafka's names (STATIC_BROKER_CONFIG when the config file changed them, else
//! DEFAULT_CONFIG), the topic defaults, and the dynamic configs IncrementalAlterConfigs sets.

use std::collections::BTreeMap;

use crate::config::BrokerConfig;
use crate::topic_config::{self, check_value, ConfigSource, Kind, Synonym};

/// One described broker config.
#[derive(Debug, Clone)]
pub struct BrokerConfigEntry {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
    pub read_only: bool,
    pub config_type: i8,
    pub synonyms: Vec<Synonym>,
}

const INT: Kind = Kind::Int {
    min: 0,
    max: i32::MAX as i64,
    also: i64::MIN,
};
const LONG: Kind = Kind::Long {
    min: -1,
    max: i64::MAX,
};
const STRING: Kind = Kind::Choice(&[]);
const AT_LEAST_ONE: Kind = Kind::Int {
    min: 1,
    max: i32::MAX as i64,
    also: i64::MIN,
};

/// Kafka's dynamic broker configs that are not topic defaults, with their types. A change is
/// validated and stored (described as DYNAMIC_BROKER_CONFIG); Riffle does not act on them.
const DYNAMIC: &[(&str, Kind)] = &[
    ("background.threads", AT_LEAST_ONE),
    ("log.cleaner.threads", INT),
    ("log.cleaner.backoff.ms", LONG),
    ("log.cleaner.dedupe.buffer.size", LONG),
    ("log.cleaner.io.buffer.size", INT),
    (
        "log.cleaner.io.max.bytes.per.second",
        Kind::Double {
            min: 0.0,
            max: f64::MAX,
        },
    ),
    ("max.connection.creation.rate", INT),
    ("max.connections", INT),
    ("max.connections.per.ip", INT),
    ("num.io.threads", AT_LEAST_ONE),
    ("num.network.threads", AT_LEAST_ONE),
    ("num.recovery.threads.per.data.dir", AT_LEAST_ONE),
    ("num.replica.fetchers", AT_LEAST_ONE),
    ("sasl.kerberos.min.time.before.relogin", LONG),
    (
        "sasl.kerberos.ticket.renew.jitter",
        Kind::Double { min: 0.0, max: 1.0 },
    ),
    (
        "sasl.kerberos.ticket.renew.window.factor",
        Kind::Double { min: 0.0, max: 1.0 },
    ),
];

fn listener(addr: &str) -> String {
    format!("PLAINTEXT://{addr}")
}

/// Riffle's static settings under Kafka's names: (name, type, value).
fn static_settings(c: &BrokerConfig) -> Vec<(&'static str, Kind, String)> {
    let (host, port) = c.advertised_host_port();
    vec![
        (
            "advertised.listeners",
            STRING,
            listener(&format!("{host}:{port}")),
        ),
        (
            "auto.create.topics.enable",
            Kind::Bool,
            c.auto_create_topics_enable.to_string(),
        ),
        ("broker.id", INT, c.node_id.to_string()),
        (
            "connections.max.idle.ms",
            LONG,
            c.connections_max_idle_ms.to_string(),
        ),
        ("fetch.max.bytes", INT, c.fetch_max_bytes.to_string()),
        (
            "group.consumer.heartbeat.interval.ms",
            INT,
            c.group_consumer_heartbeat_interval_ms.to_string(),
        ),
        (
            "group.consumer.max.size",
            INT,
            c.group_consumer_max_size.to_string(),
        ),
        (
            "group.consumer.session.timeout.ms",
            INT,
            c.group_consumer_session_timeout_ms.to_string(),
        ),
        (
            "group.initial.rebalance.delay.ms",
            INT,
            c.group_initial_rebalance_delay_ms.to_string(),
        ),
        (
            "group.max.session.timeout.ms",
            INT,
            c.group_max_session_timeout_ms.to_string(),
        ),
        (
            "group.min.session.timeout.ms",
            INT,
            c.group_min_session_timeout_ms.to_string(),
        ),
        ("listeners", STRING, listener(&c.listen.to_string())),
        ("log.dirs", STRING, c.data_dir.display().to_string()),
        ("max.connections", INT, c.max_connections.to_string()),
        (
            "max.connections.per.ip",
            INT,
            c.max_connections_per_ip.to_string(),
        ),
        ("node.id", INT, c.node_id.to_string()),
        ("num.partitions", AT_LEAST_ONE, c.num_partitions.to_string()),
        (
            "offsets.retention.minutes",
            AT_LEAST_ONE,
            c.offsets_retention_minutes.to_string(),
        ),
        ("process.roles", STRING, c.roles.to_string()),
        (
            "socket.request.max.bytes",
            INT,
            c.socket_request_max_bytes.to_string(),
        ),
    ]
}

/// Every broker config: name, type, value, and the value Riffle has without a config file.
fn all_settings(c: &BrokerConfig) -> BTreeMap<&'static str, (Kind, String, String)> {
    let defaults = BrokerConfig::default();
    let mut all = BTreeMap::new();
    let pairs = static_settings(c)
        .into_iter()
        .zip(static_settings(&defaults))
        .chain(
            topic_config::broker_defaults(c)
                .into_iter()
                .zip(topic_config::broker_defaults(&defaults)),
        );
    for ((name, kind, value), (_, _, default)) in pairs {
        all.entry(name).or_insert((kind, value, default));
    }
    for (name, kind) in DYNAMIC {
        all.entry(name)
            .or_insert((*kind, String::new(), String::new()));
    }
    all
}

/// Whether IncrementalAlterConfigs may change `name` on a running broker (Kafka's dynamic
/// broker configs: the topic defaults and the `DYNAMIC` list).
fn is_dynamic(name: &str, c: &BrokerConfig) -> bool {
    DYNAMIC.iter().any(|(n, _)| *n == name)
        || topic_config::broker_defaults(c)
            .iter()
            .any(|(n, ..)| *n == name)
}

/// Checks a dynamic change; the error is the message clients see (INVALID_CONFIG or
/// INVALID_REQUEST for a config that cannot change at run time).
pub fn validate(name: &str, value: &str, c: &BrokerConfig) -> Result<(), (bool, String)> {
    let all = all_settings(c);
    let Some((kind, ..)) = all.get(name) else {
        return Err((false, format!("Unknown broker config name: {name}")));
    };
    if !is_dynamic(name, c) {
        return Err((
            true,
            format!("Cannot update these configs dynamically: Set({name})"),
        ));
    }
    check_value(*kind, value.trim()).map_err(|rule| {
        (
            false,
            format!("Invalid value {value} for configuration {name}: {rule}"),
        )
    })
}

/// Every broker config with its effective value, given the dynamic values stored.
pub fn describe(c: &BrokerConfig, dynamic: &BTreeMap<String, String>) -> Vec<BrokerConfigEntry> {
    all_settings(c)
        .into_iter()
        .filter_map(|(name, (kind, value, default))| {
            let synonym = |value: &str, source| Synonym {
                name: name.to_string(),
                value: value.to_string(),
                source,
            };
            let mut synonyms = Vec::with_capacity(3);
            if let Some(v) = dynamic.get(name) {
                synonyms.push(synonym(v, ConfigSource::DynamicBroker));
            }
            if value != default {
                synonyms.push(synonym(&value, ConfigSource::StaticBroker));
            }
            if !default.is_empty() {
                synonyms.push(synonym(&default, ConfigSource::Default));
            }
            let first = synonyms.first()?.clone();
            Some(BrokerConfigEntry {
                name: name.to_string(),
                value: first.value,
                source: first.source,
                read_only: !is_dynamic(name, c),
                config_type: kind.config_type(),
                synonyms,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(rows: &'a [BrokerConfigEntry], name: &str) -> &'a BrokerConfigEntry {
        rows.iter().find(|r| r.name == name).unwrap()
    }

    #[test]
    fn settings_from_the_config_file_are_static_the_rest_default() {
        let c = BrokerConfig {
            num_partitions: 4,
            ..BrokerConfig::default()
        };
        let rows = describe(&c, &BTreeMap::new());
        let n = entry(&rows, "num.partitions");
        assert_eq!(
            (n.value.as_str(), n.source, n.read_only),
            ("4", ConfigSource::StaticBroker, true)
        );
        let d = entry(&rows, "log.dirs");
        assert_eq!(
            (d.value.as_str(), d.source),
            ("riffle-data", ConfigSource::Default)
        );
        let l = entry(&rows, "advertised.listeners");
        assert_eq!(l.value, "PLAINTEXT://127.0.0.1:9092");
        let p = entry(&rows, "log.cleanup.policy");
        assert_eq!(
            (p.value.as_str(), p.source, p.read_only),
            ("delete", ConfigSource::Default, false)
        );
        assert!(
            rows.iter().all(|r| r.name != "background.threads"),
            "unset dynamic configs are not listed"
        );
    }

    #[test]
    fn dynamic_configs_are_validated_and_described_first() {
        let c = BrokerConfig::default();
        assert_eq!(validate("background.threads", "9", &c), Ok(()));
        assert_eq!(validate("log.cleanup.policy", "delete,compact", &c), Ok(()));
        assert!(matches!(
            validate("background.threads", "0", &c),
            Err((false, _))
        ));
        assert!(matches!(
            validate("num.partitions", "3", &c),
            Err((true, _))
        ));
        assert!(matches!(
            validate("no.such.config", "3", &c),
            Err((false, _))
        ));
        let dynamic = BTreeMap::from([("log.retention.ms".to_string(), "1000".to_string())]);
        let rows = describe(&c, &dynamic);
        let r = entry(&rows, "log.retention.ms");
        assert_eq!(
            (r.value.as_str(), r.source),
            ("1000", ConfigSource::DynamicBroker)
        );
        assert_eq!(r.synonyms.len(), 2);
    }
}
