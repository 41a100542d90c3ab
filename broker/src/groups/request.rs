//! What a handler may ask of a group's coordinator, wherever its shard is: the typed requests, the
//! coordinator's side that serves them, and the calls handlers use. A group lives on the shard
//! that owns its slot (`shard_of`).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use riffle_protocol::error_code;

use super::consumer::{GroupError, Heartbeat, HeartbeatAnswer};
use super::consumer_coordinator::ConsumerGroupDescription;
use super::group::{JoinRequest, JoinResult, SyncResult};
use super::{
    shard_of, CommittedOffsets, Committer, GroupCoordinator, GroupDescription, GroupListing,
    OffsetCommit, OffsetFetcher,
};
use crate::metadata::image::MetadataImage;
use crate::shard::{Shard, ShardRequest, ShardResponse};

/// Topics and their partitions, as OffsetFetch and OffsetDelete name them.
pub type TopicPartitions = Vec<(String, Vec<i32>)>;

/// OffsetDelete's answer: one error code per requested partition, by topic.
pub type DeletedOffsets = Vec<(String, Vec<(i32, i16)>)>;

/// A request to one group's coordinator.
#[derive(Debug)]
pub enum GroupRequest {
    Join(JoinRequest),
    Sync {
        committer: Committer,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        assignments: Vec<(String, Bytes)>,
    },
    Heartbeat(Committer),
    /// Members leaving: (member id, group instance id).
    Leave(Vec<(String, Option<String>)>),
    Commit {
        committer: Committer,
        commits: Vec<OffsetCommit>,
        api_version: i16,
    },
    FetchOffsets {
        topics: Option<TopicPartitions>,
        fetcher: OffsetFetcher,
    },
    Describe,
    DeleteOffsets(TopicPartitions),
    Delete,
    /// ConsumerGroupHeartbeat (KIP-848), with the image its subscriptions are resolved against.
    ConsumerHeartbeat {
        heartbeat: Box<Heartbeat>,
        image: Arc<MetadataImage>,
    },
    ConsumerDescribe,
}

/// The coordinator's answer to a `GroupRequest`, one variant per request. Error codes are the
/// group protocol's own answers (the group state machine speaks Kafka's error language).
#[derive(Debug)]
pub enum GroupResponse {
    Joined(JoinResult),
    Synced(SyncResult),
    Heartbeat(i16),
    Left(Option<Vec<i16>>),
    Committed(Result<(), i16>),
    Offsets(Result<CommittedOffsets, i16>),
    Described(Result<GroupDescription, String>),
    OffsetsDeleted(Result<DeletedOffsets, i16>),
    Deleted(i16),
    ConsumerHeartbeat(Result<HeartbeatAnswer, GroupError>),
    ConsumerDescribed(Result<ConsumerGroupDescription, GroupError>),
}

impl GroupCoordinator {
    /// Serves a request for `group_id` on this shard.
    pub async fn serve(self: &Rc<Self>, group_id: &str, request: GroupRequest) -> GroupResponse {
        match request {
            GroupRequest::Join(join) => GroupResponse::Joined(self.join(group_id, join).await),
            GroupRequest::Sync {
                committer,
                protocol_type,
                protocol_name,
                assignments,
            } => GroupResponse::Synced(
                self.sync(
                    group_id,
                    committer,
                    protocol_type,
                    protocol_name,
                    assignments,
                )
                .await,
            ),
            GroupRequest::Heartbeat(member) => {
                GroupResponse::Heartbeat(self.heartbeat(group_id, member))
            }
            GroupRequest::Leave(members) => GroupResponse::Left(self.leave(group_id, &members)),
            GroupRequest::Commit {
                committer,
                commits,
                api_version,
            } => GroupResponse::Committed(
                self.commit(group_id, committer, commits, api_version).await,
            ),
            GroupRequest::FetchOffsets { topics, fetcher } => {
                GroupResponse::Offsets(self.fetch_offsets(group_id, topics, &fetcher))
            }
            GroupRequest::Describe => {
                self.check_deadlines(Some(group_id), Instant::now());
                GroupResponse::Described(self.describe(group_id))
            }
            GroupRequest::DeleteOffsets(topics) => {
                GroupResponse::OffsetsDeleted(self.delete_offsets(group_id, topics).await)
            }
            GroupRequest::Delete => GroupResponse::Deleted(self.delete(group_id).await),
            GroupRequest::ConsumerHeartbeat { heartbeat, image } => {
                GroupResponse::ConsumerHeartbeat(
                    self.consumer_heartbeat(group_id, *heartbeat, &image),
                )
            }
            GroupRequest::ConsumerDescribe => {
                self.check_deadlines(Some(group_id), Instant::now());
                GroupResponse::ConsumerDescribed(self.consumer_describe(group_id))
            }
        }
    }
}

/// Sends `request` to the coordinator of `group_id`; Err is COORDINATOR_NOT_AVAILABLE.
async fn call(
    shard: &Rc<Shard>,
    group_id: &str,
    request: GroupRequest,
) -> Result<GroupResponse, i16> {
    let target = shard_of(group_id, shard.shared.shard_count());
    let request = ShardRequest::Group {
        group_id: group_id.to_string(),
        request,
    };
    match shard.call(target, request).await {
        Ok(ShardResponse::Group(response)) => Ok(response),
        Ok(ShardResponse::NotReady) => Err(error_code::COORDINATOR_LOAD_IN_PROGRESS),
        Ok(other) => unreachable!("a group request is answered by the coordinator: {other:?}"),
        Err(gone) => {
            tracing::warn!(group = group_id, error = %gone, "group coordinator unavailable");
            Err(error_code::COORDINATOR_NOT_AVAILABLE)
        }
    }
}

/// Expands to a typed call: sends the request and takes the one response variant it is answered
/// with (`GroupCoordinator::serve` answers each request with its own variant).
macro_rules! typed_call {
    ($shard:expr, $group:expr, $request:expr, $variant:ident) => {
        match call($shard, $group, $request).await? {
            GroupResponse::$variant(answer) => Ok(answer),
            other => unreachable!("answered by {}, not {other:?}", stringify!($variant)),
        }
    };
}

pub async fn join(shard: &Rc<Shard>, group_id: &str, join: JoinRequest) -> Result<JoinResult, i16> {
    typed_call!(shard, group_id, GroupRequest::Join(join), Joined)
}

pub async fn sync(
    shard: &Rc<Shard>,
    group_id: &str,
    committer: Committer,
    protocol: (Option<String>, Option<String>),
    assignments: Vec<(String, Bytes)>,
) -> Result<SyncResult, i16> {
    let request = GroupRequest::Sync {
        committer,
        protocol_type: protocol.0,
        protocol_name: protocol.1,
        assignments,
    };
    typed_call!(shard, group_id, request, Synced)
}

pub async fn heartbeat(shard: &Rc<Shard>, group_id: &str, member: Committer) -> Result<i16, i16> {
    typed_call!(shard, group_id, GroupRequest::Heartbeat(member), Heartbeat)
}

pub async fn leave(
    shard: &Rc<Shard>,
    group_id: &str,
    members: Vec<(String, Option<String>)>,
) -> Result<Option<Vec<i16>>, i16> {
    typed_call!(shard, group_id, GroupRequest::Leave(members), Left)
}

pub async fn commit(
    shard: &Rc<Shard>,
    group_id: &str,
    committer: Committer,
    commits: Vec<OffsetCommit>,
    api_version: i16,
) -> Result<Result<(), i16>, i16> {
    let request = GroupRequest::Commit {
        committer,
        commits,
        api_version,
    };
    typed_call!(shard, group_id, request, Committed)
}

/// Ok(Err(code)): the group refused the fetcher (a consumer group's member with a stale epoch).
pub async fn fetch_offsets(
    shard: &Rc<Shard>,
    group_id: &str,
    topics: Option<TopicPartitions>,
    fetcher: OffsetFetcher,
) -> Result<Result<CommittedOffsets, i16>, i16> {
    let request = GroupRequest::FetchOffsets { topics, fetcher };
    typed_call!(shard, group_id, request, Offsets)
}

/// Ok(Err(message)): no classic group of that id (none at all, or a consumer group).
pub async fn describe(
    shard: &Rc<Shard>,
    group_id: &str,
) -> Result<Result<GroupDescription, String>, i16> {
    typed_call!(shard, group_id, GroupRequest::Describe, Described)
}

pub async fn delete_offsets(
    shard: &Rc<Shard>,
    group_id: &str,
    topics: TopicPartitions,
) -> Result<Result<DeletedOffsets, i16>, i16> {
    typed_call!(
        shard,
        group_id,
        GroupRequest::DeleteOffsets(topics),
        OffsetsDeleted
    )
}

pub async fn delete(shard: &Rc<Shard>, group_id: &str) -> Result<i16, i16> {
    typed_call!(shard, group_id, GroupRequest::Delete, Deleted)
}

pub async fn consumer_heartbeat(
    shard: &Rc<Shard>,
    group_id: &str,
    heartbeat: Heartbeat,
) -> Result<Result<HeartbeatAnswer, GroupError>, i16> {
    let request = GroupRequest::ConsumerHeartbeat {
        heartbeat: Box::new(heartbeat),
        image: shard.image(),
    };
    typed_call!(shard, group_id, request, ConsumerHeartbeat)
}

pub async fn consumer_describe(
    shard: &Rc<Shard>,
    group_id: &str,
) -> Result<Result<ConsumerGroupDescription, GroupError>, i16> {
    typed_call!(
        shard,
        group_id,
        GroupRequest::ConsumerDescribe,
        ConsumerDescribed
    )
}

/// The groups of every shard's coordinator; Err if a shard did not answer.
pub async fn list_all(shard: &Rc<Shard>) -> Result<Vec<GroupListing>, i16> {
    let mut groups = Vec::new();
    for target in 0..shard.shared.shard_count() {
        match shard.call(target, ShardRequest::ListGroups).await {
            Ok(ShardResponse::Groups(listed)) => groups.extend(listed),
            Ok(ShardResponse::NotReady) => return Err(error_code::COORDINATOR_LOAD_IN_PROGRESS),
            Ok(other) => unreachable!("ListGroups is answered by Groups, not {other:?}"),
            Err(_) => return Err(error_code::COORDINATOR_NOT_AVAILABLE),
        }
    }
    Ok(groups)
}
