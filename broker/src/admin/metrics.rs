//! Per-shard counters and latency histograms, updated on the hot path with plain `Cell`s in a
//! thread-local (a shard is one thread, so no atomics), and read only by the shard itself when
//! the admin listener asks it for a snapshot (`ShardRequest::Stats`).

use std::cell::Cell;
use std::time::Duration;

use riffle_protocol::ApiKey;
use riffle_storage::LogObserver;
use serde::Serialize;

/// Upper bounds of the latency buckets, in microseconds (Prometheus' `le`, shown in seconds):
/// 50 µs to 10 s, about three per decade, enough to tell a page-cache hit from an fdatasync.
pub(crate) const LATENCY_BUCKET_BOUNDS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];
const BUCKETS: usize = LATENCY_BUCKET_BOUNDS_US.len() + 1;
const API_KEYS: usize = ApiKey::ALL.len();

/// A latency histogram with fixed buckets (the last one is +Inf). Shard-local.
pub(crate) struct Histogram {
    buckets: [Cell<u64>; BUCKETS],
    sum_us: Cell<u64>,
}

impl Histogram {
    const fn new() -> Self {
        Histogram {
            buckets: [const { Cell::new(0) }; BUCKETS],
            sum_us: Cell::new(0),
        }
    }

    pub(crate) fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKET_BOUNDS_US.partition_point(|&bound| bound < us);
        bump(&self.buckets[bucket], 1);
        bump(&self.sum_us, us);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self.buckets.iter().map(Cell::get).collect(),
            sum_us: self.sum_us.get(),
        }
    }
}

/// A histogram as read at one moment: per-bucket (not cumulative) counts, +Inf last.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct HistogramSnapshot {
    pub buckets: Vec<u64>,
    pub sum_us: u64,
}

impl HistogramSnapshot {
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

fn bump(cell: &Cell<u64>, by: u64) {
    cell.set(cell.get().wrapping_add(by));
}

/// Everything a shard counts. One per shard thread, for the life of the thread.
pub(crate) struct ShardMetrics {
    bytes_in: Cell<u64>,
    records_in: Cell<u64>,
    bytes_out: Cell<u64>,
    records_out: Cell<u64>,
    connections: Cell<u64>,
    connections_accepted: Cell<u64>,
    tail_cache_hits: Cell<u64>,
    tail_cache_misses: Cell<u64>,
    /// Request latency from decoding to the handler's answer, by index in `ApiKey::ALL`.
    requests: [Histogram; API_KEYS],
    append: Histogram,
    fdatasync: Histogram,
}

thread_local! {
    static METRICS: ShardMetrics = const {
        ShardMetrics {
            bytes_in: Cell::new(0),
            records_in: Cell::new(0),
            bytes_out: Cell::new(0),
            records_out: Cell::new(0),
            connections: Cell::new(0),
            connections_accepted: Cell::new(0),
            tail_cache_hits: Cell::new(0),
            tail_cache_misses: Cell::new(0),
            requests: [const { Histogram::new() }; API_KEYS],
            append: Histogram::new(),
            fdatasync: Histogram::new(),
        }
    };
}

/// Batches appended by a produce (after validation), counted for this shard.
pub(crate) fn produced(bytes: u64, records: u64, append_latency: Duration) {
    METRICS.with(|m| {
        bump(&m.bytes_in, bytes);
        bump(&m.records_in, records);
        m.append.record(append_latency);
    });
}

/// Batches handed to a reader (Fetch), counted for this shard.
pub(crate) fn consumed(bytes: u64, records: u64) {
    METRICS.with(|m| {
        bump(&m.bytes_out, bytes);
        bump(&m.records_out, records);
    });
}

/// A request of `api_key` answered after `elapsed`.
pub(crate) fn request_served(api_key: i16, elapsed: Duration) {
    let Ok(index) = ApiKey::ALL.binary_search_by_key(&api_key, |k| *k as i16) else {
        return;
    };
    METRICS.with(|m| m.requests[index].record(elapsed));
}

/// Counts a client connection on this shard while it lives.
pub(crate) struct ConnectionGauge(());

impl ConnectionGauge {
    pub(crate) fn open() -> Self {
        METRICS.with(|m| {
            bump(&m.connections, 1);
            bump(&m.connections_accepted, 1);
        });
        ConnectionGauge(())
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        METRICS.with(|m| m.connections.set(m.connections.get().saturating_sub(1)));
    }
}

/// Hands storage's fdatasync and read events to this shard's counters.
pub(crate) struct ShardLogObserver;

impl LogObserver for ShardLogObserver {
    fn fdatasync_completed(&self, elapsed: Duration) {
        METRICS.with(|m| m.fdatasync.record(elapsed));
    }

    fn read_served(&self, from_tail_cache: bool) {
        METRICS.with(|m| {
            bump(
                if from_tail_cache {
                    &m.tail_cache_hits
                } else {
                    &m.tail_cache_misses
                },
                1,
            )
        });
    }
}

/// This shard's counters at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct MetricsSnapshot {
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
    pub records_out: u64,
    pub connections: u64,
    pub connections_accepted: u64,
    pub tail_cache_hits: u64,
    pub tail_cache_misses: u64,
    /// (API name, latency) for each API that served a request.
    pub requests: Vec<(&'static str, HistogramSnapshot)>,
    pub append: HistogramSnapshot,
    pub fdatasync: HistogramSnapshot,
    /// Device cache flushes the shard ran for all its logs at once (storage's shared flush).
    pub device_flushes: u64,
    /// New segments that reused one retention deleted (no zeros written ahead).
    pub recycled_segments: u64,
}

impl MetricsSnapshot {
    pub(crate) fn requests_total(&self) -> u64 {
        self.requests.iter().map(|(_, h)| h.count()).sum()
    }
}

/// Reads the calling shard's counters.
pub(crate) fn snapshot() -> MetricsSnapshot {
    METRICS.with(|m| MetricsSnapshot {
        bytes_in: m.bytes_in.get(),
        records_in: m.records_in.get(),
        bytes_out: m.bytes_out.get(),
        records_out: m.records_out.get(),
        connections: m.connections.get(),
        connections_accepted: m.connections_accepted.get(),
        tail_cache_hits: m.tail_cache_hits.get(),
        tail_cache_misses: m.tail_cache_misses.get(),
        requests: ApiKey::ALL
            .iter()
            .zip(&m.requests)
            .map(|(key, h)| (key.name(), h.snapshot()))
            .filter(|(_, h)| h.count() > 0)
            .collect(),
        append: m.append.snapshot(),
        fdatasync: m.fdatasync.snapshot(),
        device_flushes: riffle_storage::shard_device_flushes(),
        recycled_segments: riffle_storage::shard_recycled_segments(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latency_lands_in_the_first_bucket_whose_bound_holds_it() {
        let h = Histogram::new();
        h.record(Duration::from_micros(50)); // le 50 µs
        h.record(Duration::from_micros(51)); // le 100 µs
        h.record(Duration::from_secs(60)); // +Inf
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[BUCKETS - 1], 1);
        assert_eq!(s.count(), 3);
        assert_eq!(s.sum_us, 50 + 51 + 60_000_000);
    }

    #[test]
    fn requests_are_counted_per_api_key_and_unknown_keys_are_ignored() {
        std::thread::spawn(|| {
            request_served(ApiKey::Produce as i16, Duration::from_millis(1));
            request_served(ApiKey::Produce as i16, Duration::from_millis(2));
            request_served(ApiKey::Fetch as i16, Duration::from_millis(3));
            request_served(-7, Duration::from_millis(3));
            let s = snapshot();
            let count = |name: &str| {
                s.requests
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, h)| h.count())
            };
            assert_eq!(count(ApiKey::Produce.name()), Some(2));
            assert_eq!(count(ApiKey::Fetch.name()), Some(1));
            assert_eq!(s.requests_total(), 3);
        })
        .join()
        .unwrap();
    }
}
