//! confluent-kafka (Python, bundled librdkafka, pinned): idempotent produce, manual-assignment
//! consume, offsets for times, topic admin. The scripts in tests/python assert and exit non-zero
//! with a message; the tests check they exit 0.

use std::time::Duration;

use riffle_tests::{kafka, python_ok, Broker};

#[test]
fn confluent_idempotent_producer_and_assigned_consumer_round_trip_100k_messages() {
    let broker = Broker::start();
    let topic = "confluent-roundtrip";
    kafka::create_topic(&broker.addr(), topic, 8);
    python_ok(
        "confluent_roundtrip.py",
        &[&broker.addr(), topic, "8", "100000"],
        Duration::from_secs(240),
    );
}

#[test]
fn confluent_large_messages_round_trip_intact() {
    let broker = Broker::start();
    let topic = "confluent-large";
    kafka::create_topic(&broker.addr(), topic, 2);
    python_ok(
        "confluent_large.py",
        &[&broker.addr(), topic, "24"],
        Duration::from_secs(120),
    );
}

#[test]
fn confluent_offsets_for_times_returns_first_record_at_or_after_timestamp() {
    let broker = Broker::start();
    let topic = "confluent-offsets-for-times";
    kafka::create_topic(&broker.addr(), topic, 2);
    python_ok(
        "confluent_offsets_for_times.py",
        &[&broker.addr(), topic],
        Duration::from_secs(120),
    );
}

#[test]
fn confluent_admin_creates_describes_alters_and_deletes_topics_without_list_topics() {
    let broker = Broker::start();
    python_ok(
        "confluent_admin.py",
        &[&broker.addr(), "--no-list-topics"],
        Duration::from_secs(120),
    );
}

#[test]
fn confluent_admin_creates_describes_alters_and_deletes_topics() {
    let broker = Broker::start();
    python_ok(
        "confluent_admin.py",
        &[&broker.addr()],
        Duration::from_secs(120),
    );
}

/// A compacted topic refuses records without a key, naming them (KIP-467), uncompressed and
/// compressed alike; librdkafka fails exactly those with INVALID_RECORD and the rest of their batch
/// with _INVALID_DIFFERENT_RECORD, and nothing refused is stored.
#[test]
fn confluent_compacted_topic_refuses_keyless_records_and_names_them() {
    let broker = Broker::start();
    for codec in ["none", "lz4"] {
        python_ok(
            "confluent_compacted_keys.py",
            &[&broker.addr(), &format!("compacted-keys-{codec}"), codec],
            Duration::from_secs(90),
        );
    }
}
