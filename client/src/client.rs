//! A client of a whole cluster: bootstraps from a list of brokers, keeps one connection per
//! broker it has talked to, and finds partition leaders and group coordinators through
//! Metadata and FindCoordinator.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use riffle_protocol::error_code;
use riffle_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use riffle_protocol::messages::find_coordinator_response::FindCoordinatorResponse;
use riffle_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use riffle_protocol::messages::metadata_response::{MetadataResponse, MetadataResponseTopic};
use riffle_protocol::ApiKey;

use crate::connection::{resolve, ConnectOptions, Connection};
use crate::error::ClientError;

/// Pause between two looks at a topic or coordinator that is not ready yet.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// How long a caller waits for new partitions' leaders or a group coordinator to appear
/// (Kafka creates its offsets topic on demand).
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A partition's leader address.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: SocketAddr,
}

/// Connections to a cluster; one thread uses it.
pub struct Client {
    options: ConnectOptions,
    bootstrap: SocketAddr,
    connections: HashMap<SocketAddr, Connection>,
}

impl Client {
    /// Connects to the first of `brokers` (comma-separated HOST:PORT) that answers.
    pub fn connect(brokers: &str, options: ConnectOptions) -> Result<Client, ClientError> {
        let mut last_error = ClientError::Other("no broker address given".into());
        for broker in brokers.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            match Connection::connect(broker, &options) {
                Ok(c) => {
                    let bootstrap = c.addr();
                    return Ok(Client {
                        options,
                        bootstrap,
                        connections: HashMap::from([(bootstrap, c)]),
                    });
                }
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// The connection to the broker that answered first.
    pub fn bootstrap(&mut self) -> &mut Connection {
        self.connections
            .get_mut(&self.bootstrap)
            .expect("the bootstrap connection is never removed")
    }

    /// The connection to the broker at `addr`, opened on first use.
    pub fn broker(&mut self, addr: SocketAddr) -> Result<&mut Connection, ClientError> {
        if !self.connections.contains_key(&addr) {
            let c = Connection::connect(&addr.to_string(), &self.options)?;
            self.connections.insert(addr, c);
        }
        Ok(self.connections.get_mut(&addr).expect("inserted above"))
    }

    /// Metadata of `topics` (None: every topic), asked of the bootstrap broker.
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> Result<MetadataResponse, ClientError> {
        self.metadata_request(topics, false)
    }

    fn metadata_request(
        &mut self,
        topics: Option<&[&str]>,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResponse, ClientError> {
        let request = MetadataRequest {
            topics: topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic {
                        name: Some(t.to_string()),
                        ..Default::default()
                    })
                    .collect()
            }),
            allow_auto_topic_creation,
            ..Default::default()
        };
        self.bootstrap().call(&request)
    }

    /// The address of broker `node_id` in `metadata` (the bootstrap's when it is not listed).
    pub fn broker_addr(&self, metadata: &MetadataResponse, node_id: i32) -> SocketAddr {
        metadata
            .brokers
            .iter()
            .find(|b| b.node_id == node_id)
            .and_then(|b| resolve(&format!("{}:{}", b.host, b.port)).ok())
            .unwrap_or(self.bootstrap)
    }

    /// `topic`'s partitions and leaders, waiting up to `wait` for every partition to have
    /// a leader. An unknown topic is an UNKNOWN_TOPIC_OR_PARTITION error, unless
    /// `auto_create` lets a broker that creates topics on first use create it.
    pub fn partition_leaders(
        &mut self,
        topic: &str,
        wait: Duration,
        auto_create: bool,
    ) -> Result<Vec<PartitionInfo>, ClientError> {
        let deadline = Instant::now() + wait;
        loop {
            let metadata = self.metadata_request(Some(&[topic]), auto_create)?;
            let t = find_topic(&metadata, topic)?;
            let ready = t.error_code == error_code::NONE
                && !t.partitions.is_empty()
                && t.partitions.iter().all(|p| p.leader_id >= 0);
            if ready {
                let mut out: Vec<PartitionInfo> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionInfo {
                        partition: p.partition_index,
                        leader: self.broker_addr(&metadata, p.leader_id),
                    })
                    .collect();
                out.sort_by_key(|p| p.partition);
                return Ok(out);
            }
            let retriable = match t.error_code {
                error_code::NONE | error_code::LEADER_NOT_AVAILABLE => true,
                error_code::UNKNOWN_TOPIC_OR_PARTITION => auto_create,
                _ => false,
            };
            if !retriable || Instant::now() > deadline {
                ClientError::check(t.error_code, || format!("topic '{topic}'"), None)?;
                return Err(ClientError::Other(format!(
                    "topic '{topic}' has no leader for some of its {} partitions after {} ms",
                    t.partitions.len(),
                    wait.as_millis()
                )));
            }
            std::thread::sleep(RETRY_BACKOFF);
        }
    }

    /// The address of `group`'s coordinator (FindCoordinator, key type 0). Waits up to
    /// `READY_TIMEOUT` while the coordinator is not available yet.
    pub fn find_coordinator(&mut self, group: &str) -> Result<SocketAddr, ClientError> {
        let bootstrap = self.bootstrap;
        let conn = self.bootstrap();
        let version = conn.version(ApiKey::FindCoordinator)?;
        let deadline = Instant::now() + READY_TIMEOUT;
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
            let resp: FindCoordinatorResponse = conn.call_version(version, &request)?;
            let (code, message, host, port) = match resp.coordinators.first() {
                Some(c) if version >= 4 => (
                    c.error_code,
                    c.error_message.clone(),
                    c.host.clone(),
                    c.port,
                ),
                _ => (resp.error_code, resp.error_message, resp.host, resp.port),
            };
            match code {
                error_code::NONE => {
                    return Ok(resolve(&format!("{host}:{port}")).unwrap_or(bootstrap))
                }
                error_code::COORDINATOR_NOT_AVAILABLE
                | error_code::COORDINATOR_LOAD_IN_PROGRESS
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(RETRY_BACKOFF);
                }
                code => {
                    ClientError::check(code, || format!("group '{group}'"), message.as_deref())?;
                }
            }
        }
    }

    /// The connection to `group`'s coordinator.
    pub fn coordinator(&mut self, group: &str) -> Result<&mut Connection, ClientError> {
        let addr = self.find_coordinator(group)?;
        self.broker(addr)
    }
}

/// `topic` in a Metadata response; a topic the broker left out is unknown.
pub fn find_topic<'m>(
    metadata: &'m MetadataResponse,
    topic: &str,
) -> Result<&'m MetadataResponseTopic, ClientError> {
    metadata
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some(topic))
        .ok_or_else(|| ClientError::Kafka {
            code: error_code::UNKNOWN_TOPIC_OR_PARTITION,
            context: format!("topic '{topic}'"),
            message: None,
        })
}
