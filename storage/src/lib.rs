//! Riffle's partition log: RecordBatch v2 segments on glommio `DmaFile` (O_DIRECT,
//! io_uring), sparse offset/time indexes, a tail cache, group-committed fdatasync,
//! CRC-checked recovery, roll and retention. Independent of riffle-protocol.

mod batch;
mod cache;
pub mod clock;
pub mod commit_log;
mod config;
mod descriptors;
mod device_flush;
mod error;
mod event;
mod failpoints;
mod index;
mod log;
mod observer;
mod read;
mod recovery;
mod retention;
mod segment;
mod spare;
mod state;
mod stream_copy;
mod truncate;
mod writer;

#[cfg(test)]
mod descriptor_tests;
#[cfg(all(test, feature = "failpoints"))]
mod fault_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod runtime_tests;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;

pub use cache::{
    set_shard_tail_cache_bytes, shard_tail_cache_bytes, ReceiveBuffer,
    SHARD_TAIL_CACHE_BYTES_DEFAULT,
};
pub use config::LogConfig;
pub use descriptors::{
    open_segment_files, set_max_open_segment_files, MAX_OPEN_SEGMENT_FILES_DEFAULT,
};
pub use error::StorageError;

/// Cache flushes this shard has started on behalf of several logs at once (one per round when
/// every log's writes were pure overwrites: see `PartitionLog::flush`).
pub fn shard_device_flushes() -> u64 {
    device_flush::DeviceFlush::shard_count()
}
/// New segments this shard's logs made by reusing one that retention deleted, with no zeros
/// written ahead of their data (`spare`).
pub fn shard_recycled_segments() -> u64 {
    spare::shard_recycled()
}
pub use log::{AppendInfo, PartitionLog};
pub use observer::LogObserver;
pub use read::ReadResult;
