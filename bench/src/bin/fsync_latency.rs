//! fdatasync latency of the disk under a directory: the physical floor of an acks=all
//! produce. One thread appends `--block-bytes` (16 KiB) with O_DIRECT and fdatasyncs after every
//! write, `--iterations` times, and prints p50/p99/p99.9 of the write+fdatasync round trip.
//!
//! Three ways the file can be laid out, because they cost the file system different work:
//! - `overwrite`: the file was written (zeros) and synced first, so fdatasync only flushes the
//!   data and the device cache: the floor (a log on pre-zeroed or recycled segments).
//! - `fallocate`: the file was fallocate'd (unwritten extents), so each write converts extents
//!   and fdatasync commits that metadata to the journal (a log on fallocate'd segments).
//! - `extend`: each write grows the file, so fdatasync also commits the new size.
//!
//! Run: fsync_latency --dir DIR [--iterations 3000] [--block-bytes 16384] [--mode overwrite,...]
//! Output: one line per mode, `mode=… iterations=… p50_us=… p99_us=… p999_us=… max_us=…`.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hdrhistogram::Histogram;

/// O_DIRECT needs the buffer, offset and length aligned to the logical block size.
const ALIGN_BYTES: usize = 4096;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Overwrite,
    Fallocate,
    Extend,
}

impl Mode {
    fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "overwrite" => Ok(Mode::Overwrite),
            "fallocate" => Ok(Mode::Fallocate),
            "extend" => Ok(Mode::Extend),
            _ => Err(format!("unknown mode {s:?} (overwrite, fallocate, extend)")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Overwrite => "overwrite",
            Mode::Fallocate => "fallocate",
            Mode::Extend => "extend",
        }
    }
}

struct Args {
    dir: PathBuf,
    iterations: u64,
    block_bytes: usize,
    modes: Vec<Mode>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: PathBuf::new(),
        iterations: 3000,
        block_bytes: 16 << 10,
        modes: vec![Mode::Overwrite, Mode::Fallocate, Mode::Extend],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value()?),
            "--iterations" => args.iterations = value()?.parse().map_err(|e| format!("{e}"))?,
            "--block-bytes" => args.block_bytes = value()?.parse().map_err(|e| format!("{e}"))?,
            "--mode" => {
                args.modes = value()?
                    .split(',')
                    .map(Mode::parse)
                    .collect::<Result<_, _>>()?
            }
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if args.dir.as_os_str().is_empty() {
        return Err("--dir is required".into());
    }
    if args.block_bytes == 0 || !args.block_bytes.is_multiple_of(ALIGN_BYTES) {
        return Err(format!("--block-bytes must be a multiple of {ALIGN_BYTES}"));
    }
    Ok(args)
}

/// An aligned slice inside a plain Vec (no allocator tricks): `len` bytes of printable filler.
struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> Self {
        let mut storage = vec![0u8; len + ALIGN_BYTES];
        let start = storage.as_ptr().align_offset(ALIGN_BYTES);
        for (i, b) in storage[start..start + len].iter_mut().enumerate() {
            *b = b'a' + (i % 26) as u8;
        }
        AlignedBuf {
            storage,
            start,
            len,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

fn prepare(path: &Path, mode: Mode, total_bytes: u64) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    match mode {
        Mode::Overwrite => {
            let zeros = vec![0u8; 1 << 20];
            let mut left = total_bytes;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                f.write_all(&zeros[..n])?;
                left -= n as u64;
            }
        }
        Mode::Fallocate => {
            // SAFETY: fallocate on a file descriptor we own; no memory is passed.
            let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, total_bytes as libc::off_t) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Mode::Extend => {}
    }
    f.sync_all()?;
    drop(f);
    // The directory entry too, so no sync below carries it.
    File::open(path.parent().expect("a file in a directory"))?.sync_all()
}

fn measure(args: &Args, mode: Mode) -> std::io::Result<Histogram<u64>> {
    let path = args.dir.join(format!("fsync-latency-{}.dat", mode.name()));
    let total_bytes = args.iterations * args.block_bytes as u64;
    prepare(&path, mode, total_bytes)?;
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)?;
    let buf = AlignedBuf::new(args.block_bytes);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for i in 0..args.iterations {
        let start = Instant::now();
        file.write_all_at(buf.bytes(), i * args.block_bytes as u64)?;
        file.sync_data()?;
        hist.saturating_record((start.elapsed().as_micros() as u64).max(1));
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(hist)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fsync_latency: {e}");
            std::process::exit(2);
        }
    };
    for &mode in &args.modes {
        match measure(&args, mode) {
            Ok(h) => println!(
                "mode={} iterations={} block_bytes={} p50_us={} p99_us={} p999_us={} max_us={} mean_us={:.0}",
                mode.name(),
                h.len(),
                args.block_bytes,
                h.value_at_quantile(0.50),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max(),
                h.mean()
            ),
            Err(e) => {
                eprintln!("fsync_latency: {} in {}: {e}", mode.name(), args.dir.display());
                std::process::exit(1);
            }
        }
    }
}
