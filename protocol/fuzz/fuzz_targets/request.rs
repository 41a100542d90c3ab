//! A request frame from a hostile client: the size prefix, then the header and body
//! decoders of every API and version. Run with -malloc_limit_mb so an allocation sized by
//! a length field counts as a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use riffle_protocol::{decode_request, frame_size, Bytes, DEFAULT_MAX_FRAME_BYTES};

fuzz_target!(|data: &[u8]| {
    let _ = frame_size(data, DEFAULT_MAX_FRAME_BYTES);
    let _ = frame_size(data, 1024);
    let _ = decode_request(Bytes::copy_from_slice(data));
});
