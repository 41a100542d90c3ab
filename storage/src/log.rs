//! `PartitionLog`: one partition's log. Shard-local (`!Send`): lives on the shard that
//! owns the partition, from open to close/delete. Every method takes `&self`; state sits
//! in a `RefCell` whose borrows are never held across `.await`, so many tasks append
//! concurrently and share one fdatasync (group commit through the writer task).
//! Reads are in `read.rs`, truncation in `truncate.rs`.

use crate::batch::{self, BatchHeader, PATCHED_PREFIX};
use crate::cache::{CachedBatch, ReceiveBuffer};
use crate::clock::now_ms;
use crate::commit_log::{CommitLog, PartitionId, ReplayedRecord};
use crate::error::StorageError;
use crate::recovery::{self, remove_files, write_start_checkpoint};
use crate::retention::RetentionBy;
use crate::segment::{align_down, create_segment, segment_paths, Segment};
use crate::spare;
use crate::state::{LogState, Offsets, Shared, Staged};
use crate::writer::{self, Head, WriteQueue, QUEUED_BYTES_MAX};
use crate::LogConfig;
use bytes::Bytes;
use std::path::Path;
use std::rc::Rc;

/// Offsets assigned to an appended batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
}

/// The log's maintenance ownership (a truncation): released when dropped.
pub(crate) struct Maintenance<'a>(&'a Shared);

impl Maintenance<'_> {
    /// Ends a maintenance operation that completed: the log's parts agree again.
    pub fn finish(self) {
        let mut s = self.0.state.borrow_mut();
        s.maintenance = false;
        s.assert_invariants();
    }
}

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
    pub(crate) shared: Rc<Shared>,
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
            segments.push_back(create_segment(&dir, base, &config, now, false).await?.0);
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
        let offsets = Offsets::recovered(recovered.log_start_offset, active.next_offset);
        let mut state = LogState::new(config, segments, offsets, WriteQueue::new(head));
        state.spare = recovered.spare.then(spare::Spare::found_at_open);
        let shared = Rc::new(Shared::new(dir, state));
        glommio::spawn_local(writer::run(shared.clone())).detach();
        Ok(Rc::new(PartitionLog { shared }))
    }

    pub(crate) async fn maintenance(&self) -> Result<Maintenance<'_>, StorageError> {
        loop {
            let listener = self.shared.space.listen();
            {
                let mut s = self.shared.state.borrow_mut();
                s.check_usable()?;
                if !s.maintenance && !s.rolling {
                    s.maintenance = true;
                    return Ok(Maintenance(&self.shared));
                }
            }
            listener.await;
        }
    }

    /// Appends one RecordBatch v2 and writes the assigned base offset into the stored
    /// header. The offset is assigned synchronously on the first poll (before any await),
    /// so appends are ordered by first poll. Returns once the batch is readable, not
    /// necessarily durable: `flush` makes it so.
    pub async fn append(&self, batch: Bytes) -> Result<AppendInfo, StorageError> {
        self.append_received(batch, None).await
    }

    /// `append` of a batch that is a slice of `buffer` (a connection's receive buffer): the
    /// tail cache keeps the slice, and charges the shard's cap for the whole buffer once.
    pub async fn append_received(
        &self,
        batch: Bytes,
        buffer: Option<ReceiveBuffer>,
    ) -> Result<AppendInfo, StorageError> {
        let header = batch::validate_for_append(&batch)
            .map_err(|reason| StorageError::InvalidBatch { reason })?;
        let (info, wake_writer) = {
            let mut s = self.shared.state.borrow_mut();
            s.check_usable()?;
            let info = append_now(&mut s, batch, buffer, header);
            let wake = !s.write.is_empty()
                || !s.staged.is_empty()
                || s.offsets.flush_target() > s.offsets.durable();
            (info, wake)
        };
        if wake_writer {
            self.shared.work.notify();
        }
        crate::cache::shard_cache().record(&self.shared, info.last_offset + 1);
        self.shared.appended.notify();
        // Backpressure after the offset is assigned, so it cannot reorder appends.
        loop {
            let listener = self.shared.space.listen();
            {
                let s = self.shared.state.borrow();
                if s.backlog_bytes() < QUEUED_BYTES_MAX || s.failed.is_some() {
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
            let s = self.shared.state.borrow();
            s.check_usable()?;
            s.offsets.log_end()
        };
        self.flush_until(target).await
    }

    pub(crate) async fn flush_until(&self, target: i64) -> Result<i64, StorageError> {
        {
            let mut s = self.shared.state.borrow_mut();
            if s.offsets.durable() >= target {
                return Ok(s.offsets.durable());
            }
            s.offsets.request_flush(target);
        }
        self.shared.work.notify();
        loop {
            let listener = self.shared.durable.listen();
            {
                let s = self.shared.state.borrow();
                if let Some(f) = &s.failed {
                    return Err(f.to_error());
                }
                if s.offsets.durable() >= target.min(s.offsets.log_end()) {
                    return Ok(s.offsets.durable());
                }
                if !s.writer_running {
                    return Err(StorageError::Closed);
                }
            }
            listener.await;
        }
    }

    pub fn log_start_offset(&self) -> i64 {
        self.shared.state.borrow().offsets.log_start()
    }

    /// The next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.shared.state.borrow().offsets.log_end()
    }

    /// The device of the active segment, when its writes may share the shard's cache flushes
    /// (ext4, XFS); None when each flush is an fdatasync of the log's own file.
    pub fn segment_device(&self) -> Option<u64> {
        self.shared.state.borrow().active().file.device()
    }

    /// fdatasync calls of this log's own files issued so far by its writer (group-commit
    /// statistics). Syncs that shared a device cache flush are `device_flush_shares`.
    pub fn fdatasync_count(&self) -> u64 {
        self.shared.syncs.get()
    }

    /// Syncs of this log that took a share of the shard's next device cache flush instead of an
    /// fdatasync of its own. Logs share flushes, so these add up to more than the flushes made:
    /// `shard_device_flushes` counts those.
    pub fn device_flush_shares(&self) -> u64 {
        self.shared.flush_shares.get()
    }

    /// New segments that reused a segment retention had deleted, rather than new blocks with
    /// zeros written ahead of the data (`spare`).
    pub fn recycled_segments(&self) -> u64 {
        self.shared.recycled.get()
    }

    /// Bytes of batches in the log's segments (pre-allocated space not counted).
    pub fn size_bytes(&self) -> u64 {
        self.shared
            .state
            .borrow()
            .segments
            .iter()
            .map(|s| s.size)
            .sum()
    }

    /// Bytes appended and not yet durable in the segments (durable, maybe, through the
    /// shard's commit log): what a checkpoint (`flush`) would make durable.
    pub fn bytes_not_durable_in_segments(&self) -> u64 {
        let s = self.shared.state.borrow();
        let placed: u64 = s
            .segments
            .iter()
            .map(|seg| seg.size.saturating_sub(seg.durable_size))
            .sum();
        placed + s.staged.bytes() as u64
    }

    /// Bytes of batches held in the tail cache.
    pub fn tail_cache_bytes(&self) -> usize {
        self.shared.state.borrow().cache.size_bytes()
    }

    /// Sends this log's fdatasync and read events to `observer` from now on.
    pub fn set_observer(&self, observer: Rc<dyn crate::LogObserver>) {
        *self.shared.observer.borrow_mut() = Some(observer);
    }

    /// Offsets below this are durable: in the segments, or in the shard's commit log.
    pub fn durable_offset(&self) -> i64 {
        self.shared.state.borrow().offsets.high_watermark()
    }

    /// The write or fdatasync failure that took this log offline, if one did: the log then
    /// refuses every call, and only closing it and opening it again (recovery) brings the
    /// partition back.
    pub fn failure(&self) -> Option<StorageError> {
        self.shared
            .state
            .borrow()
            .failed
            .as_ref()
            .map(|f| f.to_error())
    }

    /// Makes everything appended before the call durable through the shard's commit log,
    /// as `partition`: one fdatasync of the log's round covers every partition in it, and
    /// the segments are written behind without one (`flush` is their checkpoint). Returns
    /// the durable log end offset (exclusive).
    pub async fn commit_to(
        &self,
        log: &CommitLog,
        partition: impl Into<PartitionId>,
    ) -> Result<i64, StorageError> {
        let (from, target, chunks) = {
            let mut s = self.shared.state.borrow_mut();
            s.check_usable()?;
            let target = s.offsets.log_end();
            if s.offsets.high_watermark() >= target {
                return Ok(s.offsets.high_watermark());
            }
            let from = s.offsets.high_watermark().max(s.offsets.commit_issued());
            let mut chunks = Vec::new();
            if from < target {
                // Batches not durable in the segments stay in the tail cache (it evicts only
                // below the segments' durable offset).
                s.cache.read(from, usize::MAX, &mut chunks);
                // Set before any await, so a concurrent call appends only what follows.
                s.offsets.commit_issued_to(target);
            }
            (from, target, chunks)
        };
        if from >= target {
            return self.wait_committed(log, target).await;
        }
        // The cache's chunks go into the round as they are: one copy, into the round.
        let pieces: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
        let appended = log
            .append_chunks(partition.into(), from, target - 1, &pieces)
            .await;
        let committed = match appended {
            Ok(round) => log.commit(round).await,
            Err(e) => Err(e),
        };
        if committed.is_ok() {
            self.shared
                .state
                .borrow_mut()
                .offsets
                .publish_committed(target);
        }
        // Also on failure: a concurrent `wait_committed` then finds the commit log failed.
        self.shared.durable.notify();
        committed?;
        Ok(self.durable_offset())
    }

    /// Waits until an earlier `commit_to` made `target` durable (or the commit log failed).
    async fn wait_committed(&self, log: &CommitLog, target: i64) -> Result<i64, StorageError> {
        loop {
            let listener = self.shared.durable.listen();
            if self.durable_offset() >= target {
                return Ok(self.durable_offset());
            }
            log.check_usable()?;
            listener.await;
        }
    }

    /// Appends the batches of commit-log records of this partition that the segments lack
    /// (base offset at the log end; older ones are already here), then makes the segments
    /// durable: start-up, before the shard's commit log is created again.
    pub async fn apply_replayed(&self, records: &[ReplayedRecord]) -> Result<(), StorageError> {
        for r in records {
            let mut rest = r.batch.clone();
            while !rest.is_empty() {
                let h = batch::parse_header(&rest).map_err(|e| StorageError::CorruptSegment {
                    path: self.shared.dir.join("commit log"),
                    position: 0,
                    reason: format!("replayed batch: {e:?}"),
                })?;
                let one = rest.split_to(h.size.min(rest.len()));
                if h.base_offset == self.log_end_offset() {
                    self.append(one).await?;
                }
            }
        }
        self.flush().await.map(|_| ())
    }

    /// Resolves when `log_end_offset > offset`, or the log is closed or failed.
    pub async fn wait_for_append(&self, offset: i64) {
        loop {
            let listener = self.shared.appended.listen();
            {
                let s = self.shared.state.borrow();
                if s.offsets.log_end() > offset || s.closed || s.failed.is_some() {
                    return;
                }
            }
            listener.await;
        }
    }

    /// Moves the log start offset up to `offset` (DeleteRecords) and deletes segments
    /// wholly below it. Returns the new log start offset. Records are deleted only once
    /// durable: a log start past the durable offset would let a crash bring them back.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, StorageError> {
        {
            let s = self.shared.state.borrow();
            s.check_usable()?;
            if offset > s.offsets.log_end() || offset < 0 {
                return Err(s.out_of_range(offset));
            }
            if offset <= s.offsets.log_start() {
                return Ok(s.offsets.log_start());
            }
        }
        self.flush_until(offset).await?;
        {
            // A truncation may have cut the log while the flush ran.
            let s = self.shared.state.borrow();
            if offset > s.offsets.durable() {
                return Err(s.out_of_range(offset));
            }
        }
        write_start_checkpoint(&self.shared.dir, offset).await?;
        self.shared.state.borrow_mut().offsets.advance_start(offset);
        self.delete_segments_below(offset).await?;
        Ok(self.log_start_offset())
    }

    /// Removes the sealed segments that end at or below `end` (never the active one). Their
    /// records are made durable first: a log start past the durable offset would let a crash
    /// bring them back. An offset rather than a count, so that deletions running side by side
    /// (retention, DeleteRecords) never remove more than each asked for.
    async fn delete_segments_below(&self, end: i64) -> Result<(), StorageError> {
        self.flush_until(end).await?;
        let (victims, spare) = {
            let mut s = self.shared.state.borrow_mut();
            s.check_usable()?;
            // A truncation may have cut the log while the flush ran.
            let end = end.min(s.offsets.durable());
            let count = s
                .segments
                .iter()
                .take(s.segments.len() - 1)
                .take_while(|seg| seg.next_offset <= end)
                .count();
            if count == 0 {
                return Ok(());
            }
            let victims: Vec<Segment> = s.segments.drain(..count).collect();
            let first = s.segments.front().expect("active kept").base_offset;
            s.offsets.advance_start(first);
            s.read_ahead = None;
            s.assert_invariants();
            let spare = match s.spare {
                Some(_) => None,
                None => spare::choose(&victims).map(|i| victims[i].file.clone()),
            };
            if let Some(file) = &spare {
                // Held (a clone) until the rename is done: no roll takes it before.
                s.spare = Some(spare::Spare::retired(file.clone()));
            }
            (victims, spare)
        };
        let dir = &self.shared.dir;
        let bases: Vec<i64> = victims.iter().map(Segment::retire).collect();
        if let Some(file) = spare {
            // Its index files go below, with the directory sync that makes the rename durable.
            if let Err(e) = spare::keep(dir, &file).await {
                tracing::warn!(error = %e, "a retired segment is removed, not kept for reuse");
                self.shared.state.borrow_mut().spare = None;
            }
        }
        let paths = bases.iter().flat_map(|b| segment_paths(dir, *b)).collect();
        remove_files(dir, paths).await
    }

    /// Rolls by age (segment.ms) and deletes whole segments past retention.ms /
    /// retention.bytes. Called periodically by the owner shard.
    pub async fn housekeeping(&self, now_ms: i64) -> Result<(), StorageError> {
        let roll = {
            let mut s = self.shared.state.borrow_mut();
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
            self.wait_for_roll(rolls).await?;
        }
        self.enforce_retention(RetentionBy::SizeAndTime(now_ms))
            .await
    }

    /// Deletes the oldest segments past retention.ms (with `RetentionBy::SizeAndTime`) and
    /// retention.bytes.
    async fn enforce_retention(&self, by: RetentionBy) -> Result<(), StorageError> {
        let end = {
            let s = self.shared.state.borrow();
            let count = crate::retention::segments_to_delete(
                &s.config,
                &crate::retention::stats(&s.segments),
                by,
            );
            match count.checked_sub(1) {
                Some(last) => s.segments[last].next_offset,
                None => return Ok(()),
            }
        };
        self.delete_segments_below(end).await
    }

    /// The writer rolls (it owns segment creation); waits until it has rolled past `rolls`.
    async fn wait_for_roll(&self, rolls: u64) -> Result<(), StorageError> {
        self.shared.work.notify();
        loop {
            let listener = self.shared.space.listen();
            {
                let s = self.shared.state.borrow();
                s.check_usable()?;
                if s.rolls != rolls {
                    return Ok(());
                }
            }
            listener.await;
        }
    }

    /// Replaces the config; takes effect for following appends and housekeeping.
    pub fn set_config(&self, config: LogConfig) {
        self.shared.state.borrow_mut().config = config;
        self.shared.work.notify();
    }

    /// Flushes everything appended, stops the writer, trims the active segment to its
    /// logical size and writes its indexes. Later calls return `Closed`.
    pub async fn close(&self) -> Result<(), StorageError> {
        {
            let mut s = self.shared.state.borrow_mut();
            if s.closed {
                return Ok(());
            }
            s.closed = true;
            let end = s.offsets.log_end();
            s.offsets.request_flush(end);
        }
        // The writer places what is staged, flushes, then exits.
        self.shared.work.notify();
        loop {
            let listener = self.shared.writer_done.listen();
            let done = {
                let s = self.shared.state.borrow();
                !s.writer_running && !s.retention_running
            };
            if done {
                break;
            }
            listener.await;
        }
        self.shared.appended.notify();
        self.shared.durable.notify();
        self.shared.space.notify();
        let failed = self.shared.state.borrow().failed.clone();
        if let Some(f) = failed {
            // The zeros written ahead must stop before the files are opened again (a reopen):
            // one landing later could overwrite the reopened log's new data.
            let files: Vec<_> = {
                let s = self.shared.state.borrow();
                s.segments.iter().map(|seg| seg.file.clone()).collect()
            };
            for file in files {
                file.stop_prefill().await;
            }
            return Err(f.to_error());
        }
        let (file, size, indexes) = {
            let s = self.shared.state.borrow();
            s.assert_invariants();
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
        let dir = self.shared.dir.clone();
        {
            let mut s = self.shared.state.borrow_mut();
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

/// Retention by size (retention.bytes) checked at each roll too, not only by the shard's
/// periodic housekeeping: a segment it deletes becomes the spare the next roll reuses
/// (`spare`), so a partition that rolls faster than the housekeeping period still writes each
/// byte once, and holds no more than its retention between two housekeeping runs. Retention
/// by time stays with the housekeeping, as in Kafka.
pub(crate) fn enforce_retention_after_roll(shared: &Rc<Shared>) {
    {
        let mut s = shared.state.borrow_mut();
        if s.retention_running || s.config.retention_bytes.is_none() {
            return;
        }
        s.retention_running = true;
    }
    let log = PartitionLog {
        shared: shared.clone(),
    };
    glommio::spawn_local(async move {
        let result = log.enforce_retention(RetentionBy::Size).await;
        let mut s = log.shared.state.borrow_mut();
        s.retention_running = false;
        match result {
            Err(e) if !s.closed => {
                tracing::warn!(dir = %log.shared.dir.display(), error = %e, "retention after a roll failed");
            }
            _ => {}
        }
        drop(s);
        log.shared.writer_done.notify();
    })
    .detach();
}

/// Assigns the batch its offsets, makes it readable (tail cache) and places it in the
/// active segment, or stages it when a roll or truncation is in the way (or batches are
/// already staged: placement stays in offset order).
fn append_now(
    s: &mut LogState,
    batch: Bytes,
    buffer: Option<ReceiveBuffer>,
    header: BatchHeader,
) -> AppendInfo {
    let base_offset = s.offsets.log_end();
    let prefix = batch::patched_prefix(&batch, base_offset);
    let stored = BatchHeader {
        base_offset,
        ..header
    };
    let body = batch.slice(PATCHED_PREFIX..);
    s.offsets.append(stored.next_offset());
    s.cache.push(CachedBatch {
        base_offset,
        next_offset: stored.next_offset(),
        max_timestamp: stored.max_timestamp,
        prefix: Bytes::copy_from_slice(&prefix),
        body: body.clone(),
        buffer,
    });
    let limit = s.config.tail_cache_bytes;
    s.cache.evict(limit, s.offsets.durable());
    if s.staged.is_empty() && !s.maintenance && !s.rolling && !s.needs_roll(&stored) {
        s.place(&prefix, &body, &stored);
    } else {
        s.staged.push(Staged {
            prefix,
            body,
            header: stored,
        });
    }
    s.debug_assert_invariants();
    AppendInfo {
        base_offset,
        last_offset: stored.last_offset(),
    }
}
