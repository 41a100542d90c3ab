//! The write path: the aligned head buffer of the active segment, the queue of aligned
//! writes, and the writer task that issues them (several in flight), fdatasyncs once per
//! group of flush requests, and publishes the durable offset. One writer task per log,
//! on the log's shard, from open to close.

use crate::error::{Failure, StorageError};
use crate::log::Inner;
use crate::segment::{align_down, align_up, SegFile};
use glommio::io::DmaBuffer;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

/// Size of a head buffer chunk: the unit of write-behind.
pub(crate) const CHUNK_BYTES: usize = 256 << 10;
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

/// The partially filled chunk at the end of the active segment. It grows to a full
/// 256 KiB chunk while appends arrive; a flush writes the buffer itself out and keeps
/// only a copy of its partial last block, so an idle partition holds 4 KiB, not a chunk.
pub(crate) struct Head {
    pub file: Rc<SegFile>,
    /// Bytes for `[pos, pos + buf.len())`: ALIGN long after a flush, CHUNK_BYTES once
    /// appended to.
    buf: Option<DmaBuffer>,
    /// File position of the buffer (aligned).
    pos: u64,
    /// Valid bytes in the buffer.
    len: usize,
    /// `len` when the buffer was last written as it is: nothing to write while unchanged.
    flushed_len: usize,
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
        }
    }

    /// Copies `data` in, queueing every chunk that fills up.
    pub fn push(&mut self, mut data: &[u8], queue: &mut VecDeque<WriteOp>) -> usize {
        let mut queued = 0;
        while !data.is_empty() {
            if self.buf.as_ref().is_none_or(|b| b.len() < CHUNK_BYTES) {
                let mut chunk = glommio::allocate_dma_buffer(CHUNK_BYTES);
                if let Some(block) = &self.buf {
                    chunk.as_bytes_mut()[..self.len].copy_from_slice(&block.as_bytes()[..self.len]);
                }
                self.buf = Some(chunk);
            }
            let buf = self.buf.as_mut().expect("just ensured");
            let n = (CHUNK_BYTES - self.len).min(data.len());
            buf.as_bytes_mut()[self.len..self.len + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.len == CHUNK_BYTES {
                let op = self.take_full();
                queued += op.len();
                queue.push_back(op);
            }
        }
        queued
    }

    fn take_full(&mut self) -> WriteOp {
        let buf = self.buf.take().expect("a full chunk has a buffer");
        let op = WriteOp::Write {
            file: self.file.clone(),
            pos: self.pos,
            buf,
        };
        self.pos += CHUNK_BYTES as u64;
        self.len = 0;
        self.flushed_len = 0;
        op
    }

    /// The write that puts every appended byte on disk (the partial last block
    /// zero-padded), or None if that is already the case. The head keeps only the
    /// partial last block afterwards.
    pub fn take_tail(&mut self) -> Option<WriteOp> {
        if self.len == self.flushed_len {
            return None;
        }
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
        let n = file
            .file
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
        /// (log end offset, active segment base, its size) to publish as durable.
        flush: Option<(i64, i64, u64)>,
    },
    /// Start a new active segment at the placed end offset.
    Roll,
    Wait(Option<Duration>),
    Exit,
}

/// The writer task. Exits after close or on the first I/O failure (the log then answers
/// every call with that failure).
/// An issued group fdatasync and what it makes durable once it (and every earlier one)
/// has completed.
struct PendingSync {
    task: glommio::Task<Result<(), StorageError>>,
    done: Rc<std::cell::Cell<bool>>,
    offset: i64,
    active_base: i64,
    active_size: u64,
}

/// Publishes completed syncs in issue order (durability is a prefix).
async fn publish_completed(
    inner: &Inner,
    pending: &mut VecDeque<PendingSync>,
    wait_for_front: bool,
) -> Result<(), StorageError> {
    let mut wait = wait_for_front;
    while let Some(front) = pending.front() {
        if !front.done.get() && !wait {
            break;
        }
        wait = false;
        let p = pending.pop_front().expect("front exists");
        p.task.await?;
        inner.publish_durable(p.offset, p.active_base, p.active_size);
    }
    Ok(())
}

pub(crate) async fn run(inner: Rc<Inner>) {
    let mut in_flight = InFlight::default();
    let mut dirty: Vec<Rc<SegFile>> = Vec::new();
    let mut pending: VecDeque<PendingSync> = VecDeque::new();
    // Interval policy: when unflushed data must be flushed at the latest.
    let mut flush_deadline: Option<std::time::Instant> = None;
    let result: Result<(), StorageError> = async {
        loop {
            let listener = inner.work.listen();
            publish_completed(&inner, &mut pending, false).await?;
            let job = next_job(&inner);
            let (ops, flush) = match job {
                Job::Exit => {
                    while !pending.is_empty() {
                        publish_completed(&inner, &mut pending, true).await?;
                    }
                    return Ok(());
                }
                Job::Wait(None) => {
                    listener.await;
                    continue;
                }
                Job::Wait(Some(interval)) => {
                    let now = std::time::Instant::now();
                    let deadline = *flush_deadline.get_or_insert(now + interval);
                    let elapsed = now >= deadline
                        || glommio::future::timeout(deadline - now, listener)
                            .await
                            .is_err();
                    if elapsed {
                        // Interval flush policy: the interval elapsed with data not durable.
                        flush_deadline = None;
                        let mut s = inner.state.borrow_mut();
                        s.flush_target = s.flush_target.max(s.log_end_offset);
                    }
                    continue;
                }
                Job::Run { ops, flush } => (ops, flush),
                Job::Roll => {
                    let rolled = roll(&inner).await;
                    inner.state.borrow_mut().rolling = false;
                    inner.space.notify();
                    rolled?;
                    continue;
                }
            };
            inner.space.notify();
            let writes_in_flight_max = inner.state.borrow().config.write_behind_depth.max(1);
            for op in ops {
                match op {
                    WriteOp::Write { file, pos, buf } => {
                        let step = inner.state.borrow().preallocate_step();
                        file.reserve(pos + buf.len() as u64, step).await?;
                        if !dirty.iter().any(|f| Rc::ptr_eq(f, &file)) {
                            dirty.push(file.clone());
                        }
                        in_flight.push(Box::pin(write_all(file, pos, buf))).await;
                        if in_flight.len() >= writes_in_flight_max {
                            in_flight.pop_front().await.expect("non-empty")?;
                        }
                    }
                    WriteOp::Seal {
                        file,
                        size,
                        indexes,
                    } => {
                        while let Some(r) = in_flight.pop_front().await {
                            r?;
                        }
                        dirty.retain(|f| !Rc::ptr_eq(f, &file));
                        if !file.deleted.get() {
                            file.sync().await?;
                            file.truncate(size).await?;
                            crate::recovery::write_indexes(&file.path, *indexes).await?;
                        }
                    }
                }
            }
            if let Some((offset, active_base, active_size)) = flush {
                flush_deadline = None;
                // io_uring completes out of order: every write must be done before the sync.
                while let Some(r) = in_flight.pop_front().await {
                    r?;
                }
                if pending.len() >= SYNCS_IN_FLIGHT_MAX {
                    publish_completed(&inner, &mut pending, true).await?;
                }
                let files: Vec<Rc<SegFile>> = std::mem::take(&mut dirty);
                inner.syncs.set(inner.syncs.get() + files.len() as u64);
                let done = Rc::new(std::cell::Cell::new(false));
                let task = glommio::spawn_local({
                    let done = done.clone();
                    let inner = inner.clone();
                    async move {
                        let mut result = Ok(());
                        for f in files {
                            result = f.sync().await;
                            if result.is_err() {
                                break;
                            }
                        }
                        done.set(true);
                        inner.work.notify();
                        result
                    }
                });
                pending.push_back(PendingSync {
                    task,
                    done,
                    offset,
                    active_base,
                    active_size,
                });
            }
        }
    }
    .await;
    while in_flight.pop_front().await.is_some() {}
    while let Some(p) = pending.pop_front() {
        let _ = p.task.await;
    }
    inner.writer_stopped(result.err().map(|e| Failure::from_error(&e)));
}

fn next_job(inner: &Inner) -> Job {
    let mut s = inner.state.borrow_mut();
    if s.failed.is_some() {
        return Job::Exit;
    }
    if !s.maintenance {
        let placed_any = !s.staged_is_empty();
        let needs_roll = s.place_staged();
        if placed_any {
            drop(s);
            inner.space.notify();
            s = inner.state.borrow_mut();
        }
        if needs_roll || (s.roll_requested && s.segments.back().is_some_and(|a| a.size > 0)) {
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
    let covered = s.durable_offset.max(s.sync_issued_offset);
    let flush_needed = s.flush_target > covered && placed_end > covered;
    if flush_needed || !s.queue.is_empty() {
        let mut ops: Vec<WriteOp> = s.queue.drain(..).collect();
        s.queued_bytes = 0;
        let flush = if flush_needed {
            if let Some(tail) = s.head.take_tail() {
                ops.push(tail);
            }
            s.unflushed_bytes = 0;
            s.sync_issued_offset = placed_end;
            let active = s.segments.back().expect("a log has an active segment");
            Some((placed_end, active.base_offset, active.size))
        } else {
            None
        };
        return Job::Run { ops, flush };
    }
    if s.closed && s.staged_is_empty() && !s.maintenance {
        return Job::Exit;
    }
    match s.config.flush {
        crate::FlushPolicy::Interval { interval_ms, .. } if s.durable_offset < placed_end => {
            Job::Wait(Some(Duration::from_millis(interval_ms.max(1))))
        }
        _ => Job::Wait(None),
    }
}

/// Creates the next segment and makes it active; the old one gets its last write and a
/// Seal (sync, trim, indexes) queued ahead of any write to the new one.
async fn roll(inner: &Inner) -> Result<(), StorageError> {
    let (base, config) = {
        let s = inner.state.borrow();
        (s.placed_end_offset(), s.config.clone())
    };
    let seg = crate::log::create_segment(&inner.dir, base, &config, crate::log::now_ms()).await?;
    let mut s = inner.state.borrow_mut();
    let s = &mut *s;
    if let Some(tail) = s.head.take_tail() {
        s.queued_bytes += tail.len();
        s.queue.push_back(tail);
    }
    let old = s.segments.back().expect("active segment");
    s.queue.push_back(WriteOp::Seal {
        file: old.file.clone(),
        size: old.size,
        indexes: Box::new((
            old.index.encode_offset_index(),
            old.index.encode_time_index(),
        )),
    });
    s.head = Head::new(seg.file.clone(), 0, &[]);
    s.segments.push_back(seg);
    s.rolls += 1;
    Ok(())
}
