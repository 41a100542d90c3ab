//! The controller quorum inside the broker: with `controller_quorum` set, shard 0 runs a task
//! that owns this node's `riffle_controller::Node` (the Raft voter and its metadata image),
//! ticks it, carries its messages over TCP to the other voters (`peers`) and publishes what it
//! knows of the quorum for the admin listener (`/v1/cluster`). Without a quorum nothing here
//! runs and the node is today's single node, its metadata in `metadata.json`.

mod client;
pub mod config;
mod driver;
mod peers;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use serde::Serialize;

pub(crate) use client::{Change, ClusterClient};

/// Directory of the controller's Raft log under the data dir (never a partition directory:
/// those are named TOPIC-PARTITION).
pub(crate) const CONTROLLER_DIR: &str = "controller";
pub(crate) use driver::start;

/// Milliseconds since the Unix epoch, as DescribeQuorum's timestamps are.
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The quorum as this node last saw it; replaced whole by the controller task after every
/// change. Shared by every thread (the admin listener reads it); lives for the process.
#[derive(Default)]
pub struct ClusterView {
    status: ArcSwapOption<ClusterStatus>,
}

impl ClusterView {
    /// None while this node runs no controller (no quorum configured).
    pub fn status(&self) -> Option<Arc<ClusterStatus>> {
        self.status.load_full()
    }

    fn publish(&self, status: ClusterStatus) {
        self.status.store(Some(Arc::new(status)));
    }
}

/// What `/v1/cluster` and `riffle cluster info` show of the quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// The node answering.
    pub node_id: u64,
    /// The quorum's leader as this node knows it; None during an election.
    pub leader_id: Option<u64>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub voters: Vec<VoterStatus>,
    /// Brokers registered in the metadata image.
    pub brokers: Vec<BrokerStatus>,
    /// Topics in the metadata image.
    pub topic_count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoterStatus {
    pub node_id: u64,
    /// Its controller listener, as `controller_quorum` names it.
    pub address: String,
    /// Known on the leader only: the last log index this voter holds.
    pub matched_index: Option<u64>,
    /// Known on the leader only: commit index minus matched index (0 for the leader itself).
    pub lag: Option<u64>,
    /// Known on the leader only: when this follower last answered it (an append or a
    /// heartbeat), in milliseconds since the Unix epoch (DescribeQuorum's last fetch).
    pub last_fetch_ms: Option<i64>,
    /// Known on the leader only, for its followers: when this one last held every committed
    /// entry, in milliseconds since the Unix epoch.
    pub last_caught_up_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerStatus {
    pub broker_id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    pub broker_epoch: u64,
    pub fenced: bool,
}
