//! A full disk (issue 14, item 12), for real: the broker's data dir on a small loop-mounted ext4
//! file system, filled while producing. The producer that meets ENOSPC is answered
//! KAFKA_STORAGE_ERROR, nothing it was not told is durable is served, the broker stays up,
//! another partition keeps taking writes, and nothing acknowledged is lost; once space is free
//! again the partition comes back by itself (reopened from what is durable by a timer, after
//! `log_reopen_backoff_ms`, with no request needed), without a restart. Needs root, `mkfs.ext4` and loop mounts; where
//! they are missing the tests say so on stderr and pass without checking anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::{error_code, Bytes};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{scratch_dir, Broker, BrokerOptions};

/// The file system's size: small, so filling it takes a moment.
const FILE_SYSTEM_BYTES: u64 = 48 << 20;
/// A file written before the broker starts and removed to free space again.
const BALLAST_BYTES: usize = 8 << 20;
/// Bytes of one produced record.
const VALUE_BYTES: usize = 256 << 10;
/// More batches than the file system holds.
const BATCHES_MAX: usize = 2 * (FILE_SYSTEM_BYTES as usize / VALUE_BYTES);

/// A loop-mounted ext4 file system, unmounted when dropped.
struct SmallFileSystem {
    mount_point: PathBuf,
    _scratch: tempfile::TempDir,
}

impl SmallFileSystem {
    /// None (with the reason on stderr) where this machine cannot make one.
    fn mount() -> Option<SmallFileSystem> {
        SmallFileSystem::mount_of(FILE_SYSTEM_BYTES)
    }

    /// A file system of `bytes`.
    fn mount_of(bytes: u64) -> Option<SmallFileSystem> {
        // SAFETY: geteuid only reads the process's credentials.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("disk_full: skipped: needs root for a loop mount");
            return None;
        }
        let scratch = scratch_dir("riffle-disk-full-");
        let image = scratch.path().join("fs.img");
        let mount_point = scratch.path().join("mnt");
        std::fs::create_dir(&mount_point).expect("mount point");
        let file = std::fs::File::create(&image).expect("image file");
        file.set_len(bytes).expect("image size");
        let ran = |cmd: &mut Command| cmd.output().map(|o| (o.status.success(), o.stderr));
        for cmd in [
            Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image),
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&mount_point),
        ] {
            match ran(cmd) {
                Ok((true, _)) => {}
                Ok((false, err)) => {
                    eprintln!(
                        "disk_full: skipped: {cmd:?}: {}",
                        String::from_utf8_lossy(&err)
                    );
                    return None;
                }
                Err(e) => {
                    eprintln!("disk_full: skipped: {cmd:?}: {e}");
                    return None;
                }
            }
        }
        Some(SmallFileSystem {
            mount_point,
            _scratch: scratch,
        })
    }

    fn path(&self) -> &Path {
        &self.mount_point
    }
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

fn record(value: &[u8]) -> Bytes {
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as i64;
    let mut builder = RecordBatchBuilder::new(Compression::None, now_ms);
    builder.append(now_ms, None, Some(value), &[]);
    builder.finish()
}

/// A broker on the small file system, `other` already taking writes, and `fill` produced to
/// (acks=all) until the disk is full: the broker, a connection, and the batches acknowledged.
fn fill_the_disk(fs: &SmallFileSystem) -> (Broker, Connection, i64) {
    std::fs::write(fs.path().join("ballast"), vec![1u8; BALLAST_BYTES]).expect("ballast");
    let broker = Broker::start_with(BrokerOptions {
        data_dir: Some(fs.path().join("data")),
        config_toml: Some("log_preallocate_bytes = 1048576\n".to_string()),
        ..Default::default()
    });
    let addr = broker.addr();
    kafka::create_topic(&addr, "fill", 1);
    kafka::create_topic(&addr, "other", 1);
    let mut conn = Connection::connect(&addr).expect("connect");
    let (code, _) = kafka::produce(&mut conn, "other", 0, record(b"before"), -1);
    assert_eq!(code, error_code::NONE);
    let acked = produce_until_full(&mut conn, "fill", BATCHES_MAX);
    (broker, conn, acked)
}

/// Produces batches of `VALUE_BYTES` to `topic`-0 (acks=all) until one is refused with
/// KAFKA_STORAGE_ERROR, at most `most`; returns how many were acknowledged.
fn produce_until_full(conn: &mut Connection, topic: &str, most: usize) -> i64 {
    let value = vec![7u8; VALUE_BYTES];
    for acked in 0..most as i64 {
        let (code, offset) = kafka::produce(conn, topic, 0, record(&value), -1);
        if code != error_code::NONE {
            assert_eq!(
                code,
                error_code::KAFKA_STORAGE_ERROR,
                "after {acked} batches"
            );
            return acked;
        }
        assert_eq!(offset, acked);
    }
    panic!("{most} batches of {VALUE_BYTES} bytes never filled the disk");
}

#[test]
fn a_full_disk_refuses_the_write_and_the_broker_and_other_partitions_go_on() {
    let Some(fs) = SmallFileSystem::mount() else {
        return;
    };
    let (mut broker, mut conn, acked) = fill_the_disk(&fs);
    assert!(broker.is_running(), "the broker died on a full disk");
    kafka::metadata(&broker.addr()).expect("Metadata answered on a full disk");
    // Nothing unacknowledged is served: the log is offline (as Kafka takes a failed log dir
    // offline) or serves up to what was acknowledged.
    let data = kafka::fetch(&mut conn, "fill", 0, 0, 0);
    match data.error_code {
        error_code::KAFKA_STORAGE_ERROR => {}
        code => assert_eq!((code, data.high_watermark), (error_code::NONE, acked)),
    }
    // Another partition still takes writes (its segment's space was reserved ahead).
    let (code, offset) = kafka::produce(&mut conn, "other", 0, record(b"during"), -1);
    assert_eq!((code, offset), (error_code::NONE, 1), "partition other-0");
    assert!(broker.is_running());
    // Nothing acknowledged is lost: with space again, a restart serves every acknowledged batch,
    // and the log goes on after them.
    std::fs::remove_file(fs.path().join("ballast")).expect("remove the ballast");
    broker.stop();
    broker.restart();
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    let data = kafka::fetch(&mut conn, "fill", 0, acked - 1, 0);
    assert_eq!(
        (data.error_code, data.high_watermark),
        (error_code::NONE, acked)
    );
    let (code, offset) = kafka::produce(&mut conn, "fill", 0, record(b"after"), -1);
    assert_eq!((code, offset), (error_code::NONE, acked));
}

#[test]
fn a_partition_comes_back_by_itself_once_space_is_free() {
    let Some(fs) = SmallFileSystem::mount() else {
        return;
    };
    let (broker, mut conn, acked) = fill_the_disk(&fs);
    std::fs::remove_file(fs.path().join("ballast")).expect("remove the ballast");
    // No request is needed: a timer reopens the partition once the back-off (1 s) has passed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !broker
        .stderr_log()
        .contains("partition reopened after its log failed")
    {
        assert!(
            Instant::now() < deadline,
            "fill-0 not reopened 10 s after its log failed, with no request:\n{}",
            broker.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, offset) = kafka::produce(&mut conn, "fill", 0, record(b"again"), -1);
        if code == error_code::NONE {
            assert_eq!(offset, acked, "the log goes on from what was acknowledged");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "fill-0 still refused (error {code}) 10 s after space was freed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The commit log's file system: room for its two 16 MiB files, 33 MiB of `other` that recycle
/// them, `fill` until full, and a ballast that frees enough for another 32 MiB through the log.
const COMMIT_LOG_FILE_SYSTEM_BYTES: u64 = 192 << 20;
const COMMIT_LOG_BALLAST_BYTES: usize = 48 << 20;

/// Produces `count` batches of `VALUE_BYTES` to `topic`-0 (acks=all), each acknowledged in turn
/// from `next`; returns the next offset.
fn produce_batches(conn: &mut Connection, topic: &str, next: i64, count: usize) -> i64 {
    let value = vec![3u8; VALUE_BYTES];
    for n in 0..count as i64 {
        let (code, offset) = kafka::produce(conn, topic, 0, record(&value), -1);
        assert_eq!((code, offset), (error_code::NONE, next + n), "{topic}-0");
    }
    next + count as i64
}

/// A partition whose log went offline (ENOSPC) while its records were still only in the shard's
/// commit log: the checkpoint that recycles the commit-log file holding them waits for its
/// reopen instead of stopping the commit log (which then stayed off, acks=all falling back to
/// each partition's own fdatasync, until a restart). Once space is free again the partition
/// comes back, the commit log goes on recycling its files, and after a kill -9 nothing
/// acknowledged is missing.
#[test]
fn a_partition_offline_at_a_commit_log_checkpoint_does_not_stop_the_commit_log() {
    let Some(fs) = SmallFileSystem::mount_of(COMMIT_LOG_FILE_SYSTEM_BYTES) else {
        return;
    };
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; COMMIT_LOG_BALLAST_BYTES]).expect("ballast");
    let mut broker = Broker::start_with(BrokerOptions {
        data_dir: Some(fs.path().join("data")),
        // The back-off is long enough for 32 MiB through the commit log while `fill` is offline.
        config_toml: Some(
            "log_preallocate_bytes = 1048576\nlog_reopen_backoff_ms = 4000\n\
             commit_log_enabled = true\ncommit_log_file_bytes = 16777216\n\
             commit_log_files_per_shard = 2\n"
                .to_string(),
        ),
        log_level: "info,riffle_storage::commit_log=debug".to_string(),
        ..Default::default()
    });
    let addr = broker.addr();
    kafka::create_topic(&addr, "fill", 1);
    kafka::create_topic(&addr, "other", 1);
    let mut conn = Connection::connect(&addr).expect("connect");
    // Both commit-log files made and one reused before the disk fills.
    let mut other_end = produce_batches(&mut conn, "other", 0, 33 * 4);
    assert!(
        broker.stderr_log().contains("commit log file reused"),
        "no commit-log file reused after 33 MiB:\n{}",
        broker.log_tail()
    );
    let mut fill_end = produce_until_full(&mut conn, "fill", 1024);
    // Space again, and 32 MiB more through the commit log while fill-0 waits out its back-off:
    // every commit-log file is recycled, through checkpoints that include fill-0's records.
    std::fs::remove_file(&ballast).expect("remove the ballast");
    let reused_before = broker
        .stderr_log()
        .matches("commit log file reused")
        .count();
    other_end = produce_batches(&mut conn, "other", other_end, 32 * 4);
    let log = broker.stderr_log();
    assert!(
        log.contains("partition reopened after its log failed"),
        "fill-0 not reopened:\n{}",
        broker.log_tail()
    );
    assert!(
        !log.contains("the commit log stops") && !log.contains("commit log failed"),
        "the commit log stopped:\n{}",
        broker.log_tail()
    );
    assert!(
        log.matches("commit log file reused").count() >= reused_before + 2,
        "the commit log did not recycle its files after fill-0 went offline:\n{}",
        broker.log_tail()
    );
    fill_end = produce_batches(&mut conn, "fill", fill_end, 1);
    // Nothing acknowledged is lost, in either partition.
    broker.kill9();
    broker.restart();
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    for (topic, end) in [("fill", fill_end), ("other", other_end)] {
        let data = kafka::fetch(&mut conn, topic, 0, end - 1, 0);
        assert_eq!(
            (data.error_code, data.high_watermark),
            (error_code::NONE, end),
            "{topic}-0 after a kill -9"
        );
    }
}
