//! `--smp 2`: partitions spread over both shards, requests crossing shards, real clients unaware.

use std::process::Command;
use std::time::Duration;

use riffle_tests::{kafka, kcat_bin, python_ok, run_ok, Broker, BrokerOptions};

#[test]
fn smp2_round_trip_with_partitions_on_both_shards() {
    let broker = Broker::start_with(BrokerOptions {
        smp: 2,
        ..Default::default()
    });
    let topic = "smp2-roundtrip";
    kafka::create_topic(&broker.addr(), topic, 8);
    python_ok(
        "confluent_roundtrip.py",
        &[&broker.addr(), topic, "8", "40000"],
        Duration::from_secs(240),
    );
    kafka::create_topic(&broker.addr(), "smp2-kafka-python", 8);
    python_ok(
        "kafka_python_roundtrip.py",
        &[&broker.addr(), "smp2-kafka-python", "8", "5000"],
        Duration::from_secs(240),
    );
    let log = broker.stderr_log();
    for shard in 0..2 {
        let opened = log
            .lines()
            .filter(|l| l.contains(&format!("shard {shard} opened partition {topic}-")))
            .count();
        assert!(
            opened > 0,
            "no partition of {topic} opened on shard {shard}: partitions must live on both shards\n{}",
            broker.log_tail()
        );
    }
    let out = run_ok(
        Command::new(kcat_bin()).args(["-L", "-b", &broker.addr(), "-t", topic]),
        None,
        Duration::from_secs(30),
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("with 8 partitions"), "kcat -L: {listing}");
}
