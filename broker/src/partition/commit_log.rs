//! The shard's commit log as the partition service uses it (`commit_log_enabled`): acks=all is
//! one fdatasync of this log per round, whatever the shard's partition count, while the
//! partitions' segments are written behind it and made durable by checkpoints. At start-up the
//! records of the shard's files are read back (`load`), each partition applies its own when it
//! opens, and the log restarts once every partition that had records has applied them. Until then,
//! or if the log fails, acks=all falls back to each partition's own fdatasync. Shard-local: one per
//! shard, from start-up to shutdown.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use futures::future::{LocalBoxFuture, Shared};
use futures::FutureExt;
use riffle_storage::commit_log::{self, Checkpoint, CommitLog, PartitionId, ReplayedRecord};
use riffle_storage::StorageError;

use super::PartitionKey;
use crate::config::BrokerConfig;

/// The data dir's entry holding every shard's commit log.
pub const DIR_NAME: &str = "commitlog";

/// Directory of shard `shard`'s commit-log files.
pub fn shard_dir(data_dir: &Path, shard: usize) -> PathBuf {
    data_dir.join(DIR_NAME).join(format!("shard-{shard}"))
}

/// The commit-log id of a partition: its topic's id and index, stable across renames,
/// re-creations and restarts.
pub fn partition_id(key: &PartitionKey) -> PartitionId {
    PartitionId {
        topic_id: key.topic_id,
        index: key.partition as u32,
    }
}

fn key_of(id: &PartitionId) -> PartitionKey {
    PartitionKey {
        topic_id: id.topic_id,
        partition: id.index as i32,
    }
}

/// One shard's commit log and the records read back from it at start-up. Shard-local.
pub struct ShardCommitLog {
    shard: usize,
    shards: usize,
    data_dir: PathBuf,
    config: commit_log::CommitLogConfig,
    /// The running log; None before it restarts, when disabled, or after it failed.
    log: RefCell<Option<Rc<CommitLog>>>,
    /// Records read back at start-up, by partition, until each partition applies its own.
    replayed: RefCell<HashMap<PartitionKey, Vec<ReplayedRecord>>>,
    /// Resolves once `replayed` is loaded: a partition opens only after that.
    loaded: Shared<LocalBoxFuture<'static, ()>>,
    load_done: RefCell<Option<futures::channel::oneshot::Sender<()>>>,
    /// A partition's bytes durable only here before it flushes its segments (a checkpoint).
    pub checkpoint_bytes: u64,
    /// The start-up load failed: the log stays off for this run (acks=all flushes segments).
    load_failed: Cell<bool>,
}

impl ShardCommitLog {
    pub fn new(config: &BrokerConfig, shard: usize, shards: usize) -> Rc<Self> {
        let (done, loaded) = futures::channel::oneshot::channel::<()>();
        Rc::new(ShardCommitLog {
            shard,
            shards,
            data_dir: config.data_dir.clone(),
            config: commit_log::CommitLogConfig {
                file_bytes: config.commit_log_file_bytes,
                files_max: config.commit_log_files_per_shard,
            },
            log: RefCell::new(None),
            replayed: RefCell::new(HashMap::new()),
            loaded: loaded.map(|_| ()).boxed_local().shared(),
            load_done: RefCell::new(Some(done)),
            checkpoint_bytes: config.commit_log_checkpoint_bytes,
            load_failed: Cell::new(false),
        })
    }

    /// The shard's own directory and those of shards a restart with fewer shards removed whose
    /// partitions moved here (`MetadataImage::fit_to_shards`: shard `k` goes to `k % shards`).
    async fn dirs(&self) -> Vec<PathBuf> {
        let (shard, shards) = (self.shard, self.shards);
        let root = self.data_dir.join(DIR_NAME);
        let mut dirs = vec![shard_dir(&self.data_dir, shard)];
        let removed = glommio::executor()
            .spawn_blocking(move || {
                let mut found = Vec::new();
                let Ok(entries) = std::fs::read_dir(root) else {
                    return found;
                };
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let k = name
                        .strip_prefix("shard-")
                        .and_then(|k| k.parse::<usize>().ok());
                    if k.is_some_and(|k| k >= shards && k % shards == shard) {
                        found.push(e.path());
                    }
                }
                found
            })
            .await;
        dirs.extend(removed);
        dirs
    }

    /// Reads back the records of the shard's files (start-up, before any partition opens).
    pub async fn load(&self) {
        let mut by_partition: HashMap<PartitionKey, Vec<ReplayedRecord>> = HashMap::new();
        let mut count = 0usize;
        for dir in self.dirs().await {
            match commit_log::replay(&dir).await {
                Ok(records) => {
                    for r in records {
                        count += 1;
                        by_partition
                            .entry(key_of(&r.partition))
                            .or_default()
                            .push(r);
                    }
                }
                Err(e) => {
                    tracing::error!(shard = self.shard, dir = %dir.display(), error = %e, "cannot read the commit log; acks=all flushes each partition for this run");
                    self.load_failed.set(true);
                }
            }
        }
        tracing::info!(
            shard = self.shard,
            records = count,
            partitions = by_partition.len(),
            "commit log read back"
        );
        *self.replayed.borrow_mut() = by_partition;
        if let Some(done) = self.load_done.borrow_mut().take() {
            let _ = done.send(());
        }
    }

    /// Resolves once the records are read back.
    pub async fn loaded(&self) {
        self.loaded.clone().await;
    }

    /// The partitions with records to apply.
    pub fn partitions_to_replay(&self) -> Vec<PartitionKey> {
        self.replayed.borrow().keys().cloned().collect()
    }

    /// Drops the records of partitions that no longer exist (their topic was deleted).
    pub fn forget(&self, key: &PartitionKey) {
        self.replayed.borrow_mut().remove(key);
    }

    /// The records of `key` read back at start-up (once), after the load.
    pub async fn take_replayed(&self, key: &PartitionKey) -> Vec<ReplayedRecord> {
        self.loaded.clone().await;
        self.replayed.borrow_mut().remove(key).unwrap_or_default()
    }

    /// Returns records taken and not applied (the partition's open failed).
    pub fn put_back(&self, key: &PartitionKey, records: Vec<ReplayedRecord>) {
        self.replayed.borrow_mut().insert(key.clone(), records);
    }

    /// The records of `key` in the files as they are now (a partition reopened after its log
    /// failed: what it acknowledged through this log may be missing from its segments).
    pub async fn read_back(&self, key: &PartitionKey) -> Result<Vec<ReplayedRecord>, StorageError> {
        let id = partition_id(key);
        let mut out = self.take_replayed(key).await;
        for dir in self.dirs().await {
            let records = commit_log::replay(&dir).await?;
            out.extend(records.into_iter().filter(|r| r.partition == id));
        }
        Ok(out)
    }

    /// Starts the log on the shard's files once every partition applied its records; removes the
    /// directories of removed shards, whose records were applied too.
    pub async fn start(&self, checkpoint: Checkpoint) {
        if self.load_failed.get() || !self.replayed.borrow().is_empty() {
            tracing::error!(
                shard = self.shard,
                "commit log not started: records of the last run were not all applied; acks=all flushes each partition"
            );
            return;
        }
        let own = shard_dir(&self.data_dir, self.shard);
        if let Err(e) = make_durable_dir(&self.data_dir, &own).await {
            tracing::error!(shard = self.shard, error = %e, "cannot create the commit log's directory; acks=all flushes each partition");
            return;
        }
        match CommitLog::create(&own, self.config.clone(), checkpoint).await {
            Ok(log) => {
                *self.log.borrow_mut() = Some(log);
                tracing::info!(shard = self.shard, dir = %own.display(), "commit log started");
            }
            Err(e) => {
                tracing::error!(shard = self.shard, error = %e, "cannot start the commit log; acks=all flushes each partition");
                return;
            }
        }
        for dir in self.dirs().await.into_iter().skip(1) {
            let removed = glommio::executor()
                .spawn_blocking(move || std::fs::remove_dir_all(&dir))
                .await;
            if let Err(e) = removed {
                tracing::warn!(shard = self.shard, error = %e, "cannot remove a removed shard's commit log");
            }
        }
    }

    /// The log, while it runs.
    pub fn running(&self) -> Option<Rc<CommitLog>> {
        let log = self.log.borrow().clone()?;
        match log.check_usable() {
            Ok(()) => Some(log),
            Err(_) => None,
        }
    }

    /// Writes what is pending and stops (shutdown, after the partitions closed).
    pub async fn close(&self) {
        let log = self.log.borrow_mut().take();
        if let Some(log) = log {
            if let Err(e) = log.close().await {
                tracing::warn!(shard = self.shard, error = %e, "closing the commit log failed");
            }
        }
    }
}

/// Creates `dir` under `data_dir` with its entries synced, so a crash cannot take the commit
/// log's files away with a directory entry that never reached the disk.
async fn make_durable_dir(data_dir: &Path, dir: &Path) -> std::io::Result<()> {
    let (data_dir, dir) = (data_dir.to_path_buf(), dir.to_path_buf());
    glommio::executor()
        .spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let mut at = dir.as_path();
            while let Some(parent) = at.parent() {
                std::fs::File::open(parent)?.sync_all()?;
                if parent == data_dir {
                    break;
                }
                at = parent;
            }
            Ok(())
        })
        .await
}
