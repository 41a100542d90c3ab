//! Cross-checks against an independent implementation, the `kafka-protocol` crate:
//! batches it encodes decode with our view and iterator, and batches our builder makes
//! decode with its `RecordBatchDecoder`, for every codec.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KCompression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType as KTimestampType,
};
use proptest::prelude::*;

use super::proptests::{build, compression, test_record, TestRecord};
use super::*;

fn theirs(c: Compression) -> KCompression {
    match c {
        Compression::None => KCompression::None,
        Compression::Gzip => KCompression::Gzip,
        Compression::Snappy => KCompression::Snappy,
        Compression::Lz4 => KCompression::Lz4,
        Compression::Zstd => KCompression::Zstd,
    }
}

/// kafka-protocol keeps headers in a map keyed by UTF-8 strings: unique keys only.
fn utf8_headers() -> impl Strategy<Value = Vec<(String, Option<Vec<u8>>)>> {
    prop::collection::btree_map(
        "[a-z0-9.-]{0,8}",
        prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
        0..4,
    )
    .prop_map(|m| m.into_iter().collect())
}

fn records_with_utf8_headers() -> impl Strategy<Value = Vec<TestRecord>> {
    prop::collection::vec(
        (test_record(), utf8_headers()).prop_map(|(mut r, h)| {
            r.headers = h.into_iter().map(|(k, v)| (k.into_bytes(), v)).collect();
            r
        }),
        1..30,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn batches_kafka_protocol_encodes_decode_with_our_view(
        compression in compression(),
        base_ts in 0i64..(1 << 45),
        producer_id in 0i64..1_000_000,
        epoch in 0i16..100,
        base_seq in 0i32..1_000_000,
        records in records_with_utf8_headers(),
    ) {
        let theirs_records: Vec<KRecord> = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut record = KRecord {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 5,
                    producer_id,
                    producer_epoch: epoch,
                    timestamp_type: KTimestampType::Creation,
                    offset: i as i64,
                    sequence: base_seq + i as i32,
                    timestamp: base_ts + r.timestamp_delta,
                    key: r.key.clone().map(Bytes::from),
                    value: r.value.clone().map(Bytes::from),
                    headers: Default::default(),
                };
                for (k, v) in &r.headers {
                    record.headers.insert(
                        StrBytes::from_string(String::from_utf8(k.clone()).unwrap()),
                        v.clone().map(Bytes::from),
                    );
                }
                record
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &theirs_records,
            &RecordEncodeOptions { version: 2, compression: theirs(compression) },
        )
        .unwrap();

        let view = RecordBatchView::parse(&buf).unwrap();
        prop_assert_eq!(view.len(), buf.len(), "one batch");
        prop_assert_eq!(view.validate(), Ok(()));
        prop_assert_eq!(view.attributes().compression(), compression);
        prop_assert_eq!(view.record_count() as usize, records.len());
        prop_assert_eq!(view.partition_leader_epoch(), 5);
        prop_assert_eq!((view.producer_id(), view.producer_epoch(), view.base_sequence()), (producer_id, epoch, base_seq));
        let min_ts = records.iter().map(|r| base_ts + r.timestamp_delta).min().unwrap();
        let max_ts = records.iter().map(|r| base_ts + r.timestamp_delta).max().unwrap();
        prop_assert_eq!((view.base_timestamp(), view.max_timestamp()), (min_ts, max_ts));

        let raw = view.decompress(1 << 24).unwrap();
        let ours: Vec<Record<'_>> = parse_records(&raw, view.record_count()).collect::<Result<_, _>>().unwrap();
        for (i, (got, want)) in ours.iter().zip(&records).enumerate() {
            prop_assert_eq!(got.offset_delta, i as i32);
            prop_assert_eq!(view.base_timestamp() + got.timestamp_delta, base_ts + want.timestamp_delta);
            prop_assert_eq!(got.key, want.key.as_deref());
            prop_assert_eq!(got.value, want.value.as_deref());
            let headers: Vec<(&[u8], Option<&[u8]>)> = got.headers.iter().map(|h| (h.key, h.value)).collect();
            let want_headers: Vec<(&[u8], Option<&[u8]>)> = want.headers.iter().map(|(k, v)| (&k[..], v.as_deref())).collect();
            prop_assert_eq!(headers, want_headers);
        }
    }

    #[test]
    fn batches_our_builder_makes_decode_with_kafka_protocol(
        compression in compression(),
        base_ts in 0i64..(1 << 45),
        producer_id in 0i64..1_000_000,
        epoch in 0i16..100,
        base_seq in 0i32..1_000_000,
        records in records_with_utf8_headers(),
        base_offset in 0i64..(1 << 40),
    ) {
        let mut batch = build(compression, base_ts, (producer_id, epoch, base_seq), &records).to_vec();
        set_base_offset(&mut batch, base_offset);
        set_partition_leader_epoch(&mut batch, 9);
        let mut bytes = Bytes::from(batch);
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        prop_assert!(bytes.is_empty());
        prop_assert_eq!(set.version, 2);
        prop_assert_eq!(set.compression, theirs(compression));
        prop_assert_eq!(set.records.len(), records.len());
        for (i, (got, want)) in set.records.iter().zip(&records).enumerate() {
            prop_assert_eq!(got.offset, base_offset + i as i64);
            prop_assert_eq!(got.sequence, base_seq + i as i32);
            prop_assert_eq!(got.timestamp, base_ts + want.timestamp_delta);
            prop_assert_eq!(got.producer_id, producer_id);
            prop_assert_eq!(got.producer_epoch, epoch);
            prop_assert_eq!(got.partition_leader_epoch, 9);
            prop_assert_eq!(got.key.as_deref(), want.key.as_deref());
            prop_assert_eq!(got.value.as_deref(), want.value.as_deref());
            let headers: Vec<(&[u8], Option<&[u8]>)> = got.headers.iter().map(|(k, v)| (k.as_bytes(), v.as_deref())).collect();
            let want_headers: Vec<(&[u8], Option<&[u8]>)> = want.headers.iter().map(|(k, v)| (&k[..], v.as_deref())).collect();
            prop_assert_eq!(headers, want_headers);
        }
    }
}
