//! What one shard reports when the admin listener asks (`ShardRequest::Stats`): its counters,
//! its partitions with their offsets, sizes and traffic, and the consumer groups it coordinates
//! with their members and committed offsets. Built on the shard, read on the admin thread.

use std::rc::Rc;

use riffle_client::consumer_protocol::Assignment;
use serde::Serialize;

use super::metrics::{self, MetricsSnapshot};
use crate::groups::{GroupCoordinator, OffsetFetcher};
use crate::shard::Shard;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ShardStats {
    pub shard: usize,
    /// Request bytes read and not yet answered (the shard's in-flight budget in use).
    pub inflight_bytes: u64,
    pub inflight_budget_bytes: u64,
    /// Bytes of recent batches the shard's partitions keep in memory.
    pub tail_cache_bytes: u64,
    /// Sealed segment files the shard keeps open (at most `max_open_segment_files`).
    pub open_segment_files: u64,
    pub metrics: MetricsSnapshot,
    /// (kind, sent, served) cross-shard requests.
    pub cross_shard: Vec<(&'static str, u64, u64)>,
    pub partitions: Vec<PartitionStats>,
    pub groups: Vec<GroupStats>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PartitionStats {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
    pub records_out: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct GroupStats {
    pub group_id: String,
    pub state: &'static str,
    pub protocol_type: String,
    pub members: Vec<MemberStats>,
    /// (topic, partition, committed offset).
    pub committed: Vec<(String, i32, i64)>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct MemberStats {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    /// (topic, partitions) assigned, when the group speaks the consumer protocol.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// Reads `shard`'s state (runs on the shard, without yielding).
pub(crate) fn collect(shard: &Rc<Shard>) -> ShardStats {
    let partitions = shard.open_partitions();
    let budget = shard.config().shard_inflight_budget_bytes as u64;
    ShardStats {
        shard: shard.id,
        inflight_bytes: budget.saturating_sub(shard.inflight_budget.available()),
        inflight_budget_bytes: budget,
        tail_cache_bytes: partitions.iter().map(|p| p.tail_cache_bytes() as u64).sum(),
        open_segment_files: riffle_storage::open_segment_files() as u64,
        metrics: metrics::snapshot(),
        cross_shard: shard
            .request_counts
            .snapshot()
            .into_iter()
            .map(|(kind, sent, served)| (kind.name(), sent, served))
            .collect(),
        partitions: partitions.iter().map(|p| p.stats()).collect(),
        groups: shard
            .group_coordinator_if_open()
            .map(|c| groups(&c))
            .unwrap_or_default(),
    }
}

fn groups(coordinator: &Rc<GroupCoordinator>) -> Vec<GroupStats> {
    coordinator
        .list()
        .into_iter()
        .map(|listing| {
            let members = coordinator
                .describe(&listing.group_id)
                .map(|d| d.members)
                .unwrap_or_default()
                .into_iter()
                .map(|m| MemberStats {
                    assignment: Assignment::decode(&m.assignment)
                        .map(|a| a.partitions)
                        .unwrap_or_default(),
                    member_id: m.member_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                })
                .collect();
            let committed = coordinator
                .fetch_offsets(&listing.group_id, None, &OffsetFetcher::OUTSIDER)
                .unwrap_or_default()
                .into_iter()
                .flat_map(|(topic, rows)| {
                    rows.into_iter().filter_map(move |(partition, offset)| {
                        offset.map(|o| (topic.clone(), partition, o.offset))
                    })
                })
                .collect();
            GroupStats {
                group_id: listing.group_id,
                state: listing.state,
                protocol_type: listing.protocol_type,
                members,
                committed,
            }
        })
        .collect()
}
