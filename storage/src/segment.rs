//! One segment: its DMA file, logical size and sparse index, plus the file helpers
//! (create, scan, aligned reads) the log uses. Shard-local, lives as long as the segment.

use crate::batch::{self, BatchHeader, ScanStop};
use crate::descriptors;
use crate::error::{Failure, StorageError};
use crate::event::Event;
use crate::index::SegmentIndex;
use crate::recovery::remove_files;
use crate::LogConfig;
use bytes::Bytes;
use glommio::io::{DmaFile, OpenOptions};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// Hard cap on a segment's size: index positions are u32 (Kafka caps segment.bytes at
/// i32::MAX too).
pub(crate) const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// Alignment of every DMA position and length (the device's physical block).
pub(crate) const ALIGN: u64 = 4096;
/// Window of a recovery scan read.
const SCAN_WINDOW_BYTES: usize = 1 << 20;

pub(crate) fn align_down(v: u64) -> u64 {
    v & !(ALIGN - 1)
}
pub(crate) fn align_up(v: u64) -> u64 {
    (v + ALIGN - 1) & !(ALIGN - 1)
}

pub(crate) fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}
pub(crate) fn index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.index"))
}
pub(crate) fn time_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.timeindex"))
}
/// The `.log`, `.index` and `.timeindex` files of the segment at `base_offset`.
pub(crate) fn segment_paths(dir: &Path, base_offset: i64) -> [PathBuf; 3] {
    [
        log_path(dir, base_offset),
        index_path(dir, base_offset),
        time_index_path(dir, base_offset),
    ]
}

/// Zeros are written ahead of the data in writes of this size (large: fewer requests and
/// extent conversions per MiB; the prefill runs beside the data's writes, never before them).
const PREFILL_WRITE_BYTES: usize = 1 << 20;
/// Zeros kept ahead of a segment's data at least (up to the step): a new or idle
/// partition's segment does not cost a whole step of zeros.
const PREFILL_AHEAD_MIN_BYTES: u64 = 1 << 20;
/// Zero writes of one shard's prefills in flight at once, whatever its partition count. An
/// fdatasync (acks=all) waits for the device's queue to drain (a cache flush), so every prefill
/// write queued beside the data delays it: 64 partitions prefilling side by side queued 64 MiB of
/// zeros, and acks=all waited 80-300 ms behind them (bench/RESULTS.md, "prefill writes").
const PREFILL_WRITES_IN_FLIGHT: u64 = 1;

thread_local! {
    /// One buffer of zeros per shard for every prefill (filled once: zeroing a fresh buffer
    /// per prefill run cost the shard a memset of PREFILL_WRITE_BYTES each time). Taken from the
    /// shard's registered I/O memory when it has room (the first prefill comes before most head
    /// buffers), so that zero writes, half of the bytes written, pin no pages.
    static ZEROS: Rc<glommio::io::DmaBuffer> = Rc::new({
        let mut b = glommio::allocate_dma_buffer(PREFILL_WRITE_BYTES);
        b.as_bytes_mut().fill(0);
        b
    });
}

thread_local! {
    /// The shard's turns for prefill writes (`PREFILL_WRITES_IN_FLIGHT`), first come first served.
    static PREFILL_TURNS: Rc<glommio::sync::Semaphore> =
        Rc::new(glommio::sync::Semaphore::new(PREFILL_WRITES_IN_FLIGHT));
}

fn shard_zeros() -> Rc<glommio::io::DmaBuffer> {
    ZEROS.with(Rc::clone)
}

/// A segment's file, shared by the log, in-flight writes and reads. The active segment keeps its
/// descriptor; a sealed one leaves it to the shard's cache (`descriptors`), which closes the
/// least recently used and reopens on demand, so descriptors stay bounded whatever the number
/// of segments.
///
/// Data is only ever written over blocks that were already written (with zeros, ahead of
/// the data, by a background prefill task): on ext4 an O_DIRECT write that touches an
/// unwritten (fallocate'd) extent, or both a written and an unwritten one, is not a pure
/// overwrite, so io_uring cannot issue it without blocking and punts it to an io-wq
/// worker thread, and its fdatasync must also make the extent conversion durable (a
/// journal commit, or without a journal a synchronous write of the inode table block,
/// which ext4 serializes on that block's lock).
/// The log's writes always start at the block holding the previous partial block, so
/// with fallocate alone nearly every write was punted (see bench/RESULTS.md).
pub(crate) struct SegFile {
    /// Key of this file's descriptor in the shard's cache while sealed.
    id: u64,
    /// The open file while the segment is active (or being sealed); None once sealed.
    handle: RefCell<Option<Rc<DmaFile>>>,
    /// Only read from now on: the descriptor lives in the shard's cache.
    sealed: Cell<bool>,
    pub path: PathBuf,
    /// Bytes of the file written (data, or zeros ahead of it); the file may be longer.
    pub allocated: Cell<u64>,
    /// Bytes of the file an fdatasync made durable with their metadata: a write below this
    /// is a pure overwrite, durable after any cache flush of the device (`device_flush`).
    synced: Cell<u64>,
    /// The file's device, when its file system lets overwrites share one flush.
    device: Option<u64>,
    /// The segment was deleted: a pending seal must not recreate its index files.
    pub deleted: Cell<bool>,
    prefill: Cell<Prefill>,
    /// Failure of the last prefill, reported by the next `reserve`.
    prefill_failure: RefCell<Option<Failure>>,
    /// Notified when the prefill advances `allocated` or stops.
    prefill_progress: Event,
    /// The end an append waits for (`reserve`): prefill writes below it are urgent and skip the
    /// shard's turns (`PREFILL_WRITES_IN_FLIGHT`), those past it are ahead and take one.
    awaited_end: Cell<u64>,
    /// Notified when `awaited_end` grows or the prefill must stop: one waiting for its turn goes
    /// at once.
    prefill_urgent: Event,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Prefill {
    Idle,
    Running,
    /// Running, asked to stop at its next write (a truncate is waiting).
    Stopping,
}

impl SegFile {
    pub async fn open(path: PathBuf) -> Result<Rc<SegFile>, StorageError> {
        crate::failpoints::inject("segment::create", &path)
            .map_err(|e| StorageError::io("open", &path, e))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .dma_open(&path)
            .await
            .map_err(|e| StorageError::glommio("open", &path, e))?;
        let size = file
            .file_size()
            .await
            .map_err(|e| StorageError::glommio("stat", &path, e))?;
        let device = crate::device_flush::device_of(&file);
        Ok(Rc::new(SegFile {
            id: descriptors::next_file_id(),
            handle: RefCell::new(Some(Rc::new(file))),
            sealed: Cell::new(false),
            path,
            allocated: Cell::new(size),
            synced: Cell::new(0),
            device,
            deleted: Cell::new(false),
            prefill: Cell::new(Prefill::Idle),
            prefill_failure: Default::default(),
            prefill_progress: Event::default(),
            awaited_end: Cell::new(0),
            prefill_urgent: Event::default(),
        }))
    }

    /// The open file: the active segment's own, else the shard's cached one, else opened again
    /// (and cached). Callers hold the returned file for the operation's duration, so an eviction
    /// meanwhile closes the descriptor only once the operation is done.
    pub async fn dma(&self) -> Result<Rc<DmaFile>, StorageError> {
        if let Some(file) = self.cached_handle() {
            return Ok(file);
        }
        if self.deleted.get() {
            let gone = std::io::ErrorKind::NotFound.into();
            return Err(StorageError::io("reopen deleted segment", &self.path, gone));
        }
        crate::failpoints::inject("segment::open", &self.path)
            .map_err(|e| StorageError::io("reopen", &self.path, e))?;
        // Never `create`: a segment removed meanwhile must not come back empty.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&self.path)
            .await
            .map_err(|e| StorageError::glommio("reopen", &self.path, e))?;
        // Another caller may have opened it meanwhile, or the segment may have changed state.
        if let Some(theirs) = self.cached_handle() {
            return Ok(theirs);
        }
        let file = Rc::new(file);
        if self.sealed.get() {
            descriptors::put(self.id, file.clone());
        } else {
            *self.handle.borrow_mut() = Some(file.clone());
        }
        Ok(file)
    }

    fn cached_handle(&self) -> Option<Rc<DmaFile>> {
        if let Some(file) = self.handle.borrow().as_ref() {
            return Some(file.clone());
        }
        descriptors::get(self.id)
    }

    /// The segment is only read from now on: its descriptor goes to the shard's cache.
    pub fn seal(&self) {
        self.sealed.set(true);
        if let Some(file) = self.handle.borrow_mut().take() {
            descriptors::put(self.id, file);
        }
    }

    /// Its seal finished (synced, trimmed, indexes written), or recovery found it whole.
    pub fn is_sealed(&self) -> bool {
        self.sealed.get()
    }

    /// The file is a recycled segment (`spare`): every block below its size was written and
    /// synced by its earlier use, so writes there are pure overwrites, as over zeros ahead.
    fn adopt_written_blocks(&self) {
        let written = align_down(self.allocated.get());
        self.allocated.set(written);
        self.synced.set(written);
    }

    /// The segment is written again (a truncation made it active): it keeps its descriptor.
    pub fn unseal(&self) {
        self.sealed.set(false);
        if let Some(file) = descriptors::take(self.id) {
            *self.handle.borrow_mut() = Some(file);
        }
    }

    /// Closes the descriptor of a segment about to be removed (in-flight reads finish first).
    fn release(&self) {
        self.handle.borrow_mut().take();
        descriptors::take(self.id);
    }

    /// Makes sure the first `end` bytes are written (so a write below `end` is a pure
    /// overwrite), and keeps zeros written ahead of `end` by a background task: between
    /// half and all of `end` itself, at least 1 MiB and at most `step` (so the zeros on
    /// disk stay below `step`). Waits only when the data caught up with the zeros.
    pub async fn reserve(self: &Rc<Self>, end: u64, step: u64) -> Result<(), StorageError> {
        let ahead = end.clamp(PREFILL_AHEAD_MIN_BYTES, step.max(PREFILL_AHEAD_MIN_BYTES));
        loop {
            let progress = self.prefill_progress.listen();
            if let Some(f) = self.prefill_failure.borrow_mut().take() {
                return Err(f.to_error());
            }
            if end <= self.allocated.get() {
                break;
            }
            if end > self.awaited_end.get() {
                self.awaited_end.set(end);
                self.prefill_urgent.notify();
            }
            if self.prefill.get() == Prefill::Idle {
                self.start_prefill(align_up(end + ahead));
            }
            progress.await;
        }
        if self.prefill.get() == Prefill::Idle && self.allocated.get() < end + ahead / 2 {
            self.start_prefill(align_up(end + ahead));
        }
        Ok(())
    }

    fn start_prefill(self: &Rc<Self>, target: u64) {
        debug_assert!(self.prefill.get() == Prefill::Idle);
        self.prefill.set(Prefill::Running);
        let file = self.clone();
        glommio::spawn_local(async move {
            if let Err(e) = file.prefill_to(target).await {
                *file.prefill_failure.borrow_mut() = Some(Failure::from_error(&e));
            }
            file.prefill.set(Prefill::Idle);
            file.prefill_progress.notify();
        })
        .detach();
    }

    /// Writes zeros from `allocated` up to `target`: fallocate first (one extent
    /// allocation, and the writes below stay inside the file size so none of them is an
    /// extending write, which would lock the inode and wait for the data's writes), then
    /// zeros over it, then an fdatasync so that the extent conversions are committed here
    /// rather than by the data's next fdatasync. Each write advances `allocated`.
    async fn prefill_to(self: &Rc<Self>, target: u64) -> Result<(), StorageError> {
        // A partial last block (after recovery) holds data and is written already.
        let mut pos = align_up(self.allocated.get());
        if pos >= target {
            return Ok(());
        }
        let file = self.dma().await?;
        // keep_size = false: the file size moves once per step, not with each write.
        file.pre_allocate(target, false)
            .await
            .map_err(|e| StorageError::glommio("fallocate", &self.path, e))?;
        let zeros = shard_zeros();
        while pos < target {
            let turn = self.prefill_turn(pos).await?;
            if self.prefill.get() == Prefill::Stopping || self.deleted.get() {
                return Ok(());
            }
            let buf = if target - pos >= PREFILL_WRITE_BYTES as u64 {
                zeros.clone()
            } else {
                let mut b = glommio::allocate_dma_buffer((target - pos) as usize);
                b.as_bytes_mut().fill(0);
                Rc::new(b)
            };
            crate::failpoints::inject("segment::write", &self.path)
                .map_err(|e| StorageError::io("write zeros", &self.path, e))?;
            let n = file
                .write_rc_at(buf, pos)
                .await
                .map_err(|e| StorageError::glommio("write zeros", &self.path, e))?;
            drop(turn);
            let n = align_down(n as u64);
            if n == 0 {
                let e = std::io::ErrorKind::WriteZero.into();
                return Err(StorageError::io("write zeros", &self.path, e));
            }
            pos += n;
            self.allocated.set(pos);
            self.prefill_progress.notify();
        }
        self.sync().await
    }

    /// The shard's turn for a prefill write at `pos`, or None when an append waits for it or the
    /// prefill is asked to stop (then it goes at once, also after waiting in line for a turn).
    async fn prefill_turn(
        &self,
        pos: u64,
    ) -> Result<Option<glommio::sync::StaticPermit>, StorageError> {
        let turns = PREFILL_TURNS.with(Rc::clone);
        loop {
            let urgent = self.prefill_urgent.listen();
            let stopping = self.prefill.get() == Prefill::Stopping || self.deleted.get();
            if stopping || pos < self.awaited_end.get() {
                // A turn granted to this prefill just before it became urgent is not taken:
                // taking and giving one back wakes the next in line.
                drop(turns.try_acquire_static_permit(1));
                return Ok(None);
            }
            let turn = futures_lite::future::or(
                async { Some(turns.acquire_static_permit(1).await) },
                async {
                    urgent.await;
                    None
                },
            );
            if let Some(turn) = turn.await {
                let turn = turn.map_err(|e| StorageError::glommio("write zeros", &self.path, e));
                return turn.map(Some);
            }
        }
    }

    /// Stops a running prefill and waits until it has.
    pub(crate) async fn stop_prefill(&self) {
        loop {
            let progress = self.prefill_progress.listen();
            match self.prefill.get() {
                Prefill::Idle => return,
                Prefill::Running => {
                    self.prefill.set(Prefill::Stopping);
                    self.prefill_urgent.notify();
                }
                Prefill::Stopping => {}
            }
            progress.await;
        }
    }

    pub async fn truncate(&self, size: u64) -> Result<(), StorageError> {
        // A prefill write landing after the truncate would grow the file again.
        self.stop_prefill().await;
        self.dma()
            .await?
            .truncate(size)
            .await
            .map_err(|e| StorageError::glommio("truncate", &self.path, e))?;
        self.allocated.set(size);
        self.synced.set(self.synced.get().min(size));
        Ok(())
    }

    /// fdatasync, on the executor's blocking thread pool rather than through io_uring:
    /// io_uring punts an fdatasync to its io-wq, which ran every fdatasync of a shard on
    /// one worker thread, one after the other, so one partition's sync waited for every
    /// other partition's (bench/RESULTS.md). The pool runs them side by side.
    ///
    /// The call borrows the segment's own descriptor: a detached task holds the file open until
    /// the blocking call returns, even if this future is dropped. (A `dup` per fdatasync met
    /// EMFILE once descriptors ran out and took a working log offline: issue 14, item 10.)
    pub async fn sync(&self) -> Result<(), StorageError> {
        crate::failpoints::inject("segment::fdatasync", &self.path)
            .map_err(|e| StorageError::io("fdatasync", &self.path, e))?;
        // Every write that completed before the call is covered, with its metadata.
        let written = self.allocated.get();
        fdatasync_on_pool(&self.dma().await?, &self.path).await?;
        // (A truncate meanwhile lowered `allocated`: never claim more than is left.)
        let synced = written.min(self.allocated.get());
        self.synced.set(self.synced.get().max(synced));
        Ok(())
    }

    /// The device whose cache flush makes this file's completed writes below `end` durable
    /// (they overwrote blocks whose metadata is synced), or None if they need an fdatasync of
    /// this file.
    pub fn flush_device(&self, end: u64) -> Option<u64> {
        self.device.filter(|_| end <= self.synced.get())
    }

    pub fn device(&self) -> Option<u64> {
        self.device
    }

    /// Waits for a cache flush of the file's device that started after this call (see
    /// `flush_device`); returns the flush's duration.
    pub async fn flush_device_cache(&self, device: u64) -> Result<Duration, StorageError> {
        let file = self.dma().await?;
        crate::device_flush::DeviceFlush::of(device)
            .flush(file, &self.path)
            .await
    }

    /// Reads `[pos, pos + len)` (clipped at end of file) into memory of its own, with no copy:
    /// the direct read lands in the heap memory the returned `Bytes` slices, which can then be
    /// sent from any shard.
    pub async fn read(&self, pos: u64, len: usize) -> Result<Bytes, StorageError> {
        let start = align_down(pos);
        let end = align_up(pos + len as u64);
        crate::failpoints::inject("segment::read", &self.path)
            .map_err(|e| StorageError::io("read", &self.path, e))?;
        let size = (end - start) as usize;
        let (memory, lead) = aligned_memory(size);
        let memory = self
            .dma()
            .await?
            .read_into_aligned(start, size, memory)
            .await
            .map_err(|e| StorageError::glommio("read", &self.path, e))?;
        let read = memory.len() - lead;
        let from = lead + ((pos - start) as usize).min(read);
        let to = (from + len).min(memory.len());
        Ok(Bytes::from(memory).slice(from..to))
    }
}

/// Memory for a direct read of `size` bytes: an empty-looking vector whose length is the
/// zeroed lead up to the first `ALIGN`-aligned address, with `size` bytes of capacity after it.
fn aligned_memory(size: usize) -> (Vec<u8>, usize) {
    let mut memory: Vec<u8> = Vec::with_capacity(size + ALIGN as usize);
    let lead = memory.as_ptr().align_offset(ALIGN as usize);
    memory.resize(lead, 0);
    (memory, lead)
}

impl Drop for SegFile {
    fn drop(&mut self) {
        descriptors::take(self.id);
    }
}

/// One segment of the log. Shard-local; lives from creation (or recovery) to deletion.
pub(crate) struct Segment {
    pub base_offset: i64,
    /// Offset after the last batch (== base_offset when empty).
    pub next_offset: i64,
    /// Logical size in bytes (the file may be longer: pre-allocation).
    pub size: u64,
    /// Bytes known written and synced; reads from disk stay below this.
    pub durable_size: u64,
    pub file: Rc<SegFile>,
    pub index: SegmentIndex,
    /// Wall-clock creation time, for roll by age when no batch has a timestamp yet.
    pub created_ms: i64,
}

impl Segment {
    /// Marks the segment's file deleted (its files are about to be removed); returns its base.
    pub fn retire(&self) -> i64 {
        self.file.deleted.set(true);
        self.file.prefill_urgent.notify();
        self.file.release();
        self.base_offset
    }

    /// The time segment.ms is measured from (Kafka: first batch's max timestamp).
    pub fn roll_base_ms(&self) -> i64 {
        self.index
            .first_batch_timestamp()
            .unwrap_or(self.created_ms)
    }
}

/// Creates (or reuses, emptied) the segment file for `base` and makes its directory entry
/// durable before anything in it can be acknowledged. With `recycle`, the log's spare segment
/// becomes the file, its blocks already written (`spare`); returns whether it did.
pub(crate) async fn create_segment(
    dir: &Path,
    base: i64,
    config: &LogConfig,
    now_ms: i64,
    recycle: bool,
) -> Result<(Segment, bool), StorageError> {
    let recycled = recycle && crate::spare::take(dir, base).await?;
    let file = SegFile::open(log_path(dir, base)).await?;
    if recycled {
        file.adopt_written_blocks();
    } else if file.allocated.get() > 0 {
        file.truncate(0).await?;
    }
    // No zeros yet: the first write reserves them, so a partition that is opened and never
    // written costs no disk (issue 14: an idle partition must cost almost nothing).
    // Index files left by an earlier segment of the same base would be stale; removing
    // them also syncs the directory, making the new file's entry (or the rename) durable.
    remove_files(dir, vec![index_path(dir, base), time_index_path(dir, base)]).await?;
    let segment = Segment {
        base_offset: base,
        next_offset: base,
        size: 0,
        durable_size: 0,
        file,
        index: SegmentIndex::new(base, config.index_interval_bytes),
        created_ms: now_ms,
    };
    Ok((segment, recycled))
}

/// What a recovery scan of one segment file found.
pub(crate) struct ScanOutcome {
    pub index: SegmentIndex,
    pub next_offset: i64,
    pub valid_len: u64,
    pub batches: usize,
    /// Why the scan stopped before the end of the file, if it did.
    pub damage: Option<&'static str>,
}

/// Scans a segment: whole CRC-valid batches with contiguous offsets. With a saved index
/// (from `.index`/`.timeindex`), only the part from its last entry is scanned; if that
/// entry does not point at a valid batch the whole segment is scanned instead.
pub(crate) async fn scan_segment(
    file: &SegFile,
    base_offset: i64,
    interval_bytes: u32,
    saved: Option<SegmentIndex>,
) -> Result<ScanOutcome, StorageError> {
    let file_size = file
        .dma()
        .await?
        .file_size()
        .await
        .map_err(|e| StorageError::glommio("stat", &file.path, e))?;
    if let Some(mut index) = saved {
        let (pos, offset) = index.resume_point();
        let first = file.read(0, batch::HEADER_SIZE).await?;
        if let Ok(h) = batch::parse_header(&first) {
            index.set_first_batch_timestamp(h.max_timestamp);
            let o = scan_from(file, file_size, index, pos, offset).await?;
            if o.batches > 0 && h.base_offset == base_offset {
                return Ok(o);
            }
        }
        tracing::warn!(path = %file.path.display(), "index does not match the segment; rescanning it");
    }
    let index = SegmentIndex::new(base_offset, interval_bytes);
    scan_from(file, file_size, index, 0, base_offset).await
}

async fn scan_from(
    file: &SegFile,
    file_size: u64,
    mut index: SegmentIndex,
    mut pos: u64,
    mut next_offset: i64,
) -> Result<ScanOutcome, StorageError> {
    let mut batches = 0;
    let mut window = SCAN_WINDOW_BYTES;
    let damage = loop {
        if pos >= file_size {
            break None;
        }
        let len = (window as u64).min(file_size - pos) as usize;
        let data = file.read(pos, len).await?;
        let at_eof = pos + data.len() as u64 >= file_size;
        let s = batch::scan(&data, next_offset);
        let mut batches_in_window = s.batches.as_slice();
        let too_far = s
            .batches
            .iter()
            .position(|(at, _)| pos + *at as u64 > SEGMENT_BYTES_MAX);
        if let Some(i) = too_far {
            batches_in_window = &s.batches[..i];
        }
        for (at, h) in batches_in_window {
            index.on_batch(pos + *at as u64, h);
        }
        if let Some(i) = too_far {
            batches += i;
            if let Some((_, h)) = batches_in_window.last() {
                next_offset = h.next_offset();
            }
            pos += s.batches[i].0 as u64;
            break Some("segment larger than the maximum segment size");
        }
        batches += s.batches.len();
        if let Some((_, h)) = s.batches.last() {
            next_offset = h.next_offset();
        }
        pos += s.valid_len as u64;
        match s.stop {
            ScanStop::End if at_eof => break None,
            ScanStop::End => window = SCAN_WINDOW_BYTES,
            ScanStop::NeedMore { .. } if at_eof => break Some("batch cut at end of file"),
            ScanStop::NeedMore { needed } => window = window.max(needed),
            ScanStop::Invalid(reason) => break Some(reason),
        }
        if data.is_empty() {
            break Some("short read");
        }
    };
    Ok(ScanOutcome {
        index,
        next_offset,
        valid_len: pos,
        batches,
        damage,
    })
}

/// Forward scan of batch headers (no CRC) from `pos` below `limit`, for lookups in
/// sealed or durable data. Calls `visit(position, header)` until it returns false.
pub(crate) async fn walk_headers(
    file: &SegFile,
    mut pos: u64,
    limit: u64,
    mut visit: impl FnMut(u64, &BatchHeader) -> bool,
) -> Result<(), StorageError> {
    while pos < limit {
        let len = ((limit - pos) as usize).min(SCAN_WINDOW_BYTES);
        let data = file.read(pos, len).await?;
        if data.is_empty() {
            return Err(StorageError::CorruptSegment {
                path: file.path.clone(),
                position: pos,
                reason: "file shorter than its logical size".into(),
            });
        }
        let mut at = 0usize;
        while at < data.len() {
            let h = match batch::parse_header(&data[at..]) {
                Ok(h) => h,
                Err(batch::BatchError::Incomplete { .. }) if at > 0 => break,
                Err(e) => {
                    return Err(StorageError::CorruptSegment {
                        path: file.path.clone(),
                        position: pos + at as u64,
                        reason: format!("{e:?}"),
                    })
                }
            };
            if !visit(pos + at as u64, &h) {
                return Ok(());
            }
            at += h.size;
        }
        pos += at as u64;
    }
    Ok(())
}

/// fdatasync of `file` on the shard's blocking pool, with no descriptor of its own per call (a
/// `dup` and a close per round): a detached task holds the file open until the blocking call
/// returns, even if this future is dropped. Shared by segments and the commit log.
pub(crate) async fn fdatasync_on_pool(file: &Rc<DmaFile>, path: &Path) -> Result<(), StorageError> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    let open = file.clone();
    let synced = glommio::spawn_local(async move {
        let synced = glommio::executor()
            .spawn_blocking(move || {
                // SAFETY: `fd` stays open until this call returns: `open` holds its file,
                // and is dropped only after the call completed.
                if unsafe { libc::fdatasync(fd) } == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            })
            .await;
        drop(open);
        synced
    })
    .detach()
    .await
    .unwrap_or_else(|| Err(std::io::ErrorKind::Interrupted.into()));
    synced.map_err(|e| StorageError::io("fdatasync", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::run;
    use std::time::{Duration, Instant};

    /// Reads land in memory of their own: any position and length, clipped at the end of the
    /// file, and the bytes stay valid on another thread after the file is gone.
    #[test]
    fn reads_at_any_position_are_clipped_at_the_end_and_outlive_the_file() {
        run(|dir| async move {
            let path = dir.join("seg.log");
            let contents: Vec<u8> = (0..3 * ALIGN as usize + 100).map(|i| i as u8).collect();
            std::fs::write(&path, &contents).unwrap();
            let file = SegFile::open(path).await.unwrap();
            for (pos, len) in [(0, 1), (1, 4095), (4090, 10), (5000, 8192), (12000, 1000)] {
                let read = file.read(pos, len).await.unwrap();
                let end = (pos as usize + len).min(contents.len());
                assert_eq!(
                    &read[..],
                    &contents[pos as usize..end],
                    "at {pos}, {len} bytes"
                );
            }
            let read = file.read(100, 200).await.unwrap();
            drop(file);
            let elsewhere = std::thread::spawn(move || read.to_vec()).join().unwrap();
            assert_eq!(elsewhere, contents[100..300]);
        });
    }

    #[test]
    fn zeros_ahead_wait_for_the_shards_turn_but_zeros_an_append_waits_for_do_not() {
        run(|dir| async move {
            let file = SegFile::open(dir.join("seg.log")).await.unwrap();
            // Another prefill of the shard holds every turn.
            let turns = PREFILL_TURNS.with(Rc::clone);
            let held = turns
                .acquire_static_permit(PREFILL_WRITES_IN_FLIGHT)
                .await
                .unwrap();
            // An append needing its first 64 KiB gets them at once: one prefill write.
            let (end, step) = (64 << 10, 4 << 20);
            file.reserve(end, step).await.unwrap();
            assert_eq!(file.allocated.get(), PREFILL_WRITE_BYTES as u64);
            // The zeros beyond it (to end + 1 MiB) wait for a turn: nothing signals that a
            // write did not start, so give one the time it would take.
            glommio::timer::sleep(Duration::from_millis(50)).await;
            assert_eq!(file.allocated.get(), PREFILL_WRITE_BYTES as u64);
            drop(held);
            let target = align_up(end + PREFILL_AHEAD_MIN_BYTES);
            let deadline = Instant::now() + Duration::from_secs(10);
            while file.allocated.get() < target || file.prefill.get() != Prefill::Idle {
                assert!(Instant::now() < deadline, "the prefill never got its turn");
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            assert!(file.prefill_failure.borrow().is_none());
            assert_eq!(file.allocated.get(), target);
        });
    }
}
