//! The tail cache: recent batches kept as the producer's bytes (no copy), with the
//! assigned base offset in a separate 16-byte prefix. Bounded by bytes, but a batch is
//! only evicted once it is durable, so everything not yet on disk is always readable here.

use bytes::Bytes;
use std::collections::VecDeque;

pub(crate) struct CachedBatch {
    pub base_offset: i64,
    pub next_offset: i64,
    pub max_timestamp: i64,
    /// Patched first 16 bytes (assigned base offset, length, leader epoch).
    pub prefix: Bytes,
    /// The batch from byte 16 on, as received.
    pub body: Bytes,
}

impl CachedBatch {
    pub fn size(&self) -> usize {
        self.prefix.len() + self.body.len()
    }
}

#[derive(Default)]
pub(crate) struct TailCache {
    batches: VecDeque<CachedBatch>,
    size_bytes: usize,
}

impl TailCache {
    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    pub fn push(&mut self, b: CachedBatch) {
        debug_assert!(self
            .batches
            .back()
            .is_none_or(|last| last.next_offset == b.base_offset));
        self.size_bytes += b.size();
        self.batches.push_back(b);
    }

    /// Evicts the oldest durable batches while the cache is over `limit_bytes`.
    pub fn evict(&mut self, limit_bytes: usize, durable_offset: i64) {
        while self.size_bytes > limit_bytes {
            match self.batches.front() {
                Some(b) if b.next_offset <= durable_offset => {
                    self.size_bytes -= b.size();
                    self.batches.pop_front();
                }
                _ => break,
            }
        }
    }

    pub fn first_offset(&self) -> Option<i64> {
        self.batches.front().map(|b| b.base_offset)
    }

    /// Appends chunks of whole batches from the one containing `from_offset`, up to
    /// `max_bytes` (at least one batch). Returns the bytes added.
    pub fn read(&self, from_offset: i64, max_bytes: usize, out: &mut Vec<Bytes>) -> usize {
        let start = self
            .batches
            .partition_point(|b| b.next_offset <= from_offset);
        let mut total = 0;
        for b in self.batches.iter().skip(start) {
            if total > 0 && total + b.size() > max_bytes {
                break;
            }
            out.push(b.prefix.clone());
            out.push(b.body.clone());
            total += b.size();
            if total >= max_bytes {
                break;
            }
        }
        total
    }

    /// Drops batches at or after `end_offset` (the new log end, a batch boundary).
    pub fn truncate(&mut self, end_offset: i64) {
        while let Some(b) = self.batches.back() {
            if b.base_offset < end_offset {
                break;
            }
            self.size_bytes -= b.size();
            self.batches.pop_back();
        }
    }

    /// First batch at or after `start_offset` with max timestamp >= `timestamp_ms`.
    pub fn find_timestamp(&self, timestamp_ms: i64, start_offset: i64) -> Option<(i64, i64)> {
        self.batches
            .iter()
            .find(|b| b.next_offset > start_offset && b.max_timestamp >= timestamp_ms)
            .map(|b| (b.base_offset.max(start_offset), b.max_timestamp))
    }

    pub fn clear(&mut self) {
        self.batches.clear();
        self.size_bytes = 0;
    }
}
