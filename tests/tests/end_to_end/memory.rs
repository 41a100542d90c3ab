//! Memory one client can make the broker hold (issue 14, item 5): the tail cache must count what
//! it really keeps. Low-rate producers send one message per request; each such request must not
//! pin the connection's 64 KiB receive buffer unless the cache counts it, and the tail caches of
//! all partitions of a shard share one cap (`shard_tail_cache_bytes`). RSS is read from /proc/PID/status, outside the broker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riffle_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use riffle_protocol::messages::{ProduceRequest, ProduceResponse};
use riffle_protocol::record_batch::{batches, Compression, RecordBatchBuilder};
use riffle_protocol::{error_code, Bytes, Records};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{Broker, BrokerOptions};

const MIB: u64 = 1024 * 1024;

/// The broker's resident memory (VmRSS), in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

/// One batch of one record carrying `value`, stamped now (an old timestamp would let retention
/// delete it while the test reads).
fn one_record(value: &[u8]) -> Bytes {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as i64;
    let mut builder = RecordBatchBuilder::new(Compression::None, now_ms);
    builder.append(now_ms, None, Some(value), &[]);
    builder.finish()
}

/// One Produce request, acks=all, with a batch for each (partition, batch) given.
fn produce_acks_all(
    conn: &mut Connection,
    topic: &str,
    batches: Vec<(i32, Bytes)>,
) -> ProduceResponse {
    let request = ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            topic_id: Default::default(),
            name: topic.to_string(),
            partition_data: batches
                .into_iter()
                .map(|(index, batch)| PartitionProduceData {
                    index,
                    records: Some(Records::from_bytes(batch)),
                })
                .collect(),
        }],
    };
    conn.request(kafka::PRODUCE_VERSION, &request)
        .expect("Produce round trip")
}

/// Produces `count` one-record requests in lockstep (each waits for its answer, as a client with
/// linger 0 that flushes after every message does), acks=1; returns the last base offset.
fn produce_one_by_one(conn: &mut Connection, topic: &str, partition: i32, count: usize) -> i64 {
    let mut last = -1;
    for i in 0..count {
        let mut value = format!("message-{i:08}-").into_bytes();
        value.resize(100, b'x');
        let (code, offset) = kafka::produce(conn, topic, partition, one_record(&value), 1);
        assert_eq!(code, error_code::NONE, "produce {i}");
        last = offset;
    }
    last
}

#[test]
fn one_message_produce_requests_do_not_pin_receive_buffers() {
    // Before the fix each of these requests kept a 64 KiB receive buffer alive from the tail
    // cache: 20,000 of them held about 1.3 GB. Now the cache holds ~300 bytes per message.
    const REQUESTS: usize = 20_000;
    let broker = Broker::start();
    let addr = broker.addr();
    kafka::create_topic(&addr, "tiny", 1);
    let mut conn = Connection::connect(&addr).expect("connect");
    produce_one_by_one(&mut conn, "tiny", 0, 200);
    let before = rss_bytes(broker.pid());
    let started = Instant::now();
    let last = produce_one_by_one(&mut conn, "tiny", 0, REQUESTS);
    let after = rss_bytes(broker.pid());
    assert_eq!(
        last,
        (200 + REQUESTS - 1) as i64,
        "every message acknowledged in order"
    );
    let grown = after.saturating_sub(before);
    eprintln!(
        "RSS {} -> {} MiB over {REQUESTS} one-message requests",
        before / MIB,
        after / MIB
    );
    assert!(
        grown < 48 * MIB,
        "RSS grew by {} MiB ({} -> {} MiB) over {REQUESTS} one-message requests in {:?}",
        grown / MIB,
        before / MIB,
        after / MIB,
        started.elapsed()
    );
    // The first message is still served, whether from the cache or the disk.
    let data = kafka::fetch(&mut conn, "tiny", 0, 0, 0);
    let records = data.records.map(|r| r.to_bytes()).unwrap_or_default();
    let first = batches(&records).next().expect("a batch").expect("valid");
    assert_eq!(first.base_offset(), 0);
}

#[test]
fn cached_slices_are_charged_for_the_receive_buffer_they_keep_alive() {
    // Each request carries 2 KiB of records for the topic's partition 0, cached as a slice of
    // the connection's receive buffer, and 30 KiB for a partition that does not exist (refused,
    // not cached): two such frames fill a 64 KiB buffer, so each cached slice keeps 32 KiB
    // alive. Charged by its own length, an 8 MiB cap would hold about 4,000 slices, pinning all
    // 125 MiB of receive buffers sent; charged by buffer, it holds about 128 buffers.
    const REQUESTS: usize = 4_000;
    let broker = Broker::start_with(BrokerOptions {
        config_toml: Some("shard_tail_cache_bytes = 8388608\n".to_string()),
        ..Default::default()
    });
    let addr = broker.addr();
    kafka::create_topic(&addr, "sliced", 1);
    let mut conn = Connection::connect(&addr).expect("connect");
    let value_of = |i: usize| vec![(i % 251) as u8; 2048];
    let padding = one_record(&[0u8; 30 * 1024]);
    let mut send = |i: usize| {
        let batches = vec![(0, one_record(&value_of(i))), (7, padding.clone())];
        let response = produce_acks_all(&mut conn, "sliced", batches);
        let answers = &response.responses[0].partition_responses;
        assert_eq!(answers[0].error_code, error_code::NONE, "request {i}");
        assert_eq!(answers[0].base_offset, i as i64, "request {i}");
        assert_eq!(
            answers[1].error_code,
            error_code::UNKNOWN_TOPIC_OR_PARTITION,
            "request {i}"
        );
    };
    for i in 0..100 {
        send(i);
    }
    let before = rss_bytes(broker.pid());
    for i in 100..REQUESTS {
        send(i);
    }
    let grown = rss_bytes(broker.pid()).saturating_sub(before);
    eprintln!("RSS grew by {} MiB over {REQUESTS} requests", grown / MIB);
    assert!(
        grown < 40 * MIB,
        "RSS grew by {} MiB over {REQUESTS} requests of 32 KiB with 2 KiB cached of each",
        grown / MIB
    );
    // What was evicted is read from disk, what is cached from memory, both unchanged.
    for offset in [0, REQUESTS as i64 - 1] {
        let data = kafka::fetch(&mut conn, "sliced", 0, offset, 0);
        let records = data.records.map(|r| r.to_bytes()).unwrap_or_default();
        let batch = batches(&records).next().expect("a batch").expect("valid");
        assert_eq!(batch.base_offset(), offset);
        let mut records = batch.records().expect("records");
        let record = records.next().expect("a record").expect("valid record");
        assert_eq!(record.value, Some(&value_of(offset as usize)[..]));
    }
}

#[test]
fn tail_caches_of_a_shard_share_one_cap() {
    // 32 partitions each take 4 MiB of ~100 KiB batches (their own cap, log_tail_cache_bytes, is
    // 4 MiB): 124 MiB cached without a shared cap (RSS grew by 109 MiB with 24 partitions);
    // with it, the shard keeps about 8 MiB.
    const PARTITIONS: i32 = 32;
    const BATCHES_PER_PARTITION: usize = 40;
    const VALUE_BYTES: usize = 100 * 1024;
    let broker = Broker::start_with(BrokerOptions {
        config_toml: Some(
            "shard_tail_cache_bytes = 8388608\nlog_preallocate_bytes = 1048576\n".to_string(),
        ),
        ..Default::default()
    });
    let addr = broker.addr();
    kafka::create_topic(&addr, "wide", PARTITIONS);
    let mut conn = Connection::connect(&addr).expect("connect");
    let value_of = |p: i32, i: usize| vec![(p as usize * 31 + i) as u8; VALUE_BYTES];
    // Warm the receive path with one large request first, so it is not counted as cache.
    let (code, _) = kafka::produce(&mut conn, "wide", 0, one_record(&value_of(0, 0)), -1);
    assert_eq!(code, error_code::NONE);
    let before = rss_bytes(broker.pid());
    for i in 1..BATCHES_PER_PARTITION {
        // One request for all partitions, acks=all: each batch is durable, so evictable, once
        // answered (batches not yet on disk stay cached whatever the cap).
        let batches = (0..PARTITIONS)
            .map(|p| (p, one_record(&value_of(p, i))))
            .collect();
        let response = produce_acks_all(&mut conn, "wide", batches);
        for p in &response.responses[0].partition_responses {
            assert_eq!(
                p.error_code,
                error_code::NONE,
                "partition {} batch {i}",
                p.index
            );
        }
    }
    let grown = rss_bytes(broker.pid()).saturating_sub(before);
    let sent = (PARTITIONS as u64) * (BATCHES_PER_PARTITION as u64) * VALUE_BYTES as u64;
    eprintln!(
        "RSS grew by {} MiB after {} MiB produced",
        grown / MIB,
        sent / MIB
    );
    assert!(
        grown < 64 * MIB,
        "RSS grew by {} MiB after {} MiB produced to {PARTITIONS} partitions",
        grown / MIB,
        sent / MIB
    );
    // Evicted batches are served from disk, unchanged (partition 0 took the warm-up first).
    for (p, offset) in [(0, 1), (PARTITIONS - 1, 0)] {
        let data = kafka::fetch(&mut conn, "wide", p, offset, 0);
        let records = data.records.map(|r| r.to_bytes()).unwrap_or_default();
        let batch = batches(&records).next().expect("a batch").expect("valid");
        assert_eq!(batch.base_offset(), offset);
        let mut records = batch.records().expect("records");
        let record = records.next().expect("a record").expect("valid record");
        assert_eq!(record.value, Some(&value_of(p, 1)[..]), "partition {p}");
    }
}

/// Fetch v11 of one partition from `offset` asking for up to 50 MiB.
fn large_fetch(conn: &mut Connection, topic: &str, offset: i64) -> Vec<u8> {
    use riffle_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use riffle_protocol::messages::FetchRequest;
    let max_bytes = 50 << 20;
    conn.encode(
        kafka::FETCH_VERSION,
        &FetchRequest {
            replica_id: -1,
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes,
            session_epoch: -1,
            topics: vec![FetchTopic {
                topic: topic.to_string(),
                partitions: vec![FetchPartition {
                    partition: 0,
                    fetch_offset: offset,
                    partition_max_bytes: max_bytes,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    )
}

/// Reads one Fetch response: (base offset, record count) of each batch it carries.
fn read_fetch_answer(conn: &mut Connection, offset: i64) -> Vec<(i64, i32)> {
    use riffle_protocol::messages::FetchResponse;
    let frame = conn.read_frame().expect("a Fetch response");
    let (_, response) =
        riffle_protocol::decode_response::<FetchResponse>(frame, kafka::FETCH_VERSION)
            .expect("the response decodes");
    let Some(data) = response.responses.into_iter().next() else {
        return Vec::new(); // throttled: no data this time
    };
    let data = data.partitions.into_iter().next().expect("the partition");
    assert_eq!(data.error_code, error_code::NONE, "fetch at {offset}");
    let records = data.records.map(|r| r.to_bytes()).unwrap_or_default();
    batches(&records)
        .map(|b| b.expect("a valid batch"))
        .map(|b| (b.base_offset(), b.record_count()))
        .collect()
}

/// Topic `big`'s batches of this test.
const BIG_BATCHES: usize = 64;
/// Fetches each consumer keeps in flight at once.
const PIPELINED: usize = 8;

/// Reads `big` from its start with `PIPELINED` identical fetches in flight at a time, sampling the
/// broker's RSS into `peak`; returns the offset it reached.
fn consume_with_pipelined_fetches(addr: &str, pid: u32, peak: &AtomicU64) -> i64 {
    let started = Instant::now();
    let mut conn = Connection::connect(addr).expect("connect");
    let mut next = 0i64;
    while next < BIG_BATCHES as i64 {
        let requests: Vec<u8> = (0..PIPELINED)
            .flat_map(|_| large_fetch(&mut conn, "big", next))
            .collect();
        conn.send_raw(&requests).expect("send the fetches");
        let answers: Vec<_> = (0..PIPELINED)
            .map(|_| read_fetch_answer(&mut conn, next))
            .collect();
        peak.fetch_max(rss_bytes(pid), Ordering::Relaxed);
        for spans in answers.iter().filter(|s| !s.is_empty()) {
            assert_eq!(spans[0].0, next, "each answer starts where asked");
        }
        if let Some((base, count)) = answers.iter().find_map(|s| s.last()) {
            next = base + *count as i64;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
    }
    next
}

#[test]
fn concurrent_large_fetches_share_the_shard_budget_and_all_complete() {
    // 8 consumers, each with 8 fetches of the whole topic (16 MiB, on disk) in flight at once:
    // about 1 GiB of responses if each were read whole (RSS peaked 1.36 GB above the start
    // before fetches were charged). With a 4 MiB shard budget a fetch holds at most 1 MiB, and
    // the others wait for it.
    const CONSUMERS: usize = 8;
    const VALUE_BYTES: usize = 256 * 1024;
    let broker = Broker::start_with(BrokerOptions {
        config_toml: Some(
            "shard_inflight_budget_bytes = 4194304\nshard_tail_cache_bytes = 1048576\n\
             log_preallocate_bytes = 1048576\n"
                .to_string(),
        ),
        ..Default::default()
    });
    let addr = broker.addr();
    kafka::create_topic(&addr, "big", 1);
    let mut producer = Connection::connect(&addr).expect("connect");
    for i in 0..BIG_BATCHES {
        let value = vec![i as u8; VALUE_BYTES];
        let (code, _) = kafka::produce(&mut producer, "big", 0, one_record(&value), -1);
        assert_eq!(code, error_code::NONE);
    }
    let pid = broker.pid();
    let before = rss_bytes(pid);
    let peak = Arc::new(AtomicU64::new(before));
    let started = Instant::now();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let (addr, peak) = (addr.clone(), peak.clone());
            std::thread::spawn(move || consume_with_pipelined_fetches(&addr, pid, &peak))
        })
        .collect();
    for c in consumers {
        let reached = c.join().expect("consumer");
        assert_eq!(reached, BIG_BATCHES as i64, "read to the end");
    }
    let grown = peak.load(Ordering::Relaxed).saturating_sub(before);
    eprintln!(
        "RSS peak {} MiB above the start in {:?}",
        grown / MIB,
        started.elapsed()
    );
    assert!(
        grown < 96 * MIB,
        "RSS grew by {} MiB with {} fetches of 16 MiB in flight",
        grown / MIB,
        CONSUMERS * PIPELINED
    );
}
