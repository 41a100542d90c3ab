//! Fetch edge cases that real clients hit, driven by hand-built requests: long polling woken by
//! an append, a fetch offset inside a batch, offsets below the log start and past the end.

use std::thread;
use std::time::{Duration, Instant};

use riffle_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use riffle_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use riffle_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use riffle_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    ProduceRequest,
};
use riffle_protocol::record_batch::{batches, Compression, RecordBatchBuilder};
use riffle_protocol::{error_code, Bytes, Records};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::Broker;

fn batch(first: usize, records: usize) -> Bytes {
    let now_ms = 1_700_000_000_000;
    let mut builder = RecordBatchBuilder::new(Compression::None, now_ms);
    for i in first..first + records {
        let value = format!("record-{i}");
        builder.append(now_ms + i as i64, None, Some(value.as_bytes()), &[]);
    }
    builder.finish()
}

/// (base offset, record count) of each batch in a Fetch answer's records.
fn batch_spans(data: &riffle_protocol::messages::fetch_response::PartitionData) -> Vec<(i64, i32)> {
    let records = data
        .records
        .as_ref()
        .map(|r| r.to_bytes())
        .unwrap_or_default();
    batches(&records)
        .map_while(Result::ok)
        .map(|b| (b.base_offset(), b.record_count()))
        .collect()
}

fn list_offset(conn: &mut Connection, topic: &str, timestamp: i64) -> (i16, i64) {
    let response: ListOffsetsResponse = conn
        .request(
            7,
            &ListOffsetsRequest {
                replica_id: -1,
                isolation_level: 0,
                topics: vec![ListOffsetsTopic {
                    name: topic.to_string(),
                    partitions: vec![ListOffsetsPartition {
                        partition_index: 0,
                        timestamp,
                        ..Default::default()
                    }],
                }],
                ..Default::default()
            },
        )
        .expect("ListOffsets round trip");
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.offset)
}

#[test]
fn fetch_at_log_end_waits_until_an_append_arrives() {
    let broker = Broker::start();
    let addr = broker.addr();
    let topic = "fetch-long-poll";
    kafka::create_topic(&addr, topic, 1);
    let mut conn = Connection::connect(&addr).expect("connect");
    assert_eq!(kafka::produce(&mut conn, topic, 0, batch(0, 3), -1), (0, 0));

    let producer_addr = addr.clone();
    let appender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(700));
        let mut conn = Connection::connect(&producer_addr).expect("connect");
        kafka::produce(&mut conn, topic, 0, batch(3, 2), -1)
    });
    let started = Instant::now();
    let data = kafka::fetch(&mut conn, topic, 0, 3, 10_000);
    let waited = started.elapsed();
    assert_eq!(appender.join().expect("the appender"), (0, 3));
    assert_eq!(data.error_code, error_code::NONE);
    assert_eq!(
        batch_spans(&data),
        vec![(3, 2)],
        "the Fetch at the log end returns the batch appended while it waited ({waited:?})"
    );
    assert!(
        waited < Duration::from_secs(5),
        "the Fetch waited {waited:?}: an append must wake it, not max_wait_ms (10 s)"
    );
}

#[test]
fn fetch_at_log_end_with_nothing_appended_answers_empty_after_max_wait() {
    let broker = Broker::start();
    let addr = broker.addr();
    let topic = "fetch-max-wait";
    kafka::create_topic(&addr, topic, 1);
    let mut conn = Connection::connect(&addr).expect("connect");
    assert_eq!(kafka::produce(&mut conn, topic, 0, batch(0, 1), -1), (0, 0));
    let started = Instant::now();
    let data = kafka::fetch(&mut conn, topic, 0, 1, 400);
    let waited = started.elapsed();
    assert_eq!(data.error_code, error_code::NONE);
    assert!(batch_spans(&data).is_empty(), "no record past the log end");
    assert_eq!(data.high_watermark, 1);
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "max_wait_ms 400 answered after {waited:?}"
    );
}

#[test]
fn fetch_in_the_middle_of_a_batch_returns_the_whole_batch() {
    let broker = Broker::start();
    let addr = broker.addr();
    let topic = "fetch-mid-batch";
    kafka::create_topic(&addr, topic, 1);
    let mut conn = Connection::connect(&addr).expect("connect");
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, batch(0, 10), -1),
        (0, 0)
    );
    assert_eq!(
        kafka::produce(&mut conn, topic, 0, batch(10, 10), -1),
        (0, 10)
    );
    let data = kafka::fetch(&mut conn, topic, 0, 15, 100);
    assert_eq!(data.error_code, error_code::NONE);
    assert_eq!(data.high_watermark, 20);
    assert_eq!(
        batch_spans(&data),
        vec![(10, 10)],
        "a fetch at offset 15 returns the whole batch 10..=19 (clients skip 10..14)"
    );
    let data = kafka::fetch(&mut conn, topic, 0, 5, 100);
    assert_eq!(batch_spans(&data), vec![(0, 10), (10, 10)]);
}

#[test]
fn fetch_outside_the_log_is_offset_out_of_range() {
    let broker = Broker::start();
    let addr = broker.addr();
    let topic = "fetch-out-of-range";
    kafka::create_topic(&addr, topic, 1);
    let mut conn = Connection::connect(&addr).expect("connect");
    for first in (0..30).step_by(10) {
        assert_eq!(
            kafka::produce(&mut conn, topic, 0, batch(first, 10), -1),
            (0, first as i64)
        );
    }
    // Past the end (the end itself is fine: it waits).
    let data = kafka::fetch(&mut conn, topic, 0, 31, 100);
    assert_eq!(
        data.error_code,
        error_code::OFFSET_OUT_OF_RANGE,
        "fetch past the log end"
    );
    // Below the log start after DeleteRecords.
    let response: DeleteRecordsResponse = conn
        .request(
            1,
            &DeleteRecordsRequest {
                topics: vec![DeleteRecordsTopic {
                    name: topic.to_string(),
                    partitions: vec![DeleteRecordsPartition {
                        partition_index: 0,
                        offset: 15,
                    }],
                }],
                timeout_ms: 10_000,
            },
        )
        .expect("DeleteRecords round trip");
    let p = &response.topics[0].partitions[0];
    assert_eq!((p.error_code, p.low_watermark), (error_code::NONE, 15));
    assert_eq!(list_offset(&mut conn, topic, -2), (error_code::NONE, 15));
    assert_eq!(list_offset(&mut conn, topic, -1), (error_code::NONE, 30));
    let data = kafka::fetch(&mut conn, topic, 0, 5, 100);
    assert_eq!(
        data.error_code,
        error_code::OFFSET_OUT_OF_RANGE,
        "fetch below the log start (15)"
    );
    let data = kafka::fetch(&mut conn, topic, 0, 15, 100);
    assert_eq!(data.error_code, error_code::NONE);
    assert_eq!(data.log_start_offset, 15);
    let spans = batch_spans(&data);
    assert_eq!(
        spans.first(),
        Some(&(10, 10)),
        "fetch at the log start 15 returns the batch holding it"
    );
}

#[test]
fn fetch_returns_a_first_batch_larger_than_the_byte_limits() {
    let broker = Broker::start();
    let addr = broker.addr();
    let topic = "fetch-oversized-batch";
    kafka::create_topic(&addr, topic, 1);
    let mut conn = Connection::connect(&addr).expect("connect");
    let now_ms = 1_700_000_000_000;
    let mut builder = RecordBatchBuilder::new(Compression::None, now_ms);
    let value = vec![b'b'; 20 * 1024];
    for _ in 0..5 {
        builder.append(now_ms, None, Some(&value), &[]);
    }
    let big = builder.finish();
    assert_eq!(kafka::produce(&mut conn, topic, 0, big.clone(), -1), (0, 0));
    assert_eq!(kafka::produce(&mut conn, topic, 0, batch(5, 3), -1), (0, 5));
    // Kafka (KIP-74): the first batch is returned whole even above partition_max_bytes and
    // max_bytes, or a consumer could never get past it.
    for (max_bytes, partition_max_bytes) in [(1 << 20, 1000), (1000, 1 << 20), (1000, 1000)] {
        let data =
            kafka::fetch_with_limits(&mut conn, topic, 0, 0, 100, max_bytes, partition_max_bytes);
        assert_eq!(data.error_code, error_code::NONE);
        let spans = batch_spans(&data);
        assert_eq!(
            spans.first(),
            Some(&(0, 5)),
            "max_bytes {max_bytes}, partition_max_bytes {partition_max_bytes}: the first \
             ({} byte) batch must come back whole",
            big.len()
        );
    }
}

#[test]
fn delete_records_log_start_survives_restarts() {
    let mut broker = Broker::start();
    let topic = "delete-records-restart";
    kafka::create_topic(&broker.addr(), topic, 1);
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    for first in (0..30).step_by(10) {
        assert_eq!(
            kafka::produce(&mut conn, topic, 0, batch(first, 10), -1),
            (0, first as i64)
        );
    }
    let response: DeleteRecordsResponse = conn
        .request(
            1,
            &DeleteRecordsRequest {
                topics: vec![DeleteRecordsTopic {
                    name: topic.to_string(),
                    partitions: vec![DeleteRecordsPartition {
                        partition_index: 0,
                        offset: 15,
                    }],
                }],
                timeout_ms: 10_000,
            },
        )
        .expect("DeleteRecords round trip");
    assert_eq!(
        response.topics[0].partitions[0].error_code,
        error_code::NONE
    );
    drop(conn);
    assert!(broker.stop().success());
    broker.restart();
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    assert_eq!(
        list_offset(&mut conn, topic, -2),
        (error_code::NONE, 15),
        "the log start after a SIGTERM restart"
    );
    drop(conn);
    broker.kill9();
    broker.restart();
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    assert_eq!(
        list_offset(&mut conn, topic, -2),
        (error_code::NONE, 15),
        "the log start after a kill -9 restart"
    );
    assert_eq!(
        kafka::fetch(&mut conn, topic, 0, 5, 0).error_code,
        error_code::OFFSET_OUT_OF_RANGE
    );
}

/// acks=0 and acks=1 are answered before the data is durable; consumers see it once it is (the
/// broker flushes such appends in the background), never past the high watermark, and the high
/// watermark, ListOffsets "latest" and the records agree.
#[test]
fn records_produced_without_acks_all_become_visible_at_the_high_watermark() {
    let broker = Broker::start();
    let addr = broker.addr();
    let topic = "fetch-acks-0-1";
    kafka::create_topic(&addr, topic, 1);
    let mut conn = Connection::connect(&addr).expect("connect");
    for i in 0..20 {
        let acks = if i % 2 == 0 { 0 } else { 1 };
        if acks == 0 {
            // No answer comes for acks=0: send it and go on.
            let request = conn.encode(
                kafka::PRODUCE_VERSION,
                &ProduceRequest {
                    acks: 0,
                    timeout_ms: 10_000,
                    topic_data: vec![TopicProduceData {
                        topic_id: Default::default(),
                        name: topic.to_string(),
                        partition_data: vec![PartitionProduceData {
                            index: 0,
                            records: Some(Records::from_bytes(batch(i * 5, 5))),
                        }],
                    }],
                    ..Default::default()
                },
            );
            conn.send_raw(&request).expect("send acks=0 produce");
        } else {
            let (code, _) = kafka::produce(&mut conn, topic, 0, batch(i * 5, 5), 1);
            assert_eq!(code, error_code::NONE);
        }
    }
    let mut consumer = Connection::connect(&addr).expect("connect");
    let mut next = 0i64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while next < 100 {
        assert!(
            Instant::now() < deadline,
            "only {next} of 100 records became visible"
        );
        let data = kafka::fetch(&mut consumer, topic, 0, next, 1_000);
        assert_eq!(data.error_code, error_code::NONE);
        for (base, count) in batch_spans(&data) {
            assert_eq!(base, next, "batches arrive in order, whole");
            next = base + i64::from(count);
            assert!(
                next <= data.high_watermark,
                "a record past the high watermark was sent"
            );
        }
    }
    assert_eq!(
        list_offset(&mut consumer, topic, -1),
        (error_code::NONE, 100)
    );
    let at_end = kafka::fetch(&mut consumer, topic, 0, 100, 0);
    assert_eq!(
        (at_end.error_code, at_end.high_watermark),
        (error_code::NONE, 100)
    );
}

/// One Fetch of every partition of `topic` from `offsets`, under `max_bytes` for the response.
fn fetch_partitions(
    conn: &mut Connection,
    topic: &str,
    offsets: &[i64],
    max_bytes: i32,
) -> Vec<riffle_protocol::messages::fetch_response::PartitionData> {
    use riffle_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use riffle_protocol::messages::{FetchRequest, FetchResponse};
    let partitions = offsets
        .iter()
        .enumerate()
        .map(|(p, &fetch_offset)| FetchPartition {
            partition: p as i32,
            fetch_offset,
            partition_max_bytes: 1 << 20,
            ..Default::default()
        })
        .collect();
    let request = FetchRequest {
        replica_id: -1,
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes,
        session_epoch: -1,
        topics: vec![FetchTopic {
            topic: topic.to_string(),
            partitions,
            ..Default::default()
        }],
        ..Default::default()
    };
    let response: FetchResponse = conn.request(kafka::FETCH_VERSION, &request).expect("fetch");
    response
        .responses
        .into_iter()
        .next()
        .expect("the topic")
        .partitions
}

/// A Fetch of many partitions under a small max_bytes fills it in request order; the partitions
/// left out still report their high watermark (and an offset out of range), and fetching on from
/// the returned offsets drains every partition.
#[test]
fn a_wide_fetch_fills_max_bytes_in_order_and_reports_every_partition() {
    let broker = Broker::start();
    let addr = broker.addr();
    let topic = "fetch-wide";
    const PARTITIONS: usize = 8;
    kafka::create_topic(&addr, topic, PARTITIONS as i32);
    let mut conn = Connection::connect(&addr).expect("connect");
    let batch_bytes = batch(0, 400).len();
    for p in 0..PARTITIONS as i32 {
        for b in 0..3 {
            let base = kafka::produce(&mut conn, topic, p, batch(b * 400, 400), -1);
            assert_eq!(base, (error_code::NONE, b as i64 * 400));
        }
    }
    // Room for about five batches: the first partition whole, then part of the second.
    let max_bytes = (5 * batch_bytes + batch_bytes / 2) as i32;
    let mut offsets = vec![0i64; PARTITIONS];
    offsets[PARTITIONS - 1] = 5_000; // past the end
    let first = fetch_partitions(&mut conn, topic, &offsets, max_bytes);
    let spans: Vec<Vec<(i64, i32)>> = first.iter().map(batch_spans).collect();
    assert_eq!(spans[0].len(), 3, "the first partition is read whole");
    assert!(!spans[1].is_empty(), "the second gets what is left");
    let total: usize = first
        .iter()
        .map(|d| d.records.as_ref().map_or(0, |r| r.to_bytes().len()))
        .sum();
    assert!(total <= max_bytes as usize, "{total} bytes above max_bytes");
    for (p, data) in first.iter().enumerate().take(PARTITIONS - 1) {
        assert_eq!(data.error_code, error_code::NONE, "partition {p}");
        assert_eq!(
            data.high_watermark, 1200,
            "partition {p} reports its high watermark"
        );
    }
    assert_eq!(
        first[PARTITIONS - 1].error_code,
        error_code::OFFSET_OUT_OF_RANGE
    );
    // Fetching on from where each answer ended drains every partition.
    offsets[PARTITIONS - 1] = 0;
    let mut fetches = 0;
    while offsets.iter().any(|&o| o < 1200) {
        fetches += 1;
        assert!(fetches <= 10, "stuck at {offsets:?}");
        for (p, data) in fetch_partitions(&mut conn, topic, &offsets, max_bytes)
            .iter()
            .enumerate()
        {
            if let Some(&(base, count)) = batch_spans(data).last() {
                offsets[p] = base + count as i64;
            }
        }
    }
}
