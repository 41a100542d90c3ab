//! Kafka's RecordBatch v2 (magic 2): a zero-copy view over the bytes a producer sent,
//! the checks a broker applies before storing them, in-place header edits that keep
//! the batch byte-identical otherwise, a record iterator, bounded decompression, and a
//! builder for clients.
//!
//! The header's layout is `riffle_batch_header::RecordBatchHeader`, shared with the log.

mod builder;
mod compression;
mod records;
mod varint;
mod view;

#[cfg(test)]
mod crosscheck;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use builder::RecordBatchBuilder;
pub use records::{parse_records, Header, Record, RecordIter};
pub use view::{batches, Batches, RecordBatchView};

use riffle_batch_header::{LogOverhead, RecordBatchHeader, CRC_FROM, LOG_OVERHEAD, MAGIC_AT};

/// Header bytes before the first record.
pub const RECORD_BATCH_OVERHEAD: usize = riffle_batch_header::HEADER_BYTES;
/// The smallest record: length, attributes, timestampDelta, offsetDelta, keyLength,
/// valueLength and header count, one byte each.
pub(crate) const MIN_RECORD_BYTES: usize = 7;
/// The only magic this module reads.
pub const MAGIC_V2: i8 = riffle_batch_header::MAGIC_V2;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// Compression codec of a batch (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Kafka's codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// `None` for the ids Kafka does not define (5..7).
    pub fn from_id(id: i16) -> Option<Compression> {
        Compression::ALL.into_iter().find(|c| c.id() == id)
    }
}

/// Whether timestamps are the producer's (CreateTime) or the broker's (LogAppendTime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The batch attributes field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attributes(pub i16);

impl Attributes {
    /// The codec. An undefined id (5..7) reads as `Compression::None` here; `validate()`
    /// rejects it, and `records()`/`decompress()` refuse it, so only an unvalidated
    /// batch can show it: use `compression_id()`/`try_compression()` to tell.
    pub fn compression(self) -> Compression {
        self.try_compression().unwrap_or(Compression::None)
    }

    /// The codec, or `UnsupportedCompression` for ids 5..7.
    pub fn try_compression(self) -> Result<Compression, BatchError> {
        let id = self.compression_id();
        Compression::from_id(id).ok_or(BatchError::UnsupportedCompression(id))
    }

    /// The raw codec id, bits 0-2.
    pub fn compression_id(self) -> i16 {
        self.0 & COMPRESSION_MASK
    }

    pub fn timestamp_type(self) -> TimestampType {
        if self.0 & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(self) -> bool {
        self.0 & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(self) -> bool {
        self.0 & CONTROL_BIT != 0
    }
}

/// What is wrong with the bytes of a batch (all map to CORRUPT_MESSAGE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    #[error("truncated: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("batch length {0} below the minimum of 49")]
    BatchLength(i32),
    #[error("CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("{0:?} data does not decompress")]
    Decompression(Compression),
}

/// Why a record batch is refused. The broker maps each variant to one Kafka error code:
/// `Corrupt` → CORRUPT_MESSAGE, `InvalidRecord` → INVALID_RECORD,
/// `UnsupportedCompression` → UNSUPPORTED_COMPRESSION_TYPE, `UnsupportedMagic` →
/// UNSUPPORTED_VERSION (produce v3+ must carry magic 2) or CORRUPT_MESSAGE,
/// `DecompressedTooLarge` → MESSAGE_TOO_LARGE (or CORRUPT_MESSAGE),
/// `Compressed` is a caller mistake (call `decompress()` then `parse_records()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("corrupt record batch: {0}")]
    Corrupt(Corruption),
    #[error("invalid record batch: {0}")]
    InvalidRecord(&'static str),
    #[error("unsupported compression codec id {0}")]
    UnsupportedCompression(i16),
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    #[error("decompressed records exceed the limit of {max_bytes} bytes")]
    DecompressedTooLarge { max_bytes: usize },
    #[error("records() on a {0:?}-compressed batch: use decompress() and parse_records()")]
    Compressed(Compression),
}

impl From<Corruption> for BatchError {
    fn from(c: Corruption) -> Self {
        BatchError::Corrupt(c)
    }
}

/// The header of `batch` for an in-place edit.
fn header_mut(batch: &mut [u8]) -> &mut RecordBatchHeader {
    let len = batch.len();
    match RecordBatchHeader::view_mut(batch) {
        Some(header) => header,
        None => panic!("record batch setter on {len} bytes: call it on a parsed batch"),
    }
}

/// Writes the base offset (bytes 0..8, outside the CRC).
///
/// Panics if `batch` is shorter than the 61-byte header: call it on a parsed batch.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    header_mut(batch).log.base_offset.set(base_offset);
}

/// Writes the partition leader epoch (bytes 12..16, outside the CRC).
///
/// Panics if `batch` is shorter than the 61-byte header.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    header_mut(batch).partition_leader_epoch.set(epoch);
}

/// Marks the batch LogAppendTime with `timestamp_ms` as its max timestamp, as Kafka's
/// broker does for topics with `message.timestamp.type=LogAppendTime`, and recomputes
/// the CRC (attributes and maxTimestamp are CRC covered). The CRC covers bytes
/// 21..12+batchLength (or to the end of `batch` if it is shorter).
///
/// Panics if `batch` is shorter than the 61-byte header.
pub fn set_log_append_time(batch: &mut [u8], timestamp_ms: i64) {
    let len = batch.len();
    let header = header_mut(batch);
    let attributes = header.attributes.get();
    header.attributes.set(attributes | TIMESTAMP_TYPE_BIT);
    header.max_timestamp.set(timestamp_ms);
    let end = header.batch_size().map_or(len, |e| e.min(len));
    write_crc(batch, end);
}

/// Computes the CRC of `batch[..end]` and stores it in the header.
pub(crate) fn write_crc(batch: &mut [u8], end: usize) {
    let crc = crc32c::crc32c(&batch[CRC_FROM..end]);
    header_mut(batch).crc.set(crc);
}
