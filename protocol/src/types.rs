//! Value types that appear in messages besides Rust primitives: Kafka's `uuid` and `records`.

use std::fmt;

use bytes::{Bytes, BytesMut};

/// Kafka's 128-bit UUID (topic ids, directory ids). Displayed as Kafka does: URL-safe base64 without padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Kafka's ZERO_UUID, the default of every uuid field.
    pub const ZERO: Uuid = Uuid([0; 16]);
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = [0u8; 22];
        let mut o = 0;
        for chunk in self.0.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out[o] = ALPHABET[((n >> (18 - 6 * i)) & 63) as usize];
                o += 1;
            }
        }
        // The alphabet is ASCII, so the conversion cannot fail.
        f.write_str(std::str::from_utf8(&out[..o]).map_err(|_| fmt::Error)?)
    }
}

/// Record data: one or several `Bytes` chunks sent back to back, so a Fetch response can carry
/// stored batches (plus a patched header prefix) without copying them.
#[derive(Debug, Clone)]
pub struct Records {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    // One chunk is the common case (every decoded value): no Vec allocation for it.
    One(Bytes),
    Many(Vec<Bytes>),
}

impl Default for Records {
    fn default() -> Self {
        Records {
            inner: Inner::One(Bytes::new()),
        }
    }
}

impl Records {
    pub fn from_bytes(b: Bytes) -> Self {
        Records {
            inner: Inner::One(b),
        }
    }

    pub fn from_chunks(v: Vec<Bytes>) -> Self {
        Records {
            inner: Inner::Many(v),
        }
    }

    /// Total length in bytes of all chunks.
    pub fn len(&self) -> usize {
        match &self.inner {
            Inner::One(b) => b.len(),
            Inner::Many(v) => v.iter().map(Bytes::len).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn chunks(&self) -> &[Bytes] {
        match &self.inner {
            Inner::One(b) => std::slice::from_ref(b),
            Inner::Many(v) => v,
        }
    }

    /// One contiguous `Bytes` (no copy if there is a single chunk).
    pub fn to_bytes(&self) -> Bytes {
        match self.chunks() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut out = BytesMut::with_capacity(self.len());
                for c in many {
                    out.extend_from_slice(c);
                }
                out.freeze()
            }
        }
    }
}

impl PartialEq for Records {
    /// Equal when the concatenated bytes are equal, however they are chunked.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.to_bytes() == other.to_bytes()
    }
}

impl From<Bytes> for Records {
    fn from(b: Bytes) -> Self {
        Records::from_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_displays_as_kafka_base64() {
        assert_eq!(Uuid::ZERO.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
        let mut b = [0u8; 16];
        b[15] = 1;
        assert_eq!(Uuid(b).to_string(), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(Uuid([0xff; 16]).to_string(), "_____________________w");
    }

    #[test]
    fn records_compare_by_content_not_chunking() {
        let a = Records::from_bytes(Bytes::from_static(b"abcdef"));
        let b = Records::from_chunks(vec![Bytes::from_static(b"abc"), Bytes::from_static(b"def")]);
        assert_eq!(a, b);
        assert_eq!(b.len(), 6);
        assert_eq!(b.to_bytes(), Bytes::from_static(b"abcdef"));
    }
}
