//! Start-up with many partitions (issue 14, item 6): the broker listens and answers within
//! seconds whatever its partition count, opening partitions in the background once it listens
//! (a request for one not open yet opens it on the spot), and every partition becomes writable.

use std::time::{Duration, Instant};

use riffle_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use riffle_protocol::messages::{ProduceRequest, ProduceResponse};
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::{error_code, Records};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{Broker, BrokerOptions};

/// As many as one shard takes by default (`topic_partitions_per_shard`). Each opened partition
/// still writes 1 MiB of zeros ahead of its data until the write path's redesign (issue 15)
/// removes it, which is what keeps this number from being larger.
const PARTITIONS: i32 = 1000;
/// From the restart to a Metadata answer.
const LISTEN_WITHIN: Duration = Duration::from_secs(5);
/// For every partition to take a write after the restart.
const WRITABLE_WITHIN: Duration = Duration::from_secs(60);

/// One Produce request with one record for each partition; the error code of each.
fn produce_everywhere(conn: &mut Connection, topic: &str) -> Vec<(i32, i16, i64)> {
    let now_ms = 1_700_000_000_000;
    let mut builder = RecordBatchBuilder::new(Compression::None, now_ms);
    builder.append(now_ms, None, Some(b"after restart"), &[]);
    let batch = builder.finish();
    let response: ProduceResponse = conn
        .request(
            kafka::PRODUCE_VERSION,
            &ProduceRequest {
                transactional_id: None,
                acks: 1,
                timeout_ms: 30_000,
                topic_data: vec![TopicProduceData {
                    topic_id: Default::default(),
                    name: topic.to_string(),
                    partition_data: (0..PARTITIONS)
                        .map(|index| PartitionProduceData {
                            index,
                            records: Some(Records::from_bytes(batch.clone())),
                        })
                        .collect(),
                }],
            },
        )
        .expect("Produce round trip");
    response.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.index, p.error_code, p.base_offset))
        .collect()
}

/// The log without its ANSI colour sequences (`ESC [ ... m`).
fn without_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn a_restart_listens_at_once_and_opens_many_partitions_in_the_background() {
    let mut broker = Broker::start_with(BrokerOptions {
        config_toml: Some(format!(
            "topic_partitions_per_shard = {PARTITIONS}\nlog_segment_bytes = 1048576\n\
             log_preallocate_bytes = 1048576\n"
        )),
        ..Default::default()
    });
    let addr = broker.addr();
    kafka::create_topic(&addr, "many", PARTITIONS);
    broker.stop();

    let restarted = Instant::now();
    broker.restart();
    let md = kafka::metadata(&addr).expect("Metadata after the restart");
    let answered = restarted.elapsed();
    assert!(
        answered < LISTEN_WITHIN,
        "Metadata answered {answered:?} after the restart of a broker with {PARTITIONS} partitions"
    );
    let topic = md.topics.iter().find(|t| t.name.as_deref() == Some("many"));
    assert_eq!(
        topic.expect("the topic").partitions.len(),
        PARTITIONS as usize
    );

    let mut conn = Connection::connect(&addr).expect("connect");
    let answers = produce_everywhere(&mut conn, "many");
    let took = restarted.elapsed();
    assert_eq!(answers.len(), PARTITIONS as usize);
    for (index, code, base_offset) in answers {
        assert_eq!(code, error_code::NONE, "partition {index}");
        assert_eq!(base_offset, 0, "partition {index}");
    }
    eprintln!(
        "Metadata answered {answered:?} after the restart, all {PARTITIONS} written {took:?}"
    );
    assert!(
        took < WRITABLE_WITHIN,
        "every partition writable after {took:?}"
    );
    // The background walk (once at the first start, with nothing to open, then after the
    // restart) reports when it has them all.
    let deadline = Instant::now() + WRITABLE_WITHIN;
    let done = format!("opened={PARTITIONS} failed=0");
    while !without_colours(&broker.stderr_log()).contains(&done) {
        assert!(
            Instant::now() < deadline,
            "the background opening never ended:\n{}",
            broker.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
