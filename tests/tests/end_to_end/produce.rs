//! Produce rules by hand-built requests: idempotent producer sequences (duplicates answered
//! without a second append, gaps refused, state kept across restarts), max.message.bytes, and
//! the ApiVersions table librdkafka relies on (Produce advertised from v0, v0-2 refused politely).

use riffle_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, InitProducerIdRequest, InitProducerIdResponse,
    ProduceRequest, ProduceResponse,
};
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::{error_code, ApiKey, Bytes};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{kcat_bin, Broker};
use std::process::Command;

fn batch(producer: Option<(i64, i16, i32)>, records: usize, value_bytes: usize) -> Bytes {
    let now_ms = 1_700_000_000_000;
    let mut builder = RecordBatchBuilder::new(Compression::None, now_ms);
    if let Some((id, epoch, sequence)) = producer {
        builder = builder.producer(id, epoch, sequence);
    }
    let value = vec![b'p'; value_bytes];
    for i in 0..records {
        builder.append(now_ms + i as i64, None, Some(&value), &[]);
    }
    builder.finish()
}

fn init_producer_id(conn: &mut Connection) -> (i64, i16) {
    let response: InitProducerIdResponse = conn
        .request(
            1,
            &InitProducerIdRequest {
                transactional_id: None,
                transaction_timeout_ms: 60_000,
                ..Default::default()
            },
        )
        .expect("InitProducerId round trip");
    assert_eq!(response.error_code, error_code::NONE, "InitProducerId");
    assert!(response.producer_id >= 0);
    (response.producer_id, response.producer_epoch)
}

fn log_end_offset(addr: &str, topic: &str) -> i64 {
    let mut conn = Connection::connect(addr).expect("connect");
    kafka::fetch(&mut conn, topic, 0, 0, 0).high_watermark
}

#[test]
fn idempotent_producer_duplicates_are_not_appended_twice_and_gaps_are_refused_across_restarts() {
    let mut broker = Broker::start();
    let topic = "idempotence";
    kafka::create_topic(&broker.addr(), topic, 1);
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    let (pid, epoch) = init_producer_id(&mut conn);
    let first = batch(Some((pid, epoch, 0)), 5, 10);
    let second = batch(Some((pid, epoch, 5)), 5, 10);
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, first.clone(), -1),
        (0, 0)
    );
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, first.clone(), -1),
        (0, 0),
        "a retried batch (same sequence) is answered with its first offset"
    );
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, second.clone(), -1),
        (0, 5)
    );
    assert_eq!(
        log_end_offset(&broker.addr(), topic),
        10,
        "no second append"
    );
    let gap = batch(Some((pid, epoch, 20)), 5, 10);
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, gap, -1).0,
        error_code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        "a sequence gap (expected 10, got 20)"
    );
    drop(conn);

    // Graceful restart: the producer state comes back.
    let status = broker.stop();
    assert!(status.success(), "SIGTERM exit {status}");
    broker.restart();
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, second.clone(), -1),
        (0, 5),
        "after a restart, a retry of the last batch is still a duplicate"
    );
    let third = batch(Some((pid, epoch, 10)), 5, 10);
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, third.clone(), -1),
        (0, 10)
    );
    assert_eq!(log_end_offset(&broker.addr(), topic), 15);
    drop(conn);

    // kill -9: the producer state is rebuilt from what is on disk.
    broker.kill9();
    broker.restart();
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, third, -1),
        (0, 10),
        "after kill -9, a retry of the last acknowledged batch is still a duplicate"
    );
    let fourth = batch(Some((pid, epoch, 15)), 5, 10);
    assert_eq!(kafka::produce(&mut conn, topic, 0, fourth, -1), (0, 15));
    assert_eq!(log_end_offset(&broker.addr(), topic), 20);
}

#[test]
fn batch_above_max_message_bytes_is_refused_with_message_too_large() {
    let broker = Broker::start();
    let topic = "max-message-bytes";
    kafka::create_topic_with_configs(&broker.addr(), topic, 1, &[("max.message.bytes", "2000")]);
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, batch(None, 4, 100), -1),
        (error_code::NONE, 0),
        "a batch below max.message.bytes"
    );
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, batch(None, 4, 1000), -1).0,
        error_code::MESSAGE_TOO_LARGE,
        "a batch of about 4 KB with max.message.bytes=2000"
    );
    assert_eq!(log_end_offset(&broker.addr(), topic), 4);
}

#[test]
fn api_versions_advertises_produce_from_v0_and_old_produce_gets_unsupported_version() {
    let broker = Broker::start();
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    let response: ApiVersionsResponse = conn
        .request(3, &ApiVersionsRequest::default())
        .expect("ApiVersions v3");
    assert_eq!(response.error_code, error_code::NONE);
    let range = |key: ApiKey| {
        response
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    let produce = range(ApiKey::Produce).expect("Produce advertised");
    assert_eq!(
        produce.0, 0,
        "Produce must be advertised from v0 (librdkafka turns compression off otherwise)"
    );
    assert!(produce.1 >= 7, "Produce max {}", produce.1);
    let fetch = range(ApiKey::Fetch).expect("Fetch advertised");
    assert!(fetch.0 <= 4 && fetch.1 >= 10, "Fetch {fetch:?}");
    for key in [
        ApiKey::Metadata,
        ApiKey::ListOffsets,
        ApiKey::ApiVersions,
        ApiKey::InitProducerId,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
    ] {
        assert!(range(key).is_some(), "{key:?} not advertised");
    }

    // Produce v2 (message sets, not record batches): answered UNSUPPORTED_VERSION, connection kept.
    let topic = "old-produce";
    kafka::create_topic(&broker.addr(), topic, 1);
    let request = ProduceRequest {
        acks: 1,
        timeout_ms: 5000,
        ..Default::default()
    };
    let answer: std::io::Result<ProduceResponse> = conn.request(2, &request);
    match answer {
        Ok(response) => {
            let codes: Vec<i16> = response
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
                .collect();
            assert!(
                codes.iter().all(|&c| c == error_code::UNSUPPORTED_VERSION),
                "Produce v2 answered with {codes:?}"
            );
        }
        Err(e) => panic!("Produce v2 must be answered, not dropped: {e}"),
    }
    let again: ApiVersionsResponse = conn
        .request(3, &ApiVersionsRequest::default())
        .expect("the connection still works after Produce v2");
    assert_eq!(again.error_code, error_code::NONE);
}

#[test]
fn produce_answers_kafka_errors_for_bad_targets_and_acks() {
    let broker = Broker::start();
    let topic = "produce-errors";
    kafka::create_topic(&broker.addr(), topic, 2);
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    assert_eq!(
        kafka::produce(&mut conn, topic, 2, batch(None, 1, 10), -1).0,
        error_code::UNKNOWN_TOPIC_OR_PARTITION,
        "partition 2 of a 2-partition topic"
    );
    assert_eq!(
        kafka::produce(&mut conn, topic, -1, batch(None, 1, 10), -1).0,
        error_code::UNKNOWN_TOPIC_OR_PARTITION,
        "partition -1"
    );
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, batch(None, 1, 10), 2).0,
        error_code::INVALID_REQUIRED_ACKS,
        "acks=2"
    );
    assert_eq!(
        kafka::produce(&mut conn, "bad/topic", 0, batch(None, 1, 10), -1).0,
        error_code::INVALID_TOPIC_EXCEPTION,
        "an invalid topic name is not auto-created"
    );
    // Nothing of the above was appended, and the connection still works.
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, batch(None, 1, 10), -1),
        (error_code::NONE, 0)
    );
    assert_eq!(log_end_offset(&broker.addr(), topic), 1);
}

/// `batch` compressed with `codec`: 3 records of 100 bytes.
fn compressed_batch(codec: Compression) -> Bytes {
    let now_ms = 1_700_000_000_000;
    let mut builder = RecordBatchBuilder::new(codec, now_ms);
    for i in 0..3 {
        builder.append(now_ms + i, Some(b"k"), Some(&[b'c'; 100]), &[]);
    }
    builder.finish()
}

/// Stores the CRC-32C of bytes 21.. in the header, as a client that means it would.
fn with_crc(mut batch: Vec<u8>) -> Bytes {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(batch)
}

/// A compressed batch whose CRC is right but whose records are not (garbage where the codec's
/// stream should be, or a stream holding fewer records than the header counts) is refused, as
/// Kafka refuses it, and never reaches the log: a consumer (kcat) reads the partition whole.
#[test]
fn compressed_batches_with_malformed_records_are_refused_and_consumers_read_on() {
    let broker = Broker::start();
    let topic = "malformed-compressed";
    kafka::create_topic(&broker.addr(), topic, 1);
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    for codec in [
        Compression::Lz4,
        Compression::Zstd,
        Compression::Gzip,
        Compression::Snappy,
    ] {
        let good = compressed_batch(codec);
        assert_eq!(
            kafka::produce(&mut conn, topic, 0, good.clone(), -1).0,
            0,
            "{codec:?}"
        );

        let mut garbage = good.to_vec();
        for (i, byte) in garbage[61..].iter_mut().enumerate() {
            *byte = (i as u8).wrapping_mul(151).wrapping_add(7);
        }
        let code = kafka::produce(&mut conn, topic, 0, with_crc(garbage), -1).0;
        assert!(
            [error_code::CORRUPT_MESSAGE, error_code::INVALID_RECORD].contains(&code),
            "{codec:?}: a garbage stream got error code {code}"
        );

        // The header claims 4 records (offsets 0..=3); the stream holds 3.
        let mut short = good.to_vec();
        short[23..27].copy_from_slice(&3i32.to_be_bytes());
        short[57..61].copy_from_slice(&4i32.to_be_bytes());
        let code = kafka::produce(&mut conn, topic, 0, with_crc(short), -1).0;
        assert_eq!(
            code,
            error_code::INVALID_RECORD,
            "{codec:?}: fewer records than counted"
        );
    }
    assert_eq!(
        log_end_offset(&broker.addr(), topic),
        12,
        "only the good batches"
    );
    let consumed = Command::new(kcat_bin())
        .args([
            "-C",
            "-b",
            &broker.addr(),
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .args(["-f", "%o %k\n"])
        .output()
        .expect("run kcat");
    let stdout = String::from_utf8_lossy(&consumed.stdout);
    assert!(
        consumed.status.success(),
        "kcat: {}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    assert_eq!(stdout.lines().count(), 12, "kcat read: {stdout}");
}
