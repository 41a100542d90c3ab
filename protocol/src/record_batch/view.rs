//! `RecordBatchView`: reads the header fields of a batch in place and checks it the way
//! Kafka's broker checks a batch a client produced.

use super::records::{parse_records, RecordIter};
use super::*;

/// Zero-copy view of one RecordBatch v2 (the bytes as received). Construction checks
/// only the magic and that the whole batch is present; `validate()` checks the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordBatchView<'a> {
    /// Exactly `12 + batchLength` bytes, at least 61.
    bytes: &'a [u8],
    /// The first 61 of them.
    header: &'a RecordBatchHeader,
}

impl<'a> RecordBatchView<'a> {
    /// Parses the header of the batch at the start of `bytes`; `bytes` may hold more
    /// after it (see `len()`). Checks the magic, the batch length's lower bound and that
    /// the whole batch is present.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BatchError> {
        // The magic sits at byte 16 in every message format, so read it first: a legacy
        // v0/v1 message set is then reported as such, not as a short batch.
        if bytes.len() <= MAGIC_AT {
            return Err(Corruption::Truncated {
                needed: MAGIC_AT + 1,
                available: bytes.len(),
            }
            .into());
        }
        let magic = bytes[MAGIC_AT] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        // More than MAGIC_AT bytes hold the 12-byte log overhead.
        let overhead = LogOverhead::view(bytes).expect("longer than the log overhead");
        let Some(len) = overhead.batch_size() else {
            return Err(Corruption::BatchLength(overhead.batch_length.get()).into());
        };
        if len > bytes.len() {
            return Err(Corruption::Truncated {
                needed: len,
                available: bytes.len(),
            }
            .into());
        }
        let header = RecordBatchHeader::view(bytes).expect("batch_size() covers the header");
        Ok(RecordBatchView {
            bytes: &bytes[..len],
            header,
        })
    }

    /// Size of the whole batch: 12 + batch_length.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a batch has at least its 61-byte header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The batch's bytes, exactly `len()` of them.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The records section (after the 61-byte header), compressed or not.
    pub fn records_bytes(&self) -> &'a [u8] {
        &self.bytes[RECORD_BATCH_OVERHEAD..]
    }

    pub fn base_offset(&self) -> i64 {
        self.header.base_offset()
    }
    pub fn batch_length(&self) -> i32 {
        self.header.batch_length()
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        self.header.partition_leader_epoch.get()
    }
    pub fn magic(&self) -> i8 {
        self.header.magic
    }
    pub fn crc(&self) -> u32 {
        self.header.crc.get()
    }
    pub fn attributes(&self) -> Attributes {
        Attributes(self.header.attributes.get())
    }
    pub fn last_offset_delta(&self) -> i32 {
        self.header.last_offset_delta.get()
    }
    pub fn base_timestamp(&self) -> i64 {
        self.header.base_timestamp.get()
    }
    pub fn max_timestamp(&self) -> i64 {
        self.header.max_timestamp.get()
    }
    pub fn producer_id(&self) -> i64 {
        self.header.producer_id.get()
    }
    pub fn producer_epoch(&self) -> i16 {
        self.header.producer_epoch.get()
    }
    pub fn base_sequence(&self) -> i32 {
        self.header.base_sequence.get()
    }
    pub fn record_count(&self) -> i32 {
        self.header.record_count.get()
    }

    /// base_offset + last_offset_delta (wrapping, as the fields are untrusted).
    pub fn last_offset(&self) -> i64 {
        self.header.last_offset()
    }

    /// CRC-32C of bytes 21..end, as it should be stored.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[CRC_FROM..])
    }

    /// The checks that hold for every stored batch, whoever wrote it (Kafka's
    /// `ensureValid` plus the codec and count bounds): CRC-32C, a defined codec, a
    /// non-negative record count that fits the bytes. Storage recovery and follower
    /// appends use this; a produce request gets `validate()`.
    pub fn validate_integrity(&self) -> Result<(), BatchError> {
        let computed = self.compute_crc();
        if computed != self.crc() {
            return Err(Corruption::Crc {
                stored: self.crc(),
                computed,
            }
            .into());
        }
        let compression = self.attributes().try_compression()?;
        let count = self.record_count();
        if count < 0 {
            return Err(BatchError::InvalidRecord("negative record count"));
        }
        let max_count = (self.len() - RECORD_BATCH_OVERHEAD) / MIN_RECORD_BYTES;
        if compression == Compression::None && count as usize > max_count {
            return Err(BatchError::InvalidRecord(
                "record count exceeds what the batch length can hold",
            ));
        }
        Ok(())
    }

    /// Everything Kafka's broker checks on a batch a client produced (`LogValidator`
    /// with origin CLIENT, plus the record parsing of `DefaultRecordBatch`):
    /// `validate_integrity()`, then a non-empty batch with lastOffsetDelta ==
    /// recordCount - 1, not a control batch, a non-negative base sequence when there is
    /// a producer id, and for an uncompressed batch every record well formed and exactly
    /// filling the batch. A compressed batch's records are checked by `decompress()` and
    /// `parse_records()` (Kafka decompresses on produce too).
    pub fn validate(&self) -> Result<(), BatchError> {
        self.validate_integrity()?;
        let count = self.record_count();
        if self.last_offset_delta() < 0 {
            return Err(BatchError::InvalidRecord(
                "batch has an invalid offset range",
            ));
        }
        if count == 0 {
            return Err(BatchError::InvalidRecord("invalid reported record count 0"));
        }
        if i64::from(self.last_offset_delta()) + 1 != i64::from(count) {
            return Err(BatchError::InvalidRecord(
                "inconsistent batch offset range and count of records",
            ));
        }
        let attributes = self.attributes();
        if attributes.is_control() {
            return Err(BatchError::InvalidRecord(
                "clients are not allowed to write control records",
            ));
        }
        if self.producer_id() >= 0 && self.base_sequence() < 0 {
            return Err(BatchError::InvalidRecord(
                "invalid sequence number with a producer id",
            ));
        }
        if attributes.compression() == Compression::None {
            parse_records(self.records_bytes(), count).check_all()?;
        }
        Ok(())
    }

    /// The rest of Kafka's produce-time check for a compressed batch: its records decompressed
    /// (at most `max_bytes` of them), each well formed, exactly `record_count()` of them filling
    /// the output. A batch whose CRC is right but whose records are not must not reach a log:
    /// no consumer could read past it. Ok at once for an uncompressed batch (`validate()`
    /// parsed its records).
    pub fn validate_compressed_records(&self, max_bytes: usize) -> Result<(), BatchError> {
        if self.attributes().try_compression()? == Compression::None {
            return Ok(());
        }
        let records = self.decompress(max_bytes)?;
        parse_records(&records, self.record_count()).check_all()
    }

    /// Iterates the records of an uncompressed batch (Err for a compressed one: use
    /// `decompress()` and `parse_records()`).
    pub fn records(&self) -> Result<RecordIter<'a>, BatchError> {
        match self.attributes().try_compression()? {
            Compression::None => Ok(parse_records(self.records_bytes(), self.record_count())),
            other => Err(BatchError::Compressed(other)),
        }
    }

    /// The uncompressed record bytes, at most `max_bytes` of them (zip-bomb safe: the
    /// output grows with what the codec really produces and decoding stops with
    /// `DecompressedTooLarge` past the limit). For an uncompressed batch, a copy of the
    /// records section. Iterate them with `parse_records(&out, record_count())`.
    pub fn decompress(&self, max_bytes: usize) -> Result<Vec<u8>, BatchError> {
        let codec = self.attributes().try_compression()?;
        compression::decompress(codec, self.records_bytes(), max_bytes)
    }
}

/// Iterates the batches lying back to back in `bytes`. An error ends the iteration; a
/// partial batch at the end yields `Corrupt(Truncated)` (normal at the end of a Fetch
/// response, wrong in a Produce request).
pub fn batches(bytes: &[u8]) -> Batches<'_> {
    Batches { rest: bytes }
}

/// Iterator returned by `batches()`.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<RecordBatchView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match RecordBatchView::parse(self.rest) {
            Ok(view) => {
                self.rest = &self.rest[view.len()..];
                Some(Ok(view))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}
