//! Wire primitives used by the generated messages: bounds-checked readers over `Bytes` and the
//! chunked `Encoder`. Readers never panic and never allocate more than the bytes that remain.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::types::{Records, Uuid};

/// Records of at least this many bytes are emitted as their own chunk(s) instead of being copied.
pub const ZERO_COPY_MIN_BYTES: usize = 4096;

/// Largest up-front reservation for a decoded array, whatever its claimed length.
const PREALLOC_MAX_BYTES: usize = 64 * 1024;

type DResult<T> = Result<T, DecodeError>;

#[inline]
fn need(buf: &Bytes, n: usize, field: &'static str) -> DResult<()> {
    if buf.remaining() < n {
        Err(DecodeError::UnexpectedEof { field })
    } else {
        Ok(())
    }
}

#[inline]
pub(crate) fn read_i8(buf: &mut Bytes, field: &'static str) -> DResult<i8> {
    need(buf, 1, field)?;
    Ok(buf.get_i8())
}

#[inline]
pub(crate) fn read_bool(buf: &mut Bytes, field: &'static str) -> DResult<bool> {
    Ok(read_i8(buf, field)? != 0)
}

#[inline]
pub(crate) fn read_i16(buf: &mut Bytes, field: &'static str) -> DResult<i16> {
    need(buf, 2, field)?;
    Ok(buf.get_i16())
}

#[inline]
#[allow(dead_code)] // used by generated code only for schemas with fields of this type
pub(crate) fn read_u16(buf: &mut Bytes, field: &'static str) -> DResult<u16> {
    need(buf, 2, field)?;
    Ok(buf.get_u16())
}

#[inline]
pub(crate) fn read_i32(buf: &mut Bytes, field: &'static str) -> DResult<i32> {
    need(buf, 4, field)?;
    Ok(buf.get_i32())
}

#[inline]
pub(crate) fn read_i64(buf: &mut Bytes, field: &'static str) -> DResult<i64> {
    need(buf, 8, field)?;
    Ok(buf.get_i64())
}

#[inline]
#[allow(dead_code)] // used by generated code only for schemas with fields of this type
pub(crate) fn read_f64(buf: &mut Bytes, field: &'static str) -> DResult<f64> {
    need(buf, 8, field)?;
    Ok(buf.get_f64())
}

#[inline]
pub(crate) fn read_uuid(buf: &mut Bytes, field: &'static str) -> DResult<Uuid> {
    need(buf, 16, field)?;
    let mut b = [0u8; 16];
    buf.copy_to_slice(&mut b);
    Ok(Uuid(b))
}

/// Unsigned LEB128 varint of at most 5 bytes (a u32), as Kafka's ByteUtils.readUnsignedVarint.
#[inline]
pub(crate) fn read_uvarint(buf: &mut Bytes, field: &'static str) -> DResult<u32> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let b = read_i8(buf, field)? as u8;
        if i == 4 && b > 0x0f {
            return Err(DecodeError::InvalidVarint { field });
        }
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::InvalidVarint { field })
}

/// Length of a string/bytes/array: `None` for null. Classic encodings use a signed
/// int16 (strings) or int32 (bytes, arrays); compact ones an unsigned varint of length + 1.
#[inline]
fn read_len(
    buf: &mut Bytes,
    compact: bool,
    short: bool,
    field: &'static str,
) -> DResult<Option<usize>> {
    let len: i64 = if compact {
        i64::from(read_uvarint(buf, field)?) - 1
    } else if short {
        i64::from(read_i16(buf, field)?)
    } else {
        i64::from(read_i32(buf, field)?)
    };
    if len == -1 {
        return Ok(None);
    }
    // Every element or byte needs at least one byte of input, so a longer claim is a lie.
    if len < 0 || len as u64 > buf.remaining() as u64 {
        return Err(DecodeError::InvalidLength {
            field,
            len,
            remaining: buf.remaining(),
        });
    }
    Ok(Some(len as usize))
}

#[inline]
fn utf8(raw: &[u8], field: &'static str) -> DResult<String> {
    match std::str::from_utf8(raw) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(DecodeError::InvalidUtf8 { field }),
    }
}

pub(crate) fn read_nullable_string(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> DResult<Option<String>> {
    match read_len(buf, compact, true, field)? {
        None => Ok(None),
        Some(n) => {
            let s = utf8(&buf[..n], field)?;
            buf.advance(n);
            Ok(Some(s))
        }
    }
}

#[inline]
pub(crate) fn read_string(buf: &mut Bytes, compact: bool, field: &'static str) -> DResult<String> {
    read_nullable_string(buf, compact, field)?.ok_or(DecodeError::UnexpectedNull { field })
}

pub(crate) fn read_nullable_bytes(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> DResult<Option<Bytes>> {
    match read_len(buf, compact, false, field)? {
        None => Ok(None),
        Some(n) => Ok(Some(buf.split_to(n))),
    }
}

#[inline]
pub(crate) fn read_bytes(buf: &mut Bytes, compact: bool, field: &'static str) -> DResult<Bytes> {
    read_nullable_bytes(buf, compact, field)?.ok_or(DecodeError::UnexpectedNull { field })
}

#[inline]
pub(crate) fn read_nullable_records(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> DResult<Option<Records>> {
    Ok(read_nullable_bytes(buf, compact, field)?.map(Records::from_bytes))
}

/// Reads an array; the capacity reserved is bounded by the bytes remaining (checked in read_len).
#[inline]
pub(crate) fn read_nullable_array<T>(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
    mut elem: impl FnMut(&mut Bytes) -> DResult<T>,
) -> DResult<Option<Vec<T>>> {
    match read_len(buf, compact, false, field)? {
        None => Ok(None),
        Some(n) => {
            // n <= bytes remaining (read_len), but an element may be far larger in memory than
            // its one byte on the wire: reserve at most PREALLOC_MAX_BYTES up front, grow with real data.
            let mut v =
                Vec::with_capacity(n.min(PREALLOC_MAX_BYTES / std::mem::size_of::<T>().max(1)));
            for _ in 0..n {
                v.push(elem(buf)?);
            }
            Ok(Some(v))
        }
    }
}

#[inline]
pub(crate) fn read_array<T>(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
    elem: impl FnMut(&mut Bytes) -> DResult<T>,
) -> DResult<Vec<T>> {
    read_nullable_array(buf, compact, field, elem)?.ok_or(DecodeError::UnexpectedNull { field })
}

/// Reads a tagged-field section, handing each (tag, value bytes) to `on_tag`, which ignores unknown tags.
#[inline]
pub(crate) fn read_tagged_fields(
    buf: &mut Bytes,
    field: &'static str,
    mut on_tag: impl FnMut(u32, &mut Bytes) -> DResult<()>,
) -> DResult<()> {
    let count = read_uvarint(buf, field)?;
    for _ in 0..count {
        let tag = read_uvarint(buf, field)?;
        let size = read_uvarint(buf, field)? as usize;
        if size > buf.remaining() {
            return Err(DecodeError::InvalidLength {
                field,
                len: size as i64,
                remaining: buf.remaining(),
            });
        }
        let mut value = buf.split_to(size);
        on_tag(tag, &mut value)?;
    }
    Ok(())
}

/// Skips a tagged-field section entirely (headers).
pub(crate) fn skip_tagged_fields(buf: &mut Bytes, field: &'static str) -> DResult<()> {
    read_tagged_fields(buf, field, |_, _| Ok(()))
}

type EResult = Result<(), EncodeError>;

/// Output of encoding: small fields go into a `BytesMut`; record data of at least
/// `ZERO_COPY_MIN_BYTES` is emitted as its own chunk(s) without copying.
#[derive(Debug, Default)]
pub struct Encoder {
    /// The first chunk split off `buf`, kept mutable so a size prefix can still be patched.
    head: Option<BytesMut>,
    chunks: Vec<Bytes>,
    buf: BytesMut,
    /// Strict: a non-default value in a field the version lacks is an error (Kafka's generator
    /// behaviour, right for requests). Lenient (responses): such fields are left out, so a broker
    /// builds one response for every version.
    strict: bool,
}

impl Encoder {
    pub fn new() -> Self {
        Self::with_capacity(256)
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Encoder {
            head: None,
            chunks: Vec::new(),
            buf: BytesMut::with_capacity(capacity),
            strict: true,
        }
    }

    /// An encoder that leaves out fields the version does not have instead of failing.
    pub fn lenient() -> Self {
        Encoder {
            strict: false,
            ..Self::new()
        }
    }

    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// Bytes written so far, in all chunks.
    pub fn len(&self) -> usize {
        self.head.as_ref().map_or(0, BytesMut::len)
            + self.chunks.iter().map(Bytes::len).sum::<usize>()
            + self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoded chunks, to be written back to back.
    pub fn finish(self) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(self.chunks.len() + 2);
        if let Some(head) = self.head {
            out.push(head.freeze());
        }
        out.extend(self.chunks);
        if !self.buf.is_empty() {
            out.push(self.buf.freeze());
        }
        out
    }

    /// Like `finish`, writing the total length minus 4 into the first 4 bytes (reserved by the caller).
    pub(crate) fn finish_with_size_prefix(mut self) -> Result<Vec<Bytes>, EncodeError> {
        let size = self.len() - 4;
        let size = i32::try_from(size).map_err(|_| EncodeError::LengthOverflow {
            field: "frame",
            len: size,
        })?;
        let first = self.head.as_mut().unwrap_or(&mut self.buf);
        first[..4].copy_from_slice(&size.to_be_bytes());
        Ok(self.finish())
    }

    /// All bytes in one contiguous buffer (tagged field values, tests).
    pub(crate) fn into_contiguous(self) -> Bytes {
        let chunks = self.finish();
        match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.into_iter().next().unwrap_or_default(),
            _ => {
                let mut out = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
                for c in &chunks {
                    out.extend_from_slice(c);
                }
                out.freeze()
            }
        }
    }

    #[inline]
    pub(crate) fn put_i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }
    #[inline]
    pub(crate) fn put_bool(&mut self, v: bool) {
        self.buf.put_u8(u8::from(v));
    }
    #[inline]
    pub(crate) fn put_i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }
    #[inline]
    #[allow(dead_code)] // used by generated code only for schemas with fields of this type
    pub(crate) fn put_u16(&mut self, v: u16) {
        self.buf.put_u16(v);
    }
    #[inline]
    pub(crate) fn put_i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }
    #[inline]
    pub(crate) fn put_i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }
    #[inline]
    #[allow(dead_code)] // used by generated code only for schemas with fields of this type
    pub(crate) fn put_f64(&mut self, v: f64) {
        self.buf.put_f64(v);
    }
    #[inline]
    pub(crate) fn put_uuid(&mut self, v: &Uuid) {
        self.buf.put_slice(&v.0);
    }

    #[inline]
    pub(crate) fn put_uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    /// Writes a length (`None` = null) in the classic (int16/int32) or compact (varint + 1) form.
    #[inline]
    fn put_len(
        &mut self,
        len: Option<usize>,
        compact: bool,
        short: bool,
        field: &'static str,
    ) -> EResult {
        let max = if short {
            i16::MAX as usize
        } else {
            i32::MAX as usize - 1
        };
        match len {
            Some(n) if n > max => Err(EncodeError::LengthOverflow { field, len: n }),
            Some(n) if compact => {
                self.put_uvarint(n as u32 + 1);
                Ok(())
            }
            None if compact => {
                self.put_uvarint(0);
                Ok(())
            }
            Some(n) if short => {
                self.put_i16(n as i16);
                Ok(())
            }
            Some(n) => {
                self.put_i32(n as i32);
                Ok(())
            }
            None if short => {
                self.put_i16(-1);
                Ok(())
            }
            None => {
                self.put_i32(-1);
                Ok(())
            }
        }
    }

    #[inline]
    pub(crate) fn put_string(&mut self, s: &str, compact: bool, field: &'static str) -> EResult {
        self.put_len(Some(s.len()), compact, true, field)?;
        self.buf.put_slice(s.as_bytes());
        Ok(())
    }

    #[inline]
    pub(crate) fn put_nullable_string(
        &mut self,
        s: Option<&str>,
        compact: bool,
        field: &'static str,
    ) -> EResult {
        match s {
            Some(s) => self.put_string(s, compact, field),
            None => self.put_len(None, compact, true, field),
        }
    }

    #[inline]
    pub(crate) fn put_bytes(&mut self, b: &[u8], compact: bool, field: &'static str) -> EResult {
        self.put_len(Some(b.len()), compact, false, field)?;
        self.buf.put_slice(b);
        Ok(())
    }

    #[inline]
    #[allow(dead_code)] // used by generated code only for schemas with fields of this type
    pub(crate) fn put_nullable_bytes(
        &mut self,
        b: Option<&[u8]>,
        compact: bool,
        field: &'static str,
    ) -> EResult {
        match b {
            Some(b) => self.put_bytes(b, compact, field),
            None => self.put_len(None, compact, false, field),
        }
    }

    #[inline]
    pub(crate) fn put_nullable_records(
        &mut self,
        r: Option<&Records>,
        compact: bool,
        field: &'static str,
    ) -> EResult {
        let Some(r) = r else {
            return self.put_len(None, compact, false, field);
        };
        let len = r.len();
        self.put_len(Some(len), compact, false, field)?;
        if len >= ZERO_COPY_MIN_BYTES {
            let before = self.buf.split();
            if self.head.is_none() {
                self.head = Some(before);
            } else if !before.is_empty() {
                self.chunks.push(before.freeze());
            }
            self.chunks
                .extend(r.chunks().iter().filter(|c| !c.is_empty()).cloned());
        } else {
            for c in r.chunks() {
                self.buf.put_slice(c);
            }
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn put_array_len(
        &mut self,
        len: Option<usize>,
        compact: bool,
        field: &'static str,
    ) -> EResult {
        self.put_len(len, compact, false, field)
    }

    /// Appends an already encoded tagged field value.
    #[inline]
    pub(crate) fn put_tagged(&mut self, tag: u32, value: &[u8], field: &'static str) -> EResult {
        let len = u32::try_from(value.len()).map_err(|_| EncodeError::LengthOverflow {
            field,
            len: value.len(),
        })?;
        self.put_uvarint(tag);
        self.put_uvarint(len);
        self.buf.put_slice(value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_round_trips_and_rejects_overlong() {
        for v in [0u32, 1, 127, 128, 16383, 16384, u32::MAX] {
            let mut e = Encoder::new();
            e.put_uvarint(v);
            let mut b = e.into_contiguous();
            assert_eq!(read_uvarint(&mut b, "t").unwrap(), v);
            assert!(b.is_empty());
        }
        let mut b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(read_uvarint(&mut b, "t").is_err());
    }

    #[test]
    fn array_claiming_more_elements_than_bytes_is_rejected() {
        let mut b = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0, 0]);
        let r = read_array(&mut b, false, "t", |b| read_i8(b, "t"));
        assert!(matches!(r, Err(DecodeError::InvalidLength { .. })));
    }

    #[test]
    fn large_records_become_separate_chunks() {
        let big = Bytes::from(vec![7u8; ZERO_COPY_MIN_BYTES]);
        let mut e = Encoder::new();
        e.put_i32(0);
        e.put_nullable_records(Some(&Records::from_bytes(big.clone())), false, "t")
            .unwrap();
        e.put_i16(5);
        let chunks = e.finish_with_size_prefix().unwrap();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].as_ptr(), big.as_ptr());
        assert_eq!(&chunks[0][..4], &(4i32 + 4096 + 2).to_be_bytes());
    }
}
