//! The tail cache: recent batches kept as the producer's bytes (no copy), with the
//! assigned base offset in a separate 16-byte prefix. Bounded by bytes per log, and the
//! caches of all logs of a shard share one cap (`ShardCache`); a batch is only evicted once
//! it is durable, so everything not yet on disk is always readable here.

use crate::state::Shared;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

/// `set_shard_tail_cache_bytes` when never called.
pub const SHARD_TAIL_CACHE_BYTES_DEFAULT: usize = 64 << 20;
/// Memory a cached batch holds besides its bytes: its `CachedBatch`, the prefix's own
/// allocation and its entry in the shard's eviction order. Counted, so that a cache of tiny
/// batches is bounded by what it really holds.
const BATCH_OVERHEAD_BYTES: usize = 128;
/// Eviction entries whose batch has already left its cache (evicted by its own log, truncated,
/// deleted) kept beyond twice the live ones before they are swept out.
const STALE_ENTRIES_MAX: usize = 1024;

thread_local! {
    static SHARD_CACHE: Rc<ShardCache> = Rc::new(ShardCache::new(SHARD_TAIL_CACHE_BYTES_DEFAULT));
}

/// Caps the memory of the tail caches of every log on this thread (a shard) together: past it,
/// the shard's oldest durable batches are evicted first, whichever log holds them.
pub fn set_shard_tail_cache_bytes(cap_bytes: usize) {
    SHARD_CACHE.with(|c| c.cap_bytes.set(cap_bytes));
}

/// Bytes the tail caches of this thread's logs hold now (as counted against the cap).
pub fn shard_tail_cache_bytes() -> usize {
    SHARD_CACHE.with(|c| c.size_bytes.get())
}

pub(crate) fn shard_cache() -> Rc<ShardCache> {
    SHARD_CACHE.with(Rc::clone)
}

pub(crate) struct CachedBatch {
    pub base_offset: i64,
    pub next_offset: i64,
    pub max_timestamp: i64,
    /// Patched first 16 bytes (assigned base offset, length, leader epoch).
    pub prefix: Bytes,
    /// The batch from byte 16 on, as received.
    pub body: Bytes,
}

impl CachedBatch {
    pub fn size(&self) -> usize {
        self.prefix.len() + self.body.len()
    }

    /// What the batch costs against the caps: its bytes and its bookkeeping.
    fn charge(&self) -> usize {
        self.size() + BATCH_OVERHEAD_BYTES
    }
}

/// What `TailCache::evict_front` did with the batch the shard named.
#[derive(Debug, PartialEq, Eq)]
enum FrontEviction {
    Evicted,
    /// The batch is no longer the log's oldest cached one: it left already.
    Stale,
    /// The batch is not durable yet: it stays, and so does everything after it.
    NotDurable,
}

/// One log's cached batches, oldest first. Shard-local, lives as long as its log.
pub(crate) struct TailCache {
    batches: VecDeque<CachedBatch>,
    size_bytes: usize,
    shard: Rc<ShardCache>,
}

impl Default for TailCache {
    fn default() -> Self {
        TailCache {
            batches: VecDeque::new(),
            size_bytes: 0,
            shard: shard_cache(),
        }
    }
}

impl Drop for TailCache {
    fn drop(&mut self) {
        self.clear();
    }
}

impl TailCache {
    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    /// Adds the log's newest batch; the caller then records it with `ShardCache::record`.
    pub fn push(&mut self, b: CachedBatch) {
        debug_assert!(self
            .batches
            .back()
            .is_none_or(|last| last.next_offset == b.base_offset));
        self.size_bytes += b.charge();
        self.shard.added(b.charge());
        self.batches.push_back(b);
    }

    fn pop_front(&mut self) {
        if let Some(b) = self.batches.pop_front() {
            self.size_bytes -= b.charge();
            self.shard.removed(b.charge());
        }
    }

    /// Evicts the oldest durable batches while the cache is over `limit_bytes`.
    pub fn evict(&mut self, limit_bytes: usize, durable_offset: i64) {
        while self.size_bytes > limit_bytes {
            match self.batches.front() {
                Some(b) if b.next_offset <= durable_offset => self.pop_front(),
                _ => break,
            }
        }
    }

    /// Evicts the oldest batch if it is the one ending at `next_offset` and durable.
    fn evict_front(&mut self, next_offset: i64, durable_offset: i64) -> FrontEviction {
        match self.batches.front() {
            Some(b) if b.next_offset == next_offset => {
                if b.next_offset > durable_offset {
                    return FrontEviction::NotDurable;
                }
                self.pop_front();
                FrontEviction::Evicted
            }
            _ => FrontEviction::Stale,
        }
    }

    /// Whether the batch ending at `next_offset` is still cached.
    fn holds(&self, next_offset: i64) -> bool {
        let i = self
            .batches
            .partition_point(|b| b.next_offset < next_offset);
        self.batches
            .get(i)
            .is_some_and(|b| b.next_offset == next_offset)
    }

    pub fn first_offset(&self) -> Option<i64> {
        self.batches.front().map(|b| b.base_offset)
    }

    /// Appends chunks of whole batches from the one containing `from_offset`, up to
    /// `max_bytes` (at least one batch). Returns the bytes added.
    pub fn read(&self, from_offset: i64, max_bytes: usize, out: &mut Vec<Bytes>) -> usize {
        let start = self
            .batches
            .partition_point(|b| b.next_offset <= from_offset);
        let mut total = 0;
        for b in self.batches.iter().skip(start) {
            if total > 0 && total + b.size() > max_bytes {
                break;
            }
            out.push(b.prefix.clone());
            out.push(b.body.clone());
            total += b.size();
            if total >= max_bytes {
                break;
            }
        }
        total
    }

    /// Drops batches at or after `end_offset` (the new log end, a batch boundary).
    pub fn truncate(&mut self, end_offset: i64) {
        while let Some(b) = self.batches.back() {
            if b.base_offset < end_offset {
                break;
            }
            let charge = b.charge();
            self.size_bytes -= charge;
            self.shard.removed(charge);
            self.batches.pop_back();
        }
    }

    /// First batch at or after `start_offset` with max timestamp >= `timestamp_ms`.
    pub fn find_timestamp(&self, timestamp_ms: i64, start_offset: i64) -> Option<(i64, i64)> {
        self.batches
            .iter()
            .find(|b| b.next_offset > start_offset && b.max_timestamp >= timestamp_ms)
            .map(|b| (b.base_offset.max(start_offset), b.max_timestamp))
    }

    pub fn clear(&mut self) {
        self.shard.removed_many(self.size_bytes, self.batches.len());
        self.batches.clear();
        self.size_bytes = 0;
    }
}

/// A cached batch in the shard's eviction order: its log and where the batch ends.
struct Entry {
    log: Weak<Shared>,
    next_offset: i64,
}

/// The tail caches of one shard's logs together: their size against one cap, and their
/// batches in append order across logs, so the shard evicts its oldest first. Shard-local
/// (a thread-local), lives as long as the shard's thread.
pub(crate) struct ShardCache {
    cap_bytes: Cell<usize>,
    size_bytes: Cell<usize>,
    /// Batches held by the logs' caches now.
    batches: Cell<usize>,
    /// Oldest append first. An entry whose batch already left its cache is skipped when it
    /// comes first, and swept out once there are too many of them.
    order: RefCell<VecDeque<Entry>>,
}

impl ShardCache {
    fn new(cap_bytes: usize) -> ShardCache {
        ShardCache {
            cap_bytes: Cell::new(cap_bytes),
            size_bytes: Cell::new(0),
            batches: Cell::new(0),
            order: RefCell::new(VecDeque::new()),
        }
    }

    fn added(&self, charge: usize) {
        self.size_bytes.set(self.size_bytes.get() + charge);
        self.batches.set(self.batches.get() + 1);
    }

    fn removed(&self, charge: usize) {
        self.removed_many(charge, 1);
    }

    fn removed_many(&self, charge: usize, batches: usize) {
        debug_assert!(self.size_bytes.get() >= charge && self.batches.get() >= batches);
        self.size_bytes
            .set(self.size_bytes.get().saturating_sub(charge));
        self.batches.set(self.batches.get().saturating_sub(batches));
    }

    /// Records the batch just pushed to `log`'s cache (ending at `next_offset`), then evicts.
    /// Called with no borrow of any log's state held.
    pub fn record(&self, log: &Rc<Shared>, next_offset: i64) {
        self.order.borrow_mut().push_back(Entry {
            log: Rc::downgrade(log),
            next_offset,
        });
        self.evict();
    }

    /// Evicts the shard's oldest durable batches while over the cap. Stops at a batch not yet
    /// durable (the cap is soft for those: they must stay readable); the next durability
    /// publication calls this again. Then sweeps the entries of batches that left by themselves
    /// once they are too many. Called with no borrow of any log's state held.
    pub fn evict(&self) {
        self.evict_to_cap();
        let live = self.batches.get();
        if self.order.borrow().len() > 2 * live + STALE_ENTRIES_MAX {
            self.sweep();
        }
    }

    fn evict_to_cap(&self) {
        while self.size_bytes.get() > self.cap_bytes.get() {
            let Some((log, next_offset)) = self
                .order
                .borrow()
                .front()
                .map(|e| (e.log.clone(), e.next_offset))
            else {
                return;
            };
            let outcome = match log.upgrade() {
                None => FrontEviction::Stale,
                Some(shared) => match shared.state.try_borrow_mut() {
                    Ok(mut s) => {
                        let durable = s.offsets.durable();
                        s.cache.evict_front(next_offset, durable)
                    }
                    // Only a caller breaking the rule above could get here: try again later.
                    Err(_) => FrontEviction::NotDurable,
                },
            };
            if outcome == FrontEviction::NotDurable {
                return;
            }
            self.order.borrow_mut().pop_front();
        }
    }

    /// Drops the entries whose batch has left its cache.
    fn sweep(&self) {
        let mut order = self.order.borrow_mut();
        order.retain(|e| {
            e.log.upgrade().is_some_and(|shared| {
                shared
                    .state
                    .try_borrow()
                    .map_or(true, |s| s.cache.holds(e.next_offset))
            })
        });
    }

    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.order.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::test_batch::make;
    use crate::test_util::{append_and_flush, run};
    use crate::{LogConfig, PartitionLog};

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 20,
            tail_cache_bytes: 1 << 20,
            preallocate_bytes: 64 << 10,
            ..LogConfig::default()
        }
    }

    fn batch(payload_len: usize, seed: u8) -> Bytes {
        let payload: Vec<u8> = (0..payload_len).map(|i| (i as u8) ^ seed).collect();
        Bytes::from(make(0, 1, 1_000, &payload))
    }

    fn cached(log: &PartitionLog) -> (Option<i64>, usize) {
        let s = log.shared.state.borrow();
        (s.cache.first_offset(), s.cache.size_bytes)
    }

    #[test]
    fn the_shard_cap_evicts_the_oldest_durable_batches_of_any_log() {
        run(|dir| async move {
            set_shard_tail_cache_bytes(16 << 10);
            let a = PartitionLog::open(dir.join("a-0"), config()).await.unwrap();
            let b = PartitionLog::open(dir.join("b-0"), config()).await.unwrap();
            let mut sent_a = Vec::new();
            for i in 0..20u8 {
                let body = batch(1000, i);
                append_and_flush(&a, body.clone()).await.unwrap();
                sent_a.push(body);
                assert!(
                    shard_tail_cache_bytes() <= 16 << 10,
                    "over the cap after {i}"
                );
            }
            // Each log's own cap (1 MiB) is far away: only the shared cap evicted.
            assert!(cached(&a).0 > Some(0));
            for i in 0..20u8 {
                append_and_flush(&b, batch(1000, i)).await.unwrap();
            }
            // A's batches are the oldest: they went first, B's newest stay.
            assert_eq!(cached(&a), (None, 0));
            assert_eq!(cached(&b).1, shard_tail_cache_bytes());
            assert!(shard_tail_cache_bytes() <= 16 << 10);
            // What was evicted is read from disk, unchanged.
            for (offset, body) in sent_a.iter().enumerate() {
                let r = a.read(offset as i64, 1).await.unwrap();
                let bytes: Vec<u8> = r.chunks.iter().flat_map(|c| c.iter().copied()).collect();
                // The first 16 bytes are the stored prefix (assigned offset, leader epoch).
                assert_eq!(bytes[..8], (offset as i64).to_be_bytes());
                assert_eq!(bytes[16..], body[16..], "batch {offset}");
            }
            a.close().await.unwrap();
            b.close().await.unwrap();
            drop((a, b));
            assert_eq!(
                shard_tail_cache_bytes(),
                0,
                "a closed log's cache is given back"
            );
        });
    }

    #[test]
    fn batches_not_yet_durable_stay_cached_past_the_shard_cap_until_flushed() {
        run(|dir| async move {
            set_shard_tail_cache_bytes(8 << 10);
            let log = PartitionLog::open(dir.join("t-0"), config()).await.unwrap();
            for i in 0..40u8 {
                log.append(batch(1000, i)).await.unwrap();
            }
            // Nothing asked for a flush: none is durable, so all stay readable from memory.
            assert_eq!(log.durable_offset(), 0);
            assert_eq!(cached(&log).0, Some(0));
            assert!(shard_tail_cache_bytes() > 8 << 10);
            log.flush().await.unwrap();
            assert!(shard_tail_cache_bytes() <= 8 << 10);
            assert!(cached(&log).0 > Some(0));
            log.close().await.unwrap();
        });
    }

    #[test]
    fn entries_of_batches_their_own_log_evicted_are_swept() {
        run(|dir| async move {
            set_shard_tail_cache_bytes(usize::MAX);
            let small = LogConfig {
                tail_cache_bytes: 4 << 10,
                ..config()
            };
            let log = PartitionLog::open(dir.join("t-0"), small).await.unwrap();
            let shard = shard_cache();
            for round in 0..4u8 {
                for i in 0..1000u16 {
                    log.append(batch(50, i as u8 ^ round)).await.unwrap();
                }
                log.flush().await.unwrap();
            }
            let live = shard.batches.get();
            assert!(cached(&log).1 <= 4 << 10);
            assert!(
                shard.entries() <= 2 * live + STALE_ENTRIES_MAX + 1,
                "{} entries for {live} cached batches",
                shard.entries()
            );
            log.close().await.unwrap();
        });
    }
}
