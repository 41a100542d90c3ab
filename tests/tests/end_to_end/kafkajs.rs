//! KafkaJS (pinned by tests/js/package-lock.json): a third, pure JavaScript client. It produces
//! and administers; its consumer needs consumer groups, so confluent-kafka reads the data back.

use std::process::Command;
use std::time::Duration;

use riffle_tests::{assert_acked_readable, js_dir, node_bin, run_ok, scratch_dir, Broker, Unacked};

#[test]
fn kafkajs_admin_and_producer_write_what_confluent_reads_back() {
    let broker = Broker::start();
    let scratch = scratch_dir("riffle-kafkajs-");
    let acked = scratch.path().join("acked.txt");
    let acked = acked.to_str().expect("UTF-8 path");
    let topic = "kafkajs-produce";
    run_ok(
        Command::new(node_bin())
            .current_dir(js_dir())
            .arg("kafkajs_produce.js")
            .args([&broker.addr(), topic, "8", "20000", acked]),
        None,
        Duration::from_secs(150),
    );
    assert_acked_readable(&broker.addr(), topic, "8", acked, Unacked::None);
}
