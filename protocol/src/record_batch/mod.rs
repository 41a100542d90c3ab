//! Kafka's RecordBatch v2 (magic 2): a zero-copy view over the bytes a producer sent,
//! the checks a broker applies before storing them, in-place header edits that keep
//! the batch byte-identical otherwise, a record iterator, bounded decompression, and a
//! builder for clients.
//!
//! Header layout (big endian), offsets in bytes:
//! baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12, magic i8 @16,
//! crc u32 @17 (CRC-32C over bytes 21..end), attributes i16 @21, lastOffsetDelta i32 @23,
//! baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43, producerEpoch i16 @51,
//! baseSequence i32 @53, recordCount i32 @57, records @61.

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

/// Header bytes before the first record.
pub const RECORD_BATCH_OVERHEAD: usize = 61;
/// Bytes before the CRC-covered part; the batch length counts from here on.
pub(crate) const LOG_OVERHEAD: usize = 12;
/// Smallest legal `batchLength`: the header after baseOffset and batchLength.
pub(crate) const MIN_BATCH_LENGTH: i32 = (RECORD_BATCH_OVERHEAD - LOG_OVERHEAD) as i32;
/// The smallest record: length, attributes, timestampDelta, offsetDelta, keyLength,
/// valueLength and header count, one byte each.
pub(crate) const MIN_RECORD_BYTES: usize = 7;
/// The only magic this module reads.
pub const MAGIC_V2: i8 = 2;

pub(crate) const BASE_OFFSET_AT: usize = 0;
pub(crate) const BATCH_LENGTH_AT: usize = 8;
pub(crate) const PARTITION_LEADER_EPOCH_AT: usize = 12;
pub(crate) const MAGIC_AT: usize = 16;
pub(crate) const CRC_AT: usize = 17;
pub(crate) const ATTRIBUTES_AT: usize = 21;
pub(crate) const LAST_OFFSET_DELTA_AT: usize = 23;
pub(crate) const BASE_TIMESTAMP_AT: usize = 27;
pub(crate) const MAX_TIMESTAMP_AT: usize = 35;
pub(crate) const PRODUCER_ID_AT: usize = 43;
pub(crate) const PRODUCER_EPOCH_AT: usize = 51;
pub(crate) const BASE_SEQUENCE_AT: usize = 53;
pub(crate) const RECORD_COUNT_AT: usize = 57;

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

fn header_len_checked(batch: &[u8]) -> usize {
    assert!(
        batch.len() >= RECORD_BATCH_OVERHEAD,
        "record batch setter on {} bytes: call it on a parsed batch",
        batch.len()
    );
    batch.len()
}

/// Writes the base offset (bytes 0..8, outside the CRC).
///
/// Panics if `batch` is shorter than the 61-byte header: call it on a parsed batch.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    header_len_checked(batch);
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch (bytes 12..16, outside the CRC).
///
/// Panics if `batch` is shorter than the 61-byte header.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    header_len_checked(batch);
    batch[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch LogAppendTime with `timestamp_ms` as its max timestamp, as Kafka's
/// broker does for topics with `message.timestamp.type=LogAppendTime`, and recomputes
/// the CRC (attributes and maxTimestamp are CRC covered). The CRC covers bytes
/// 21..12+batchLength (or to the end of `batch` if it is shorter).
///
/// Panics if `batch` is shorter than the 61-byte header.
pub fn set_log_append_time(batch: &mut [u8], timestamp_ms: i64) {
    let len = header_len_checked(batch);
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_AT], batch[ATTRIBUTES_AT + 1]]);
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2]
        .copy_from_slice(&(attributes | TIMESTAMP_TYPE_BIT).to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    let batch_length = i32::from_be_bytes([
        batch[BATCH_LENGTH_AT],
        batch[BATCH_LENGTH_AT + 1],
        batch[BATCH_LENGTH_AT + 2],
        batch[BATCH_LENGTH_AT + 3],
    ]);
    let end = usize::try_from(batch_length)
        .ok()
        .and_then(|l| l.checked_add(LOG_OVERHEAD))
        .map_or(len, |e| e.min(len));
    write_crc(batch, end);
}

/// Computes the CRC over 21..end and stores it at 17.
pub(crate) fn write_crc(batch: &mut [u8], end: usize) {
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..end]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}
