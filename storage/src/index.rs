//! Sparse per-segment index (sans-io): offset → file position every `index.interval.bytes`,
//! with the largest timestamp seen up to each entry (the time index). Encoded Kafka style
//! into `.index` (relative offset u32, position u32) and `.timeindex` (timestamp i64,
//! relative offset u32) when a segment is sealed or the log is closed.

use crate::batch::BatchHeader;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Base offset of the batch at `position`.
    pub offset: i64,
    pub position: u32,
    /// Largest batch max timestamp among the batches before this one, with the last
    /// offset of its batch (None if none): exact state to resume from after a
    /// truncation at this entry, and a bound for timestamp lookups.
    pub max_before: Option<(i64, i64)>,
}

#[derive(Clone, Debug)]
pub(crate) struct SegmentIndex {
    base_offset: i64,
    entries: Vec<IndexEntry>,
    bytes_since_entry: u64,
    interval_bytes: u64,
    /// Largest batch max timestamp in the segment and the last offset of that batch.
    max_timestamp: Option<(i64, i64)>,
    /// Max timestamp of the first batch: the time a segment's age is measured from.
    first_batch_timestamp: Option<i64>,
}

impl SegmentIndex {
    pub fn new(base_offset: i64, interval_bytes: u32) -> Self {
        SegmentIndex {
            base_offset,
            entries: Vec::new(),
            bytes_since_entry: 0,
            interval_bytes: u64::from(interval_bytes.max(1)),
            max_timestamp: None,
            first_batch_timestamp: None,
        }
    }

    /// Records a batch appended (or scanned) at `position`; batches arrive in log order.
    pub fn on_batch(&mut self, position: u64, h: &BatchHeader) {
        debug_assert!(h.base_offset >= self.base_offset);
        if self.entries.is_empty() || self.bytes_since_entry >= self.interval_bytes {
            self.entries.push(IndexEntry {
                offset: h.base_offset,
                position: u32::try_from(position)
                    .expect("segment positions fit u32 (segment_bytes < 4 GiB)"),
                max_before: self.max_timestamp,
            });
            self.bytes_since_entry = 0;
        }
        if self
            .max_timestamp
            .is_none_or(|(ts, _)| h.max_timestamp > ts)
        {
            self.max_timestamp = Some((h.max_timestamp, h.last_offset()));
        }
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = Some(h.max_timestamp);
        }
        self.bytes_since_entry += h.size as u64;
    }

    /// Position of the last indexed batch starting at or before `offset` (0 if none).
    pub fn floor_position(&self, offset: i64) -> u64 {
        let i = self.entries.partition_point(|e| e.offset <= offset);
        if i == 0 {
            0
        } else {
            u64::from(self.entries[i - 1].position)
        }
    }

    /// Position from which a forward scan finds the first batch with max timestamp >= ts.
    pub fn timestamp_scan_position(&self, timestamp_ms: i64) -> u64 {
        let i = self
            .entries
            .partition_point(|e| e.max_before.is_none_or(|(ts, _)| ts < timestamp_ms));
        if i == 0 {
            0
        } else {
            u64::from(self.entries[i - 1].position)
        }
    }

    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.max_timestamp
    }

    pub fn first_batch_timestamp(&self) -> Option<i64> {
        self.first_batch_timestamp
    }

    /// Drops what covers offsets >= `offset` and returns the position a rescan must start
    /// from (feeding `on_batch` again) to rebuild the rest exactly.
    pub fn truncate(&mut self, offset: i64) -> u64 {
        let keep = self.entries.partition_point(|e| e.offset < offset);
        self.entries.truncate(keep);
        // Resume from the last kept entry: its state before its batch is exact.
        match self.entries.pop() {
            Some(last) if !self.entries.is_empty() => {
                self.max_timestamp = last.max_before;
                // Force the entry at `last.position` to be recreated by the rescan.
                self.bytes_since_entry = self.interval_bytes;
                u64::from(last.position)
            }
            _ => {
                *self = SegmentIndex::new(self.base_offset, self.interval_bytes as u32);
                0
            }
        }
    }

    /// `.index` bytes: (offset - base) u32, position u32, big-endian.
    pub fn encode_offset_index(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 8);
        for e in &self.entries {
            out.extend(((e.offset - self.base_offset) as u32).to_be_bytes());
            out.extend(e.position.to_be_bytes());
        }
        out
    }

    /// `.timeindex` bytes: largest timestamp before the entry's batch (-1 if none) i64,
    /// (offset - base) u32, big-endian.
    pub fn encode_time_index(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 12);
        for e in &self.entries {
            out.extend(e.max_before.map_or(-1, |(ts, _)| ts).to_be_bytes());
            out.extend(((e.offset - self.base_offset) as u32).to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(base: i64, size: usize, ts: i64) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            size,
            last_offset_delta: 0,
            base_timestamp: ts,
            max_timestamp: ts,
        }
    }

    #[test]
    fn sparse_entries_and_lookups() {
        let mut ix = SegmentIndex::new(100, 100);
        let mut pos = 0;
        for i in 0..10 {
            ix.on_batch(pos, &h(100 + i, 60, 1000 + i * 10));
            pos += 60;
        }
        // Entry at the first batch and after every >= 100 bytes.
        assert_eq!(
            ix.entries.iter().map(|e| e.offset).collect::<Vec<_>>(),
            vec![100, 102, 104, 106, 108]
        );
        assert_eq!(ix.floor_position(103), 120);
        assert_eq!(ix.floor_position(99), 0);
        assert_eq!(ix.timestamp_scan_position(1045), 240);
        assert_eq!(ix.max_timestamp(), Some((1090, 109)));
        let rescan = ix.truncate(105);
        assert_eq!(rescan, 240);
        assert_eq!(ix.max_timestamp(), Some((1030, 103)));
        assert_eq!(ix.encode_offset_index().len(), 16);
        assert_eq!(ix.encode_time_index().len(), 24);
    }
}
