//! Topic administration by hand-built requests: validation and Kafka error codes, deletion and
//! re-creation under the same name, added partitions, all of it surviving restarts.

use std::time::{Duration, Instant};

use riffle_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use riffle_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::{error_code, Bytes};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::Broker;

fn batch(records: usize) -> Bytes {
    let now_ms = 1_700_000_000_000;
    let mut builder = RecordBatchBuilder::new(Compression::None, now_ms);
    for i in 0..records {
        builder.append(now_ms, None, Some(format!("v{i}").as_bytes()), &[]);
    }
    builder.finish()
}

fn create(addr: &str, name: &str, partitions: i32, replication_factor: i16) -> i16 {
    kafka::try_create_topic(addr, name, partitions, replication_factor, &[]).0
}

fn add_partitions(addr: &str, name: &str, count: i32) -> i16 {
    let mut conn = Connection::connect(addr).expect("connect");
    let response: CreatePartitionsResponse = conn
        .request(
            1,
            &CreatePartitionsRequest {
                topics: vec![CreatePartitionsTopic {
                    name: name.to_string(),
                    count,
                    assignments: None,
                }],
                timeout_ms: 10_000,
                validate_only: false,
            },
        )
        .expect("CreatePartitions round trip");
    response.results[0].error_code
}

/// The topic's partition count in Metadata (None: not listed), waiting up to 10 s for `want`.
fn partitions_in_metadata(addr: &str, name: &str, want: Option<usize>) -> Option<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let md = kafka::metadata(addr).expect("Metadata");
        let got = md
            .topics
            .iter()
            .find(|t| t.name.as_deref() == Some(name))
            .map(|t| t.partitions.len());
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_end(addr: &str, topic: &str, partition: i32) -> i64 {
    let mut conn = Connection::connect(addr).expect("connect");
    let data = kafka::fetch(&mut conn, topic, partition, 0, 0);
    assert_eq!(data.error_code, error_code::NONE, "{topic}-{partition}");
    data.high_watermark
}

fn produce(addr: &str, topic: &str, partition: i32, records: usize) -> (i16, i64) {
    let mut conn = Connection::connect(addr).expect("connect");
    kafka::produce(&mut conn, topic, partition, batch(records), -1)
}

#[test]
fn create_topics_answers_kafka_error_codes_for_invalid_requests() {
    let broker = Broker::start();
    let addr = broker.addr();
    assert_eq!(create(&addr, "valid", 2, 1), error_code::NONE);
    assert_eq!(
        create(&addr, "valid", 2, 1),
        error_code::TOPIC_ALREADY_EXISTS
    );
    assert_eq!(
        create(&addr, "bad/name", 1, 1),
        error_code::INVALID_TOPIC_EXCEPTION
    );
    assert_eq!(
        create(&addr, &"x".repeat(300), 1, 1),
        error_code::INVALID_TOPIC_EXCEPTION,
        "a name above 249 characters"
    );
    assert_eq!(
        create(&addr, "zero-partitions", 0, 1),
        error_code::INVALID_PARTITIONS
    );
    assert_eq!(
        create(&addr, "three-replicas", 1, 3),
        error_code::INVALID_REPLICATION_FACTOR,
        "replication factor 3 on a single node"
    );
    assert_eq!(
        kafka::delete_topic(&addr, "never-created"),
        error_code::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(partitions_in_metadata(&addr, "zero-partitions", None), None);
}

#[test]
fn deleted_topic_is_gone_across_restarts_and_recreated_empty() {
    let mut broker = Broker::start();
    let addr = broker.addr();
    let topic = "delete-recreate";
    assert_eq!(create(&addr, topic, 2, 1), error_code::NONE);
    assert_eq!(partitions_in_metadata(&addr, topic, Some(2)), Some(2));
    assert_eq!(produce(&addr, topic, 0, 10), (error_code::NONE, 0));
    assert_eq!(kafka::delete_topic(&addr, topic), error_code::NONE);
    assert_eq!(partitions_in_metadata(&addr, topic, None), None);

    assert!(broker.stop().success(), "SIGTERM exit status");
    broker.restart();
    assert_eq!(
        partitions_in_metadata(&addr, topic, None),
        None,
        "a deleted topic stays deleted after a restart"
    );
    assert_eq!(create(&addr, topic, 3, 1), error_code::NONE);
    assert_eq!(partitions_in_metadata(&addr, topic, Some(3)), Some(3));
    assert_eq!(log_end(&addr, topic, 0), 0, "the new topic starts empty");
    assert_eq!(produce(&addr, topic, 0, 1), (error_code::NONE, 0));
    assert_eq!(produce(&addr, topic, 2, 1), (error_code::NONE, 0));

    assert!(broker.stop().success(), "SIGTERM exit status");
    broker.restart();
    assert_eq!(partitions_in_metadata(&addr, topic, Some(3)), Some(3));
    assert_eq!(log_end(&addr, topic, 0), 1);
    assert_eq!(log_end(&addr, topic, 2), 1);
}

#[test]
fn create_partitions_adds_partitions_that_take_writes_and_survive_restart() {
    let mut broker = Broker::start_with(riffle_tests::BrokerOptions {
        smp: 2,
        ..Default::default()
    });
    let addr = broker.addr();
    let topic = "grow";
    assert_eq!(create(&addr, topic, 2, 1), error_code::NONE);
    assert_eq!(produce(&addr, topic, 1, 5), (error_code::NONE, 0));
    assert_eq!(add_partitions(&addr, topic, 4), error_code::NONE);
    assert_eq!(partitions_in_metadata(&addr, topic, Some(4)), Some(4));
    assert_eq!(produce(&addr, topic, 3, 2), (error_code::NONE, 0));
    assert_eq!(
        add_partitions(&addr, topic, 3),
        error_code::INVALID_PARTITIONS,
        "shrinking from 4 to 3 partitions"
    );
    assert_eq!(
        add_partitions(&addr, "no-such-topic", 3),
        error_code::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert!(broker.stop().success(), "SIGTERM exit status");
    broker.restart();
    assert_eq!(partitions_in_metadata(&addr, topic, Some(4)), Some(4));
    assert_eq!(log_end(&addr, topic, 1), 5);
    assert_eq!(log_end(&addr, topic, 3), 2);
}
