//! ListOffsets: the earliest, latest or by-timestamp offset of partitions, each asked of its
//! leader.

use std::collections::BTreeMap;

use riffle_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use riffle_protocol::messages::list_offsets_response::ListOffsetsResponse;

use crate::client::{Client, PartitionInfo};
use crate::error::ClientError;

/// ListOffsets' timestamp for the log end offset.
pub const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets' timestamp for the log start offset.
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// How long the broker may take to answer ListOffsets.
const LIST_OFFSETS_TIMEOUT_MS: i32 = 10_000;

impl Client {
    /// The offset at `timestamp` (or `LATEST_TIMESTAMP`, `EARLIEST_TIMESTAMP`) of each of
    /// `partitions` of `topic`, as (partition, offset) sorted by partition.
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[PartitionInfo],
        timestamp: i64,
    ) -> Result<Vec<(i32, i64)>, ClientError> {
        let mut by_leader: BTreeMap<_, Vec<i32>> = BTreeMap::new();
        for p in partitions {
            by_leader.entry(p.leader).or_default().push(p.partition);
        }
        let mut out = Vec::with_capacity(partitions.len());
        for (leader, ids) in by_leader {
            let request = ListOffsetsRequest {
                replica_id: -1,
                isolation_level: 0,
                topics: vec![ListOffsetsTopic {
                    name: topic.into(),
                    partitions: ids
                        .iter()
                        .map(|&p| ListOffsetsPartition {
                            partition_index: p,
                            timestamp,
                            current_leader_epoch: -1,
                            max_num_offsets: 1,
                        })
                        .collect(),
                }],
                timeout_ms: LIST_OFFSETS_TIMEOUT_MS,
            };
            let resp: ListOffsetsResponse = self.broker(leader)?.call(&request)?;
            for t in &resp.topics {
                for p in &t.partitions {
                    ClientError::check(
                        p.error_code,
                        || format!("partition {topic}-{}", p.partition_index),
                        None,
                    )?;
                    // v0 answers a list of offsets instead of one.
                    let offset = p.old_style_offsets.first().copied().unwrap_or(p.offset);
                    out.push((p.partition_index, offset));
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}
