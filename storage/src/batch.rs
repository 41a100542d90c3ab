//! RecordBatch v2 header fields the log needs, parsed from plain bytes (sans-io) through
//! the shared `riffle_batch_header` view, so the crate stays independent of
//! riffle-protocol: only offsets, lengths, timestamps and the CRC32C are read here.

pub(crate) use riffle_batch_header::HEADER_BYTES as HEADER_SIZE;
use riffle_batch_header::{LogOverhead, RecordBatchHeader, MAGIC_AT, MAGIC_V2};

/// Bytes at the start of a batch that the log patches (base offset, length, leader epoch:
/// everything before the magic, none of it CRC-covered).
pub(crate) const PATCHED_PREFIX: usize = MAGIC_AT;
/// Largest batch the log accepts or believes on disk (matches the broker's message.max.bytes cap).
pub(crate) const BATCH_SIZE_MAX: usize = 64 << 20;

/// The header fields of one stored batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub base_offset: i64,
    /// Whole batch size on disk, `batch_length + 12`.
    pub size: usize,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
}

impl BatchHeader {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
}

/// Why bytes are not a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BatchError {
    /// Fewer bytes than the header or the announced length: a cut batch.
    Incomplete {
        needed: usize,
    },
    Invalid(&'static str),
}

/// Parses and sanity-checks the header at the start of `b` (no CRC check).
pub(crate) fn parse_header(b: &[u8]) -> Result<BatchHeader, BatchError> {
    let Some(h) = RecordBatchHeader::view(b) else {
        return Err(BatchError::Incomplete {
            needed: HEADER_SIZE,
        });
    };
    let Some(size) = h.batch_size() else {
        return Err(BatchError::Invalid("batch length too small"));
    };
    if size > BATCH_SIZE_MAX {
        return Err(BatchError::Invalid("batch length too large"));
    }
    if h.magic != MAGIC_V2 {
        return Err(BatchError::Invalid("magic is not 2"));
    }
    let last_offset_delta = h.last_offset_delta.get();
    if last_offset_delta < 0 {
        return Err(BatchError::Invalid("negative last offset delta"));
    }
    let base_offset = h.base_offset();
    if base_offset < 0 {
        return Err(BatchError::Invalid("negative base offset"));
    }
    Ok(BatchHeader {
        base_offset,
        size,
        last_offset_delta,
        base_timestamp: h.base_timestamp.get(),
        max_timestamp: h.max_timestamp.get(),
    })
}

/// Parses the header and checks the CRC32C over the whole batch at the start of `b`.
pub(crate) fn parse_checked(b: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = parse_header(b)?;
    let Some(batch) = b.get(..header.size) else {
        return Err(BatchError::Incomplete {
            needed: header.size,
        });
    };
    let stored = RecordBatchHeader::view(batch).map(|h| h.crc.get());
    if riffle_batch_header::compute_crc(batch) != stored {
        return Err(BatchError::Invalid("crc32c mismatch"));
    }
    Ok(header)
}

/// Validates a batch handed to `append`: one whole batch, exact length.
pub(crate) fn validate_for_append(b: &[u8]) -> Result<BatchHeader, &'static str> {
    match parse_header(b) {
        Ok(h) if h.size == b.len() => Ok(h),
        Ok(_) => Err("batch length does not match the buffer"),
        Err(BatchError::Incomplete { .. }) => Err("shorter than a RecordBatch v2 header"),
        Err(BatchError::Invalid(reason)) => Err(reason),
    }
}

/// The 16 patched leading bytes: assigned base offset, then length and leader epoch as given.
pub(crate) fn patched_prefix(batch: &[u8], base_offset: i64) -> [u8; PATCHED_PREFIX] {
    let mut p = [0u8; PATCHED_PREFIX];
    p.copy_from_slice(&batch[..PATCHED_PREFIX]);
    let overhead = LogOverhead::view_mut(&mut p).expect("the prefix holds the log overhead");
    overhead.base_offset.set(base_offset);
    p
}

/// Where a scan of segment bytes stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ScanStop {
    /// All bytes consumed exactly.
    End,
    /// A batch starts at `valid_len` but more bytes are needed to judge it.
    NeedMore { needed: usize },
    /// Bytes at `valid_len` are not a valid next batch.
    Invalid(&'static str),
}

/// Result of [`scan`]: whole valid batches from the start of the buffer.
#[derive(Debug)]
pub(crate) struct Scan {
    pub batches: Vec<(usize, BatchHeader)>,
    pub valid_len: usize,
    pub stop: ScanStop,
}

/// Scans whole, CRC-valid batches with contiguous offsets starting at `next_offset`.
/// Pure function over bytes: recovery feeds it windows of a segment.
pub(crate) fn scan(b: &[u8], mut next_offset: i64) -> Scan {
    let mut at = 0;
    let mut batches = Vec::new();
    let stop = loop {
        if at == b.len() {
            break ScanStop::End;
        }
        match parse_checked(&b[at..]) {
            Ok(h) if h.base_offset != next_offset => {
                break ScanStop::Invalid("base offset not contiguous");
            }
            Ok(h) => {
                batches.push((at, h));
                next_offset = h.next_offset();
                at += h.size;
            }
            Err(BatchError::Incomplete { needed }) => break ScanStop::NeedMore { needed },
            Err(BatchError::Invalid(reason)) => break ScanStop::Invalid(reason),
        }
    };
    Scan {
        batches,
        valid_len: at,
        stop,
    }
}

#[cfg(test)]
pub(crate) mod test_batch {
    //! Builds valid RecordBatch v2 bytes for tests (records are opaque filler).
    use riffle_batch_header::{RecordBatchHeader, HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2};

    pub fn make(base_offset: i64, records: i32, max_timestamp: i64, payload: &[u8]) -> Vec<u8> {
        let size = HEADER_BYTES + payload.len();
        let mut b = vec![0u8; size];
        let h = RecordBatchHeader::view_mut(&mut b).expect("header-sized");
        h.log.base_offset.set(base_offset);
        h.log.batch_length.set((size - LOG_OVERHEAD) as i32);
        h.partition_leader_epoch.set(7);
        h.magic = MAGIC_V2;
        h.last_offset_delta.set(records - 1);
        h.base_timestamp.set(max_timestamp);
        h.max_timestamp.set(max_timestamp);
        h.producer_id.set(-1);
        h.record_count.set(records);
        b[HEADER_BYTES..].copy_from_slice(payload);
        let crc = riffle_batch_header::compute_crc(&b).expect("a whole header");
        RecordBatchHeader::view_mut(&mut b)
            .expect("header-sized")
            .crc
            .set(crc);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::test_batch::make;
    use super::*;

    #[test]
    fn scan_stops_at_cut_garbage_and_zeros() {
        let mut log = make(5, 3, 100, b"abc");
        log.extend(make(8, 1, 101, b"hello"));
        let whole = log.len();
        let s = scan(&log, 5);
        assert_eq!(s.valid_len, whole);
        assert_eq!(s.stop, ScanStop::End);
        assert_eq!(s.batches.len(), 2);
        assert_eq!(s.batches[1].1.next_offset(), 9);
        for cut in 0..whole {
            let s = scan(&log[..cut], 5);
            assert!(s.valid_len <= cut);
            assert!(matches!(s.stop, ScanStop::NeedMore { .. } | ScanStop::End));
        }
        let mut zeros = log.clone();
        zeros.extend([0u8; 4096]);
        let s = scan(&zeros, 5);
        assert_eq!(s.valid_len, whole);
        assert!(matches!(s.stop, ScanStop::Invalid(_)));
        let mut flipped = log.clone();
        let n = flipped.len();
        flipped[n - 1] ^= 1;
        let s = scan(&flipped, 5);
        assert_eq!(s.batches.len(), 1);
        assert_eq!(s.stop, ScanStop::Invalid("crc32c mismatch"));
        assert_eq!(
            scan(&log, 6).stop,
            ScanStop::Invalid("base offset not contiguous")
        );
    }

    #[test]
    fn validate_for_append_checks_length() {
        let b = make(0, 2, 1, b"x");
        assert!(validate_for_append(&b).is_ok());
        assert!(validate_for_append(&b[..b.len() - 1]).is_err());
        assert!(validate_for_append(&b[..10]).is_err());
    }
}
