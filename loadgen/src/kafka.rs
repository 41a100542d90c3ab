//! The setup side of the Kafka protocol, blocking with timeouts: bootstrap, ApiVersions
//! negotiation, Metadata, CreateTopics, ListOffsets and FindCoordinator. The data path (produce, fetch) lives
//! in `conn.rs`; both encode through `riffle-protocol`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use riffle_protocol::messages::api_versions_request::ApiVersionsRequest;
use riffle_protocol::messages::api_versions_response::ApiVersionsResponse;
use riffle_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use riffle_protocol::messages::create_topics_response::CreateTopicsResponse;
use riffle_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use riffle_protocol::messages::find_coordinator_response::FindCoordinatorResponse;
use riffle_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use riffle_protocol::messages::list_offsets_response::ListOffsetsResponse;
use riffle_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use riffle_protocol::messages::metadata_response::MetadataResponse;
use riffle_protocol::{
    decode_response, encode_request, error_code, frame_size, ApiKey, Bytes, Message, RequestHeader,
    DEFAULT_MAX_FRAME_BYTES,
};

pub(crate) const CLIENT_ID: &str = "riffle-loadgen";
/// How long setup waits to connect to a broker.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long setup waits for one response.
const SETUP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The newest version of each API this tool speaks (newer ones switch to topic ids).
const PREFERRED: &[(ApiKey, i16)] = &[
    (ApiKey::Produce, 11),
    (ApiKey::Fetch, 12),
    (ApiKey::ListOffsets, 8),
    (ApiKey::Metadata, 12),
    (ApiKey::CreateTopics, 7),
    (ApiKey::FindCoordinator, 4),
    (ApiKey::JoinGroup, 9),
    (ApiKey::SyncGroup, 5),
    (ApiKey::Heartbeat, 4),
    (ApiKey::LeaveGroup, 5),
    (ApiKey::OffsetCommit, 8),
    // v8+ batch several groups in another shape.
    (ApiKey::OffsetFetch, 7),
];
/// How long setup waits for a group coordinator to become available.
const FIND_COORDINATOR_TIMEOUT: Duration = Duration::from_secs(10);

/// API versions agreed with the broker.
#[derive(Debug, Clone)]
pub(crate) struct Versions {
    pub produce: i16,
    /// -1: the broker offers no Fetch version we speak (consuming is impossible).
    pub fetch: i16,
    /// -1: none we speak.
    pub list_offsets: i16,
    pub metadata: i16,
    pub create_topics: i16,
    /// Whether the broker advertises JoinGroup (a group coordinator).
    pub groups: bool,
    /// The classic group APIs, when the broker offers a version of each that we speak.
    pub group_apis: Option<GroupVersions>,
}

/// API versions of the classic consumer group protocol agreed with the broker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupVersions {
    pub find_coordinator: i16,
    pub join_group: i16,
    pub sync_group: i16,
    pub heartbeat: i16,
    pub leave_group: i16,
    pub offset_commit: i16,
    pub offset_fetch: i16,
}

/// A partition's leader address.
#[derive(Debug, Clone)]
pub(crate) struct PartitionInfo {
    pub partition: i32,
    pub leader: SocketAddr,
}

pub(crate) fn resolve(host_port: &str) -> Result<SocketAddr> {
    host_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host_port}"))?
        .next()
        .ok_or_else(|| anyhow!("{host_port} resolves to no address"))
}

/// A blocking connection used before and after a run.
pub(crate) struct SetupClient {
    stream: TcpStream,
    addr: SocketAddr,
    correlation_id: i32,
    pub versions: Versions,
}

impl SetupClient {
    pub(crate) fn connect(bootstrap: &str) -> Result<SetupClient> {
        let addr = resolve(bootstrap)?;
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .with_context(|| format!("cannot connect to broker {bootstrap} ({addr})"))?;
        stream.set_read_timeout(Some(SETUP_REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(SETUP_REQUEST_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut c = SetupClient {
            stream,
            addr,
            correlation_id: 0,
            versions: Versions {
                produce: 3,
                fetch: 4,
                list_offsets: 1,
                metadata: 1,
                create_topics: 2,
                groups: false,
                group_apis: None,
            },
        };
        let resp: ApiVersionsResponse = c
            .call(
                3,
                &ApiVersionsRequest {
                    client_software_name: CLIENT_ID.into(),
                    client_software_version: env!("CARGO_PKG_VERSION").into(),
                },
            )
            .with_context(|| format!("ApiVersions to {bootstrap} failed"))?;
        if resp.error_code != error_code::NONE {
            bail!(
                "broker {bootstrap} answered ApiVersions with error {}",
                resp.error_code
            );
        }
        let pick = |key: ApiKey| -> Option<i16> {
            let preferred = PREFERRED.iter().find(|p| p.0 == key).map(|p| p.1)?;
            let ours = key.versions();
            let theirs = resp.api_keys.iter().find(|k| k.api_key == key as i16)?;
            let v = preferred.min(theirs.max_version).min(ours.1);
            (v >= theirs.min_version.max(ours.0)).then_some(v)
        };
        let need = |key: ApiKey| {
            pick(key)
                .ok_or_else(|| anyhow!("broker {bootstrap} supports no usable {key:?} version"))
        };
        c.versions = Versions {
            produce: need(ApiKey::Produce)?,
            fetch: pick(ApiKey::Fetch).unwrap_or(-1),
            list_offsets: pick(ApiKey::ListOffsets).unwrap_or(-1),
            metadata: need(ApiKey::Metadata)?,
            create_topics: pick(ApiKey::CreateTopics).unwrap_or(-1),
            groups: resp
                .api_keys
                .iter()
                .any(|k| k.api_key == ApiKey::JoinGroup as i16),
            group_apis: (|| {
                Some(GroupVersions {
                    find_coordinator: pick(ApiKey::FindCoordinator)?,
                    join_group: pick(ApiKey::JoinGroup)?,
                    sync_group: pick(ApiKey::SyncGroup)?,
                    heartbeat: pick(ApiKey::Heartbeat)?,
                    leave_group: pick(ApiKey::LeaveGroup)?,
                    offset_commit: pick(ApiKey::OffsetCommit)?,
                    offset_fetch: pick(ApiKey::OffsetFetch)?,
                })
            })(),
        };
        Ok(c)
    }

    fn call<M: Message, R: Message>(&mut self, version: i16, body: &M) -> Result<R> {
        self.correlation_id += 1;
        let header = RequestHeader {
            request_api_key: M::API_KEY as i16,
            request_api_version: version,
            correlation_id: self.correlation_id,
            client_id: Some(CLIENT_ID.into()),
        };
        let chunks = encode_request(&header, body).map_err(|e| anyhow!("encode: {e}"))?;
        for c in &chunks {
            self.stream.write_all(c)?;
        }
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .with_context(|| format!("no {:?} response from {}", M::API_KEY, self.addr))?;
        let len = frame_size(&size, DEFAULT_MAX_FRAME_BYTES)
            .map_err(|e| anyhow!("bad frame: {e:?}"))?
            .expect("4 bytes present");
        let mut frame = vec![0u8; len];
        self.stream.read_exact(&mut frame)?;
        let (corr, resp) = decode_response::<R>(Bytes::from(frame), version)
            .map_err(|e| anyhow!("cannot decode {:?} response: {e}", M::API_KEY))?;
        if corr != self.correlation_id {
            bail!("correlation id {corr}, expected {}", self.correlation_id);
        }
        Ok(resp)
    }

    /// The topic's partitions and leaders; with `create_partitions`, creates the topic first
    /// (an existing topic is fine). Waits up to 10 s for leaders.
    pub(crate) fn topic(
        &mut self,
        topic: &str,
        create_partitions: Option<i32>,
    ) -> Result<Vec<PartitionInfo>> {
        if let Some(n) = create_partitions {
            if self.versions.create_topics < 0 {
                bail!("broker does not support CreateTopics; create topic {topic} beforehand");
            }
            let resp: CreateTopicsResponse = self.call(
                self.versions.create_topics,
                &CreateTopicsRequest {
                    topics: vec![CreatableTopic {
                        name: topic.into(),
                        num_partitions: n,
                        replication_factor: -1,
                        ..Default::default()
                    }],
                    timeout_ms: 10_000,
                    validate_only: false,
                },
            )?;
            for t in &resp.topics {
                if t.error_code != error_code::NONE
                    && t.error_code != error_code::TOPIC_ALREADY_EXISTS
                {
                    bail!(
                        "creating topic {topic}: error {} {:?}",
                        t.error_code,
                        t.error_message
                    );
                }
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let resp: MetadataResponse = self.call(
                self.versions.metadata,
                &MetadataRequest {
                    topics: Some(vec![MetadataRequestTopic {
                        name: Some(topic.into()),
                        ..Default::default()
                    }]),
                    allow_auto_topic_creation: true,
                    ..Default::default()
                },
            )?;
            let t = resp
                .topics
                .iter()
                .find(|t| t.name.as_deref() == Some(topic))
                .ok_or_else(|| anyhow!("metadata has no topic {topic}"))?;
            let ready = t.error_code == error_code::NONE
                && !t.partitions.is_empty()
                && t.partitions.iter().all(|p| p.leader_id >= 0);
            if ready {
                let mut out = Vec::new();
                for p in &t.partitions {
                    let b = resp
                        .brokers
                        .iter()
                        .find(|b| b.node_id == p.leader_id)
                        .ok_or_else(|| {
                            anyhow!(
                                "leader {} of {topic}-{} not in metadata",
                                p.leader_id,
                                p.partition_index
                            )
                        })?;
                    let leader = resolve(&format!("{}:{}", b.host, b.port)).unwrap_or(self.addr);
                    out.push(PartitionInfo {
                        partition: p.partition_index,
                        leader,
                    });
                }
                out.sort_by_key(|p| p.partition);
                return Ok(out);
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "topic {topic} not ready: error {} ({} partitions)",
                    t.error_code,
                    t.partitions.len()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Offsets of the given partitions at `timestamp` (-1 latest, -2 earliest).
    pub(crate) fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<Vec<(i32, i64)>> {
        let resp: ListOffsetsResponse = self.call(
            self.versions.list_offsets,
            &ListOffsetsRequest {
                replica_id: -1,
                isolation_level: 0,
                topics: vec![ListOffsetsTopic {
                    name: topic.into(),
                    partitions: partitions
                        .iter()
                        .map(|&p| ListOffsetsPartition {
                            partition_index: p,
                            timestamp,
                            ..Default::default()
                        })
                        .collect(),
                }],
                timeout_ms: 10_000,
            },
        )?;
        let mut out = Vec::new();
        for t in &resp.topics {
            for p in &t.partitions {
                if p.error_code != error_code::NONE {
                    bail!(
                        "ListOffsets {topic}-{}: error {}",
                        p.partition_index,
                        p.error_code
                    );
                }
                out.push((p.partition_index, p.offset));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The address of `group`'s coordinator (FindCoordinator, key type 0). Waits up to 10 s
    /// while the coordinator is not available yet (Kafka creates its offsets topic on demand).
    pub(crate) fn find_coordinator(&mut self, group: &str) -> Result<SocketAddr> {
        let version = self
            .versions
            .group_apis
            .as_ref()
            .ok_or_else(|| anyhow!("broker offers no usable group API versions"))?
            .find_coordinator;
        let deadline = std::time::Instant::now() + FIND_COORDINATOR_TIMEOUT;
        loop {
            // v0–3 ask for one key, v4+ for a list (a version has only one of the two).
            let request = if version >= 4 {
                FindCoordinatorRequest {
                    key_type: 0,
                    coordinator_keys: vec![group.into()],
                    ..Default::default()
                }
            } else {
                FindCoordinatorRequest {
                    key: group.into(),
                    key_type: 0,
                    ..Default::default()
                }
            };
            let resp: FindCoordinatorResponse = self.call(version, &request)?;
            let (code, host, port) = match resp.coordinators.first() {
                Some(c) if version >= 4 => (c.error_code, c.host.clone(), c.port),
                _ => (resp.error_code, resp.host, resp.port),
            };
            match code {
                error_code::NONE => {
                    return Ok(resolve(&format!("{host}:{port}")).unwrap_or(self.addr))
                }
                error_code::COORDINATOR_NOT_AVAILABLE
                | error_code::COORDINATOR_LOAD_IN_PROGRESS
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(200));
                }
                code => bail!("FindCoordinator for group {group}: error {code}"),
            }
        }
    }
}
