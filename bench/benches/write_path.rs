//! Where the write path's CPU goes: raw `DmaFile` sequential 16 KiB writes into a fresh
//! file, a fallocate'd one (unwritten extents) and a pre-written one (a pure overwrite),
//! with an fdatasync every N writes or O_DSYNC; then `PartitionLog` group commit. Each row
//! reports throughput and CPU seconds per GB: the whole process (`RUSAGE_SELF`, which
//! counts the io_uring worker threads `iou-wrk-*`: they are threads of this process), the
//! shard thread alone, the rest (io-wq), and the kernel's own `kworker`/`jbd2` threads
//! (system-wide, so it includes neighbours' noise), plus context switches per MB.
//! Cases run alternately in rounds, so their ratios share the machine's noise.
//!
//! Run: cargo bench -p riffle-bench --bench write_path -- [name filter] [--mib N] [--rounds R]
//! Count io-wq punts per case with
//! `perf stat -e io_uring:io_uring_queue_async_work,io_uring:io_uring_submit_req -- <binary> <case>`.

use bytes::Bytes;
use glommio::io::{DmaFile, OpenOptions};
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_storage::{LogConfig, PartitionLog};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

const WRITE_BYTES: usize = 16 << 10;
const WRITES_IN_FLIGHT_MAX: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// An empty file: every write extends it (allocation, size change).
    Fresh,
    /// fallocate(keep_size = false) over the whole range: unwritten extents.
    Fallocated,
    /// Zeros written and synced first: every write is a pure overwrite.
    Prewritten,
}

#[derive(Clone, Copy)]
enum Sync {
    /// One fdatasync at the end.
    End,
    /// Wait for the writes, then fdatasync, every N writes.
    Every(u64),
    /// Opened O_DSYNC: each write is durable when it completes; no fdatasync.
    Dsync,
}

#[derive(Clone, Copy)]
enum Case {
    /// With `overlap`, each write starts at the last block of the previous one, as the
    /// log's writes do (its partial last block is written again with the next bytes).
    Raw(Layout, Sync, bool),
    /// `partitions` logs on one shard, `appenders` tasks each doing `append` + `flush` of
    /// `batch_bytes` batches, each log with its own group commit.
    Log {
        partitions: usize,
        appenders: u64,
        batch_bytes: usize,
    },
}

impl Case {
    fn name(&self) -> String {
        match self {
            Case::Raw(layout, sync, overlap) => {
                let layout = match layout {
                    Layout::Fresh => "fresh",
                    Layout::Fallocated => "fallocated",
                    Layout::Prewritten => "prewritten",
                };
                let sync = match sync {
                    Sync::End => "sync-at-end".to_string(),
                    Sync::Every(n) => format!("fdatasync/{n}"),
                    Sync::Dsync => "O_DSYNC".to_string(),
                };
                let overlap = if *overlap { " overlapping" } else { "" };
                format!("raw 16k {layout} {sync}{overlap}")
            }
            Case::Log {
                partitions,
                appenders,
                batch_bytes,
            } => format!(
                "log {}k x{appenders} durable, {partitions} partition(s)",
                batch_bytes >> 10
            ),
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Cpu {
    process_s: f64,
    thread_s: f64,
    kernel_threads_s: f64,
    ctx_switches: i64,
}

fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: getrusage only writes the struct it is given; all-zero is a valid rusage.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(who, &mut ru), 0);
        ru
    }
}

fn secs(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

/// utime + stime (seconds) of every kworker and jbd2 kernel thread on the machine.
fn kernel_threads_s() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0u64;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        if !(comm.starts_with("kworker") || comm.starts_with("jbd2")) {
            continue;
        }
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        total += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    }
    total as f64 / ticks
}

fn cpu_now() -> Cpu {
    let p = rusage(libc::RUSAGE_SELF);
    let t = rusage(libc::RUSAGE_THREAD);
    Cpu {
        process_s: secs(p.ru_utime) + secs(p.ru_stime),
        thread_s: secs(t.ru_utime) + secs(t.ru_stime),
        kernel_threads_s: kernel_threads_s(),
        ctx_switches: p.ru_nvcsw + p.ru_nivcsw,
    }
}

/// (name, utime + stime seconds) of this process's io_uring worker threads alive now.
fn io_workers_alive() -> (usize, f64) {
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut n = 0;
    let mut total = 0u64;
    for e in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with("iou-wrk") {
            continue;
        }
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        n += 1;
        total += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    }
    (n, total as f64 / ticks)
}

struct Row {
    name: String,
    bytes: u64,
    syncs: u64,
    elapsed: Duration,
    cpu: Cpu,
    workers: (usize, f64),
}

impl Row {
    fn print(&self) {
        let gb = self.bytes as f64 / 1e9;
        let other = self.cpu.process_s - self.cpu.thread_s;
        println!(
            "{:<44} {:>8.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>7.0} {:>3}/{:<5.2}",
            self.name,
            self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6,
            self.cpu.process_s / gb,
            self.cpu.thread_s / gb,
            other / gb,
            self.cpu.kernel_threads_s / gb,
            self.cpu.ctx_switches as f64 / (self.bytes as f64 / 1e6),
            self.syncs as f64 / self.elapsed.as_secs_f64(),
            self.workers.0,
            self.workers.1,
        );
    }
}

fn header() {
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9}",
        "case", "MB/s", "proc s/GB", "shard", "io-wq", "kworker", "csw/MB", "sync/s", "iou-wrk"
    );
}

fn data_dir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("write-path-bench");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(base)
        .unwrap()
}

async fn open(path: &Path, dsync: bool) -> Rc<DmaFile> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true);
    if dsync {
        o.custom_flags(libc::O_DSYNC);
    }
    Rc::new(o.dma_open(path).await.unwrap())
}

/// Makes the file's layout before the measured writes.
async fn prepare(path: &Path, layout: Layout, bytes: u64) {
    let file = open(path, false).await;
    match layout {
        Layout::Fresh => {}
        Layout::Fallocated => file.pre_allocate(bytes, false).await.unwrap(),
        Layout::Prewritten => {
            let mut pos = 0;
            while pos < bytes {
                let len = (1u64 << 20).min(bytes - pos) as usize;
                let mut buf = file.alloc_dma_buffer(len);
                buf.as_bytes_mut().fill(0);
                file.write_at(buf, pos).await.unwrap();
                pos += len as u64;
            }
        }
    }
    file.fdatasync().await.unwrap();
    file.close_rc().await.unwrap();
}

/// The measured writes; returns (new bytes written, fdatasyncs, elapsed, CPU before, CPU after).
async fn raw(
    path: PathBuf,
    layout: Layout,
    sync: Sync,
    overlap: bool,
    bytes: u64,
) -> (u64, u64, Duration, Cpu, Cpu) {
    prepare(&path, layout, bytes).await;
    let file = open(&path, matches!(sync, Sync::Dsync)).await;
    let stride = if overlap {
        WRITE_BYTES - 4096
    } else {
        WRITE_BYTES
    } as u64;
    let writes = (bytes - WRITE_BYTES as u64) / stride;
    let mut in_flight = VecDeque::new();
    let mut syncs = 0;
    let before = cpu_now();
    let start = Instant::now();
    for i in 0..writes {
        let mut buf = file.alloc_dma_buffer(WRITE_BYTES);
        buf.as_bytes_mut().fill(i as u8 | 1);
        let f = file.clone();
        in_flight.push_back(glommio::spawn_local(async move {
            f.write_at(buf, i * stride).await.unwrap()
        }));
        if in_flight.len() >= WRITES_IN_FLIGHT_MAX {
            in_flight.pop_front().unwrap().await;
        }
        if let Sync::Every(n) = sync {
            if (i + 1) % n == 0 {
                while let Some(t) = in_flight.pop_front() {
                    t.await;
                }
                file.fdatasync().await.unwrap();
                syncs += 1;
            }
        }
    }
    while let Some(t) = in_flight.pop_front() {
        t.await;
    }
    if !matches!(sync, Sync::Dsync) {
        file.fdatasync().await.unwrap();
        syncs += 1;
    }
    let elapsed = start.elapsed();
    let after = cpu_now();
    file.close_rc().await.unwrap();
    (writes * stride, syncs, elapsed, before, after)
}

/// One producer batch of about `size` bytes (uncompressed records of 100-byte values).
fn batch(size: usize) -> Bytes {
    let mut b = RecordBatchBuilder::new(Compression::None, 1_700_000_000_000).producer(1, 0, 0);
    let value = [0x5au8; 100];
    for i in 0..((size - 61) / 110).max(1) as i64 {
        b.append(1_700_000_000_000 + i, Some(b"key-0000"), Some(&value), &[]);
    }
    b.finish()
}

async fn log(
    dir: PathBuf,
    partitions: usize,
    appenders: u64,
    batch_bytes: usize,
    bytes: u64,
) -> (u64, u64, Duration) {
    let batch = batch(batch_bytes);
    let count = bytes / batch.len() as u64 / partitions as u64 / appenders * appenders;
    let mut logs = Vec::new();
    for p in 0..partitions {
        logs.push(
            PartitionLog::open(dir.join(format!("p{p}")), LogConfig::default())
                .await
                .unwrap(),
        );
    }
    let device_flushes_before = riffle_storage::shard_device_flushes();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for log in &logs {
        for _ in 0..appenders {
            let log = log.clone();
            let batch = batch.clone();
            tasks.push(glommio::spawn_local(async move {
                for _ in 0..count / appenders {
                    log.append(batch.clone()).await.unwrap();
                    log.flush().await.unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await;
    }
    let elapsed = start.elapsed();
    // The logs' own fdatasyncs and the device flushes they shared.
    let syncs = logs.iter().map(|l| l.fdatasync_count()).sum::<u64>()
        + (riffle_storage::shard_device_flushes() - device_flushes_before);
    for l in &logs {
        l.close().await.unwrap();
    }
    (
        count * partitions as u64 * batch.len() as u64,
        syncs,
        elapsed,
    )
}

fn run_case(case: Case, bytes: u64) -> Row {
    let dir = data_dir();
    let path = dir.path().to_path_buf();
    let (bytes, syncs, elapsed, before, after, workers) = glommio::LocalExecutorBuilder::default()
        .io_memory(4 << 20)
        .spawn(move || async move {
            let (bytes, syncs, elapsed, before, after) = match case {
                Case::Raw(layout, sync, overlap) => {
                    let file = path.join("raw.log");
                    raw(file, layout, sync, overlap, bytes).await
                }
                Case::Log {
                    partitions,
                    appenders,
                    batch_bytes,
                } => {
                    let before = cpu_now();
                    let (b, s, e) = log(path, partitions, appenders, batch_bytes, bytes).await;
                    (b, s, e, before, cpu_now())
                }
            };
            (bytes, syncs, elapsed, before, after, io_workers_alive())
        })
        .unwrap()
        .join()
        .unwrap();
    Row {
        name: case.name(),
        bytes,
        syncs,
        elapsed,
        cpu: Cpu {
            process_s: after.process_s - before.process_s,
            thread_s: after.thread_s - before.thread_s,
            kernel_threads_s: after.kernel_threads_s - before.kernel_threads_s,
            ctx_switches: after.ctx_switches - before.ctx_switches,
        },
        workers,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut filter = None;
    let mut mib = 256u64;
    let mut rounds = 2;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mib" => mib = args.next().and_then(|v| v.parse().ok()).expect("--mib N"),
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds R")
            }
            a if a.starts_with("--") => {} // cargo bench passes --bench
            a => filter = Some(a.to_string()),
        }
    }
    let mut cases = Vec::new();
    for layout in [Layout::Fresh, Layout::Fallocated, Layout::Prewritten] {
        for sync in [Sync::End, Sync::Every(16), Sync::Every(64), Sync::Dsync] {
            cases.push(Case::Raw(layout, sync, false));
        }
        cases.push(Case::Raw(layout, Sync::Every(16), true));
    }
    for (partitions, appenders) in [(1, 64), (4, 16)] {
        cases.push(Case::Log {
            partitions,
            appenders,
            batch_bytes: 16 << 10,
        });
    }
    cases.push(Case::Log {
        partitions: 4,
        appenders: 16,
        batch_bytes: 1 << 10,
    });
    cases.retain(|c| {
        filter
            .as_ref()
            .is_none_or(|f| c.name().contains(f.as_str()))
    });
    println!(
        "{mib} MiB per case, {} KiB raw writes ({WRITES_IN_FLIGHT_MAX} in flight), {rounds} round(s)",
        WRITE_BYTES >> 10
    );
    header();
    for _ in 0..rounds {
        for &case in &cases {
            run_case(case, mib << 20).print();
        }
    }
}
