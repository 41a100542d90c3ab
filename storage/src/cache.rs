//! The tail cache: recent batches kept as the producer's bytes (no copy), with the
//! assigned base offset in a separate 16-byte prefix. Bounded by bytes per log, and the
//! caches of all logs of a shard share one cap (`ShardCache`); a batch is only evicted once
//! it is durable, so everything not yet on disk is always readable here.
//!
//! A batch may be a slice of a larger receive buffer (`ReceiveBuffer`): the slice keeps the
//! whole buffer alive, so the shard's cap charges the buffer, once, at its capacity, for as long
//! as any cached batch holds a slice of it.

use crate::state::Shared;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::sync::Arc;

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

/// The allocation a batch was received into, when the batch is a slice of it (a connection's
/// read buffer holds several requests). Every slice keeps the whole allocation alive, so the
/// shard's cap counts the allocation, not the slices. Clones name the same allocation; it is
/// `Send`, so a batch forwarded to another shard names it too (each shard that caches a slice
/// charges it in full: an over-count, never an under-count).
#[derive(Clone, Debug)]
pub struct ReceiveBuffer(Arc<usize>);

impl ReceiveBuffer {
    /// One per allocation, made when the allocation is: `capacity` is what it holds in memory.
    pub fn new(capacity: usize) -> ReceiveBuffer {
        ReceiveBuffer(Arc::new(capacity))
    }

    pub fn capacity(&self) -> usize {
        *self.0
    }

    /// Stable while any clone lives, so it names the allocation in `ShardCache::buffers`.
    fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
}

pub(crate) struct CachedBatch {
    pub base_offset: i64,
    pub next_offset: i64,
    pub max_timestamp: i64,
    /// Patched first 16 bytes (assigned base offset, length, leader epoch).
    pub prefix: Bytes,
    /// The batch from byte 16 on, as received.
    pub body: Bytes,
    /// The allocation `body` is a slice of, when it does not own one of its own size.
    pub buffer: Option<ReceiveBuffer>,
}

impl CachedBatch {
    pub fn size(&self) -> usize {
        self.prefix.len() + self.body.len()
    }

    /// What the batch costs against its log's cap: its bytes and its bookkeeping.
    fn charge(&self) -> usize {
        self.size() + BATCH_OVERHEAD_BYTES
    }

    /// What it costs against the shard's cap besides its receive buffer (charged apart).
    fn own_charge(&self) -> usize {
        match self.buffer {
            Some(_) => self.prefix.len() + BATCH_OVERHEAD_BYTES,
            None => self.charge(),
        }
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
        self.shard.added(&b);
        self.batches.push_back(b);
    }

    fn pop_front(&mut self) {
        if let Some(b) = self.batches.pop_front() {
            self.size_bytes -= b.charge();
            self.shard.removed(&b);
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
        let keep = self.batches.partition_point(|b| b.base_offset < end_offset);
        for b in self.batches.drain(keep..) {
            self.size_bytes -= b.charge();
            self.shard.removed(&b);
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
        for b in self.batches.drain(..) {
            self.shard.removed(&b);
        }
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
    /// The receive buffers cached batches are slices of, by `ReceiveBuffer::key`: how many
    /// cached batches hold each. A buffer is charged while it is here.
    buffers: RefCell<HashMap<usize, usize>>,
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
            buffers: RefCell::new(HashMap::new()),
            order: RefCell::new(VecDeque::new()),
        }
    }

    fn added(&self, b: &CachedBatch) {
        let mut charge = b.own_charge();
        if let Some(buffer) = &b.buffer {
            let mut buffers = self.buffers.borrow_mut();
            let holders = buffers.entry(buffer.key()).or_insert(0);
            if *holders == 0 {
                charge += buffer.capacity();
            }
            *holders += 1;
        }
        self.size_bytes.set(self.size_bytes.get() + charge);
        self.batches.set(self.batches.get() + 1);
    }

    fn removed(&self, b: &CachedBatch) {
        let mut charge = b.own_charge();
        if let Some(buffer) = &b.buffer {
            let mut buffers = self.buffers.borrow_mut();
            if let Some(holders) = buffers.get_mut(&buffer.key()) {
                *holders -= 1;
                if *holders == 0 {
                    buffers.remove(&buffer.key());
                    charge += buffer.capacity();
                }
            }
        }
        debug_assert!(self.size_bytes.get() >= charge && self.batches.get() >= 1);
        self.size_bytes
            .set(self.size_bytes.get().saturating_sub(charge));
        self.batches.set(self.batches.get().saturating_sub(1));
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

    #[test]
    fn slices_of_one_receive_buffer_are_charged_once_at_its_capacity_until_the_last_leaves() {
        run(|dir| async move {
            set_shard_tail_cache_bytes(usize::MAX);
            let a = PartitionLog::open(dir.join("a-0"), config()).await.unwrap();
            let b = PartitionLog::open(dir.join("b-0"), config()).await.unwrap();
            // Four batches read in one 64 KiB receive buffer, two for each log.
            const CAPACITY: usize = 64 << 10;
            let batches: Vec<Bytes> = (0..4).map(|i| batch(1000, i)).collect();
            let frame = Bytes::from(batches.concat());
            let buffer = ReceiveBuffer::new(CAPACITY);
            let mut at = 0;
            for (i, sent) in batches.iter().enumerate() {
                let log = if i % 2 == 0 { &a } else { &b };
                let slice = frame.slice(at..at + sent.len());
                log.append_received(slice, Some(buffer.clone()))
                    .await
                    .unwrap();
                at += sent.len();
            }
            let own = crate::batch::PATCHED_PREFIX + BATCH_OVERHEAD_BYTES;
            assert_eq!(shard_tail_cache_bytes(), CAPACITY + 4 * own);
            // Each log's own cap still counts the bytes it serves.
            assert_eq!(cached(&a).1, 2 * (batches[0].len() + BATCH_OVERHEAD_BYTES));
            // A's slices leave; B's still keep the whole buffer alive.
            a.close().await.unwrap();
            drop(a);
            assert_eq!(shard_tail_cache_bytes(), CAPACITY + 2 * own);
            // Reads are served from the slices, unchanged.
            let r = b.read(1, 1).await.unwrap();
            let bytes: Vec<u8> = r.chunks.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(bytes[16..], batches[3][16..]);
            b.close().await.unwrap();
            drop(b);
            assert_eq!(
                shard_tail_cache_bytes(),
                0,
                "the last slice gave the buffer back"
            );
        });
    }
}
