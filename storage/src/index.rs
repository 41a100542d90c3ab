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

    /// `.timeindex` bytes, one entry per `.index` entry (Kafka style: a timestamp and
    /// the offset it was seen at): the largest batch max timestamp before the entry's
    /// batch (i64::MIN if none) i64, the last offset of that batch minus base u32.
    pub fn encode_time_index(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 12);
        for e in &self.entries {
            let (ts, offset) = e.max_before.unwrap_or((i64::MIN, self.base_offset));
            out.extend(ts.to_be_bytes());
            out.extend(((offset - self.base_offset) as u32).to_be_bytes());
        }
        out
    }

    /// Rebuilds an index from `.index` and `.timeindex` bytes; None unless both are
    /// well formed and consistent (same entry count, offsets and positions strictly
    /// increasing, first entry at position 0 and offset `base_offset`).
    pub fn decode(
        base_offset: i64,
        interval_bytes: u32,
        offset_index: &[u8],
        time_index: &[u8],
    ) -> Option<SegmentIndex> {
        if offset_index.is_empty()
            || !offset_index.chunks_exact(8).remainder().is_empty()
            || !time_index.chunks_exact(12).remainder().is_empty()
            || offset_index.len() / 8 != time_index.len() / 12
        {
            return None;
        }
        let mut ix = SegmentIndex::new(base_offset, interval_bytes);
        for (o, t) in offset_index
            .chunks_exact(8)
            .zip(time_index.chunks_exact(12))
        {
            let rel = u32::from_be_bytes(o[..4].try_into().expect("4 bytes"));
            let position = u32::from_be_bytes(o[4..].try_into().expect("4 bytes"));
            let ts = i64::from_be_bytes(t[..8].try_into().expect("8 bytes"));
            let ts_rel = u32::from_be_bytes(t[8..].try_into().expect("4 bytes"));
            let offset = base_offset + i64::from(rel);
            let max_before = (ts != i64::MIN).then_some((ts, base_offset + i64::from(ts_rel)));
            match ix.entries.last() {
                None if rel != 0 || position != 0 || max_before.is_some() => return None,
                Some(prev)
                    if offset <= prev.offset
                        || position <= prev.position
                        || max_before.is_none()
                        || max_before.is_some_and(|(_, o)| o >= offset) =>
                {
                    return None
                }
                _ => {}
            }
            ix.entries.push(IndexEntry {
                offset,
                position,
                max_before,
            });
        }
        Some(ix)
    }

    /// Prepares a decoded index to be continued by a scan from its last entry: returns
    /// (position, offset) of that entry, which the scan's first batch must match.
    pub fn resume_point(&mut self) -> (u64, i64) {
        let last = self.entries.pop().expect("decoded indexes are non-empty");
        self.max_timestamp = last.max_before;
        // The scan's first batch recreates the popped entry.
        self.bytes_since_entry = self.interval_bytes;
        (u64::from(last.position), last.offset)
    }

    pub fn set_first_batch_timestamp(&mut self, ts: i64) {
        self.first_batch_timestamp = Some(ts);
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

    #[test]
    fn decode_round_trips_and_rejects_garbage() {
        let mut ix = SegmentIndex::new(50, 100);
        let mut pos = 0;
        for i in 0..10 {
            ix.on_batch(pos, &h(50 + i, 60, 1000 - i * 10 + (i % 3) * 50));
            pos += 60;
        }
        let (o, t) = (ix.encode_offset_index(), ix.encode_time_index());
        let mut back = SegmentIndex::decode(50, 100, &o, &t).expect("valid");
        assert_eq!(back.entries, ix.entries);
        assert!(SegmentIndex::decode(50, 100, &o[..o.len() - 8], &t).is_none());
        assert!(SegmentIndex::decode(50, 100, &o[..o.len() - 1], &t[..t.len() - 12]).is_none());
        let mut swapped = o.clone();
        swapped[8..16].copy_from_slice(&o[..8]);
        assert!(SegmentIndex::decode(50, 100, &swapped, &t).is_none());
        assert!(SegmentIndex::decode(50, 100, &[], &[]).is_none());
        // Resuming from the last entry and re-feeding batches restores the same index.
        let (rpos, roff) = back.resume_point();
        assert_eq!((rpos, roff), (480, 58));
        back.on_batch(480, &h(58, 60, 1000 - 80 + 100));
        back.on_batch(540, &h(59, 60, 1000 - 90));
        assert_eq!(back.entries, ix.entries);
        assert_eq!(back.max_timestamp(), ix.max_timestamp());
    }
}
