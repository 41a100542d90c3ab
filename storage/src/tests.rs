//! Behaviour tests of `PartitionLog` on a real disk.

use crate::batch::test_batch::make;
use crate::test_util::{append_and_flush, run};
use crate::{LogConfig, PartitionLog, StorageError};
use bytes::Bytes;
use std::path::Path;
use std::rc::Rc;

pub(crate) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        index_interval_bytes: 512,
        tail_cache_bytes: 8 << 10,
        preallocate_bytes: 64 << 10,
        ..LogConfig::default()
    }
}

/// A producer batch (base offset 0 as sent) with `records` records and a payload.
pub(crate) fn batch(records: i32, ts: i64, payload_len: usize) -> Bytes {
    let payload: Vec<u8> = (0..payload_len)
        .map(|i| (i * 7 + ts as usize) as u8)
        .collect();
    Bytes::from(make(0, records, ts, &payload))
}

/// The stored form of `b` once assigned `base`.
pub(crate) fn stored(b: &Bytes, base: i64) -> Vec<u8> {
    let mut v = b.to_vec();
    riffle_batch_header::LogOverhead::view_mut(&mut v)
        .expect("a whole batch")
        .base_offset
        .set(base);
    v
}

pub(crate) fn concat(chunks: &[Bytes]) -> Vec<u8> {
    chunks.iter().flat_map(|c| c.iter().copied()).collect()
}

pub(crate) async fn read_all(log: &PartitionLog, from: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = from;
    while at < log.log_end_offset() {
        let r = log.read(at, 3000).await.expect("read");
        assert!(r.bytes > 0);
        let bytes = concat(&r.chunks);
        assert_eq!(bytes.len(), r.bytes);
        let mut p = 0;
        while p < bytes.len() {
            let h = crate::batch::parse_checked(&bytes[p..]).expect("whole valid batch");
            at = h.next_offset();
            p += h.size;
        }
        out.extend(bytes);
    }
    out
}

pub(crate) async fn open(dir: &Path, config: LogConfig) -> Rc<PartitionLog> {
    PartitionLog::open(dir, config).await.expect("open")
}

#[test]
fn append_assigns_offsets_and_read_returns_stored_bytes() {
    run(|dir| async move {
        let log = open(&dir, small_config()).await;
        let mut expect = Vec::new();
        let mut next = 0;
        for i in 0..50 {
            let b = batch(1 + i % 3, 1000 + i as i64, 100 + i as usize * 37);
            let info = log.append(b.clone()).await.unwrap();
            assert_eq!(info.base_offset, next);
            assert_eq!(info.last_offset, next + i64::from(i % 3));
            expect.extend(stored(&b, next));
            next = info.last_offset + 1;
        }
        assert_eq!(log.log_end_offset(), next);
        assert_eq!(read_all(&log, 0).await, expect);
        assert_eq!(log.flush().await.unwrap(), next);
        assert_eq!(log.durable_offset(), next);
        log.close().await.unwrap();
        let log = open(&dir, small_config()).await;
        assert_eq!(log.log_end_offset(), next);
        assert_eq!(read_all(&log, 0).await, expect, "after reopen, from disk");
        log.close().await.unwrap();
    });
}

/// A read of 0 bytes reads no batch: it checks the offset and answers the positions.
#[test]
fn a_read_of_no_bytes_checks_the_offset_and_reads_nothing() {
    run(|dir| async move {
        let log = open(&dir, small_config()).await;
        for i in 0..3 {
            append_and_flush(&log, batch(2, 1000 + i, 100))
                .await
                .unwrap();
        }
        let r = log.read(2, 0).await.unwrap();
        assert!(r.chunks.is_empty() && r.bytes == 0);
        assert_eq!((r.log_start_offset, r.log_end_offset), (0, 6));
        assert!(matches!(
            log.read(7, 0).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        log.close().await.unwrap();
    });
}

#[test]
fn read_at_mid_batch_offset_returns_the_containing_batch() {
    run(|dir| async move {
        let log = open(&dir, small_config()).await;
        let a = batch(5, 1, 10);
        let b = batch(5, 2, 10);
        log.append(a.clone()).await.unwrap();
        log.append(b.clone()).await.unwrap();
        let r = log.read(7, 1).await.unwrap();
        assert_eq!(concat(&r.chunks), stored(&b, 5));
        log.close().await.unwrap();
        let log = open(&dir, small_config()).await;
        let r = log.read(3, 1).await.unwrap();
        assert_eq!(
            concat(&r.chunks),
            stored(&a, 0),
            "one whole batch even past max_bytes"
        );
        let r = log.read(3, 1 << 20).await.unwrap();
        assert_eq!(r.bytes, a.len() + b.len());
        log.close().await.unwrap();
    });
}

#[test]
fn read_below_start_or_above_end_is_out_of_range() {
    run(|dir| async move {
        let log = open(&dir, small_config()).await;
        log.append(batch(3, 1, 10)).await.unwrap();
        assert!(log.read(3, 100).await.unwrap().chunks.is_empty());
        assert!(matches!(
            log.read(4, 100).await,
            Err(StorageError::OffsetOutOfRange {
                offset: 4,
                log_end_offset: 3,
                ..
            })
        ));
        assert!(matches!(
            log.read(-1, 100).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert_eq!(log.delete_records_before(2).await.unwrap(), 2);
        assert!(matches!(
            log.read(1, 100).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert_eq!(log.read(2, 100).await.unwrap().chunks.len(), 2);
        log.close().await.unwrap();
        let log = open(&dir, small_config()).await;
        assert_eq!(log.log_start_offset(), 2, "log start survives reopen");
        log.close().await.unwrap();
    });
}

#[test]
fn wait_for_append_wakes_on_append() {
    run(|dir| async move {
        let log = open(&dir, small_config()).await;
        let l2 = log.clone();
        let waiter = glommio::spawn_local(async move {
            l2.wait_for_append(0).await;
            l2.log_end_offset()
        });
        glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
        log.append(batch(2, 1, 10)).await.unwrap();
        assert_eq!(waiter.await, 2);
        // Already satisfied: resolves at once.
        log.wait_for_append(1).await;
        log.close().await.unwrap();
    });
}

#[test]
fn roll_by_size_spreads_batches_over_segments() {
    run(|dir| async move {
        let log = open(&dir, small_config()).await;
        let mut expect = Vec::new();
        for i in 0..100 {
            let b = batch(2, i, 2000);
            let info = append_and_flush(&log, b.clone()).await.unwrap();
            expect.extend(stored(&b, info.base_offset));
        }
        let segments = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "log")
            })
            .count();
        assert!(segments >= 3, "{segments} segments");
        assert_eq!(read_all(&log, 0).await, expect);
        log.close().await.unwrap();
        let log = open(&dir, small_config()).await;
        assert_eq!(read_all(&log, 0).await, expect);
        log.close().await.unwrap();
    });
}

#[test]
fn concurrent_durable_appends_share_fdatasyncs() {
    run(|dir| async move {
        let log = open(&dir, LogConfig::default()).await;
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    for i in 0..20 {
                        append_and_flush(&log, batch(1, t * 100 + i, 1000))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        assert_eq!(log.durable_offset(), 64 * 20);
        let syncs = log.fdatasync_count() + log.device_flush_shares();
        assert!(
            syncs < 64 * 20 / 4,
            "{syncs} fdatasyncs for 1280 durable appends"
        );
        log.close().await.unwrap();
    });
}

#[test]
fn acks_all_rounds_of_64_partitions_share_one_device_flush_and_survive_a_crash() {
    run(|dir| async move {
        let mut logs = Vec::new();
        for p in 0..64 {
            logs.push(open(&dir.join(format!("live/p{p}")), LogConfig::default()).await);
        }
        let Some(device) = logs[0].segment_device() else {
            return; // not ext4 or XFS: each log keeps its own fdatasync
        };
        let mut expect = vec![Vec::new(); 64];
        // The first round's writes land before the zeros ahead of them are synced.
        let mut flushes_before = 0;
        for round in 0..6 {
            if round == 1 {
                flushes_before = crate::shard_device_flushes();
            }
            let acks: Vec<_> = logs
                .iter()
                .map(|log| {
                    let log = log.clone();
                    let b = batch(3, round, 2000 + round as usize);
                    glommio::spawn_local(async move {
                        let info = append_and_flush(&log, b.clone()).await.unwrap();
                        stored(&b, info.base_offset)
                    })
                })
                .collect();
            for (p, ack) in acks.into_iter().enumerate() {
                expect[p].extend(ack.await);
            }
        }
        let flushes = crate::shard_device_flushes() - flushes_before;
        // Flushes are pipelined: the writes of a round complete one after another, and each
        // flush covers those completed before it began, so a round takes one to three of them
        // (not 64, one per log).
        assert!(
            (1..=15).contains(&flushes),
            "5 rounds of 64 acks took {flushes} device flushes"
        );
        assert!(logs.iter().all(|l| l.segment_device() == Some(device)));
        // The crash image: every file as it is now, nothing closed.
        copy_dir(&dir.join("live"), &dir.join("crashed"));
        for (p, expect) in expect.iter().enumerate() {
            let log = open(&dir.join(format!("crashed/p{p}")), LogConfig::default()).await;
            assert_eq!(&read_all(&log, 0).await, expect, "partition {p}");
            log.close().await.unwrap();
        }
        for log in logs {
            log.close().await.unwrap();
        }
    });
}

#[test]
fn recovery_keeps_every_whole_batch_before_a_cut_or_garbage() {
    run(|dir| async move {
        let config = LogConfig {
            index_interval_bytes: 256,
            ..small_config()
        };
        let log = open(&dir, config.clone()).await;
        let mut ends = vec![(0u64, 0i64)];
        let mut expect = Vec::new();
        for i in 0..12 {
            let b = batch(2, i, 150 + i as usize * 20);
            let info = log.append(b.clone()).await.unwrap();
            expect.extend(stored(&b, info.base_offset));
            ends.push((expect.len() as u64, info.last_offset + 1));
        }
        log.close().await.unwrap();
        let seg = dir.join(format!("{:020}.log", 0));
        let original = std::fs::read(&seg).unwrap();
        assert_eq!(original, expect);
        let total = original.len() as u64;
        let mut cuts: Vec<u64> = (0..total).step_by(97).collect();
        for (end, _) in &ends {
            cuts.extend([end.saturating_sub(1), *end, end + 1, end + 12, end + 61]);
        }
        cuts.retain(|c| *c <= total);
        cuts.sort_unstable();
        cuts.dedup();
        for (n, cut) in cuts.iter().enumerate() {
            let mut damaged = original[..*cut as usize].to_vec();
            match n % 3 {
                0 => {}
                1 => damaged.extend(vec![0u8; 5000]),
                _ => damaged.extend((0..777).map(|i| (i * 31 % 251) as u8)),
            }
            std::fs::write(&seg, &damaged).unwrap();
            let (keep_len, keep_end) = *ends.iter().rev().find(|(e, _)| e <= cut).unwrap();
            let log = open(&dir, config.clone()).await;
            assert_eq!(log.log_end_offset(), keep_end, "cut at {cut}");
            assert_eq!(
                read_all(&log, 0).await,
                original[..keep_len as usize],
                "cut at {cut}"
            );
            // The log stays appendable after recovery.
            let b = batch(1, 99, 50);
            let info = append_and_flush(&log, b.clone()).await.unwrap();
            assert_eq!(info.base_offset, keep_end);
            log.close().await.unwrap();
        }
    });
}

#[test]
fn corrupt_segment_in_the_middle_is_an_error() {
    run(|dir| async move {
        let log = open(&dir, small_config()).await;
        for i in 0..60 {
            log.append(batch(1, i, 3000)).await.unwrap();
        }
        log.close().await.unwrap();
        let seg = dir.join(format!("{:020}.log", 0));
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[5000] ^= 0xff;
        std::fs::write(&seg, &bytes).unwrap();
        // With its saved index the sealed segment is not rescanned on open: the damaged
        // batch is refused when read.
        let log = open(&dir, small_config()).await;
        assert!(matches!(
            log.read(0, 1 << 20).await,
            Err(StorageError::CorruptSegment { .. })
        ));
        log.close().await.unwrap();
        // Without index files the open scan finds it, with data after it: refused.
        std::fs::remove_file(dir.join(format!("{:020}.index", 0))).unwrap();
        match PartitionLog::open(&dir, small_config()).await {
            Err(StorageError::CorruptSegment { .. }) => {}
            other => panic!("expected CorruptSegment, got {:?}", other.map(|_| ())),
        }
    });
}

#[test]
fn truncate_to_removes_the_containing_batch_and_after() {
    run(|dir| async move {
        let log = open(&dir, small_config()).await;
        let mut stored_all = Vec::new();
        let mut bounds = vec![0usize];
        for i in 0..80 {
            let b = batch(3, i, 1500);
            let info = log.append(b.clone()).await.unwrap();
            stored_all.extend(stored(&b, info.base_offset));
            bounds.push(stored_all.len());
        }
        log.truncate_to(100).await.unwrap();
        // 100 lies in batch 33 (offsets 99..=101).
        assert_eq!(log.log_end_offset(), 99);
        assert_eq!(read_all(&log, 0).await, stored_all[..bounds[33]]);
        let b = batch(1, 5, 10);
        let info = append_and_flush(&log, b.clone()).await.unwrap();
        assert_eq!(info.base_offset, 99);
        let mut expect = stored_all[..bounds[33]].to_vec();
        expect.extend(stored(&b, 99));
        assert_eq!(read_all(&log, 0).await, expect);
        log.close().await.unwrap();
        let log = open(&dir, small_config()).await;
        assert_eq!(read_all(&log, 0).await, expect);
        log.truncate_to(0).await.unwrap();
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.log_start_offset(), 0);
        log.close().await.unwrap();
    });
}

#[test]
fn offset_for_timestamp_finds_first_batch_at_or_after() {
    run(|dir| async move {
        let log = open(&dir, small_config()).await;
        for i in 0..100i64 {
            log.append(batch(2, 1000 + i * 10, 500)).await.unwrap();
        }
        assert_eq!(log.offset_for_timestamp(0).await.unwrap(), Some((0, 1000)));
        assert_eq!(
            log.offset_for_timestamp(1005).await.unwrap(),
            Some((2, 1010))
        );
        assert_eq!(
            log.offset_for_timestamp(1990).await.unwrap(),
            Some((198, 1990))
        );
        assert_eq!(log.offset_for_timestamp(1991).await.unwrap(), None);
        assert_eq!(log.max_timestamp(), Some((1990, 199)));
        log.close().await.unwrap();
        let log = open(&dir, small_config()).await;
        assert_eq!(
            log.offset_for_timestamp(1500).await.unwrap(),
            Some((100, 1500))
        );
        log.close().await.unwrap();
    });
}

#[test]
fn retention_deletes_old_segments_by_size_and_time() {
    run(|dir| async move {
        let config = LogConfig {
            retention_ms: None,
            segment_ms: None,
            retention_bytes: Some(100 << 10),
            ..small_config()
        };
        let log = open(&dir, config.clone()).await;
        for i in 0..200i64 {
            log.append(batch(1, i, 2000)).await.unwrap();
        }
        // Rolls happen in the writer: retention sees the segments once batches are placed.
        log.flush().await.unwrap();
        log.housekeeping(0).await.unwrap();
        let start = log.log_start_offset();
        assert!(start > 0);
        let kept: u64 = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .map(|p| p.metadata().unwrap().len().min(64 << 10))
            .sum();
        assert!(kept >= 100 << 10, "kept {kept}");
        assert!(read_all(&log, start).await.len() >= 100 << 10);
        // Time: everything older than 1000 ms at t=10_000 goes; the active segment is rolled first.
        log.set_config(LogConfig {
            retention_ms: Some(1000),
            retention_bytes: None,
            ..config
        });
        log.housekeeping(10_000).await.unwrap();
        assert_eq!(log.log_start_offset(), 200);
        assert_eq!(log.log_end_offset(), 200);
        log.append(batch(1, 10_000, 10)).await.unwrap();
        assert_eq!(log.read(200, 100).await.unwrap().chunks.len(), 2);
        log.close().await.unwrap();
        let log = open(&dir, small_config()).await;
        assert_eq!(log.log_start_offset(), 200);
        assert_eq!(log.log_end_offset(), 201);
        log.close().await.unwrap();
    });
}

#[test]
fn roll_by_age() {
    run(|dir| async move {
        let config = LogConfig {
            segment_ms: Some(100),
            ..small_config()
        };
        let log = open(&dir, config).await;
        log.append(batch(1, 1000, 10)).await.unwrap();
        log.housekeeping(1050).await.unwrap();
        log.append(batch(1, 1060, 10)).await.unwrap();
        assert!(!dir.join(format!("{:020}.log", 1)).exists());
        log.housekeeping(1100).await.unwrap();
        log.append(batch(1, 1110, 10)).await.unwrap();
        assert!(dir.join(format!("{:020}.log", 2)).exists());
        assert_eq!(log.read(0, 1 << 20).await.unwrap().bytes, 3 * (61 + 10));
        log.close().await.unwrap();
    });
}

#[test]
fn appends_are_ordered_by_first_poll_even_across_rolls() {
    run(|dir| async move {
        let log = open(&dir, small_config()).await;
        // Many appends created in order but awaited in reverse, crossing several rolls.
        let batches: Vec<Bytes> = (0..120).map(|i| batch(2, i, 1500)).collect();
        let mut futures: Vec<_> = batches
            .iter()
            .map(|b| Box::pin(log.append(b.clone())))
            .collect();
        // First poll of each, in order; finish them in reverse order.
        let first: Vec<_> = futures
            .iter_mut()
            .map(|f| match futures_poll_once(f.as_mut()) {
                std::task::Poll::Ready(r) => Some(r.unwrap()),
                std::task::Poll::Pending => None,
            })
            .collect();
        let mut infos = Vec::new();
        for (f, done) in futures.into_iter().zip(first).rev() {
            infos.push(match done {
                Some(info) => info,
                None => f.await.unwrap(),
            });
        }
        infos.reverse();
        let mut expect = Vec::new();
        for (i, (info, b)) in infos.iter().zip(&batches).enumerate() {
            assert_eq!(info.base_offset, 2 * i as i64);
            expect.extend(stored(b, info.base_offset));
        }
        assert_eq!(log.flush().await.unwrap(), 240);
        assert_eq!(read_all(&log, 0).await, expect);
        log.close().await.unwrap();
        let log = open(&dir, small_config()).await;
        assert_eq!(read_all(&log, 0).await, expect);
        log.close().await.unwrap();
    });
}

fn futures_poll_once<F: std::future::Future>(
    f: std::pin::Pin<&mut F>,
) -> std::task::Poll<F::Output> {
    let waker = std::task::Waker::noop();
    f.poll(&mut std::task::Context::from_waker(waker))
}

#[test]
fn append_rejects_bytes_that_are_not_one_batch() {
    run(|dir| async move {
        let log = open(&dir, small_config()).await;
        let b = batch(1, 1, 10);
        assert!(matches!(
            log.append(b.slice(..b.len() - 1)).await,
            Err(StorageError::InvalidBatch { .. })
        ));
        assert!(matches!(
            log.append(Bytes::from_static(b"xx")).await,
            Err(StorageError::InvalidBatch { .. })
        ));
        log.close().await.unwrap();
        assert!(matches!(log.append(b).await, Err(StorageError::Closed)));
    });
}

#[test]
fn retention_of_a_just_rolled_segment_leaves_no_orphan_files_and_delete_removes_the_dir() {
    run(|dir| async move {
        let config = LogConfig {
            retention_ms: Some(1000),
            segment_ms: None,
            ..small_config()
        };
        let log = open(&dir, config).await;
        for i in 0..10 {
            log.append(batch(1, i, 3000)).await.unwrap();
        }
        // Rolls the active segment (past retention) and deletes every sealed one at once.
        log.housekeeping(1_000_000).await.unwrap();
        assert_eq!(log.log_start_offset(), 10);
        log.append(batch(1, 1_000_000, 10)).await.unwrap();
        log.close().await.unwrap();
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        for n in names.iter().filter(|n| n.ends_with("index")) {
            let stem = n.split('.').next().unwrap();
            assert!(
                names.contains(&format!("{stem}.log")),
                "orphan {n} in {names:?}"
            );
        }
        let log = open(&dir, small_config()).await;
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 11));
        log.delete().await.unwrap();
        assert!(!dir.exists());
        assert!(matches!(log.read(10, 100).await, Err(StorageError::Closed)));
    });
}

#[test]
fn recovery_trims_the_preallocated_zero_tail_and_keeps_every_durable_batch() {
    run(|dir| async move {
        let config = LogConfig {
            segment_bytes: 8 << 20,
            preallocate_bytes: 2 << 20,
            ..small_config()
        };
        let log = open(&dir.join("live"), config.clone()).await;
        let mut expect = Vec::new();
        for i in 0..300 {
            let b = batch(1, i, 3000 + i as usize);
            let info = append_and_flush(&log, b.clone()).await.unwrap();
            expect.extend(stored(&b, info.base_offset));
        }
        // The crash image: the files as they are now, the log still open (no close, so
        // no trim of the zeros pre-allocated ahead of the data).
        let crashed = dir.join("crashed");
        std::fs::create_dir_all(&crashed).unwrap();
        for e in std::fs::read_dir(dir.join("live")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), crashed.join(e.file_name())).unwrap();
        }
        let seg = crashed.join(format!("{:020}.log", 0));
        let image = std::fs::read(&seg).unwrap();
        assert!(
            image.len() > expect.len() + (512 << 10),
            "zeros ahead of the data: file {} bytes, data {}",
            image.len(),
            expect.len()
        );
        assert_eq!(image[..expect.len()], expect[..]);
        assert!(image[expect.len()..].iter().all(|b| *b == 0));
        let recovered = open(&crashed, config.clone()).await;
        assert_eq!(recovered.log_end_offset(), 300);
        assert_eq!(read_all(&recovered, 0).await, expect);
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len(),
            expect.len() as u64,
            "recovery trims the zeros"
        );
        // Appends continue after recovery.
        let b = batch(1, 999, 100);
        let info = append_and_flush(&recovered, b.clone()).await.unwrap();
        assert_eq!(info.base_offset, 300);
        expect.extend(stored(&b, 300));
        recovered.close().await.unwrap();
        let reopened = open(&crashed, config).await;
        assert_eq!(read_all(&reopened, 0).await, expect);
        reopened.close().await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn an_opened_partition_that_is_never_written_writes_no_zeros() {
    run(|dir| async move {
        let dir = dir.join("idle");
        let log = open(&dir, LogConfig::default()).await;
        // Nothing signals that a background write did not start: give one the time it
        // would take (a prefill's first step, fallocate, completes in well under this).
        glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
        let seg = dir.join(format!("{:020}.log", 0));
        let meta = std::fs::metadata(&seg).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (meta.len(), meta.blocks()),
            (0, 0),
            "an idle segment holds no zeros"
        );
        // The first write reserves what it needs.
        let b = batch(1, 1, 1000);
        let info = append_and_flush(&log, b.clone()).await.unwrap();
        assert_eq!(read_all(&log, 0).await, stored(&b, info.base_offset));
        log.close().await.unwrap();
    });
}

#[test]
fn zeros_written_ahead_stay_bounded_and_never_outlive_a_segment() {
    run(|dir| async move {
        let config = LogConfig {
            segment_bytes: 256 << 10,
            preallocate_bytes: 128 << 10,
            ..small_config()
        };
        let dir = dir.join("log");
        let log = open(&dir, config.clone()).await;
        let mut expect = Vec::new();
        for i in 0..1500 {
            let b = batch(1, i, 700 + (i as usize * 13) % 900);
            let info = append_and_flush(&log, b.clone()).await.unwrap();
            expect.extend(stored(&b, info.base_offset));
            if i == 700 {
                // A truncate stops the prefill of the active segment; appends restart it.
                log.truncate_to(650).await.unwrap();
                expect = read_all(&log, 0).await;
            }
        }
        let mut segs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        segs.sort();
        assert!(segs.len() >= 4, "{} segments", segs.len());
        let (active, sealed) = segs.split_last().unwrap();
        let mut sealed_bytes = 0;
        for p in sealed {
            let image = std::fs::read(p).unwrap();
            // A sealed segment holds its batches only: its last block is not zeros.
            assert!(
                image.len() <= (256 << 10) + 2048,
                "{}: {}",
                p.display(),
                image.len()
            );
            assert!(
                image[image.len() - 64..].iter().any(|b| *b != 0),
                "{}",
                p.display()
            );
            sealed_bytes += image.len();
        }
        let active_data = expect.len() - sealed_bytes;
        let active_len = std::fs::metadata(active).unwrap().len() as usize;
        // Zeros ahead of the active segment's data: at most the step (at least 1 MiB), plus a block.
        assert!(
            active_len <= active_data + (1 << 20) + 4096,
            "active file {active_len} bytes for {active_data} bytes of data"
        );
        assert_eq!(read_all(&log, 0).await, expect);
        log.close().await.unwrap();
        assert_eq!(
            std::fs::metadata(active).unwrap().len() as usize,
            active_data,
            "close trims the zeros"
        );
        let reopened = open(&dir, config).await;
        assert_eq!(read_all(&reopened, 0).await, expect);
        reopened.close().await.unwrap();
    });
}

#[test]
fn delete_records_and_retention_make_what_they_delete_durable_first() {
    run(|dir| async move {
        let config = LogConfig {
            retention_ms: Some(1000),
            segment_ms: None,
            ..small_config()
        };
        let log = open(&dir, config).await;
        for i in 0..4 {
            log.append(batch(1, i, 100)).await.unwrap();
        }
        // Not flushed: the log start moves only once the records below it are durable,
        // so a crash can never bring deleted records back below a later log start.
        assert_eq!(log.delete_records_before(3).await.unwrap(), 3);
        assert!(
            log.durable_offset() >= 3,
            "durable {}",
            log.durable_offset()
        );
        for i in 0..30 {
            log.append(batch(1, i, 3000)).await.unwrap();
        }
        // Retention deletes at least the first, full segment, written but not flushed.
        log.housekeeping(1_000_000).await.unwrap();
        let start = log.log_start_offset();
        assert!(start >= 25, "log start {start}");
        assert!(
            log.durable_offset() >= start,
            "durable {}",
            log.durable_offset()
        );
        log.close().await.unwrap();
        let log = open(&dir, small_config()).await;
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, 34));
        log.close().await.unwrap();
    });
}

#[test]
fn acks_all_of_64_partitions_through_the_commit_log_take_one_fdatasync_a_round_and_survive_a_crash()
{
    use crate::commit_log::{self, CommitLog, CommitLogConfig};
    run(|dir| async move {
        let checkpoint: commit_log::Checkpoint = Rc::new(|_| Box::pin(async { Ok(()) }));
        let config = CommitLogConfig {
            file_bytes: commit_log::FILE_BYTES_MIN,
            files_max: 2,
        };
        let cl = CommitLog::create(dir.join("live/commit"), config, checkpoint.clone())
            .await
            .unwrap();
        let mut logs = Vec::new();
        for p in 0..64 {
            logs.push(open(&dir.join(format!("live/p{p}")), LogConfig::default()).await);
        }
        let syncs_before = cl.fdatasync_count();
        let mut expect = vec![Vec::new(); 64];
        for round in 0..5 {
            let acks: Vec<_> = logs
                .iter()
                .enumerate()
                .map(|(p, log)| {
                    let (log, cl) = (log.clone(), cl.clone());
                    let b = batch(3, round, 2000 + p * 7 + round as usize);
                    glommio::spawn_local(async move {
                        let info = log.append(b.clone()).await.unwrap();
                        let durable = log.commit_to(&cl, p as u32).await.unwrap();
                        assert!(durable > info.last_offset);
                        stored(&b, info.base_offset)
                    })
                })
                .collect();
            for (p, ack) in acks.into_iter().enumerate() {
                expect[p].extend(ack.await);
            }
        }
        let rounds = cl.fdatasync_count() - syncs_before;
        assert!(rounds <= 10, "5 rounds of 64 acks took {rounds} fdatasyncs");
        let segment_syncs: u64 = logs
            .iter()
            .map(|l| l.fdatasync_count() + l.device_flush_shares())
            .sum();
        assert_eq!(segment_syncs, 0, "no segment fdatasync on the ack path");
        // The crash image: every file as it is now, nothing closed or flushed.
        copy_dir(&dir.join("live"), &dir.join("crashed"));
        let replayed = commit_log::replay(dir.join("crashed/commit"))
            .await
            .unwrap();
        for (p, expect) in expect.iter().enumerate() {
            let log = open(&dir.join(format!("crashed/p{p}")), LogConfig::default()).await;
            let mine: Vec<_> = replayed
                .iter()
                .filter(|r| r.partition == (p as u32).into())
                .cloned()
                .collect();
            let recovered_end = log.log_end_offset();
            log.apply_replayed(&mine).await.unwrap();
            let replayed_offsets: Vec<(i64, i64)> = mine
                .iter()
                .map(|r| (r.base_offset, r.last_offset))
                .collect();
            assert_eq!(
                log.log_end_offset(),
                15,
                "partition {p}: recovered to {recovered_end}, replayed {replayed_offsets:?}"
            );
            assert_eq!(&read_all(&log, 0).await, expect, "partition {p}");
            log.close().await.unwrap();
        }
        let restarted = CommitLog::create(
            dir.join("crashed/commit"),
            CommitLogConfig {
                file_bytes: commit_log::FILE_BYTES_MIN,
                files_max: 2,
            },
            checkpoint,
        )
        .await
        .unwrap();
        restarted.close().await.unwrap();
        for l in &logs {
            l.close().await.unwrap();
        }
        cl.close().await.unwrap();
    });
}

#[test]
fn a_truncation_record_voids_the_cut_batches_so_a_replay_rebuilds_what_followed_the_cut() {
    use crate::commit_log::{self, CommitLog, CommitLogConfig, PartitionId};
    run(|dir| async move {
        let checkpoint: commit_log::Checkpoint = Rc::new(|_| Box::pin(async { Ok(()) }));
        let config = CommitLogConfig {
            file_bytes: commit_log::FILE_BYTES_MIN,
            files_max: 2,
        };
        let cl = CommitLog::create(dir.join("commit"), config, checkpoint)
            .await
            .unwrap();
        let id = PartitionId {
            topic_id: [5; 16],
            index: 2,
        };
        let log = open(&dir.join("p"), LogConfig::default()).await;
        // Five batches of two records, committed as one record (offsets 0..=9).
        let mut old = Vec::new();
        for i in 0..5 {
            let b = batch(2, i, 300);
            let info = log.append(b.clone()).await.unwrap();
            old.push(stored(&b, info.base_offset));
        }
        log.commit_to(&cl, id).await.unwrap();
        // Cut inside the third batch: the log ends at 4, and the cut is committed.
        log.truncate_to(5).await.unwrap();
        assert_eq!(log.log_end_offset(), 4);
        let round = cl.append_truncation(id, 4).await.unwrap();
        cl.commit(round).await.unwrap();
        let mut expect: Vec<u8> = old[..2].concat();
        for i in 0..3 {
            let b = batch(1, 100 + i, 500);
            let info = log.append(b.clone()).await.unwrap();
            expect.extend(stored(&b, info.base_offset));
        }
        log.commit_to(&cl, id).await.unwrap();
        let replayed = commit_log::replay(dir.join("commit")).await.unwrap();
        let ranges: Vec<(i64, i64)> = replayed
            .iter()
            .map(|r| (r.base_offset, r.last_offset))
            .collect();
        assert_eq!(ranges, vec![(0, 3), (4, 6)]);
        // Replayed into an empty log (as if no segment write had reached the disk).
        let rebuilt = open(&dir.join("rebuilt"), LogConfig::default()).await;
        rebuilt.apply_replayed(&replayed).await.unwrap();
        assert_eq!(rebuilt.log_end_offset(), 7);
        assert_eq!(read_all(&rebuilt, 0).await, expect);
        rebuilt.close().await.unwrap();
        log.close().await.unwrap();
        cl.close().await.unwrap();
    });
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Retention with segments large enough to keep one for reuse (`spare`).
fn recycling_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2 << 20,
        preallocate_bytes: 2 << 20,
        retention_bytes: Some(4 << 20),
        retention_ms: None,
        segment_ms: None,
        ..small_config()
    }
}

/// The stored batches from `start` on, as `read_all` returns them.
fn from_offset(all: &[(i64, Vec<u8>)], start: i64) -> Vec<u8> {
    all.iter()
        .filter(|(o, _)| *o >= start)
        .flat_map(|(_, b)| b.iter().copied())
        .collect()
}

fn active_segment_file(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("an active segment")
}

#[test]
fn retention_recycles_a_deleted_segment_so_its_blocks_get_no_zeros_and_a_crash_loses_nothing() {
    run(|dir| async move {
        let live = dir.join("live");
        let log = open(&live, recycling_config()).await;
        let mut all = Vec::new();
        // Each roll deletes what is past retention (4 MiB of 2 MiB segments) and keeps one
        // deleted segment as the spare the next roll reuses.
        let mut i = 0;
        let spare = live.join(crate::spare::SPARE_FILE);
        while log.recycled_segments() < 2 || !spare.exists() {
            assert!(i < 400, "no segment recycled after {i} batches");
            let b = batch(2, i, 60_000);
            let info = append_and_flush(&log, b.clone()).await.unwrap();
            all.push((info.base_offset, stored(&b, info.base_offset)));
            i += 1;
        }
        let own_syncs = log.fdatasync_count();
        let b = batch(2, i, 60_000);
        let info = append_and_flush(&log, b.clone()).await.unwrap();
        all.push((info.base_offset, stored(&b, info.base_offset)));
        if log.segment_device().is_some() {
            // An overwrite of blocks synced in their earlier use: the device's cache flush
            // makes it durable, with no fdatasync of the file (and no journal commit).
            assert_eq!(log.fdatasync_count(), own_syncs);
        }
        let start = log.log_start_offset();
        assert!(start > 0, "retention deleted nothing");
        assert_eq!(read_all(&log, start).await, from_offset(&all, start));

        // The active segment is a recycled file: past its data lie the old segment's bytes,
        // where a new file would have zeros written ahead (at least 1 MiB of them).
        let path = active_segment_file(&live);
        let base: i64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let active = std::fs::read(&path).unwrap();
        let data = from_offset(&all, base).len();
        let tail = &active[data..(data + 4096).min(active.len())];
        assert!(
            tail.len() == 4096,
            "recycled file only {} bytes",
            active.len()
        );
        assert!(tail.iter().any(|&b| b != 0), "zeros were written ahead");

        // A crash image: the recycled segment's old batches (offsets below the log start) end
        // the recovery scan; every acknowledged batch is there.
        copy_dir(&live, &dir.join("crashed"));
        let crashed = open(&dir.join("crashed"), recycling_config()).await;
        assert_eq!(crashed.log_end_offset(), log.log_end_offset());
        assert_eq!(read_all(&crashed, start).await, from_offset(&all, start));
        // It goes on from there, and keeps what it wrote over the old bytes.
        let b = batch(2, i + 1, 60_000);
        let info = append_and_flush(&crashed, b.clone()).await.unwrap();
        all.push((info.base_offset, stored(&b, info.base_offset)));
        crashed.close().await.unwrap();
        let reopened = open(&dir.join("crashed"), recycling_config()).await;
        assert_eq!(read_all(&reopened, start).await, from_offset(&all, start));
        // The spare found at open serves the next roll (2.4 MB of 2 MiB segments: one roll).
        for j in 0..40 {
            let b = batch(2, i + 2 + j, 60_000);
            let info = append_and_flush(&reopened, b.clone()).await.unwrap();
            all.push((info.base_offset, stored(&b, info.base_offset)));
        }
        assert!(reopened.recycled_segments() >= 1);
        let start = reopened.log_start_offset();
        assert_eq!(read_all(&reopened, start).await, from_offset(&all, start));
        reopened.close().await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn a_reset_to_an_earlier_offset_removes_the_spare_segment() {
    run(|dir| async move {
        let log = open(&dir, recycling_config()).await;
        let mut i = 0;
        while !dir.join(crate::spare::SPARE_FILE).exists() {
            assert!(i < 400, "no spare segment after {i} batches");
            append_and_flush(&log, batch(2, i, 60_000)).await.unwrap();
            i += 1;
        }
        // A follower told to start over below what the spare holds (Kafka's truncate fully).
        let guard = log.maintenance().await.unwrap();
        log.reset_to(0, &guard).await.unwrap();
        guard.finish();
        assert!(!dir.join(crate::spare::SPARE_FILE).exists());
        for j in 0..80 {
            append_and_flush(&log, batch(2, j, 60_000)).await.unwrap();
        }
        log.close().await.unwrap();
        let log = open(&dir, recycling_config()).await;
        let start = log.log_start_offset();
        assert_eq!(log.log_end_offset(), 160);
        assert!(!read_all(&log, start).await.is_empty());
        log.close().await.unwrap();
    });
}
