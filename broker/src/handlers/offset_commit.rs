//! OffsetCommit: stores a group's consumed positions durably. Partitions of unknown topics and
//! oversized metadata are refused one by one; the rest are committed together.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::offset_commit_request::OffsetCommitRequestTopic;
use riffle_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use riffle_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use riffle_protocol::RequestHeader;

use crate::groups::group::CommittedOffset;
use crate::groups::request as group_request;
use crate::groups::{Committer, OffsetCommit};
use crate::shard::Shard;
use riffle_storage::clock::now_ms;

/// `offset.metadata.max.bytes`.
const OFFSET_METADATA_MAX_BYTES: usize = 4096;

/// Per partition: Ok(commit) to store, or the error to answer with.
type Row = (i32, Result<OffsetCommit, i16>);

pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let rows = checked_rows(shard, &request.group_id, request.topics);
    let commits: Vec<OffsetCommit> = rows
        .iter()
        .flat_map(|(_, parts)| parts.iter().filter_map(|(_, r)| r.as_ref().ok().cloned()))
        .collect();
    let outcome = if commits.is_empty() {
        Ok(())
    } else {
        let committer = Committer {
            member_id: request.member_id,
            group_instance_id: request.group_instance_id,
            generation: request.generation_id_or_member_epoch,
        };
        let version = header.request_api_version;
        group_request::commit(shard, &request.group_id, committer, commits, version)
            .await
            .and_then(|r| r)
    };
    OffsetCommitResponse {
        topics: rows
            .into_iter()
            .map(|(name, parts)| OffsetCommitResponseTopic {
                name,
                partitions: parts
                    .into_iter()
                    .map(|(partition_index, r)| OffsetCommitResponsePartition {
                        partition_index,
                        error_code: match r {
                            Err(code) => code,
                            Ok(_) => outcome.err().unwrap_or(error_code::NONE),
                        },
                    })
                    .collect(),
            })
            .collect(),
        ..Default::default()
    }
}

/// Checks each partition's commit: the group id, the partition, the metadata's size.
fn checked_rows(
    shard: &Rc<Shard>,
    group_id: &str,
    topics: Vec<OffsetCommitRequestTopic>,
) -> Vec<(String, Vec<Row>)> {
    let image = shard.image();
    let now = now_ms();
    topics
        .into_iter()
        .map(|topic| {
            let meta = image.topic(&topic.name);
            let parts = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let index = p.partition_index;
                    let known =
                        meta.is_some_and(|t| index >= 0 && (index as usize) < t.partitions.len());
                    let result = if group_id.is_empty() {
                        Err(error_code::INVALID_GROUP_ID)
                    } else if !known {
                        Err(error_code::UNKNOWN_TOPIC_OR_PARTITION)
                    } else if p
                        .committed_metadata
                        .as_ref()
                        .is_some_and(|m| m.len() > OFFSET_METADATA_MAX_BYTES)
                    {
                        Err(error_code::OFFSET_METADATA_TOO_LARGE)
                    } else {
                        Ok(OffsetCommit {
                            topic: topic.name.clone(),
                            partition: index,
                            offset: CommittedOffset {
                                offset: p.committed_offset,
                                leader_epoch: p.committed_leader_epoch,
                                metadata: p.committed_metadata,
                                commit_timestamp_ms: now,
                            },
                        })
                    };
                    (index, result)
                })
                .collect();
            (topic.name, parts)
        })
        .collect()
}
