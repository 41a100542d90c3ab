//! `sink`: a trivial Kafka endpoint that acknowledges Produce requests at once without
//! storing anything, to measure riffle-loadgen's own ceiling. It answers ApiVersions,
//! Metadata (every topic exists, with `--partitions` partitions led by the sink),
//! CreateTopics, ListOffsets (always 0) and Produce. One thread per connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use anyhow::{Context, Result};
use riffle_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use riffle_protocol::messages::create_topics_response::{
    CreatableTopicResult, CreateTopicsResponse,
};
use riffle_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use riffle_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use riffle_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use riffle_protocol::{
    decode_request, encode_response, frame_size, ApiKey, Bytes, BytesMut, RequestBody,
    DEFAULT_MAX_FRAME_BYTES,
};

const READ_CHUNK_BYTES: usize = 1 << 20;

pub(crate) fn serve(listen: &str, partitions: i32) -> Result<()> {
    let listener =
        TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    println!("riffle-loadgen sink listening on {addr}");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || {
            if let Err(e) = connection(stream, addr, partitions) {
                eprintln!("sink: connection closed: {e}");
            }
        });
    }
    Ok(())
}

fn connection(mut stream: TcpStream, addr: SocketAddr, partitions: i32) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut scratch = vec![0u8; READ_CHUNK_BYTES];
    let mut base_offset: i64 = 0;
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let n = stream.read(&mut scratch)?;
        if n == 0 {
            return Ok(());
        }
        inbuf.extend_from_slice(&scratch[..n]);
        while let Some(len) =
            frame_size(&inbuf, DEFAULT_MAX_FRAME_BYTES).map_err(|e| anyhow::anyhow!("{e:?}"))?
        {
            if inbuf.len() < 4 + len {
                break;
            }
            let _ = inbuf.split_to(4);
            let frame: Bytes = inbuf.split_to(len).freeze();
            let req = decode_request(frame).map_err(|e| anyhow::anyhow!("bad request: {e}"))?;
            let corr = req.header.correlation_id;
            let v = req.header.request_api_version;
            let chunks = match req.body {
                RequestBody::ApiVersions(_) => {
                    let keys = [
                        ApiKey::Produce,
                        ApiKey::Metadata,
                        ApiKey::ApiVersions,
                        ApiKey::CreateTopics,
                        ApiKey::ListOffsets,
                    ];
                    encode_response(
                        corr,
                        v,
                        &ApiVersionsResponse {
                            api_keys: keys
                                .iter()
                                .map(|k| ApiVersion {
                                    api_key: *k as i16,
                                    min_version: k.versions().0,
                                    max_version: k.versions().1,
                                })
                                .collect(),
                            ..Default::default()
                        },
                    )
                }
                RequestBody::Metadata(m) => encode_response(
                    corr,
                    v,
                    &MetadataResponse {
                        brokers: vec![MetadataResponseBroker {
                            node_id: 0,
                            host: addr.ip().to_string(),
                            port: addr.port() as i32,
                            rack: None,
                        }],
                        cluster_id: Some("riffle-loadgen-sink".into()),
                        controller_id: 0,
                        topics: m
                            .topics
                            .unwrap_or_default()
                            .into_iter()
                            .map(|t| MetadataResponseTopic {
                                name: t.name,
                                partitions: (0..partitions)
                                    .map(|p| MetadataResponsePartition {
                                        partition_index: p,
                                        leader_id: 0,
                                        leader_epoch: 0,
                                        replica_nodes: vec![0],
                                        isr_nodes: vec![0],
                                        ..Default::default()
                                    })
                                    .collect(),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    },
                ),
                RequestBody::CreateTopics(c) => encode_response(
                    corr,
                    v,
                    &CreateTopicsResponse {
                        topics: c
                            .topics
                            .into_iter()
                            .map(|t| CreatableTopicResult {
                                name: t.name,
                                num_partitions: partitions,
                                replication_factor: 1,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    },
                ),
                RequestBody::ListOffsets(l) => encode_response(
                    corr,
                    v,
                    &ListOffsetsResponse {
                        topics: l
                            .topics
                            .into_iter()
                            .map(|t| ListOffsetsTopicResponse {
                                name: t.name,
                                partitions: t
                                    .partitions
                                    .iter()
                                    .map(|p| ListOffsetsPartitionResponse {
                                        partition_index: p.partition_index,
                                        offset: 0,
                                        ..Default::default()
                                    })
                                    .collect(),
                            })
                            .collect(),
                        ..Default::default()
                    },
                ),
                RequestBody::Produce(p) => {
                    if p.acks == 0 {
                        continue;
                    }
                    encode_response(
                        corr,
                        v,
                        &ProduceResponse {
                            responses: p
                                .topic_data
                                .into_iter()
                                .map(|t| TopicProduceResponse {
                                    name: t.name,
                                    partition_responses: t
                                        .partition_data
                                        .iter()
                                        .map(|d| {
                                            let r = PartitionProduceResponse {
                                                index: d.index,
                                                base_offset,
                                                log_append_time_ms: -1,
                                                log_start_offset: 0,
                                                ..Default::default()
                                            };
                                            base_offset += 1;
                                            r
                                        })
                                        .collect(),
                                })
                                .collect(),
                            ..Default::default()
                        },
                    )
                }
                other => anyhow::bail!("sink does not serve {:?}", other.api_key()),
            }
            .map_err(|e| anyhow::anyhow!("encode: {e}"))?;
            for c in chunks {
                out.extend_from_slice(&c);
            }
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
        }
    }
}
