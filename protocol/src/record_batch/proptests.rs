//! Property tests: builder → view → iterator round trips for every codec, and hostile
//! input (mutated batches, arbitrary bytes, arbitrary records under a valid CRC) never
//! panics.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

type Headers = Vec<(Vec<u8>, Option<Vec<u8>>)>;

#[derive(Debug, Clone)]
pub(super) struct TestRecord {
    pub(super) timestamp_delta: i64,
    pub(super) key: Option<Vec<u8>>,
    pub(super) value: Option<Vec<u8>>,
    pub(super) headers: Headers,
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

pub(super) fn test_record() -> impl Strategy<Value = TestRecord> {
    (
        -1_000_000i64..1_000_000,
        prop::option::of(bytes(64)),
        prop::option::weighted(0.9, bytes(512)),
        prop::collection::vec((bytes(16), prop::option::of(bytes(16))), 0..4),
    )
        .prop_map(|(timestamp_delta, key, value, headers)| TestRecord {
            timestamp_delta,
            key,
            value,
            headers,
        })
}

pub(super) fn compression() -> impl Strategy<Value = Compression> {
    prop::sample::select(Compression::ALL.to_vec())
}

pub(super) fn build(
    compression: Compression,
    base_ts: i64,
    producer: (i64, i16, i32),
    records: &[TestRecord],
) -> Bytes {
    let mut b =
        RecordBatchBuilder::new(compression, base_ts).producer(producer.0, producer.1, producer.2);
    for r in records {
        let headers: Vec<(&[u8], Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(k, v)| (&k[..], v.as_deref()))
            .collect();
        b.append(
            base_ts + r.timestamp_delta,
            r.key.as_deref(),
            r.value.as_deref(),
            &headers,
        );
    }
    b.finish()
}

/// The records of a batch, decompressing when needed.
fn decoded(view: &RecordBatchView<'_>) -> Result<(Vec<u8>, i32), BatchError> {
    Ok((view.decompress(1 << 24)?, view.record_count()))
}

fn check_same_records(raw: &[u8], count: i32, records: &[TestRecord]) -> Result<(), TestCaseError> {
    let got: Vec<Record<'_>> = parse_records(raw, count)
        .collect::<Result<_, _>>()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(got.len(), records.len());
    for (i, (g, want)) in got.iter().zip(records).enumerate() {
        prop_assert_eq!(g.offset_delta, i as i32);
        prop_assert_eq!(g.timestamp_delta, want.timestamp_delta);
        prop_assert_eq!(g.key, want.key.as_deref());
        prop_assert_eq!(g.value, want.value.as_deref());
        let headers: Vec<Header<'_>> = want
            .headers
            .iter()
            .map(|(k, v)| Header {
                key: k,
                value: v.as_deref(),
            })
            .collect();
        prop_assert_eq!(&g.headers, &headers);
    }
    Ok(())
}

/// Exercises every reading path; must never panic whatever the bytes.
fn poke(bytes: &[u8]) {
    for batch in batches(bytes) {
        let Ok(view) = batch else { break };
        let _ = view.validate();
        let _ = view.validate_integrity();
        if let Ok(records) = view.records() {
            records.for_each(drop);
        }
        if let Ok(raw) = view.decompress(1 << 20) {
            parse_records(&raw, view.record_count()).for_each(drop);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn builder_view_iterator_round_trip(
        compression in compression(),
        base_ts in 0i64..(1 << 45),
        producer_id in prop_oneof![Just(-1i64), 0i64..1_000_000],
        epoch in 0i16..100,
        seq in 0i32..1_000_000,
        records in prop::collection::vec(test_record(), 1..40),
    ) {
        let (epoch, seq) = if producer_id < 0 { (-1, -1) } else { (epoch, seq) };
        let batch = build(compression, base_ts, (producer_id, epoch, seq), &records);
        let view = RecordBatchView::parse(&batch).unwrap();
        prop_assert_eq!(view.len(), batch.len());
        prop_assert_eq!(view.validate(), Ok(()));
        prop_assert_eq!(view.attributes().compression(), compression);
        prop_assert_eq!(view.record_count() as usize, records.len());
        prop_assert_eq!(view.last_offset_delta() as usize, records.len() - 1);
        prop_assert_eq!(view.base_timestamp(), base_ts);
        let max_delta = records.iter().map(|r| r.timestamp_delta).max().unwrap();
        prop_assert_eq!(view.max_timestamp(), base_ts + max_delta);
        prop_assert_eq!((view.producer_id(), view.producer_epoch(), view.base_sequence()), (producer_id, epoch, seq));
        let (raw, count) = decoded(&view).unwrap();
        check_same_records(&raw, count, &records)?;
        if compression == Compression::None {
            let direct: Vec<_> = view.records().unwrap().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(direct.len(), records.len());
        }
    }

}

proptest! {
    // Hostile input is cheap to check: many more cases.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn mutated_batches_never_panic_and_validate_only_with_the_original_crc(
        compression in compression(),
        records in prop::collection::vec(test_record(), 1..8),
        mutations in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in prop::option::weighted(0.2, any::<prop::sample::Index>()),
    ) {
        let original = build(compression, 1_700_000_000_000, (-1, -1, -1), &records);
        let mut bytes = original.to_vec();
        for (at, byte) in &mutations {
            let at = at.index(bytes.len());
            bytes[at] = *byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        poke(&bytes);
        if let Ok(view) = RecordBatchView::parse(&bytes) {
            if view.validate().is_ok() {
                prop_assert_eq!(view.crc(), crc32c::crc32c(&original[21..]));
                prop_assert_eq!(&view.bytes()[21..], &original[21..]);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in bytes(4096)) {
        poke(&bytes);
    }

    #[test]
    fn arbitrary_records_under_a_valid_crc_never_panic(
        codec_id in 0i16..8,
        count in prop_oneof![0i32..64, any::<i32>()],
        body in bytes(2048),
        prefix in prop::collection::vec(test_record(), 0..3),
    ) {
        // A real batch's records (maybe compressed) followed by junk: deep parser paths.
        let compression = Compression::from_id(codec_id).unwrap_or(Compression::None);
        let base = build(compression, 0, (-1, -1, -1), &prefix);
        let mut bytes = base.to_vec();
        bytes.extend_from_slice(&body);
        let batch_length = (bytes.len() - LOG_OVERHEAD) as i32;
        let header = RecordBatchHeader::view_mut(&mut bytes).expect("a built batch");
        header.log.batch_length.set(batch_length);
        header.attributes.set(codec_id);
        header.record_count.set(count);
        header.last_offset_delta.set(count.wrapping_sub(1));
        let end = bytes.len();
        write_crc(&mut bytes, end);
        poke(&bytes);
        // Junk after the records must never validate for an uncompressed batch.
        if codec_id == 0 && !body.is_empty() && count == prefix.len() as i32 {
            prop_assert!(RecordBatchView::parse(&bytes).unwrap().validate().is_err());
        }
    }

    #[test]
    fn setters_keep_a_batch_valid(
        compression in compression(),
        records in prop::collection::vec(test_record(), 1..8),
        base_offset in any::<i64>(),
        epoch in any::<i32>(),
        append_time in any::<i64>(),
    ) {
        let mut bytes = build(compression, 0, (-1, -1, -1), &records).to_vec();
        set_base_offset(&mut bytes, base_offset);
        set_partition_leader_epoch(&mut bytes, epoch);
        set_log_append_time(&mut bytes, append_time);
        let view = RecordBatchView::parse(&bytes).unwrap();
        prop_assert_eq!(view.validate(), Ok(()));
        prop_assert_eq!(view.base_offset(), base_offset);
        prop_assert_eq!(view.partition_leader_epoch(), epoch);
        prop_assert_eq!(view.max_timestamp(), append_time);
        prop_assert_eq!(view.attributes().timestamp_type(), TimestampType::LogAppendTime);
    }
}
