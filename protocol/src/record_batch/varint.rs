//! Zig-zag varints and varlongs as Kafka's record format uses them, read from an
//! untrusted cursor (`None` on truncation or an overlong encoding) and written
//! into the builder's buffer.

use bytes::BufMut;

/// A cursor over untrusted record bytes; every read is bounds checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn i8(&mut self) -> Option<i8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b as i8)
    }

    /// Kafka allows at most 5 bytes for a varint (like Java's `ByteUtils.readVarint`).
    pub(crate) fn varint(&mut self) -> Option<i32> {
        let mut raw: u32 = 0;
        for i in 0..5 {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            raw |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(((raw >> 1) as i32) ^ -((raw & 1) as i32));
            }
        }
        None
    }

    /// At most 10 bytes for a varlong.
    pub(crate) fn varlong(&mut self) -> Option<i64> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        None
    }

    /// `len` bytes, or `None` if fewer remain.
    pub(crate) fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(len)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
}

fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unsigned_len(mut raw: u64) -> usize {
    let mut len = 1;
    while raw >= 0x80 {
        raw >>= 7;
        len += 1;
    }
    len
}

pub(crate) fn varint_len(v: i32) -> usize {
    unsigned_len(u64::from(zigzag32(v)))
}

pub(crate) fn varlong_len(v: i64) -> usize {
    unsigned_len(zigzag64(v))
}

fn put_unsigned<B: BufMut>(out: &mut B, mut raw: u64) {
    while raw >= 0x80 {
        out.put_u8((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.put_u8(raw as u8);
}

pub(crate) fn put_varint<B: BufMut>(out: &mut B, v: i32) {
    put_unsigned(out, u64::from(zigzag32(v)));
}

pub(crate) fn put_varlong<B: BufMut>(out: &mut B, v: i64) {
    put_unsigned(out, zigzag64(v));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_extremes_with_expected_lengths() {
        for v in [0, 1, -1, 63, -64, 64, -65, 8191, i32::MAX, i32::MIN] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            let mut r = Reader::new(&out);
            assert_eq!(r.varint(), Some(v));
            assert_eq!(r.remaining(), 0);
        }
        assert_eq!(varint_len(i32::MIN), 5);
    }

    #[test]
    fn varlong_round_trips_extremes_with_expected_lengths() {
        for v in [0, 1, -1, 1 << 40, -(1 << 40), i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(out.len(), varlong_len(v), "{v}");
            assert_eq!(Reader::new(&out).varlong(), Some(v));
        }
        assert_eq!(varlong_len(i64::MIN), 10);
    }

    #[test]
    fn zigzag_matches_kafka_encoding() {
        let mut out = Vec::new();
        put_varint(&mut out, -1);
        put_varint(&mut out, 1);
        put_varint(&mut out, 150);
        assert_eq!(out, [0x01, 0x02, 0xac, 0x02]);
    }

    #[test]
    fn overlong_or_truncated_varints_are_rejected() {
        assert_eq!(Reader::new(&[0x80; 5]).varint(), None);
        assert_eq!(Reader::new(&[0x80; 10]).varlong(), None);
        assert_eq!(Reader::new(&[0x80, 0x80]).varint(), None);
        assert_eq!(Reader::new(&[]).varlong(), None);
        assert_eq!(Reader::new(&[1, 2]).bytes(3), None);
        assert_eq!(Reader::new(&[1, 2]).bytes(usize::MAX), None);
    }
}
