//! Codec micro-benchmarks: decoding a Produce request carrying one 16 KiB batch (the produce hot
//! path) and encoding a Fetch response carrying 1 MiB of stored batches (the consume hot path).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use riffle_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use riffle_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use riffle_protocol::messages::{FetchResponse, ProduceRequest};
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::{
    decode_request, encode_request, encode_response, Bytes, Records, RequestBody, RequestHeader,
};

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 16;

/// One uncompressed batch of 100 records with ~150-byte values: about 16 KiB.
fn batch_16k() -> Bytes {
    let mut b = RecordBatchBuilder::new(Compression::None, 1_700_000_000_000).producer(1, 0, 0);
    let value = [0x5au8; 150];
    for i in 0..100i64 {
        b.append(1_700_000_000_000 + i, Some(b"key-0000"), Some(&value), &[]);
    }
    b.finish()
}

fn produce_frame(batch: Bytes) -> Bytes {
    let req = ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            topic_id: Default::default(),
            name: "bench-topic".into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(Records::from_bytes(batch)),
            }],
        }],
    };
    let header = RequestHeader {
        request_api_key: 0,
        request_api_version: PRODUCE_VERSION,
        correlation_id: 1,
        client_id: Some("bench".into()),
    };
    let chunks = encode_request(&header, &req).expect("encodable");
    let mut all = Vec::new();
    for c in &chunks {
        all.extend_from_slice(c);
    }
    Bytes::from(all).slice(4..)
}

/// 64 partitions x 16 KiB of records = 1 MiB, each partition's records a stored chunk.
fn fetch_response(batch: &Bytes) -> FetchResponse {
    let partitions = (0..64)
        .map(|i| PartitionData {
            partition_index: i,
            high_watermark: 1_000_000,
            last_stable_offset: 1_000_000,
            log_start_offset: 0,
            records: Some(Records::from_bytes(batch.clone())),
            ..Default::default()
        })
        .collect();
    FetchResponse {
        responses: vec![FetchableTopicResponse {
            topic: "bench-topic".into(),
            partitions,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn codec(c: &mut Criterion) {
    let batch = batch_16k();
    let frame = produce_frame(batch.clone());

    let mut g = c.benchmark_group("produce_request_decode");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function(
        format!("v{PRODUCE_VERSION}_one_16KiB_batch_100_records"),
        |b| {
            b.iter(|| {
                let req = decode_request(std::hint::black_box(frame.clone())).expect("valid frame");
                match req.body {
                    RequestBody::Produce(p) => p,
                    _ => unreachable!("a produce frame"),
                }
            })
        },
    );
    g.finish();

    let resp = fetch_response(&batch);
    let total: usize = 64 * batch.len();
    let mut g = c.benchmark_group("fetch_response_encode");
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function(
        format!("v{FETCH_VERSION}_1MiB_64_partitions_records_as_chunks"),
        |b| {
            b.iter(|| {
                encode_response(7, FETCH_VERSION, std::hint::black_box(&resp)).expect("encodable")
            })
        },
    );
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
