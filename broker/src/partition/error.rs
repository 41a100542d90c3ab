//! What can go wrong with a partition request, with the partition it concerns. `errors.rs` maps
//! each kind to its Kafka error code; a log line prints the whole error.

use riffle_protocol::record_batch::BatchError;
use riffle_storage::StorageError;

use super::producer_state::SequenceError;

/// A failed partition request: which partition, and why.
#[derive(Debug, thiserror::Error)]
#[error("partition {topic}-{partition}: {kind}")]
pub struct PartitionError {
    pub topic: String,
    pub partition: i32,
    pub kind: PartitionErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionErrorKind {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// Another broker leads it, or none does (leader -1) while its leader is fenced.
    #[error("this broker does not lead it; the leader is {leader} at epoch {leader_epoch}")]
    NotLeader { leader: i32, leader_epoch: i32 },
    #[error("owned by shard {owner}, asked on shard {asked}")]
    NotOwner { owner: usize, asked: usize },
    #[error("its shard {shard} is not available")]
    ShardUnavailable { shard: usize },
    #[error("opening failed: {reason}")]
    OpenFailed { reason: String },
    #[error("its log is offline after a failure ({reason}); it reopens from what is durable in {retry_in_ms} ms")]
    LogOffline { reason: String, retry_in_ms: u64 },
    #[error("{operation} failed: {source}")]
    Storage {
        operation: &'static str,
        #[source]
        source: StorageError,
    },
    #[error("record batch at byte {position} of the request: {source}")]
    InvalidBatch {
        position: usize,
        #[source]
        source: BatchError,
    },
    #[error("batch of {size_bytes} bytes exceeds max.message.bytes {max_bytes}")]
    MessageTooLarge { size_bytes: usize, max_bytes: usize },
    #[error("corrupt produce data: {reason}")]
    CorruptRequest { reason: &'static str },
    #[error("producer {producer_id}: {source}")]
    Sequence {
        producer_id: i64,
        #[source]
        source: SequenceError,
    },
    #[error(
        "producer {producer_id}: the batch at sequence {base_sequence} is still being written"
    )]
    DuplicateInFlight {
        producer_id: i64,
        base_sequence: i32,
    },
    #[error("offset {offset} is outside [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        high_watermark: i64,
    },
    #[error("leader epoch {asked} is newer than the current epoch {current}")]
    UnknownLeaderEpoch { asked: i32, current: i32 },
    #[error("invalid timestamp {timestamp_ms} for a ListOffsets lookup")]
    InvalidTimestamp { timestamp_ms: i64 },
    #[error("timestamp {timestamp_ms} is out of range: it should be within [{earliest_ms}, {latest_ms}] (message.timestamp.before/after.max.ms)")]
    TimestampOutOfRange {
        timestamp_ms: i64,
        earliest_ms: i64,
        latest_ms: i64,
    },
    #[error("{in_sync} in-sync replica(s), fewer than min.insync.replicas {required}")]
    NotEnoughReplicas { required: i32, in_sync: i32 },
    /// Kafka's words, which clients show; `record_indexes` go back as the response's
    /// `RecordErrors` (KIP-467), numbered from 0 across the partition's batches.
    #[error(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
    )]
    KeylessRecordsOnCompactedTopic {
        topic: String,
        partition: i32,
        record_indexes: Vec<i32>,
    },
}

impl PartitionError {
    /// The same error for another request that waited on the one that met it (the source of a
    /// storage error stays with the first; the others get its text).
    pub fn for_waiter(&self) -> PartitionError {
        let kind = match &self.kind {
            PartitionErrorKind::UnknownTopicOrPartition => {
                PartitionErrorKind::UnknownTopicOrPartition
            }
            PartitionErrorKind::NotOwner { owner, asked } => PartitionErrorKind::NotOwner {
                owner: *owner,
                asked: *asked,
            },
            other => PartitionErrorKind::OpenFailed {
                reason: other.to_string(),
            },
        };
        PartitionError::new(&self.topic, self.partition, kind)
    }

    /// The leader id and epoch to name to the client when this broker does not lead the
    /// partition (KIP-951's current leader).
    pub fn current_leader(&self) -> Option<(i32, i32)> {
        match self.kind {
            PartitionErrorKind::NotLeader {
                leader,
                leader_epoch,
            } => Some((leader, leader_epoch)),
            _ => None,
        }
    }

    pub fn new(topic: &str, partition: i32, kind: PartitionErrorKind) -> Self {
        PartitionError {
            topic: topic.to_string(),
            partition,
            kind,
        }
    }
}
