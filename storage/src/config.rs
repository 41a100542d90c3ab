//! Per-partition log settings, named after Kafka's topic configs.

/// Log settings. Defaults follow Kafka's where Kafka has the setting. Durability is on request:
/// `PartitionLog::flush` waits for an fdatasync of everything appended before it,
/// group-committed with every concurrent flush.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// segment.bytes: roll when a segment would grow past this. Default 1 GiB.
    pub segment_bytes: u64,
    /// segment.ms: roll a segment older than this. Default 7 days.
    pub segment_ms: Option<u64>,
    /// retention.bytes: delete oldest segments beyond this total. Default None (-1).
    pub retention_bytes: Option<u64>,
    /// retention.ms: delete segments whose newest timestamp is older. Default 7 days.
    pub retention_ms: Option<u64>,
    /// index.interval.bytes: bytes between sparse index entries. Default 4096.
    pub index_interval_bytes: u32,
    /// Bytes of recent batches kept in memory per partition (soft: never evicts data not yet
    /// durable). The logs of a shard are also capped together: `set_shard_tail_cache_bytes`.
    /// Default 4 MiB.
    pub tail_cache_bytes: usize,
    /// Most bytes of zeros written ahead of the data in the active segment (capped by
    /// segment_bytes). A background task fallocates and writes zeros ahead of the log end
    /// (between half and all of the segment's size so far, at least 1 MiB, at most this),
    /// so appends overwrite written blocks: io_uring issues those writes inline, and their
    /// fdatasync carries no extent conversion. Sealing or closing a segment trims the
    /// zeros; recovery trims them after a crash. Default 16 MiB.
    pub preallocate_bytes: u64,
    /// Chunk writes (`CHUNK_BYTES`, 256 KiB) in flight per log, behind the appends. Default 4;
    /// `riffle-tune iotune` measures the depth past which the disk's sequential bandwidth
    /// stops growing (`write_behind_depth` in io-properties.toml).
    pub write_behind_depth: usize,
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * DAY_MS),
            retention_bytes: None,
            retention_ms: Some(7 * DAY_MS),
            index_interval_bytes: 4096,
            tail_cache_bytes: 4 << 20,
            preallocate_bytes: 16 << 20,
            write_behind_depth: 4,
        }
    }
}
