//! A minimal blocking Kafka client on `riffle-protocol`, for what third-party clients cannot
//! do: hand-built (and deliberately broken) requests, and quick Metadata/CreateTopics checks.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use riffle_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use riffle_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use riffle_protocol::messages::fetch_response::PartitionData;
use riffle_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use riffle_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse,
};
use riffle_protocol::record_batch::batches;
use riffle_protocol::{
    decode_response, encode_request, error_code, Message, Records, RequestHeader,
};

/// Every read and write on the socket gives up after this long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest response frame this client accepts.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

pub struct Connection {
    stream: TcpStream,
    correlation_id: i32,
}

impl Connection {
    pub fn connect(addr: &str) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            correlation_id: 0,
        })
    }

    /// Connects from a chosen local address (127.0.0.2 and up are loopback too on Linux, so a
    /// test can be several clients), with an optional small receive buffer.
    pub fn connect_from(
        addr: &str,
        local_ip: std::net::IpAddr,
        recv_buffer_bytes: Option<usize>,
    ) -> std::io::Result<Connection> {
        use socket2::{Domain, Socket, Type};
        let remote: std::net::SocketAddr = addr
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
        let socket = Socket::new(Domain::for_address(remote), Type::STREAM, None)?;
        if let Some(bytes) = recv_buffer_bytes {
            socket.set_recv_buffer_size(bytes)?;
        }
        socket.bind(&std::net::SocketAddr::new(local_ip, 0).into())?;
        socket.connect_timeout(&remote.into(), IO_TIMEOUT)?;
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            correlation_id: 0,
        })
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Encodes a request (with its size prefix) without sending it.
    pub fn encode<M: Message>(&mut self, version: i16, body: &M) -> Vec<u8> {
        self.correlation_id += 1;
        let header = RequestHeader {
            request_api_key: M::API_KEY as i16,
            request_api_version: version,
            correlation_id: self.correlation_id,
            client_id: Some("riffle-tests".to_string()),
        };
        let chunks = encode_request(&header, body).expect("encode the request");
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    /// Sends raw bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response frame (without its size prefix).
    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("response frame size {size}"),
                )
            })?;
        let mut frame = BytesMut::zeroed(size);
        self.stream.read_exact(&mut frame)?;
        Ok(frame.freeze())
    }

    /// Sends an already encoded request and decodes its response.
    pub fn round_trip_raw<R: Message>(
        &mut self,
        request: &[u8],
        version: i16,
    ) -> std::io::Result<R> {
        self.send_raw(request)?;
        let frame = self.read_frame()?;
        let (correlation_id, body) = decode_response::<R>(frame, version)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{e}")))?;
        assert_eq!(
            correlation_id, self.correlation_id,
            "the response answers another request"
        );
        Ok(body)
    }

    pub fn request<M: Message, R: Message>(
        &mut self,
        version: i16,
        body: &M,
    ) -> std::io::Result<R> {
        let request = self.encode(version, body);
        self.round_trip_raw(&request, version)
    }
}

pub const METADATA_VERSION: i16 = 8;

/// Metadata for all topics on a new connection.
pub fn metadata(addr: &str) -> std::io::Result<MetadataResponse> {
    let mut conn = Connection::connect(addr)?;
    conn.request(
        METADATA_VERSION,
        &MetadataRequest {
            topics: None,
            allow_auto_topic_creation: false,
            ..Default::default()
        },
    )
}

/// Creates a topic with `partitions` partitions (replication factor 1) and waits until
/// Metadata shows every partition with a leader.
pub fn create_topic(addr: &str, name: &str, partitions: i32) {
    create_topic_with_configs(addr, name, partitions, &[]);
}

/// Sends one CreateTopics and returns the topic's result (error code and message), without
/// waiting for the topic to appear.
pub fn try_create_topic(
    addr: &str,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(&str, &str)],
) -> (i16, Option<String>) {
    let mut conn = Connection::connect(addr).expect("connect to the broker");
    let response: CreateTopicsResponse = conn
        .request(
            4,
            &CreateTopicsRequest {
                topics: vec![CreatableTopic {
                    name: name.to_string(),
                    num_partitions: partitions,
                    replication_factor,
                    configs: configs
                        .iter()
                        .map(|(k, v)| CreatableTopicConfig {
                            name: k.to_string(),
                            value: Some(v.to_string()),
                        })
                        .collect(),
                    ..Default::default()
                }],
                timeout_ms: 10_000,
                validate_only: false,
            },
        )
        .expect("CreateTopics round trip");
    let result = &response.topics[0];
    (result.error_code, result.error_message.clone())
}

/// Sends one DeleteTopics for `name` and returns its error code.
pub fn delete_topic(addr: &str, name: &str) -> i16 {
    let mut conn = Connection::connect(addr).expect("connect to the broker");
    let response: DeleteTopicsResponse = conn
        .request(
            4,
            &DeleteTopicsRequest {
                topic_names: vec![name.to_string()],
                timeout_ms: 10_000,
                ..Default::default()
            },
        )
        .expect("DeleteTopics round trip");
    response.responses[0].error_code
}

/// Like `create_topic`, with topic configs (Kafka names, e.g. `max.message.bytes`).
pub fn create_topic_with_configs(
    addr: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let (code, message) = try_create_topic(addr, name, partitions, 1, configs);
    assert_eq!(
        code,
        error_code::NONE,
        "CreateTopics {name}: error {code} {message:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let md = metadata(addr).expect("Metadata round trip");
        let ready = md.topics.iter().any(|t| {
            t.name.as_deref() == Some(name)
                && t.error_code == error_code::NONE
                && t.partitions.len() == partitions as usize
                && t.partitions.iter().all(|p| p.leader_id >= 0)
        });
        if ready {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "topic {name} not in Metadata with {partitions} led partitions after 10 s: {md:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub const FETCH_VERSION: i16 = 11;

/// One Fetch of one partition at `fetch_offset` (Fetch v11, topic by name).
pub fn fetch(
    conn: &mut Connection,
    topic: &str,
    partition: i32,
    fetch_offset: i64,
    max_wait_ms: i32,
) -> PartitionData {
    fetch_with_limits(
        conn,
        topic,
        partition,
        fetch_offset,
        max_wait_ms,
        8 << 20,
        1 << 20,
    )
}

/// The high watermark of each of `partitions` partitions of `topic`, as a consumer's Fetch sees it.
pub fn high_watermarks(addr: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let mut conn = Connection::connect(addr).expect("connect");
    (0..partitions)
        .map(|p| fetch_with_limits(&mut conn, topic, p, 0, 0, 1, 1).high_watermark)
        .collect()
}

/// Asserts that no partition's high watermark is below the one a client saw before the broker
/// was interrupted: what was visible as committed was durable.
pub fn assert_high_watermarks_kept(seen: &[i64], after: &[i64]) {
    for (p, (seen, after)) in seen.iter().zip(after).enumerate() {
        assert!(
            after >= seen,
            "partition {p}: high watermark {after} after the restart, {seen} seen before"
        );
    }
}

/// Like `fetch`, with the response's `max_bytes` and the partition's `partition_max_bytes`.
pub fn fetch_with_limits(
    conn: &mut Connection,
    topic: &str,
    partition: i32,
    fetch_offset: i64,
    max_wait_ms: i32,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> PartitionData {
    let response: FetchResponse = conn
        .request(
            FETCH_VERSION,
            &FetchRequest {
                replica_id: -1,
                max_wait_ms,
                min_bytes: 1,
                max_bytes,
                isolation_level: 0,
                session_id: 0,
                session_epoch: -1,
                topics: vec![FetchTopic {
                    topic: topic.to_string(),
                    partitions: vec![FetchPartition {
                        partition,
                        fetch_offset,
                        partition_max_bytes,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .expect("Fetch round trip");
    response
        .responses
        .into_iter()
        .next()
        .and_then(|t| t.partitions.into_iter().next())
        .expect("the Fetch response names the partition")
}

pub const PRODUCE_VERSION: i16 = 7;

/// Produces one batch to one partition; returns (error code, base offset).
pub fn produce(
    conn: &mut Connection,
    topic: &str,
    partition: i32,
    batch: Bytes,
    acks: i16,
) -> (i16, i64) {
    let response: ProduceResponse = conn
        .request(
            PRODUCE_VERSION,
            &ProduceRequest {
                transactional_id: None,
                acks,
                timeout_ms: 10_000,
                topic_data: vec![TopicProduceData {
                    topic_id: Default::default(),
                    name: topic.to_string(),
                    partition_data: vec![PartitionProduceData {
                        index: partition,
                        records: Some(Records::from_bytes(batch)),
                    }],
                }],
            },
        )
        .expect("Produce round trip");
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Every stored batch of one partition, as the broker sends them, from offset 0 to the high
/// watermark (raw RecordBatch v2 bytes, to inspect attributes such as the compression codec).
pub fn fetch_all_batches(addr: &str, topic: &str, partition: i32) -> Vec<Bytes> {
    let mut conn = Connection::connect(addr).expect("connect to the broker");
    let mut out = Vec::new();
    let mut fetch_offset = 0i64;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "fetching {topic}-{partition} took more than 30 s (at offset {fetch_offset})"
        );
        let data = fetch(&mut conn, topic, partition, fetch_offset, 100);
        assert_eq!(
            data.error_code,
            error_code::NONE,
            "Fetch {topic}-{partition} at {fetch_offset}: error {}",
            data.error_code
        );
        if fetch_offset >= data.high_watermark {
            return out;
        }
        let records = data
            .records
            .as_ref()
            .map(|r| r.to_bytes())
            .unwrap_or_default();
        let before = fetch_offset;
        for batch in batches(&records) {
            // A partial batch at the end of a Fetch response is normal: fetch it again next time.
            let Ok(batch) = batch else { break };
            if batch.last_offset() < fetch_offset {
                continue;
            }
            fetch_offset = batch.last_offset() + 1;
            out.push(Bytes::copy_from_slice(batch.bytes()));
        }
        assert!(
            fetch_offset > before,
            "Fetch {topic}-{partition} at {fetch_offset} made no progress (high watermark {})",
            data.high_watermark
        );
    }
}
