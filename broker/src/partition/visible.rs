//! What consumers may see: the high watermark is the durable end of the log, so a record is never
//! handed out before a crash could no longer take it away (acks=all is answered at the same
//! point). Reads come back as whole stored batches, possibly split over several buffers; this
//! cuts them at the high watermark without copying.

use bytes::Bytes;
use riffle_batch_header::{
    LogOverhead, RecordBatchHeader, HEADER_BYTES as BATCH_HEADER_BYTES,
    LOG_OVERHEAD as BATCH_PREFIX,
};

/// The N bytes at `pos` of the logical concatenation of `chunks`, if all there. `first` is the
/// index of the chunk holding `pos` and `skipped` the bytes of the chunks before it, so that a
/// walk over many batches never starts over from the first chunk.
fn bytes_at<const N: usize>(
    chunks: &[Bytes],
    first: &mut usize,
    skipped: &mut usize,
    pos: usize,
) -> Option<[u8; N]> {
    while *first < chunks.len() && *skipped + chunks[*first].len() <= pos {
        *skipped += chunks[*first].len();
        *first += 1;
    }
    let mut out = [0u8; N];
    let mut filled = 0;
    let mut at = pos - *skipped;
    for c in &chunks[(*first).min(chunks.len())..] {
        let take = (N - filled).min(c.len() - at);
        out[filled..filled + take].copy_from_slice(&c[at..at + take]);
        filled += take;
        at = 0;
        if filled == N {
            return Some(out);
        }
    }
    None
}

/// Records in the whole batches of `chunks`, each batch counted by its offset span (metrics).
pub fn record_count(chunks: &[Bytes]) -> u64 {
    let (mut first, mut skipped, mut pos) = (0usize, 0usize, 0usize);
    let mut records = 0u64;
    while let Some(header) = bytes_at::<BATCH_HEADER_BYTES>(chunks, &mut first, &mut skipped, pos) {
        let Some(h) = RecordBatchHeader::view(&header) else {
            break;
        };
        let Some(size) = h.batch_size() else {
            break;
        };
        let span = h
            .last_offset()
            .wrapping_sub(h.base_offset())
            .saturating_add(1);
        records += span.max(0) as u64;
        pos += size;
    }
    records
}

/// Keeps the batches whose base offset is below `end` (batches are whole: a batch below `end`
/// ends at or below it, as `end` is a batch boundary). Returns the kept buffers and their size.
pub fn cut_at_offset(chunks: Vec<Bytes>, end: i64) -> (Vec<Bytes>, usize) {
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let (mut first, mut skipped) = (0usize, 0usize);
    let mut cut = 0usize;
    while cut + BATCH_PREFIX <= total {
        let Some(prefix) = bytes_at::<BATCH_PREFIX>(&chunks, &mut first, &mut skipped, cut) else {
            break;
        };
        let overhead = LogOverhead::view(&prefix).expect("a whole prefix");
        let (base, length) = (overhead.base_offset.get(), overhead.batch_length.get());
        if base >= end || length < 0 {
            break;
        }
        cut += BATCH_PREFIX + length as usize;
    }
    if cut >= total {
        return (chunks, total);
    }
    let mut kept = Vec::with_capacity(chunks.len());
    let mut left = cut;
    for c in chunks {
        if left == 0 {
            break;
        }
        if c.len() <= left {
            left -= c.len();
            kept.push(c);
        } else {
            kept.push(c.slice(..left));
            left = 0;
        }
    }
    (kept, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake stored batch: base offset, length, then `body` bytes.
    fn batch(base: i64, body: usize) -> Vec<u8> {
        let mut b = base.to_be_bytes().to_vec();
        b.extend_from_slice(&(body as i32).to_be_bytes());
        b.extend(std::iter::repeat_n(0xab, body));
        b
    }

    fn split(bytes: &[u8], at: &[usize]) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut last = 0;
        for &a in at {
            out.push(Bytes::copy_from_slice(&bytes[last..a]));
            last = a;
        }
        out.push(Bytes::copy_from_slice(&bytes[last..]));
        out
    }

    #[test]
    fn records_are_counted_by_each_batch_offset_span_across_buffers() {
        // Two batches with 5 and 3 records: last_offset_delta sits at byte 23 of the header.
        let mut all = Vec::new();
        for (base, delta) in [(100i64, 4i32), (105, 2)] {
            let mut b = batch(base, BATCH_HEADER_BYTES - BATCH_PREFIX + 20);
            b[23..27].copy_from_slice(&delta.to_be_bytes());
            all.extend(b);
        }
        for at in [vec![], vec![16], vec![16, 30, 81, 97], vec![60, 140]] {
            assert_eq!(record_count(&split(&all, &at)), 8, "split at {at:?}");
        }
        assert_eq!(
            record_count(&split(&all[..40], &[])),
            0,
            "a torn header counts nothing"
        );
    }

    #[test]
    fn keeps_batches_below_the_end_even_when_split_across_buffers() {
        let mut all = batch(10, 50);
        all.extend(batch(15, 30));
        all.extend(batch(20, 40));
        let first_two = 62 + 42;
        // Buffers split inside the prefixes and bodies, as the tail cache does.
        for at in [vec![], vec![5], vec![16, 70], vec![62, 66, 110]] {
            let chunks = split(&all, &at);
            let (kept, size) = cut_at_offset(chunks.clone(), 20);
            assert_eq!(size, first_two);
            let joined: Vec<u8> = kept.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(joined, all[..first_two]);
            let (kept, size) = cut_at_offset(chunks.clone(), 21);
            assert_eq!(size, all.len());
            assert_eq!(kept.len(), chunks.len());
            let (kept, size) = cut_at_offset(chunks, 10);
            assert_eq!((kept.len(), size), (0, 0));
        }
    }
}
