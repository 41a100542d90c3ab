//! What a handler may ask of a partition, wherever its owner shard is: the typed requests, the
//! owner's side that serves them, and the calls handlers use. Each call is routed to the owner
//! shard named by the metadata image and answered with its own result type.

use std::rc::Rc;
use std::time::Duration;

use super::error::{PartitionError, PartitionErrorKind};
use super::{
    EpochEnd, ListedOffset, Partition, PartitionDescription, PartitionKey, PartitionRead,
    ProduceRecords, Produced,
};
use crate::metadata::image::{PartitionMeta, TopicMeta};
use crate::shard::{Shard, ShardRequest, ShardResponse};

/// A request to one partition, served on its owner shard.
#[derive(Debug)]
pub enum PartitionRequest {
    Produce {
        records: ProduceRecords,
        acks: i16,
    },
    Read {
        offset: i64,
        max_bytes: usize,
    },
    /// Long poll: answered once the high watermark passes `offset`, or after `timeout`.
    WaitForData {
        offset: i64,
        timeout: Duration,
    },
    ListOffset {
        timestamp_ms: i64,
    },
    DeleteRecordsBefore {
        offset: i64,
    },
    EndOffsetForEpoch {
        current_leader_epoch: i32,
        leader_epoch: i32,
    },
    /// Size, offsets and producers (DescribeLogDirs, DescribeProducers).
    Describe,
}

/// The answer to a `PartitionRequest`, one variant per request.
#[derive(Debug)]
pub enum PartitionResponse {
    Produced(Produced),
    Read(PartitionRead),
    DataArrived,
    Offset(ListedOffset),
    LogStart(i64),
    EpochEnd(EpochEnd),
    Described(PartitionDescription),
}

impl Partition {
    /// Serves a request on the owner shard.
    pub async fn serve(
        self: Rc<Self>,
        request: PartitionRequest,
    ) -> Result<PartitionResponse, PartitionError> {
        Ok(match request {
            PartitionRequest::Produce { records, acks } => {
                PartitionResponse::Produced(self.produce(records, acks).await?)
            }
            PartitionRequest::Read { offset, max_bytes } => {
                PartitionResponse::Read(self.read(offset, max_bytes).await?)
            }
            PartitionRequest::WaitForData { offset, timeout } => {
                self.wait_for_data(offset, timeout).await;
                PartitionResponse::DataArrived
            }
            PartitionRequest::ListOffset { timestamp_ms } => {
                PartitionResponse::Offset(self.list_offset(timestamp_ms).await?)
            }
            PartitionRequest::DeleteRecordsBefore { offset } => {
                PartitionResponse::LogStart(self.delete_records_before(offset).await?)
            }
            PartitionRequest::EndOffsetForEpoch {
                current_leader_epoch,
                leader_epoch,
            } => PartitionResponse::EpochEnd(
                self.end_offset_for_epoch(current_leader_epoch, leader_epoch)?,
            ),
            PartitionRequest::Describe => PartitionResponse::Described(self.describe()),
        })
    }
}

/// Sends `request` to partition `index` of `topic` on its owner shard.
async fn call(
    shard: &Rc<Shard>,
    topic: &TopicMeta,
    index: i32,
    request: PartitionRequest,
) -> Result<PartitionResponse, PartitionError> {
    let error = |kind| PartitionError::new(&topic.name, index, kind);
    let meta = usize::try_from(index)
        .ok()
        .and_then(|i| topic.partitions.get(i))
        .ok_or_else(|| error(PartitionErrorKind::UnknownTopicOrPartition))?;
    if let Some(refused) = not_served_here(shard, meta, &request) {
        return Err(error(refused));
    }
    let owner = meta.shard as usize;
    let key = PartitionKey {
        topic_id: topic.id,
        partition: index,
    };
    match shard
        .call(owner, ShardRequest::Partition { key, request })
        .await
    {
        Ok(ShardResponse::Partition(result)) => result,
        Ok(other) => unreachable!("a partition request is answered by the partition: {other:?}"),
        Err(gone) => Err(error(PartitionErrorKind::ShardUnavailable {
            shard: gone.0,
        })),
    }
}

/// With a controller quorum a node serves a partition only while it leads it (and describes it
/// only while it holds a replica); the refusal names the leader the image knows (KIP-951). A
/// single node leads everything it has, whatever node id its data dir was written with.
fn not_served_here(
    shard: &Shard,
    meta: &PartitionMeta,
    request: &PartitionRequest,
) -> Option<PartitionErrorKind> {
    let config = shard.config();
    // Alone (no quorum), this node serves everything it has.
    config.controller_quorum.as_ref()?;
    let node_id = config.node_id;
    let served = match request {
        PartitionRequest::Describe => meta.replicas.contains(&node_id),
        _ => meta.leader == node_id,
    };
    (!served).then_some(PartitionErrorKind::NotLeader {
        leader: meta.leader,
        leader_epoch: meta.leader_epoch,
    })
}

/// Expands to a typed call: sends the request and takes the one response variant it is answered
/// with (`Partition::serve` answers each request with its own variant).
macro_rules! typed_call {
    ($shard:expr, $topic:expr, $index:expr, $request:expr, $variant:ident) => {
        match call($shard, $topic, $index, $request).await? {
            PartitionResponse::$variant(answer) => Ok(answer),
            other => unreachable!(
                "{} is answered by {}, not {other:?}",
                stringify!($request),
                stringify!($variant)
            ),
        }
    };
}

pub async fn produce(
    shard: &Rc<Shard>,
    topic: &TopicMeta,
    index: i32,
    records: ProduceRecords,
    acks: i16,
) -> Result<Produced, PartitionError> {
    let request = PartitionRequest::Produce { records, acks };
    typed_call!(shard, topic, index, request, Produced)
}

pub async fn read(
    shard: &Rc<Shard>,
    topic: &TopicMeta,
    index: i32,
    offset: i64,
    max_bytes: usize,
) -> Result<PartitionRead, PartitionError> {
    let request = PartitionRequest::Read { offset, max_bytes };
    typed_call!(shard, topic, index, request, Read)
}

pub async fn wait_for_data(
    shard: &Rc<Shard>,
    topic: &TopicMeta,
    index: i32,
    offset: i64,
    timeout: Duration,
) -> Result<(), PartitionError> {
    let request = PartitionRequest::WaitForData { offset, timeout };
    match call(shard, topic, index, request).await? {
        PartitionResponse::DataArrived => Ok(()),
        other => unreachable!("WaitForData is answered by DataArrived, not {other:?}"),
    }
}

pub async fn list_offset(
    shard: &Rc<Shard>,
    topic: &TopicMeta,
    index: i32,
    timestamp_ms: i64,
) -> Result<ListedOffset, PartitionError> {
    let request = PartitionRequest::ListOffset { timestamp_ms };
    typed_call!(shard, topic, index, request, Offset)
}

pub async fn delete_records_before(
    shard: &Rc<Shard>,
    topic: &TopicMeta,
    index: i32,
    offset: i64,
) -> Result<i64, PartitionError> {
    let request = PartitionRequest::DeleteRecordsBefore { offset };
    typed_call!(shard, topic, index, request, LogStart)
}

pub async fn end_offset_for_epoch(
    shard: &Rc<Shard>,
    topic: &TopicMeta,
    index: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> Result<EpochEnd, PartitionError> {
    let request = PartitionRequest::EndOffsetForEpoch {
        current_leader_epoch,
        leader_epoch,
    };
    typed_call!(shard, topic, index, request, EpochEnd)
}

pub async fn describe(
    shard: &Rc<Shard>,
    topic: &TopicMeta,
    index: i32,
) -> Result<PartitionDescription, PartitionError> {
    typed_call!(shard, topic, index, PartitionRequest::Describe, Described)
}
