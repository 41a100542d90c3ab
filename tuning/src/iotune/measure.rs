//! Bandwidth and IOPS at a given block size and queue depth, measured through glommio (io_uring,
//! O_DIRECT) as the broker's storage issues its I/O: `queue_depth` loops share one file, each
//! with one operation in flight.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::{DmaBuffer, DmaFile};

use super::IotuneError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pattern {
    SeqWrite,
    SeqRead,
    RandomRead,
}

/// One measurement: what to do, for how long, over which part of the file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    pub pattern: Pattern,
    pub block_bytes: usize,
    pub queue_depth: usize,
    pub duration: Duration,
    /// Bytes at the start of the file the job may touch.
    pub region_bytes: u64,
    /// Stop after one pass over the region instead of wrapping around (the preparing write).
    pub one_pass: bool,
}

/// Operations completed and the time they took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub ops: u64,
    pub elapsed: Duration,
}

impl Outcome {
    pub(crate) fn mb_per_s(&self, block_bytes: usize) -> f64 {
        self.ops as f64 * block_bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub(crate) fn per_s(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// State the job's loops share; they all run on one executor thread.
struct Shared<'a> {
    file: &'a DmaFile,
    job: Job,
    deadline: Instant,
    next_block: Cell<u64>,
    rng: Cell<u64>,
    ops: Cell<u64>,
}

impl Shared<'_> {
    /// The next block's position, or `None` when a one-pass job has covered its region.
    fn next_pos(&self) -> Option<u64> {
        let blocks = self.job.region_bytes / self.job.block_bytes as u64;
        let block = match self.job.pattern {
            Pattern::RandomRead => {
                // xorshift64: uniform enough to defeat read-ahead and device caches' locality.
                let mut x = self.rng.get();
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                self.rng.set(x);
                x % blocks
            }
            Pattern::SeqWrite | Pattern::SeqRead => {
                let b = self.next_block.get();
                if self.job.one_pass && b >= blocks {
                    return None;
                }
                self.next_block.set(b + 1);
                b % blocks
            }
        };
        Some(block * self.job.block_bytes as u64)
    }
}

fn io_error(e: glommio::GlommioError<()>) -> IotuneError {
    IotuneError::Io(std::io::Error::other(e.to_string()))
}

async fn one_loop(shared: &Shared<'_>) -> Result<(), IotuneError> {
    let job = shared.job;
    let mut buf: DmaBuffer = shared.file.alloc_dma_buffer(job.block_bytes);
    buf.as_bytes_mut().fill(0x5a);
    let buf = Rc::new(buf);
    while Instant::now() < shared.deadline && !super::stopped() {
        let Some(pos) = shared.next_pos() else {
            break;
        };
        match job.pattern {
            Pattern::SeqWrite => {
                shared
                    .file
                    .write_rc_at(buf.clone(), pos)
                    .await
                    .map_err(io_error)?;
            }
            Pattern::SeqRead | Pattern::RandomRead => {
                let read = shared
                    .file
                    .read_at_aligned(pos, job.block_bytes)
                    .await
                    .map_err(io_error)?;
                if read.len() != job.block_bytes {
                    return Err(IotuneError::ShortRead { pos });
                }
            }
        }
        shared.ops.set(shared.ops.get() + 1);
    }
    Ok(())
}

/// Runs `job` on `file` with `job.queue_depth` operations in flight.
pub(crate) async fn run(file: &DmaFile, job: Job) -> Result<Outcome, IotuneError> {
    assert!(job.region_bytes >= job.block_bytes as u64 && job.queue_depth > 0);
    let start = Instant::now();
    let shared = Shared {
        file,
        job,
        deadline: start + job.duration,
        next_block: Cell::new(0),
        rng: Cell::new(0x9e37_79b9_7f4a_7c15),
        ops: Cell::new(0),
    };
    let loops = (0..job.queue_depth).map(|_| one_loop(&shared));
    for result in futures::future::join_all(loops).await {
        result?;
    }
    Ok(Outcome {
        ops: shared.ops.get(),
        elapsed: start.elapsed(),
    })
}
