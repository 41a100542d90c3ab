//! Durable Raft storage of one controller: log entries, HardState + ConfState and the latest
//! snapshot in one directory, each fsync'd before the call returns. Plain `std::fs`, not the
//! partition log's io_uring path: the controller log is small, written a few times a second
//! and off the data path, and blocking briefly on the controller's shard is acceptable.
//!
//! Files: `log` (frames `[len u32][crc32c u32][Entry]`, a torn tail is cut at open),
//! `raft_state` and `snapshot` (each replaced whole by write-temp + fsync + rename + fsync of
//! the directory). Invariant: the snapshot's index is always `first_index - 1`, so
//! `term(first_index - 1)` answers after compaction.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

const LOG_FILE: &str = "log";
const STATE_FILE: &str = "raft_state";
const SNAPSHOT_FILE: &str = "snapshot";
/// Bytes before each entry in `log`: its length and CRC32C.
const FRAME_HEADER_BYTES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum RaftLogError {
    #[error("controller log {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("controller log {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RaftLogError + '_ {
    move |source| RaftLogError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The durable log; implements raft-rs's `Storage` from memory, writes through to disk.
/// Lives on the shard that runs the controller, owned by its `RawNode`.
pub struct RaftLog {
    dir: PathBuf,
    log_file: File,
    /// File offset of each entry's frame; `entries[i]` has index `snapshot_index + 1 + i`.
    frame_offsets: Vec<u64>,
    entries: Vec<Entry>,
    log_len_bytes: u64,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
}

impl RaftLog {
    /// Opens (or creates) the log in `dir`, cutting a torn tail off `log`.
    pub fn open(dir: &Path) -> Result<RaftLog, RaftLogError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let snapshot: Snapshot = read_message(&dir.join(SNAPSHOT_FILE))?.unwrap_or_default();
        let (hard_state, conf_state) = read_state(&dir.join(STATE_FILE))?;
        let log_path = dir.join(LOG_FILE);
        let mut log_file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let (entries, frame_offsets, whole_len) = scan_log(&mut log_file, &log_path)?;
        let file_len = log_file.metadata().map_err(io_err(&log_path))?.len();
        if whole_len < file_len {
            tracing::warn!(path = %log_path.display(), whole_len, file_len, "controller log: cutting a torn tail");
            log_file.set_len(whole_len).map_err(io_err(&log_path))?;
            log_file.sync_all().map_err(io_err(&log_path))?;
        }
        let mut log = RaftLog {
            dir: dir.to_owned(),
            log_file,
            frame_offsets,
            entries,
            log_len_bytes: whole_len,
            hard_state,
            conf_state,
            snapshot,
        };
        log.drop_entries_covered_by_snapshot()?;
        // A crash between installing a snapshot and saving the state leaves a state older
        // than the snapshot: its commit index is behind it (raft-rs would refuse that) and
        // its ConfState may be too. A snapshot holds only committed state, so it wins.
        let snapshot_index = log.snapshot_index();
        if log.hard_state.commit < snapshot_index {
            log.hard_state.commit = snapshot_index;
            log.conf_state = log.snapshot.get_metadata().get_conf_state().clone();
        }
        Ok(log)
    }

    /// A compaction may have crashed after writing the snapshot and before rewriting the log:
    /// entries the snapshot covers go now. Entries must then continue the snapshot.
    fn drop_entries_covered_by_snapshot(&mut self) -> Result<(), RaftLogError> {
        let snapshot_index = self.snapshot_index();
        let covered = self
            .entries
            .iter()
            .take_while(|e| e.index <= snapshot_index)
            .count();
        if covered > 0 {
            self.rewrite_log(covered)?;
        }
        match self.entries.first() {
            Some(first) if first.index != snapshot_index + 1 => Err(RaftLogError::Corrupt {
                path: self.dir.join(LOG_FILE),
                reason: format!(
                    "first entry {} does not follow snapshot {snapshot_index}",
                    first.index
                ),
            }),
            _ => Ok(()),
        }
    }

    pub fn is_initialized(&self) -> bool {
        self.conf_state != ConfState::default()
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// The latest snapshot; its data is the encoded metadata image.
    pub fn latest_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn last_entry_index(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    /// Appends `entries`, first cutting any conflicting suffix, and fsyncs.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), RaftLogError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let path = self.dir.join(LOG_FILE);
        assert!(
            first.index > self.snapshot_index() && first.index <= self.last_entry_index() + 1,
            "append at {} leaves a gap after {} or rewrites the snapshot at {}",
            first.index,
            self.last_entry_index(),
            self.snapshot_index()
        );
        let keep = (first.index - self.snapshot_index() - 1) as usize;
        if keep < self.entries.len() {
            self.log_len_bytes = self.frame_offsets[keep];
            self.entries.truncate(keep);
            self.frame_offsets.truncate(keep);
            self.log_file
                .set_len(self.log_len_bytes)
                .map_err(io_err(&path))?;
        }
        let mut buf = Vec::new();
        for entry in entries {
            self.frame_offsets
                .push(self.log_len_bytes + buf.len() as u64);
            write_frame(&mut buf, entry);
        }
        self.log_file.write_all(&buf).map_err(io_err(&path))?;
        self.log_file.sync_data().map_err(io_err(&path))?;
        self.log_len_bytes += buf.len() as u64;
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Saves the HardState (and the current ConfState) durably.
    pub fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), RaftLogError> {
        self.hard_state = hard_state;
        self.write_state()
    }

    /// Saves the ConfState returned by `apply_conf_change` durably.
    pub fn set_conf_state(&mut self, conf_state: ConfState) -> Result<(), RaftLogError> {
        self.conf_state = conf_state;
        self.write_state()
    }

    /// Sets the commit index only (a LightReady's), durably.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), RaftLogError> {
        self.hard_state.commit = commit;
        self.write_state()
    }

    /// Installs a snapshot received from the leader: snapshot file first, then an empty log,
    /// then the state, each atomic; a crash in between is repaired by `open`.
    pub fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), RaftLogError> {
        let metadata = snapshot.get_metadata().clone();
        write_atomically(&self.dir, SNAPSHOT_FILE, &framed(&snapshot))?;
        self.snapshot = snapshot;
        // The snapshot replaces the whole log: raft-rs sends one only when the follower's log
        // cannot continue the leader's.
        self.rewrite_log(self.entries.len())?;
        self.hard_state.commit = self.hard_state.commit.max(metadata.index);
        self.hard_state.term = self.hard_state.term.max(metadata.term);
        self.conf_state = metadata.get_conf_state().clone();
        self.write_state()
    }

    /// Takes a snapshot of the applied state at `applied_index` (`data` is the encoded image)
    /// and compacts the log up to it.
    pub fn create_snapshot(
        &mut self,
        applied_index: u64,
        data: Vec<u8>,
    ) -> Result<(), RaftLogError> {
        assert!(
            applied_index > self.snapshot_index() && applied_index <= self.last_entry_index(),
            "snapshot at {applied_index} outside the log ({}, {}]",
            self.snapshot_index(),
            self.last_entry_index()
        );
        let term = self.entries[(applied_index - self.snapshot_index() - 1) as usize].term;
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let metadata = snapshot.mut_metadata();
        metadata.index = applied_index;
        metadata.term = term;
        metadata.set_conf_state(self.conf_state.clone());
        write_atomically(&self.dir, SNAPSHOT_FILE, &framed(&snapshot))?;
        let covered = (applied_index - self.snapshot_index()) as usize;
        self.snapshot = snapshot;
        self.rewrite_log(covered)
    }

    /// Writes a new `log` without its first `drop_count` entries and swaps it in atomically.
    fn rewrite_log(&mut self, drop_count: usize) -> Result<(), RaftLogError> {
        self.entries.drain(..drop_count.min(self.entries.len()));
        let mut buf = Vec::new();
        self.frame_offsets.clear();
        for entry in &self.entries {
            self.frame_offsets.push(buf.len() as u64);
            write_frame(&mut buf, entry);
        }
        write_atomically(&self.dir, LOG_FILE, &buf)?;
        let path = self.dir.join(LOG_FILE);
        self.log_file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        self.log_len_bytes = buf.len() as u64;
        Ok(())
    }

    fn write_state(&self) -> Result<(), RaftLogError> {
        let mut buf = Vec::new();
        write_frame(&mut buf, &self.hard_state);
        write_frame(&mut buf, &self.conf_state);
        write_atomically(&self.dir, STATE_FILE, &buf)
    }
}

impl Storage for RaftLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.snapshot_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_entry_index() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let start = (low - self.snapshot_index() - 1) as usize;
        let end = (high - self.snapshot_index() - 1) as usize;
        let mut entries = self.entries[start..end].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let snapshot_index = self.snapshot_index();
        if idx == snapshot_index {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < snapshot_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.entries
            .get((idx - snapshot_index - 1) as usize)
            .map(|e| e.term)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot_index() + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_entry_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_index() < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

fn encode_message(message: &impl protobuf::Message) -> Vec<u8> {
    // Encoding into a Vec fails only on messages with unset required fields; eraftpb is
    // proto3 and has none.
    message
        .write_to_bytes()
        .expect("eraftpb messages always encode")
}

fn framed(message: &impl protobuf::Message) -> Vec<u8> {
    let mut buf = Vec::new();
    write_frame(&mut buf, message);
    buf
}

fn write_frame(buf: &mut Vec<u8>, message: &impl protobuf::Message) {
    let body = encode_message(message);
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    buf.extend_from_slice(&body);
}

/// Reads frames from `bytes[*pos..]`; `None` at the end or at a torn or corrupt frame. The
/// bytes are already in memory, so a wild length field only fails the bounds check.
fn read_frame<M: protobuf::Message>(bytes: &[u8], pos: &mut usize) -> Option<M> {
    let header = bytes.get(*pos..*pos + FRAME_HEADER_BYTES)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let body = bytes.get(*pos + FRAME_HEADER_BYTES..*pos + FRAME_HEADER_BYTES + len)?;
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let message = M::parse_from_bytes(body).ok()?;
    *pos += FRAME_HEADER_BYTES + len;
    Some(message)
}

/// Entries of the log file, their frame offsets and the length of the whole frames.
fn scan_log(file: &mut File, path: &Path) -> Result<(Vec<Entry>, Vec<u64>, u64), RaftLogError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err(path))?;
    let (mut entries, mut offsets, mut pos) = (Vec::<Entry>::new(), Vec::new(), 0);
    loop {
        let start = pos;
        let Some(entry) = read_frame::<Entry>(&bytes, &mut pos) else {
            break;
        };
        if entries
            .last()
            .is_some_and(|last| entry.index != last.index + 1)
        {
            return Err(RaftLogError::Corrupt {
                path: path.to_owned(),
                reason: format!("entry {} follows {}", entry.index, entries.len()),
            });
        }
        offsets.push(start as u64);
        entries.push(entry);
    }
    Ok((entries, offsets, pos as u64))
}

fn read_file(path: &Path) -> Result<Option<Vec<u8>>, RaftLogError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn read_message<M: protobuf::Message>(path: &Path) -> Result<Option<M>, RaftLogError> {
    let Some(bytes) = read_file(path)? else {
        return Ok(None);
    };
    // Written whole by rename, so a bad frame here is corruption, not a torn write.
    read_frame(&bytes, &mut 0)
        .map(Some)
        .ok_or_else(|| RaftLogError::Corrupt {
            path: path.to_owned(),
            reason: format!("no whole frame in its {} bytes", bytes.len()),
        })
}

fn read_state(path: &Path) -> Result<(HardState, ConfState), RaftLogError> {
    let Some(bytes) = read_file(path)? else {
        return Ok(Default::default());
    };
    let mut pos = 0;
    let hard_state = read_frame(&bytes, &mut pos);
    let conf_state = read_frame(&bytes, &mut pos);
    hard_state
        .zip(conf_state)
        .ok_or_else(|| RaftLogError::Corrupt {
            path: path.to_owned(),
            reason: "bad frame".into(),
        })
}

/// Replaces `dir/name` with `contents` so that a crash leaves the old or the new file whole.
fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> Result<(), RaftLogError> {
    let temp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&temp).map_err(io_err(&temp))?;
    file.write_all(contents).map_err(io_err(&temp))?;
    file.sync_all().map_err(io_err(&temp))?;
    let target = dir.join(name);
    fs::rename(&temp, &target).map_err(io_err(&target))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}
