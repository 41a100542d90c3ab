//! Retention seen from a client: with small segments, housekeeping deletes whole old segments
//! past retention.bytes, the log start offset moves, Fetch below it is OFFSET_OUT_OF_RANGE and
//! the rest is still served. A deleted segment is recycled as the next one (no zeros written
//! ahead of its data), and a kill -9 while new data lies over the old bytes loses nothing
//! acknowledged.

use std::time::{Duration, Instant};

use crate::admin::Scrape;
use riffle_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use riffle_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::{error_code, Bytes};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{assert_acked_readable_from, scratch_dir, AckedLoad, Broker, ReadFrom, Unacked};

const BATCH_RECORDS: i64 = 16;
const VALUE_BYTES: usize = 4096;
const BATCHES: i64 = 64; // 64 x 64 KiB = 4 MiB

fn batch() -> Bytes {
    // Current timestamps: old ones would fall under the default retention.ms instead.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    let mut builder = RecordBatchBuilder::new(Compression::None, now_ms);
    let value = vec![b'r'; VALUE_BYTES];
    for _ in 0..BATCH_RECORDS {
        builder.append(now_ms, None, Some(&value), &[]);
    }
    builder.finish()
}

fn earliest(conn: &mut Connection, topic: &str) -> i64 {
    let response: ListOffsetsResponse = conn
        .request(
            7,
            &ListOffsetsRequest {
                replica_id: -1,
                topics: vec![ListOffsetsTopic {
                    name: topic.to_string(),
                    partitions: vec![ListOffsetsPartition {
                        partition_index: 0,
                        timestamp: -2,
                        ..Default::default()
                    }],
                }],
                ..Default::default()
            },
        )
        .expect("ListOffsets");
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, error_code::NONE);
    p.offset
}

#[test]
fn retention_bytes_deletes_old_segments_and_moves_the_log_start() {
    let broker = Broker::start();
    let addr = broker.addr();
    let topic = "retention-bytes";
    let segment_bytes = 1024 * 1024;
    kafka::create_topic_with_configs(
        &addr,
        topic,
        1,
        &[
            ("segment.bytes", &segment_bytes.to_string()),
            ("retention.bytes", &segment_bytes.to_string()),
        ],
    );
    let mut conn = Connection::connect(&addr).expect("connect");
    for n in 0..BATCHES {
        assert_eq!(
            kafka::produce(&mut conn, topic, 0, batch(), -1),
            (error_code::NONE, n * BATCH_RECORDS)
        );
    }
    let log_end = BATCHES * BATCH_RECORDS;
    // Housekeeping runs every few seconds: wait for it.
    let deadline = Instant::now() + Duration::from_secs(40);
    let start = loop {
        let start = earliest(&mut conn, topic);
        if start > 0 {
            break start;
        }
        assert!(
            Instant::now() < deadline,
            "the log start is still 0 after 40 s with 4 MiB in 1 MiB segments and \
             retention.bytes 1 MiB\n{}",
            broker.log_tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        start < log_end,
        "everything was deleted (log start {start})"
    );
    // Whole segments only: what remains is at least retention.bytes' worth.
    let kept_bytes = (log_end - start) as usize / BATCH_RECORDS as usize * batch().len();
    assert!(
        kept_bytes >= segment_bytes,
        "only {kept_bytes} bytes kept, retention.bytes is {segment_bytes}"
    );
    let data = kafka::fetch(&mut conn, topic, 0, 0, 0);
    assert_eq!(
        data.error_code,
        error_code::OFFSET_OUT_OF_RANGE,
        "Fetch at 0 after the log start moved to {start}"
    );
    let data = kafka::fetch(&mut conn, topic, 0, start, 0);
    assert_eq!(data.error_code, error_code::NONE);
    assert_eq!(data.log_start_offset, start);
    assert_eq!(data.high_watermark, log_end);
}

#[test]
fn kill9_while_recycled_segments_are_written_loses_nothing_acknowledged() {
    let scratch = scratch_dir("riffle-recycle-");
    let acked = scratch.path().join("acked.txt");
    let topic = "recycled-segments";
    let partitions = 4;
    let mut broker = Broker::start();
    let segment_bytes = (1024 * 1024).to_string();
    // Retention by size is checked at each roll: from the third roll on, every new segment of a
    // partition is the one its retention deleted just before.
    kafka::create_topic_with_configs(
        &broker.addr(),
        topic,
        partitions,
        &[
            ("segment.bytes", &segment_bytes),
            ("retention.bytes", &segment_bytes),
        ],
    );
    let load = AckedLoad::start(&broker, topic, partitions, &acked);
    let recycled = |b: &Broker| Scrape::of(b).sum("riffle_segments_recycled_total") >= 8.0;
    load.wait_for(&mut broker, 1000, Duration::from_secs(60), recycled);
    let seen = kafka::high_watermarks(&broker.addr(), topic, partitions);
    broker.kill9();
    load.stop();
    broker.restart();
    let after = kafka::high_watermarks(&broker.addr(), topic, partitions);
    kafka::assert_high_watermarks_kept(&seen, &after);
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    assert!(earliest(&mut conn, topic) > 0, "retention deleted nothing");
    assert_acked_readable_from(
        &broker.addr(),
        topic,
        partitions,
        &acked,
        Unacked::Allowed,
        ReadFrom::LogStart,
    );
}
