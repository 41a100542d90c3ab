//! I/O errors injected at the storage layer (issue 14, item 13; `--features failpoints`): EIO on a
//! write, an fdatasync or a read. For each: no acknowledged (flushed) batch is lost, nothing that
//! was not acknowledged becomes durable or survives the reopen (so the broker, which serves only
//! below the durable offset, never serves it), and the log comes back: a failed write path is
//! never written again, it is closed and opened again from what is durable, as the broker does
//! (`Partition::reopen`); a failed read fails only that read.

use crate::test_util::{append_and_flush, run};
use crate::tests::{batch, open, read_all, small_config, stored};
use crate::{LogConfig, PartitionLog, StorageError};
use std::path::Path;
use std::rc::Rc;

/// Makes `point` fail every operation on the files under `dir` with EIO.
fn inject(point: &str, dir: &Path) {
    fail::cfg(point, &format!("return({})", dir.display())).expect("failpoint config");
}

fn is_eio(e: &StorageError) -> bool {
    matches!(e, StorageError::Io { source, .. } if source.raw_os_error() == Some(libc::EIO))
}

/// A small tail cache, so that reads of older batches go to disk.
fn config() -> LogConfig {
    LogConfig {
        tail_cache_bytes: 4 << 10,
        ..small_config()
    }
}

/// Appends and acknowledges (flushes) `n` batches; their stored bytes.
async fn acknowledge(log: &PartitionLog, n: i64, ts: i64) -> Vec<u8> {
    let mut acked = Vec::new();
    for i in 0..n {
        let b = batch(2, ts + i, 3000);
        let info = append_and_flush(log, b.clone())
            .await
            .expect("acknowledged");
        acked.extend(stored(&b, info.base_offset));
    }
    acked
}

/// Opens the log again from what is durable, as the broker reopens a failed partition: recovery,
/// then a cut at the durable end the failed log reported.
async fn reopen_from_durable(dir: &Path, durable_end: i64) -> Rc<PartitionLog> {
    let log = open(dir, config()).await;
    if durable_end < log.log_end_offset() {
        log.truncate_to(durable_end).await.expect("cut");
    }
    log
}

/// EIO on `point` while a batch is being made durable: the flush fails, the log refuses
/// everything after, the durable offset never covers the failed batch, and the reopened log
/// holds exactly the acknowledged batches and takes new ones.
async fn write_path_failure(dir: std::path::PathBuf, point: &str) {
    let log = open(&dir, config()).await;
    let acked = acknowledge(&log, 60, 0).await; // several segments
    let acked_end = log.log_end_offset();
    inject(point, &dir);
    let appended = log.append(batch(2, 1000, 3000)).await;
    let flushed = match appended {
        Ok(_) => log.flush().await,
        Err(e) => Err(e),
    };
    let err = flushed.expect_err("a flush through an I/O error was acknowledged");
    assert!(is_eio(&err), "{point}: {err}");
    assert!(
        log.failure().is_some(),
        "{point}: the log did not go offline"
    );
    assert_eq!(
        log.durable_offset(),
        acked_end,
        "{point}: an unacknowledged batch is durable"
    );
    assert!(
        log.append(batch(1, 2000, 10)).await.is_err(),
        "{point}: a failed log took a write"
    );
    let durable_end = log.durable_offset();
    assert!(log.close().await.is_err());
    drop(log);
    fail::remove(point);

    let log = reopen_from_durable(&dir, durable_end).await;
    assert_eq!(log.log_end_offset(), acked_end, "{point}");
    assert_eq!(
        read_all(&log, 0).await,
        acked,
        "{point}: acknowledged data changed"
    );
    let more = acknowledge(&log, 5, 3000).await;
    assert_eq!(read_all(&log, 0).await, [acked, more].concat());
    log.close().await.unwrap();
}

#[test]
fn eio_on_write_loses_nothing_acknowledged_and_the_reopened_log_takes_writes() {
    let scenario = fail::FailScenario::setup();
    run(|dir| write_path_failure(dir, "segment::write"));
    scenario.teardown();
}

#[test]
fn eio_on_fdatasync_loses_nothing_acknowledged_and_the_reopened_log_takes_writes() {
    let scenario = fail::FailScenario::setup();
    run(|dir| write_path_failure(dir, "segment::fdatasync"));
    scenario.teardown();
}

/// Acknowledges batches on `log` until one was made durable by the shard's shared device flush
/// (the first ones land before the zeros ahead of them are synced, and sync their own file).
async fn acknowledge_until_shared(log: &PartitionLog, ts: i64) -> Vec<u8> {
    let mut acked = Vec::new();
    for i in 0..200 {
        let before = crate::shard_device_flushes();
        acked.extend(acknowledge(log, 1, ts + i).await);
        if crate::shard_device_flushes() > before {
            return acked;
        }
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("200 acknowledgements and no shared device flush");
}

/// EIO on the shard's shared device flush fails every log that waits for it, and every later
/// shared flush of that device on the shard: the device may have dropped writes of logs that
/// ask later, and a later flush that succeeds says nothing of them (the device is offline for
/// the shard until a restart, as Kafka takes a failed log dir offline). Nothing acknowledged is
/// lost, nothing unacknowledged becomes durable.
#[test]
fn eio_on_the_shared_device_flush_fails_every_log_that_shares_it_and_loses_nothing() {
    let scenario = fail::FailScenario::setup();
    run(|dir| async move {
        let config = LogConfig {
            tail_cache_bytes: 4 << 10,
            ..LogConfig::default()
        };
        let dirs = [dir.join("a"), dir.join("b"), dir.join("c")];
        let logs = [
            open(&dirs[0], config.clone()).await,
            open(&dirs[1], config.clone()).await,
        ];
        if logs[0].segment_device().is_none() {
            return; // not ext4 or XFS: no shared flush
        }
        let mut acked = Vec::new();
        for log in &logs {
            acked.push(acknowledge_until_shared(log, 0).await);
        }
        let ends: Vec<i64> = logs.iter().map(|l| l.log_end_offset()).collect();

        fail::cfg(
            "device_flush::fdatasync",
            &format!("return({})", dir.display()),
        )
        .unwrap();
        let flushes = logs.iter().map(|log| {
            let log = log.clone();
            glommio::spawn_local(async move {
                log.append(batch(2, 1000, 3000)).await?;
                log.flush().await
            })
        });
        for (log, flushed) in logs.iter().zip(flushes.collect::<Vec<_>>()) {
            let err = flushed
                .await
                .expect_err("acknowledged through a failed device flush");
            assert!(is_eio(&err), "{err}");
            assert!(log.failure().is_some(), "the log did not go offline");
        }
        fail::remove("device_flush::fdatasync");

        // A log that starts later still meets the failure at its first shared flush.
        let late = open(&dirs[2], config.clone()).await;
        let mut late_result = Ok(());
        for i in 0..200 {
            if let Err(e) = append_and_flush(&late, batch(1, i, 100)).await {
                late_result = Err(e);
                break;
            }
        }
        let err = late_result.expect_err("a shared flush after a failed one succeeded");
        assert!(is_eio(&err), "{err}");

        for ((log, d), (acked, end)) in logs.iter().zip(&dirs).zip(acked.iter().zip(&ends)) {
            assert_eq!(
                log.durable_offset(),
                *end,
                "an unacknowledged batch is durable"
            );
            let _ = log.close().await;
            let reopened = reopen_from_durable(d, *end).await;
            assert_eq!(
                &read_all(&reopened, 0).await,
                acked,
                "acknowledged data changed"
            );
            let _ = reopened.close().await;
        }
        let _ = late.close().await;
    });
    scenario.teardown();
}

#[test]
fn eio_on_read_fails_that_read_only_and_loses_nothing() {
    let scenario = fail::FailScenario::setup();
    run(|dir| async move {
        crate::set_max_open_segment_files(1);
        let log = open(&dir, config()).await;
        let acked = acknowledge(&log, 60, 0).await;
        let mut all = acked.clone();
        for point in ["segment::read", "segment::open"] {
            inject(point, &dir);
            let err = log.read(0, 1 << 20).await.expect_err("a read through EIO");
            assert!(is_eio(&err), "{point}: {err}");
            assert!(
                log.failure().is_none(),
                "{point}: a read error took the log offline"
            );
            // Writes go on meanwhile: the write path does not read sealed segments.
            all.extend(acknowledge(&log, 3, 500).await);
            fail::remove(point);
            assert_eq!(
                read_all(&log, 0).await,
                all,
                "{point}: acknowledged data changed"
            );
        }
        let end = log.log_end_offset();
        log.close().await.unwrap();
        // Recovery meeting EIO fails the open (the broker refuses the partition and retries)...
        inject("segment::read", &dir);
        assert!(PartitionLog::open(&dir, config()).await.is_err());
        fail::remove("segment::read");
        // ...and opens it whole once reads work again.
        let log = open(&dir, config()).await;
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(read_all(&log, 0).await, all);
        log.close().await.unwrap();
    });
    scenario.teardown();
}

/// Makes `point` fail every operation on the files under `dir` with EMFILE.
fn inject_emfile(point: &str, dir: &Path) {
    fail::cfg(point, &format!("return({}|EMFILE)", dir.display())).expect("failpoint config");
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("the log's directory")
        .filter(|e| {
            let name = e.as_ref().expect("an entry").file_name();
            name.to_string_lossy().ends_with(".log")
        })
        .count()
}

/// Issue 14, item 10: running out of descriptors (EMFILE) at a roll or at a seal's index write
/// leaves the log up. A segment is sealed without its index files (recovery rebuilds them); a
/// roll waits and is tried again, and the appends behind it are acknowledged once descriptors
/// are back. Nothing acknowledged is lost, before or after a reopen.
#[test]
fn emfile_at_a_roll_or_an_index_write_leaves_the_log_up_and_loses_nothing() {
    let scenario = fail::FailScenario::setup();
    run(|dir| async move {
        let log = open(&dir, config()).await;
        let mut acked = acknowledge(&log, 10, 0).await;

        inject_emfile("index::write", &dir);
        acked.extend(acknowledge(&log, 60, 100).await); // several rolls, each seal without indexes
        assert!(log.failure().is_none(), "EMFILE at a seal failed the log");
        fail::remove("index::write");

        inject_emfile("segment::create", &dir);
        let segments = segment_files(&dir);
        let writer = log.clone();
        // 30 batches of 3 kB do not fit the 64 KiB active segment: they need a roll.
        let behind = glommio::spawn_local(async move { acknowledge(&writer, 30, 1000).await });
        glommio::timer::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(segment_files(&dir), segments, "a roll without descriptors");
        assert!(log.failure().is_none(), "EMFILE at a roll failed the log");
        fail::remove("segment::create");
        acked.extend(behind.await);
        assert!(segment_files(&dir) > segments, "the roll was tried again");
        assert_eq!(read_all(&log, 0).await, acked);
        log.close().await.unwrap();

        let log = open(&dir, config()).await;
        assert_eq!(
            read_all(&log, 0).await,
            acked,
            "recovered without index files"
        );
        log.close().await.unwrap();
    });
    scenario.teardown();
}
