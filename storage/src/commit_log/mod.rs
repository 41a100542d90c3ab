//! A shard's commit log: every partition of the shard appends its batches here, and one
//! fdatasync per round makes the whole round durable, whatever the partition count
//! (ScyllaDB keeps one commitlog per shard the same way). Files are written with zeros
//! once, then recycled: rounds overwrite written blocks, so fdatasync carries no metadata.
//! A file is reused only after the owner checkpointed the partitions it holds (their
//! segments made durable past its records); at start-up `replay` returns what the files
//! hold. Shard-local: one per shard, from start-up to shutdown.

mod frame;
mod round_buf;

pub use frame::PartitionId;

use crate::error::{Failure, StorageError};
use crate::event::Event;
use crate::segment::{align_up, ALIGN};
use bytes::Bytes;
use frame::Out as _;
use glommio::io::{DmaFile, OpenOptions};
use round_buf::RoundBuf;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;

/// Bytes of records waiting for the next round before appenders wait for it to start.
pub const ROUND_BYTES_MAX: usize = 8 << 20;
/// Zeros are written into a new file in writes of this size.
const ZERO_WRITE_BYTES: usize = 1 << 20;
/// Smallest commit-log file: a full round must fit twice.
pub const FILE_BYTES_MIN: u64 = 2 * ROUND_BYTES_MAX as u64;

/// Commit-log settings.
#[derive(Clone, Debug)]
pub struct CommitLogConfig {
    /// Size of each commit-log file (at least `FILE_BYTES_MIN`). Default 64 MiB.
    pub file_bytes: u64,
    /// Files kept per shard: writing waits for a checkpoint when every one holds records
    /// not yet checkpointed. Default 4.
    pub files_max: usize,
}

impl Default for CommitLogConfig {
    fn default() -> Self {
        CommitLogConfig {
            file_bytes: 64 << 20,
            files_max: 4,
        }
    }
}

/// Makes the given partitions' segments durable up to (at least) the given offsets, so the
/// commit-log file holding those records can be reused. Supplied by the owner of the logs.
pub type Checkpoint =
    Rc<dyn Fn(Vec<(PartitionId, i64)>) -> Pin<Box<dyn Future<Output = Result<(), StorageError>>>>>;

/// One batch read back from the commit log at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayedRecord {
    pub partition: PartitionId,
    pub base_offset: i64,
    pub last_offset: i64,
    pub batch: Bytes,
}

fn file_path(dir: &Path, slot: usize) -> PathBuf {
    dir.join(format!("commitlog-{slot:04}.log"))
}

/// A commit-log file and the highest offset of each partition written into its current use.
struct Slot {
    file: Rc<DmaFile>,
    path: PathBuf,
    generation: u64,
    last_offsets: HashMap<PartitionId, i64>,
}

/// Records appended and not yet written, with the round they belong to.
struct Round {
    bytes: RoundBuf,
    last_offsets: Vec<(PartitionId, i64)>,
}

impl Round {
    /// An empty round whose buffer, at its first record, takes `hint` bytes.
    fn new(hint: usize) -> Round {
        Round {
            bytes: RoundBuf::new(hint),
            last_offsets: Vec::new(),
        }
    }
}

struct State {
    config: CommitLogConfig,
    /// The files in use, oldest first; the last one is written.
    slots: std::collections::VecDeque<Slot>,
    /// Files whose records are all checkpointed, free to reuse.
    free: Vec<(PathBuf, Rc<DmaFile>)>,
    /// Slot numbers handed out so far (file names).
    slots_made: usize,
    next_generation: u64,
    /// End of the records in the active file (block-aligned: rounds are padded).
    end: u64,
    pending: Round,
    /// The size of the round last written: the next round's first allocation.
    last_round_bytes: usize,
    /// Round numbers: the one collecting appends, and the last one made durable.
    round: u64,
    durable_round: u64,
    failed: Option<Failure>,
    closed: bool,
    /// A background checkpoint of the oldest file is running (`checkpoint_ahead`).
    checkpointing: bool,
    /// A background task is writing the next new file's zeros (`make_ahead`).
    making: bool,
    /// A file made ahead failed (a full disk, say): the switch makes the next one itself,
    /// rather than a failing 64 MiB write and a warning after every round.
    make_ahead_failed: bool,
    /// fdatasyncs issued, for statistics and tests.
    syncs: u64,
}

/// A shard's commit log. Shard-local (`!Send`), from start-up to shutdown.
pub struct CommitLog {
    dir: PathBuf,
    state: RefCell<State>,
    checkpoint: Checkpoint,
    /// Notified when there are records to write or the log closes.
    work: Event,
    /// Notified when a round became durable, the log failed, or room opened in a round.
    progress: Event,
}

impl CommitLog {
    /// Starts a commit log in `dir`, reusing the files there: `replay` must have been run,
    /// and what it returned made durable in the segments, before this call.
    pub async fn create(
        dir: impl AsRef<Path>,
        config: CommitLogConfig,
        checkpoint: Checkpoint,
    ) -> Result<Rc<CommitLog>, StorageError> {
        assert!(
            config.file_bytes >= FILE_BYTES_MIN,
            "commit log file too small"
        );
        assert!(
            config.files_max >= 2,
            "a commit log needs two files to recycle"
        );
        let dir = dir.as_ref().to_path_buf();
        let existing = existing_files(&dir).await?;
        let mut opened = Vec::new();
        let mut next_generation = 1;
        for path in existing.iter().rev() {
            let (file, generation) = open_existing(path).await?;
            complete_file(&file, path, config.file_bytes).await?;
            next_generation = next_generation.max(generation + 1);
            opened.push((path.clone(), file));
        }
        // Their records were replayed and are durable in the segments: end those uses now,
        // so a later replay cannot bring them back after a truncation.
        let mut free = Vec::new();
        for (path, file) in opened {
            start_use(&file, &path, next_generation).await?;
            next_generation += 1;
            free.push((path, file));
        }
        let log = Rc::new(CommitLog {
            dir,
            state: RefCell::new(State {
                config,
                slots: Default::default(),
                free,
                slots_made: existing.len(),
                next_generation,
                end: 0,
                pending: Round::new(0),
                last_round_bytes: 0,
                round: 1,
                durable_round: 0,
                failed: None,
                closed: false,
                checkpointing: false,
                making: false,
                make_ahead_failed: false,
                syncs: 0,
            }),
            checkpoint,
            work: Event::default(),
            progress: Event::default(),
        });
        log.switch_file().await?;
        glommio::spawn_local(log.clone().run()).detach();
        Ok(log)
    }

    /// Adds a batch to the current round; returns the round to `commit`. Waits while the
    /// round is full.
    pub async fn append(
        &self,
        partition: impl Into<PartitionId>,
        base_offset: i64,
        last_offset: i64,
        batch: &[u8],
    ) -> Result<u64, StorageError> {
        self.append_chunks(partition.into(), base_offset, last_offset, &[batch])
            .await
    }

    /// Records that `partition` was cut at `new_end` (its log end after a truncation): at
    /// replay, its earlier records at or past `new_end` are void. Returns the round to
    /// `commit`; commit it before the partition takes appends again.
    pub async fn append_truncation(
        &self,
        partition: PartitionId,
        new_end: i64,
    ) -> Result<u64, StorageError> {
        self.append_record(frame::Kind::Truncate, partition, new_end, new_end, &[])
            .await
    }

    /// As `append`, with the batches' bytes in pieces (a tail cache's chunks): they are
    /// copied once, into the round.
    pub async fn append_chunks(
        &self,
        partition: PartitionId,
        base_offset: i64,
        last_offset: i64,
        batch: &[&[u8]],
    ) -> Result<u64, StorageError> {
        self.append_record(
            frame::Kind::Batch,
            partition,
            base_offset,
            last_offset,
            batch,
        )
        .await
    }

    async fn append_record(
        &self,
        kind: frame::Kind,
        partition: PartitionId,
        base_offset: i64,
        last_offset: i64,
        batch: &[&[u8]],
    ) -> Result<u64, StorageError> {
        let framed = frame::framed_len(batch.iter().map(|c| c.len()).sum());
        if framed > ROUND_BYTES_MAX {
            return Err(StorageError::InvalidBatch {
                reason: "batch larger than a commit-log round",
            });
        }
        loop {
            let listener = self.progress.listen();
            {
                let mut s = self.state.borrow_mut();
                s.check_usable()?;
                if s.pending.bytes.len() + framed <= ROUND_BYTES_MAX {
                    let record = frame::Record {
                        // Set when the round is written (`stamp_generation`).
                        generation: 0,
                        kind,
                        partition,
                        base_offset,
                        last_offset,
                        batch: &[],
                    };
                    frame::encode_chunks(&record, batch, &mut s.pending.bytes);
                    if kind == frame::Kind::Batch {
                        s.pending.last_offsets.push((partition, last_offset));
                    }
                    let round = s.round;
                    drop(s);
                    self.work.notify();
                    return Ok(round);
                }
            }
            listener.await;
        }
    }

    /// Waits until `round` is durable.
    pub async fn commit(&self, round: u64) -> Result<(), StorageError> {
        loop {
            let listener = self.progress.listen();
            {
                let s = self.state.borrow();
                if s.durable_round >= round {
                    return Ok(());
                }
                s.check_usable()?;
            }
            listener.await;
        }
    }

    /// The failure that stopped the log, or `Closed`.
    pub fn check_usable(&self) -> Result<(), StorageError> {
        self.state.borrow().check_usable()
    }

    /// fdatasyncs issued so far: one per round.
    pub fn fdatasync_count(&self) -> u64 {
        self.state.borrow().syncs
    }

    /// Writes what is pending, then stops. Later calls fail with `Closed`.
    pub async fn close(&self) -> Result<(), StorageError> {
        let round = {
            let mut s = self.state.borrow_mut();
            s.closed = true;
            if s.pending.bytes.is_empty() {
                s.round - 1
            } else {
                s.round
            }
        };
        self.work.notify();
        loop {
            let listener = self.progress.listen();
            {
                let s = self.state.borrow();
                if let Some(f) = &s.failed {
                    return Err(f.to_error());
                }
                if s.durable_round >= round {
                    return Ok(());
                }
            }
            listener.await;
        }
    }

    /// The writer task: one round at a time, one write and one fdatasync each. Stops at
    /// the first failure: an fdatasync error is never retried on the same file (the page
    /// state after a failed flush is unknown); the shard reopens from what is durable.
    async fn run(self: Rc<Self>) {
        loop {
            let listener = self.work.listen();
            let round = {
                let mut s = self.state.borrow_mut();
                if s.pending.bytes.is_empty() {
                    if s.closed {
                        drop(s);
                        self.progress.notify();
                        return;
                    }
                    None
                } else {
                    let next = Round::new(s.last_round_bytes);
                    let round = std::mem::replace(&mut s.pending, next);
                    s.round += 1;
                    Some(round)
                }
            };
            let Some(round) = round else {
                listener.await;
                continue;
            };
            // Room opened for appenders waiting on a full round.
            self.progress.notify();
            let written = self.write_round(round).await;
            if let Err(e) = written {
                tracing::error!(error = %e, "commit log failed");
                self.state.borrow_mut().failed = Some(Failure::from_error(&e));
                self.progress.notify();
                return;
            }
            {
                let mut s = self.state.borrow_mut();
                s.durable_round += 1;
                debug_assert_eq!(s.durable_round + 1, s.round, "rounds are written in order");
            }
            self.progress.notify();
            self.make_ahead();
            self.checkpoint_ahead();
        }
    }

    /// While fewer than `files_max` files exist, writes the next one's zeros in the background
    /// once the active file is half full, so the switch finds it ready. Made at the switch, a
    /// 64 MiB file of zeros held that round and every acknowledgement behind it: 80 ms stalls,
    /// every few seconds at 10 MB/s, until the last file was made (bench/RESULTS.md).
    fn make_ahead(self: &Rc<Self>) {
        let slot_no = {
            let mut s = self.state.borrow_mut();
            let needed = s.free.is_empty()
                && s.slots_made < s.config.files_max
                && s.end >= s.config.file_bytes / 2
                && !s.making
                && !s.make_ahead_failed
                && !s.closed;
            if !needed {
                return;
            }
            s.making = true;
            s.next_slot()
        };
        let log = self.clone();
        glommio::spawn_local(async move {
            let path = file_path(&log.dir, slot_no);
            let bytes = log.state.borrow().config.file_bytes;
            let made = make_file(&log.dir, &path, bytes).await;
            {
                let mut s = log.state.borrow_mut();
                s.making = false;
                match made {
                    Ok(file) => s.free.push((path, file)),
                    Err(e) => {
                        // The switch makes it instead (same slot: nothing else made one since).
                        s.slots_made -= 1;
                        s.make_ahead_failed = true;
                        tracing::warn!(error = %e, "commit-log file made ahead failed");
                    }
                }
            }
            log.progress.notify();
        })
        .detach();
    }

    /// When the next file switch would have to take the oldest file back, checkpoints it now,
    /// in the background, so the switch finds it free instead of stalling a round on the
    /// checkpoint's flushes. The oldest file is not the active one: its records are final.
    fn checkpoint_ahead(self: &Rc<Self>) {
        let (generation, offsets) = {
            let mut s = self.state.borrow_mut();
            let needed = s.free.is_empty()
                && s.slots_made >= s.config.files_max
                && s.slots.len() >= 2
                && !s.checkpointing
                && !s.closed;
            if !needed {
                return;
            }
            s.checkpointing = true;
            let oldest = s.slots.front().expect("two files in use");
            let offsets: Vec<(PartitionId, i64)> =
                oldest.last_offsets.iter().map(|(p, o)| (*p, *o)).collect();
            (oldest.generation, offsets)
        };
        let log = self.clone();
        glommio::spawn_local(async move {
            let done = (log.checkpoint)(offsets).await;
            {
                let mut s = log.state.borrow_mut();
                s.checkpointing = false;
                let still_oldest = s.slots.front().is_some_and(|f| f.generation == generation);
                match done {
                    Ok(()) if still_oldest && s.slots.len() >= 2 => {
                        let slot = s.slots.pop_front().expect("checked");
                        s.free.push((slot.path, slot.file));
                    }
                    Ok(()) => {}
                    // The switch checkpoints the file itself, and fails the log if it fails too.
                    Err(e) => tracing::warn!(error = %e, "background commit-log checkpoint failed"),
                }
            }
            log.progress.notify();
        })
        .detach();
    }

    /// Writes one round's records after the active file's end (or at the start of the next
    /// file), then one fdatasync.
    async fn write_round(&self, mut round: Round) -> Result<(), StorageError> {
        let fits = {
            let s = self.state.borrow();
            s.end + align_up(round.bytes.len() as u64) <= s.config.file_bytes
        };
        if !fits {
            self.switch_file().await?;
        }
        let (file, path, pos) = {
            let mut s = self.state.borrow_mut();
            let generation = s.slots.back().expect("an active file").generation;
            stamp_generation(round.bytes.bytes_mut(), generation);
            frame::pad_to_block(&mut round.bytes, generation);
            let pos = s.end;
            s.end += round.bytes.len() as u64;
            s.last_round_bytes = round.bytes.len();
            debug_assert_eq!(s.end % ALIGN, 0, "rounds end on a block boundary");
            let slot = s.slots.back_mut().expect("an active file");
            for (partition, last) in round.last_offsets.drain(..) {
                let e = slot.last_offsets.entry(partition).or_insert(last);
                *e = (*e).max(last);
            }
            let out = (slot.file.clone(), slot.path.clone(), pos);
            s.syncs += 1;
            out
        };
        write_all(&file, &path, pos, round.bytes.into_dma()).await?;
        sync(&file, &path).await
    }

    /// Makes the next file active: a free (checkpointed) one, a new one while fewer than
    /// `files_max` exist, or else the oldest one once its partitions are checkpointed.
    async fn switch_file(&self) -> Result<(), StorageError> {
        // A background checkpoint of the oldest file frees it, and a file made ahead is the
        // next one: wait for them rather than checkpointing or making a file twice.
        loop {
            let listener = self.progress.listen();
            {
                let s = self.state.borrow();
                if !s.checkpointing && !s.making {
                    break;
                }
            }
            listener.await;
        }
        let (reuse, make, oldest) = {
            let mut s = self.state.borrow_mut();
            let reuse = s.free.pop();
            let make = reuse.is_none() && s.slots_made < s.config.files_max;
            let oldest = (reuse.is_none() && !make).then(|| s.slots.pop_front());
            (reuse, make, oldest.flatten())
        };
        let (file, path) = if let Some((path, file)) = reuse {
            (file, path)
        } else if make {
            let slot_no = self.state.borrow_mut().next_slot();
            let path = file_path(&self.dir, slot_no);
            let bytes = self.state.borrow().config.file_bytes;
            (make_file(&self.dir, &path, bytes).await?, path)
        } else {
            let oldest = oldest.expect("files_max >= 2 keeps an older file in use");
            let offsets: Vec<(PartitionId, i64)> = oldest.last_offsets.into_iter().collect();
            (self.checkpoint)(offsets).await?;
            (oldest.file, oldest.path)
        };
        let generation = {
            let mut s = self.state.borrow_mut();
            s.next_generation += 1;
            s.next_generation - 1
        };
        start_use(&file, &path, generation).await?;
        if !make {
            tracing::debug!(path = %path.display(), generation, "commit log file reused");
        }
        let mut s = self.state.borrow_mut();
        s.syncs += 1;
        s.slots.push_back(Slot {
            file,
            path,
            generation,
            last_offsets: HashMap::new(),
        });
        s.end = ALIGN;
        Ok(())
    }
}

impl State {
    /// Takes the slot number (file name) of the next new file.
    fn next_slot(&mut self) -> usize {
        self.slots_made += 1;
        self.slots_made - 1
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        if let Some(f) = &self.failed {
            return Err(f.to_error());
        }
        if self.closed {
            return Err(StorageError::Closed);
        }
        Ok(())
    }
}

/// Writes the file's generation into every record of a round (the file a round goes to is
/// known only when it is written).
fn stamp_generation(bytes: &mut [u8], generation: u64) {
    let mut pos = 0;
    while pos < bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        frame::set_generation(&mut bytes[pos..pos + len], generation);
        pos += len;
    }
}

/// Starts a use of `file` of `generation`: its marker record, written and synced before
/// any round, ends the previous use on disk, so replay never returns records that were
/// checkpointed (a truncation may have removed them since). It fills the first block.
async fn start_use(file: &Rc<DmaFile>, path: &Path, generation: u64) -> Result<(), StorageError> {
    let mut marker = Vec::new();
    frame::encode_with_generation(
        &frame::Record {
            generation,
            kind: frame::Kind::Marker,
            partition: PartitionId::default(),
            base_offset: 0,
            last_offset: 0,
            batch: &[],
        },
        &mut marker,
    );
    frame::pad_to_block(&mut marker, generation);
    let mut buf = glommio::allocate_dma_buffer(marker.len());
    buf.as_bytes_mut().copy_from_slice(&marker);
    write_all(file, path, 0, buf).await?;
    sync(file, path).await
}

fn slot_number(path: &Path) -> usize {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("commitlog-"))
        .and_then(|n| n.parse().ok())
        .expect("commit-log files are named by slot")
}

async fn open_file(path: &Path) -> Result<DmaFile, StorageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(path)
        .await
        .map_err(|e| StorageError::glommio("open", path, e))
}

/// The commit-log files in `dir`, by slot number.
async fn existing_files(dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let dir_owned = dir.to_path_buf();
    let mut paths = crate::recovery::blocking("list commit log", dir_owned, |d| {
        std::fs::create_dir_all(d)?;
        let mut v = Vec::new();
        for e in std::fs::read_dir(d)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if name.starts_with("commitlog-") && name.ends_with(".log") {
                v.push(d.join(name));
            }
        }
        Ok(v)
    })
    .await?;
    paths.sort();
    for (i, p) in paths.iter().enumerate() {
        if slot_number(p) != i {
            return Err(StorageError::CorruptSegment {
                path: p.clone(),
                position: 0,
                reason: format!("commit-log file out of sequence (expected slot {i})"),
            });
        }
    }
    Ok(paths)
}

/// Opens an existing file for reuse; its generation is its marker's (the first record).
async fn open_existing(path: &Path) -> Result<(Rc<DmaFile>, u64), StorageError> {
    let file = open_file(path).await?;
    let head = file
        .read_at_aligned(0, ALIGN as usize)
        .await
        .map_err(|e| StorageError::glommio("read", path, e))?;
    let generation = frame::decode(&head[..]).map(|r| r.generation).unwrap_or(0);
    Ok((Rc::new(file), generation))
}

/// A new file of `bytes` zeros, synced with its directory entry.
async fn make_file(dir: &Path, path: &Path, bytes: u64) -> Result<Rc<DmaFile>, StorageError> {
    crate::failpoints::inject("commit_log::make", path)
        .map_err(|e| StorageError::io("make commit-log file", path, e))?;
    let file = Rc::new(open_file(path).await?);
    write_zeros(&file, path, 0, bytes).await?;
    sync(&file, path).await?;
    crate::recovery::blocking("sync dir", dir.to_path_buf(), |d| {
        std::fs::File::open(d)?.sync_all()
    })
    .await?;
    Ok(file)
}

/// Writes zeros over `[from, to)` of `file` (`from` block-aligned).
async fn write_zeros(file: &DmaFile, path: &Path, from: u64, to: u64) -> Result<(), StorageError> {
    let mut pos = from;
    while pos < to {
        let len = (ZERO_WRITE_BYTES as u64).min(to - pos) as usize;
        let mut buf = glommio::allocate_dma_buffer(len);
        buf.as_bytes_mut().fill(0);
        write_all(file, path, pos, buf).await?;
        pos += len as u64;
    }
    Ok(())
}

/// Zeros a file shorter than `bytes` up to that size, and syncs it: a crash while a file was
/// being made (in the background, `make_ahead`) leaves it short, and rounds written past its
/// end would each make fdatasync carry the file's new size.
async fn complete_file(file: &Rc<DmaFile>, path: &Path, bytes: u64) -> Result<(), StorageError> {
    let size = file
        .file_size()
        .await
        .map_err(|e| StorageError::glommio("stat", path, e))?;
    if size >= bytes {
        return Ok(());
    }
    tracing::info!(path = %path.display(), size, "commit-log file short (made when the broker stopped): zeroing the rest");
    write_zeros(file, path, crate::segment::align_down(size), bytes).await?;
    sync(file, path).await
}

async fn write_all(
    file: &DmaFile,
    path: &Path,
    pos: u64,
    buf: glommio::io::DmaBuffer,
) -> Result<(), StorageError> {
    let len = buf.len();
    let n = file
        .write_at(buf, pos)
        .await
        .map_err(|e| StorageError::glommio("write", path, e))?;
    if n < len {
        // Pre-written blocks inside the file: a short write is a device failure.
        return Err(StorageError::io(
            "write",
            path,
            std::io::ErrorKind::WriteZero.into(),
        ));
    }
    Ok(())
}

/// fdatasync on the shard's blocking pool, as the segments' (`SegFile::sync`).
async fn sync(file: &Rc<DmaFile>, path: &Path) -> Result<(), StorageError> {
    crate::segment::fdatasync_on_pool(file, path).await
}

/// Reads every commit-log file in `dir` and returns their records, oldest first (by the
/// generation of each file's current use, then position). Records of a file's previous
/// use, and a torn last round, are left out.
pub async fn replay(dir: impl AsRef<Path>) -> Result<Vec<ReplayedRecord>, StorageError> {
    let dir = dir.as_ref();
    let mut files = Vec::new();
    for path in existing_files(dir).await? {
        let bytes =
            crate::recovery::blocking("read commit log", path.clone(), |p| std::fs::read(p))
                .await?;
        let bytes = Bytes::from(bytes);
        let (records, _, _) = frame::scan(&bytes);
        let generation = records.first().map(|r| r.generation);
        let records: Vec<(frame::Kind, ReplayedRecord)> = records
            .iter()
            .filter(|r| matches!(r.kind, frame::Kind::Batch | frame::Kind::Truncate))
            .map(|r| {
                let record = ReplayedRecord {
                    partition: r.partition,
                    base_offset: r.base_offset,
                    last_offset: r.last_offset,
                    batch: bytes.slice_ref(r.batch),
                };
                (r.kind, record)
            })
            .collect();
        if let Some(g) = generation {
            files.push((g, records));
        }
    }
    files.sort_by_key(|(g, _)| *g);
    let mut out: Vec<ReplayedRecord> = Vec::new();
    for (kind, record) in files.into_iter().flat_map(|(_, r)| r) {
        match kind {
            frame::Kind::Truncate => cut_replayed(&mut out, record.partition, record.base_offset),
            _ => out.push(record),
        }
    }
    Ok(out)
}

/// Applies a truncation record: the partition's records so far keep only their batches
/// below `new_end` (a truncation cuts at a batch boundary).
fn cut_replayed(records: &mut Vec<ReplayedRecord>, partition: PartitionId, new_end: i64) {
    records.retain_mut(|r| {
        if r.partition != partition || r.last_offset < new_end {
            return true;
        }
        if r.base_offset >= new_end {
            return false;
        }
        let mut kept = 0;
        let mut last = r.base_offset;
        while kept < r.batch.len() {
            match crate::batch::parse_header(&r.batch[kept..]) {
                Ok(h) if h.base_offset < new_end && kept + h.size <= r.batch.len() => {
                    kept += h.size;
                    last = h.last_offset();
                }
                _ => break,
            }
        }
        r.batch.truncate(kept);
        r.last_offset = last;
        kept > 0
    });
}

#[cfg(test)]
mod tests;
