//! acks=all with the default write path, seen from clients: the segments of 64 partitions on one
//! shard are made durable by cache flushes the shard's logs share (`riffle_device_flushes_total`:
//! flushes are pipelined, so logs whose writes complete while one runs share the next), and a
//! kill -9 under that load loses no acknowledged message and leaves
//! no partition below a high watermark a client saw before the kill.
//!
//! A kill -9 keeps what reached the device's cache; what only a power loss would drop is argued
//! in `storage/src/device_flush.rs`, not tested here.

use std::time::Duration;

use crate::admin::Scrape;
use riffle_tests::kafka::{self, high_watermarks};
use riffle_tests::{assert_acked_readable, scratch_dir, AckedLoad, Broker, Unacked};

const PARTITIONS: i32 = 64;
/// Acknowledged messages before the kill.
const ACKED_BEFORE_KILL: usize = 20_000;

#[test]
fn kill9_under_acks_all_load_on_64_partitions_sharing_device_flushes_loses_nothing_acknowledged() {
    let scratch = scratch_dir("riffle-device-flush-");
    let acked = scratch.path().join("acked.txt");
    let topic = "device-flush-kill9";
    let partitions = PARTITIONS.to_string();
    let mut broker = Broker::start();
    kafka::create_topic(&broker.addr(), topic, PARTITIONS);
    let load = AckedLoad::start(&broker, topic, PARTITIONS, &acked);
    load.wait_for(
        &mut broker,
        ACKED_BEFORE_KILL,
        Duration::from_secs(40),
        |_| true,
    );
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
    let seen = high_watermarks(&broker.addr(), topic, PARTITIONS);
    broker.kill9();
    load.stop();
    broker.restart();
    let after = high_watermarks(&broker.addr(), topic, PARTITIONS);
    kafka::assert_high_watermarks_kept(&seen, &after);
    assert_acked_readable(&broker.addr(), topic, &partitions, acked, Unacked::Allowed);
}
