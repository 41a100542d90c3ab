//! Many requests in flight on one connection, touching partitions on both shards: responses
//! come back in request order (the protocol requires it), acks=0 produces get none, and every
//! produce lands.

use std::collections::HashMap;

use riffle_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use riffle_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use riffle_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse,
};
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::{decode_response, error_code, Bytes, Records};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{Broker, BrokerOptions};

const PARTITIONS: i32 = 8;
const REQUESTS: usize = 400;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Produce,
    ProduceAcks0,
    Metadata,
    Fetch,
    ApiVersions,
}

fn batch(i: usize) -> Bytes {
    let now_ms = 1_700_000_000_000;
    let mut builder = RecordBatchBuilder::new(Compression::None, now_ms);
    builder.append(now_ms, None, Some(format!("pipelined-{i}").as_bytes()), &[]);
    builder.finish()
}

fn produce(topic: &str, partition: i32, acks: i16, i: usize) -> ProduceRequest {
    ProduceRequest {
        transactional_id: None,
        acks,
        timeout_ms: 10_000,
        topic_data: vec![TopicProduceData {
            topic_id: Default::default(),
            name: topic.to_string(),
            partition_data: vec![PartitionProduceData {
                index: partition,
                records: Some(Records::from_bytes(batch(i))),
            }],
        }],
    }
}

#[test]
fn pipelined_requests_across_shards_are_answered_in_order() {
    let broker = Broker::start_with(BrokerOptions {
        smp: 2,
        ..Default::default()
    });
    let addr = broker.addr();
    let topic = "pipelined";
    kafka::create_topic(&addr, topic, PARTITIONS);
    let mut conn = Connection::connect(&addr).expect("connect");

    // (correlation id, kind) of every request expecting an answer, in send order.
    let mut expected = Vec::new();
    let mut wire = Vec::new();
    let mut produced: HashMap<i32, i64> = HashMap::new();
    for i in 0..REQUESTS {
        let partition = (i % PARTITIONS as usize) as i32;
        let kind = match i % 10 {
            0 | 3 | 6 => Kind::Produce,
            9 => Kind::ProduceAcks0,
            1 | 7 => Kind::Fetch,
            4 => Kind::Metadata,
            _ => Kind::ApiVersions,
        };
        let bytes = match kind {
            Kind::Produce => conn.encode(kafka::PRODUCE_VERSION, &produce(topic, partition, -1, i)),
            Kind::ProduceAcks0 => {
                conn.encode(kafka::PRODUCE_VERSION, &produce(topic, partition, 0, i))
            }
            Kind::Metadata => conn.encode(
                kafka::METADATA_VERSION,
                &MetadataRequest {
                    topics: None,
                    ..Default::default()
                },
            ),
            Kind::Fetch => conn.encode(
                kafka::FETCH_VERSION,
                &FetchRequest {
                    replica_id: -1,
                    max_wait_ms: 0,
                    min_bytes: 0,
                    max_bytes: 1024 * 1024,
                    session_epoch: -1,
                    topics: vec![FetchTopic {
                        topic: topic.to_string(),
                        partitions: vec![FetchPartition {
                            partition,
                            fetch_offset: 0,
                            partition_max_bytes: 64 * 1024,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ),
            Kind::ApiVersions => conn.encode(3, &ApiVersionsRequest::default()),
        };
        let correlation_id = i32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if matches!(kind, Kind::Produce | Kind::ProduceAcks0) {
            *produced.entry(partition).or_default() += 1;
        }
        if !matches!(kind, Kind::ProduceAcks0) {
            expected.push((correlation_id, kind, partition));
        }
        wire.extend_from_slice(&bytes);
    }
    // All requests at once: they are all in flight together.
    conn.send_raw(&wire).expect("send the pipelined requests");

    for (n, (correlation_id, kind, partition)) in expected.iter().enumerate() {
        let frame = conn
            .read_frame()
            .unwrap_or_else(|e| panic!("response #{n} ({kind:?}): {e}"));
        let got = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        assert_eq!(
            got, *correlation_id,
            "response #{n}: correlation id {got}, but request {correlation_id} ({kind:?}) was next"
        );
        match kind {
            Kind::Produce => {
                let (_, r) = decode_response::<ProduceResponse>(frame, kafka::PRODUCE_VERSION)
                    .expect("Produce response");
                let p = &r.responses[0].partition_responses[0];
                assert_eq!(
                    (p.index, p.error_code),
                    (*partition, error_code::NONE),
                    "{r:?}"
                );
            }
            Kind::Fetch => {
                let (_, r) = decode_response::<FetchResponse>(frame, kafka::FETCH_VERSION)
                    .expect("Fetch response");
                let p = &r.responses[0].partitions[0];
                assert_eq!(p.partition_index, *partition);
                assert_eq!(p.error_code, error_code::NONE);
            }
            Kind::Metadata => {
                let (_, r) = decode_response::<MetadataResponse>(frame, kafka::METADATA_VERSION)
                    .expect("Metadata response");
                assert!(r.topics.iter().any(|t| t.name.as_deref() == Some(topic)));
            }
            Kind::ApiVersions => {
                let (_, r) =
                    decode_response::<ApiVersionsResponse>(frame, 3).expect("ApiVersions response");
                assert_eq!(r.error_code, error_code::NONE);
            }
            Kind::ProduceAcks0 => unreachable!("acks=0 expects no response"),
        }
    }
    // Every produce landed, the acks=0 ones included.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for partition in 0..PARTITIONS {
        let want = produced.get(&partition).copied().unwrap_or(0);
        loop {
            let end = kafka::fetch(&mut conn, topic, partition, 0, 0).high_watermark;
            if end == want {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "partition {partition}: log end {end}, {want} batches produced"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

#[test]
fn many_concurrent_connections_are_all_served() {
    const CONNECTIONS: usize = 300;
    let broker = Broker::start_with(BrokerOptions {
        smp: 2,
        ..Default::default()
    });
    let addr = broker.addr();
    let topic = "many-connections";
    kafka::create_topic(&addr, topic, PARTITIONS);
    let mut conns: Vec<Connection> = (0..CONNECTIONS)
        .map(|n| Connection::connect(&addr).unwrap_or_else(|e| panic!("connection #{n}: {e}")))
        .collect();
    // Every connection has a request in flight before any answer is read.
    for (n, conn) in conns.iter_mut().enumerate() {
        let partition = (n % PARTITIONS as usize) as i32;
        let bytes = conn.encode(kafka::PRODUCE_VERSION, &produce(topic, partition, -1, n));
        conn.send_raw(&bytes).expect("send");
    }
    for (n, conn) in conns.iter_mut().enumerate() {
        let frame = conn
            .read_frame()
            .unwrap_or_else(|e| panic!("connection #{n}: {e}"));
        let (_, r) = decode_response::<ProduceResponse>(frame, kafka::PRODUCE_VERSION)
            .expect("Produce response");
        assert_eq!(
            r.responses[0].partition_responses[0].error_code,
            error_code::NONE,
            "connection #{n}"
        );
    }
    drop(conns);
    let mut conn = Connection::connect(&addr).expect("connect");
    let total: i64 = (0..PARTITIONS)
        .map(|p| kafka::fetch(&mut conn, topic, p, 0, 0).high_watermark)
        .sum();
    assert_eq!(total, CONNECTIONS as i64);
}
