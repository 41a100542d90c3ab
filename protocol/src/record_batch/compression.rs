//! Codecs for the records section: bounded decompression of untrusted input (output
//! grows only with what the codec really produces, never from a claimed size) and
//! compression for the builder, in the framings Kafka's clients use.

use std::cell::RefCell;
use std::io::{Read, Write};

use bytes::{BufMut, BytesMut};
use zstd::zstd_safe::{DCtx, DParameter, InBuffer, OutBuffer, ResetDirective};

use super::{BatchError, Compression, Corruption};

/// xerial snappy-java stream header: magic, version 1, compatible version 1.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// A snappy copy element of 3 bytes yields at most 64 bytes, so no valid block inflates
/// by more than this; a larger claimed length is corrupt and is not allocated.
const SNAPPY_MAX_RATIO: usize = 24;
/// zstd windows up to 8 MiB (levels up to 19) always decode; larger ones only when
/// `max_bytes` is that large, so a hostile frame header cannot claim a big window.
const ZSTD_MIN_WINDOW_LOG: u32 = 23;
const ZSTD_MAX_WINDOW_LOG: u32 = 27;
/// Level 3, what Kafka's producers use by default.
const ZSTD_LEVEL: i32 = 3;

fn corrupt(codec: Compression) -> BatchError {
    Corruption::Decompression(codec).into()
}

pub(crate) fn decompress(
    codec: Compression,
    input: &[u8],
    max_bytes: usize,
) -> Result<Vec<u8>, BatchError> {
    match codec {
        Compression::None => {
            if input.len() > max_bytes {
                return Err(BatchError::DecompressedTooLarge { max_bytes });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => {
            read_bounded(flate2::read::MultiGzDecoder::new(input), codec, max_bytes)
        }
        Compression::Snappy => snappy_decompress(input, max_bytes),
        Compression::Lz4 => {
            read_bounded(lz4_flex::frame::FrameDecoder::new(input), codec, max_bytes)
        }
        Compression::Zstd => zstd_decompress(input, max_bytes),
    }
}

thread_local! {
    /// One zstd decoding context per thread (a shard is one thread): creating one costs
    /// about 12 µs, more than decoding a 16 KiB batch with it. Only contexts limited to
    /// the minimum window are kept, so at most 8 MiB of window stays allocated.
    static ZSTD_DCTX: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

fn zstd_decompress(input: &[u8], max_bytes: usize) -> Result<Vec<u8>, BatchError> {
    let window_log_max = zstd_window_log_max(max_bytes);
    let fresh = || DCtx::try_create().ok_or(corrupt(Compression::Zstd));
    if window_log_max > ZSTD_MIN_WINDOW_LOG {
        return zstd_stream(&mut fresh()?, input, max_bytes, window_log_max);
    }
    ZSTD_DCTX.with(|cell| {
        // No await and no re-entry here, so the borrow is always free; a fresh
        // context covers the impossible case rather than a panic.
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return zstd_stream(&mut fresh()?, input, max_bytes, window_log_max);
        };
        let dctx = match slot.as_mut() {
            Some(dctx) => dctx,
            None => slot.insert(fresh()?),
        };
        zstd_stream(dctx, input, max_bytes, window_log_max)
    })
}

/// Streams `input` through `dctx` into a `Vec` that grows by doubling (from a size
/// proportional to the input) and never past `max_bytes + 1`.
fn zstd_stream(
    dctx: &mut DCtx<'_>,
    input: &[u8],
    max_bytes: usize,
    window_log_max: u32,
) -> Result<Vec<u8>, BatchError> {
    let err = || corrupt(Compression::Zstd);
    dctx.reset(ResetDirective::SessionOnly).map_err(|_| err())?;
    dctx.set_parameter(DParameter::WindowLogMax(window_log_max))
        .map_err(|_| err())?;
    let cap = max_bytes.saturating_add(1);
    let mut out: Vec<u8> =
        Vec::with_capacity(input.len().saturating_mul(4).clamp(4096, 1 << 20).min(cap));
    let mut src = InBuffer::around(input);
    loop {
        if out.len() == out.capacity() {
            let extra = out.capacity().max(4096).min(cap - out.len());
            out.reserve_exact(extra);
        }
        let (in_before, out_before) = (src.pos(), out.len());
        let pos = out.len();
        let hint = dctx
            .decompress_stream(&mut OutBuffer::around_pos(&mut out, pos), &mut src)
            .map_err(|_| err())?;
        if out.len() > max_bytes {
            return Err(BatchError::DecompressedTooLarge { max_bytes });
        }
        if hint == 0 && src.pos() == input.len() {
            return Ok(out);
        }
        if src.pos() == in_before && out.len() == out_before {
            // Input exhausted in the middle of a frame.
            return Err(err());
        }
    }
}

fn zstd_window_log_max(max_bytes: usize) -> u32 {
    let needed = usize::BITS - max_bytes.saturating_sub(1).leading_zeros();
    needed.clamp(ZSTD_MIN_WINDOW_LOG, ZSTD_MAX_WINDOW_LOG)
}

/// Reads at most `max_bytes + 1` bytes; one past the limit means the limit is exceeded.
fn read_bounded(
    reader: impl Read,
    codec: Compression,
    max_bytes: usize,
) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| corrupt(codec))?;
    if out.len() > max_bytes {
        return Err(BatchError::DecompressedTooLarge { max_bytes });
    }
    Ok(out)
}

/// Kafka's Java clients write snappy-java's xerial framing; others (librdkafka) may
/// send one raw snappy block. Like snappy-java, read xerial when the magic is there.
fn snappy_decompress(input: &[u8], max_bytes: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    if !input.starts_with(XERIAL_MAGIC) {
        snappy_block(input, &mut out, max_bytes)?;
        return Ok(out);
    }
    let mut rest = input
        .get(XERIAL_HEADER_LEN..)
        .ok_or(corrupt(Compression::Snappy))?;
    while !rest.is_empty() {
        let len_bytes: [u8; 4] = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(corrupt(Compression::Snappy))?;
        let block_len = usize::try_from(i32::from_be_bytes(len_bytes))
            .map_err(|_| corrupt(Compression::Snappy))?;
        let block = rest
            .get(4..4 + block_len)
            .ok_or(corrupt(Compression::Snappy))?;
        snappy_block(block, &mut out, max_bytes)?;
        rest = &rest[4 + block_len..];
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, keeping `out` within `max_bytes`.
fn snappy_block(block: &[u8], out: &mut Vec<u8>, max_bytes: usize) -> Result<(), BatchError> {
    let claimed = snap::raw::decompress_len(block).map_err(|_| corrupt(Compression::Snappy))?;
    if claimed
        > block
            .len()
            .saturating_mul(SNAPPY_MAX_RATIO)
            .saturating_add(64)
    {
        return Err(corrupt(Compression::Snappy));
    }
    let start = out.len();
    if claimed > max_bytes - start {
        return Err(BatchError::DecompressedTooLarge { max_bytes });
    }
    out.resize(start + claimed, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|_| corrupt(Compression::Snappy))?;
    out.truncate(start + written);
    Ok(())
}

/// Appends `input` compressed with `codec` to `out` (builder side; in-memory writers
/// cannot fail, so I/O errors here are bugs).
pub(crate) fn compress(codec: Compression, input: &[u8], out: &mut BytesMut) {
    const IN_MEMORY: &str = "writing to an in-memory buffer cannot fail";
    match codec {
        Compression::None => out.extend_from_slice(input),
        Compression::Gzip => {
            let mut enc =
                flate2::write::GzEncoder::new(out.writer(), flate2::Compression::default());
            enc.write_all(input).expect(IN_MEMORY);
            enc.finish().expect(IN_MEMORY);
        }
        Compression::Snappy => snappy_xerial_compress(input, out),
        Compression::Lz4 => {
            // Kafka's LZ4 is the standard frame format with independent 64 KiB blocks.
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, out.writer());
            enc.write_all(input).expect(IN_MEMORY);
            enc.finish().expect(IN_MEMORY);
        }
        Compression::Zstd => {
            let mut enc =
                zstd::stream::write::Encoder::new(out.writer(), ZSTD_LEVEL).expect(IN_MEMORY);
            enc.set_pledged_src_size(Some(input.len() as u64))
                .expect(IN_MEMORY);
            enc.include_contentsize(true).expect(IN_MEMORY);
            enc.write_all(input).expect(IN_MEMORY);
            enc.finish().expect(IN_MEMORY);
        }
    }
}

fn snappy_xerial_compress(input: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(XERIAL_MAGIC);
    out.put_i32(1);
    out.put_i32(1);
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK_BYTES) {
        let len_at = out.len();
        let max_len = snap::raw::max_compress_len(chunk.len());
        out.resize(len_at + 4 + max_len, 0);
        let written = encoder
            .compress(chunk, &mut out[len_at + 4..])
            .expect("the output has max_compress_len bytes and a chunk is under 4 GiB");
        out.truncate(len_at + 4 + written);
        let written = i32::try_from(written).expect("a 32 KiB chunk compresses to under 2 GiB");
        out[len_at..len_at + 4].copy_from_slice(&written.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn every_codec_round_trips() {
        let input = sample();
        for codec in Compression::ALL {
            let mut out = BytesMut::new();
            compress(codec, &input, &mut out);
            assert_eq!(
                decompress(codec, &out, input.len()).unwrap(),
                input,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn every_codec_stops_one_byte_past_the_limit() {
        let input = sample();
        for codec in Compression::ALL {
            let mut out = BytesMut::new();
            compress(codec, &input, &mut out);
            assert_eq!(
                decompress(codec, &out, input.len() - 1),
                Err(BatchError::DecompressedTooLarge {
                    max_bytes: input.len() - 1
                }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn zip_bombs_stop_at_the_limit() {
        let zeros = vec![0u8; 16 << 20];
        for codec in [
            Compression::Gzip,
            Compression::Lz4,
            Compression::Zstd,
            Compression::Snappy,
        ] {
            let mut bomb = BytesMut::new();
            compress(codec, &zeros, &mut bomb);
            assert!(bomb.len() < 4 << 20, "{codec:?} {}", bomb.len());
            assert_eq!(
                decompress(codec, &bomb, 1 << 20),
                Err(BatchError::DecompressedTooLarge { max_bytes: 1 << 20 }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn raw_snappy_without_xerial_framing_decodes() {
        let input = sample();
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, input.len()).unwrap(),
            input
        );
    }

    #[test]
    fn snappy_claiming_more_than_possible_is_corrupt_not_allocated() {
        // A raw snappy preamble claiming 2^31 bytes from 6 bytes of input.
        let claim = [0x80, 0x80, 0x80, 0x80, 0x08, 0x00];
        assert_eq!(
            decompress(Compression::Snappy, &claim, usize::MAX),
            Err(corrupt(Compression::Snappy))
        );
    }

    #[test]
    fn garbage_and_truncation_are_corrupt() {
        let input = sample();
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut out = BytesMut::new();
            compress(codec, &input, &mut out);
            let cut = &out[..out.len() / 2];
            assert_eq!(
                decompress(codec, cut, usize::MAX),
                Err(corrupt(codec)),
                "{codec:?}"
            );
            assert_eq!(
                decompress(codec, b"\x00garbage\xff", usize::MAX),
                Err(corrupt(codec)),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn xerial_block_length_past_the_end_is_corrupt() {
        let mut out = BytesMut::new();
        compress(Compression::Snappy, b"hello hello hello", &mut out);
        out[16..20].copy_from_slice(&1000i32.to_be_bytes());
        assert_eq!(
            decompress(Compression::Snappy, &out, 1 << 20),
            Err(corrupt(Compression::Snappy))
        );
        out[16..20].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            decompress(Compression::Snappy, &out, 1 << 20),
            Err(corrupt(Compression::Snappy))
        );
    }

    #[test]
    fn zstd_window_limit_grows_with_max_bytes_within_bounds() {
        assert_eq!(zstd_window_log_max(0), ZSTD_MIN_WINDOW_LOG);
        assert_eq!(zstd_window_log_max(1 << 20), ZSTD_MIN_WINDOW_LOG);
        assert_eq!(zstd_window_log_max(1 << 25), 25);
        assert_eq!(zstd_window_log_max((1 << 25) + 1), 26);
        assert_eq!(zstd_window_log_max(usize::MAX), ZSTD_MAX_WINDOW_LOG);
    }

    #[test]
    fn zstd_context_is_reusable_after_an_error() {
        let input = sample();
        let mut good = BytesMut::new();
        compress(Compression::Zstd, &input, &mut good);
        for _ in 0..3 {
            assert_eq!(
                decompress(Compression::Zstd, &good[..good.len() / 2], 1 << 20),
                Err(corrupt(Compression::Zstd))
            );
            assert_eq!(
                decompress(Compression::Zstd, b"\x28\xb5\x2f\xfdjunk", 1 << 20),
                Err(corrupt(Compression::Zstd))
            );
            assert_eq!(
                decompress(Compression::Zstd, &good, 1 << 20).unwrap(),
                input
            );
        }
    }

    #[test]
    fn zstd_reads_concatenated_frames_and_large_limits() {
        let mut two = BytesMut::new();
        compress(Compression::Zstd, b"first ", &mut two);
        compress(Compression::Zstd, b"second", &mut two);
        assert_eq!(
            decompress(Compression::Zstd, &two, 12).unwrap(),
            b"first second"
        );
        assert_eq!(
            decompress(Compression::Zstd, &two, 11),
            Err(BatchError::DecompressedTooLarge { max_bytes: 11 })
        );
        // A limit above 8 MiB takes a fresh context with a larger window limit.
        assert_eq!(
            decompress(Compression::Zstd, &two, 64 << 20).unwrap(),
            b"first second"
        );
        assert_eq!(
            decompress(Compression::Zstd, b"", 1 << 20),
            Err(corrupt(Compression::Zstd))
        );
    }
}
