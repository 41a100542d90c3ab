//! Unit tests of the view, validation, setters and builder together.

use super::*;

const T0: i64 = 1_700_000_000_000;

fn sample_batch(compression: Compression) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(compression, T0).producer(7, 3, 100);
    b.append(T0, Some(b"k0"), Some(b"v0"), &[(b"h", Some(b"x"))]);
    b.append(T0 + 5, None, Some(b"v1"), &[]);
    b.append(T0 - 2, Some(b""), None, &[(b"a", None), (b"b", Some(b""))]);
    b.finish().to_vec()
}

fn view(bytes: &[u8]) -> RecordBatchView<'_> {
    RecordBatchView::parse(bytes).expect("parses")
}

/// Rewrites the CRC so a test reaches the check after it.
fn fix_crc(bytes: &mut [u8]) {
    let end = bytes.len();
    write_crc(bytes, end);
}

fn put_i32_at(bytes: &mut [u8], at: usize, v: i32) {
    bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn header_of(bytes: &mut [u8]) -> &mut RecordBatchHeader {
    RecordBatchHeader::view_mut(bytes).expect("a whole header")
}

#[test]
fn builder_writes_every_header_field() {
    let bytes = sample_batch(Compression::None);
    let v = view(&bytes);
    assert_eq!(v.len(), bytes.len());
    assert_eq!(v.bytes(), &bytes[..]);
    assert_eq!(v.base_offset(), 0);
    assert_eq!(v.batch_length() as usize, bytes.len() - 12);
    assert_eq!(v.partition_leader_epoch(), -1);
    assert_eq!(v.magic(), 2);
    assert_eq!(v.crc(), crc32c::crc32c(&bytes[21..]));
    assert_eq!(v.attributes(), Attributes(0));
    assert_eq!(v.last_offset_delta(), 2);
    assert_eq!(v.base_timestamp(), T0);
    assert_eq!(v.max_timestamp(), T0 + 5);
    assert_eq!(v.producer_id(), 7);
    assert_eq!(v.producer_epoch(), 3);
    assert_eq!(v.base_sequence(), 100);
    assert_eq!(v.record_count(), 3);
    assert_eq!(v.last_offset(), 2);
    assert_eq!(v.records_bytes(), &bytes[61..]);
    v.validate().unwrap();
}

#[test]
fn header_fields_are_read_big_endian_at_their_offsets() {
    let mut bytes = sample_batch(Compression::None);
    bytes[0..8].copy_from_slice(&0x0102_0304_0506_0708i64.to_be_bytes());
    bytes[12..16].copy_from_slice(&(-5i32).to_be_bytes());
    bytes[21..23].copy_from_slice(&0x0034i16.to_be_bytes());
    bytes[43..51].copy_from_slice(&(-9i64).to_be_bytes());
    bytes[51..53].copy_from_slice(&0x7ff0i16.to_be_bytes());
    let v = view(&bytes);
    assert_eq!(v.base_offset(), 0x0102_0304_0506_0708);
    assert_eq!(v.partition_leader_epoch(), -5);
    assert_eq!(v.producer_id(), -9);
    assert_eq!(v.producer_epoch(), 0x7ff0);
    let a = v.attributes();
    assert_eq!(a.compression(), Compression::Zstd);
    assert_eq!(a.timestamp_type(), TimestampType::CreateTime);
    assert!(a.is_transactional());
    assert!(a.is_control());
}

#[test]
fn attributes_decode_every_bit() {
    assert_eq!(
        Attributes(0x08).timestamp_type(),
        TimestampType::LogAppendTime
    );
    assert!(!Attributes(0x08).is_transactional());
    for codec in Compression::ALL {
        assert_eq!(Attributes(codec.id()).compression(), codec);
        assert_eq!(Compression::from_id(codec.id()), Some(codec));
    }
    for id in 5..8 {
        assert_eq!(
            Attributes(id).try_compression(),
            Err(BatchError::UnsupportedCompression(id))
        );
        assert_eq!(Attributes(id).compression_id(), id);
    }
}

#[test]
fn iterator_returns_what_the_builder_wrote() {
    let bytes = sample_batch(Compression::None);
    let records: Vec<_> = view(&bytes)
        .records()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(
        records[0],
        Record {
            offset_delta: 0,
            timestamp_delta: 0,
            key: Some(b"k0"),
            value: Some(b"v0"),
            headers: vec![Header {
                key: b"h",
                value: Some(b"x")
            }],
        }
    );
    assert_eq!(records[1].offset_delta, 1);
    assert_eq!(records[1].timestamp_delta, 5);
    assert_eq!(records[1].key, None);
    assert_eq!(records[2].timestamp_delta, -2);
    assert_eq!(records[2].key, Some(&b""[..]));
    assert_eq!(records[2].value, None);
    assert_eq!(
        records[2].headers,
        vec![
            Header {
                key: b"a",
                value: None
            },
            Header {
                key: b"b",
                value: Some(b"")
            }
        ]
    );
}

#[test]
fn compressed_batches_decompress_to_the_same_records() {
    let plain = sample_batch(Compression::None);
    for codec in Compression::ALL {
        let bytes = sample_batch(codec);
        let v = view(&bytes);
        v.validate().unwrap();
        assert_eq!(v.attributes().compression(), codec);
        assert_eq!(v.decompress(1 << 20).unwrap(), &plain[61..], "{codec:?}");
        if codec != Compression::None {
            assert_eq!(v.records().unwrap_err(), BatchError::Compressed(codec));
        }
    }
}

#[test]
fn compressed_records_are_checked_whole_and_bounded() {
    for codec in Compression::ALL {
        let good = sample_batch(codec);
        view(&good).validate_compressed_records(1 << 20).unwrap();
        if codec == Compression::None {
            continue;
        }
        // A count the stream does not hold, and a stream that is not the codec's.
        let mut more = good.clone();
        put_i32_at(&mut more, 23, 3);
        put_i32_at(&mut more, 57, 4);
        fix_crc(&mut more);
        view(&more).validate().unwrap();
        assert!(
            matches!(
                view(&more).validate_compressed_records(1 << 20),
                Err(BatchError::InvalidRecord(_))
            ),
            "{codec:?}"
        );
        let mut garbage = good.clone();
        garbage[61..].fill(0xa5);
        fix_crc(&mut garbage);
        assert!(
            view(&garbage).validate_compressed_records(1 << 20).is_err(),
            "{codec:?}"
        );
        assert_eq!(
            view(&good).validate_compressed_records(8),
            Err(BatchError::DecompressedTooLarge { max_bytes: 8 }),
            "{codec:?}"
        );
    }
}

#[test]
fn empty_builder_makes_a_batch_that_only_integrity_accepts() {
    let bytes = RecordBatchBuilder::new(Compression::None, T0).finish();
    assert_eq!(bytes.len(), RECORD_BATCH_OVERHEAD);
    let v = view(&bytes);
    assert_eq!(v.record_count(), 0);
    assert_eq!(v.last_offset_delta(), -1);
    assert_eq!(v.max_timestamp(), T0);
    v.validate_integrity().unwrap();
    assert!(matches!(v.validate(), Err(BatchError::InvalidRecord(_))));
    assert_eq!(v.records().unwrap().count(), 0);
}

#[test]
fn size_estimate_tracks_the_uncompressed_size() {
    let mut b = RecordBatchBuilder::new(Compression::None, T0);
    assert_eq!(b.size_estimate(), 61);
    b.append(T0, None, Some(&[0; 100]), &[]);
    assert_eq!(b.record_count(), 1);
    let est = b.size_estimate();
    assert_eq!(b.finish().len(), est);
    let mut z = RecordBatchBuilder::new(Compression::Zstd, T0);
    z.append(T0, None, Some(&[0; 100]), &[]);
    assert_eq!(z.size_estimate(), est);
}

#[test]
fn parse_rejects_short_input_and_other_magics() {
    let bytes = sample_batch(Compression::None);
    assert_eq!(
        RecordBatchView::parse(&bytes[..16]),
        Err(BatchError::Corrupt(Corruption::Truncated {
            needed: 17,
            available: 16
        }))
    );
    for magic in [0u8, 1, 3, 0xff] {
        let mut b = bytes.clone();
        b[16] = magic;
        assert_eq!(
            RecordBatchView::parse(&b),
            Err(BatchError::UnsupportedMagic(magic as i8))
        );
    }
}

#[test]
fn parse_rejects_batch_length_below_the_header() {
    let mut bytes = sample_batch(Compression::None);
    for bad in [48, 0, -1, i32::MIN] {
        put_i32_at(&mut bytes, 8, bad);
        assert_eq!(
            RecordBatchView::parse(&bytes),
            Err(BatchError::Corrupt(Corruption::BatchLength(bad)))
        );
    }
}

#[test]
fn parse_rejects_batch_length_beyond_the_input() {
    let bytes = sample_batch(Compression::None);
    let cut = &bytes[..bytes.len() - 1];
    assert_eq!(
        RecordBatchView::parse(cut),
        Err(BatchError::Corrupt(Corruption::Truncated {
            needed: bytes.len(),
            available: cut.len()
        }))
    );
    let mut huge = bytes.clone();
    put_i32_at(&mut huge, 8, i32::MAX);
    assert!(matches!(
        RecordBatchView::parse(&huge),
        Err(BatchError::Corrupt(Corruption::Truncated { .. }))
    ));
}

#[test]
fn parse_keeps_only_the_batch_when_more_follows() {
    let mut bytes = sample_batch(Compression::None);
    let len = bytes.len();
    bytes.extend_from_slice(b"next batch");
    let v = view(&bytes);
    assert_eq!(v.len(), len);
    v.validate().unwrap();
}

#[test]
fn any_flipped_bit_after_byte_21_fails_the_crc() {
    let bytes = sample_batch(Compression::None);
    for at in 21..bytes.len() {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        let err = view(&b).validate().unwrap_err();
        assert!(
            matches!(err, BatchError::Corrupt(Corruption::Crc { .. })),
            "byte {at}: {err}"
        );
    }
    let mut b = bytes.clone();
    b[17] ^= 1;
    assert!(matches!(
        view(&b).validate(),
        Err(BatchError::Corrupt(Corruption::Crc { .. }))
    ));
}

#[test]
fn invalid_codec_ids_are_unsupported_compression() {
    let mut bytes = sample_batch(Compression::None);
    for id in 5..8i16 {
        bytes[21..23].copy_from_slice(&id.to_be_bytes());
        fix_crc(&mut bytes);
        let v = view(&bytes);
        assert_eq!(v.validate(), Err(BatchError::UnsupportedCompression(id)));
        assert_eq!(
            v.records().unwrap_err(),
            BatchError::UnsupportedCompression(id)
        );
        assert_eq!(
            v.decompress(1 << 20).unwrap_err(),
            BatchError::UnsupportedCompression(id)
        );
    }
}

fn with_count(count: i32, last_offset_delta: i32) -> Vec<u8> {
    let mut bytes = sample_batch(Compression::None);
    header_of(&mut bytes).record_count.set(count);
    header_of(&mut bytes)
        .last_offset_delta
        .set(last_offset_delta);
    fix_crc(&mut bytes);
    bytes
}

#[test]
fn negative_record_count_is_invalid() {
    let bytes = with_count(-1, -2);
    assert_eq!(
        view(&bytes).validate_integrity(),
        Err(BatchError::InvalidRecord("negative record count"))
    );
}

#[test]
fn record_count_beyond_seven_bytes_per_record_is_invalid() {
    let bytes = sample_batch(Compression::None);
    let max = ((bytes.len() - 61) / 7) as i32;
    let bytes = with_count(max + 1, max);
    assert_eq!(
        view(&bytes).validate_integrity(),
        Err(BatchError::InvalidRecord(
            "record count exceeds what the batch length can hold"
        ))
    );
    let bytes = with_count(i32::MAX, i32::MAX - 1);
    assert!(view(&bytes).validate_integrity().is_err());
}

#[test]
fn last_offset_delta_must_be_count_minus_one() {
    for (count, delta) in [(3, 3), (3, 1), (3, -1), (3, i32::MAX)] {
        let bytes = with_count(count, delta);
        assert!(
            matches!(view(&bytes).validate(), Err(BatchError::InvalidRecord(_))),
            "{count} {delta}"
        );
        // Replicated or stored batches (compaction) may disagree: integrity only.
        view(&bytes).validate_integrity().unwrap();
    }
}

#[test]
fn count_disagreeing_with_the_records_is_invalid() {
    let bytes = with_count(2, 1);
    assert_eq!(
        view(&bytes).validate(),
        Err(BatchError::InvalidRecord(
            "bytes remain after the declared record count"
        ))
    );
}

#[test]
fn clients_may_not_write_control_batches() {
    let mut bytes = sample_batch(Compression::None);
    bytes[22] |= 0x20;
    fix_crc(&mut bytes);
    assert_eq!(
        view(&bytes).validate(),
        Err(BatchError::InvalidRecord(
            "clients are not allowed to write control records"
        ))
    );
}

#[test]
fn producer_id_requires_a_base_sequence() {
    let mut bytes = sample_batch(Compression::None);
    header_of(&mut bytes).base_sequence.set(-1);
    fix_crc(&mut bytes);
    assert_eq!(
        view(&bytes).validate(),
        Err(BatchError::InvalidRecord(
            "invalid sequence number with a producer id"
        ))
    );
}

#[test]
fn malformed_record_inside_a_good_crc_is_invalid_record() {
    let mut bytes = sample_batch(Compression::None);
    bytes[61] = 0x7f; // first record's length: -64
    fix_crc(&mut bytes);
    assert_eq!(
        view(&bytes).validate(),
        Err(BatchError::InvalidRecord("negative record length"))
    );
}

#[test]
fn set_base_offset_and_epoch_leave_the_crc_valid() {
    let mut bytes = sample_batch(Compression::Lz4);
    let crc = view(&bytes).crc();
    set_base_offset(&mut bytes, 123_456_789_012);
    set_partition_leader_epoch(&mut bytes, 42);
    let v = view(&bytes);
    assert_eq!(v.base_offset(), 123_456_789_012);
    assert_eq!(v.last_offset(), 123_456_789_014);
    assert_eq!(v.partition_leader_epoch(), 42);
    assert_eq!(v.crc(), crc);
    v.validate().unwrap();
}

#[test]
fn set_log_append_time_sets_type_and_max_timestamp_and_recomputes_the_crc() {
    for codec in Compression::ALL {
        let mut bytes = sample_batch(codec);
        let before = bytes.clone();
        set_log_append_time(&mut bytes, T0 + 999);
        let v = view(&bytes);
        assert_eq!(
            v.attributes().timestamp_type(),
            TimestampType::LogAppendTime
        );
        assert_eq!(v.attributes().compression(), codec);
        assert_eq!(v.max_timestamp(), T0 + 999);
        assert_eq!(v.base_timestamp(), T0);
        assert_ne!(v.crc(), view(&before).crc());
        v.validate().unwrap();
        assert_eq!(&bytes[61..], &before[61..]);
    }
}

#[test]
fn set_log_append_time_covers_only_the_batch_when_more_follows() {
    let mut bytes = sample_batch(Compression::None);
    let len = bytes.len();
    bytes.extend_from_slice(&[9; 10]);
    set_log_append_time(&mut bytes, 5);
    view(&bytes).validate().unwrap();
    assert_eq!(&bytes[len..], &[9; 10]);
}

#[test]
#[should_panic(expected = "record batch setter")]
fn setters_refuse_a_slice_shorter_than_the_header() {
    set_base_offset(&mut [0u8; 60], 1);
}

#[test]
fn batches_iterates_back_to_back_and_reports_a_partial_tail() {
    let a = sample_batch(Compression::None);
    let b = sample_batch(Compression::Gzip);
    let mut bytes = [a.clone(), b.clone()].concat();
    let got: Vec<_> = batches(&bytes).collect::<Result<_, _>>().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].bytes(), &a[..]);
    assert_eq!(got[1].bytes(), &b[..]);

    bytes.extend_from_slice(&a[..30]);
    let got: Vec<_> = batches(&bytes).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[2],
        Err(BatchError::Corrupt(Corruption::Truncated {
            needed: a.len(),
            available: 30
        }))
    );
    assert_eq!(batches(&[]).count(), 0);
}

#[test]
fn decompress_of_an_uncompressed_batch_is_bounded_too() {
    let bytes = sample_batch(Compression::None);
    let n = bytes.len() - 61;
    assert_eq!(view(&bytes).decompress(n).unwrap(), &bytes[61..]);
    assert_eq!(
        view(&bytes).decompress(n - 1),
        Err(BatchError::DecompressedTooLarge { max_bytes: n - 1 })
    );
}

#[test]
fn corrupt_compressed_payload_with_valid_crc_is_corrupt() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut bytes = sample_batch(codec);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        bytes[62] ^= 0xff;
        fix_crc(&mut bytes);
        let v = view(&bytes);
        v.validate().unwrap(); // records of a compressed batch are checked after decompress
        let result = v
            .decompress(1 << 20)
            .and_then(|raw| parse_records(&raw, v.record_count()).try_for_each(|r| r.map(drop)));
        assert!(result.is_err(), "{codec:?}");
    }
}

#[test]
fn errors_display_their_context() {
    let e = BatchError::Corrupt(Corruption::Crc {
        stored: 1,
        computed: 2,
    });
    assert_eq!(
        e.to_string(),
        "corrupt record batch: CRC-32C mismatch: stored 0x00000001, computed 0x00000002"
    );
    assert_eq!(
        BatchError::UnsupportedMagic(1).to_string(),
        "unsupported record batch magic 1"
    );
}
