//! Hostile input: whatever the bytes, decoding returns (quickly) and never allocates more than
//! the input could justify. A tracking global allocator records the largest single allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use riffle_protocol::messages::{ProduceRequest, ProduceResponse};
use riffle_protocol::{
    decode_request, decode_response, frame_size, ApiKey, Bytes, DecodeError, FrameError,
    RequestError, DEFAULT_MAX_FRAME_BYTES,
};

struct Tracking;

thread_local! {
    static LARGEST_ALLOCATION: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only records sizes in a thread-local Cell.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST_ALLOCATION.try_with(|m| m.set(m.get().max(layout.size())));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST_ALLOCATION.try_with(|m| m.set(m.get().max(new_size)));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// Runs `f` and returns the largest single allocation it made on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST_ALLOCATION.with(|m| m.set(0));
    let r = f();
    (r, LARGEST_ALLOCATION.with(Cell::get))
}

fn header(api_key: i16, version: i16, flexible: bool) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&api_key.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&42i32.to_be_bytes());
    h.extend_from_slice(&(-1i16).to_be_bytes()); // null client_id
    if flexible {
        h.push(0);
    }
    h
}

#[test]
fn produce_body_claiming_2_billion_topics_is_rejected_quickly() {
    // The 22-byte body that made kafka-protocol 0.18.0 ask for 206 GB.
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id: null
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&30_000i32.to_be_bytes()); // timeout_ms
    body.extend_from_slice(&0x7fff_ffffi32.to_be_bytes()); // topic count
    body.resize(22, 0x41);
    let mut frame = header(0, 3, false);
    frame.extend_from_slice(&body);
    let start = Instant::now();
    let (result, largest) = largest_allocation(|| decode_request(Bytes::from(frame)));
    assert!(start.elapsed() < Duration::from_millis(50));
    assert!(largest < 4096, "allocated {largest} bytes");
    match result {
        Err(RequestError::MalformedBody {
            header,
            error: DecodeError::InvalidLength { len, .. },
        }) => {
            assert_eq!(header.correlation_id, 42);
            assert_eq!(len, 0x7fff_ffff);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn frames_shorter_than_four_bytes_wait_or_error() {
    for len in 0..4 {
        assert_eq!(
            frame_size(&[0u8; 3][..len], DEFAULT_MAX_FRAME_BYTES),
            Ok(None)
        );
        assert!(matches!(
            decode_request(Bytes::from(vec![0u8; len])),
            Err(RequestError::MalformedHeader(_))
        ));
        assert!(decode_response::<ProduceResponse>(Bytes::from(vec![0u8; len]), 9).is_err());
    }
    assert_eq!(
        frame_size(&[0xff, 0xff, 0xff, 0xff], 100),
        Err(FrameError::NegativeSize(-1))
    );
    assert_eq!(
        frame_size(&[0, 0, 0, 101], 100),
        Err(FrameError::TooLarge {
            size: 101,
            max: 100
        })
    );
    assert_eq!(frame_size(&[0, 0, 0, 100, 9], 100), Ok(Some(100)));
}

#[test]
fn unknown_api_key_and_unsupported_versions_keep_the_header() {
    let r = decode_request(Bytes::from(header(999, 0, false)));
    assert!(
        matches!(r, Err(RequestError::UnknownApiKey { header }) if header.request_api_key == 999)
    );
    // Produce v0-2 are not decoded: the broker answers UNSUPPORTED_VERSION.
    let r = decode_request(Bytes::from(header(0, 2, false)));
    assert!(
        matches!(r, Err(RequestError::UnsupportedVersion { header }) if header.correlation_id == 42)
    );
}

#[test]
fn future_api_versions_request_is_unsupported_with_its_header() {
    // ApiVersions v9 with a header v2 carrying a client id and an unknown tagged field,
    // and a body we cannot know.
    let mut frame = Vec::new();
    frame.extend_from_slice(&18i16.to_be_bytes());
    frame.extend_from_slice(&9i16.to_be_bytes());
    frame.extend_from_slice(&77i32.to_be_bytes());
    frame.extend_from_slice(&6i16.to_be_bytes());
    frame.extend_from_slice(b"future");
    frame.extend_from_slice(&[1, 5, 1, 0xaa, 0xde, 0xad]);
    match decode_request(Bytes::from(frame)) {
        Err(RequestError::UnsupportedVersion { header }) => {
            assert_eq!(header.request_api_key, 18);
            assert_eq!(header.request_api_version, 9);
            assert_eq!(header.correlation_id, 77);
            assert_eq!(header.client_id.as_deref(), Some("future"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn produce_v0_error_answer_can_be_encoded() {
    // Produce v0-2 are not decoded, but the broker answers them with UNSUPPORTED_VERSION.
    let resp = ProduceResponse::default();
    let chunks = riffle_protocol::encode_response(5, 0, &resp).unwrap();
    let frame: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    assert_eq!(frame, [0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0, 0]);
}

#[test]
fn trailing_bytes_after_the_body_are_ignored_as_kafka_does() {
    let mut frame = header(18, 0, false); // ApiVersions v0: empty body
    assert!(decode_request(Bytes::from(frame.clone())).is_ok());
    frame.extend_from_slice(&[1, 0, 0]);
    let request = decode_request(Bytes::from(frame)).unwrap();
    assert_eq!(request.header.request_api_key, 18);
}

#[test]
fn invalid_utf8_in_a_string_is_an_error() {
    let mut frame = header(3, 0, false); // Metadata v0: array of topic names
    frame.extend_from_slice(&1i32.to_be_bytes());
    frame.extend_from_slice(&2i16.to_be_bytes());
    frame.extend_from_slice(&[0xc3, 0x28]);
    assert!(matches!(
        decode_request(Bytes::from(frame)),
        Err(RequestError::MalformedBody {
            error: DecodeError::InvalidUtf8 { .. },
            ..
        })
    ));
}

#[test]
fn produce_records_stay_a_slice_of_the_frame() {
    let mut frame = header(0, 3, false);
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    frame.extend_from_slice(&1i16.to_be_bytes());
    frame.extend_from_slice(&1000i32.to_be_bytes());
    frame.extend_from_slice(&1i32.to_be_bytes()); // one topic
    frame.extend_from_slice(&1i16.to_be_bytes());
    frame.push(b't');
    frame.extend_from_slice(&1i32.to_be_bytes()); // one partition
    frame.extend_from_slice(&0i32.to_be_bytes());
    frame.extend_from_slice(&5i32.to_be_bytes());
    frame.extend_from_slice(b"bytes");
    let frame = Bytes::from(frame);
    let req = decode_request(frame.clone()).unwrap();
    let riffle_protocol::RequestBody::Produce(ProduceRequest { topic_data, .. }) = req.body else {
        panic!()
    };
    let records = topic_data[0].partition_data[0]
        .records
        .as_ref()
        .unwrap()
        .to_bytes();
    assert_eq!(records.as_ref(), b"bytes");
    let offset = records.as_ptr() as usize - frame.as_ptr() as usize;
    assert_eq!(offset, frame.len() - 5, "records point into the frame");
}

/// Bodies made of one repeated byte: every length field reads as huge (0x7f, 0xff) or small.
#[test]
fn every_api_and_version_survives_patterned_garbage() {
    for &key in ApiKey::ALL {
        let (lo, hi) = key.versions();
        for version in lo..=hi {
            let flexible = key.request_header_version(version) == 2;
            for fill in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
                for len in [1usize, 7, 22, 64, 300] {
                    let mut frame = header(key as i16, version, flexible);
                    frame.extend(std::iter::repeat_n(fill, len));
                    let (r, largest) = largest_allocation(|| decode_request(Bytes::from(frame)));
                    // Trailing bytes are ignored (as Kafka does), so some patterns decode;
                    // what must hold is that they decode as the API asked for.
                    if let Ok(req) = &r {
                        assert_eq!(req.body.api_key(), key, "fill {fill:#x} len {len}");
                    }
                    assert!(
                        largest <= 64 * 1024,
                        "{key:?} v{version}: allocated {largest}"
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bodies_never_panic_nor_overallocate(
        key_index in 0usize..27,
        version_offset in 0i16..20,
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let key = ApiKey::ALL[key_index];
        let (lo, hi) = key.versions();
        let version = lo + version_offset % (hi - lo + 1);
        let mut frame = header(key as i16, version, key.request_header_version(version) == 2);
        frame.extend_from_slice(&body);
        let (_, largest) = largest_allocation(|| decode_request(Bytes::from(frame)));
        // Strings become Strings and arrays reserve at most one element per remaining byte.
        prop_assert!(largest <= 64 * 1024, "allocated {}", largest);
    }

    #[test]
    fn arbitrary_response_frames_never_panic_nor_overallocate(
        version in 4i16..18,
        frame in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        use riffle_protocol::messages::{ApiVersionsResponse, FetchResponse, MetadataResponse};
        let frame = Bytes::from(frame);
        let (_, largest) = largest_allocation(|| {
            let _ = decode_response::<FetchResponse>(frame.clone(), version);
            let _ = decode_response::<MetadataResponse>(frame.clone(), version.min(12));
            let _ = decode_response::<ApiVersionsResponse>(frame.clone(), version.min(4));
            let _ = decode_response::<ProduceResponse>(frame.clone(), version.min(11));
        });
        prop_assert!(largest <= 64 * 1024, "allocated {}", largest);
    }

    #[test]
    fn arbitrary_frames_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = decode_request(Bytes::from(frame));
    }
}
