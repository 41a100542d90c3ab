//! Reading a log: whole stored batches from the tail cache or from disk (DMA reads with
//! read-ahead, each batch CRC-checked), and the lookups by timestamp. Runs on the log's
//! shard, beside appends and the writer.

use crate::batch::{self, HEADER_SIZE};
use crate::error::StorageError;
use crate::log::PartitionLog;
use crate::segment::{walk_headers, SegFile};
use crate::state::ReadAhead;
use bytes::Bytes;
use std::rc::Rc;

/// DMA read size for data older than the tail cache (sequential consumers hit the rest).
const READ_AHEAD_BYTES: usize = 1 << 20;

/// Whole batches as stored, ready to send in order.
#[derive(Clone, Debug, Default)]
pub struct ReadResult {
    pub chunks: Vec<Bytes>,
    pub bytes: usize,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

impl PartitionLog {
    /// Whole batches from the one containing `from_offset`, up to `max_bytes` (at least
    /// one batch). Empty at the log end; OffsetOutOfRange below the start or past the end.
    /// `max_bytes` 0 reads no batch: it checks the offset and answers the log's positions.
    pub async fn read(
        &self,
        from_offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, StorageError> {
        let (file, pos, limit, result) = {
            let s = self.shared.state.borrow();
            s.check_usable()?;
            if from_offset < s.offsets.log_start() || from_offset > s.offsets.log_end() {
                return Err(s.out_of_range(from_offset));
            }
            let mut result = ReadResult {
                log_start_offset: s.offsets.log_start(),
                log_end_offset: s.offsets.log_end(),
                ..ReadResult::default()
            };
            if from_offset == s.offsets.log_end() || max_bytes == 0 {
                return Ok(result);
            }
            if s.cache
                .first_offset()
                .is_some_and(|first| first <= from_offset)
            {
                result.bytes = s.cache.read(from_offset, max_bytes, &mut result.chunks);
                self.shared.observe(|o| o.read_served(true));
                return Ok(result);
            }
            self.shared.observe(|o| o.read_served(false));
            let seg = &s.segments[s.segment_for(from_offset)];
            (
                seg.file.clone(),
                seg.index.floor_position(from_offset),
                seg.durable_size,
                result,
            )
        };
        self.read_disk(&file, from_offset, pos, limit, max_bytes, result)
            .await
            .map_err(|e| {
                // Retention or DeleteRecords removed the segment meanwhile (its file, closed by
                // the shard's descriptor cache, cannot be opened again): the offset is gone.
                let s = self.shared.state.borrow();
                if file.deleted.get() && from_offset < s.offsets.log_start() {
                    s.out_of_range(from_offset)
                } else {
                    e
                }
            })
    }

    /// The batches of `file` from the one holding `from_offset` (at or after `pos`), below
    /// `limit`.
    async fn read_disk(
        &self,
        file: &Rc<SegFile>,
        from_offset: i64,
        mut pos: u64,
        limit: u64,
        max_bytes: usize,
        mut result: ReadResult,
    ) -> Result<ReadResult, StorageError> {
        while pos < limit {
            let head = self.disk_bytes(file, pos, HEADER_SIZE, limit).await?;
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
                self.disk_bytes(file, pos, h.size, limit).await?
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
            let s = self.shared.state.borrow();
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
        self.shared.state.borrow_mut().read_ahead = Some(ReadAhead {
            file: file.clone(),
            pos,
            data: data.clone(),
        });
        Ok(data)
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
                let s = self.shared.state.borrow();
                s.check_usable()?;
                let start = s.offsets.log_start();
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
            let s = self.shared.state.borrow();
            let seg = s.segments.get(seg_idx - 1);
            if seg.is_none_or(|seg| seg.durable_size < seg.size) {
                // The rest of this segment (and all later ones) is not durable yet: cached.
                return Ok(s.cache.find_timestamp(timestamp_ms, start));
            }
        }
    }

    /// The largest batch max timestamp and the last offset of its batch (ListOffsets -3).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let s = self.shared.state.borrow();
        let mut best: Option<(i64, i64)> = None;
        for seg in &s.segments {
            if let Some((ts, off)) = seg.index.max_timestamp() {
                if off >= s.offsets.log_start() && best.is_none_or(|(b, _)| ts > b) {
                    best = Some((ts, off));
                }
            }
        }
        for h in s.staged.headers() {
            if best.is_none_or(|(ts, _)| h.max_timestamp > ts) {
                best = Some((h.max_timestamp, h.last_offset()));
            }
        }
        best
    }
}
