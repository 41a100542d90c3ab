//! The design question of issue 15, measured: how should one shard make a round of
//! 16 KiB batches, one per partition, durable? Each case writes the same bytes with
//! glommio `DmaFile` (O_DIRECT) in rounds of `files` batches and waits for durability
//! after every round, and reports MB/s, fdatasyncs, and the process's CPU seconds per GB
//! (`RUSAGE_SELF`: the shard thread and its io_uring workers).
//!
//! Run: cargo bench -p riffle-bench --bench round_commit -- [--mib N] [--repeat R]
//! [--only NAME-SUBSTRING[,NAME-SUBSTRING...]] (cases whose name contains any of them; a
//! comma followed by a space is part of a substring, as in the case names)

use bytes::Bytes;
use glommio::io::{DmaFile, OpenOptions};
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_storage::commit_log::{self, CommitLog, CommitLogConfig};
use riffle_storage::{LogConfig, PartitionLog};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

const BATCH_BYTES: usize = 16 << 10;
/// A commit-log record header: length, crc32c, partition id, base offset, last offset delta.
const RECORD_HEADER_BYTES: usize = 4 + 4 + 4 + 8 + 4;
const ALIGN_BYTES: usize = 4096;
/// The zeros the log writes ahead of its data today (storage's preallocation step floor).
const ZEROS_AHEAD_BYTES: u64 = 1 << 20;
/// Segment bytes written behind the commit log before they are checkpointed (one fdatasync
/// per segment file), as a commit log of this size would have to be before recycling.
const CHECKPOINT_BYTES: u64 = 32 << 20;
/// The storage writer's chunk (`CHUNK_BYTES`): segments are written behind in these.
const SEGMENT_CHUNK_BYTES: usize = 256 << 10;

/// The broker's default `sync_threads_per_shard`.
const SYNC_THREADS: usize = 4;

#[derive(Clone, Copy, Debug)]
enum Case {
    /// Today: one file per partition, each fdatasynced once per round (all concurrently),
    /// with 1 MiB of zeros written ahead of the data as the log does.
    PerFileZerosAhead(usize),
    /// One file per partition whose blocks were written before (recycled segments): data
    /// overwrites written blocks, so fdatasync carries no metadata; one per file per round.
    PerFileOverwrite(usize),
    /// As `PerFileOverwrite`, but one syncfs(2) per round (on the blocking pool: io_uring has
    /// no such op) instead of one fdatasync per file: one device flush for the file system.
    PerFileOverwriteSyncfs(usize),
    /// One pre-written, recycled commit-log file per shard: a round's framed batches are one
    /// write and one fdatasync, whatever the partition count.
    CommitLog(usize),
    /// riffle-storage's `CommitLog` (the built design): a round of `n` appends, one commit.
    StorageCommitLog(usize),
    /// The same with two producers per partition, each appending and committing in a loop
    /// (as producers with two requests in flight): rounds form and overlap on their own.
    StorageCommitLogProducers(usize),
    /// `n` riffle-storage `PartitionLog`s, one producer each appending a 16 KiB RecordBatch
    /// and waiting for `flush` (today's acks=all: one fdatasync per partition per round).
    LogFlush(usize),
    /// `LogFlush` in a steady state with retention: each log's new segments reuse the ones its
    /// retention deleted (storage's `spare`), so no zeros are written ahead of the data.
    LogFlushRecycled(usize),
    /// The same logs made durable with `commit_to` through one shard `CommitLog`.
    LogCommit(usize),
    /// The commit log plus the segments written behind it without a per-round fdatasync,
    /// checkpointed (one fdatasync per segment) every `CHECKPOINT_BYTES`: the whole design.
    CommitLogWithSegments(usize),
    /// T1's baseline: a raw sequential write of a round's bytes and one fdatasync per round,
    /// over blocks written before (as the commit log's), so both carry the same file-system work.
    RawSyncPerRound(usize),
    /// A raw sequential write of all bytes (256 KiB writes, pre-written file), one final fdatasync.
    RawSyncAtEnd,
}

impl Case {
    /// Batches per round: one per partition.
    fn files(self) -> usize {
        match self {
            Case::PerFileZerosAhead(n)
            | Case::PerFileOverwrite(n)
            | Case::PerFileOverwriteSyncfs(n)
            | Case::CommitLog(n)
            | Case::StorageCommitLog(n)
            | Case::StorageCommitLogProducers(n)
            | Case::LogFlush(n)
            | Case::LogFlushRecycled(n)
            | Case::LogCommit(n)
            | Case::CommitLogWithSegments(n)
            | Case::RawSyncPerRound(n) => n,
            Case::RawSyncAtEnd => 1,
        }
    }

    fn name(self) -> String {
        match self {
            Case::PerFileZerosAhead(n) => format!("per-file, zeros ahead, {n} file(s)"),
            Case::PerFileOverwrite(n) => format!("per-file, overwrite, {n} file(s)"),
            Case::PerFileOverwriteSyncfs(n) => format!("per-file, overwrite, syncfs, {n} file(s)"),
            Case::CommitLog(n) => format!("shard commit log, {n} partition(s)"),
            Case::StorageCommitLog(n) => format!("storage CommitLog, {n} partition(s)"),
            Case::StorageCommitLogProducers(n) => {
                format!("storage CommitLog, 2 producers x {n} partition(s)")
            }
            Case::LogFlush(n) => format!("PartitionLog flush, {n} partition(s)"),
            Case::LogFlushRecycled(n) => format!("PartitionLog flush, recycled, {n} partition(s)"),
            Case::LogCommit(n) => format!("PartitionLog commit_to, {n} partition(s)"),
            Case::CommitLogWithSegments(n) => format!("commit log + segments, {n} partition(s)"),
            Case::RawSyncPerRound(n) => format!("raw, 1 fdatasync per {n}x16k"),
            Case::RawSyncAtEnd => "raw, one final fdatasync".to_string(),
        }
    }
}

fn cpu_s() -> f64 {
    // SAFETY: getrusage only writes the struct it is given; all-zero is a valid rusage.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut ru), 0);
        ru
    };
    let s = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    s(ru.ru_utime) + s(ru.ru_stime)
}

async fn open(path: &Path) -> Rc<DmaFile> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(path)
        .await
        .unwrap();
    Rc::new(file)
}

async fn write_zeros(file: &DmaFile, from: u64, len: u64) {
    let mut pos = from;
    while pos < from + len {
        let n = (1u64 << 20).min(from + len - pos) as usize;
        let mut buf = file.alloc_dma_buffer(n);
        buf.as_bytes_mut().fill(0);
        file.write_at(buf, pos).await.unwrap();
        pos += n as u64;
    }
}

/// Files written with zeros and synced before the measured run (recycled blocks).
async fn prewritten(dir: &Path, count: usize, bytes: u64) -> Vec<Rc<DmaFile>> {
    let mut files = Vec::new();
    for i in 0..count {
        let f = open(&dir.join(format!("f{i}"))).await;
        write_zeros(&f, 0, bytes).await;
        fdatasync(&f).await;
        files.push(f);
    }
    files
}

/// fdatasync as the broker issues it: on the shard's blocking pool (`SegFile::sync`; on
/// io_uring every fdatasync of a shard ran on one io-wq worker, one after another).
async fn fdatasync(file: &Rc<DmaFile>) {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the fd belongs to `file`, open for as long as it is borrowed here.
    let fd = unsafe { BorrowedFd::borrow_raw(file.as_raw_fd()) };
    let own = std::fs::File::from(fd.try_clone_to_owned().unwrap());
    glommio::executor()
        .spawn_blocking(move || own.sync_data().unwrap())
        .await;
}

async fn write(file: &Rc<DmaFile>, pos: u64, len: usize, fill: u8) {
    let mut buf = file.alloc_dma_buffer(len);
    buf.as_bytes_mut().fill(fill);
    file.write_at(buf, pos).await.unwrap();
}

async fn sync_all(files: &[Rc<DmaFile>]) {
    let tasks: Vec<_> = files
        .iter()
        .map(|f| {
            let f = f.clone();
            glommio::spawn_local(async move { fdatasync(&f).await })
        })
        .collect();
    for t in tasks {
        t.await;
    }
}

/// One syncfs(2) of the file system holding `file`, on the executor's blocking pool.
async fn syncfs(file: &Rc<DmaFile>) {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    glommio::executor()
        .spawn_blocking(move || {
            // SAFETY: syncfs only reads the descriptor, which outlives this call (awaited).
            assert_eq!(unsafe { libc::syncfs(fd) }, 0, "syncfs");
        })
        .await;
}

#[derive(Clone, Copy, PartialEq)]
enum RoundSync {
    PerFile,
    Syncfs,
}

/// One batch to each file, all in flight, then one fdatasync per file (or one syncfs).
async fn per_file(files: &[Rc<DmaFile>], rounds: u64, zeros_ahead: bool, sync: RoundSync) -> u64 {
    let mut zeroed = 0u64;
    for r in 0..rounds {
        let pos = r * BATCH_BYTES as u64;
        if zeros_ahead && pos + BATCH_BYTES as u64 > zeroed {
            for f in files {
                write_zeros(f, zeroed, ZEROS_AHEAD_BYTES).await;
            }
            zeroed += ZEROS_AHEAD_BYTES;
        }
        let writes: Vec<_> = files
            .iter()
            .map(|f| {
                let f = f.clone();
                glommio::spawn_local(async move { write(&f, pos, BATCH_BYTES, 7).await })
            })
            .collect();
        for w in writes {
            w.await;
        }
        match sync {
            RoundSync::PerFile => sync_all(files).await,
            RoundSync::Syncfs => syncfs(&files[0]).await,
        }
    }
    match sync {
        RoundSync::PerFile => rounds * files.len() as u64,
        RoundSync::Syncfs => rounds,
    }
}

/// One write of `round_bytes` and one fdatasync per round into one file.
async fn sequential(file: &Rc<DmaFile>, rounds: u64, round_bytes: usize) -> u64 {
    for r in 0..rounds {
        write(file, r * round_bytes as u64, round_bytes, 7).await;
        fdatasync(file).await;
    }
    rounds
}

/// The commit log's rounds; with `segments`, each partition's batch is also written to its
/// segment file behind the log, and the segments synced every `CHECKPOINT_BYTES` of log.
async fn commit_log(
    log: &Rc<DmaFile>,
    segments: &[Rc<DmaFile>],
    rounds: u64,
    partitions: usize,
) -> u64 {
    let round_bytes =
        (partitions * (BATCH_BYTES + RECORD_HEADER_BYTES)).div_ceil(ALIGN_BYTES) * ALIGN_BYTES;
    let mut syncs = 0;
    let mut since_checkpoint = 0u64;
    let batches_per_chunk = (SEGMENT_CHUNK_BYTES / BATCH_BYTES) as u64;
    // Chunk writes behind the log, not awaited by the round that issues them (the log's
    // writer keeps them in flight behind the appends); the next chunk waits for them.
    let mut behind = Vec::new();
    for r in 0..rounds {
        // The log's head buffer writes a segment behind in whole chunks, not per batch.
        if (r + 1) % batches_per_chunk == 0 {
            for w in behind.drain(..) {
                let w: glommio::task::JoinHandle<()> = w;
                w.await;
            }
            let pos = (r + 1 - batches_per_chunk) * BATCH_BYTES as u64;
            for f in segments {
                let f = f.clone();
                behind.push(
                    glommio::spawn_local(
                        async move { write(&f, pos, SEGMENT_CHUNK_BYTES, 7).await },
                    )
                    .detach(),
                );
            }
        }
        write(log, r * round_bytes as u64, round_bytes, 7).await;
        fdatasync(log).await;
        syncs += 1;
        since_checkpoint += round_bytes as u64;
        if !segments.is_empty() && since_checkpoint >= CHECKPOINT_BYTES {
            for w in behind.drain(..) {
                w.await;
            }
            sync_all(segments).await;
            syncs += segments.len() as u64;
            since_checkpoint = 0;
        }
    }
    for w in behind.drain(..) {
        w.await;
    }
    if !segments.is_empty() {
        sync_all(segments).await;
        syncs += segments.len() as u64;
    }
    syncs
}

async fn storage_commit_log(dir: &Path, bytes: u64) -> Rc<CommitLog> {
    let config = CommitLogConfig {
        file_bytes: (bytes * 2).max(commit_log::FILE_BYTES_MIN),
        files_max: 2,
    };
    let checkpoint: commit_log::Checkpoint = Rc::new(|_| Box::pin(async { Ok(()) }));
    let dir = dir.join("commit-log");
    // Open, fill both files once, close, then open again: the measured log recycles them.
    let log = CommitLog::create(&dir, config.clone(), checkpoint.clone())
        .await
        .unwrap();
    log.close().await.unwrap();
    CommitLog::create(&dir, config, checkpoint).await.unwrap()
}

/// Rounds of one 16 KiB batch per partition, each committed before the next starts.
async fn storage_rounds(log: &Rc<CommitLog>, rounds: u64, partitions: usize) -> u64 {
    let batch = vec![7u8; BATCH_BYTES];
    let before = log.fdatasync_count();
    for r in 0..rounds {
        let mut round = 0;
        for p in 0..partitions as u32 {
            round = log.append(p, r as i64, r as i64, &batch).await.unwrap();
        }
        log.commit(round).await.unwrap();
    }
    let syncs = log.fdatasync_count() - before;
    log.close().await.unwrap();
    syncs
}

/// Two producer tasks per partition, each appending one batch and waiting for its commit,
/// `rounds / 2` times.
async fn storage_producers(log: &Rc<CommitLog>, rounds: u64, partitions: usize) -> u64 {
    let before = log.fdatasync_count();
    let tasks: Vec<_> = (0..partitions as u32 * 2)
        .map(|t| {
            let log = log.clone();
            glommio::spawn_local(async move {
                let batch = vec![7u8; BATCH_BYTES];
                for r in 0..rounds / 2 {
                    let round = log.append(t / 2, r as i64, r as i64, &batch).await.unwrap();
                    log.commit(round).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
    let syncs = log.fdatasync_count() - before;
    log.close().await.unwrap();
    syncs
}

/// A RecordBatch of about `BATCH_BYTES` (uncompressed records of 100-byte values).
fn record_batch() -> Bytes {
    let mut b = RecordBatchBuilder::new(Compression::None, 1_700_000_000_000).producer(1, 0, 0);
    let value = [0x5au8; 100];
    for i in 0..((BATCH_BYTES - 61) / 120) as i64 {
        b.append(1_700_000_000_000 + i, Some(b"key-0000"), Some(&value), &[]);
    }
    b.finish()
}

async fn open_logs(dir: &Path, partitions: usize, config: &LogConfig) -> Vec<Rc<PartitionLog>> {
    let mut logs = Vec::new();
    for p in 0..partitions {
        let log = PartitionLog::open(dir.join(format!("p{p}")), config.clone());
        logs.push(log.await.unwrap());
    }
    logs
}

/// Segments of 1 MiB and retention of 2 MiB: from the third roll on, each new segment is one its
/// retention deleted.
fn recycling_config() -> LogConfig {
    LogConfig {
        segment_bytes: RECYCLED_SEGMENT_BYTES,
        retention_bytes: Some(2 * RECYCLED_SEGMENT_BYTES),
        retention_ms: None,
        ..LogConfig::default()
    }
}

const RECYCLED_SEGMENT_BYTES: u64 = 1 << 20;

/// Appends and flushes batches on every log, untimed, until each has recycled a segment.
async fn warm_up(logs: &[Rc<PartitionLog>]) {
    let batch = record_batch();
    let tasks: Vec<_> = logs
        .iter()
        .map(|log| {
            let (log, batch) = (log.clone(), batch.clone());
            glommio::spawn_local(async move {
                while log.recycled_segments() == 0 {
                    log.append(batch.clone()).await.unwrap();
                    log.flush().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
}

/// Partition logs, one producer each: append, then `flush` (no commit log) or
/// `commit_to`, `rounds` times. Returns the fdatasyncs and device cache flushes made: the logs'
/// own, the device flushes they shared, and the commit log's.
async fn partition_logs(
    logs: Vec<Rc<PartitionLog>>,
    commit_log: Option<Rc<CommitLog>>,
    rounds: u64,
) -> u64 {
    let commit_syncs_before = commit_log.as_ref().map_or(0, |c| c.fdatasync_count());
    let device_flushes_before = riffle_storage::shard_device_flushes();
    let own_syncs_before: u64 = logs.iter().map(|l| l.fdatasync_count()).sum();
    let batch = record_batch();
    let tasks: Vec<_> = logs
        .iter()
        .enumerate()
        .map(|(p, log)| {
            let (log, batch, commit_log) = (log.clone(), batch.clone(), commit_log.clone());
            glommio::spawn_local(async move {
                for _ in 0..rounds {
                    log.append(batch.clone()).await.unwrap();
                    match &commit_log {
                        Some(c) => log.commit_to(c, p as u32).await.unwrap(),
                        None => log.flush().await.unwrap(),
                    };
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
    // Each log's own fdatasyncs, and the device flushes the logs shared (not their shares).
    let mut syncs: u64 = logs.iter().map(|l| l.fdatasync_count()).sum::<u64>() - own_syncs_before
        + (riffle_storage::shard_device_flushes() - device_flushes_before);
    if let Some(c) = &commit_log {
        syncs += c.fdatasync_count() - commit_syncs_before;
        c.close().await.unwrap();
    }
    for l in logs {
        l.close().await.unwrap();
    }
    syncs
}

struct Row {
    name: String,
    bytes: u64,
    syncs: u64,
    elapsed: Duration,
    cpu_s: f64,
}

async fn run_case(dir: PathBuf, case: Case, bytes: u64) -> Row {
    let n = case.files();
    let rounds = bytes / (n * BATCH_BYTES) as u64;
    let per_file_bytes = rounds * BATCH_BYTES as u64;
    // Files are made (and pre-written where the case recycles blocks) before timing.
    let files = match case {
        Case::PerFileZerosAhead(_) => {
            let mut v = Vec::new();
            for i in 0..n {
                v.push(open(&dir.join(format!("f{i}"))).await);
            }
            v
        }
        Case::PerFileOverwrite(_) | Case::PerFileOverwriteSyncfs(_) => {
            prewritten(&dir, n, per_file_bytes).await
        }
        Case::CommitLog(_) | Case::CommitLogWithSegments(_) => prewritten(&dir, 1, bytes * 2).await,
        Case::RawSyncPerRound(_) | Case::RawSyncAtEnd => prewritten(&dir, 1, bytes).await,
        Case::StorageCommitLog(_)
        | Case::StorageCommitLogProducers(_)
        | Case::LogFlush(_)
        | Case::LogFlushRecycled(_)
        | Case::LogCommit(_) => Vec::new(),
    };
    // Segments behind the commit log get no zeros ahead: fresh files, extended by the data.
    let mut segments = Vec::new();
    if let Case::CommitLogWithSegments(_) = case {
        for i in 0..n {
            segments.push(open(&dir.join(format!("segs/s{i}"))).await);
        }
    }
    // The module's files are made (zeros) by a first use before timing, then recycled.
    let storage_log = match case {
        Case::StorageCommitLog(_) | Case::StorageCommitLogProducers(_) | Case::LogCommit(_) => {
            Some(storage_commit_log(&dir, bytes).await)
        }
        _ => None,
    };
    let logs = match case {
        Case::LogFlush(_) | Case::LogCommit(_) => open_logs(&dir, n, &LogConfig::default()).await,
        Case::LogFlushRecycled(_) => {
            let logs = open_logs(&dir, n, &recycling_config()).await;
            warm_up(&logs).await;
            logs
        }
        _ => Vec::new(),
    };
    let cpu_before = cpu_s();
    let start = Instant::now();
    let syncs = match case {
        Case::StorageCommitLog(_) => {
            let log = storage_log.as_ref().expect("made above");
            storage_rounds(log, rounds, n).await
        }
        Case::StorageCommitLogProducers(_) => {
            let log = storage_log.as_ref().expect("made above");
            storage_producers(log, rounds, n).await
        }
        Case::LogFlush(_) | Case::LogFlushRecycled(_) => partition_logs(logs, None, rounds).await,
        Case::LogCommit(_) => partition_logs(logs, storage_log.clone(), rounds).await,
        Case::PerFileZerosAhead(_) => per_file(&files, rounds, true, RoundSync::PerFile).await,
        Case::PerFileOverwrite(_) => per_file(&files, rounds, false, RoundSync::PerFile).await,
        Case::PerFileOverwriteSyncfs(_) => per_file(&files, rounds, false, RoundSync::Syncfs).await,
        Case::CommitLog(_) | Case::CommitLogWithSegments(_) => {
            commit_log(&files[0], &segments, rounds, n).await
        }
        Case::RawSyncPerRound(_) => sequential(&files[0], rounds, n * BATCH_BYTES).await,
        Case::RawSyncAtEnd => {
            let chunk = 256 << 10;
            for i in 0..bytes / chunk as u64 {
                write(&files[0], i * chunk as u64, chunk, 7).await;
            }
            fdatasync(&files[0]).await;
            1
        }
    };
    let elapsed = start.elapsed();
    let cpu = cpu_s() - cpu_before;
    for f in files.into_iter().chain(segments) {
        f.close_rc().await.unwrap();
    }
    Row {
        name: case.name(),
        bytes: rounds * (n * BATCH_BYTES) as u64,
        syncs,
        elapsed,
        cpu_s: cpu,
    }
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for n in [1, 4, 64] {
        v.extend([
            Case::RawSyncPerRound(n),
            Case::PerFileZerosAhead(n),
            Case::PerFileOverwrite(n),
            Case::PerFileOverwriteSyncfs(n),
            Case::CommitLog(n),
            Case::StorageCommitLog(n),
            Case::StorageCommitLogProducers(n),
            Case::LogFlush(n),
            Case::LogFlushRecycled(n),
            Case::LogCommit(n),
            Case::CommitLogWithSegments(n),
        ]);
    }
    v.push(Case::RawSyncAtEnd);
    v
}

/// Whether `name` contains one of the comma-separated substrings of `only`; a comma followed by
/// a space does not separate them (case names hold ", ").
fn matches_any(only: &str, name: &str) -> bool {
    let mut parts: Vec<String> = Vec::new();
    for piece in only.split(',') {
        match parts.last_mut() {
            Some(last) if piece.starts_with(' ') => {
                last.push(',');
                last.push_str(piece);
            }
            _ => parts.push(piece.to_string()),
        }
    }
    parts
        .iter()
        .any(|p| !p.is_empty() && name.contains(p.as_str()))
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() {
    let bytes = arg("--mib", 64) << 20;
    let repeat = arg("--repeat", 1);
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("round-commit-bench");
    println!(
        "{:<42} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "case (16 KiB batches)", "MB/s", "of raw/rd", "syncs/s", "CPU s/GB", "rounds/s"
    );
    for _ in 0..repeat {
        let mut raw_per_round = 0.0;
        for case in cases()
            .into_iter()
            .filter(|c| only.as_deref().is_none_or(|o| matches_any(o, &c.name())))
        {
            let dir = base.join("run");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("segs")).unwrap();
            let row = glommio::LocalExecutorBuilder::default()
                .io_memory(16 << 20)
                .blocking_thread_pool_placement(glommio::PoolPlacement::Unbound(SYNC_THREADS))
                .spawn(move || run_case(dir, case, bytes))
                .unwrap()
                .join()
                .unwrap();
            let mb_s = row.bytes as f64 / row.elapsed.as_secs_f64() / 1e6;
            if let Case::RawSyncPerRound(_) = case {
                raw_per_round = mb_s;
            }
            let rounds = row.bytes / (case.files() * BATCH_BYTES) as u64;
            println!(
                "{:<42} {:>8.0} {:>9} {:>9.0} {:>9.2} {:>9.0}",
                row.name,
                mb_s,
                if raw_per_round > 0.0 {
                    format!("{:.2}", mb_s / raw_per_round)
                } else {
                    "-".into()
                },
                row.syncs as f64 / row.elapsed.as_secs_f64(),
                row.cpu_s / (row.bytes as f64 / 1e9),
                rounds as f64 / row.elapsed.as_secs_f64(),
            );
        }
    }
    let _ = std::fs::remove_dir_all(base.join("run"));
}
