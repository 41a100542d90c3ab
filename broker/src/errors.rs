//! The one place where internal errors become Kafka error codes.

use riffle_protocol::error_code;
use riffle_protocol::record_batch::BatchError;
use riffle_storage::StorageError;

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
