//! The controller quorum inside the broker: with `controller_quorum` set, shard 0 of a voter
//! runs a task that owns this node's `riffle_controller::Node` (the Raft voter and its metadata
//! image), ticks it, carries its messages over TCP to the other voters (`peers`) and publishes
//! what it knows of the quorum for the admin listener (`/v1/cluster`). A broker-only node runs
//! `broker_only` instead: it fetches the committed log from the quorum's leader. Without a
//! quorum nothing here runs and the node is today's single node, its metadata in
//! `metadata.json`.

mod broker_only;
mod client;
pub mod config;
mod driver;
mod image_sync;
mod peers;

use std::rc::Rc;

use riffle_controller::image::BrokerState;
use riffle_controller::observer::ObserverView;

use crate::shard::Shard;
use crate::Shutdown;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use serde::Serialize;

pub(crate) use client::{Change, ClusterClient};

/// Directory of the controller's Raft log under the data dir (never a partition directory:
/// those are named TOPIC-PARTITION).
pub(crate) const CONTROLLER_DIR: &str = "controller";

/// Starts this node's link to the quorum on shard 0: its voter, or (broker-only) its fetcher.
pub(crate) fn start(
    shard: &Rc<Shard>,
    view: Arc<ClusterView>,
    shutdown: Shutdown,
) -> anyhow::Result<ClusterClient> {
    if shard.config().roles.controller {
        driver::start(shard, view, shutdown)
    } else {
        broker_only::start(shard, view, shutdown)
    }
}

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
    /// Broker-only nodes following the log, as the leader last heard them (Kafka's observers).
    pub observers: Vec<ObserverStatus>,
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

/// A broker-only node that fetches the metadata log from the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObserverStatus {
    pub node_id: u64,
    /// The last log index it had applied when it last fetched.
    pub applied_index: u64,
    /// Commit index minus its applied index.
    pub lag: u64,
    /// When it last fetched, in milliseconds since the Unix epoch.
    pub last_fetch_ms: i64,
}

fn observer_statuses<'a>(
    observers: impl IntoIterator<Item = &'a ObserverView>,
    commit_index: u64,
) -> Vec<ObserverStatus> {
    observers
        .into_iter()
        .map(|o| ObserverStatus {
            node_id: o.node_id,
            applied_index: o.applied_index,
            lag: commit_index.saturating_sub(o.applied_index),
            last_fetch_ms: o.last_fetch_ms,
        })
        .collect()
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

impl From<&BrokerState> for BrokerStatus {
    fn from(b: &BrokerState) -> BrokerStatus {
        let listener = b.registration.listeners.first();
        BrokerStatus {
            broker_id: b.registration.broker_id,
            host: listener.map(|l| l.host.clone()).unwrap_or_default(),
            port: listener.map_or(0, |l| l.port),
            rack: b.registration.rack.clone(),
            broker_epoch: b.broker_epoch,
            fenced: b.fenced,
        }
    }
}
