//! The records inside a batch: a bounds-checked iterator over the uncompressed record
//! bytes that borrows keys, values and headers from them (the only allocation per record
//! is the headers `Vec`, and none when a record has no headers).

use super::varint::Reader;
use super::BatchError;

/// One record, borrowing its key, value and headers from the batch bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<Header<'a>>,
}

/// A record header; Kafka forbids a null key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// A record whose headers are checked but not yet collected.
pub(crate) struct RawRecord<'a> {
    pub(crate) offset_delta: i32,
    pub(crate) timestamp_delta: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    header_count: usize,
    header_bytes: &'a [u8],
}

const fn invalid(reason: &'static str) -> BatchError {
    BatchError::InvalidRecord(reason)
}

/// Nullable bytes: a varint length, -1 (any negative, as Kafka reads it) for null.
fn nullable_bytes<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
) -> Result<Option<&'a [u8]>, BatchError> {
    let len = r.varint().ok_or(invalid(what))?;
    match usize::try_from(len) {
        Ok(len) => r.bytes(len).map(Some).ok_or(invalid(what)),
        Err(_) => Ok(None),
    }
}

fn header<'a>(r: &mut Reader<'a>) -> Result<Header<'a>, BatchError> {
    let key_len = r.varint().ok_or(invalid("truncated header key length"))?;
    let key_len = usize::try_from(key_len).map_err(|_| invalid("negative header key length"))?;
    let key = r
        .bytes(key_len)
        .ok_or(invalid("header key exceeds the record"))?;
    let value = nullable_bytes(r, "header value exceeds the record")?;
    Ok(Header { key, value })
}

impl<'a> RawRecord<'a> {
    /// Parses one record body (the bytes after its length prefix), which it must fill exactly.
    fn parse(body: &'a [u8]) -> Result<Self, BatchError> {
        let mut r = Reader::new(body);
        r.i8().ok_or(invalid("truncated record attributes"))?;
        let timestamp_delta = r.varlong().ok_or(invalid("bad record timestamp delta"))?;
        let offset_delta = r.varint().ok_or(invalid("bad record offset delta"))?;
        let key = nullable_bytes(&mut r, "record key exceeds the record")?;
        let value = nullable_bytes(&mut r, "record value exceeds the record")?;
        let count = r.varint().ok_or(invalid("bad record header count"))?;
        let header_count =
            usize::try_from(count).map_err(|_| invalid("negative record header count"))?;
        let headers_at = r.position();
        for _ in 0..header_count {
            header(&mut r)?;
        }
        if r.remaining() != 0 {
            return Err(invalid("record length disagrees with its fields"));
        }
        Ok(RawRecord {
            offset_delta,
            timestamp_delta,
            key,
            value,
            header_count,
            header_bytes: &body[headers_at..],
        })
    }

    fn into_record(self) -> Result<Record<'a>, BatchError> {
        // Each header takes at least 2 bytes, so the capacity is bounded by the input.
        let mut headers = Vec::with_capacity(self.header_count.min(self.header_bytes.len() / 2));
        let mut r = Reader::new(self.header_bytes);
        for _ in 0..self.header_count {
            headers.push(header(&mut r)?);
        }
        Ok(Record {
            offset_delta: self.offset_delta,
            timestamp_delta: self.timestamp_delta,
            key: self.key,
            value: self.value,
            headers,
        })
    }
}

/// Iterates the records of uncompressed record bytes. Yields exactly `count` records,
/// then an error if bytes remain; after the first error it yields nothing more.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    remaining: i32,
    done: bool,
}

/// Iterates `count` records in `bytes` (the records section of an uncompressed batch, or
/// the output of `RecordBatchView::decompress`).
pub fn parse_records(bytes: &[u8], count: i32) -> RecordIter<'_> {
    RecordIter {
        buf: bytes,
        pos: 0,
        remaining: count,
        done: false,
    }
}

impl<'a> RecordIter<'a> {
    pub(crate) fn next_raw(&mut self) -> Option<Result<RawRecord<'a>, BatchError>> {
        if self.done {
            return None;
        }
        if self.remaining <= 0 {
            self.done = true;
            if self.remaining < 0 {
                return Some(Err(invalid("negative record count")));
            }
            if self.pos != self.buf.len() {
                return Some(Err(invalid("bytes remain after the declared record count")));
            }
            return None;
        }
        let result = self.parse_next();
        match result {
            Ok(_) => self.remaining -= 1,
            Err(_) => self.done = true,
        }
        Some(result)
    }

    fn parse_next(&mut self) -> Result<RawRecord<'a>, BatchError> {
        let mut r = Reader::new(&self.buf[self.pos..]);
        let len = r.varint().ok_or(invalid("truncated record length"))?;
        let len = usize::try_from(len).map_err(|_| invalid("negative record length"))?;
        let body = r
            .bytes(len)
            .ok_or(invalid("record length exceeds the batch"))?;
        self.pos += r.position();
        RawRecord::parse(body)
    }

    /// Walks the remaining records without collecting headers; Ok if all parse and the
    /// bytes end exactly after the declared count.
    pub(crate) fn check_all(mut self) -> Result<(), BatchError> {
        while let Some(r) = self.next_raw() {
            r?;
        }
        Ok(())
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.next_raw()?.and_then(RawRecord::into_record);
        if item.is_err() {
            self.done = true;
        }
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            // Up to `remaining` records plus one trailing error.
            let n = usize::try_from(self.remaining).unwrap_or(0);
            (0, Some(n.saturating_add(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::varint::{put_varint, put_varlong};

    /// One record body by hand: attributes 0, the deltas, key, value, headers.
    fn record(
        ts: i64,
        off: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> Vec<u8> {
        let mut body = vec![0u8];
        put_varlong(&mut body, ts);
        put_varint(&mut body, off);
        for field in [key, value] {
            match field {
                Some(b) => {
                    put_varint(&mut body, b.len() as i32);
                    body.extend_from_slice(b);
                }
                None => put_varint(&mut body, -1),
            }
        }
        put_varint(&mut body, headers.len() as i32);
        for (k, v) in headers {
            put_varint(&mut body, k.len() as i32);
            body.extend_from_slice(k);
            match v {
                Some(v) => {
                    put_varint(&mut body, v.len() as i32);
                    body.extend_from_slice(v);
                }
                None => put_varint(&mut body, -1),
            }
        }
        let mut out = Vec::new();
        put_varint(&mut out, body.len() as i32);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn iterator_reads_every_field() {
        let mut bytes = record(
            5,
            0,
            Some(b"k"),
            Some(b"value"),
            &[(b"h1", Some(b"v1")), (b"h2", None)],
        );
        bytes.extend(record(-3, 1, None, None, &[]));
        let records: Vec<_> = parse_records(&bytes, 2).collect::<Result<_, _>>().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].timestamp_delta, 5);
        assert_eq!(records[0].offset_delta, 0);
        assert_eq!(records[0].key, Some(&b"k"[..]));
        assert_eq!(records[0].value, Some(&b"value"[..]));
        assert_eq!(
            records[0].headers,
            vec![
                Header {
                    key: b"h1",
                    value: Some(b"v1")
                },
                Header {
                    key: b"h2",
                    value: None
                }
            ]
        );
        assert_eq!(records[1].timestamp_delta, -3);
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].value, None);
        assert!(records[1].headers.is_empty());
    }

    #[test]
    fn empty_key_differs_from_null_key() {
        let bytes = record(0, 0, Some(b""), None, &[]);
        let r = parse_records(&bytes, 1).next().unwrap().unwrap();
        assert_eq!(r.key, Some(&b""[..]));
    }

    fn first_error(bytes: &[u8], count: i32) -> BatchError {
        parse_records(bytes, count)
            .find_map(Result::err)
            .expect("an error")
    }

    #[test]
    fn fewer_records_than_declared_is_invalid() {
        let bytes = record(0, 0, None, Some(b"v"), &[]);
        assert_eq!(first_error(&bytes, 2), invalid("truncated record length"));
    }

    #[test]
    fn trailing_bytes_after_the_declared_count_are_invalid() {
        let mut bytes = record(0, 0, None, Some(b"v"), &[]);
        bytes.push(0);
        assert_eq!(
            first_error(&bytes, 1),
            invalid("bytes remain after the declared record count")
        );
    }

    #[test]
    fn negative_count_is_invalid() {
        assert_eq!(first_error(&[], -1), invalid("negative record count"));
    }

    #[test]
    fn zero_records_in_zero_bytes_is_fine() {
        assert_eq!(parse_records(&[], 0).count(), 0);
    }

    #[test]
    fn record_length_beyond_the_input_is_invalid() {
        let mut bytes = record(0, 0, None, Some(b"value"), &[]);
        bytes.pop();
        assert_eq!(
            first_error(&bytes, 1),
            invalid("record length exceeds the batch")
        );
    }

    #[test]
    fn negative_record_length_is_invalid() {
        let mut bytes = Vec::new();
        put_varint(&mut bytes, -2);
        assert_eq!(first_error(&bytes, 1), invalid("negative record length"));
    }

    #[test]
    fn record_length_longer_than_its_fields_is_invalid() {
        let mut bytes = record(0, 0, None, None, &[]);
        bytes[0] += 1; // length 6 -> 7 (zig-zag: +2 raw is +1 value)
        bytes[0] += 1;
        bytes.push(0);
        assert_eq!(
            first_error(&bytes, 1),
            invalid("record length disagrees with its fields")
        );
    }

    #[test]
    fn value_longer_than_the_record_is_invalid() {
        let mut bytes = record(0, 0, None, Some(b"v"), &[]);
        // value length field is at 1 (len) + 1 (attr) + 1 + 1 + 1 (null key)
        bytes[5] = 20;
        assert_eq!(
            first_error(&bytes, 1),
            invalid("record value exceeds the record")
        );
    }

    #[test]
    fn negative_header_count_and_key_are_invalid() {
        let mut bytes = record(0, 0, None, None, &[]);
        let last = bytes.len() - 1;
        bytes[last] = 1; // -1
        assert_eq!(
            first_error(&bytes, 1),
            invalid("negative record header count")
        );

        let mut bytes = record(0, 0, None, None, &[(b"k", None)]);
        bytes[7] = 1; // header key length -1
        assert_eq!(
            first_error(&bytes, 1),
            invalid("negative header key length")
        );
    }

    #[test]
    fn huge_header_count_is_invalid_without_allocating_it() {
        let mut body = vec![0u8, 0, 0, 1, 1];
        put_varint(&mut body, i32::MAX);
        let mut bytes = Vec::new();
        put_varint(&mut bytes, body.len() as i32);
        bytes.extend(body);
        assert_eq!(
            first_error(&bytes, 1),
            invalid("truncated header key length")
        );
    }

    #[test]
    fn iterator_stops_after_the_first_error() {
        let bytes = [0x03u8];
        let mut it = parse_records(&bytes, 5);
        assert!(matches!(it.next(), Some(Err(_))));
        assert!(it.next().is_none());
    }
}
