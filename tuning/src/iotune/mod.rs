//! `riffle-tune iotune`: measures the disk under a directory with io_uring and O_DIRECT
//! (sequential bandwidth by block size and queue depth, random 4 KiB reads, fdatasync latency
//! and parallelism), prints a table and writes `io-properties.toml` there. Bounded in time
//! (`--duration`) and in disk space (`--file-bytes`, at most a quarter of the free space); the
//! scratch directory is removed at the end, also after an error.

mod measure;
mod properties;
mod sync;

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};

use glommio::io::{DmaFile, OpenOptions};
use glommio::{LocalExecutorBuilder, Placement};

use measure::{Job, Pattern};
use properties::{Bandwidth, IoProperties, RandomRead, SyncLatency, SyncParallel};

pub(crate) const FILE_BYTES_DEFAULT: u64 = 1 << 30;
pub(crate) const DURATION_MAX: Duration = Duration::from_secs(3600);
/// The file `riffle serve` reads from its data dir.
pub(crate) const PROPERTIES_FILE: &str = "io-properties.toml";
/// Below this the figures say more about the device's cache than about the disk.
const FILE_BYTES_MIN: u64 = 16 << 20;
/// statfs(2)'s f_type of ramfs (linux/magic.h), which nix does not name.
const RAMFS_MAGIC: i64 = 0x8584_58f6;
/// The scratch file takes at most this fraction of the free space.
const FREE_SPACE_DIVISOR: u64 = 4;
/// Share of the duration spent writing the scratch file before measuring over it.
const PREPARE_SHARE: f64 = 0.15;
/// No measurement is shorter than this, even with a tiny `--duration`.
const PHASE_MIN: Duration = Duration::from_millis(50);
const PREPARE_BLOCK_BYTES: usize = 1 << 20;
const PREPARE_QUEUE_DEPTH: usize = 4;
const BLOCK_SIZES: [usize; 4] = [4 << 10, 64 << 10, 256 << 10, 1 << 20];
const QUEUE_DEPTHS: [usize; 3] = [1, 4, 16];
const RANDOM_READ_BYTES: usize = 4 << 10;
const RANDOM_READ_DEPTHS: [usize; 2] = [1, 32];
const SYNC_APPEND_BYTES: [usize; 2] = [4 << 10, 64 << 10];
const SYNC_THREADS: [usize; 4] = [1, 2, 4, 8];
/// glommio io memory for the measuring executor: the broker's default, so that iotune runs
/// where the broker does (`ulimit -l` of 8 MiB); larger buffers come from the heap.
const IO_MEMORY_BYTES: usize = 1 << 20;
/// Measurements after preparing: sequential writes and reads, random reads, sync latencies,
/// parallel syncs.
const PHASES: usize = 2 * BLOCK_SIZES.len() * QUEUE_DEPTHS.len()
    + RANDOM_READ_DEPTHS.len()
    + 2 * SYNC_APPEND_BYTES.len()
    + SYNC_THREADS.len();

#[derive(Debug, thiserror::Error)]
pub(crate) enum IotuneError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}: {1}")]
    File(String, std::io::Error),
    #[error("{0} is not a directory")]
    NotADirectory(String),
    #[error("{0} is on {1}, not a disk: O_DIRECT would measure memory")]
    NotADisk(String, &'static str),
    #[error("{dir} has {free_bytes} bytes free; iotune needs {need_bytes} (a quarter of the free space at most is used)")]
    NoSpace {
        dir: String,
        free_bytes: u64,
        need_bytes: u64,
    },
    #[error("the disk wrote less than {0} bytes in the preparing time: too slow to measure")]
    TooSlow(usize),
    #[error("short read at {pos}: the scratch file changed under iotune")]
    ShortRead { pos: u64 },
    #[error("cannot start the io_uring executor: {0}")]
    Executor(String),
    #[error("interrupted; the scratch files are removed")]
    Interrupted,
    #[error("a measuring thread panicked")]
    ThreadPanicked,
    #[error("writing io-properties.toml: {0}")]
    Toml(#[from] toml::ser::Error),
}

/// Set by SIGINT/SIGTERM: every measuring loop stops and the scratch directory is removed.
static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(Default::default);

pub(crate) fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// The first Ctrl-C ends the run cleanly, a second one exits at once.
fn handle_signals() -> Result<(), IotuneError> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, STOP.clone())?;
        signal_hook::flag::register(signal, STOP.clone())?;
    }
    Ok(())
}

pub(crate) struct Options {
    pub dir: PathBuf,
    pub duration: Duration,
    pub file_bytes: u64,
    pub progress: bool,
}

/// The scratch directory, removed when dropped (at the end or on an error).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The line on stderr that says which measurement is running.
struct Progress {
    enabled: bool,
    done: usize,
}

impl Progress {
    fn step(&mut self, label: &str) {
        self.done += 1;
        if !self.enabled {
            return;
        }
        // On a terminal one line is rewritten in place; in a log, one line per measurement.
        if std::io::stderr().is_terminal() {
            eprint!("\r\x1b[K[{}/{}] {label}", self.done, PHASES + 1);
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("[{}/{}] {label}", self.done, PHASES + 1);
        }
    }

    fn finish(&self) {
        if self.enabled && std::io::stderr().is_terminal() {
            eprintln!("\r\x1b[Kmeasured {} phases", self.done);
        }
    }
}

/// Refuses memory file systems and sizes the scratch file from the free space.
fn file_bytes_for(dir: &Path, wanted: u64) -> Result<u64, IotuneError> {
    let shown = dir.display().to_string();
    if !dir.is_dir() {
        return Err(IotuneError::NotADirectory(shown));
    }
    let fs =
        nix::sys::statfs::statfs(dir).map_err(|e| IotuneError::File(shown.clone(), e.into()))?;
    let kind = fs.filesystem_type();
    if kind == nix::sys::statfs::TMPFS_MAGIC || kind.0 as i64 == RAMFS_MAGIC {
        return Err(IotuneError::NotADisk(shown, "tmpfs/ramfs"));
    }
    let vfs =
        nix::sys::statvfs::statvfs(dir).map_err(|e| IotuneError::File(shown.clone(), e.into()))?;
    let free_bytes = vfs.blocks_available() as u64 * vfs.fragment_size() as u64;
    let bytes = wanted.min(free_bytes / FREE_SPACE_DIVISOR) / PREPARE_BLOCK_BYTES as u64
        * PREPARE_BLOCK_BYTES as u64;
    if bytes < FILE_BYTES_MIN {
        return Err(IotuneError::NoSpace {
            dir: shown,
            free_bytes,
            need_bytes: FILE_BYTES_MIN * FREE_SPACE_DIVISOR,
        });
    }
    Ok(bytes)
}

/// What the io_uring part measures.
struct Bandwidths {
    region_bytes: u64,
    seq_write: Vec<Bandwidth>,
    seq_read: Vec<Bandwidth>,
    random_read: Vec<RandomRead>,
}

fn glommio_err(e: glommio::GlommioError<()>) -> IotuneError {
    IotuneError::Io(std::io::Error::other(e.to_string()))
}

fn job(
    pattern: Pattern,
    block_bytes: usize,
    queue_depth: usize,
    region_bytes: u64,
    duration: Duration,
) -> Job {
    Job {
        pattern,
        block_bytes,
        queue_depth,
        duration,
        region_bytes,
        one_pass: false,
    }
}

/// Reserves and writes the scratch file for at most `prepare`; returns the bytes written,
/// over which every later measurement runs.
async fn prepare_file(
    file: &DmaFile,
    file_bytes: u64,
    prepare: Duration,
    progress: &mut Progress,
) -> Result<u64, IotuneError> {
    file.pre_allocate(file_bytes, false)
        .await
        .map_err(glommio_err)?;
    progress.step("writing the scratch file");
    let prepare_job = Job {
        one_pass: true,
        ..job(
            Pattern::SeqWrite,
            PREPARE_BLOCK_BYTES,
            PREPARE_QUEUE_DEPTH,
            file_bytes,
            prepare,
        )
    };
    let written = measure::run(file, prepare_job).await?;
    file.fdatasync().await.map_err(glommio_err)?;
    let region_bytes = written.ops * PREPARE_BLOCK_BYTES as u64;
    if stopped() {
        return Err(IotuneError::Interrupted);
    }
    // The largest block at the deepest queue must fit, or the sequential jobs overlap themselves.
    let needed_bytes = BLOCK_SIZES[BLOCK_SIZES.len() - 1] * QUEUE_DEPTHS[QUEUE_DEPTHS.len() - 1];
    if region_bytes < needed_bytes as u64 {
        return Err(IotuneError::TooSlow(needed_bytes));
    }
    Ok(region_bytes)
}

/// Sequential writes, then reads, at every block size and queue depth.
async fn sequential(
    file: &DmaFile,
    phase: Duration,
    progress: &mut Progress,
    out: &mut Bandwidths,
) -> Result<(), IotuneError> {
    for (pattern, name) in [(Pattern::SeqWrite, "write"), (Pattern::SeqRead, "read")] {
        for block_bytes in BLOCK_SIZES {
            for queue_depth in QUEUE_DEPTHS {
                let o = measure::run(
                    file,
                    job(pattern, block_bytes, queue_depth, out.region_bytes, phase),
                )
                .await?;
                let mb_per_s = round1(o.mb_per_s(block_bytes));
                progress.step(&format!(
                    "sequential {name} {} qd {queue_depth}: {mb_per_s:.0} MB/s",
                    kib(block_bytes)
                ));
                let b = Bandwidth {
                    block_bytes,
                    queue_depth,
                    mb_per_s,
                };
                match pattern {
                    Pattern::SeqWrite => out.seq_write.push(b),
                    _ => out.seq_read.push(b),
                }
            }
        }
    }
    Ok(())
}

/// Everything measured through io_uring: the scratch file, sequential and random I/O.
async fn bandwidth_phases(
    path: &Path,
    file_bytes: u64,
    prepare: Duration,
    phase: Duration,
    progress: &mut Progress,
) -> Result<Bandwidths, IotuneError> {
    let file: DmaFile = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(path)
        .await
        .map_err(glommio_err)?;
    let mut out = Bandwidths {
        region_bytes: prepare_file(&file, file_bytes, prepare, progress).await?,
        seq_write: Vec::new(),
        seq_read: Vec::new(),
        random_read: Vec::new(),
    };
    sequential(&file, phase, progress, &mut out).await?;
    for queue_depth in RANDOM_READ_DEPTHS {
        let random = job(
            Pattern::RandomRead,
            RANDOM_READ_BYTES,
            queue_depth,
            out.region_bytes,
            phase,
        );
        let o = measure::run(&file, random).await?;
        progress.step(&format!(
            "random 4 KiB read qd {queue_depth}: {:.0} IOPS",
            o.per_s()
        ));
        out.random_read.push(RandomRead {
            block_bytes: RANDOM_READ_BYTES,
            queue_depth,
            iops: o.per_s().round(),
        });
    }
    file.close().await.map_err(glommio_err)?;
    Ok(out)
}

/// Figures keep one decimal: the rest is noise.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn kib(bytes: usize) -> String {
    format!("{} KiB", bytes >> 10)
}

/// fdatasync latency after appends over the pre-written `data` file and over new files in
/// `scratch`, then syncs per second at each thread count.
fn sync_phases(
    scratch: &Path,
    data: &Path,
    region_bytes: u64,
    phase: Duration,
    progress: &mut Progress,
) -> Result<(Vec<SyncLatency>, Vec<SyncParallel>), IotuneError> {
    let mut latencies = Vec::new();
    for prewritten in [true, false] {
        for append_bytes in SYNC_APPEND_BYTES {
            let path = match prewritten {
                true => data.to_path_buf(),
                false => scratch.join(format!("new-{append_bytes}")),
            };
            let s = sync::latency(&path, prewritten, append_bytes, region_bytes, phase)?;
            progress.step(&format!(
                "fdatasync after {} over {} blocks: p99 {} us",
                kib(append_bytes),
                s.blocks,
                s.p99_us
            ));
            latencies.push(s);
        }
    }
    let mut parallel = Vec::new();
    for threads in SYNC_THREADS {
        let p = sync::parallel(scratch, threads, phase)?;
        progress.step(&format!(
            "{threads} threads syncing: {:.0} syncs/s",
            p.syncs_per_s
        ));
        parallel.push(p);
    }
    Ok((latencies, parallel))
}

/// Runs every measurement, prints the table, writes `DIR/io-properties.toml`.
pub(crate) fn run(opts: &Options) -> Result<IoProperties, IotuneError> {
    let began = Instant::now();
    let file_bytes = file_bytes_for(&opts.dir, opts.file_bytes)?;
    handle_signals()?;
    let scratch = Scratch(
        opts.dir
            .join(format!(".riffle-iotune-{}", std::process::id())),
    );
    std::fs::create_dir(&scratch.0)
        .map_err(|e| IotuneError::File(scratch.0.display().to_string(), e))?;
    let prepare = opts.duration.mul_f64(PREPARE_SHARE).max(PHASE_MIN);
    let phase = opts
        .duration
        .mul_f64(1.0 - PREPARE_SHARE)
        .div_f64(PHASES as f64)
        .max(PHASE_MIN);
    let mut progress = Progress {
        enabled: opts.progress,
        done: 0,
    };
    let data = scratch.0.join("data");
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .map_err(|e| IotuneError::Executor(e.to_string()))?;
    let bw = executor.run(bandwidth_phases(
        &data,
        file_bytes,
        prepare,
        phase,
        &mut progress,
    ))?;
    drop(executor);
    let (fdatasync, fdatasync_parallel) =
        sync_phases(&scratch.0, &data, bw.region_bytes, phase, &mut progress)?;
    progress.finish();
    if stopped() {
        return Err(IotuneError::Interrupted);
    }
    drop(scratch);

    let props = IoProperties {
        disk: properties::Disk {
            dir: opts.dir.display().to_string(),
            measured_unix_s: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            duration_ms: began.elapsed().as_millis() as u64,
            file_bytes: bw.region_bytes,
        },
        recommended: properties::recommend(&bw.seq_write, &fdatasync_parallel),
        seq_write: bw.seq_write,
        seq_read: bw.seq_read,
        random_read: bw.random_read,
        fdatasync,
        fdatasync_parallel,
    };
    let out = opts.dir.join(PROPERTIES_FILE);
    std::fs::write(&out, props.to_toml()?)
        .map_err(|e| IotuneError::File(out.display().to_string(), e))?;
    print!("{}", table(&props));
    println!("wrote {}", out.display());
    Ok(props)
}

/// The figures as a text table.
fn table(p: &IoProperties) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "iotune {}: scratch file {} MiB, {:.1} s",
        p.disk.dir,
        p.disk.file_bytes >> 20,
        p.disk.duration_ms as f64 / 1000.0
    );
    for (name, rows) in [
        ("sequential write", &p.seq_write),
        ("sequential read", &p.seq_read),
    ] {
        let _ = write!(s, "\n{name:<18} MB/s");
        for qd in QUEUE_DEPTHS {
            let _ = write!(s, "{:>10}", format!("qd {qd}"));
        }
        s.push('\n');
        for block in BLOCK_SIZES {
            let _ = write!(s, "  {:<21}", kib(block));
            for b in rows.iter().filter(|b| b.block_bytes == block) {
                let _ = write!(s, "{:>10.0}", b.mb_per_s);
            }
            s.push('\n');
        }
    }
    let _ = writeln!(s, "\nrandom 4 KiB read");
    for r in &p.random_read {
        let _ = writeln!(s, "  qd {:<20}{:>10.0} IOPS", r.queue_depth, r.iops);
    }
    let _ = writeln!(
        s,
        "\nfdatasync after each append       count    p50 us    p99 us  p99.9 us"
    );
    for f in &p.fdatasync {
        let label = format!("{} over {} blocks", kib(f.append_bytes), f.blocks);
        let _ = writeln!(
            s,
            "  {label:<30}{:>8}{:>10}{:>10}{:>10}",
            f.count, f.p50_us, f.p99_us, f.p999_us
        );
    }
    let _ = writeln!(
        s,
        "\nparallel fdatasync (4 KiB, a file per thread)   syncs/s    p50 us"
    );
    for f in &p.fdatasync_parallel {
        let _ = writeln!(
            s,
            "  {:<2} threads{:>38.0}{:>10}",
            f.threads, f.syncs_per_s, f.p50_us
        );
    }
    let r = &p.recommended;
    let _ = writeln!(
        s,
        "\nrecommended: write_behind_depth = {}, fdatasync_parallelism = {}",
        r.write_behind_depth, r.fdatasync_parallelism
    );
    s
}
