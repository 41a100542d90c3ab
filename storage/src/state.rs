//! The state a log shares between its callers (`PartitionLog`) and its writer task, with
//! one owner per part: offsets and segments belong to the log, the head buffer and write
//! queue to the writer (`WriteQueue`), and batches waiting for a roll or a truncation to
//! `StagedBatches`. Shard-local, lives as long as the log; its invariants are asserted
//! at every transition (`debug_assert!` per append, `assert!` on roll, seal, truncation).

use crate::batch::{BatchHeader, PATCHED_PREFIX};
use crate::cache::TailCache;
use crate::error::{Failure, StorageError};
use crate::event::Event;
use crate::segment::{SegFile, Segment, SEGMENT_BYTES_MAX};
use crate::spare::Spare;
use crate::writer::WriteQueue;
use crate::{LogConfig, LogObserver};
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;

/// The log's offsets, changed only through methods that keep
/// `log_start <= durable <= sync_issued <= log_end`, `flush_target <= log_end` and
/// `committed <= commit_issued <= log_end`.
#[derive(Debug)]
pub(crate) struct Offsets {
    log_start: i64,
    log_end: i64,
    /// Offsets below this are durable (the broker's high watermark).
    durable: i64,
    /// Highest offset covered by an fdatasync already issued (maybe not completed).
    sync_issued: i64,
    /// Highest offset a flush was asked for.
    flush_target: i64,
    /// Offsets below this are durable in the shard's commit log (maybe not in the segments).
    committed: i64,
    /// Highest offset appended to the commit log (its round maybe not durable yet).
    commit_issued: i64,
}

impl Offsets {
    /// Offsets of a log opened from disk: everything recovered is durable.
    pub fn recovered(log_start: i64, log_end: i64) -> Offsets {
        let o = Offsets {
            log_start,
            log_end,
            durable: log_end,
            sync_issued: log_end,
            flush_target: log_end,
            committed: log_end,
            commit_issued: log_end,
        };
        o.assert_ordered();
        o
    }

    fn ordered(&self) -> bool {
        self.log_start <= self.durable
            && self.durable <= self.sync_issued
            && self.sync_issued <= self.log_end
            && self.flush_target <= self.log_end
            && self.committed <= self.commit_issued
            && self.commit_issued <= self.log_end
    }

    fn assert_ordered(&self) {
        assert!(self.ordered(), "log offsets out of order: {self:?}");
    }

    pub fn log_start(&self) -> i64 {
        self.log_start
    }
    pub fn log_end(&self) -> i64 {
        self.log_end
    }
    pub fn durable(&self) -> i64 {
        self.durable
    }
    pub fn sync_issued(&self) -> i64 {
        self.sync_issued
    }
    pub fn flush_target(&self) -> i64 {
        self.flush_target
    }
    pub fn commit_issued(&self) -> i64 {
        self.commit_issued
    }
    /// Offsets below this are durable, in the segments or in the shard's commit log.
    pub fn high_watermark(&self) -> i64 {
        self.durable.max(self.committed)
    }

    /// Everything below `offset` was appended to the shard's commit log.
    pub fn commit_issued_to(&mut self, offset: i64) {
        debug_assert!(offset >= self.commit_issued);
        self.commit_issued = offset;
        assert!(self.ordered(), "commit issued past the log end: {self:?}");
    }

    /// The commit-log round holding everything below `offset` is durable. Ignored when it
    /// is not news or describes offsets a truncation removed meanwhile.
    pub fn publish_committed(&mut self, offset: i64) {
        if offset > self.committed && offset <= self.commit_issued {
            self.committed = offset;
        }
        debug_assert!(self.ordered(), "{self:?}");
    }

    /// An append took offsets up to `next` (exclusive). Hot path.
    pub fn append(&mut self, next: i64) {
        debug_assert!(next > self.log_end, "append must move the log end up");
        self.log_end = next;
    }

    /// Asks for everything below `target` (at most the log end) to become durable.
    pub fn request_flush(&mut self, target: i64) {
        self.flush_target = self.flush_target.max(target.min(self.log_end));
        debug_assert!(self.ordered(), "{self:?}");
    }

    /// The writer issued an fdatasync covering everything below `offset`.
    pub fn sync_issued_to(&mut self, offset: i64) {
        debug_assert!(offset >= self.sync_issued);
        self.sync_issued = offset;
        assert!(self.ordered(), "sync issued past the log end: {self:?}");
    }

    /// An fdatasync covering everything below `offset` completed. Ignored when it is
    /// not news or describes offsets a truncation removed meanwhile.
    pub fn publish_durable(&mut self, offset: i64) {
        if offset > self.durable && offset <= self.sync_issued {
            self.durable = offset;
        }
        debug_assert!(self.ordered(), "{self:?}");
    }

    /// Moves the log start up to `offset` (DeleteRecords, retention): only durable
    /// offsets can be deleted.
    pub fn advance_start(&mut self, offset: i64) {
        self.log_start = self.log_start.max(offset);
        assert!(
            self.ordered(),
            "log start moved past the durable offset: {self:?}"
        );
    }

    /// A truncation to `new_end` is under way: nothing from there on is durable any more
    /// (the log end follows once the cut is done).
    pub fn lower_durable(&mut self, new_end: i64) {
        self.durable = self.durable.min(new_end);
        self.committed = self.committed.min(new_end);
        assert!(self.ordered(), "truncating below the log start: {self:?}");
    }

    /// Everything from `new_end` on is gone (a truncation, never below the log start).
    pub fn truncate(&mut self, new_end: i64) {
        self.log_end = new_end;
        self.durable = self.durable.min(new_end);
        self.sync_issued = self.sync_issued.min(new_end);
        self.flush_target = self.flush_target.min(new_end);
        self.committed = self.committed.min(new_end);
        self.commit_issued = self.commit_issued.min(new_end);
        assert!(self.ordered(), "truncated below the log start: {self:?}");
    }

    /// The log restarts empty at `offset`.
    pub fn reset(&mut self, offset: i64) {
        *self = Offsets::recovered(offset, offset);
    }
}

/// A batch with offsets assigned, waiting to be placed in a segment.
pub(crate) struct Staged {
    pub prefix: [u8; PATCHED_PREFIX],
    pub body: Bytes,
    pub header: BatchHeader,
}

/// Batches with offsets assigned but not yet copied into the active segment (a roll or a
/// truncation was in progress), contiguous and in offset order; placed by the writer.
#[derive(Default)]
pub(crate) struct StagedBatches {
    batches: VecDeque<Staged>,
    /// Sum of the batches' sizes: counts against the queue limit appenders wait on.
    bytes: usize,
}

impl StagedBatches {
    fn debug_check(&self) {
        debug_assert_eq!(
            self.bytes,
            self.batches.iter().map(|b| b.header.size).sum::<usize>(),
            "staged byte count"
        );
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn headers(&self) -> impl Iterator<Item = &BatchHeader> {
        self.batches.iter().map(|b| &b.header)
    }

    pub fn push(&mut self, b: Staged) {
        debug_assert!(self
            .batches
            .back()
            .is_none_or(|last| last.header.next_offset() == b.header.base_offset));
        self.bytes += b.header.size;
        self.batches.push_back(b);
        self.debug_check();
    }

    pub fn front(&self) -> Option<&BatchHeader> {
        self.batches.front().map(|b| &b.header)
    }

    pub fn pop_front(&mut self) -> Option<Staged> {
        let b = self.batches.pop_front()?;
        self.bytes -= b.header.size;
        self.debug_check();
        Some(b)
    }

    pub fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }

    /// Drops the batches from `end_offset` on (a truncation).
    pub fn drop_from(&mut self, end_offset: i64) {
        while self
            .batches
            .back()
            .is_some_and(|b| b.header.base_offset >= end_offset)
        {
            let b = self.batches.pop_back().expect("back exists");
            self.bytes -= b.header.size;
        }
        self.debug_check();
    }
}

/// Data read from disk beyond what a read asked for (sequential consumers hit the rest).
pub(crate) struct ReadAhead {
    pub file: Rc<SegFile>,
    pub pos: u64,
    pub data: Bytes,
}

/// Everything one log holds in memory. Shard-local, lives as long as the log.
pub(crate) struct LogState {
    pub config: LogConfig,
    /// Oldest first; the back one is active.
    pub segments: VecDeque<Segment>,
    pub offsets: Offsets,
    pub write: WriteQueue,
    pub staged: StagedBatches,
    pub cache: TailCache,
    pub read_ahead: Option<ReadAhead>,
    /// The writer is creating a new active segment.
    pub rolling: bool,
    /// Housekeeping asked the writer for a roll by age.
    pub roll_requested: bool,
    /// Rolls done, so housekeeping can wait for the one it asked for.
    pub rolls: u64,
    /// A truncation owns the log: batches are staged, not placed.
    pub maintenance: bool,
    pub closed: bool,
    pub writer_running: bool,
    pub failed: Option<Failure>,
    /// A retired segment the next roll reuses (`spare`).
    pub spare: Option<Spare>,
    /// Retention started by a roll is running: close waits for it (it renames and removes
    /// the log's files).
    pub retention_running: bool,
}

impl LogState {
    pub fn new(
        config: LogConfig,
        segments: VecDeque<Segment>,
        offsets: Offsets,
        write: WriteQueue,
    ) -> LogState {
        let s = LogState {
            config,
            segments,
            offsets,
            write,
            staged: StagedBatches::default(),
            cache: TailCache::default(),
            read_ahead: None,
            rolling: false,
            roll_requested: false,
            rolls: 0,
            maintenance: false,
            closed: false,
            writer_running: true,
            failed: None,
            spare: None,
            retention_running: false,
        };
        s.assert_invariants();
        s
    }

    /// What holds between the log's parts outside a truncation (which cuts the segments
    /// first and the offsets last): placed batches end where the staged ones start, the
    /// staged ones end at the log end, and no sync was issued for bytes not placed.
    fn invariants_hold(&self) -> bool {
        let placed_end = self.placed_end_offset();
        let staged_from = self.staged.front().map_or(placed_end, |h| h.base_offset);
        let staged_to = self
            .staged
            .headers()
            .last()
            .map_or(placed_end, |h| h.next_offset());
        self.offsets.ordered()
            && (self.maintenance
                || (staged_from == placed_end
                    && staged_to == self.offsets.log_end()
                    && self.offsets.sync_issued() <= placed_end))
    }

    /// Checked on state changes (roll, seal, truncation, reset, deletion).
    pub fn assert_invariants(&self) {
        assert!(
            self.invariants_hold(),
            "log state inconsistent: {:?}, placed end {}, staged {} bytes",
            self.offsets,
            self.placed_end_offset(),
            self.staged.bytes()
        );
    }

    /// Checked on the hot paths (append, placement, each writer job).
    pub fn debug_assert_invariants(&self) {
        debug_assert!(
            self.invariants_hold(),
            "log state inconsistent: {:?}, placed end {}, staged {} bytes",
            self.offsets,
            self.placed_end_offset(),
            self.staged.bytes()
        );
    }

    pub fn preallocate_step(&self) -> u64 {
        preallocate_step(&self.config)
    }

    pub fn check_usable(&self) -> Result<(), StorageError> {
        if let Some(f) = &self.failed {
            return Err(f.to_error());
        }
        if self.closed {
            return Err(StorageError::Closed);
        }
        Ok(())
    }

    pub fn active(&self) -> &Segment {
        self.segments
            .back()
            .expect("a log always has an active segment")
    }

    pub fn out_of_range(&self, offset: i64) -> StorageError {
        StorageError::OffsetOutOfRange {
            offset,
            log_start_offset: self.offsets.log_start(),
            log_end_offset: self.offsets.log_end(),
        }
    }

    /// Index of the segment holding `offset` (the last one with base <= offset).
    pub fn segment_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    /// Offset after the last batch placed in a segment (<= log end offset).
    pub fn placed_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    pub fn needs_roll(&self, h: &BatchHeader) -> bool {
        let a = self.active();
        a.size > 0
            && (a.size + h.size as u64 > self.config.segment_bytes.min(SEGMENT_BYTES_MAX)
                || h.last_offset() - a.base_offset > i64::from(i32::MAX))
    }

    /// Bytes appenders wait on: queued writes plus staged batches.
    pub fn backlog_bytes(&self) -> usize {
        self.write.queued_bytes() + self.staged.bytes()
    }

    /// Places staged batches in order while no roll is needed. Returns true when the
    /// next staged batch needs a new segment first.
    pub fn place_staged(&mut self) -> bool {
        while let Some(h) = self.staged.front() {
            if self.needs_roll(h) {
                return true;
            }
            let b = self.staged.pop_front().expect("front exists");
            self.place(&b.prefix, &b.body, &b.header);
        }
        self.debug_assert_invariants();
        false
    }

    /// Copies one batch (patched prefix + the rest) into the head buffer and records it
    /// in the active segment.
    pub fn place(&mut self, prefix: &[u8], body: &[u8], stored: &BatchHeader) {
        self.write.push_batch(prefix, body);
        let seg = self.segments.back_mut().expect("active segment");
        debug_assert_eq!(seg.next_offset, stored.base_offset);
        seg.index.on_batch(seg.size, stored);
        seg.size += stored.size as u64;
        seg.next_offset = stored.next_offset();
    }

    /// Drops staged and cached batches from `end_offset` on (a truncation).
    pub fn drop_unplaced_from(&mut self, end_offset: i64) {
        self.staged.drop_from(end_offset);
        self.cache.truncate(end_offset);
    }

    /// Records that everything below `offset` is on disk, with the active segment
    /// (`active_base`) durable up to `active_size` bytes.
    pub fn publish_durable(&mut self, offset: i64, active_base: i64, active_size: u64) {
        self.offsets.publish_durable(offset);
        for seg in self.segments.iter_mut() {
            if seg.base_offset < active_base {
                seg.durable_size = seg.size;
            } else if seg.base_offset == active_base {
                seg.durable_size = seg.durable_size.max(active_size.min(seg.size));
            }
        }
        let limit = self.config.tail_cache_bytes;
        self.cache.evict(limit, self.offsets.durable());
    }
}

/// The zeros written ahead of the data in one step (see `LogConfig::preallocate_bytes`).
pub(crate) fn preallocate_step(config: &LogConfig) -> u64 {
    config
        .preallocate_bytes
        .min(config.segment_bytes)
        .max(crate::segment::ALIGN)
}

/// A log's state and the events its callers and writer wait on. Shard-local, shared by
/// the `PartitionLog` handle and its writer task for as long as the log.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub state: RefCell<LogState>,
    /// Wakes the writer.
    pub work: Event,
    /// Flush completion, failures.
    pub durable: Event,
    /// Appends, truncation, close: `wait_for_append`.
    pub appended: Event,
    /// Queue space and end of maintenance: waiting appenders.
    pub space: Event,
    pub writer_done: Event,
    /// fdatasync calls of the log's own files issued by the writer (benchmarks and tests).
    pub syncs: Cell<u64>,
    /// Syncs that shared the shard's next cache flush of the device instead (`device_flush`):
    /// several logs may share one flush, so these are shares, not flushes.
    pub flush_shares: Cell<u64>,
    /// Rolls that reused a retired segment's file (`spare`) instead of writing zeros ahead.
    pub recycled: Cell<u64>,
    /// Told of fdatasyncs and reads (metrics); none by default.
    pub observer: RefCell<Option<Rc<dyn LogObserver>>>,
}

impl Shared {
    pub fn new(dir: PathBuf, state: LogState) -> Shared {
        Shared {
            dir,
            state: RefCell::new(state),
            work: Event::default(),
            durable: Event::default(),
            appended: Event::default(),
            space: Event::default(),
            writer_done: Event::default(),
            syncs: Cell::new(0),
            flush_shares: Cell::new(0),
            recycled: Cell::new(0),
            observer: RefCell::new(None),
        }
    }

    pub fn observe(&self, event: impl FnOnce(&dyn LogObserver)) {
        let observer = self.observer.borrow().clone();
        if let Some(o) = observer {
            event(&*o);
        }
    }

    pub fn publish_durable(&self, offset: i64, active_base: i64, active_size: u64) {
        self.state
            .borrow_mut()
            .publish_durable(offset, active_base, active_size);
        // Batches of any log of the shard that waited for durability may go now.
        crate::cache::shard_cache().evict();
        self.durable.notify();
    }

    pub fn writer_stopped(&self, failure: Option<Failure>) {
        {
            let mut s = self.state.borrow_mut();
            s.writer_running = false;
            if let Some(f) = failure {
                tracing::error!(dir = %self.dir.display(), error = %f.to_error(), "log write failed; log is offline");
                s.failed.get_or_insert(f);
            }
        }
        self.writer_done.notify();
        self.durable.notify();
        self.appended.notify();
        self.space.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::Offsets;

    #[test]
    fn offsets_follow_append_sync_and_durable_in_order() {
        let mut o = Offsets::recovered(0, 10);
        o.append(15);
        o.request_flush(20); // capped at the log end
        assert_eq!(o.flush_target(), 15);
        o.sync_issued_to(15);
        o.publish_durable(12);
        assert_eq!(o.durable(), 12);
        // A sync that no longer matches what was issued (cut meanwhile) is ignored.
        o.truncate(13);
        o.publish_durable(15);
        assert_eq!((o.durable(), o.sync_issued(), o.log_end()), (12, 13, 13));
        o.advance_start(12);
        assert_eq!(o.log_start(), 12);
    }

    #[test]
    #[should_panic(expected = "log start moved past the durable offset")]
    fn log_start_never_passes_the_durable_offset() {
        let mut o = Offsets::recovered(0, 10);
        o.append(20);
        o.advance_start(15);
    }

    #[test]
    #[should_panic(expected = "truncated below the log start")]
    fn truncation_never_goes_below_the_log_start() {
        let mut o = Offsets::recovered(5, 10);
        o.truncate(4);
    }
}
