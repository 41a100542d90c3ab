//! A commit-log round's bytes, encoded straight into DMA memory: the round is written as it
//! is, with no copy from a heap buffer into a DMA one (that copy was 4.6 % of a flat-out
//! shard's samples, bench/RESULTS.md).

use glommio::io::DmaBuffer;

use super::frame::Out;

/// Smallest buffer a round allocates.
const CAPACITY_MIN_BYTES: usize = 64 << 10;
/// Buffers are whole blocks (O_DIRECT).
const BLOCK_BYTES: usize = 4096;

/// The bytes of one round, in a DMA buffer allocated at its first byte and grown (by
/// doubling, with one copy) when a round outgrows it.
pub(crate) struct RoundBuf {
    buf: Option<DmaBuffer>,
    len: usize,
    /// The first allocation's size: the previous round's, so a steady load never grows one.
    hint: usize,
}

impl RoundBuf {
    pub(crate) fn new(hint: usize) -> RoundBuf {
        RoundBuf {
            buf: None,
            len: 0,
            hint,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer to write, exactly the bytes encoded (a round is padded to whole blocks).
    pub(crate) fn into_dma(self) -> DmaBuffer {
        let mut buf = match self.buf {
            Some(buf) => buf,
            None => glommio::allocate_dma_buffer(0),
        };
        buf.trim_to_size(self.len);
        buf
    }

    fn capacity(&self) -> usize {
        self.buf.as_ref().map_or(0, DmaBuffer::len)
    }
}

impl Out for RoundBuf {
    fn len(&self) -> usize {
        self.len
    }

    fn reserve(&mut self, additional: usize) {
        let needed = self.len + additional;
        if needed <= self.capacity() {
            return;
        }
        let capacity = needed
            .max(self.capacity() * 2)
            .max(self.hint)
            .max(CAPACITY_MIN_BYTES)
            .next_multiple_of(BLOCK_BYTES);
        let mut grown = glommio::allocate_dma_buffer(capacity);
        if let Some(old) = &self.buf {
            grown.as_bytes_mut()[..self.len].copy_from_slice(&old.as_bytes()[..self.len]);
        }
        self.buf = Some(grown);
    }

    fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        let end = self.len + bytes.len();
        let buf = self.buf.as_mut().expect("reserved");
        buf.as_bytes_mut()[self.len..end].copy_from_slice(bytes);
        self.len = end;
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.buf {
            Some(buf) => &mut buf.as_bytes_mut()[..self.len],
            None => &mut [],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit_log::frame::{self, Record};
    use crate::test_util::run;

    #[test]
    fn records_encoded_into_a_round_equal_those_encoded_into_a_vec_across_growth() {
        run(|_| async move {
            let mut round = RoundBuf::new(0);
            let mut vec = Vec::new();
            // 64 KiB first, then doubling: 40 records of 7 KiB grow it twice.
            for i in 0..40u8 {
                let batch = vec![i; 7 << 10];
                let record = Record {
                    generation: 3,
                    kind: frame::Kind::Batch,
                    partition: Default::default(),
                    base_offset: i64::from(i),
                    last_offset: i64::from(i),
                    batch: &batch,
                };
                frame::encode_with_generation(&record, &mut round);
                frame::encode_with_generation(&record, &mut vec);
            }
            frame::pad_to_block(&mut round, 3);
            frame::pad_to_block(&mut vec, 3);
            assert_eq!(round.len() % BLOCK_BYTES, 0);
            let written = round.into_dma();
            assert_eq!(written.as_bytes(), &vec[..]);
        });
    }
}
