//! What a log reports as it works, for whoever keeps metrics (the broker's per-shard counters).
//! Called on the log's shard, so an implementation may keep plain `Cell`s.

use std::time::Duration;

/// Receives a log's events; set with `PartitionLog::set_observer`.
pub trait LogObserver {
    /// One fdatasync of a segment file finished (successfully or not) after `elapsed`.
    fn fdatasync_completed(&self, elapsed: Duration);
    /// A read was served from the tail cache (`true`) or from disk (`false`).
    fn read_served(&self, from_tail_cache: bool);
}
