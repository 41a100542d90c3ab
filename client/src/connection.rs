//! One blocking connection to one broker (std `TcpStream` with timeouts): the ApiVersions
//! negotiation when it opens, then one request at a time, each answered before the next.
//! Everything in this crate speaks to brokers through it.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use riffle_protocol::messages::api_versions_request::ApiVersionsRequest;
use riffle_protocol::messages::api_versions_response::ApiVersionsResponse;
use riffle_protocol::{
    decode_response, encode_request, frame_size, ApiKey, Bytes, Message, RequestHeader,
    DEFAULT_MAX_FRAME_BYTES,
};

use crate::error::ClientError;
use crate::group::{GroupRequest, GroupResponse};

/// The newest version of each API this client speaks. Newer Fetch and Metadata-keyed
/// versions switch to topic ids, OffsetFetch v8+ batches groups in another shape.
const PREFERRED: &[(ApiKey, i16)] = &[
    (ApiKey::Produce, 11),
    (ApiKey::Fetch, 12),
    (ApiKey::ListOffsets, 8),
    (ApiKey::Metadata, 12),
    (ApiKey::CreateTopics, 7),
    (ApiKey::DeleteTopics, 6),
    (ApiKey::CreatePartitions, 3),
    (ApiKey::DescribeConfigs, 4),
    (ApiKey::IncrementalAlterConfigs, 1),
    (ApiKey::FindCoordinator, 4),
    (ApiKey::JoinGroup, 9),
    (ApiKey::SyncGroup, 5),
    (ApiKey::Heartbeat, 4),
    (ApiKey::LeaveGroup, 5),
    (ApiKey::OffsetCommit, 8),
    (ApiKey::OffsetFetch, 7),
    (ApiKey::ListGroups, 4),
    (ApiKey::DescribeGroups, 5),
    (ApiKey::DeleteGroups, 2),
    (ApiKey::DescribeCluster, 1),
];
/// The ApiVersions version every broker since Kafka 2.4 answers (older ones answer v0 and
/// say so with UNSUPPORTED_VERSION, which a v0 retry would handle; Kafka 2.4 is old enough).
const API_VERSIONS_VERSION: i16 = 3;

/// How connections identify themselves and how long they wait.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub client_id: String,
    pub connect_timeout: Duration,
    /// How long one request may wait for its response.
    pub request_timeout: Duration,
}

/// API versions agreed with one broker.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    agreed: HashMap<ApiKey, i16>,
    /// Every API the broker advertises, spoken by us or not.
    offered: Vec<i16>,
}

/// API versions of the classic consumer group protocol agreed with the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupVersions {
    pub find_coordinator: i16,
    pub join_group: i16,
    pub sync_group: i16,
    pub heartbeat: i16,
    pub leave_group: i16,
    pub offset_commit: i16,
    pub offset_fetch: i16,
}

impl Versions {
    fn negotiate(resp: &ApiVersionsResponse) -> Versions {
        let mut agreed = HashMap::new();
        for &(key, preferred) in PREFERRED {
            let ours = key.versions();
            let Some(theirs) = resp.api_keys.iter().find(|k| k.api_key == key as i16) else {
                continue;
            };
            let v = preferred.min(theirs.max_version).min(ours.1);
            if v >= theirs.min_version.max(ours.0) {
                agreed.insert(key, v);
            }
        }
        Versions {
            agreed,
            offered: resp.api_keys.iter().map(|k| k.api_key).collect(),
        }
    }

    /// The version agreed for `key`, if the broker offers one we speak.
    pub fn get(&self, key: ApiKey) -> Option<i16> {
        self.agreed.get(&key).copied()
    }

    /// Whether the broker advertises `key` at all.
    pub fn offers(&self, key: ApiKey) -> bool {
        self.offered.contains(&(key as i16))
    }

    /// The classic group APIs, when the broker offers a version of each that we speak.
    pub fn group_apis(&self) -> Option<GroupVersions> {
        Some(GroupVersions {
            find_coordinator: self.get(ApiKey::FindCoordinator)?,
            join_group: self.get(ApiKey::JoinGroup)?,
            sync_group: self.get(ApiKey::SyncGroup)?,
            heartbeat: self.get(ApiKey::Heartbeat)?,
            leave_group: self.get(ApiKey::LeaveGroup)?,
            offset_commit: self.get(ApiKey::OffsetCommit)?,
            offset_fetch: self.get(ApiKey::OffsetFetch)?,
        })
    }
}

/// The first address `host_port` resolves to.
pub fn resolve(host_port: &str) -> Result<SocketAddr, ClientError> {
    let resolve_error = |reason: String| ClientError::Resolve {
        broker: host_port.to_string(),
        reason,
    };
    host_port
        .to_socket_addrs()
        .map_err(|e| resolve_error(e.to_string()))?
        .next()
        .ok_or_else(|| resolve_error("it resolves to no address".into()))
}

/// A connection to one broker, used by one thread.
pub struct Connection {
    stream: TcpStream,
    addr: SocketAddr,
    /// The address as the user or the metadata named it, for messages.
    broker: String,
    client_id: String,
    request_timeout: Duration,
    correlation_id: i32,
    versions: Versions,
}

impl Connection {
    /// Connects to `broker` (HOST:PORT) and negotiates API versions.
    pub fn connect(broker: &str, options: &ConnectOptions) -> Result<Connection, ClientError> {
        let addr = resolve(broker)?;
        let stream = TcpStream::connect_timeout(&addr, options.connect_timeout).map_err(|e| {
            let reason = match e.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
                    "no answer within {} ms",
                    options.connect_timeout.as_millis()
                ),
                _ => e.to_string(),
            };
            ClientError::Connect {
                broker: broker.to_string(),
                reason,
            }
        })?;
        let io_error = |source| ClientError::Io {
            broker: broker.to_string(),
            api: "connect",
            source,
        };
        stream
            .set_read_timeout(Some(options.request_timeout))
            .map_err(io_error)?;
        stream
            .set_write_timeout(Some(options.request_timeout))
            .map_err(io_error)?;
        stream.set_nodelay(true).map_err(io_error)?;
        let mut c = Connection {
            stream,
            addr,
            broker: broker.to_string(),
            client_id: options.client_id.clone(),
            request_timeout: options.request_timeout,
            correlation_id: 0,
            versions: Versions::default(),
        };
        let resp: ApiVersionsResponse = c.call_version(
            API_VERSIONS_VERSION,
            &ApiVersionsRequest {
                client_software_name: options.client_id.clone(),
                client_software_version: env!("CARGO_PKG_VERSION").into(),
            },
        )?;
        ClientError::check(
            resp.error_code,
            || format!("ApiVersions to broker {broker}"),
            None,
        )?;
        c.versions = Versions::negotiate(&resp);
        Ok(c)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The broker's address as it was given (for messages).
    pub fn broker(&self) -> &str {
        &self.broker
    }

    pub fn versions(&self) -> &Versions {
        &self.versions
    }

    /// The agreed version of `key`, or an error naming the API the broker lacks.
    pub fn version(&self, key: ApiKey) -> Result<i16, ClientError> {
        self.versions
            .get(key)
            .ok_or_else(|| ClientError::Unsupported {
                broker: self.broker.clone(),
                api: key.name(),
            })
    }

    /// Sends `body` at the agreed version and waits for its response.
    pub fn call<M: Message, R: Message>(&mut self, body: &M) -> Result<R, ClientError> {
        let version = self.version(M::API_KEY)?;
        self.call_version(version, body)
    }

    /// Sends `body` at `version` and waits for its response.
    pub fn call_version<M: Message, R: Message>(
        &mut self,
        version: i16,
        body: &M,
    ) -> Result<R, ClientError> {
        self.send(version, body)?;
        let frame = self.read_frame(M::API_KEY)?;
        let (corr, resp) = decode_response::<R>(frame, version)
            .map_err(|e| self.protocol_error(M::API_KEY, e.to_string()))?;
        self.check_correlation(M::API_KEY, corr)?;
        Ok(resp)
    }

    /// Sends `body` at the agreed version without waiting: for a Produce with acks=0, to
    /// which Kafka sends no response.
    pub fn send_only<M: Message>(&mut self, body: &M) -> Result<(), ClientError> {
        let version = self.version(M::API_KEY)?;
        self.send(version, body)
    }

    /// Sends a group member's request and waits for its response, which may take as long as
    /// `wait` (a JoinGroup waits for the whole group to join).
    pub fn call_group(
        &mut self,
        request: &GroupRequest,
        versions: &GroupVersions,
        wait: Duration,
    ) -> Result<GroupResponse, ClientError> {
        let api = request.api_key();
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let chunks = request
            .encode(versions, self.correlation_id, &self.client_id)
            .map_err(|e| self.protocol_error(api, format!("cannot encode: {e}")))?;
        self.write_chunks(api, &chunks)?;
        self.set_read_timeout(api, wait.max(self.request_timeout))?;
        let frame = self.read_frame(api);
        self.set_read_timeout(api, self.request_timeout)?;
        let (corr, resp) = GroupResponse::decode(request.api(), frame?, versions)
            .map_err(|reason| self.protocol_error(api, reason))?;
        self.check_correlation(api, corr)?;
        Ok(resp)
    }

    fn send<M: Message>(&mut self, version: i16, body: &M) -> Result<(), ClientError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader {
            request_api_key: M::API_KEY as i16,
            request_api_version: version,
            correlation_id: self.correlation_id,
            client_id: Some(self.client_id.clone()),
        };
        let chunks = encode_request(&header, body)
            .map_err(|e| self.protocol_error(M::API_KEY, format!("cannot encode: {e}")))?;
        self.write_chunks(M::API_KEY, &chunks)
    }

    fn write_chunks(&mut self, api: ApiKey, chunks: &[Bytes]) -> Result<(), ClientError> {
        for c in chunks {
            self.stream
                .write_all(c)
                .map_err(|e| self.io_error(api, e))?;
        }
        Ok(())
    }

    fn read_frame(&mut self, api: ApiKey) -> Result<Bytes, ClientError> {
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(|e| self.io_error(api, e))?;
        let len = frame_size(&size, DEFAULT_MAX_FRAME_BYTES)
            .map_err(|e| self.protocol_error(api, format!("{e:?}")))?
            .ok_or_else(|| self.protocol_error(api, "short size prefix".into()))?;
        let mut frame = vec![0u8; len];
        self.stream
            .read_exact(&mut frame)
            .map_err(|e| self.io_error(api, e))?;
        Ok(Bytes::from(frame))
    }

    fn set_read_timeout(&mut self, api: ApiKey, timeout: Duration) -> Result<(), ClientError> {
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| self.io_error(api, e))
    }

    fn check_correlation(&self, api: ApiKey, corr: i32) -> Result<(), ClientError> {
        if corr == self.correlation_id {
            return Ok(());
        }
        Err(self.protocol_error(
            api,
            format!("correlation id {corr}, expected {}", self.correlation_id),
        ))
    }

    fn io_error(&self, api: ApiKey, source: io::Error) -> ClientError {
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
                broker: self.broker.clone(),
                api: api.name(),
                timeout_ms: self.request_timeout.as_millis(),
            },
            io::ErrorKind::UnexpectedEof => ClientError::Io {
                broker: self.broker.clone(),
                api: api.name(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the broker closed the connection",
                ),
            },
            _ => ClientError::Io {
                broker: self.broker.clone(),
                api: api.name(),
                source,
            },
        }
    }

    fn protocol_error(&self, api: ApiKey, reason: String) -> ClientError {
        ClientError::Protocol {
            broker: self.broker.clone(),
            api: api.name(),
            reason,
        }
    }
}
