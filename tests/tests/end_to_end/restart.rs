//! Durability across restarts: a graceful SIGTERM stop keeps every acknowledged message, and so
//! does a kill -9 in the middle of an acks=all produce load (acks=all means fdatasync'd).

use std::thread;
use std::time::{Duration, Instant};

use riffle_tests::{
    assert_acked_readable, kafka, python_ok, scratch_dir, AckedLoad, Broker, Unacked,
};

const PARTITIONS: &str = "4";

#[test]
fn sigterm_restart_keeps_every_acknowledged_message() {
    let scratch = scratch_dir("riffle-restart-");
    let acked = scratch.path().join("acked.txt");
    let acked = acked.to_str().expect("UTF-8 path");
    let mut broker = Broker::start();
    let topic = "restart-graceful";
    kafka::create_topic(&broker.addr(), topic, 4);
    python_ok(
        "confluent_produce.py",
        &[&broker.addr(), topic, PARTITIONS, "40000", acked],
        Duration::from_secs(180),
    );
    let status = broker.stop();
    assert!(
        status.success(),
        "riffle exited with {status} after SIGTERM\n{}",
        broker.log_tail()
    );
    assert!(
        broker.stderr_log().contains("stopped cleanly"),
        "no clean stop in the log\n{}",
        broker.log_tail()
    );
    broker.restart();
    assert_acked_readable(&broker.addr(), topic, PARTITIONS, acked, Unacked::None);
    // The topic itself (not only its bytes) survived: Metadata lists its 4 partitions.
    let md = kafka::metadata(&broker.addr()).expect("Metadata after restart");
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some(topic))
        .expect("the topic survives the restart");
    assert_eq!(t.partitions.len(), 4);
}

/// Runs an acks=all producer load, interrupts the broker with `interrupt` once 30,000 messages
/// are acknowledged, restarts it and checks every acknowledged message is there.
fn interrupt_under_load_keeps_acknowledged_messages(topic: &str, interrupt: fn(&mut Broker)) {
    let scratch = scratch_dir("riffle-interrupt-");
    let acked = scratch.path().join("acked.txt");
    let mut broker = Broker::start();
    kafka::create_topic(&broker.addr(), topic, 4);
    let load = AckedLoad::start(&broker, topic, 4, &acked);
    load.wait_for(&mut broker, 30_000, Duration::from_secs(60), |_| true);
    interrupt(&mut broker);
    load.stop();
    broker.restart();
    assert_acked_readable(&broker.addr(), topic, PARTITIONS, acked, Unacked::Allowed);
    // The log takes appends again where it ended.
    python_ok(
        "confluent_produce.py",
        &[
            &broker.addr(),
            topic,
            PARTITIONS,
            "1000",
            scratch
                .path()
                .join("after.txt")
                .to_str()
                .expect("UTF-8 path"),
        ],
        Duration::from_secs(60),
    );
}

#[test]
fn kill9_during_acks_all_load_loses_no_acknowledged_message() {
    interrupt_under_load_keeps_acknowledged_messages("restart-kill9", |broker| broker.kill9());
}

#[test]
fn sigterm_during_acks_all_load_stops_cleanly_and_keeps_every_acknowledged_message() {
    interrupt_under_load_keeps_acknowledged_messages("restart-sigterm-load", |broker| {
        let status = broker.stop();
        assert!(
            status.success(),
            "riffle exited with {status} after SIGTERM under load\n{}",
            broker.log_tail()
        );
    });
}

#[test]
fn sigterm_with_a_fetch_waiting_in_a_long_poll_stops_promptly() {
    use riffle_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use riffle_protocol::messages::FetchRequest;

    let mut broker = Broker::start();
    let topic = "restart-long-poll";
    kafka::create_topic(&broker.addr(), topic, 1);
    let mut conn = kafka::Connection::connect(&broker.addr()).expect("connect");
    let request = conn.encode(
        kafka::FETCH_VERSION,
        &FetchRequest {
            replica_id: -1,
            max_wait_ms: 60_000,
            min_bytes: 1,
            max_bytes: 1 << 20,
            session_epoch: -1,
            topics: vec![FetchTopic {
                topic: topic.to_string(),
                partitions: vec![FetchPartition {
                    partition: 0,
                    fetch_offset: 0,
                    partition_max_bytes: 1 << 20,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    conn.send_raw(&request)
        .expect("send a Fetch that waits 60 s");
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = broker.stop();
    let took = started.elapsed();
    assert!(
        status.success(),
        "SIGTERM exit {status}\n{}",
        broker.log_tail()
    );
    assert!(
        took < Duration::from_secs(10),
        "shutdown took {took:?} with a Fetch waiting (max_wait_ms 60 s)"
    );
}

#[test]
fn small_segments_roll_and_every_message_is_read_back_before_and_after_restarts() {
    let scratch = scratch_dir("riffle-segments-");
    let acked = scratch.path().join("acked.txt");
    let acked = acked.to_str().expect("UTF-8 path");
    let mut broker = Broker::start();
    let topic = "small-segments";
    // Kafka 4's smallest segment (1 MiB): 60,000 messages fill several per partition.
    kafka::create_topic_with_configs(&broker.addr(), topic, 2, &[("segment.bytes", "1048576")]);
    python_ok(
        "confluent_produce.py",
        // Batches well below segment.bytes: a batch larger than a segment fills one alone.
        &[
            &broker.addr(),
            topic,
            "2",
            "60000",
            acked,
            "--batch-size=16384",
        ],
        Duration::from_secs(120),
    );
    let segments = std::fs::read_dir(broker.data_dir().join(format!("{topic}-0")))
        .expect("the partition dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
        .count();
    assert!(
        segments >= 3,
        "only {segments} segments with segment.bytes 1 MiB"
    );
    let verify = |broker: &Broker| {
        assert_acked_readable(&broker.addr(), topic, "2", acked, Unacked::None);
    };
    verify(&broker);
    assert!(broker.stop().success());
    broker.restart();
    verify(&broker);
    broker.kill9();
    broker.restart();
    verify(&broker);
}
