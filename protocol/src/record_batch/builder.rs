//! `RecordBatchBuilder`: writes a RecordBatch v2 for clients (the load generator, tests).
//! Records are encoded straight into one growing buffer; compression, when asked for,
//! happens once in `finish()`.

use bytes::{BufMut, Bytes, BytesMut};

use super::compression::compress;
use super::varint::{put_varint, put_varlong, varint_len, varlong_len};
use super::*;

/// Builds one RecordBatch v2: base offset 0, partition leader epoch -1, CreateTime,
/// lastOffsetDelta = count - 1, maxTimestamp = the largest record timestamp, CRC-32C.
#[derive(Debug)]
pub struct RecordBatchBuilder {
    compression: Compression,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    record_count: i32,
    /// Uncompressed: the header space then the records. Compressed: the records only.
    buf: BytesMut,
}

fn len_i32(len: usize, what: &str) -> i32 {
    i32::try_from(len)
        .unwrap_or_else(|_| panic!("{what} of {len} bytes exceeds Kafka's i32 length"))
}

fn nullable_len(field: Option<&[u8]>) -> usize {
    match field {
        Some(b) => varint_len(len_i32(b.len(), "record field")) + b.len(),
        None => varint_len(-1),
    }
}

fn put_nullable(out: &mut BytesMut, field: Option<&[u8]>) {
    match field {
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
        None => put_varint(out, -1),
    }
}

impl RecordBatchBuilder {
    /// A builder whose record timestamps are stored relative to `base_timestamp`
    /// (Kafka's producers use the first record's timestamp).
    pub fn new(compression: Compression, base_timestamp: i64) -> Self {
        let mut buf = BytesMut::with_capacity(RECORD_BATCH_OVERHEAD + 1024);
        if compression == Compression::None {
            buf.resize(RECORD_BATCH_OVERHEAD, 0);
        }
        RecordBatchBuilder {
            compression,
            base_timestamp,
            max_timestamp: i64::MIN,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: 0,
            buf,
        }
    }

    /// Idempotent producer fields (the defaults are -1: no producer id).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Appends a record with the next offset delta.
    ///
    /// Panics if a key, value or header is 2 GiB or more, or past i32::MAX records.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) {
        assert!(self.record_count < i32::MAX, "record batch is full");
        let offset_delta = self.record_count;
        let timestamp_delta = timestamp.wrapping_sub(self.base_timestamp);
        let header_count = len_i32(headers.len(), "header count");
        let headers_len: usize = headers
            .iter()
            .map(|(k, v)| nullable_len(Some(k)) + nullable_len(*v))
            .sum();
        let body_len = 1
            + varlong_len(timestamp_delta)
            + varint_len(offset_delta)
            + nullable_len(key)
            + nullable_len(value)
            + varint_len(header_count)
            + headers_len;
        let body_len_i32 = len_i32(body_len, "record");

        let out = &mut self.buf;
        out.reserve(varint_len(body_len_i32) + body_len);
        put_varint(out, body_len_i32);
        let body_at = out.len();
        out.put_i8(0);
        put_varlong(out, timestamp_delta);
        put_varint(out, offset_delta);
        put_nullable(out, key);
        put_nullable(out, value);
        put_varint(out, header_count);
        for (k, v) in headers {
            put_nullable(out, Some(k));
            put_nullable(out, *v);
        }
        debug_assert_eq!(out.len() - body_at, body_len);

        self.record_count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }

    pub fn record_count(&self) -> i32 {
        self.record_count
    }

    /// Bytes of the batch so far if it were finished uncompressed (an upper bound for
    /// the compressed size of compressible data, plus codec framing).
    pub fn size_estimate(&self) -> usize {
        match self.compression {
            Compression::None => self.buf.len(),
            _ => RECORD_BATCH_OVERHEAD + self.buf.len(),
        }
    }

    /// The finished batch.
    pub fn finish(self) -> Bytes {
        let mut out = match self.compression {
            Compression::None => self.buf,
            codec => {
                let mut out =
                    BytesMut::with_capacity(RECORD_BATCH_OVERHEAD + self.buf.len() / 2 + 64);
                out.resize(RECORD_BATCH_OVERHEAD, 0);
                compress(codec, &self.buf, &mut out);
                out
            }
        };
        let batch_length = len_i32(out.len() - LOG_OVERHEAD, "record batch");
        let max_timestamp = if self.record_count == 0 {
            self.base_timestamp
        } else {
            self.max_timestamp
        };
        let header = RecordBatchHeader {
            log: LogOverhead {
                base_offset: 0.into(), // the broker assigns it
                batch_length: batch_length.into(),
            },
            partition_leader_epoch: (-1).into(), // the broker assigns it
            magic: MAGIC_V2,
            crc: 0.into(), // below
            attributes: self.compression.id().into(),
            last_offset_delta: (self.record_count - 1).into(),
            base_timestamp: self.base_timestamp.into(),
            max_timestamp: max_timestamp.into(),
            producer_id: self.producer_id.into(),
            producer_epoch: self.producer_epoch.into(),
            base_sequence: self.base_sequence.into(),
            record_count: self.record_count.into(),
        };
        *RecordBatchHeader::view_mut(&mut out).expect("the buffer starts with the header") = header;
        let end = out.len();
        write_crc(&mut out, end);
        out.freeze()
    }
}
