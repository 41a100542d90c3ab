//! Broker configuration: one struct with documented defaults, filled from a TOML file and
//! then from command-line flags (flags win). Kafka's names are used where Kafka has one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

pub use crate::cluster::config::{ControllerQuorum, Roles};

/// Most chunk writes a partition may keep in flight: beyond this a disk gains nothing and the
/// shard's io memory is spent on one partition.
pub const LOG_WRITE_BEHIND_DEPTH_MAX: usize = 64;

/// Longest `broker_rack`: it travels in every registration and Metadata response.
pub const BROKER_RACK_MAX_LEN: usize = 255;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything `riffle serve` can be told. Every field is also a key of the TOML config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Kafka listener (`listeners`). Default 127.0.0.1:9092.
    pub listen: SocketAddr,
    /// Address clients are told to connect to (`advertised.listeners`). Default: `listen`.
    pub advertised: Option<String>,
    /// Where logs and metadata live (`log.dirs`). Default ./riffle-data.
    pub data_dir: PathBuf,
    /// Shards (one per core). 0 = every core this process may run on.
    pub smp: usize,
    /// This node's id (`node.id`).
    pub node_id: i32,
    /// tracing filter, e.g. "info" or "riffle=debug".
    pub log_level: String,
    /// Log lines as text for people, or one JSON object per line for log shippers.
    pub log_format: LogFormat,
    /// The admin HTTP listener (health, readiness, status, /metrics, the console; Redpanda's
    /// `admin`). Unset: 127.0.0.1:9644, and the broker runs without it if that port is taken.
    pub admin_listen: Option<SocketAddr>,
    /// Kafka cluster id reported in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `num.partitions`: partitions of an auto-created topic or of CreateTopics with -1.
    pub num_partitions: i32,
    /// `message.max.bytes`: the largest record batch accepted, unless a topic overrides it.
    pub message_max_bytes: i32,
    /// `socket.request.max.bytes`: the largest request frame; a bigger one closes the connection.
    pub socket_request_max_bytes: usize,
    /// Memory a shard may hold in requests read but not yet answered; when spent, the shard stops
    /// reading from its sockets until responses free it.
    pub shard_inflight_budget_bytes: usize,
    /// Requests one connection may have in flight (read, not yet answered).
    pub connection_max_inflight_requests: usize,
    /// `max.connections`: client connections the whole broker holds; one more is closed at once.
    pub max_connections: usize,
    /// `max.connections.per.ip`: client connections one client address may hold.
    pub max_connections_per_ip: usize,
    /// `connections.max.idle.ms`: a connection that neither sends a request nor waits for a
    /// response for this long is closed.
    pub connections_max_idle_ms: u64,
    /// Once the broker starts reading a request (its first bytes, then its body once the shard's
    /// budget is reserved for it), the rest of the frame must arrive within this long or the
    /// connection is closed, which releases the budget held for it.
    pub request_frame_timeout_ms: u64,
    /// A response write that makes no progress for this long (a client that stops reading)
    /// closes the connection; its requests still finish and release their budget.
    pub response_write_timeout_ms: u64,
    /// On SIGTERM, connections get this long to answer the requests they have read; writes still
    /// pending then are cut, and the logs are closed. A shutdown still running after twice this
    /// long exits the process with an error, leaving the rest to recovery at the next start.
    pub shutdown_timeout_ms: u64,
    /// Longest Fetch long-poll a client may ask for.
    pub fetch_max_wait_ms: u64,
    /// Kafka's `fetch.max.bytes`: the most record data one Fetch response carries, whatever the
    /// request asks (the first batch is sent whole even when larger, so consumers progress).
    pub fetch_max_bytes: usize,
    /// Most partitions placed on one shard (Redpanda's `topic_partitions_per_shard`):
    /// CreateTopics and CreatePartitions beyond it are refused with INVALID_PARTITIONS.
    pub topic_partitions_per_shard: usize,
    /// `log.segment.bytes`.
    pub log_segment_bytes: u64,
    /// `log.retention.ms` (-1 = forever).
    pub log_retention_ms: i64,
    /// `log.retention.bytes` (-1 = unlimited).
    pub log_retention_bytes: i64,
    /// A partition whose log write or fdatasync failed (a full disk, an I/O error) is refused
    /// with KAFKA_STORAGE_ERROR, then opened again from what is durable at its first request
    /// after this long; a reopen that fails waits this long again.
    pub log_reopen_backoff_ms: u64,
    /// Per-partition in-memory cache of the log tail.
    pub log_tail_cache_bytes: usize,
    /// Memory the tail caches of all partitions of one shard hold together (batches, counted
    /// with their bookkeeping); past it the shard's oldest durable batches are evicted first.
    pub shard_tail_cache_bytes: usize,
    /// Sealed segment files one shard keeps open (least recently used closed first, reopened on
    /// their next read); each active segment keeps its own descriptor besides.
    pub max_open_segment_files: usize,
    /// Disk reserved and zero-filled ahead of the active segment's data, so that appends overwrite
    /// written blocks and fdatasync rarely carries metadata. Each partition holds up to this much
    /// unused space.
    pub log_preallocate_bytes: u64,
    /// 256 KiB chunk writes each partition keeps in flight behind its appends (io-properties.toml
    /// sizes it when not set here).
    pub log_write_behind_depth: usize,
    /// acks=all through a per-shard commit log: one fdatasync per round of the shard, whatever
    /// its partition count, with the partitions' segments written behind it and flushed by
    /// checkpoints. Off: each partition's segment is fdatasync'd for its acks=all.
    pub commit_log_enabled: bool,
    /// Size of each commit-log file, pre-allocated (written with zeros) once and then recycled.
    pub commit_log_file_bytes: u64,
    /// Commit-log files per shard: disk the log holds is this times `commit_log_file_bytes`;
    /// when all hold records not yet checkpointed, the oldest one's partitions are flushed first.
    pub commit_log_files_per_shard: usize,
    /// A partition whose bytes durable only in the commit log reach this flushes its segments in
    /// the background (a checkpoint): it bounds the tail-cache memory such bytes hold.
    pub commit_log_checkpoint_bytes: u64,
    /// glommio's registered I/O memory per shard. The segments' head buffers (256 KiB per
    /// partition being written) come from it, and O_DIRECT writes from it need no page pinning;
    /// past it buffers come from the heap. It is registered with each of the shard's 3 io_uring
    /// rings, so `ulimit -l` must allow 3 times this per shard; below that glommio logs a warning
    /// and runs without registered buffers.
    pub io_memory_bytes: usize,
    /// Threads per shard that run fdatasync (and file truncates, renames, deletes), so the
    /// partitions of a shard sync side by side.
    pub sync_threads_per_shard: usize,
    /// `group.initial.rebalance.delay.ms`: the first rebalance of an empty group waits this long
    /// (restarted by each new member, up to the rebalance timeout) so members join together.
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`: the shortest session timeout a consumer may ask for.
    pub group_min_session_timeout_ms: u64,
    /// `group.max.session.timeout.ms`: the longest session timeout a consumer may ask for.
    pub group_max_session_timeout_ms: u64,
    /// `offsets.retention.minutes`: committed offsets of a group without members expire this
    /// long after their commit (0 = never).
    pub offsets_retention_minutes: i64,
    /// `group.consumer.heartbeat.interval.ms`: how often KIP-848 consumer group members
    /// heartbeat (a group's `consumer.heartbeat.interval.ms` config overrides it).
    pub group_consumer_heartbeat_interval_ms: u64,
    /// `group.consumer.session.timeout.ms`: a KIP-848 consumer group member that has not
    /// heartbeaten for this long is removed (the group config `consumer.session.timeout.ms`
    /// overrides it).
    pub group_consumer_session_timeout_ms: u64,
    /// `group.consumer.max.size`: members one KIP-848 consumer group may hold; more are refused
    /// with GROUP_MAX_SIZE_REACHED.
    pub group_consumer_max_size: usize,
    /// What this node runs (Kafka's `process.roles`): `broker,controller` (combined, the
    /// default), `broker` or `controller`.
    pub roles: Roles,
    /// The rack this broker is in (Kafka's `broker.rack`): registered with the quorum, listed
    /// in Metadata and DescribeCluster, and used to spread a partition's replicas over racks.
    pub broker_rack: Option<String>,
    /// The controller quorum's voters, `ID@HOST:PORT,...` (Kafka's `controller.quorum.voters`).
    /// Unset: a single-node cluster whose metadata lives in `metadata.json`.
    pub controller_quorum: Option<ControllerQuorum>,
    /// Where this node's controller listens for its peers. Default: its own entry in
    /// `controller_quorum`.
    pub controller_listen: Option<SocketAddr>,
    /// The controller's Raft clock: one tick every this many ms.
    pub controller_tick_ms: u64,
    /// Ticks between the controller leader's heartbeats to its followers.
    pub controller_heartbeat_tick: usize,
    /// Ticks a follower waits without hearing a leader before it campaigns (drawn at random
    /// from `[election, 2 × election)` each time).
    pub controller_election_tick: usize,
    /// `broker.session.timeout.ms`: a broker that has not heartbeaten to the controller leader
    /// for this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// A topic change the controller quorum has not committed within this long is answered
    /// REQUEST_TIMED_OUT (it may still be committed later).
    pub controller_proposal_timeout_ms: u64,
    /// The controller snapshots its metadata image, and drops the Raft log it covers, every
    /// this many applied entries; a voter further behind than the log catches up by snapshot.
    pub controller_snapshot_interval_entries: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised: None,
            data_dir: PathBuf::from("riffle-data"),
            smp: 0,
            node_id: 0,
            log_level: "info".to_string(),
            log_format: LogFormat::Text,
            admin_listen: None,
            cluster_id: "riffle-cluster".to_string(),
            auto_create_topics_enable: true,
            num_partitions: 1,
            message_max_bytes: 1024 * 1024 + 12,
            socket_request_max_bytes: riffle_protocol::DEFAULT_MAX_FRAME_BYTES,
            shard_inflight_budget_bytes: 256 * 1024 * 1024,
            connection_max_inflight_requests: 128,
            max_connections: 10_000,
            max_connections_per_ip: 10_000,
            connections_max_idle_ms: 600_000,
            request_frame_timeout_ms: 30_000,
            response_write_timeout_ms: 30_000,
            shutdown_timeout_ms: 10_000,
            fetch_max_wait_ms: 30_000,
            fetch_max_bytes: 55 * 1024 * 1024,
            topic_partitions_per_shard: 1000,
            log_segment_bytes: 1024 * 1024 * 1024,
            log_retention_ms: 7 * 24 * 3600 * 1000,
            log_retention_bytes: -1,
            log_reopen_backoff_ms: 1000,
            log_tail_cache_bytes: 4 * 1024 * 1024,
            shard_tail_cache_bytes: riffle_storage::SHARD_TAIL_CACHE_BYTES_DEFAULT,
            max_open_segment_files: riffle_storage::MAX_OPEN_SEGMENT_FILES_DEFAULT,
            log_preallocate_bytes: 16 * 1024 * 1024,
            log_write_behind_depth: 4,
            commit_log_enabled: false,
            commit_log_file_bytes: 64 * 1024 * 1024,
            commit_log_files_per_shard: 4,
            commit_log_checkpoint_bytes: 4 * 1024 * 1024,
            io_memory_bytes: 16 * 1024 * 1024,
            sync_threads_per_shard: 4,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            offsets_retention_minutes: 7 * 24 * 60,
            group_consumer_heartbeat_interval_ms: 5000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_max_size: 1000,
            roles: Roles::default(),
            broker_rack: None,
            controller_quorum: None,
            controller_listen: None,
            controller_tick_ms: 100,
            controller_heartbeat_tick: 3,
            controller_election_tick: 10,
            broker_session_timeout_ms: 9000,
            controller_proposal_timeout_ms: 5000,
            controller_snapshot_interval_entries: 1000,
        }
    }
}

/// Kafka 4's smallest `segment.bytes` and `log.segment.bytes`: smaller segments would multiply
/// files and descriptors for nothing.
pub const MIN_SEGMENT_BYTES: u64 = 1024 * 1024;

impl BrokerConfig {
    /// Reads a TOML file; unknown keys are an error so that typos are caught at start-up.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    /// The host and port clients are told to use.
    pub fn advertised_host_port(&self) -> (String, i32) {
        match &self.advertised {
            Some(addr) => match addr.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), port.parse().unwrap_or(9092)),
                None => (addr.clone(), i32::from(self.listen.port())),
            },
            None => (self.listen.ip().to_string(), i32::from(self.listen.port())),
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(rack) = &self.broker_rack {
            anyhow::ensure!(
                !rack.is_empty() && rack.len() <= BROKER_RACK_MAX_LEN,
                "broker_rack must be 1 to {BROKER_RACK_MAX_LEN} bytes, got {}",
                rack.len()
            );
        }
        anyhow::ensure!(
            self.num_partitions >= 1,
            "num_partitions must be at least 1"
        );
        anyhow::ensure!(
            self.message_max_bytes > 0,
            "message_max_bytes must be positive"
        );
        anyhow::ensure!(
            self.socket_request_max_bytes >= 1024,
            "socket_request_max_bytes must be at least 1024"
        );
        anyhow::ensure!(
            self.shard_inflight_budget_bytes >= 1024 * 1024,
            "shard_inflight_budget_bytes must be at least 1 MiB"
        );
        anyhow::ensure!(
            self.connection_max_inflight_requests >= 1,
            "connection_max_inflight_requests must be at least 1"
        );
        self.validate_connections()?;
        anyhow::ensure!(
            self.log_segment_bytes >= MIN_SEGMENT_BYTES,
            "log_segment_bytes must be at least {MIN_SEGMENT_BYTES} (1 MiB, as in Kafka 4), got {}",
            self.log_segment_bytes
        );
        anyhow::ensure!(
            self.max_open_segment_files >= 1,
            "max_open_segment_files must be at least 1"
        );
        anyhow::ensure!(
            self.log_reopen_backoff_ms >= 1,
            "log_reopen_backoff_ms must be at least 1 ms"
        );
        anyhow::ensure!(
            self.io_memory_bytes >= 512 * 1024,
            "io_memory_bytes must be at least 512 KiB (glommio refuses less)"
        );
        anyhow::ensure!(
            (1..=LOG_WRITE_BEHIND_DEPTH_MAX).contains(&self.log_write_behind_depth),
            "log_write_behind_depth must be between 1 and {LOG_WRITE_BEHIND_DEPTH_MAX}"
        );
        anyhow::ensure!(
            self.commit_log_file_bytes >= riffle_storage::commit_log::FILE_BYTES_MIN,
            "commit_log_file_bytes must be at least {} (two rounds of the commit log)",
            riffle_storage::commit_log::FILE_BYTES_MIN
        );
        anyhow::ensure!(
            self.commit_log_files_per_shard >= 2,
            "commit_log_files_per_shard must be at least 2 (one written while one is recycled)"
        );
        anyhow::ensure!(
            self.commit_log_checkpoint_bytes >= 1,
            "commit_log_checkpoint_bytes must be at least 1"
        );
        anyhow::ensure!(
            self.sync_threads_per_shard >= 1,
            "sync_threads_per_shard must be at least 1"
        );
        anyhow::ensure!(
            self.group_min_session_timeout_ms <= self.group_max_session_timeout_ms,
            "group_min_session_timeout_ms must not exceed group_max_session_timeout_ms"
        );
        anyhow::ensure!(
            self.group_consumer_heartbeat_interval_ms >= 1
                && self.group_consumer_heartbeat_interval_ms
                    < self.group_consumer_session_timeout_ms
                && self.group_consumer_session_timeout_ms <= i32::MAX as u64,
            "group_consumer_heartbeat_interval_ms must be at least 1 and below \
             group_consumer_session_timeout_ms"
        );
        anyhow::ensure!(
            self.group_consumer_max_size >= 1,
            "group_consumer_max_size must be at least 1"
        );
        anyhow::ensure!(
            self.offsets_retention_minutes >= 0,
            "offsets_retention_minutes must be 0 (never) or positive"
        );
        self.validate_cluster()?;
        if let Some(adv) = &self.advertised {
            anyhow::ensure!(
                adv.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()),
                "advertised must be HOST:PORT, got {adv}"
            );
        }
        Ok(())
    }

    /// With no quorum the node is today's single combined node; with one, a voter (combined or
    /// controller-only) is named among the voters, and a broker-only node is not (it follows
    /// the log from the leader without a vote, `cluster::broker_only`).
    fn validate_cluster(&self) -> anyhow::Result<()> {
        let Some(quorum) = &self.controller_quorum else {
            anyhow::ensure!(
                self.roles == Roles::default(),
                "roles {} needs controller_quorum; a node without one is a single combined node",
                self.roles
            );
            return Ok(());
        };
        anyhow::ensure!(
            self.roles.broker || self.roles.controller,
            "roles must name broker, controller or both"
        );
        anyhow::ensure!(
            self.node_id >= 1,
            "node_id must be at least 1 with controller_quorum, got {}",
            self.node_id
        );
        let is_voter = quorum.voter(self.node_id as u64).is_some();
        if self.roles.controller {
            anyhow::ensure!(
                is_voter,
                "node_id {} is not among the controller_quorum voters {:?} (roles {} votes)",
                self.node_id,
                quorum.ids(),
                self.roles
            );
        } else {
            anyhow::ensure!(
                !is_voter,
                "node_id {} is a controller_quorum voter; a broker-only node (roles broker) \
                 needs an id of its own",
                self.node_id
            );
            anyhow::ensure!(
                self.controller_listen.is_none(),
                "controller_listen is for voters; a broker-only node (roles broker) listens for \
                 no controller"
            );
        }
        anyhow::ensure!(
            self.cluster_id.len() <= riffle_controller::transport::CLUSTER_ID_MAX_LEN,
            "cluster_id must be at most {} bytes",
            riffle_controller::transport::CLUSTER_ID_MAX_LEN
        );
        anyhow::ensure!(
            self.controller_tick_ms >= 1,
            "controller_tick_ms must be at least 1 ms"
        );
        anyhow::ensure!(
            self.controller_heartbeat_tick >= 1
                && self.controller_election_tick > self.controller_heartbeat_tick,
            "controller_election_tick ({}) must exceed controller_heartbeat_tick ({}), which must be at least 1",
            self.controller_election_tick,
            self.controller_heartbeat_tick
        );
        anyhow::ensure!(
            self.broker_session_timeout_ms >= 1,
            "broker_session_timeout_ms must be at least 1 ms"
        );
        anyhow::ensure!(
            self.controller_proposal_timeout_ms >= 1,
            "controller_proposal_timeout_ms must be at least 1 ms"
        );
        anyhow::ensure!(
            self.controller_snapshot_interval_entries >= 1,
            "controller_snapshot_interval_entries must be at least 1"
        );
        Ok(())
    }

    fn validate_connections(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_connections >= 1,
            "max_connections must be at least 1"
        );
        anyhow::ensure!(
            self.max_connections_per_ip >= 1,
            "max_connections_per_ip must be at least 1"
        );
        for (name, value_ms) in [
            ("connections_max_idle_ms", self.connections_max_idle_ms),
            ("request_frame_timeout_ms", self.request_frame_timeout_ms),
            ("response_write_timeout_ms", self.response_write_timeout_ms),
            ("shutdown_timeout_ms", self.shutdown_timeout_ms),
        ] {
            anyhow::ensure!(value_ms >= 1, "{name} must be at least 1 ms");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let cfg: BrokerConfig =
            toml::from_str("listen = \"127.0.0.1:19092\"\nnum_partitions = 8\n").unwrap();
        assert_eq!(cfg.listen.port(), 19092);
        assert_eq!(cfg.num_partitions, 8);
        assert_eq!(cfg.node_id, 0);
        assert!(toml::from_str::<BrokerConfig>("lisen = \"x\"").is_err());
    }

    #[test]
    fn sync_threads_per_shard_is_read_and_zero_is_refused() {
        let cfg: BrokerConfig = toml::from_str("sync_threads_per_shard = 2\n").unwrap();
        assert_eq!(cfg.sync_threads_per_shard, 2);
        assert!(cfg.validate().is_ok());
        let cfg: BrokerConfig = toml::from_str("sync_threads_per_shard = 0\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("sync_threads_per_shard"), "{err}");
    }

    #[test]
    fn log_write_behind_depth_is_read_and_bounded() {
        let cfg: BrokerConfig = toml::from_str("log_write_behind_depth = 8\n").unwrap();
        assert_eq!(cfg.log_write_behind_depth, 8);
        assert!(cfg.validate().is_ok());
        for bad in [0, LOG_WRITE_BEHIND_DEPTH_MAX + 1] {
            let cfg: BrokerConfig =
                toml::from_str(&format!("log_write_behind_depth = {bad}\n")).unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains("log_write_behind_depth"), "{err}");
        }
    }

    #[test]
    fn advertised_defaults_to_listen_address() {
        let mut cfg = BrokerConfig::default();
        assert_eq!(cfg.advertised_host_port(), ("127.0.0.1".to_string(), 9092));
        cfg.advertised = Some("broker.example:19092".into());
        assert_eq!(
            cfg.advertised_host_port(),
            ("broker.example".to_string(), 19092)
        );
        assert!(cfg.validate().is_ok());
        cfg.advertised = Some("nohost".into());
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn connection_settings_have_kafka_defaults_and_zero_is_refused() {
        let cfg = BrokerConfig::default();
        assert_eq!(cfg.connections_max_idle_ms, 600_000, "Kafka's default");
        assert!(cfg.validate().is_ok());
        let cfg: BrokerConfig = toml::from_str(
            "max_connections = 5\nmax_connections_per_ip = 2\nconnections_max_idle_ms = 1000\n\
             request_frame_timeout_ms = 500\nresponse_write_timeout_ms = 700\nshutdown_timeout_ms = 900\n",
        )
        .unwrap();
        assert_eq!(
            (cfg.max_connections, cfg.max_connections_per_ip),
            (5, 2),
            "both caps are read"
        );
        assert_eq!(cfg.request_frame_timeout_ms, 500);
        assert_eq!(cfg.response_write_timeout_ms, 700);
        assert_eq!(cfg.shutdown_timeout_ms, 900);
        assert!(cfg.validate().is_ok());
        for key in [
            "max_connections",
            "max_connections_per_ip",
            "connections_max_idle_ms",
            "request_frame_timeout_ms",
            "response_write_timeout_ms",
            "shutdown_timeout_ms",
        ] {
            let cfg: BrokerConfig = toml::from_str(&format!("{key} = 0\n")).unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn log_reopen_backoff_ms_defaults_to_a_second_and_zero_is_refused() {
        assert_eq!(BrokerConfig::default().log_reopen_backoff_ms, 1000);
        let cfg: BrokerConfig = toml::from_str("log_reopen_backoff_ms = 1\n").unwrap();
        assert!(cfg.validate().is_ok(), "the smallest back-off");
        let cfg: BrokerConfig = toml::from_str("log_reopen_backoff_ms = 0\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("log_reopen_backoff_ms"), "{err}");
    }

    #[test]
    fn no_quorum_is_a_single_combined_node() {
        let cfg = BrokerConfig::default();
        assert_eq!(cfg.roles, Roles::default());
        assert!(cfg.controller_quorum.is_none());
        assert!(cfg.validate().is_ok());
        let cfg: BrokerConfig = toml::from_str("roles = \"broker\"\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("controller_quorum"), "{err}");
    }

    #[test]
    fn broker_rack_is_read_and_bounded() {
        let cfg: BrokerConfig = toml::from_str("broker_rack = \"eu-1a\"\n").unwrap();
        assert_eq!(cfg.broker_rack.as_deref(), Some("eu-1a"));
        assert!(cfg.validate().is_ok());
        for rack in [String::new(), "r".repeat(BROKER_RACK_MAX_LEN + 1)] {
            let cfg = BrokerConfig {
                broker_rack: Some(rack),
                ..BrokerConfig::default()
            };
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains("broker_rack"), "{err}");
        }
    }

    #[test]
    fn a_node_is_a_voter_or_a_broker_only_node_with_an_id_of_its_own() {
        let quorum = "controller_quorum = \"1@127.0.0.1:9093\"\n";
        let cfg: BrokerConfig =
            toml::from_str(&format!("node_id = 1\n{quorum}roles = \"controller\"\n")).unwrap();
        assert!(cfg.validate().is_ok());
        let cfg: BrokerConfig =
            toml::from_str(&format!("node_id = 4\n{quorum}roles = \"broker\"\n")).unwrap();
        assert!(cfg.validate().is_ok());
        for (toml, key) in [
            (format!("node_id = 1\n{quorum}roles = \"broker\"\n"), "own"),
            (
                format!("node_id = 4\n{quorum}roles = \"controller\"\n"),
                "voters",
            ),
            (
                format!(
                    "node_id = 4\n{quorum}roles = \"broker\"\ncontroller_listen = \"127.0.0.1:1\"\n"
                ),
                "controller_listen",
            ),
        ] {
            let cfg: BrokerConfig = toml::from_str(&toml).unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn quorum_settings_are_read_and_checked() {
        let cfg: BrokerConfig = toml::from_str(
            "node_id = 2\nroles = \"broker,controller\"\n\
             controller_quorum = \"1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095\"\n\
             controller_listen = \"127.0.0.1:9094\"\ncontroller_tick_ms = 20\n\
             controller_proposal_timeout_ms = 700\ncontroller_snapshot_interval_entries = 20\n",
        )
        .unwrap();
        assert_eq!(cfg.controller_proposal_timeout_ms, 700);
        assert_eq!(cfg.controller_snapshot_interval_entries, 20);
        assert_eq!(cfg.controller_quorum.as_ref().unwrap().ids(), vec![1, 2, 3]);
        assert_eq!(cfg.controller_tick_ms, 20);
        assert!(cfg.validate().is_ok());
        assert!(toml::from_str::<BrokerConfig>("controller_quorum = \"1@nohostport\"\n").is_err());
        for (toml, key) in [
            ("node_id = 4\ncontroller_quorum = \"1@h:1\"\n", "node_id"),
            ("node_id = 0\ncontroller_quorum = \"1@h:1\"\n", "node_id"),
            (
                "node_id = 1\ncontroller_quorum = \"1@h:1\"\ncontroller_election_tick = 3\n",
                "controller_election_tick",
            ),
            (
                "node_id = 1\ncontroller_quorum = \"1@h:1\"\ncontroller_proposal_timeout_ms = 0\n",
                "controller_proposal_timeout_ms",
            ),
            (
                "node_id = 1\ncontroller_quorum = \"1@h:1\"\n\
                 controller_snapshot_interval_entries = 0\n",
                "controller_snapshot_interval_entries",
            ),
        ] {
            let cfg: BrokerConfig = toml::from_str(toml).unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn commit_log_settings_are_refused_below_their_limits() {
        let ok: BrokerConfig = toml::from_str(
            "commit_log_enabled = true\ncommit_log_file_bytes = 16777216\ncommit_log_files_per_shard = 2\n",
        )
        .unwrap();
        assert!(ok.validate().is_ok(), "the smallest commit log");
        for (line, name) in [
            ("commit_log_file_bytes = 16777215", "commit_log_file_bytes"),
            (
                "commit_log_files_per_shard = 1",
                "commit_log_files_per_shard",
            ),
            (
                "commit_log_checkpoint_bytes = 0",
                "commit_log_checkpoint_bytes",
            ),
        ] {
            let cfg: BrokerConfig = toml::from_str(line).unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(name), "{line}: {err}");
        }
    }

    #[test]
    fn max_open_segment_files_defaults_to_1024_and_zero_is_refused() {
        assert_eq!(BrokerConfig::default().max_open_segment_files, 1024);
        let cfg: BrokerConfig = toml::from_str("max_open_segment_files = 1\n").unwrap();
        assert!(cfg.validate().is_ok(), "the smallest cap");
        let cfg: BrokerConfig = toml::from_str("max_open_segment_files = 0\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("max_open_segment_files"), "{err}");
    }

    #[test]
    fn log_segment_bytes_below_one_mib_is_refused_with_the_minimum() {
        let cfg: BrokerConfig = toml::from_str("log_segment_bytes = 1048575\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("log_segment_bytes") && err.contains("1048576"),
            "{err}"
        );
        let cfg: BrokerConfig = toml::from_str("log_segment_bytes = 1048576\n").unwrap();
        assert!(cfg.validate().is_ok());
    }
}
