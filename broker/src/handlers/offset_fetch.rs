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

use crate::groups::group::CommittedOffset;
use crate::groups::request as group_request;
use crate::groups::{CommittedOffsets, OffsetFetcher};
use crate::shard::Shard;

/// A group's committed offsets, or the group-level error (the coordinator's, or the group's
/// refusal of the fetcher).
async fn fetch_group(
    shard: &Rc<Shard>,
    group: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
    fetcher: OffsetFetcher,
) -> Result<CommittedOffsets, i16> {
    group_request::fetch_offsets(shard, &group, topics, fetcher)
        .await
        .and_then(|r| r)
}

/// One response row per partition from (partition, offset, leader epoch, metadata); a partition
/// without a commit gets offset -1 and empty metadata. The response's row type differs before
/// and after v8, hence `make`.
fn rows<P>(
    parts: Vec<(i32, Option<CommittedOffset>)>,
    make: impl Fn(i32, i64, i32, Option<String>) -> P,
) -> Vec<P> {
    parts
        .into_iter()
        .map(|(partition, committed)| match committed {
            Some(o) => make(partition, o.offset, o.leader_epoch, o.metadata),
            None => make(partition, -1, -1, Some(String::new())),
        })
        .collect()
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
        let outsider = OffsetFetcher::OUTSIDER;
        let (error_code, committed) =
            match fetch_group(shard, request.group_id, topics, outsider).await {
                Ok(c) => (error_code::NONE, c),
                Err(code) => (code, Vec::new()),
            };
        return OffsetFetchResponse {
            error_code,
            topics: committed
                .into_iter()
                .map(|(name, parts)| OffsetFetchResponseTopic {
                    name,
                    partitions: rows(parts, |partition_index, offset, epoch, metadata| {
                        OffsetFetchResponsePartition {
                            partition_index,
                            committed_offset: offset,
                            committed_leader_epoch: epoch,
                            metadata,
                            error_code: error_code::NONE,
                        }
                    }),
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
        // Before v9 the fields are absent and decode as Kafka's defaults (null, -1).
        let fetcher = OffsetFetcher {
            member_id: g.member_id,
            member_epoch: g.member_epoch,
        };
        let (error_code, committed) =
            match fetch_group(shard, g.group_id.clone(), topics, fetcher).await {
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
                    partitions: rows(parts, |partition_index, offset, epoch, metadata| {
                        OffsetFetchResponsePartitions {
                            partition_index,
                            committed_offset: offset,
                            committed_leader_epoch: epoch,
                            metadata,
                            error_code: error_code::NONE,
                        }
                    }),
                })
                .collect(),
        });
    }
    OffsetFetchResponse {
        groups,
        ..Default::default()
    }
}
