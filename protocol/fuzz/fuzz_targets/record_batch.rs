//! RecordBatch v2 from hostile bytes: parse, validate, iterate records, decompress with
//! a bound. The first input byte picks a mode; in "fixed" mode the target rewrites the
//! batch length and CRC-32C of the rest so the fuzzer gets past the checksum and into
//! the record parser and the decompressors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use riffle_protocol::record_batch::{batches, parse_records, set_log_append_time, RecordBatchView};

/// Decompression bound: far below -malloc_limit_mb so only a real leak of the bound trips it.
const MAX_DECOMPRESSED_BYTES: usize = 4 << 20;

fn exercise(bytes: &[u8]) {
    for batch in batches(bytes) {
        let Ok(view) = batch else { break };
        let _ = view.validate_integrity();
        let valid = view.validate().is_ok();
        if let Ok(records) = view.records() {
            let parsed = records
                .map(|r| r.map(|r| r.headers.len()))
                .collect::<Vec<_>>();
            // An uncompressed batch validates only if all its records parse.
            assert!(!valid || parsed.iter().all(Result::is_ok));
        }
        if let Ok(raw) = view.decompress(MAX_DECOMPRESSED_BYTES) {
            assert!(raw.len() <= MAX_DECOMPRESSED_BYTES);
            parse_records(&raw, view.record_count()).for_each(drop);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 || rest.len() < 61 {
        exercise(rest);
        return;
    }
    let mut bytes = rest.to_vec();
    let batch_length = (bytes.len() - 12) as i32;
    bytes[8..12].copy_from_slice(&batch_length.to_be_bytes());
    bytes[16] = 2;
    let crc = crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    exercise(&bytes);
    if mode & 2 != 0 {
        set_log_append_time(&mut bytes, 42);
        let view = RecordBatchView::parse(&bytes).expect("length and magic were fixed above");
        assert_eq!(view.compute_crc(), view.crc());
    }
});

/// CRC-32C (Castagnoli), bitwise: independent of the crate's, and the fuzz crate has
/// no other dependency to take it from.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82F6_3B78 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}
