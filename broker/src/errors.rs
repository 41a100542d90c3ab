//! The one place where internal errors become Kafka error codes: one function per layer's error.

use riffle_protocol::error_code;
use riffle_protocol::record_batch::BatchError;
use riffle_storage::StorageError;

use crate::metadata::ControllerError;
use crate::partition::error::{PartitionError, PartitionErrorKind};
use crate::partition::producer_state::SequenceError;

pub fn partition_error_code(e: &PartitionError) -> i16 {
    match &e.kind {
        PartitionErrorKind::UnknownTopicOrPartition => error_code::UNKNOWN_TOPIC_OR_PARTITION,
        PartitionErrorKind::NotLeader { .. }
        | PartitionErrorKind::NotOwner { .. }
        | PartitionErrorKind::ShardUnavailable { .. } => error_code::NOT_LEADER_OR_FOLLOWER,
        PartitionErrorKind::Storage { source, .. } => storage_error_code(source),
        PartitionErrorKind::OpenFailed { .. } | PartitionErrorKind::LogOffline { .. } => {
            error_code::KAFKA_STORAGE_ERROR
        }
        PartitionErrorKind::InvalidBatch { source, .. } => batch_error_code(source),
        PartitionErrorKind::MessageTooLarge { .. } => error_code::MESSAGE_TOO_LARGE,
        PartitionErrorKind::CorruptRequest { .. } => error_code::CORRUPT_MESSAGE,
        PartitionErrorKind::Sequence { source, .. } => sequence_error_code(source),
        // Retriable: the client retries the same sequence, answered once the original is written.
        PartitionErrorKind::DuplicateInFlight { .. } => error_code::REQUEST_TIMED_OUT,
        PartitionErrorKind::OffsetOutOfRange { .. } => error_code::OFFSET_OUT_OF_RANGE,
        PartitionErrorKind::UnknownLeaderEpoch { .. } => error_code::UNKNOWN_LEADER_EPOCH,
        PartitionErrorKind::InvalidTimestamp { .. } => error_code::INVALID_REQUEST,
        PartitionErrorKind::TimestampOutOfRange { .. } => error_code::INVALID_TIMESTAMP,
        PartitionErrorKind::NotEnoughReplicas { .. } => error_code::NOT_ENOUGH_REPLICAS,
        PartitionErrorKind::KeylessRecordsOnCompactedTopic { .. } => error_code::INVALID_RECORD,
    }
}

fn sequence_error_code(e: &SequenceError) -> i16 {
    match e {
        SequenceError::MissingSequence => error_code::INVALID_RECORD,
        SequenceError::FencedEpoch { .. } => error_code::INVALID_PRODUCER_EPOCH,
        SequenceError::OutOfOrder { .. } => error_code::OUT_OF_ORDER_SEQUENCE_NUMBER,
    }
}

/// A controller error as a response carries it: the Kafka code and the error's own message.
pub fn controller_answer(e: ControllerError) -> (i16, String) {
    (controller_error_code(&e), e.to_string())
}

pub fn controller_error_code(e: &ControllerError) -> i16 {
    match e {
        ControllerError::TopicExists { .. } => error_code::TOPIC_ALREADY_EXISTS,
        ControllerError::UnknownTopic { .. } => error_code::UNKNOWN_TOPIC_OR_PARTITION,
        ControllerError::UnknownTopicId { .. } => error_code::UNKNOWN_TOPIC_ID,
        ControllerError::InvalidTopicName { .. } => error_code::INVALID_TOPIC_EXCEPTION,
        ControllerError::InvalidPartitions { .. } => error_code::INVALID_PARTITIONS,
        ControllerError::InvalidReplicationFactor { .. } => error_code::INVALID_REPLICATION_FACTOR,
        ControllerError::InvalidConfig { .. } => error_code::INVALID_CONFIG,
        ControllerError::PolicyViolation { .. } => error_code::POLICY_VIOLATION,
        ControllerError::NotDynamic { .. } => error_code::INVALID_REQUEST,
        ControllerError::Persist { .. } => error_code::KAFKA_STORAGE_ERROR,
        ControllerError::Unavailable { .. } => error_code::BROKER_NOT_AVAILABLE,
        ControllerError::QuorumUnavailable { .. } => error_code::REQUEST_TIMED_OUT,
    }
}

pub fn storage_error_code(e: &StorageError) -> i16 {
    match e {
        StorageError::OffsetOutOfRange { .. } => error_code::OFFSET_OUT_OF_RANGE,
        StorageError::InvalidBatch { .. } => error_code::CORRUPT_MESSAGE,
        StorageError::Closed => error_code::NOT_LEADER_OR_FOLLOWER,
        _ => error_code::KAFKA_STORAGE_ERROR,
    }
}

pub fn batch_error_code(e: &BatchError) -> i16 {
    match e {
        BatchError::Corrupt(_) => error_code::CORRUPT_MESSAGE,
        BatchError::InvalidRecord(_) | BatchError::DecompressedTooLarge { .. } => {
            error_code::INVALID_RECORD
        }
        BatchError::UnsupportedCompression(_) | BatchError::Compressed(_) => {
            error_code::UNSUPPORTED_COMPRESSION_TYPE
        }
        // Produce v3+ carries only magic 2; anything else is not a batch we can store.
        BatchError::UnsupportedMagic(_) => error_code::UNSUPPORTED_FOR_MESSAGE_FORMAT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_reads_are_not_storage_failures() {
        let e = StorageError::OffsetOutOfRange {
            offset: 5,
            log_start_offset: 10,
            log_end_offset: 20,
        };
        assert_eq!(storage_error_code(&e), error_code::OFFSET_OUT_OF_RANGE);
        let e = StorageError::CorruptSegment {
            path: "x".into(),
            position: 0,
            reason: "crc".into(),
        };
        assert_eq!(storage_error_code(&e), error_code::KAFKA_STORAGE_ERROR);
    }
}
