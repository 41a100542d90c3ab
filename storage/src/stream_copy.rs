//! The copy of appended records into a segment's head buffer, with streaming (non-temporal)
//! stores.
//!
//! The head buffer is DMA memory the CPU writes once and never reads again: the device reads it.
//! A plain copy first reads each destination cache line in (read for ownership), since the
//! buffers are fresh and cold, and leaves them in the cache, evicting what the broker will use
//! next. It was 14 % of a flat-out broker's CPU (bench/RESULTS.md). Streaming stores write whole
//! lines through the write-combining buffers instead. Short copies take the plain path, where the
//! fence costs more than the stores save.

/// Below this, a plain copy.
const STREAM_MIN_BYTES: usize = 1024;

/// Copies `src` into `dst`, which must be as long.
pub(crate) fn copy_to_dma(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "copy_to_dma: lengths differ");
    #[cfg(target_arch = "x86_64")]
    if src.len() >= STREAM_MIN_BYTES {
        x86::copy_streaming(dst, src);
        return;
    }
    dst.copy_from_slice(src);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};

    const LANE: usize = 16;
    const BLOCK: usize = 4 * LANE;

    /// Plain copies for the unaligned head and the tail, streaming stores (SSE2, always there
    /// on x86_64) for the 16-byte-aligned middle, then a fence so that the stores are globally
    /// visible before the buffer is handed to the kernel for I/O.
    pub(super) fn copy_streaming(dst: &mut [u8], src: &[u8]) {
        let len = dst.len();
        let head = dst.as_ptr().align_offset(LANE).min(len);
        dst[..head].copy_from_slice(&src[..head]);
        let blocks = (len - head) / BLOCK;
        let body_end = head + blocks * BLOCK;
        // SAFETY: `dst[head..body_end]` and `src[head..body_end]` are in bounds (blocks is
        // computed from len); `dst + head` is 16-byte aligned (align_offset), so every
        // `_mm_stream_si128` target is aligned; loads are unaligned. SSE2 is part of x86_64.
        unsafe {
            let mut d = dst.as_mut_ptr().add(head) as *mut __m128i;
            let mut s = src.as_ptr().add(head) as *const __m128i;
            for _ in 0..blocks {
                let (a, b) = (_mm_loadu_si128(s), _mm_loadu_si128(s.add(1)));
                let (c, e) = (_mm_loadu_si128(s.add(2)), _mm_loadu_si128(s.add(3)));
                _mm_stream_si128(d, a);
                _mm_stream_si128(d.add(1), b);
                _mm_stream_si128(d.add(2), c);
                _mm_stream_si128(d.add(3), e);
                d = d.add(4);
                s = s.add(4);
            }
            _mm_sfence();
        }
        dst[body_end..].copy_from_slice(&src[body_end..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every length and alignment of source and destination copies exactly and touches
        /// nothing around the destination.
        #[test]
        fn copies_exactly(len in 0usize..5000, dst_at in 0usize..64, src_at in 0usize..64) {
            let src: Vec<u8> = (0..len + src_at).map(|i| (i * 31 + 7) as u8).collect();
            let mut dst = vec![0xEEu8; len + dst_at + 64];
            copy_to_dma(&mut dst[dst_at..dst_at + len], &src[src_at..]);
            prop_assert_eq!(&dst[dst_at..dst_at + len], &src[src_at..]);
            prop_assert!(dst[..dst_at].iter().all(|&b| b == 0xEE));
            prop_assert!(dst[dst_at + len..].iter().all(|&b| b == 0xEE));
        }
    }
}
