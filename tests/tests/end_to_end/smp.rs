//! `--smp 2`: partitions spread over both shards, requests crossing shards, real clients unaware.

use std::process::Command;
use std::time::Duration;

use riffle_tests::{
    assert_acked_readable, kafka, kcat_bin, python_ok, run_ok, Broker, BrokerOptions, Unacked,
};

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

/// Several producers over 8 partitions plus constant connection churn (each short connection
/// asks Metadata and produces) for a few seconds: the broker stays up and every producer
/// finishes without a delivery error.
fn sustained_load_with_connection_churn(smp: usize) {
    use riffle_tests::{python_bin, python_script, scratch_dir, Background};
    use std::time::Instant;

    const PRODUCERS: usize = 3;
    let mut broker = Broker::start_with(BrokerOptions {
        smp,
        ..Default::default()
    });
    let addr = broker.addr();
    let topic = "churn";
    kafka::create_topic(&addr, topic, 8);
    let scratch = scratch_dir("riffle-churn-");
    let producers: Vec<(Background, std::path::PathBuf)> = (0..PRODUCERS)
        .map(|n| {
            let acked = scratch.path().join(format!("acked-{n}.txt"));
            let child = Background::spawn(
                Command::new(python_bin())
                    .arg("-u")
                    .arg(python_script("confluent_produce.py"))
                    .args([&addr, topic, "8", "0"])
                    .arg(&acked),
            );
            (child, acked)
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(6);
    let mut round = 0usize;
    while Instant::now() < until {
        assert!(
            broker.is_running(),
            "the broker died under load\n{}",
            broker.log_tail()
        );
        let mut conn = kafka::Connection::connect(&addr).expect("connect");
        let _: riffle_protocol::messages::MetadataResponse = conn
            .request(
                kafka::METADATA_VERSION,
                &riffle_protocol::messages::MetadataRequest {
                    topics: None,
                    ..Default::default()
                },
            )
            .expect("Metadata");
        let mut builder = riffle_protocol::record_batch::RecordBatchBuilder::new(
            riffle_protocol::record_batch::Compression::None,
            1_700_000_000_000,
        );
        builder.append(1_700_000_000_000, None, Some(b"churn"), &[]);
        let (code, _) = kafka::produce(&mut conn, "churn-raw", 0, builder.finish(), 1);
        assert_eq!(code, 0, "produce on churn round {round}");
        round += 1;
    }
    for (child, _) in &producers {
        child.signal(libc::SIGTERM);
    }
    for (child, _) in producers {
        child.wait_ok(Duration::from_secs(60));
    }
    assert!(
        broker.is_running(),
        "the broker died under load\n{}",
        broker.log_tail()
    );
    let status = broker.stop();
    assert!(
        status.success(),
        "SIGTERM exit {status}\n{}",
        broker.log_tail()
    );
}

#[test]
fn smp1_sustained_load_with_connection_churn_keeps_the_broker_up() {
    sustained_load_with_connection_churn(1);
}

#[test]
fn smp2_sustained_cross_shard_load_with_connection_churn_keeps_the_broker_up() {
    sustained_load_with_connection_churn(2);
}

/// A consumer follows the log while a producer writes it, with --smp 2: fetches for partitions
/// on the other shard wait there and are woken by appends there.
#[test]
fn smp2_consumer_tails_the_log_while_a_producer_writes_it() {
    use riffle_tests::{python_bin, python_script, scratch_dir, Background};

    const MESSAGES: &str = "30000";
    let broker = Broker::start_with(BrokerOptions {
        smp: 2,
        ..Default::default()
    });
    let addr = broker.addr();
    let topic = "smp2-tail";
    kafka::create_topic(&addr, topic, 8);
    let tail = Background::spawn(
        Command::new(python_bin())
            .arg("-u")
            .arg(python_script("confluent_tail.py"))
            .args([&addr, topic, "8", MESSAGES]),
    );
    // Let the consumer reach the (empty) log end and wait there first.
    std::thread::sleep(Duration::from_millis(1500));
    let scratch = scratch_dir("riffle-tail-");
    let acked = scratch.path().join("acked.txt");
    python_ok(
        "confluent_produce.py",
        &[
            &addr,
            topic,
            "8",
            MESSAGES,
            acked.to_str().expect("UTF-8 path"),
        ],
        Duration::from_secs(120),
    );
    tail.wait_ok(Duration::from_secs(120));
}

/// The shard count is a start-up flag: a restart with another --smp must still serve every
/// partition and every acknowledged message.
#[test]
fn restart_with_a_different_shard_count_serves_every_partition() {
    use riffle_tests::scratch_dir;

    let scratch = scratch_dir("riffle-resmp-");
    let acked = scratch.path().join("acked.txt");
    let acked = acked.to_str().expect("UTF-8 path");
    let mut broker = Broker::start_with(BrokerOptions {
        smp: 2,
        ..Default::default()
    });
    let topic = "resmp";
    kafka::create_topic(&broker.addr(), topic, 8);
    python_ok(
        "confluent_produce.py",
        &[&broker.addr(), topic, "8", "8000", acked],
        Duration::from_secs(120),
    );
    assert!(broker.stop().success());
    broker.restart_with_smp(1);
    assert_acked_readable(&broker.addr(), topic, "8", acked, Unacked::None);
    assert!(broker.stop().success());
    broker.restart_with_smp(2);
    assert_acked_readable(&broker.addr(), topic, "8", acked, Unacked::None);
}
