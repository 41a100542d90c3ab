//! fdatasync latency and parallelism, measured on plain threads with O_DIRECT pwrite and
//! fdatasync: the broker runs its fdatasyncs on a per-shard thread pool the same way, because
//! io_uring ran them one at a time on one io-wq worker.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::properties::{SyncLatency, SyncParallel};
use super::IotuneError;

/// O_DIRECT buffers and offsets are aligned to this (the logical block size of every disk
/// riffle supports is at most 4 KiB).
const ALIGN_BYTES: usize = 4096;
/// The append each parallel thread makes before its fdatasync (a small acks=all batch).
const PARALLEL_APPEND_BYTES: usize = 4096;
/// The pre-written file each parallel thread overwrites.
const PARALLEL_FILE_BYTES: usize = 1 << 20;
/// Latencies above one minute are clamped: a disk that slow has failed.
const LATENCY_US_MAX: u64 = 60_000_000;

/// A zero-filled buffer of `len` bytes aligned for O_DIRECT, carved out of a larger Vec.
struct AlignedBuf {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> Self {
        let mut storage = vec![0x5au8; len + ALIGN_BYTES];
        let offset = storage.as_mut_ptr().align_offset(ALIGN_BYTES);
        AlignedBuf {
            storage,
            offset,
            len,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.storage[self.offset..self.offset + self.len]
    }
}

fn open_direct(path: &Path, create: bool) -> Result<File, IotuneError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| IotuneError::File(path.display().to_string(), e))
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("constant bounds are valid")
}

fn record(hist: &mut Histogram<u64>, since: Instant) {
    let us = (since.elapsed().as_micros() as u64).clamp(1, LATENCY_US_MAX);
    hist.record(us)
        .expect("clamped into the histogram's bounds");
}

/// Appends of `append_bytes`, each followed by an fdatasync whose latency is recorded, for
/// `duration` or until `region_bytes` are written. Over `prewritten` blocks (overwrites at the
/// start of `path`, already written) or over new blocks (appends past the end of a new file at
/// `path`, which the file system allocates: the sync carries metadata).
pub(crate) fn latency(
    path: &Path,
    prewritten: bool,
    append_bytes: usize,
    region_bytes: u64,
    duration: Duration,
) -> Result<SyncLatency, IotuneError> {
    let file = open_direct(path, !prewritten)?;
    let buf = AlignedBuf::new(append_bytes);
    let mut hist = histogram();
    // Untimed: flushes what earlier measurements left in the device's cache, which would
    // otherwise land on the first sample.
    file.sync_data()?;
    let deadline = Instant::now() + duration;
    let mut pos = 0u64;
    while Instant::now() < deadline
        && !super::stopped()
        && pos + append_bytes as u64 <= region_bytes
    {
        file.write_all_at(buf.bytes(), pos)?;
        let start = Instant::now();
        file.sync_data()?;
        record(&mut hist, start);
        pos += append_bytes as u64;
    }
    Ok(SyncLatency {
        blocks: if prewritten { "pre-written" } else { "new" },
        append_bytes,
        count: hist.len(),
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
    })
}

/// One thread of `parallel`: overwrite and fdatasync its own pre-written file until `deadline`.
fn parallel_thread(
    path: &Path,
    start: &Barrier,
    duration: Duration,
) -> Result<Histogram<u64>, IotuneError> {
    let prepare = || -> Result<File, IotuneError> {
        let file = open_direct(path, true)?;
        file.write_all_at(AlignedBuf::new(PARALLEL_FILE_BYTES).bytes(), 0)?;
        file.sync_data()?;
        Ok(file)
    };
    let prepared = prepare();
    // Every thread reaches the barrier, failed or not, so that none waits forever.
    start.wait();
    let file = prepared?;
    let buf = AlignedBuf::new(PARALLEL_APPEND_BYTES);
    let mut hist = histogram();
    let deadline = Instant::now() + duration;
    let mut pos = 0u64;
    while Instant::now() < deadline && !super::stopped() {
        let begin = Instant::now();
        file.write_all_at(buf.bytes(), pos)?;
        file.sync_data()?;
        record(&mut hist, begin);
        pos = (pos + PARALLEL_APPEND_BYTES as u64) % PARALLEL_FILE_BYTES as u64;
    }
    Ok(hist)
}

/// `threads` threads, each writing 4 KiB and fdatasyncing its own file in `dir`, together for
/// `duration`: how many syncs per second the disk completes at that concurrency.
pub(crate) fn parallel(
    dir: &Path,
    threads: usize,
    duration: Duration,
) -> Result<SyncParallel, IotuneError> {
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let path = dir.join(format!("parallel-{i}"));
            let start = start.clone();
            std::thread::spawn(move || parallel_thread(&path, &start, duration))
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let mut total = histogram();
    for h in handles {
        let hist = h.join().map_err(|_| IotuneError::ThreadPanicked)??;
        total.add(&hist).expect("same bounds");
    }
    let elapsed = began.elapsed().as_secs_f64().max(1e-9);
    for i in 0..threads {
        let _ = std::fs::remove_file(dir.join(format!("parallel-{i}")));
    }
    Ok(SyncParallel {
        threads,
        syncs_per_s: (total.len() as f64 / elapsed).round(),
        p50_us: total.value_at_quantile(0.5),
    })
}
