//! One segment: its DMA file, logical size and sparse index, plus the file helpers
//! (create, scan, aligned reads) the log uses. Shard-local, lives as long as the segment.

use crate::batch::{self, BatchHeader, ScanStop};
use crate::error::StorageError;
use crate::index::SegmentIndex;
use bytes::Bytes;
use glommio::io::{DmaFile, OpenOptions};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

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

/// A segment's open file, shared by the log, in-flight writes and reads.
pub(crate) struct SegFile {
    pub file: DmaFile,
    pub path: PathBuf,
    /// Bytes reserved with fallocate so far.
    pub allocated: Cell<u64>,
    /// The segment was deleted: a pending seal must not recreate its index files.
    pub deleted: Cell<bool>,
}

impl SegFile {
    pub async fn open(path: PathBuf) -> Result<Rc<SegFile>, StorageError> {
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
        Ok(Rc::new(SegFile {
            file,
            path,
            allocated: Cell::new(size),
            deleted: Cell::new(false),
        }))
    }

    /// Makes sure at least `end` bytes are allocated, growing in `step` increments.
    pub async fn reserve(&self, end: u64, step: u64) -> Result<(), StorageError> {
        if end <= self.allocated.get() {
            return Ok(());
        }
        let target = align_up(end.max(self.allocated.get() + step));
        // keep_size = false: the file size moves once per step, so fdatasync of ordinary
        // appends does not carry a size change. Recovery trims the zero tail.
        self.file
            .pre_allocate(target, false)
            .await
            .map_err(|e| StorageError::glommio("fallocate", &self.path, e))?;
        self.allocated.set(target);
        Ok(())
    }

    pub async fn truncate(&self, size: u64) -> Result<(), StorageError> {
        self.file
            .truncate(size)
            .await
            .map_err(|e| StorageError::glommio("truncate", &self.path, e))?;
        self.allocated.set(size);
        Ok(())
    }

    pub async fn sync(&self) -> Result<(), StorageError> {
        self.file
            .fdatasync()
            .await
            .map_err(|e| StorageError::glommio("fdatasync", &self.path, e))
    }

    /// Reads `[pos, pos + len)` (clipped at end of file) and copies it once into `Bytes`.
    pub async fn read(&self, pos: u64, len: usize) -> Result<Bytes, StorageError> {
        let start = align_down(pos);
        let end = align_up(pos + len as u64);
        let r = self
            .file
            .read_at_aligned(start, (end - start) as usize)
            .await
            .map_err(|e| StorageError::glommio("read", &self.path, e))?;
        let from = ((pos - start) as usize).min(r.len());
        let to = (from + len).min(r.len());
        Ok(Bytes::copy_from_slice(&r[from..to]))
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
        self.base_offset
    }

    /// The time segment.ms is measured from (Kafka: first batch's max timestamp).
    pub fn roll_base_ms(&self) -> i64 {
        self.index
            .first_batch_timestamp()
            .unwrap_or(self.created_ms)
    }
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
        .file
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
            .position(|(at, _)| pos + *at as u64 > crate::log::SEGMENT_BYTES_MAX);
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
