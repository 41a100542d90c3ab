//! Opening a partition directory: list segments, scan them (CRC32C, contiguous offsets),
//! trim torn or zero tails, drop empty leftovers after damage, and refuse a damaged
//! segment followed by real data (CorruptSegment). Also the small directory-level file
//! helpers (log start checkpoint, unlink, directory fsync), run off the reactor.

use crate::error::StorageError;
use crate::index::SegmentIndex;
use crate::segment::{
    index_path, log_path, scan_segment, segment_paths, time_index_path, ScanOutcome, SegFile,
    Segment,
};
use crate::spare::SPARE_FILE;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

const START_CHECKPOINT: &str = "log-start-offset";

/// Runs a blocking filesystem call on the executor's blocking thread.
pub(crate) async fn blocking<R: Send + 'static>(
    op: &'static str,
    path: PathBuf,
    f: impl FnOnce(&Path) -> std::io::Result<R> + Send + 'static,
) -> Result<R, StorageError> {
    let p = path.clone();
    glommio::executor()
        .spawn_blocking(move || f(&p))
        .await
        .map_err(|e| StorageError::io(op, path, e))
}

/// Unlinks files that may or may not exist, then syncs the directory.
pub(crate) async fn remove_files(dir: &Path, paths: Vec<PathBuf>) -> Result<(), StorageError> {
    if paths.is_empty() {
        return Ok(());
    }
    blocking("remove", dir.to_path_buf(), move |d| {
        for p in &paths {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::File::open(d)?.sync_all()
    })
    .await
}

/// Durably records the log start offset (write temp, fsync, rename, fsync dir).
pub(crate) async fn write_start_checkpoint(dir: &Path, offset: i64) -> Result<(), StorageError> {
    blocking("write checkpoint", dir.join(START_CHECKPOINT), move |p| {
        use std::io::Write;
        let tmp = p.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{offset}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, p)?;
        std::fs::File::open(p.parent().expect("checkpoint is in the log dir"))?.sync_all()
    })
    .await
}

/// Writes a segment's `.index` and `.timeindex` beside its `.log` (temp + rename, so a
/// file is whole or absent; recovery rebuilds indexes from the log either way).
pub(crate) async fn write_indexes(
    log_path: &Path,
    (offset_index, time_index): (Vec<u8>, Vec<u8>),
) -> Result<(), StorageError> {
    crate::failpoints::inject("index::write", log_path)
        .map_err(|e| StorageError::io("write index", log_path, e))?;
    blocking("write index", log_path.to_path_buf(), move |p| {
        use std::io::Write;
        for (ext, bytes) in [("index", &offset_index), ("timeindex", &time_index)] {
            let path = p.with_extension(ext);
            let tmp = p.with_extension(format!("{ext}.tmp"));
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(())
    })
    .await
}

/// The saved index of a segment, if both files exist and decode consistently.
async fn read_indexes(
    dir: &Path,
    base: i64,
    interval_bytes: u32,
) -> Result<Option<SegmentIndex>, StorageError> {
    let paths = (index_path(dir, base), time_index_path(dir, base));
    let files = blocking("read index", paths.0.clone(), move |_| {
        let read = |p: &Path| match std::fs::read(p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
        Ok((read(&paths.0)?, read(&paths.1)?))
    })
    .await?;
    Ok(match files {
        (Some(o), Some(t)) => SegmentIndex::decode(base, interval_bytes, &o, &t),
        _ => None,
    })
}

fn is_segment_file(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

pub(crate) struct Recovered {
    pub segments: VecDeque<Segment>,
    pub log_start_offset: i64,
    /// The directory holds a spare segment file (`spare`).
    pub spare: bool,
}

/// One segment file as the recovery scan found it.
struct Scanned {
    base: i64,
    file: Rc<SegFile>,
    outcome: ScanOutcome,
    /// Its `.index`/`.timeindex` existed and matched.
    had_index: bool,
}

/// Opens a partition directory: scans every segment, keeps the whole batches up to the
/// first damage (trimming the torn or zeroed tail, dropping later empty segments) and
/// refuses damage followed by real data.
pub(crate) async fn recover(
    dir: &Path,
    index_interval_bytes: u32,
    now_ms: i64,
) -> Result<Recovered, StorageError> {
    let Listing {
        bases,
        checkpoint,
        spare,
    } = list_segments(dir).await?;
    let mut scanned = Vec::with_capacity(bases.len());
    let last_listed = bases.len().saturating_sub(1);
    for (i, base) in bases.into_iter().enumerate() {
        let file = SegFile::open(log_path(dir, base)).await?;
        let saved = read_indexes(dir, base, index_interval_bytes).await?;
        let had_index = saved.is_some();
        let outcome = scan_segment(&file, base, index_interval_bytes, saved).await?;
        if i < last_listed {
            // Its descriptor goes to the shard's cache at once: a log of many segments never
            // holds them all open, not even while it is recovered.
            file.seal();
        }
        scanned.push(Scanned {
            base,
            file,
            outcome,
            had_index,
        });
    }
    let keep = intact_prefix(&scanned)?;
    let dropped: Vec<PathBuf> = scanned
        .drain(keep..)
        .flat_map(|s| segment_paths(dir, s.base))
        .collect();
    if !dropped.is_empty() {
        tracing::warn!(dir = %dir.display(), files = dropped.len(), "recovery drops segments after damage");
        remove_files(dir, dropped).await?;
    }
    let mut segments = VecDeque::with_capacity(scanned.len());
    let last = scanned.len().saturating_sub(1);
    for (i, s) in scanned.into_iter().enumerate() {
        segments.push_back(settle(dir, s, i == last, now_ms).await?);
    }
    let log_start_offset = log_start_offset(&segments, checkpoint);
    Ok(Recovered {
        segments,
        log_start_offset,
        spare,
    })
}

/// What a log directory holds.
struct Listing {
    /// The segment files' base offsets, sorted.
    bases: Vec<i64>,
    /// The saved log start offset, if any.
    checkpoint: Option<i64>,
    spare: bool,
}

async fn list_segments(dir: &Path) -> Result<Listing, StorageError> {
    let mut listing = blocking("open dir", dir.to_path_buf(), |d| {
        std::fs::create_dir_all(d)?;
        let mut bases = Vec::new();
        let mut spare = false;
        for entry in std::fs::read_dir(d)? {
            let name = entry?.file_name();
            if let Some(base) = name.to_str().and_then(is_segment_file) {
                bases.push(base);
            }
            spare |= name == SPARE_FILE;
        }
        let checkpoint = std::fs::read_to_string(d.join(START_CHECKPOINT))
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok());
        Ok(Listing {
            bases,
            checkpoint,
            spare,
        })
    })
    .await?;
    listing.bases.sort_unstable();
    Ok(listing)
}

/// How many segments to keep: up to and including the first one that is damaged or does
/// not reach the next one's base, or CorruptSegment if a later segment holds data.
fn intact_prefix(scanned: &[Scanned]) -> Result<usize, StorageError> {
    for (i, s) in scanned.iter().enumerate() {
        let o = &s.outcome;
        let next_base = scanned.get(i + 1).map(|n| n.base);
        // Zeros after the last batch of a complete segment are pre-allocation, not damage.
        if next_base.is_none_or(|nb| o.next_offset == nb) {
            continue;
        }
        if scanned[i + 1..]
            .iter()
            .any(|later| later.outcome.batches > 0)
        {
            return Err(StorageError::CorruptSegment {
                path: s.file.path.clone(),
                position: o.valid_len,
                reason: format!(
                    "{} (segment ends at offset {}, next segment starts at {})",
                    o.damage.unwrap_or("offset gap"),
                    o.next_offset,
                    next_base.unwrap_or(-1)
                ),
            });
        }
        return Ok(i + 1);
    }
    Ok(scanned.len())
}

/// Trims a kept segment to its valid bytes and leaves its index files right: a sealed
/// segment keeps (or gets) them, the last one loses stale ones (close writes fresh ones).
async fn settle(
    dir: &Path,
    s: Scanned,
    is_last: bool,
    now_ms: i64,
) -> Result<Segment, StorageError> {
    let Scanned {
        base,
        file,
        outcome: o,
        had_index,
    } = s;
    if is_last {
        // The active segment (perhaps an earlier one, when damage dropped those after it).
        file.unseal();
    }
    let trimmed = file.allocated.get() != o.valid_len;
    if trimmed {
        if let Some(reason) = o.damage.filter(|_| is_last) {
            tracing::warn!(path = %file.path.display(), position = o.valid_len, reason, "recovery truncates the log tail");
        }
        // Physically trim: stale bytes must never be scanned again after new appends.
        file.truncate(o.valid_len).await?;
        file.sync().await?;
    }
    if !is_last && (!had_index || trimmed) {
        // A sealed segment keeps index files: the next open skips scanning it.
        let indexes = (o.index.encode_offset_index(), o.index.encode_time_index());
        write_indexes(&file.path, indexes).await?;
    } else if is_last && had_index && trimmed {
        // Saved indexes may describe cut bytes; close writes fresh ones.
        remove_files(dir, vec![index_path(dir, base), time_index_path(dir, base)]).await?;
    }
    Ok(Segment {
        base_offset: base,
        next_offset: o.next_offset,
        size: o.valid_len,
        durable_size: o.valid_len,
        file,
        index: o.index,
        created_ms: now_ms,
    })
}

/// The saved log start offset kept within the recovered segments, or the first one's base.
fn log_start_offset(segments: &VecDeque<Segment>, checkpoint: Option<i64>) -> i64 {
    let first_base = segments.front().map(|s| s.base_offset);
    match (first_base, checkpoint) {
        (Some(b), Some(c)) => {
            let end = segments.back().map_or(b, |s| s.next_offset);
            c.clamp(b, end)
        }
        (Some(b), None) => b,
        (None, c) => c.unwrap_or(0).max(0),
    }
}
