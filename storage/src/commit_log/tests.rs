//! The commit log on a real disk: one fdatasync per round whatever the partition count,
//! recycling only after a checkpoint, replay of what was committed and nothing else.

use super::*;
use crate::test_util::run;
use std::cell::RefCell;

fn config(files_max: usize) -> CommitLogConfig {
    CommitLogConfig {
        file_bytes: FILE_BYTES_MIN,
        files_max,
    }
}

/// Every checkpoint's (partition, offset) list, in call order.
type Asked = Rc<RefCell<Vec<Vec<(PartitionId, i64)>>>>;

/// A checkpoint that records what it was asked to make durable.
fn recording_checkpoint() -> (Checkpoint, Asked) {
    let asked = Rc::new(RefCell::new(Vec::new()));
    let log = asked.clone();
    let checkpoint: Checkpoint = Rc::new(move |mut offsets: Vec<(PartitionId, i64)>| {
        offsets.sort();
        log.borrow_mut().push(offsets);
        Box::pin(async { Ok(()) })
    });
    (checkpoint, asked)
}

fn batch(partition: u32, offset: i64, len: usize) -> Vec<u8> {
    let mut b = vec![(partition as u8) ^ (offset as u8); len];
    b[..8].copy_from_slice(&offset.to_be_bytes());
    b
}

/// Appends batch `i` of partition 0 (1 MiB, offsets i*10..i*10+9) and waits for its round.
async fn append_committed(log: &CommitLog, i: i64) {
    let round = log
        .append(0, i * 10, i * 10 + 9, &batch(0, i, 1 << 20))
        .await;
    log.commit(round.unwrap()).await.unwrap();
}

#[test]
fn one_fdatasync_covers_a_round_of_64_partitions() {
    run(|dir| async move {
        let (checkpoint, _) = recording_checkpoint();
        let log = CommitLog::create(&dir, config(2), checkpoint)
            .await
            .unwrap();
        let before = log.fdatasync_count();
        let mut rounds = Vec::new();
        for p in 0..64u32 {
            rounds.push(log.append(p, 0, 9, &batch(p, 0, 16 << 10)).await.unwrap());
        }
        let commits: Vec<_> = rounds
            .into_iter()
            .map(|round| {
                let log = log.clone();
                glommio::spawn_local(async move { log.commit(round).await })
            })
            .collect();
        for c in commits {
            c.await.unwrap();
        }
        // The first append may start a round alone before the other 63 arrive.
        assert!(
            log.fdatasync_count() - before <= 2,
            "{}",
            log.fdatasync_count()
        );
        log.close().await.unwrap();
        let replayed = replay(&dir).await.unwrap();
        assert_eq!(replayed.len(), 64);
        for (p, r) in replayed.iter().enumerate() {
            assert_eq!(
                (r.partition, r.base_offset, r.last_offset),
                (PartitionId::from(p as u32), 0, 9)
            );
            assert_eq!(&r.batch[..], &batch(p as u32, 0, 16 << 10)[..]);
        }
    });
}

#[test]
fn files_are_reused_only_after_their_partitions_are_checkpointed() {
    run(|dir| async move {
        let (checkpoint, asked) = recording_checkpoint();
        let log = CommitLog::create(&dir, config(2), checkpoint)
            .await
            .unwrap();
        let batch_bytes = 1 << 20;
        // 40 MiB over two 16 MiB files: the first file is reused after a checkpoint.
        let mut last = 0;
        for i in 0..40i64 {
            let p = (i % 3) as u32;
            let round = log
                .append(p, i * 10, i * 10 + 9, &batch(p, i, batch_bytes))
                .await;
            log.commit(round.unwrap()).await.unwrap();
            last = i;
        }
        log.close().await.unwrap();
        let asked = asked.borrow().clone();
        assert!(!asked.is_empty(), "a file was reused");
        let checkpointed_max = asked
            .iter()
            .flatten()
            .map(|(_, offset)| *offset)
            .max()
            .unwrap();
        let replayed = replay(&dir).await.unwrap();
        // Every committed record not checkpointed is replayed, in order, and only those
        // of the files' current uses.
        let offsets: Vec<i64> = replayed.iter().map(|r| r.base_offset).collect();
        let first = offsets[0];
        assert!(first <= checkpointed_max + 1, "no gap after the checkpoint");
        let expected: Vec<i64> = (first / 10..=last).map(|i| i * 10).collect();
        assert_eq!(offsets, expected);
        for r in &replayed {
            let i = r.base_offset / 10;
            assert_eq!(&r.batch[..], &batch((i % 3) as u32, i, batch_bytes)[..]);
        }
    });
}

#[test]
fn a_restart_never_replays_records_a_second_time() {
    run(|dir| async move {
        let (checkpoint, _) = recording_checkpoint();
        let log = CommitLog::create(&dir, config(2), checkpoint.clone())
            .await
            .unwrap();
        for i in 0..5 {
            let round = log.append(1, i, i, &batch(1, i, 5000)).await.unwrap();
            log.commit(round).await.unwrap();
        }
        log.close().await.unwrap();
        assert_eq!(replay(&dir).await.unwrap().len(), 5);
        // The owner applied the replay; a new commit log ends those files' uses.
        let log = CommitLog::create(&dir, config(2), checkpoint)
            .await
            .unwrap();
        log.close().await.unwrap();
        assert_eq!(replay(&dir).await.unwrap(), vec![]);
    });
}

#[test]
fn a_torn_last_round_is_not_replayed() {
    run(|dir| async move {
        let (checkpoint, _) = recording_checkpoint();
        let log = CommitLog::create(&dir, config(2), checkpoint)
            .await
            .unwrap();
        for i in 0..3 {
            let round = log.append(7, i, i, &batch(7, i, 3000)).await.unwrap();
            log.commit(round).await.unwrap();
        }
        log.close().await.unwrap();
        // Flip a byte inside the last record's batch, as a torn write would leave it.
        let path = file_path(&dir, 0);
        let mut bytes = std::fs::read(&path).unwrap();
        // The marker's block, then one block per round.
        let last_record = 3 * ALIGN as usize;
        bytes[last_record + frame::RECORD_HEADER_BYTES + 100] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let replayed = replay(&dir).await.unwrap();
        let offsets: Vec<i64> = replayed.iter().map(|r| r.base_offset).collect();
        assert_eq!(offsets, vec![0, 1]);
    });
}

#[test]
fn a_batch_larger_than_a_round_is_refused() {
    run(|dir| async move {
        let (checkpoint, _) = recording_checkpoint();
        let log = CommitLog::create(&dir, config(2), checkpoint)
            .await
            .unwrap();
        let err = log
            .append(0, 0, 0, &vec![0; ROUND_BYTES_MAX])
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::InvalidBatch { .. }), "{err}");
        // The largest batch that fits a round is taken.
        let round = log
            .append(
                0,
                0,
                0,
                &vec![1; ROUND_BYTES_MAX - frame::RECORD_HEADER_BYTES],
            )
            .await
            .unwrap();
        log.commit(round).await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn concurrent_producers_records_are_replayed_in_order() {
    run(|dir| async move {
        let (checkpoint, _) = recording_checkpoint();
        let log = CommitLog::create(&dir, config(2), checkpoint)
            .await
            .unwrap();
        // Eight producers, each its own partition, appending and committing without pause:
        // rounds group them, and each partition's records must come back in order and whole.
        let producers: Vec<_> = (0..8u32)
            .map(|p| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    for i in 0..40i64 {
                        let len = 100 + ((i as usize * 977 + p as usize * 131) % 9000);
                        let round = log.append(p, i, i, &batch(p, i, len)).await.unwrap();
                        log.commit(round).await.unwrap();
                    }
                })
            })
            .collect();
        for p in producers {
            p.await;
        }
        let rounds = log.fdatasync_count();
        log.close().await.unwrap();
        assert!(
            rounds < 8 * 40,
            "rounds group the producers' batches: {rounds}"
        );
        let replayed = replay(&dir).await.unwrap();
        assert_eq!(replayed.len(), 8 * 40);
        for p in 0..8u32 {
            let mine: Vec<&ReplayedRecord> = replayed
                .iter()
                .filter(|r| r.partition == p.into())
                .collect();
            for (i, r) in mine.iter().enumerate() {
                let i = i as i64;
                let len = 100 + ((i as usize * 977 + p as usize * 131) % 9000);
                assert_eq!(r.base_offset, i);
                assert_eq!(&r.batch[..], &batch(p, i, len)[..]);
            }
        }
    });
}

#[test]
fn the_next_file_is_made_in_the_background_before_the_active_one_is_full() {
    run(|dir| async move {
        let (checkpoint, _) = recording_checkpoint();
        let log = CommitLog::create(&dir, config(3), checkpoint)
            .await
            .unwrap();
        let next = file_path(&dir, 1);
        let half = FILE_BYTES_MIN / 2;
        let mut i = 0i64;
        while log.state.borrow().end < half {
            append_committed(&log, i).await;
            i += 1;
        }
        // Past half of the first file, the second one is written with zeros in the
        // background, while the first is still the one rounds go to.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while log.state.borrow().making || log.state.borrow().free.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "no file was made ahead"
            );
            glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(log.state.borrow().slots.len(), 1, "still on the first file");
        assert_eq!(std::fs::metadata(&next).unwrap().len(), FILE_BYTES_MIN);
        // The switch takes that file (no third one is made) and replay sees every record.
        while log.state.borrow().slots.len() < 2 {
            append_committed(&log, i).await;
            i += 1;
        }
        assert!(
            !file_path(&dir, 2).exists(),
            "the switch used the file made ahead"
        );
        log.close().await.unwrap();
        let replayed = replay(&dir).await.unwrap();
        assert_eq!(replayed.len() as i64, i);
    });
}

#[test]
fn a_file_left_short_by_a_crash_while_it_was_made_is_completed_at_start() {
    run(|dir| async move {
        let (checkpoint, _) = recording_checkpoint();
        let log = CommitLog::create(&dir, config(3), checkpoint.clone())
            .await
            .unwrap();
        log.close().await.unwrap();
        drop(log);
        // The second file, as a crash 1 MiB into making it leaves it.
        std::fs::write(file_path(&dir, 1), vec![0u8; 1 << 20]).unwrap();
        assert!(replay(&dir).await.unwrap().is_empty());
        let log = CommitLog::create(&dir, config(3), checkpoint)
            .await
            .unwrap();
        for slot in 0..2 {
            let len = std::fs::metadata(file_path(&dir, slot)).unwrap().len();
            assert_eq!(len, FILE_BYTES_MIN, "slot {slot}");
        }
        let round = log.append(0, 0, 9, &batch(0, 0, 4096)).await.unwrap();
        log.commit(round).await.unwrap();
        log.close().await.unwrap();
        assert_eq!(replay(&dir).await.unwrap().len(), 1);
    });
}

/// A file made ahead that fails (here EIO; a full disk alike) is not tried again after every
/// round: the switch makes it, and the log goes on.
#[cfg(feature = "failpoints")]
#[test]
fn a_file_made_ahead_that_fails_is_made_by_the_switch_instead() {
    let scenario = fail::FailScenario::setup();
    run(|dir| async move {
        let (checkpoint, _) = recording_checkpoint();
        let log = CommitLog::create(&dir, config(3), checkpoint)
            .await
            .unwrap();
        let next = file_path(&dir, 1);
        fail::cfg("commit_log::make", &format!("return({})", next.display())).unwrap();
        let mut i = 0i64;
        while log.state.borrow().end < FILE_BYTES_MIN / 2 {
            append_committed(&log, i).await;
            i += 1;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !log.state.borrow().make_ahead_failed {
            assert!(
                std::time::Instant::now() < deadline,
                "the make ahead never failed"
            );
            glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(
            log.state.borrow().slots_made,
            1,
            "the failed slot is free again"
        );
        fail::remove("commit_log::make");
        while log.state.borrow().slots.len() < 2 {
            append_committed(&log, i).await;
            i += 1;
        }
        assert_eq!(std::fs::metadata(&next).unwrap().len(), FILE_BYTES_MIN);
        log.close().await.unwrap();
        assert_eq!(replay(&dir).await.unwrap().len() as i64, i);
    });
    scenario.teardown();
}
