//! A retired segment kept for reuse, so that a log whose retention deletes segments writes each
//! byte once.
//!
//! A new segment's blocks must be written before data goes over them (zeros ahead, `SegFile`'s
//! prefill), so that each data write is a pure overwrite and its durability needs a device
//! cache flush, not a journal commit. That writes every byte twice. Retention deletes segments
//! whose blocks are all written and synced: instead of unlinking one of them, the log renames it
//! to `spare-segment` in its directory, and its next roll renames it to the new segment's name
//! and writes data over the old bytes, with no zeros ahead (Redpanda and ScyllaDB's commitlog
//! recycle their files the same way).
//!
//! The old bytes are never mistaken for data: they hold this partition's batches below its log
//! start, every one of them below any offset the log assigns later, and a recovery scan keeps
//! only batches with contiguous offsets from the segment's base (`batch::scan`). Nothing can
//! bring older offsets back: a reset to an earlier offset (`reset_to`) removes the spare first.
//! Only one spare per log is kept: the disk a partition holds is its retention plus the
//! active segment plus at most one segment.

use crate::error::StorageError;
use crate::recovery::blocking;
use crate::segment::{log_path, SegFile, Segment};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The spare's name in the log directory (not a segment name: recovery's listing skips it).
pub(crate) const SPARE_FILE: &str = "spare-segment";

/// A segment smaller than this is not worth keeping: its zeros cost little to write again.
/// (Kafka's smallest segment.bytes is 1 MiB, and a segment rolls a batch short of it.)
const SPARE_MIN_BYTES: u64 = 256 << 10;

thread_local! {
    /// Segments this shard's logs created by reusing a spare.
    static SHARD_RECYCLED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Segments this shard's logs created by reusing a spare (metrics).
pub fn shard_recycled() -> u64 {
    SHARD_RECYCLED.with(|c| c.get())
}

pub(crate) fn count_recycled() {
    SHARD_RECYCLED.with(|c| c.set(c.get() + 1));
}

pub(crate) fn spare_path(dir: &Path) -> PathBuf {
    dir.join(SPARE_FILE)
}

/// The log's spare segment file.
pub(crate) struct Spare {
    /// The retired segment's file while a read that started before the retirement may still
    /// hold it (reads hold the `SegFile` for their duration); None for a spare found at open.
    retired: Option<Rc<SegFile>>,
}

impl Spare {
    /// A segment being retired to become the spare (`keep`).
    pub fn retired(file: Rc<SegFile>) -> Spare {
        Spare {
            retired: Some(file),
        }
    }

    /// A spare left in the directory by an earlier run.
    pub fn found_at_open() -> Spare {
        Spare { retired: None }
    }

    /// No read of the retired segment is in flight: its bytes may be overwritten.
    pub fn is_free(&self) -> bool {
        self.retired
            .as_ref()
            .is_none_or(|f| Rc::strong_count(f) == 1)
    }
}

/// Which of the segments retention removes becomes the spare: the largest whose seal finished
/// (synced and trimmed: every block below its size written, with synced metadata).
pub(crate) fn choose(victims: &[Segment]) -> Option<usize> {
    victims
        .iter()
        .enumerate()
        .filter(|(_, s)| s.file.is_sealed() && s.size >= SPARE_MIN_BYTES)
        .max_by_key(|(_, s)| s.size)
        .map(|(i, _)| i)
}

/// Makes `file` (a sealed segment being retired) the spare file: an fdatasync (its blocks'
/// metadata durable before anyone relies on it), then the rename. The caller syncs the
/// directory.
pub(crate) async fn keep(dir: &Path, file: &SegFile) -> Result<(), StorageError> {
    let to = spare_path(dir);
    blocking("keep spare segment", file.path.clone(), move |from| {
        std::fs::File::open(from)?.sync_data()?;
        std::fs::rename(from, to)
    })
    .await
}

/// Renames the spare to the segment file of `base` (the caller syncs the directory). False if
/// there was no spare file after all.
pub(crate) async fn take(dir: &Path, base: i64) -> Result<bool, StorageError> {
    let to = log_path(dir, base);
    blocking(
        "reuse spare segment",
        spare_path(dir),
        move |from| match std::fs::rename(from, to) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        },
    )
    .await
}
