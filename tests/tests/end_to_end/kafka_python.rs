//! kafka-python (pinned, pure Python): a second client implementation, independent of librdkafka.

use std::time::Duration;

use riffle_tests::{kafka, python_ok, Broker};

#[test]
fn kafka_python_producer_and_groupless_consumer_round_trip() {
    let broker = Broker::start();
    let topic = "kafka-python-roundtrip";
    kafka::create_topic(&broker.addr(), topic, 8);
    python_ok(
        "kafka_python_roundtrip.py",
        &[&broker.addr(), topic, "8", "20000"],
        Duration::from_secs(240),
    );
}

#[test]
fn kafka_python_admin_and_gzip_produce_round_trip() {
    let broker = Broker::start();
    python_ok(
        "kafka_python_admin.py",
        &[&broker.addr()],
        Duration::from_secs(120),
    );
}
