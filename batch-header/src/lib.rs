//! The fixed 61-byte header of a Kafka RecordBatch v2 (magic 2), described once as a
//! zero-copy view over the batch bytes. Sans-io and dependency-free apart from zerocopy
//! and CRC-32C, so the codec (`riffle-protocol`) and the log (`riffle-storage`) share the
//! layout without depending on each other.

use core::mem::{offset_of, size_of};
use zerocopy::byteorder::big_endian::{I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The first 12 bytes of every batch: its base offset and the length of the rest. Kafka's
/// `LOG_OVERHEAD`: all a reader needs to step from one stored batch to the next.
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
)]
#[repr(C)]
pub struct LogOverhead {
    pub base_offset: I64,
    /// Bytes after these 12: the batch is `LOG_OVERHEAD + batch_length` long.
    pub batch_length: I32,
}

/// The RecordBatch v2 header, big endian, as it lies on the wire and on disk.
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
)]
#[repr(C)]
pub struct RecordBatchHeader {
    pub log: LogOverhead,
    pub partition_leader_epoch: I32,
    pub magic: i8,
    /// CRC-32C of every byte from `attributes` to the end of the batch.
    pub crc: U32,
    pub attributes: I16,
    pub last_offset_delta: I32,
    pub base_timestamp: I64,
    pub max_timestamp: I64,
    pub producer_id: I64,
    pub producer_epoch: I16,
    pub base_sequence: I32,
    pub record_count: I32,
}

/// Header bytes before the first record.
pub const HEADER_BYTES: usize = size_of::<RecordBatchHeader>();
/// Bytes before the part `batch_length` counts (base offset + batch length).
pub const LOG_OVERHEAD: usize = size_of::<LogOverhead>();
/// Smallest legal `batch_length`: the header after the log overhead.
pub const MIN_BATCH_LENGTH: i32 = (HEADER_BYTES - LOG_OVERHEAD) as i32;
/// The only magic this layout describes.
pub const MAGIC_V2: i8 = 2;
/// Where the magic lies: at the same place in every message format, so it can be read
/// before knowing which layout the rest has.
pub const MAGIC_AT: usize = offset_of!(RecordBatchHeader, magic);
/// The CRC covers the batch from here (the attributes) to its end; the fields before it
/// (base offset, length, leader epoch, magic, the CRC itself) can be rewritten in place
/// by a broker without recomputing it.
pub const CRC_FROM: usize = offset_of!(RecordBatchHeader, attributes);

const _: () = assert!(
    HEADER_BYTES == 61,
    "Kafka's RecordBatch v2 header is 61 bytes"
);
const _: () = assert!(LOG_OVERHEAD == 12);
const _: () = assert!(MAGIC_AT == 16);
const _: () = assert!(CRC_FROM == 21);

impl RecordBatchHeader {
    /// The header at the start of `bytes`, or None when fewer than 61 bytes are given.
    /// Nothing in it is checked: every field is as untrusted as the bytes.
    pub fn view(bytes: &[u8]) -> Option<&RecordBatchHeader> {
        RecordBatchHeader::ref_from_prefix(bytes)
            .ok()
            .map(|(h, _)| h)
    }

    /// The header at the start of `bytes` for in-place edits, or None when fewer than 61
    /// bytes are given.
    pub fn view_mut(bytes: &mut [u8]) -> Option<&mut RecordBatchHeader> {
        RecordBatchHeader::mut_from_prefix(bytes)
            .ok()
            .map(|(h, _)| h)
    }

    pub fn base_offset(&self) -> i64 {
        self.log.base_offset.get()
    }

    pub fn batch_length(&self) -> i32 {
        self.log.batch_length.get()
    }

    /// The whole batch's size, `LOG_OVERHEAD + batch_length`, or None when the length is
    /// below the header's own (a batch cannot be shorter than its header).
    pub fn batch_size(&self) -> Option<usize> {
        self.log.batch_size()
    }

    /// `base_offset + last_offset_delta`, wrapping: the fields are untrusted.
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .wrapping_add(i64::from(self.last_offset_delta.get()))
    }
}

impl LogOverhead {
    /// The 12-byte prefix at the start of `bytes`, or None when fewer are given.
    pub fn view(bytes: &[u8]) -> Option<&LogOverhead> {
        LogOverhead::ref_from_prefix(bytes).ok().map(|(h, _)| h)
    }

    /// The 12-byte prefix at the start of `bytes` for in-place edits, or None when fewer
    /// are given.
    pub fn view_mut(bytes: &mut [u8]) -> Option<&mut LogOverhead> {
        LogOverhead::mut_from_prefix(bytes).ok().map(|(h, _)| h)
    }

    /// See [`RecordBatchHeader::batch_size`].
    pub fn batch_size(&self) -> Option<usize> {
        let length = self.batch_length.get();
        // MIN_BATCH_LENGTH is positive, so the cast and the sum cannot overflow.
        (length >= MIN_BATCH_LENGTH).then(|| LOG_OVERHEAD + length as usize)
    }
}

/// The CRC-32C a batch should carry: over `batch[CRC_FROM..]`, so `batch` must be exactly
/// the batch's bytes. Returns None when it is shorter than the CRC's start.
pub fn compute_crc(batch: &[u8]) -> Option<u32> {
    batch.get(CRC_FROM..).map(crc32c::crc32c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each field at the byte Kafka's `DefaultRecordBatch` puts it.
    #[test]
    fn layout_matches_kafkas_default_record_batch() {
        let mut bytes = [0u8; HEADER_BYTES + 3];
        bytes[..8].copy_from_slice(&5i64.to_be_bytes());
        bytes[8..12].copy_from_slice(&52i32.to_be_bytes());
        bytes[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        bytes[16] = 2;
        bytes[17..21].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        bytes[21..23].copy_from_slice(&0x0013i16.to_be_bytes());
        bytes[23..27].copy_from_slice(&6i32.to_be_bytes());
        bytes[27..35].copy_from_slice(&1_000i64.to_be_bytes());
        bytes[35..43].copy_from_slice(&2_000i64.to_be_bytes());
        bytes[43..51].copy_from_slice(&77i64.to_be_bytes());
        bytes[51..53].copy_from_slice(&3i16.to_be_bytes());
        bytes[53..57].copy_from_slice(&9i32.to_be_bytes());
        bytes[57..61].copy_from_slice(&7i32.to_be_bytes());
        let h = RecordBatchHeader::view(&bytes).expect("61 bytes or more");
        assert_eq!(h.base_offset(), 5);
        assert_eq!(h.batch_length(), 52);
        assert_eq!(h.batch_size(), Some(64));
        assert_eq!(h.partition_leader_epoch.get(), -1);
        assert_eq!(h.magic, MAGIC_V2);
        assert_eq!(h.crc.get(), 0xdead_beef);
        assert_eq!(h.attributes.get(), 0x13);
        assert_eq!(h.last_offset_delta.get(), 6);
        assert_eq!(h.last_offset(), 11);
        assert_eq!(h.base_timestamp.get(), 1_000);
        assert_eq!(h.max_timestamp.get(), 2_000);
        assert_eq!(h.producer_id.get(), 77);
        assert_eq!(h.producer_epoch.get(), 3);
        assert_eq!(h.base_sequence.get(), 9);
        assert_eq!(h.record_count.get(), 7);
        assert_eq!(h.as_bytes(), &bytes[..HEADER_BYTES]);
    }

    #[test]
    fn short_input_has_no_view() {
        assert!(RecordBatchHeader::view(&[0u8; HEADER_BYTES - 1]).is_none());
        assert!(LogOverhead::view(&[0u8; LOG_OVERHEAD - 1]).is_none());
        assert!(LogOverhead::view_mut(&mut [0u8; LOG_OVERHEAD - 1]).is_none());
        assert!(RecordBatchHeader::view_mut(&mut [0u8; HEADER_BYTES - 1]).is_none());
        assert!(compute_crc(&[0u8; CRC_FROM - 1]).is_none());
        assert_eq!(compute_crc(&[0u8; CRC_FROM]), Some(crc32c::crc32c(&[])));
    }

    #[test]
    fn edits_in_place_leave_other_bytes_alone() {
        let mut bytes: Vec<u8> = (0..80u8).collect();
        let before = bytes.clone();
        let h = RecordBatchHeader::view_mut(&mut bytes).expect("80 bytes");
        h.log.base_offset.set(-2);
        assert_eq!(&bytes[..8], &(-2i64).to_be_bytes());
        assert_eq!(&bytes[8..], &before[8..]);
    }

    #[test]
    fn batch_size_refuses_lengths_below_the_header() {
        let mut h = RecordBatchHeader::default();
        let largest = Some(LOG_OVERHEAD + i32::MAX as usize);
        for (length, size) in [(48, None), (-1, None), (49, Some(61)), (i32::MAX, largest)] {
            h.log.batch_length.set(length);
            assert_eq!(h.batch_size(), size, "batch_length {length}");
        }
    }
}
