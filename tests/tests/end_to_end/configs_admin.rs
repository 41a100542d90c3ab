//! Issue 19, items 2 to 4, as third-party admin clients see them: Kafka 4's topic configs
//! (confluent-kafka), manual replica assignments (confluent-kafka), and the BROKER,
//! BROKER_LOGGER and GROUP resources (kafka-python). The scripts in tests/python assert and exit
//! non-zero with a message; the tests check they exit 0.

use std::time::Duration;

use riffle_tests::{python_ok, Broker, BrokerOptions};

#[test]
fn confluent_admin_sees_every_kafka_4_topic_config_validated_described_and_acted_on() {
    let broker = Broker::start();
    python_ok(
        "confluent_configs.py",
        &["topic-configs", &broker.addr()],
        Duration::from_secs(90),
    );
}

#[test]
fn confluent_admin_creates_topics_and_partitions_with_a_manual_replica_assignment() {
    let broker = Broker::start();
    python_ok(
        "confluent_configs.py",
        &["assignment", &broker.addr()],
        Duration::from_secs(90),
    );
}

#[test]
fn kafka_python_describes_and_alters_broker_group_configs_and_log_levels() {
    let broker = Broker::start_with(BrokerOptions {
        config_toml: Some("num_partitions = 4\n".to_string()),
        ..BrokerOptions::default()
    });
    python_ok(
        "kafka_python_broker_configs.py",
        &[&broker.addr()],
        Duration::from_secs(90),
    );
}
