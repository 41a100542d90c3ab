//! acks=all through the shard's commit log (`commit_log_enabled`), seen from clients: 64
//! partitions on one shard take an acks=all load, the broker is killed with -9, and after the
//! restart every acknowledged message is there, no partition ends below a high watermark a
//! client saw before the kill (what was visible as committed was durable), and the log takes
//! appends again. The segments lag behind the commit log, so this exercises its replay. Also: a
//! restart with fewer shards, and a topic re-created while its old records are in the log.

use std::thread;
use std::time::{Duration, Instant};

use riffle_tests::kafka::{self, high_watermarks, Connection};
use riffle_tests::{
    assert_acked_readable, python_ok, scratch_dir, AckedLoad, Broker, BrokerOptions, Unacked,
};

const PARTITIONS: i32 = 64;
/// Acknowledged messages before the kill.
const ACKED_BEFORE_KILL: usize = 20_000;

fn commit_log_broker() -> Broker {
    Broker::start_with(BrokerOptions {
        // The smallest commit log (two 16 MiB files): rounds of 4 KiB blocks fill a file in
        // seconds, so files are checkpointed and recycled under the load.
        config_toml: Some(
            "commit_log_enabled = true\ncommit_log_file_bytes = 16777216\ncommit_log_files_per_shard = 2\n"
                .to_string(),
        ),
        log_level: "info,riffle_storage::commit_log=debug".to_string(),
        ..BrokerOptions::default()
    })
}

#[test]
fn kill9_under_acks_all_load_on_64_partitions_of_one_shard_loses_no_acknowledged_message() {
    let scratch = scratch_dir("riffle-commit-log-");
    let acked = scratch.path().join("acked.txt");
    let topic = "commit-log-kill9";
    let partitions = PARTITIONS.to_string();
    let mut broker = commit_log_broker();
    kafka::create_topic(&broker.addr(), topic, PARTITIONS);
    let load = AckedLoad::start(&broker, topic, PARTITIONS, &acked);
    // Killed once the load recycled a commit-log file (the smallest log holds 32 MiB).
    load.wait_for(
        &mut broker,
        ACKED_BEFORE_KILL,
        Duration::from_secs(40),
        |b| b.stderr_log().contains("commit log file reused"),
    );
    let seen = high_watermarks(&broker.addr(), topic, PARTITIONS);
    assert!(
        broker.stderr_log().contains("commit log started"),
        "acks=all did not go through the commit log\n{}",
        broker.log_tail()
    );
    broker.kill9();
    load.stop();
    broker.restart();
    // A Fetch of a partition not opened yet opens it, applying its commit-log records first.
    let after = high_watermarks(&broker.addr(), topic, PARTITIONS);
    assert!(
        broker
            .stderr_log()
            .contains("applied the shard's commit log"),
        "the restart applied nothing from the commit log\n{}",
        broker.log_tail()
    );
    kafka::assert_high_watermarks_kept(&seen, &after);
    assert_acked_readable(&broker.addr(), topic, &partitions, acked, Unacked::Allowed);
    // The restarted commit log takes acks=all again, and a second crash keeps those too.
    let more = scratch.path().join("more.txt");
    let more = more.to_str().expect("UTF-8 path");
    python_ok(
        "confluent_produce.py",
        &[&broker.addr(), topic, &partitions, "2000", more],
        Duration::from_secs(60),
    );
    broker.kill9();
    broker.restart();
    assert_acked_readable(&broker.addr(), topic, &partitions, more, Unacked::Allowed);
}

/// A restart with fewer shards: the partitions of the removed shard move to the others (shard
/// `k` to `k % shards`), and so do the records of its commit log, which are applied and then
/// removed with its directory. Nothing acknowledged is lost, before or after a second crash.
#[test]
fn kill9_then_a_restart_with_fewer_shards_applies_the_removed_shards_commit_log() {
    let scratch = scratch_dir("riffle-commit-log-smp-");
    let acked = scratch.path().join("acked.txt");
    let acked = acked.to_str().expect("UTF-8 path");
    let (topic, partitions) = ("commit-log-smp", "8");
    let mut broker = Broker::start_with(BrokerOptions {
        smp: 2,
        config_toml: Some("commit_log_enabled = true\n".to_string()),
        ..BrokerOptions::default()
    });
    kafka::create_topic(&broker.addr(), topic, 8);
    python_ok(
        "confluent_produce.py",
        &[&broker.addr(), topic, partitions, "5000", acked],
        Duration::from_secs(60),
    );
    let removed_shard_dir = broker.data_dir().join("commitlog").join("shard-1");
    assert!(
        removed_shard_dir.is_dir(),
        "shard 1 ran no commit log\n{}",
        broker.log_tail()
    );
    broker.kill9();
    broker.restart_with_smp(1);
    assert_acked_readable(&broker.addr(), topic, partitions, acked, Unacked::Allowed);
    let started = Instant::now();
    while removed_shard_dir.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the removed shard's commit log is still there\n{}",
            broker.log_tail()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let more = scratch.path().join("more.txt");
    let more = more.to_str().expect("UTF-8 path");
    python_ok(
        "confluent_produce.py",
        &[&broker.addr(), topic, partitions, "1000", more],
        Duration::from_secs(60),
    );
    broker.kill9();
    broker.restart();
    for file in [acked, more] {
        assert_acked_readable(&broker.addr(), topic, partitions, file, Unacked::Allowed);
    }
}

/// A topic deleted and created again under its name while its acknowledged records are still in
/// the commit log: the new topic starts empty (the log keys records by topic id), and a crash
/// after that does not bring the old records back into it.
#[test]
fn a_topic_recreated_after_a_crash_does_not_get_the_old_topics_commit_log_records() {
    let scratch = scratch_dir("riffle-commit-log-recreate-");
    let (old, acked) = (
        scratch.path().join("old.txt"),
        scratch.path().join("acked.txt"),
    );
    let (topic, partitions) = ("commit-log-recreate", "4");
    let mut broker = Broker::start_with(BrokerOptions {
        config_toml: Some("commit_log_enabled = true\n".to_string()),
        ..BrokerOptions::default()
    });
    kafka::create_topic(&broker.addr(), topic, 4);
    python_ok(
        "confluent_produce.py",
        &[
            &broker.addr(),
            topic,
            partitions,
            "2000",
            old.to_str().expect("UTF-8 path"),
        ],
        Duration::from_secs(60),
    );
    broker.kill9();
    broker.restart();
    assert_eq!(kafka::delete_topic(&broker.addr(), topic), 0);
    kafka::create_topic(&broker.addr(), topic, 4);
    let empty = |broker: &Broker| {
        let mut conn = Connection::connect(&broker.addr()).expect("connect");
        for p in 0..4 {
            let fetched = kafka::fetch_with_limits(&mut conn, topic, p, 0, 0, 1, 1);
            assert_eq!(
                fetched.high_watermark,
                0,
                "partition {p} of the new topic holds the old one's records\n{}",
                broker.log_tail()
            );
        }
    };
    empty(&broker);
    broker.kill9();
    broker.restart();
    empty(&broker);
    python_ok(
        "confluent_produce.py",
        &[
            &broker.addr(),
            topic,
            partitions,
            "500",
            acked.to_str().expect("UTF-8 path"),
        ],
        Duration::from_secs(60),
    );
    broker.kill9();
    broker.restart();
    assert_acked_readable(&broker.addr(), topic, partitions, acked, Unacked::None);
}
