//! The write path: the aligned head buffer of the active segment, the queue of aligned
//! writes, and the writer task that issues them (several in flight), fdatasyncs once per
//! group of flush requests, and publishes the durable offset. One writer task per log,
//! on the log's shard, from open to close.

use crate::error::{Failure, StorageError};
use crate::segment::{align_down, align_up, create_segment, SegFile, Segment};
use crate::spare::Spare;
use crate::state::Shared;
use glommio::io::DmaBuffer;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

/// Size of a head buffer chunk: the unit of write-behind.
pub(crate) const CHUNK_BYTES: usize = 256 << 10;
/// The smallest chunk: a log flushed in small rounds (acks=all) takes chunks sized to its rounds,
/// so that the head buffers of many partitions fit the shard's registered I/O memory.
const CHUNK_BYTES_MIN: usize = 16 << 10;
/// fdatasyncs in flight per log: the next group's writes overlap the previous sync.
const SYNCS_IN_FLIGHT_MAX: usize = 2;
/// Queued (not yet issued) write bytes per log before appenders wait.
pub(crate) const QUEUED_BYTES_MAX: usize = 8 * CHUNK_BYTES;

pub(crate) enum WriteOp {
    Write {
        file: Rc<SegFile>,
        pos: u64,
        buf: DmaBuffer,
    },
    /// The segment got its last write: sync it and trim the file to `size` before any
    /// later write is issued (so a later segment never holds data an earlier one lacks).
    Seal {
        file: Rc<SegFile>,
        size: u64,
        /// `.index` and `.timeindex` contents, written once the segment is sealed.
        indexes: Box<(Vec<u8>, Vec<u8>)>,
    },
}

impl WriteOp {
    pub fn len(&self) -> usize {
        match self {
            WriteOp::Write { buf, .. } => buf.len(),
            WriteOp::Seal { .. } => 0,
        }
    }
}

/// The partially filled chunk at the end of the active segment. It fills up while appends
/// arrive; a flush writes the buffer itself out and keeps only a copy of its partial last
/// block, so an idle partition holds 4 KiB, not a chunk.
///
/// A chunk is 256 KiB, or, after a flush, twice what that flush's round appended (at least
/// 16 KiB): acks=all rounds of many partitions hold a few KiB each, and 256 KiB chunks for 64 of
/// them (two per log: one being written, one filling) would take twice the shard's registered
/// I/O memory, so that the rest came from the heap and each write pinned its pages.
pub(crate) struct Head {
    file: Rc<SegFile>,
    /// Bytes for `[pos, pos + buf.len())`: ALIGN long after a flush, a chunk once appended to.
    buf: Option<DmaBuffer>,
    /// File position of the buffer (aligned).
    pos: u64,
    /// Valid bytes in the buffer.
    len: usize,
    /// `len` when the buffer was last written as it is: nothing to write while unchanged.
    flushed_len: usize,
    /// Size of the next chunk.
    chunk_bytes: usize,
    /// Bytes appended since the last flush (`take_tail`).
    round_bytes: usize,
}

fn copy_padded(src: &[u8], aligned_len: usize) -> DmaBuffer {
    let mut buf = glommio::allocate_dma_buffer(aligned_len);
    let b = buf.as_bytes_mut();
    b[..src.len()].copy_from_slice(src);
    // Never let stale memory reach the disk: it could parse as a batch on recovery.
    b[src.len()..].fill(0);
    buf
}

/// A one-block buffer holding `partial` (a partial last block), or None if empty.
fn partial_block(partial: &[u8]) -> Option<DmaBuffer> {
    (!partial.is_empty()).then(|| copy_padded(partial, crate::segment::ALIGN as usize))
}

impl Head {
    /// A head for a segment whose logical size is `size`; `tail_block` holds the bytes of
    /// `[align_down(size), size)` already on disk.
    pub fn new(file: Rc<SegFile>, size: u64, tail_block: &[u8]) -> Head {
        let pos = align_down(size);
        debug_assert_eq!(tail_block.len() as u64, size - pos);
        Head {
            file,
            buf: partial_block(tail_block),
            pos,
            len: tail_block.len(),
            flushed_len: tail_block.len(),
            chunk_bytes: CHUNK_BYTES,
            round_bytes: 0,
        }
    }

    /// Whether the buffer is a chunk being filled rather than a kept partial block.
    fn has_chunk(&self) -> bool {
        self.buf
            .as_ref()
            .is_some_and(|b| b.len() >= CHUNK_BYTES_MIN)
    }

    /// Copies `data` in, queueing every chunk that fills up.
    fn push(&mut self, mut data: &[u8], queue: &mut VecDeque<WriteOp>) -> usize {
        let mut queued = 0;
        self.round_bytes += data.len();
        while !data.is_empty() {
            if !self.has_chunk() {
                let mut chunk = glommio::allocate_dma_buffer(self.chunk_bytes);
                if let Some(block) = &self.buf {
                    chunk.as_bytes_mut()[..self.len].copy_from_slice(&block.as_bytes()[..self.len]);
                }
                self.buf = Some(chunk);
            }
            let buf = self.buf.as_mut().expect("just ensured");
            let chunk_len = buf.len();
            let n = (chunk_len - self.len).min(data.len());
            crate::stream_copy::copy_to_dma(
                &mut buf.as_bytes_mut()[self.len..self.len + n],
                &data[..n],
            );
            self.len += n;
            data = &data[n..];
            if self.len == chunk_len {
                let op = self.take_full();
                queued += op.len();
                queue.push_back(op);
            }
        }
        queued
    }

    fn take_full(&mut self) -> WriteOp {
        let buf = self.buf.take().expect("a full chunk has a buffer");
        let pos = self.pos;
        self.pos += buf.len() as u64;
        // Appends fill chunks faster than flushes come: full-size chunks from now on.
        self.chunk_bytes = CHUNK_BYTES;
        let op = WriteOp::Write {
            file: self.file.clone(),
            pos,
            buf,
        };
        self.len = 0;
        self.flushed_len = 0;
        op
    }

    /// The write that puts every appended byte on disk (the partial last block
    /// zero-padded), or None if that is already the case. The head keeps only the
    /// partial last block afterwards.
    fn take_tail(&mut self) -> Option<WriteOp> {
        if self.len == self.flushed_len {
            return None;
        }
        let round = std::mem::take(&mut self.round_bytes);
        self.chunk_bytes = (2 * round)
            .next_power_of_two()
            .clamp(CHUNK_BYTES_MIN, CHUNK_BYTES);
        let mut buf = self.buf.take().expect("unwritten bytes live in the buffer");
        let block = align_down(self.len as u64) as usize;
        let end = align_up(self.len as u64) as usize;
        let keep = partial_block(&buf.as_bytes()[block..self.len]);
        // Never let stale memory reach the disk: it could parse as a batch on recovery.
        buf.as_bytes_mut()[self.len..end].fill(0);
        buf.trim_to_size(end);
        let op = WriteOp::Write {
            file: self.file.clone(),
            pos: self.pos,
            buf,
        };
        self.pos += block as u64;
        self.len -= block;
        self.flushed_len = self.len;
        self.buf = keep;
        Some(op)
    }
}

/// The writer's side of the log: the head buffer of the active segment and the aligned
/// writes queued behind it. Appenders fill it (through `LogState::place`), the writer
/// task drains it; `queued_bytes` is what appenders wait on.
pub(crate) struct WriteQueue {
    head: Head,
    ops: VecDeque<WriteOp>,
    /// Sum of the queued ops' lengths.
    queued_bytes: usize,
}

impl WriteQueue {
    pub fn new(head: Head) -> WriteQueue {
        WriteQueue {
            head,
            ops: VecDeque::new(),
            queued_bytes: 0,
        }
    }

    fn debug_check(&self) {
        debug_assert_eq!(
            self.queued_bytes,
            self.ops.iter().map(WriteOp::len).sum::<usize>(),
            "queued byte count"
        );
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Copies one batch's bytes (patched prefix, then the rest) into the head buffer,
    /// queueing every chunk that fills up.
    pub fn push_batch(&mut self, prefix: &[u8], body: &[u8]) {
        self.queued_bytes += self.head.push(prefix, &mut self.ops);
        self.queued_bytes += self.head.push(body, &mut self.ops);
        self.debug_check();
    }

    /// Everything queued, for the writer to issue.
    pub fn take_ops(&mut self) -> Vec<WriteOp> {
        self.queued_bytes = 0;
        self.ops.drain(..).collect()
    }

    /// The write of the head's unwritten bytes, if any (a flush).
    pub fn take_tail(&mut self) -> Option<WriteOp> {
        self.head.take_tail()
    }

    /// Ends the active segment: its last write, then `seal`, are queued ahead of any
    /// write to the next segment, whose head starts empty on `next`.
    pub fn seal_and_switch(&mut self, seal: WriteOp, next: Rc<SegFile>) {
        assert!(
            matches!(seal, WriteOp::Seal { .. }),
            "a segment ends with a seal"
        );
        if let Some(tail) = self.head.take_tail() {
            self.queued_bytes += tail.len();
            self.ops.push_back(tail);
        }
        self.ops.push_back(seal);
        self.head = Head::new(next, 0, &[]);
        self.debug_check();
    }

    /// Restarts the head on `file` at `size` (a truncation or reset), once every queued
    /// data write was issued (a seal of a segment being removed may still wait).
    pub fn restart(&mut self, file: Rc<SegFile>, size: u64, tail_block: &[u8]) {
        assert!(
            self.ops.iter().all(|op| matches!(op, WriteOp::Seal { .. })),
            "the head moves only with no data write queued"
        );
        self.head = Head::new(file, size, tail_block);
    }
}

type WriteFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StorageError>>>>;

/// Writes in flight, polled by the writer task itself: a write is submitted to io_uring
/// when pushed, not when a spawned task would next be scheduled (behind every runnable
/// appender), and results are taken in issue order.
#[derive(Default)]
struct InFlight {
    writes: VecDeque<(WriteFuture, Option<Result<(), StorageError>>)>,
}

impl InFlight {
    fn len(&self) -> usize {
        self.writes.len()
    }

    fn poll_all(&mut self, cx: &mut std::task::Context<'_>) {
        for (f, done) in self.writes.iter_mut() {
            if done.is_none() {
                if let std::task::Poll::Ready(r) = f.as_mut().poll(cx) {
                    *done = Some(r);
                }
            }
        }
    }

    /// Adds a write and polls it once, which submits it.
    async fn push(&mut self, f: WriteFuture) {
        self.writes.push_back((f, None));
        std::future::poll_fn(|cx| {
            self.poll_all(cx);
            std::task::Poll::Ready(())
        })
        .await
    }

    /// The result of the oldest write, once it completed (None when there is none).
    async fn pop_front(&mut self) -> Option<Result<(), StorageError>> {
        std::future::poll_fn(|cx| {
            self.poll_all(cx);
            match self.writes.front_mut() {
                None => std::task::Poll::Ready(None),
                Some((_, done)) => match done.take() {
                    Some(r) => {
                        self.writes.pop_front();
                        std::task::Poll::Ready(Some(r))
                    }
                    None => std::task::Poll::Pending,
                },
            }
        })
        .await
    }
}

async fn write_all(file: Rc<SegFile>, pos: u64, buf: DmaBuffer) -> Result<(), StorageError> {
    let mut buf = Rc::new(buf);
    let mut pos = pos;
    loop {
        let len = buf.len();
        crate::failpoints::inject("segment::write", &file.path)
            .map_err(|e| StorageError::io("write", &file.path, e))?;
        let n = file
            .dma()
            .await?
            .write_rc_at(buf.clone(), pos)
            .await
            .map_err(|e| StorageError::glommio("write", &file.path, e))?;
        if n >= len {
            return Ok(());
        }
        let from = align_down(n as u64) as usize;
        if n == 0 {
            return Err(StorageError::io(
                "write",
                &file.path,
                std::io::ErrorKind::WriteZero.into(),
            ));
        }
        // Short write: rewrite from the last whole block.
        buf = Rc::new(copy_padded(&buf.as_bytes()[from..], len - from));
        pos += from as u64;
    }
}

enum Job {
    Run {
        ops: Vec<WriteOp>,
        /// What becomes durable once the ops are written and synced.
        flush: Option<DurableMark>,
    },
    /// Start a new active segment at the placed end offset.
    Roll,
    Wait,
    Exit,
}

/// What a group fdatasync makes durable: every offset below `offset`, and the active
/// segment (`active_base`) up to `active_size` bytes.
#[derive(Clone, Copy)]
struct DurableMark {
    offset: i64,
    active_base: i64,
    active_size: u64,
}

/// An issued group fdatasync and what it makes durable once it (and every earlier one)
/// has completed.
struct PendingSync {
    task: glommio::Task<Result<(), StorageError>>,
    done: Rc<std::cell::Cell<bool>>,
    mark: DurableMark,
}

/// The writer task's own state: writes in flight, files written since their last sync,
/// syncs issued and not yet published.
struct Writer {
    shared: Rc<Shared>,
    in_flight: InFlight,
    /// Files written since their last sync, each with the end of its furthest write.
    dirty: Vec<(Rc<SegFile>, u64)>,
    pending: VecDeque<PendingSync>,
}

/// The writer task. Exits after close or on the first I/O failure (the log then answers
/// every call with that failure).
pub(crate) async fn run(shared: Rc<Shared>) {
    let mut w = Writer {
        shared: shared.clone(),
        in_flight: InFlight::default(),
        dirty: Vec::new(),
        pending: VecDeque::new(),
    };
    let result = w.serve().await;
    while w.in_flight.pop_front().await.is_some() {}
    while let Some(p) = w.pending.pop_front() {
        let _ = p.task.await;
    }
    shared.writer_stopped(result.err().map(|e| Failure::from_error(&e)));
}

impl Writer {
    async fn serve(&mut self) -> Result<(), StorageError> {
        let shared = self.shared.clone();
        let mut roll_retry = RollRetry::default();
        loop {
            let listener = shared.work.listen();
            self.publish_completed(false).await?;
            match next_job(&shared) {
                Job::Exit => {
                    while !self.pending.is_empty() {
                        self.publish_completed(true).await?;
                    }
                    return Ok(());
                }
                Job::Wait => listener.await,
                Job::Roll => {
                    let rolled = roll(&shared).await;
                    shared.state.borrow_mut().rolling = false;
                    shared.space.notify();
                    match rolled {
                        Err(e) if e.is_out_of_descriptors() => {
                            // Asked again, whether the roll was needed for space or by age.
                            shared.state.borrow_mut().roll_requested = true;
                            roll_retry.wait(&e).await;
                        }
                        r => {
                            r?;
                            roll_retry = RollRetry::default();
                            crate::log::enforce_retention_after_roll(&shared);
                        }
                    }
                }
                Job::Run { ops, flush } => {
                    shared.space.notify();
                    for op in ops {
                        self.issue(op).await?;
                    }
                    if let Some(mark) = flush {
                        self.issue_sync(mark).await?;
                    }
                }
            }
        }
    }

    async fn issue(&mut self, op: WriteOp) -> Result<(), StorageError> {
        match op {
            WriteOp::Write { file, pos, buf } => {
                let (step, writes_in_flight_max) = {
                    let state = self.shared.state.borrow();
                    (
                        state.preallocate_step(),
                        state.config.write_behind_depth.max(1),
                    )
                };
                let end = pos + buf.len() as u64;
                file.reserve(end, step).await?;
                match self.dirty.iter_mut().find(|(f, _)| Rc::ptr_eq(f, &file)) {
                    Some((_, dirty_end)) => *dirty_end = (*dirty_end).max(end),
                    None => self.dirty.push((file.clone(), end)),
                }
                self.in_flight
                    .push(Box::pin(write_all(file, pos, buf)))
                    .await;
                if self.in_flight.len() >= writes_in_flight_max {
                    self.in_flight.pop_front().await.expect("non-empty")?;
                }
                Ok(())
            }
            WriteOp::Seal {
                file,
                size,
                indexes,
            } => {
                self.complete_writes().await?;
                self.dirty.retain(|(f, _)| !Rc::ptr_eq(f, &file));
                seal(&file, size, *indexes).await
            }
        }
    }

    /// Waits for every write in flight.
    async fn complete_writes(&mut self) -> Result<(), StorageError> {
        while let Some(r) = self.in_flight.pop_front().await {
            r?;
        }
        Ok(())
    }

    /// Starts what makes every write since the last sync durable: an fdatasync of each file
    /// that needs one (on the sync pool), or, when every write was a pure overwrite, a share
    /// of the shard's next cache flush of the device (`device_flush`).
    async fn issue_sync(&mut self, mark: DurableMark) -> Result<(), StorageError> {
        // io_uring completes out of order: every write must be done before the sync.
        self.complete_writes().await?;
        if self.pending.len() >= SYNCS_IN_FLIGHT_MAX {
            self.publish_completed(true).await?;
        }
        let plan = SyncPlan::of(std::mem::take(&mut self.dirty));
        let (syncs, shares) = (&self.shared.syncs, &self.shared.flush_shares);
        syncs.set(syncs.get() + plan.own.len() as u64);
        shares.set(shares.get() + u64::from(plan.shared.is_some()));
        let done = Rc::new(std::cell::Cell::new(false));
        let task = glommio::spawn_local({
            let done = done.clone();
            let shared = self.shared.clone();
            async move {
                let result = plan.run(&shared).await;
                done.set(true);
                shared.work.notify();
                result
            }
        });
        self.pending.push_back(PendingSync { task, done, mark });
        Ok(())
    }

    /// Publishes completed syncs in issue order (durability is a prefix); with
    /// `wait_for_front`, waits for the oldest one first.
    async fn publish_completed(&mut self, wait_for_front: bool) -> Result<(), StorageError> {
        let mut wait = wait_for_front;
        while let Some(front) = self.pending.front() {
            if !front.done.get() && !wait {
                break;
            }
            wait = false;
            let p = self.pending.pop_front().expect("front exists");
            p.task.await?;
            let m = p.mark;
            self.shared
                .publish_durable(m.offset, m.active_base, m.active_size);
        }
        Ok(())
    }
}

/// How one group's writes become durable: an fdatasync of each file whose writes touched
/// blocks without synced metadata, then, for the files whose writes were all pure overwrites
/// (usually every one), one shared cache flush of their device, unless one of the fdatasyncs
/// already flushed that device after the writes.
struct SyncPlan {
    own: Vec<Rc<SegFile>>,
    shared: Option<(Rc<SegFile>, u64)>,
}

impl SyncPlan {
    fn of(dirty: Vec<(Rc<SegFile>, u64)>) -> SyncPlan {
        let mut plan = SyncPlan {
            own: Vec::new(),
            shared: None,
        };
        for (file, end) in dirty {
            match file.flush_device(end) {
                // A log's segments share one device; a second one is rare and syncs its own.
                Some(device) if plan.shared.as_ref().is_none_or(|(_, d)| *d == device) => {
                    plan.shared.get_or_insert((file, device));
                }
                _ => plan.own.push(file),
            }
        }
        if let Some((_, device)) = &plan.shared {
            if plan.own.iter().any(|f| f.device() == Some(*device)) {
                plan.shared = None;
            }
        }
        plan
    }

    async fn run(self, shared: &Shared) -> Result<(), StorageError> {
        for f in self.own {
            let started = std::time::Instant::now();
            let result = f.sync().await;
            shared.observe(|o| o.fdatasync_completed(started.elapsed()));
            result?;
        }
        if let Some((file, device)) = self.shared {
            let elapsed = file.flush_device_cache(device).await?;
            shared.observe(|o| o.fdatasync_completed(elapsed));
        }
        Ok(())
    }
}

/// Syncs a segment that got its last write, trims it to its size, writes its indexes and leaves
/// its descriptor to the shard's cache. Retention may remove the segment meanwhile (it removes
/// only durable data, and closes the file): what is left of the seal is then skipped, and an
/// error on the removed file is no failure of the log.
async fn seal(file: &SegFile, size: u64, indexes: (Vec<u8>, Vec<u8>)) -> Result<(), StorageError> {
    let removed = |r: Result<(), StorageError>| match r {
        Err(_) if file.deleted.get() => Ok(true),
        r => r.map(|()| file.deleted.get()),
    };
    if file.deleted.get() || removed(file.sync().await)? || removed(file.truncate(size).await)? {
        return Ok(());
    }
    match crate::recovery::write_indexes(&file.path, indexes).await {
        // The index files only spare recovery a scan of the segment; without descriptors to
        // write them the log goes on, and a recovery rebuilds them (issue 14, item 10).
        Err(e) if e.is_out_of_descriptors() => {
            tracing::warn!(error = %e, "sealed a segment without its index files");
        }
        r => r?,
    }
    file.seal();
    Ok(())
}

/// A roll that found no file descriptor free waits and is tried again: the log stays up and
/// its appends wait (bounded by the shard's memory budget and the clients' timeouts), rather
/// than going offline until a restart (issue 14, item 10).
#[derive(Default)]
struct RollRetry {
    delay: Option<Duration>,
}

impl RollRetry {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(1);

    async fn wait(&mut self, error: &StorageError) {
        let delay = self.delay.map_or(Self::FIRST, |d| (d * 2).min(Self::MAX));
        if self.delay.is_none() {
            tracing::warn!(%error, "no file descriptor for a new segment; the roll waits");
        }
        self.delay = Some(delay);
        glommio::timer::sleep(delay).await;
    }
}

/// Places what is staged and decides the writer's next step; asks for a roll when the
/// next staged batch does not fit the active segment or housekeeping wants one.
fn next_job(shared: &Shared) -> Job {
    let mut s = shared.state.borrow_mut();
    if s.failed.is_some() {
        return Job::Exit;
    }
    if !s.maintenance {
        let placed_any = !s.staged.is_empty();
        let needs_roll = s.place_staged();
        if placed_any {
            drop(s);
            shared.space.notify();
            s = shared.state.borrow_mut();
        }
        if needs_roll || (s.roll_requested && s.active().size > 0) {
            s.roll_requested = false;
            s.rolling = true;
            return Job::Roll;
        }
        if s.roll_requested {
            // Nothing to roll (empty active segment): report done.
            s.roll_requested = false;
            s.rolls += 1;
        }
    }
    let placed_end = s.placed_end_offset();
    let covered = s.offsets.durable().max(s.offsets.sync_issued());
    let flush_needed = s.offsets.flush_target() > covered && placed_end > covered;
    if flush_needed || !s.write.is_empty() {
        let mut ops = s.write.take_ops();
        let flush = flush_needed.then(|| {
            ops.extend(s.write.take_tail());
            s.offsets.sync_issued_to(placed_end);
            let active = s.active();
            DurableMark {
                offset: placed_end,
                active_base: active.base_offset,
                active_size: active.size,
            }
        });
        s.debug_assert_invariants();
        return Job::Run { ops, flush };
    }
    if s.closed && s.staged.is_empty() && !s.maintenance {
        return Job::Exit;
    }
    Job::Wait
}

/// Creates the next segment and makes it active; the old one gets its last write and a
/// Seal (sync, trim, indexes) queued ahead of any write to the new one.
async fn roll(shared: &Shared) -> Result<(), StorageError> {
    let (base, config, recycle) = {
        let s = shared.state.borrow();
        let recycle = s.spare.as_ref().is_some_and(Spare::is_free);
        (s.placed_end_offset(), s.config.clone(), recycle)
    };
    let create = || create_segment(&shared.dir, base, &config, crate::clock::now_ms(), recycle);
    let (seg, recycled): (Segment, bool) = match create().await {
        // The shard's cached descriptors of sealed segments are the ones it can give back.
        Err(e) if e.is_out_of_descriptors() && crate::descriptors::shed() > 0 => create().await?,
        r => r?,
    };
    if recycled {
        shared.recycled.set(shared.recycled.get() + 1);
        crate::spare::count_recycled();
    }
    let mut s = shared.state.borrow_mut();
    if recycle {
        s.spare = None;
    }
    let old = s.active();
    let seal = WriteOp::Seal {
        file: old.file.clone(),
        size: old.size,
        indexes: Box::new((
            old.index.encode_offset_index(),
            old.index.encode_time_index(),
        )),
    };
    s.write.seal_and_switch(seal, seg.file.clone());
    s.segments.push_back(seg);
    s.rolls += 1;
    s.assert_invariants();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::run;

    /// A stream of bytes appended as 16-byte prefix + body, and the file image the ops make.
    struct Feed {
        data: Vec<u8>,
        at: usize,
        image: Vec<u8>,
    }

    impl Feed {
        fn append(&mut self, queue: &mut WriteQueue, n: usize) {
            let (at, data) = (self.at, &self.data);
            queue.push_batch(&data[at..at + 16], &data[at + 16..at + n]);
            self.at += n;
        }

        /// Writes the ops into the image; returns their sizes.
        fn write(&mut self, ops: Vec<WriteOp>) -> Vec<usize> {
            ops.iter()
                .map(|op| {
                    let WriteOp::Write { pos, buf, .. } = op else {
                        panic!("only writes")
                    };
                    let (pos, len) = (*pos as usize, buf.len());
                    if self.image.len() < pos + len {
                        self.image.resize(pos + len, 0);
                    }
                    self.image[pos..pos + len].copy_from_slice(buf.as_bytes());
                    len
                })
                .collect()
        }

        /// One acks=all round: `n` bytes appended, then everything written.
        fn round(&mut self, queue: &mut WriteQueue, n: usize) -> Vec<usize> {
            self.append(queue, n);
            let mut ops = queue.take_ops();
            ops.extend(queue.take_tail());
            self.write(ops)
        }
    }

    #[test]
    fn chunks_follow_the_flush_rounds_and_grow_back_when_appends_outrun_flushes() {
        run(|dir| async move {
            let file = SegFile::open(dir.join("0.log")).await.unwrap();
            let mut queue = WriteQueue::new(Head::new(file, 0, &[]));
            let mut feed = Feed {
                data: (0..600_000u32).map(|i| (i % 251 + 1) as u8).collect(),
                at: 0,
                image: Vec::new(),
            };
            // The first chunk is a full one; the rounds after it get twice their size.
            assert_eq!(feed.round(&mut queue, 5000), [8192]);
            let kept = queue.head.buf.as_ref().map(|b| b.len());
            assert_eq!(kept, Some(crate::segment::ALIGN as usize));
            feed.round(&mut queue, 5000);
            assert_eq!(queue.head.chunk_bytes, 16 << 10);
            // A round larger than its chunk fills it (one full write), and the next chunk is
            // sized to that round.
            let sizes = feed.round(&mut queue, 40_000);
            assert_eq!(sizes[0], 16 << 10, "{sizes:?}");
            assert_eq!(queue.head.chunk_bytes, 128 << 10);
            // Appends with no flush between them: full chunks again.
            feed.append(&mut queue, 400_000);
            let sizes = feed.write(queue.take_ops());
            assert_eq!(sizes, [128 << 10, CHUNK_BYTES]);
            assert_eq!(queue.head.chunk_bytes, CHUNK_BYTES);
            feed.round(&mut queue, 30_000);
            // Every byte at its place, whatever the chunk sizes.
            let at = feed.at;
            assert_eq!(&feed.image[..at], &feed.data[..at]);
            assert!(feed.image[at..].iter().all(|&b| b == 0));
        });
    }
}
