//! acks=all with the default write path, seen from clients: the segments of 64 partitions on one
//! shard are made durable by cache flushes the shard's logs share (`riffle_device_flushes_total`:
//! flushes are pipelined, so logs whose writes complete while one runs share the next), and a
//! kill -9 under that load loses no acknowledged message and leaves
//! no partition below a high watermark a client saw before the kill.
//!
//! A kill -9 keeps what reached the device's cache; what only a power loss would drop is argued
//! in `storage/src/device_flush.rs`, not tested here.

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::admin::Scrape;
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{python_bin, python_ok, python_script, scratch_dir, Background, Broker};

const PARTITIONS: i32 = 64;
/// Acknowledged messages before the kill.
const ACKED_BEFORE_KILL: usize = 20_000;

fn acked_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.matches('\n').count())
        .unwrap_or(0)
}

/// Every partition's high watermark, as a consumer's Fetch sees it.
fn high_watermarks(addr: &str, topic: &str) -> Vec<i64> {
    let mut conn = Connection::connect(addr).expect("connect");
    (0..PARTITIONS)
        .map(|p| kafka::fetch_with_limits(&mut conn, topic, p, 0, 0, 1, 1).high_watermark)
        .collect()
}

#[test]
fn kill9_under_acks_all_load_on_64_partitions_sharing_device_flushes_loses_nothing_acknowledged() {
    let scratch = scratch_dir("riffle-device-flush-");
    let acked = scratch.path().join("acked.txt");
    let topic = "device-flush-kill9";
    let partitions = PARTITIONS.to_string();
    let mut broker = Broker::start();
    kafka::create_topic(&broker.addr(), topic, PARTITIONS);
    let producer = Background::spawn(
        Command::new(python_bin())
            .arg("-u")
            .arg(python_script("confluent_produce.py"))
            .args([&broker.addr(), topic, &partitions, "0"])
            .arg(&acked)
            .arg("--tolerate-errors"),
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    while acked_lines(&acked) < ACKED_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "{} acknowledged messages after 40 s\n{}",
            acked_lines(&acked),
            broker.log_tail()
        );
        assert!(
            broker.is_running(),
            "the broker died\n{}",
            broker.log_tail()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let metrics = Scrape::of(&broker);
    let flushes = metrics.sum("riffle_device_flushes_total");
    let waits = metrics.sum("riffle_log_fdatasync_duration_seconds_count");
    let on_ext4_or_xfs = riffle_tests::is_ext4_or_xfs(broker.data_dir());
    if on_ext4_or_xfs {
        assert!(
            flushes >= 1.0 && waits > 1.2 * flushes,
            "{flushes} device flushes for {waits} log flushes: the logs do not share them"
        );
    }
    let seen = high_watermarks(&broker.addr(), topic);
    broker.kill9();
    thread::sleep(Duration::from_millis(300));
    drop(producer);
    broker.restart();
    let after = high_watermarks(&broker.addr(), topic);
    for p in 0..PARTITIONS as usize {
        assert!(
            after[p] >= seen[p],
            "partition {p}: high watermark {} after the restart, {} seen before the kill",
            after[p],
            seen[p]
        );
    }
    python_ok(
        "confluent_verify.py",
        &[
            &broker.addr(),
            topic,
            &partitions,
            acked.to_str().expect("UTF-8 path"),
        ],
        Duration::from_secs(60),
    );
}
