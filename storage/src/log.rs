//! `PartitionLog`: one partition's log. Shard-local (`!Send`): lives on the shard that
//! owns the partition, from open to close/delete. Every method takes `&self`; state sits
//! in a `RefCell` whose borrows are never held across `.await`, so many tasks append
//! concurrently and share one fdatasync (group commit through the writer task).

use crate::batch::{self, BatchHeader, HEADER_SIZE, PATCHED_PREFIX};
use crate::cache::{CachedBatch, TailCache};
use crate::error::{Failure, StorageError};
use crate::event::Event;
use crate::recovery::{self, remove_files, write_start_checkpoint};
use crate::segment::{
    align_down, index_path, log_path, time_index_path, walk_headers, SegFile, Segment,
};
use crate::writer::{self, Head, WriteOp, QUEUED_BYTES_MAX};
use crate::{FlushPolicy, LogConfig};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Hard cap on a segment's size: index positions are u32 (Kafka caps segment.bytes at
/// i32::MAX too).
pub(crate) const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;

/// DMA read size for data older than the tail cache (sequential consumers hit the rest).
const READ_AHEAD_BYTES: usize = 1 << 20;

/// Offsets assigned to an appended batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
}

/// Whole batches as stored, ready to send in order.
#[derive(Clone, Debug, Default)]
pub struct ReadResult {
    pub chunks: Vec<Bytes>,
    pub bytes: usize,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

pub(crate) fn segment_paths(dir: &Path, base: i64) -> [PathBuf; 3] {
    [
        log_path(dir, base),
        index_path(dir, base),
        time_index_path(dir, base),
    ]
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct ReadAhead {
    file: Rc<SegFile>,
    pos: u64,
    data: Bytes,
}

pub(crate) struct State {
    pub config: LogConfig,
    /// Oldest first; the back one is active.
    pub segments: VecDeque<Segment>,
    pub head: Head,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub durable_offset: i64,
    /// Highest offset a flush was asked for.
    pub flush_target: i64,
    /// Highest offset covered by an fdatasync already issued (maybe not completed).
    pub sync_issued_offset: i64,
    pub unflushed_bytes: u64,
    pub queue: VecDeque<WriteOp>,
    pub queued_bytes: usize,
    /// Batches with offsets assigned but not yet copied into the active segment
    /// (a roll or truncation was in progress); placed in order by the writer.
    staged: VecDeque<Staged>,
    staged_bytes: usize,
    /// The writer is creating a new active segment.
    pub rolling: bool,
    /// Housekeeping asked the writer for a roll by age.
    pub roll_requested: bool,
    pub rolls: u64,
    cache: TailCache,
    read_ahead: Option<ReadAhead>,
    /// A truncation owns the log: batches are staged, not placed.
    pub maintenance: bool,
    pub closed: bool,
    writer_running: bool,
    pub failed: Option<Failure>,
}

impl State {
    pub fn preallocate_step(&self) -> u64 {
        self.config
            .preallocate_bytes
            .min(self.config.segment_bytes)
            .max(crate::segment::ALIGN)
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        if let Some(f) = &self.failed {
            return Err(f.to_error());
        }
        if self.closed {
            return Err(StorageError::Closed);
        }
        Ok(())
    }

    fn active(&self) -> &Segment {
        self.segments
            .back()
            .expect("a log always has an active segment")
    }

    fn out_of_range(&self, offset: i64) -> StorageError {
        StorageError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
        }
    }

    /// Index of the segment holding `offset` (the last one with base <= offset).
    fn segment_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    pub fn staged_is_empty(&self) -> bool {
        self.staged.is_empty()
    }

    /// Offset after the last batch placed in a segment (<= log_end_offset).
    pub fn placed_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    fn needs_roll(&self, h: &BatchHeader) -> bool {
        let a = self.active();
        a.size > 0
            && (a.size + h.size as u64 > self.config.segment_bytes.min(SEGMENT_BYTES_MAX)
                || h.last_offset() - a.base_offset > i64::from(i32::MAX))
    }

    /// Places staged batches in order while no roll is needed. Returns true when the
    /// next staged batch needs a new segment first.
    pub fn place_staged(&mut self) -> bool {
        while let Some(b) = self.staged.front() {
            if self.needs_roll(&b.header) {
                return true;
            }
            let b = self.staged.pop_front().expect("front exists");
            self.staged_bytes -= b.header.size;
            self.place(&b.prefix, &b.body, &b.header);
        }
        false
    }

    /// Copies one batch (patched prefix + the rest) into the head buffer and records it
    /// in the active segment.
    fn place(&mut self, prefix: &[u8], body: &[u8], stored: &BatchHeader) {
        let State {
            head,
            queue,
            segments,
            ..
        } = self;
        let mut queued = head.push(prefix, queue);
        queued += head.push(body, queue);
        self.queued_bytes += queued;
        let seg = segments.back_mut().expect("active segment");
        debug_assert_eq!(seg.next_offset, stored.base_offset);
        seg.index.on_batch(seg.size, stored);
        seg.size += stored.size as u64;
        seg.next_offset = stored.next_offset();
        self.unflushed_bytes += stored.size as u64;
        if let FlushPolicy::Interval { bytes, .. } = self.config.flush {
            if self.unflushed_bytes >= bytes.max(1) {
                self.flush_target = self.flush_target.max(seg.next_offset);
            }
        }
    }

    /// Drops staged and cached batches from `end_offset` on (a truncation).
    fn drop_unplaced_from(&mut self, end_offset: i64) {
        while self
            .staged
            .back()
            .is_some_and(|b| b.header.base_offset >= end_offset)
        {
            let b = self.staged.pop_back().expect("back exists");
            self.staged_bytes -= b.header.size;
        }
        self.cache.truncate(end_offset);
    }
}

/// A batch waiting to be placed in a segment.
struct Staged {
    prefix: [u8; PATCHED_PREFIX],
    body: Bytes,
    header: BatchHeader,
}

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub state: RefCell<State>,
    /// Wakes the writer.
    pub work: Event,
    /// Flush completion, failures.
    durable: Event,
    /// Appends, truncation, close: `wait_for_append`.
    appended: Event,
    /// Queue space and end of maintenance: waiting appenders.
    pub space: Event,
    writer_done: Event,
    /// fdatasync calls issued by the writer (for benchmarks and tests).
    pub syncs: std::cell::Cell<u64>,
}

impl Inner {
    pub fn publish_durable(&self, offset: i64, active_base: i64, active_size: u64) {
        {
            let mut s = self.state.borrow_mut();
            let s = &mut *s;
            if offset > s.durable_offset && offset <= s.log_end_offset {
                s.durable_offset = offset;
            }
            for seg in s.segments.iter_mut() {
                if seg.base_offset < active_base {
                    seg.durable_size = seg.size;
                } else if seg.base_offset == active_base {
                    seg.durable_size = seg.durable_size.max(active_size.min(seg.size));
                }
            }
            let limit = s.config.tail_cache_bytes;
            s.cache.evict(limit, s.durable_offset);
        }
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

/// Releases the log's maintenance ownership when dropped.
struct Maintenance<'a>(&'a Inner);

impl Drop for Maintenance<'_> {
    fn drop(&mut self) {
        self.0.state.borrow_mut().maintenance = false;
        self.0.space.notify();
        // Batches staged during maintenance are placed by the writer.
        self.0.work.notify();
    }
}

/// One partition's log. Shard-local (`!Send`): lives on the shard that owns the
/// partition, for as long as the partition.
pub struct PartitionLog {
    inner: Rc<Inner>,
}

impl PartitionLog {
    /// Opens or creates the partition directory and recovers it (CRC-checked scan,
    /// torn tail trimmed). Starts the log's writer task on the current shard.
    pub async fn open(
        dir: impl AsRef<Path>,
        config: LogConfig,
    ) -> Result<Rc<PartitionLog>, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        let now = now_ms();
        let recovered = recovery::recover(&dir, config.index_interval_bytes, now).await?;
        let mut segments = recovered.segments;
        if segments.is_empty() {
            let base = recovered.log_start_offset;
            segments.push_back(create_segment(&dir, base, &config, now).await?);
        }
        let active = segments.back().expect("just ensured");
        let tail_pos = align_down(active.size);
        let tail_block = if active.size > tail_pos {
            active
                .file
                .read(tail_pos, (active.size - tail_pos) as usize)
                .await?
        } else {
            Bytes::new()
        };
        let head = Head::new(active.file.clone(), active.size, &tail_block);
        let log_end_offset = active.next_offset;
        let state = State {
            segments,
            head,
            log_start_offset: recovered.log_start_offset,
            log_end_offset,
            durable_offset: log_end_offset,
            flush_target: log_end_offset,
            sync_issued_offset: log_end_offset,
            unflushed_bytes: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
            staged: VecDeque::new(),
            staged_bytes: 0,
            rolling: false,
            roll_requested: false,
            rolls: 0,
            cache: TailCache::default(),
            read_ahead: None,
            maintenance: false,
            closed: false,
            writer_running: true,
            failed: None,
            config,
        };
        let inner = Rc::new(Inner {
            dir,
            state: RefCell::new(state),
            work: Event::default(),
            durable: Event::default(),
            appended: Event::default(),
            space: Event::default(),
            writer_done: Event::default(),
            syncs: std::cell::Cell::new(0),
        });
        glommio::spawn_local(writer::run(inner.clone())).detach();
        Ok(Rc::new(PartitionLog { inner }))
    }

    async fn maintenance(&self) -> Result<Maintenance<'_>, StorageError> {
        loop {
            let listener = self.inner.space.listen();
            {
                let mut s = self.inner.state.borrow_mut();
                s.check_usable()?;
                if !s.maintenance && !s.rolling {
                    s.maintenance = true;
                    return Ok(Maintenance(&self.inner));
                }
            }
            listener.await;
        }
    }

    /// Appends one RecordBatch v2 and writes the assigned base offset into the stored
    /// header. The offset is assigned synchronously on the first poll (before any await),
    /// so appends are ordered by first poll. Returns once the batch is readable, not
    /// necessarily durable.
    pub async fn append(&self, batch: Bytes) -> Result<AppendInfo, StorageError> {
        let header = batch::validate_for_append(&batch)
            .map_err(|reason| StorageError::InvalidBatch { reason })?;
        let (info, wake_writer) = {
            let mut s = self.inner.state.borrow_mut();
            s.check_usable()?;
            // Under an interval policy an idle writer waits without a timer: the first
            // data since its last flush must start the clock.
            let start_interval =
                matches!(s.config.flush, FlushPolicy::Interval { .. }) && s.unflushed_bytes == 0;
            let info = append_now(&mut s, batch, header);
            let wake = start_interval
                || !s.queue.is_empty()
                || !s.staged.is_empty()
                || s.flush_target > s.durable_offset;
            (info, wake)
        };
        if wake_writer {
            self.inner.work.notify();
        }
        self.inner.appended.notify();
        // Backpressure after the offset is assigned, so it cannot reorder appends.
        loop {
            let listener = self.inner.space.listen();
            {
                let s = self.inner.state.borrow();
                if s.queued_bytes + s.staged_bytes < QUEUED_BYTES_MAX || s.failed.is_some() {
                    return Ok(info);
                }
            }
            listener.await;
        }
    }

    /// Makes everything appended before the call durable; concurrent callers share one
    /// fdatasync. Returns the durable log end offset (exclusive).
    pub async fn flush(&self) -> Result<i64, StorageError> {
        let target = {
            let s = self.inner.state.borrow();
            s.check_usable()?;
            s.log_end_offset
        };
        self.flush_until(target).await
    }

    async fn flush_until(&self, target: i64) -> Result<i64, StorageError> {
        {
            let mut s = self.inner.state.borrow_mut();
            if s.durable_offset >= target {
                return Ok(s.durable_offset);
            }
            s.flush_target = s.flush_target.max(target);
        }
        self.inner.work.notify();
        loop {
            let listener = self.inner.durable.listen();
            {
                let s = self.inner.state.borrow();
                if let Some(f) = &s.failed {
                    return Err(f.to_error());
                }
                if s.durable_offset >= target.min(s.log_end_offset) {
                    return Ok(s.durable_offset);
                }
                if !s.writer_running {
                    return Err(StorageError::Closed);
                }
            }
            listener.await;
        }
    }

    /// `append`, then under `FlushPolicy::EveryBatch` wait until it is durable (acks=all).
    pub async fn append_durable(&self, batch: Bytes) -> Result<AppendInfo, StorageError> {
        let info = self.append(batch).await?;
        let every_batch = self.inner.state.borrow().config.flush == FlushPolicy::EveryBatch;
        if every_batch {
            self.flush().await?;
        }
        Ok(info)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.state.borrow().log_start_offset
    }

    /// The next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.inner.state.borrow().log_end_offset
    }

    /// fdatasync calls issued so far by this log's writer (group-commit statistics).
    pub fn fdatasync_count(&self) -> u64 {
        self.inner.syncs.get()
    }

    /// Offsets below this are durable.
    pub fn durable_offset(&self) -> i64 {
        self.inner.state.borrow().durable_offset
    }

    /// Whole batches from the one containing `from_offset`, up to `max_bytes` (at least
    /// one batch). Empty at the log end; OffsetOutOfRange below the start or past the end.
    pub async fn read(
        &self,
        from_offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, StorageError> {
        let (file, mut pos, limit, mut result) = {
            let s = self.inner.state.borrow();
            s.check_usable()?;
            if from_offset < s.log_start_offset || from_offset > s.log_end_offset {
                return Err(s.out_of_range(from_offset));
            }
            let mut result = ReadResult {
                log_start_offset: s.log_start_offset,
                log_end_offset: s.log_end_offset,
                ..ReadResult::default()
            };
            if from_offset == s.log_end_offset {
                return Ok(result);
            }
            if s.cache
                .first_offset()
                .is_some_and(|first| first <= from_offset)
            {
                result.bytes = s.cache.read(from_offset, max_bytes, &mut result.chunks);
                return Ok(result);
            }
            let seg = &s.segments[s.segment_for(from_offset)];
            (
                seg.file.clone(),
                seg.index.floor_position(from_offset),
                seg.durable_size,
                result,
            )
        };
        while pos < limit {
            let head = self.disk_bytes(&file, pos, HEADER_SIZE, limit).await?;
            let h = batch::parse_header(&head).map_err(|e| StorageError::CorruptSegment {
                path: file.path.clone(),
                position: pos,
                reason: format!("{e:?}"),
            })?;
            if pos + h.size as u64 > limit {
                return Err(StorageError::CorruptSegment {
                    path: file.path.clone(),
                    position: pos,
                    reason: "batch runs past the segment end".into(),
                });
            }
            if h.next_offset() <= from_offset {
                pos += h.size as u64;
                continue;
            }
            if result.bytes > 0 && result.bytes + h.size > max_bytes {
                break;
            }
            let data = if head.len() >= h.size {
                head
            } else {
                self.disk_bytes(&file, pos, h.size, limit).await?
            };
            // Sealed segments are not rescanned on open: check each batch served from disk.
            if let Err(e) = batch::parse_checked(&data[..h.size]) {
                return Err(StorageError::CorruptSegment {
                    path: file.path.clone(),
                    position: pos,
                    reason: format!("{e:?}"),
                });
            }
            result.chunks.push(data.slice(..h.size));
            result.bytes += h.size;
            pos += h.size as u64;
            if result.bytes >= max_bytes {
                break;
            }
        }
        Ok(result)
    }

    /// Bytes of `file` from `pos`, at least `min_len` long (the caller checked `limit`),
    /// served from the read-ahead buffer when it covers them.
    async fn disk_bytes(
        &self,
        file: &Rc<SegFile>,
        pos: u64,
        min_len: usize,
        limit: u64,
    ) -> Result<Bytes, StorageError> {
        let min_len = min_len.min((limit - pos) as usize);
        {
            let s = self.inner.state.borrow();
            if let Some(ra) = &s.read_ahead {
                if Rc::ptr_eq(&ra.file, file)
                    && ra.pos <= pos
                    && pos + min_len as u64 <= ra.pos + ra.data.len() as u64
                {
                    return Ok(ra.data.slice((pos - ra.pos) as usize..));
                }
            }
        }
        let len = min_len.max(READ_AHEAD_BYTES).min((limit - pos) as usize);
        let data = file.read(pos, len).await?;
        if data.len() < min_len {
            return Err(StorageError::CorruptSegment {
                path: file.path.clone(),
                position: pos + data.len() as u64,
                reason: "file shorter than its logical size".into(),
            });
        }
        self.inner.state.borrow_mut().read_ahead = Some(ReadAhead {
            file: file.clone(),
            pos,
            data: data.clone(),
        });
        Ok(data)
    }

    /// Resolves when `log_end_offset > offset`, or the log is closed or failed.
    pub async fn wait_for_append(&self, offset: i64) {
        loop {
            let listener = self.inner.appended.listen();
            {
                let s = self.inner.state.borrow();
                if s.log_end_offset > offset || s.closed || s.failed.is_some() {
                    return;
                }
            }
            listener.await;
        }
    }

    /// Kafka's truncateTo: removes the batch containing `offset` and everything after;
    /// the new log end is that batch's base offset. At or below the log start the log is
    /// emptied and restarts at `offset`.
    pub async fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let guard = self.maintenance().await?;
        let placed_end = self.inner.state.borrow().placed_end_offset();
        self.flush_until(placed_end).await?;
        let (full, idx, kept_base, file, floor, size) = {
            let mut s = self.inner.state.borrow_mut();
            if offset >= s.log_end_offset {
                return Ok(());
            }
            let staged_cut = s
                .staged
                .iter()
                .find(|b| b.header.next_offset() > offset)
                .map(|b| b.header.base_offset)
                .filter(|_| offset >= s.placed_end_offset());
            // At or below the log start (or cutting a batch that starts below it).
            let full = offset <= s.log_start_offset
                || staged_cut.is_some_and(|cut| cut < s.log_start_offset);
            if let Some(cut) = staged_cut.filter(|_| !full) {
                // Only staged batches go: nothing on disk changes.
                s.drop_unplaced_from(cut);
                s.log_end_offset = cut;
                s.flush_target = s.flush_target.min(cut);
                s.sync_issued_offset = s.sync_issued_offset.min(cut);
                drop(s);
                self.inner.durable.notify();
                return Ok(());
            }
            let idx = s.segment_for(offset);
            let seg = &s.segments[idx];
            (
                full,
                idx,
                seg.base_offset,
                seg.file.clone(),
                seg.index.floor_position(offset),
                seg.size,
            )
        };
        if full {
            return self.reset_to(offset, &guard).await;
        }
        // Find the batch that contains `offset`.
        let mut cut = None;
        walk_headers(&file, floor, size, |pos, h| {
            if h.next_offset() > offset {
                cut = Some((pos, h.base_offset));
                false
            } else {
                true
            }
        })
        .await?;
        let Some((cut_pos, new_end)) = cut else {
            return Err(StorageError::CorruptSegment {
                path: file.path.clone(),
                position: size,
                reason: format!("offset {offset} not found in its segment"),
            });
        };
        if new_end < self.log_start_offset() {
            // The containing batch starts below the log start: nothing valid is left.
            return self.reset_to(offset, &guard).await;
        }
        let removed: Vec<i64> = {
            let mut s = self.inner.state.borrow_mut();
            let s = &mut *s;
            debug_assert!(s.queue.is_empty());
            let removed = s
                .segments
                .drain(idx + 1..)
                .map(|seg| seg.retire())
                .collect();
            let seg = s.segments.back_mut().expect("segment idx kept");
            seg.size = cut_pos;
            seg.durable_size = cut_pos;
            seg.next_offset = new_end;
            s.durable_offset = s.durable_offset.min(new_end);
            s.read_ahead = None;
            removed
        };
        // The kept segment is active again: its index files (if sealed) are stale.
        let mut paths: Vec<PathBuf> = removed
            .iter()
            .flat_map(|b| segment_paths(&self.inner.dir, *b))
            .collect();
        paths.extend(
            segment_paths(&self.inner.dir, kept_base)
                .into_iter()
                .skip(1),
        );
        remove_files(&self.inner.dir, paths).await?;
        file.truncate(cut_pos).await?;
        file.sync().await?;
        // Rebuild the index past the last entry still valid.
        let rescan_from = {
            let mut s = self.inner.state.borrow_mut();
            s.segments.back_mut().expect("kept").index.truncate(new_end)
        };
        let mut rescanned = Vec::new();
        walk_headers(&file, rescan_from, cut_pos, |pos, h| {
            rescanned.push((pos, *h));
            true
        })
        .await?;
        let tail_pos = align_down(cut_pos);
        let tail_block = file.read(tail_pos, (cut_pos - tail_pos) as usize).await?;
        {
            let mut s = self.inner.state.borrow_mut();
            let seg = s.segments.back_mut().expect("kept");
            for (pos, h) in &rescanned {
                seg.index.on_batch(*pos, h);
            }
            s.head = Head::new(file.clone(), cut_pos, &tail_block);
            // Batches appended meanwhile were staged with offsets past the cut: gone too.
            s.drop_unplaced_from(new_end);
            s.log_end_offset = new_end;
            s.flush_target = s.flush_target.min(new_end);
            s.sync_issued_offset = s.sync_issued_offset.min(new_end);
        }
        self.inner.appended.notify();
        self.inner.durable.notify();
        drop(guard);
        Ok(())
    }

    /// Drops every segment and restarts the log empty at `offset`.
    async fn reset_to(&self, offset: i64, _guard: &Maintenance<'_>) -> Result<(), StorageError> {
        let config = self.inner.state.borrow().config.clone();
        let old: Vec<i64> = self
            .inner
            .state
            .borrow()
            .segments
            .iter()
            .map(|s| s.retire())
            .collect();
        let paths = old
            .iter()
            .flat_map(|b| segment_paths(&self.inner.dir, *b))
            .collect();
        remove_files(&self.inner.dir, paths).await?;
        write_start_checkpoint(&self.inner.dir, offset).await?;
        let seg = create_segment(&self.inner.dir, offset, &config, now_ms()).await?;
        let mut s = self.inner.state.borrow_mut();
        s.head = Head::new(seg.file.clone(), 0, &[]);
        s.segments.clear();
        s.segments.push_back(seg);
        s.log_start_offset = offset;
        s.log_end_offset = offset;
        s.durable_offset = offset;
        s.flush_target = offset;
        s.sync_issued_offset = offset;
        s.staged.clear();
        s.staged_bytes = 0;
        s.cache.clear();
        s.read_ahead = None;
        drop(s);
        self.inner.appended.notify();
        self.inner.durable.notify();
        Ok(())
    }

    /// Moves the log start offset up to `offset` (DeleteRecords) and deletes segments
    /// wholly below it. Returns the new log start offset.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, StorageError> {
        {
            let s = self.inner.state.borrow();
            s.check_usable()?;
            if offset > s.log_end_offset || offset < 0 {
                return Err(s.out_of_range(offset));
            }
            if offset <= s.log_start_offset {
                return Ok(s.log_start_offset);
            }
        }
        write_start_checkpoint(&self.inner.dir, offset).await?;
        let victims = {
            let mut s = self.inner.state.borrow_mut();
            s.log_start_offset = s.log_start_offset.max(offset);
            s.segments
                .iter()
                .take(s.segments.len() - 1)
                .take_while(|seg| seg.next_offset <= offset)
                .count()
        };
        self.delete_oldest_segments(victims).await?;
        Ok(self.log_start_offset())
    }

    /// Removes the `count` oldest segments (never the active one).
    async fn delete_oldest_segments(&self, count: usize) -> Result<(), StorageError> {
        if count == 0 {
            return Ok(());
        }
        let bases: Vec<i64> = {
            let mut s = self.inner.state.borrow_mut();
            let s = &mut *s;
            let count = count.min(s.segments.len() - 1);
            let bases: Vec<i64> = s.segments.drain(..count).map(|seg| seg.retire()).collect();
            let first = s.segments.front().expect("active kept").base_offset;
            s.log_start_offset = s.log_start_offset.max(first);
            s.read_ahead = None;
            bases
        };
        let paths = bases
            .iter()
            .flat_map(|b| segment_paths(&self.inner.dir, *b))
            .collect();
        remove_files(&self.inner.dir, paths).await
    }

    /// The first batch whose max timestamp is >= `timestamp_ms`: (its base offset, its
    /// max timestamp). Batch granularity.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let mut seg_idx = 0;
        loop {
            let (file, pos, durable_size, start) = {
                let s = self.inner.state.borrow();
                s.check_usable()?;
                let start = s.log_start_offset;
                let candidate = s
                    .segments
                    .iter()
                    .enumerate()
                    .skip(seg_idx)
                    .find(|(_, seg)| {
                        seg.next_offset > start
                            && seg
                                .index
                                .max_timestamp()
                                .is_some_and(|(ts, _)| ts >= timestamp_ms)
                    });
                let Some((i, seg)) = candidate else {
                    // Perhaps among staged batches, which only the tail cache holds yet.
                    return Ok(s.cache.find_timestamp(timestamp_ms, start));
                };
                if seg.durable_size < seg.size && seg.durable_size == 0 {
                    return Ok(s.cache.find_timestamp(timestamp_ms, start));
                }
                seg_idx = i + 1;
                (
                    seg.file.clone(),
                    seg.index.timestamp_scan_position(timestamp_ms),
                    seg.durable_size,
                    start,
                )
            };
            let mut found = None;
            walk_headers(&file, pos, durable_size, |_, h| {
                if h.max_timestamp >= timestamp_ms && h.next_offset() > start {
                    found = Some((h.base_offset.max(start), h.max_timestamp));
                    false
                } else {
                    true
                }
            })
            .await?;
            if found.is_some() {
                return Ok(found);
            }
            let s = self.inner.state.borrow();
            let seg = s.segments.get(seg_idx - 1);
            if seg.is_none_or(|seg| seg.durable_size < seg.size) {
                // The rest of this segment (and all later ones) is not durable yet: cached.
                return Ok(s.cache.find_timestamp(timestamp_ms, start));
            }
        }
    }

    /// The largest batch max timestamp and the last offset of its batch (ListOffsets -3).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let s = self.inner.state.borrow();
        let mut best: Option<(i64, i64)> = None;
        for seg in &s.segments {
            if let Some((ts, off)) = seg.index.max_timestamp() {
                if off >= s.log_start_offset && best.is_none_or(|(b, _)| ts > b) {
                    best = Some((ts, off));
                }
            }
        }
        for b in &s.staged {
            if best.is_none_or(|(ts, _)| b.header.max_timestamp > ts) {
                best = Some((b.header.max_timestamp, b.header.last_offset()));
            }
        }
        best
    }

    /// Rolls by age (segment.ms) and deletes whole segments past retention.ms /
    /// retention.bytes. Called periodically by the owner shard.
    pub async fn housekeeping(&self, now_ms: i64) -> Result<(), StorageError> {
        let roll = {
            let mut s = self.inner.state.borrow_mut();
            s.check_usable()?;
            let roll = crate::retention::should_roll_active(
                &s.config,
                &crate::retention::stats(&s.segments),
                now_ms,
            );
            if roll {
                s.roll_requested = true;
            }
            roll.then_some(s.rolls)
        };
        if let Some(rolls) = roll {
            // The writer rolls (it owns segment creation); wait until it has.
            self.inner.work.notify();
            loop {
                let listener = self.inner.space.listen();
                {
                    let s = self.inner.state.borrow();
                    s.check_usable()?;
                    if s.rolls != rolls {
                        break;
                    }
                }
                listener.await;
            }
        }
        let victims = {
            let s = self.inner.state.borrow();
            crate::retention::segments_to_delete(
                &s.config,
                &crate::retention::stats(&s.segments),
                now_ms,
            )
        };
        self.delete_oldest_segments(victims).await
    }

    /// Replaces the config; takes effect for following appends and housekeeping.
    pub fn set_config(&self, config: LogConfig) {
        self.inner.state.borrow_mut().config = config;
        self.inner.work.notify();
    }

    /// Flushes everything appended, stops the writer, trims the active segment to its
    /// logical size and writes its indexes. Later calls return `Closed`.
    pub async fn close(&self) -> Result<(), StorageError> {
        {
            let mut s = self.inner.state.borrow_mut();
            if s.closed {
                return Ok(());
            }
            s.closed = true;
            s.flush_target = s.flush_target.max(s.log_end_offset);
        }
        // The writer places what is staged, flushes, then exits.
        self.inner.work.notify();
        loop {
            let listener = self.inner.writer_done.listen();
            if !self.inner.state.borrow().writer_running {
                break;
            }
            listener.await;
        }
        self.inner.appended.notify();
        self.inner.durable.notify();
        self.inner.space.notify();
        let (file, size, indexes) = {
            let s = self.inner.state.borrow();
            if let Some(f) = &s.failed {
                return Err(f.to_error());
            }
            let a = s.active();
            let indexes = (a.index.encode_offset_index(), a.index.encode_time_index());
            (a.file.clone(), a.size, indexes)
        };
        file.truncate(size).await?;
        file.sync().await?;
        recovery::write_indexes(&file.path, indexes).await?;
        Ok(())
    }

    /// Closes the log and deletes its directory (DeleteTopics).
    pub async fn delete(&self) -> Result<(), StorageError> {
        let _ = self.close().await;
        let dir = self.inner.dir.clone();
        {
            let mut s = self.inner.state.borrow_mut();
            s.closed = true;
            s.segments.clear();
            s.read_ahead = None;
            s.cache.clear();
        }
        recovery::blocking("remove dir", dir, |d| match std::fs::remove_dir_all(d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
    }
}

/// Assigns the batch its offsets, makes it readable (tail cache) and places it in the
/// active segment, or stages it when a roll or truncation is in the way (or batches are
/// already staged: placement stays in offset order).
fn append_now(s: &mut State, batch: Bytes, header: BatchHeader) -> AppendInfo {
    let base_offset = s.log_end_offset;
    let prefix = batch::patched_prefix(&batch, base_offset);
    let stored = BatchHeader {
        base_offset,
        ..header
    };
    let body = batch.slice(PATCHED_PREFIX..);
    s.log_end_offset = stored.next_offset();
    s.cache.push(CachedBatch {
        base_offset,
        next_offset: stored.next_offset(),
        max_timestamp: stored.max_timestamp,
        prefix: Bytes::copy_from_slice(&prefix),
        body: body.clone(),
    });
    let limit = s.config.tail_cache_bytes;
    s.cache.evict(limit, s.durable_offset);
    if s.staged.is_empty() && !s.maintenance && !s.rolling && !s.needs_roll(&stored) {
        s.place(&prefix, &body, &stored);
    } else {
        s.staged_bytes += stored.size;
        s.staged.push_back(Staged {
            prefix,
            body,
            header: stored,
        });
    }
    AppendInfo {
        base_offset,
        last_offset: stored.last_offset(),
    }
}

/// Creates (or reuses, emptied) the segment file for `base`, pre-allocates it and makes
/// its directory entry durable before anything in it can be acknowledged.
pub(crate) async fn create_segment(
    dir: &Path,
    base: i64,
    config: &LogConfig,
    now_ms: i64,
) -> Result<Segment, StorageError> {
    let file = SegFile::open(log_path(dir, base)).await?;
    if file.allocated.get() > 0 {
        file.truncate(0).await?;
    }
    let step = config
        .preallocate_bytes
        .min(config.segment_bytes)
        .max(crate::segment::ALIGN);
    // Starts writing the first step of zeros in the background.
    file.reserve(0, step).await?;
    // Index files left by an earlier segment of the same base would be stale; removing
    // them also syncs the directory, making the new file's entry durable.
    remove_files(dir, vec![index_path(dir, base), time_index_path(dir, base)]).await?;
    Ok(Segment {
        base_offset: base,
        next_offset: base,
        size: 0,
        durable_size: 0,
        file,
        index: crate::index::SegmentIndex::new(base, config.index_interval_bytes),
        created_ms: now_ms,
    })
}
