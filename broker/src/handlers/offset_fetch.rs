//! OffsetFetch: a group's committed offsets (-1 where none), for some partitions or all of them;
//! one group per request before v8, several from v8.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use riffle_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
use riffle_protocol::RequestHeader;

use super::on_coordinator;
use crate::groups::group::CommittedOffset;
use crate::groups::CommittedOffsets;
use crate::shard::Shard;

async fn fetch_group(
    shard: &Rc<Shard>,
    group: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Result<CommittedOffsets, i16> {
    on_coordinator(shard, &group.clone(), move |c| async move {
        c.fetch_offsets(&group, topics)
    })
    .await
}

/// (offset, leader epoch, metadata) as the response carries them.
fn fields(o: Option<CommittedOffset>) -> (i64, i32, Option<String>) {
    match o {
        Some(o) => (o.offset, o.leader_epoch, o.metadata),
        None => (-1, -1, Some(String::new())),
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if header.request_api_version < 8 {
        let topics = request.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect()
        });
        let (error_code, committed) = match fetch_group(shard, request.group_id, topics).await {
            Ok(c) => (error_code::NONE, c),
            Err(code) => (code, Vec::new()),
        };
        return OffsetFetchResponse {
            error_code,
            topics: committed
                .into_iter()
                .map(|(name, parts)| OffsetFetchResponseTopic {
                    name,
                    partitions: parts
                        .into_iter()
                        .map(|(partition_index, o)| {
                            let (committed_offset, committed_leader_epoch, metadata) = fields(o);
                            OffsetFetchResponsePartition {
                                partition_index,
                                committed_offset,
                                committed_leader_epoch,
                                metadata,
                                error_code: error_code::NONE,
                            }
                        })
                        .collect(),
                })
                .collect(),
            ..Default::default()
        };
    }
    let mut groups = Vec::with_capacity(request.groups.len());
    for g in request.groups {
        let topics = g.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect()
        });
        let (error_code, committed) = match fetch_group(shard, g.group_id.clone(), topics).await {
            Ok(c) => (error_code::NONE, c),
            Err(code) => (code, Vec::new()),
        };
        groups.push(OffsetFetchResponseGroup {
            group_id: g.group_id,
            error_code,
            topics: committed
                .into_iter()
                .map(|(name, parts)| OffsetFetchResponseTopics {
                    name,
                    partitions: parts
                        .into_iter()
                        .map(|(partition_index, o)| {
                            let (committed_offset, committed_leader_epoch, metadata) = fields(o);
                            OffsetFetchResponsePartitions {
                                partition_index,
                                committed_offset,
                                committed_leader_epoch,
                                metadata,
                                error_code: error_code::NONE,
                            }
                        })
                        .collect(),
                })
                .collect(),
        });
    }
    OffsetFetchResponse {
        groups,
        ..Default::default()
    }
}
