//! `sink`: a trivial Kafka endpoint that acknowledges Produce requests at once without
//! storing anything, to measure riffle-loadgen's own ceiling. It answers ApiVersions,
//! Metadata (every topic exists, with `--partitions` partitions led by the sink),
//! CreateTopics, ListOffsets (always 0) and Produce. One thread per connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use anyhow::{Context, Result};
use riffle_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use riffle_protocol::messages::create_topics_request::CreateTopicsRequest;
use riffle_protocol::messages::create_topics_response::{
    CreatableTopicResult, CreateTopicsResponse,
};
use riffle_protocol::messages::list_offsets_request::ListOffsetsRequest;
use riffle_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use riffle_protocol::messages::metadata_request::MetadataRequest;
use riffle_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use riffle_protocol::messages::produce_request::ProduceRequest;
use riffle_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use riffle_protocol::{
    decode_request, encode_response, frame_size, ApiKey, Bytes, BytesMut, Request, RequestBody,
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

/// Initial capacity of a connection's response buffer; it grows as a burst needs.
const OUT_CAPACITY_BYTES: usize = 64 * 1024;

/// One client connection, on its own thread for its lifetime: its socket, the bytes read
/// but not yet framed, and the responses to write after each read.
struct Connection {
    stream: TcpStream,
    /// The sink's own address, which Metadata names as every partition's leader.
    addr: SocketAddr,
    partitions: i32,
    inbuf: BytesMut,
    out: Vec<u8>,
    /// The next base offset a Produce acknowledgement hands out, one per partition batch.
    base_offset: i64,
}

fn connection(stream: TcpStream, addr: SocketAddr, partitions: i32) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut connection = Connection {
        stream,
        addr,
        partitions,
        inbuf: BytesMut::with_capacity(READ_CHUNK_BYTES),
        out: Vec::with_capacity(OUT_CAPACITY_BYTES),
        base_offset: 0,
    };
    connection.answer_until_closed()
}

impl Connection {
    /// Reads until the client closes, answering every complete request in each read with
    /// one write.
    fn answer_until_closed(&mut self) -> Result<()> {
        let mut scratch = vec![0u8; READ_CHUNK_BYTES];
        loop {
            let n = self.stream.read(&mut scratch)?;
            if n == 0 {
                return Ok(());
            }
            self.inbuf.extend_from_slice(&scratch[..n]);
            self.answer_complete_frames()?;
            if !self.out.is_empty() {
                self.stream.write_all(&self.out)?;
                self.out.clear();
            }
        }
    }

    /// Decodes each complete frame in the input buffer and appends its response to `out`.
    fn answer_complete_frames(&mut self) -> Result<()> {
        while let Some(len) = frame_size(&self.inbuf, DEFAULT_MAX_FRAME_BYTES)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
        {
            if self.inbuf.len() < 4 + len {
                break;
            }
            let _ = self.inbuf.split_to(4);
            let frame: Bytes = self.inbuf.split_to(len).freeze();
            let req = decode_request(frame).map_err(|e| anyhow::anyhow!("bad request: {e}"))?;
            let Some(chunks) = self.response(req)? else {
                continue;
            };
            for c in chunks {
                self.out.extend_from_slice(&c);
            }
        }
        Ok(())
    }

    /// The encoded response to `req`; none for a Produce with acks=0, which gets no answer.
    fn response(&mut self, req: Request) -> Result<Option<Vec<Bytes>>> {
        let corr = req.header.correlation_id;
        let v = req.header.request_api_version;
        let encoded = match req.body {
            RequestBody::ApiVersions(_) => encode_response(corr, v, &api_versions()),
            RequestBody::Metadata(m) => {
                encode_response(corr, v, &metadata(m, self.addr, self.partitions))
            }
            RequestBody::CreateTopics(c) => {
                encode_response(corr, v, &create_topics(c, self.partitions))
            }
            RequestBody::ListOffsets(l) => encode_response(corr, v, &list_offsets(l)),
            RequestBody::Produce(p) => {
                if p.acks == 0 {
                    return Ok(None);
                }
                encode_response(corr, v, &produce(p, &mut self.base_offset))
            }
            other => anyhow::bail!("sink does not serve {:?}", other.api_key()),
        };
        encoded
            .map(Some)
            .map_err(|e| anyhow::anyhow!("encode: {e}"))
    }
}

/// The APIs the sink serves, each at every version the codec speaks.
fn api_versions() -> ApiVersionsResponse {
    let keys = [
        ApiKey::Produce,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
        ApiKey::CreateTopics,
        ApiKey::ListOffsets,
    ];
    ApiVersionsResponse {
        api_keys: keys
            .iter()
            .map(|k| ApiVersion {
                api_key: *k as i16,
                min_version: k.versions().0,
                max_version: k.versions().1,
            })
            .collect(),
        ..Default::default()
    }
}

/// Every topic asked for exists, with `partitions` partitions all led by the sink.
fn metadata(m: MetadataRequest, addr: SocketAddr, partitions: i32) -> MetadataResponse {
    MetadataResponse {
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
    }
}

/// Every topic is created, with the sink's partition count whatever was asked.
fn create_topics(c: CreateTopicsRequest, partitions: i32) -> CreateTopicsResponse {
    CreateTopicsResponse {
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
    }
}

/// Every partition's offset is 0: the sink stores nothing.
fn list_offsets(l: ListOffsetsRequest) -> ListOffsetsResponse {
    ListOffsetsResponse {
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
    }
}

/// Acknowledges every partition's batch, each with the next of the connection's offsets.
fn produce(p: ProduceRequest, base_offset: &mut i64) -> ProduceResponse {
    ProduceResponse {
        responses: p
            .topic_data
            .into_iter()
            .map(|t| TopicProduceResponse {
                name: t.name,
                topic_id: t.topic_id,
                partition_responses: t
                    .partition_data
                    .iter()
                    .map(|d| {
                        let r = PartitionProduceResponse {
                            index: d.index,
                            base_offset: *base_offset,
                            log_append_time_ms: -1,
                            log_start_offset: 0,
                            ..Default::default()
                        };
                        *base_offset += 1;
                        r
                    })
                    .collect(),
            })
            .collect(),
        ..Default::default()
    }
}
