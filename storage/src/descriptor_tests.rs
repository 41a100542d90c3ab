//! The shard's cap on sealed segments' descriptors (issue 14, item 10): logs of many segments
//! hold at most the cap open besides their active segments, read every old segment all the
//! same (reopening it), recover under the cap, and close a deleted segment's descriptor.

use crate::test_util::{append_and_flush, run};
use crate::tests::{batch, open, read_all, small_config, stored};
use crate::{open_segment_files, set_max_open_segment_files};
use std::path::Path;
use std::time::Duration;

const LOGS: usize = 3;
const CAP: usize = 4;

/// Descriptors of this process open on files under `dir`: (all, those on deleted files).
fn descriptors_under(dir: &Path) -> (usize, usize) {
    let mut all = 0;
    let mut deleted = 0;
    for entry in std::fs::read_dir("/proc/self/fd").expect("list own descriptors") {
        let Ok(target) = std::fs::read_link(entry.expect("fd entry").path()) else {
            continue; // closed meanwhile
        };
        if target.starts_with(dir) {
            all += 1;
            // The device-flush carrier is an unnamed file, shown as "#inode (deleted)".
            let carrier = target
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('#'));
            deleted += usize::from(target.to_string_lossy().ends_with(" (deleted)") && !carrier);
        }
    }
    (all, deleted)
}

/// Lets the reactor run the closes that dropped files submitted.
async fn settle() {
    glommio::timer::sleep(Duration::from_millis(20)).await;
}

fn assert_bounded(dir: &Path, when: &str) {
    let (open, _) = descriptors_under(dir);
    // Plus one: the shard's device-flush carrier, an unnamed file in the first log's directory.
    assert!(
        open <= LOGS + CAP + 1,
        "{when}: {open} descriptors on segment files, want at most {LOGS} active + {CAP} cached + 1 flush carrier"
    );
    assert!(open_segment_files() <= CAP, "{when}: cache over its cap");
}

#[test]
fn sealed_segments_share_a_bounded_set_of_descriptors_and_are_read_by_reopening() {
    run(|dir| async move {
        set_max_open_segment_files(CAP);
        let dirs: Vec<_> = (0..LOGS).map(|i| dir.join(format!("p-{i}"))).collect();
        let mut logs = Vec::new();
        let mut expect = vec![Vec::new(); LOGS];
        for d in &dirs {
            logs.push(open(d, small_config()).await);
        }
        // About 10 segments of 64 KiB per log, written side by side.
        for i in 0..900i64 {
            let l = i as usize % LOGS;
            let b = batch(2, i, 2000);
            let info = append_and_flush(&logs[l], b.clone()).await.unwrap();
            expect[l].extend(stored(&b, info.base_offset));
        }
        let segments = std::fs::read_dir(&dirs[0])
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "log")
            })
            .count();
        assert!(segments >= 8, "{segments} segments per log");
        settle().await;
        assert_bounded(&dir, "after writing");
        // Every old segment is read, from disk (the tail cache holds a few KiB), twice over.
        for _ in 0..2 {
            for (log, want) in logs.iter().zip(&expect) {
                assert_eq!(&read_all(log, 0).await, want);
            }
        }
        settle().await;
        assert_bounded(&dir, "after reading every segment");
        for log in &logs {
            log.close().await.unwrap();
        }
        drop(logs);

        // Recovery opens every segment, and holds no more than the cap all the same.
        let mut logs = Vec::new();
        for d in &dirs {
            logs.push(open(d, small_config()).await);
        }
        settle().await;
        assert_bounded(&dir, "after recovery");
        for (log, want) in logs.iter().zip(&expect) {
            assert_eq!(&read_all(log, 0).await, want);
        }
        // Segments deleted (DeleteRecords) leave no descriptor on their removed files.
        let end = logs[0].log_end_offset();
        logs[0].delete_records_before(end - 1).await.unwrap();
        settle().await;
        assert_eq!(
            descriptors_under(&dir).1,
            0,
            "a deleted segment is still open"
        );
        assert_bounded(&dir, "after deleting segments");
        for log in &logs {
            log.close().await.unwrap();
        }
    });
}
