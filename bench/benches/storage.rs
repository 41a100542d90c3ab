//! Storage benchmarks: log append throughput (durable per batch, and group commit with 64
//! concurrent appenders) against a raw sequential DmaFile write of the same bytes with the
//! same chunking (one fdatasync at the end) as the physical baseline; and the read paths
//! (tail cache, DMA read with read-ahead). Data lives under CARGO_TARGET_TMPDIR (real disk).
//!
//! Run: cargo bench -p riffle-bench --bench storage -- --warm-up-time 1 --measurement-time 5

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use glommio::io::OpenOptions;
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_storage::{LogConfig, PartitionLog};
use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Write unit of both the log (its head buffer chunk) and the raw baseline.
const CHUNK_BYTES: usize = 256 << 10;
const WRITES_IN_FLIGHT_MAX: usize = 4;
const PREALLOCATE_BYTES: u64 = 64 << 20;
const APPENDERS: u64 = 64;

/// Totals per benchmark id over all samples.
struct Total {
    id: String,
    bytes: u64,
    batches: u64,
    syncs: u64,
    elapsed: Duration,
}

impl Total {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6
    }
}

static TOTALS: Mutex<Vec<Total>> = Mutex::new(Vec::new());

fn record(id: &str, bytes: u64, batches: u64, syncs: u64, elapsed: Duration) {
    let mut t = TOTALS.lock().unwrap();
    match t.iter_mut().find(|e| e.id == id) {
        Some(e) => {
            e.bytes += bytes;
            e.batches += batches;
            e.syncs += syncs;
            e.elapsed += elapsed;
        }
        None => t.push(Total {
            id: id.to_string(),
            bytes,
            batches,
            syncs,
            elapsed,
        }),
    }
}

/// One producer batch of about `size` bytes (uncompressed records of 100-byte values).
fn batch(size: usize) -> Bytes {
    let mut b = RecordBatchBuilder::new(Compression::None, 1_700_000_000_000).producer(1, 0, 0);
    let value = [0x5au8; 100];
    let records = ((size - 61) / 110).max(1);
    for i in 0..records as i64 {
        b.append(1_700_000_000_000 + i, Some(b"key-0000"), Some(&value), &[]);
    }
    b.finish()
}

fn data_dir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("storage-bench");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(base)
        .unwrap()
}

fn on_executor<T, F, Fut>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .io_memory(4 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// The baseline: the same bytes copied into 256 KiB aligned chunks, written sequentially
/// with up to 4 writes in flight, pre-allocated in 64 MiB steps, one fdatasync at the end.
/// With `sync_every = Some(n)`, also the partial tail written and an fdatasync after every
/// n batches: the device's best for durable groups of n batches, one group at a time.
async fn raw_write(path: PathBuf, batch: Bytes, count: u64, sync_every: Option<u64>) -> Duration {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(&path)
        .await
        .unwrap();
    let file = std::rc::Rc::new(file);
    file.pre_allocate(PREALLOCATE_BYTES, false).await.unwrap();
    let start = Instant::now();
    let mut allocated = PREALLOCATE_BYTES;
    let mut in_flight = VecDeque::new();
    let mut buf = file.alloc_dma_buffer(CHUNK_BYTES);
    let mut len: usize = 0;
    let mut pos = 0u64;
    for i in 0..count {
        if sync_every.is_some_and(|n| i > 0 && i % n == 0) {
            while let Some(t) = in_flight.pop_front() {
                t.await;
            }
            let aligned = len.div_ceil(4096) * 4096;
            let mut tail = file.alloc_dma_buffer(aligned);
            tail.as_bytes_mut()[..len].copy_from_slice(&buf.as_bytes()[..len]);
            tail.as_bytes_mut()[len..].fill(0);
            file.write_at(tail, pos).await.unwrap();
            file.fdatasync().await.unwrap();
        }
        let mut data = &batch[..];
        while !data.is_empty() {
            let n = (CHUNK_BYTES - len).min(data.len());
            buf.as_bytes_mut()[len..len + n].copy_from_slice(&data[..n]);
            len += n;
            data = &data[n..];
            if len == CHUNK_BYTES {
                if pos + CHUNK_BYTES as u64 > allocated {
                    allocated += PREALLOCATE_BYTES;
                    file.pre_allocate(allocated, false).await.unwrap();
                }
                let full = std::mem::replace(&mut buf, file.alloc_dma_buffer(CHUNK_BYTES));
                let f = file.clone();
                in_flight.push_back(glommio::spawn_local(async move {
                    f.write_at(full, pos).await.unwrap()
                }));
                if in_flight.len() >= WRITES_IN_FLIGHT_MAX {
                    in_flight.pop_front().unwrap().await;
                }
                pos += CHUNK_BYTES as u64;
                len = 0;
            }
        }
    }
    if len > 0 {
        let aligned = len.div_ceil(4096) * 4096;
        buf.as_bytes_mut()[len..aligned].fill(0);
        buf.trim_to_size(aligned);
        in_flight.push_back(glommio::spawn_local({
            let f = file.clone();
            async move { f.write_at(buf, pos).await.unwrap() }
        }));
    }
    while let Some(t) = in_flight.pop_front() {
        t.await;
    }
    file.fdatasync().await.unwrap();
    start.elapsed()
}

/// `count` appends from `appenders` concurrent tasks, each durable (`append` + `flush`) or,
/// with `durable` false, plain `append` and one `flush` at the end (the raw baseline's
/// durability); returns (elapsed, fdatasyncs).
async fn log_append(
    dir: PathBuf,
    batch: Bytes,
    count: u64,
    appenders: u64,
    durable: bool,
) -> (Duration, u64) {
    let log = PartitionLog::open(&dir, LogConfig::default())
        .await
        .unwrap();
    let device_flushes_before = riffle_storage::shard_device_flushes();
    let start = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|_| {
            let log = log.clone();
            let batch = batch.clone();
            glommio::spawn_local(async move {
                for _ in 0..count / appenders {
                    log.append(batch.clone()).await.unwrap();
                    if durable {
                        // acks=all as the broker does it: wait for the group fdatasync.
                        log.flush().await.unwrap();
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
    log.flush().await.unwrap();
    let elapsed = start.elapsed();
    // Its own fdatasyncs and the device flushes it took a share of.
    let syncs =
        log.fdatasync_count() + (riffle_storage::shard_device_flushes() - device_flushes_before);
    log.close().await.unwrap();
    (elapsed, syncs)
}

fn bench_append(c: &mut Criterion) {
    for size in [1usize << 10, 16 << 10] {
        let b = batch(size);
        let bytes = b.len() as u64;
        let label = format!("{}KiB", size >> 10);
        let mut group = c.benchmark_group(format!("storage_append_{label}"));
        group.sample_size(10);
        group.throughput(Throughput::Bytes(bytes));

        for (name, sync_every) in [
            ("raw_dma_write", None),
            ("raw_dma_write_sync_every_64", Some(APPENDERS)),
            ("raw_dma_write_sync_every_320", Some(APPENDERS * 5)),
        ] {
            let id = format!("{name}/{label}");
            group.bench_function(BenchmarkId::new(name, &label), |bn| {
                bn.iter_custom(|iters| {
                    let dir = data_dir();
                    let path = dir.path().join("raw.log");
                    let batch = b.clone();
                    let elapsed = on_executor(move || raw_write(path, batch, iters, sync_every));
                    let syncs = 1 + sync_every.map_or(0, |n| iters.saturating_sub(1) / n);
                    record(&id, iters * bytes, iters, syncs, elapsed);
                    elapsed
                })
            });
        }

        for (name, appenders, durable) in [
            ("log_durable_per_batch", 1, true),
            ("log_group_commit_64", APPENDERS, true),
            // 64 producers with Kafka's max.in.flight.requests.per.connection = 5.
            ("log_group_commit_64x5", APPENDERS * 5, true),
            // The write path alone: same durability as the raw baseline (one final flush).
            ("log_append_flush_at_end_64", APPENDERS, false),
        ] {
            let id = format!("{name}/{label}");
            group.bench_function(BenchmarkId::new(name, &label), |bn| {
                bn.iter_custom(|iters| {
                    let count = iters.div_ceil(appenders) * appenders;
                    let dir = data_dir();
                    let path = dir.path().to_path_buf();
                    let batch = b.clone();
                    let (elapsed, syncs) =
                        on_executor(move || log_append(path, batch, count, appenders, durable));
                    record(&id, count * bytes, count, syncs, elapsed);
                    elapsed.mul_f64(iters as f64 / count as f64)
                })
            });
        }
        group.finish();
    }
}

/// Fills a log with `total` bytes of 16 KiB batches; returns its end offset.
async fn fill(log: &PartitionLog, total: usize) -> i64 {
    let b = batch(16 << 10);
    for _ in 0..total / b.len() {
        log.append(b.clone()).await.unwrap();
    }
    log.flush().await.unwrap();
    log.log_end_offset()
}

/// Reads `iters` × up to 1 MiB sequentially, wrapping at the end of the log.
async fn read_loop(log: &PartitionLog, end: i64, iters: u64) -> (Duration, u64) {
    let start = Instant::now();
    let mut at = 0;
    let mut bytes = 0u64;
    for _ in 0..iters {
        if at >= end {
            at = 0;
        }
        let r = log.read(at, 1 << 20).await.unwrap();
        bytes += r.bytes as u64;
        // The next offset: parse the last batch's header from its chunk(s).
        let last = r.chunks.len()
            - if r.chunks.len() > 1 && r.chunks[r.chunks.len() - 2].len() == 16 {
                2
            } else {
                1
            };
        let h = &r.chunks[last];
        let base = i64::from_be_bytes(h[..8].try_into().unwrap());
        let delta_at = if h.len() == 16 { 23 - 16 } else { 23 };
        let delta_chunk = if h.len() == 16 {
            &r.chunks[last + 1]
        } else {
            h
        };
        let delta = i32::from_be_bytes(delta_chunk[delta_at..delta_at + 4].try_into().unwrap());
        at = base + i64::from(delta) + 1;
    }
    (start.elapsed(), bytes)
}

fn bench_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage_read_1MiB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(1 << 20));
    for (name, cache_bytes, log_bytes) in [
        ("tail_cache", 8usize << 20, 6usize << 20),
        ("dma_read_ahead", 0, 64 << 20),
    ] {
        let id = format!("{name}/1MiB");
        group.bench_function(BenchmarkId::new(name, "1MiB"), |bn| {
            bn.iter_custom(|iters| {
                let dir = data_dir();
                let path = dir.path().to_path_buf();
                let id = id.clone();
                on_executor(move || async move {
                    let config = LogConfig {
                        tail_cache_bytes: cache_bytes,
                        ..LogConfig::default()
                    };
                    let log = PartitionLog::open(&path, config).await.unwrap();
                    let end = fill(&log, log_bytes).await;
                    let (elapsed, bytes) = read_loop(&log, end, iters).await;
                    record(&id, bytes, iters, 0, elapsed);
                    log.close().await.unwrap();
                    elapsed
                })
            })
        });
    }
    group.finish();
}

fn summary() {
    let t = TOTALS.lock().unwrap();
    println!("\n== storage summary (totals over all samples) ==");
    for e in t.iter() {
        let label = e.id.rsplit('/').next().unwrap();
        let raw = t.iter().find(|r| r.id == format!("raw_dma_write/{label}"));
        let ratio = raw.map_or(f64::NAN, |r| e.mb_per_s() / r.mb_per_s());
        let group = if e.id.starts_with("log_group_commit_64x5") {
            "raw_dma_write_sync_every_320"
        } else {
            "raw_dma_write_sync_every_64"
        };
        let same_groups = t
            .iter()
            .find(|r| r.id == format!("{group}/{label}"))
            .map_or(f64::NAN, |r| e.mb_per_s() / r.mb_per_s());
        let syncs = format!(
            "fdatasync/s {:7.1}  batches/fdatasync {:8.1}",
            e.syncs as f64 / e.elapsed.as_secs_f64(),
            e.batches as f64 / e.syncs.max(1) as f64
        );
        if e.id.starts_with("log_group_commit") {
            println!(
                "{:34} {:8.1} MB/s  ratio to raw {ratio:.3}  to {group} {same_groups:.3}  {syncs}",
                e.id,
                e.mb_per_s()
            );
        } else if e.id.starts_with("log_") {
            println!(
                "{:34} {:8.1} MB/s  ratio to raw {ratio:.3}  {syncs}",
                e.id,
                e.mb_per_s()
            );
        } else if e.id.starts_with("raw_") {
            println!("{:34} {:8.1} MB/s  {syncs}", e.id, e.mb_per_s());
        } else {
            println!("{:34} {:8.1} MB/s", e.id, e.mb_per_s());
        }
    }
}

/// Paired comparison, robust to noisy neighbours on a shared disk: the log run and its
/// raw baseline alternate (order flipped every pair) and the median of the per-pair
/// ratios is reported.
fn paired(size: usize, count: u64, appenders: u64, durable: bool, sync_every: Option<u64>) {
    const PAIRS: usize = 9;
    let b = batch(size);
    let bytes = b.len() as f64 * count as f64;
    let (mut ratios, mut log_mbps, mut raw_mbps, mut syncs_per_s, mut per_sync) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..PAIRS {
        let run_raw = || {
            let dir = data_dir();
            let path = dir.path().join("raw.log");
            let batch = b.clone();
            on_executor(move || raw_write(path, batch, count, sync_every))
        };
        let run_log = || {
            let dir = data_dir();
            let path = dir.path().to_path_buf();
            let batch = b.clone();
            on_executor(move || log_append(path, batch, count, appenders, durable))
        };
        let (raw, (log, syncs)) = if i % 2 == 0 {
            let r = run_raw();
            (r, run_log())
        } else {
            let l = run_log();
            (run_raw(), l)
        };
        ratios.push(raw.as_secs_f64() / log.as_secs_f64());
        log_mbps.push(bytes / log.as_secs_f64() / 1e6);
        raw_mbps.push(bytes / raw.as_secs_f64() / 1e6);
        syncs_per_s.push(syncs as f64 / log.as_secs_f64());
        per_sync.push(count as f64 / syncs.max(1) as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let kind = if durable {
        format!("log {appenders} appenders append+flush each")
    } else {
        format!("log {appenders} appenders append + final flush")
    };
    let base = match sync_every {
        Some(n) => format!("raw, fdatasync every {n} batches"),
        None => "raw, one final fdatasync".to_string(),
    };
    println!(
        "paired {:>2}KiB x {count:6}: {kind:42} {:7.1} MB/s vs {base:34} {:7.1} MB/s  ratio {:.3} (min {:.3}, max {:.3})  fdatasync/s {:7.1}  batches/fdatasync {:.1}",
        size >> 10,
        median(&mut log_mbps),
        median(&mut raw_mbps),
        median(&mut ratios.clone()),
        ratios.iter().cloned().fold(f64::INFINITY, f64::min),
        ratios.iter().cloned().fold(0.0, f64::max),
        median(&mut syncs_per_s),
        median(&mut per_sync),
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_append(&mut c);
    bench_read(&mut c);
    c.final_summary();
    summary();
    println!("\n== paired runs (median of 9 alternating pairs) ==");
    for size in [1usize << 10, 16 << 10] {
        let n = (64u64 << 20) / size as u64;
        paired(size, n, APPENDERS, false, None);
        paired(size, APPENDERS * 50, APPENDERS, true, Some(APPENDERS));
        paired(
            size,
            APPENDERS * 5 * 20,
            APPENDERS * 5,
            true,
            Some(APPENDERS * 5),
        );
    }
}
