//! Issue 19, item 5: the newer admin APIs as a third-party client calls them (kafka-python's
//! describe_topic_partitions, KIP-966, with its cursor, list_config_resources, KIP-1142,
//! client quotas through its codec, describe_log_dirs and describe_producers).

use std::time::Duration;

use riffle_tests::{python_ok, Broker};

#[test]
fn kafka_python_pages_topic_partitions_lists_config_resources_and_stores_client_quotas() {
    let broker = Broker::start();
    python_ok(
        "kafka_python_admin_apis.py",
        &[&broker.addr()],
        Duration::from_secs(60),
    );
}

#[test]
fn kafka_python_describes_log_dirs_with_partition_sizes_and_the_active_producers() {
    let broker = Broker::start();
    let data_dir = broker.data_dir().display().to_string();
    python_ok(
        "kafka_python_log_dirs_producers.py",
        &[&broker.addr(), &data_dir],
        Duration::from_secs(60),
    );
}

#[test]
fn kafka_python_infers_kafka_4_1_and_the_newest_versions_answer_as_kafka() {
    let broker = Broker::start();
    python_ok(
        "kafka_python_api_versions.py",
        &[&broker.addr()],
        Duration::from_secs(60),
    );
}
