//! Sealed segments do not keep their descriptors (issue 14, item 10): the broker keeps at most
//! `max_open_segment_files` of them open per shard, closing the least recently read and opening
//! it again on demand. Under an RLIMIT_NOFILE far below the number of segments (soft = hard, so
//! the raise at start changes nothing), every old segment is still read, start-up recovers them
//! all, and the broker's open descriptors (counted in /proc/PID/fd) stay bounded throughout.

use std::time::{Duration, Instant, SystemTime};

use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::{error_code, Bytes};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{Broker, BrokerOptions};

/// The shard's cap on open sealed segment files.
const CAP: u64 = 8;
const PARTITIONS: i32 = 3;
/// Batches (one segment each) per partition.
const SEGMENTS: usize = 30;
/// A batch takes more than half of a 1 MiB segment, so each batch rolls a new segment.
const VALUE_BYTES: usize = 600 << 10;
/// Descriptors beyond the idle broker's, its partitions' active segments and the cap: a few
/// connections and the index files written while a segment is sealed.
const SLACK: u64 = 16;

fn record(i: usize) -> Bytes {
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as i64;
    let mut builder = RecordBatchBuilder::new(Compression::None, now_ms);
    builder.append(now_ms, None, Some(&vec![i as u8; VALUE_BYTES]), &[]);
    builder.finish()
}

fn open_descriptors(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list fds")
        .count() as u64
}

fn options(limit: Option<u64>) -> BrokerOptions {
    BrokerOptions {
        open_files_limit: limit.map(|l| (l, l)),
        config_toml: Some(format!(
            "max_open_segment_files = {CAP}\nlog_segment_bytes = 1048576\n\
             log_preallocate_bytes = 1048576\n"
        )),
        ..Default::default()
    }
}

/// Every batch of every partition, read from offset 0 (each from its own sealed segment).
fn read_every_segment(addr: &str) {
    for p in 0..PARTITIONS {
        let batches = kafka::fetch_all_batches(addr, "old", p);
        assert_eq!(batches.len(), SEGMENTS, "batches of old-{p}");
        for b in &batches {
            assert!(b.len() > VALUE_BYTES, "a batch of old-{p} is short");
        }
    }
}

/// The broker's `riffle_open_segment_files` gauge (one shard).
fn open_segment_files_gauge(broker: &Broker) -> u64 {
    let metrics = riffle_tests::http::get(&broker.admin_addr(), "/metrics").expect("scrape");
    metrics
        .body
        .lines()
        .find(|l| l.starts_with("riffle_open_segment_files{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("a riffle_open_segment_files sample") as u64
}

fn assert_bounded(broker: &Broker, bound: u64, when: &str) {
    let open = open_descriptors(broker.pid());
    assert!(
        open <= bound,
        "{when}: the broker holds {open} descriptors, want at most {bound}:\n{}",
        broker.log_tail()
    );
}

#[test]
fn old_segments_are_read_and_recovered_with_descriptors_bounded_below_their_number() {
    // What an idle broker holds, to set a limit that the segments' count far exceeds.
    let probe = Broker::start_with(options(None));
    let idle = open_descriptors(probe.pid());
    drop(probe);
    let bound = idle + PARTITIONS as u64 + CAP + SLACK;
    let total_segments = (PARTITIONS as usize * SEGMENTS) as u64;
    assert!(
        total_segments > 2 * (bound - idle),
        "too few segments to prove anything"
    );
    let mut broker = Broker::start_with(options(Some(bound)));
    let addr = broker.addr();
    kafka::create_topic(&addr, "old", PARTITIONS);
    let mut conn = Connection::connect(&addr).expect("connect");
    for i in 0..SEGMENTS {
        for p in 0..PARTITIONS {
            let (code, offset) = kafka::produce(&mut conn, "old", p, record(i), -1);
            assert_eq!((code, offset), (error_code::NONE, i as i64), "old-{p}");
        }
    }
    assert_bounded(&broker, bound, "after writing");
    read_every_segment(&addr);
    assert_bounded(&broker, bound, "after reading every segment");
    let cached = open_segment_files_gauge(&broker);
    assert!(
        (1..=CAP).contains(&cached),
        "{cached} sealed segment files open, cap {CAP}"
    );

    drop(conn);
    broker.stop();
    broker.restart();
    // Start-up recovers every partition under the same limit, then serves them all.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    while kafka::fetch(&mut conn, "old", PARTITIONS - 1, 0, 0).error_code != error_code::NONE {
        assert!(
            Instant::now() < deadline,
            "not serving after restart:\n{}",
            broker.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    read_every_segment(&broker.addr());
    assert_bounded(&broker, bound, "after a restart and reading every segment");
    let (code, offset) = kafka::produce(&mut conn, "old", 0, record(0), -1);
    assert_eq!((code, offset), (error_code::NONE, SEGMENTS as i64));
}
