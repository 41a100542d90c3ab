//! A partition on its owner shard, and the one owner of every partition rule: admission of
//! produced batches (validation, idempotence), append and durability, the high watermark and what
//! a reader may see, offsets by time, delete-records, and the files on disk. Handlers reach it only
//! through the typed requests of `request.rs`; nothing else touches its log.

pub mod commit_log;
pub mod error;
mod on_disk;
mod produce;
pub mod producer_state;
mod reads;
pub mod reopen;
pub mod request;
pub mod visible;

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use riffle_protocol::record_batch;
use riffle_storage::{PartitionLog, StorageError};
use serde::{Deserialize, Serialize};

use crate::admin::metrics::ShardLogObserver;
use crate::admin::stats::PartitionStats;
use crate::config::BrokerConfig;
use crate::metadata::image::TopicMeta;
use crate::topic_config::{self, TopicSettings};
use commit_log::ShardCommitLog;
use error::{PartitionError, PartitionErrorKind};
use producer_state::{ActiveProducer, ProducerStateTable};

pub use on_disk::{partition_dir, remove_partition_dir, sweep_orphaned_partition_dirs};
pub use produce::{ProduceRecords, Produced};
pub use reads::{EpochEnd, ListedOffset, PartitionRead};

/// Identifies a partition across renames and re-creations: topic id + index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic_id: [u8; 16],
    pub partition: i32,
}

/// Producer state written beside the log so that duplicate detection survives a restart: the
/// table as of `log_end_offset`; batches after it are replayed from the log at open.
#[derive(Serialize, Deserialize)]
struct ProducerSnapshot {
    log_end_offset: i64,
    table: ProducerStateTable,
}

/// What DescribeLogDirs and DescribeProducers report of a partition.
#[derive(Debug)]
pub struct PartitionDescription {
    pub size_bytes: u64,
    pub producers: Vec<ActiveProducer>,
}

const PRODUCER_SNAPSHOT_FILE: &str = "producer-state.json";

/// Largest read of the log while rebuilding producer state at open.
const PRODUCER_SCAN_STEP_BYTES: usize = 1 << 20;

/// One partition on its owner shard. Shard-local: lives on the owning shard from its first use
/// until the topic is deleted or the broker stops.
pub struct Partition {
    pub topic: String,
    /// The topic's id: with `index`, the partition's name in the shard's commit log.
    pub topic_id: [u8; 16],
    pub index: i32,
    pub dir: PathBuf,
    log: Rc<PartitionLog>,
    producers: RefCell<ProducerStateTable>,
    settings: RefCell<TopicSettings>,
    /// The leader epoch of this partition as the metadata image last said.
    leader_epoch: Cell<i32>,
    /// A task is making acks=0/1 appends durable (so that the high watermark moves on), or
    /// checkpointing the segments behind the shard's commit log.
    flushing: Cell<bool>,
    /// The shard's commit log (`commit_log_enabled`): acks=all goes through it while it runs.
    commit_log: Option<Rc<ShardCommitLog>>,
    traffic: Traffic,
}

/// Bytes and records appended to and read from one partition since it was opened (metrics).
#[derive(Default)]
struct Traffic {
    bytes_in: Cell<u64>,
    records_in: Cell<u64>,
    bytes_out: Cell<u64>,
    records_out: Cell<u64>,
}

fn bump(cell: &Cell<u64>, by: u64) {
    cell.set(cell.get().wrapping_add(by));
}

impl Partition {
    /// Opens (recovering) the log of partition `index` of `topic` and rebuilds the producer state.
    /// Files left by an earlier topic of the same name are removed first (`on_disk`).
    pub async fn open(
        config: &BrokerConfig,
        topic: &TopicMeta,
        index: i32,
        commit_log: Option<Rc<ShardCommitLog>>,
    ) -> Result<Rc<Partition>, PartitionError> {
        Self::open_cut_at(config, topic, index, None, commit_log).await
    }

    /// Opens again a partition whose log failed, from what is durable: recovery keeps the whole
    /// batches on disk, and those from `durable_end` (the high watermark at the failure) on are
    /// cut, since they were never fdatasync'd, acknowledged with acks=all, nor served. The
    /// producer state is rebuilt from what is left.
    pub async fn reopen(
        config: &BrokerConfig,
        topic: &TopicMeta,
        index: i32,
        durable_end: i64,
        commit_log: Option<Rc<ShardCommitLog>>,
    ) -> Result<Rc<Partition>, PartitionError> {
        Self::open_cut_at(config, topic, index, Some(durable_end), commit_log).await
    }

    async fn open_cut_at(
        config: &BrokerConfig,
        topic: &TopicMeta,
        index: i32,
        cut_at: Option<i64>,
        commit_log: Option<Rc<ShardCommitLog>>,
    ) -> Result<Rc<Partition>, PartitionError> {
        let fail = |operation, source| {
            PartitionError::new(
                &topic.name,
                index,
                PartitionErrorKind::Storage { operation, source },
            )
        };
        let settings = topic_config::settings(&topic.configs, config);
        let dir = partition_dir(&config.data_dir, &topic.name, index);
        on_disk::claim_dir(&dir, topic.id)
            .await
            .map_err(|e| fail("claiming the partition directory", e))?;
        let log = PartitionLog::open(&dir, settings.log.clone())
            .await
            .map_err(|e| fail("opening the log", e))?;
        let key = PartitionKey {
            topic_id: topic.id,
            partition: index,
        };
        if let Some(commit_log) = &commit_log {
            apply_commit_log(&log, commit_log, &key, cut_at.is_some())
                .await
                .map_err(|e| fail("applying the shard's commit log", e))?;
        }
        if let Some(end) = cut_at.filter(|&end| end < log.log_end_offset()) {
            tracing::warn!(topic = %topic.name, partition = index, from = end, to = log.log_end_offset(), "cutting what was written but never durable before the log failed");
            log.truncate_to(end)
                .await
                .map_err(|e| fail("cutting what was not durable", e))?;
            if let Some(running) = commit_log.as_ref().and_then(|c| c.running()) {
                // Records of the cut batches may sit in the commit log: void them at replay.
                let id = commit_log::partition_id(&key);
                let round = running.append_truncation(id, log.log_end_offset()).await;
                round
                    .map(|round| running.commit(round))
                    .map_err(|e| fail("recording the cut in the commit log", e))?
                    .await
                    .map_err(|e| fail("recording the cut in the commit log", e))?;
            }
        }
        let partition = Rc::new(Partition {
            topic: topic.name.clone(),
            topic_id: topic.id,
            index,
            dir,
            log,
            producers: RefCell::new(ProducerStateTable::default()),
            settings: RefCell::new(settings),
            leader_epoch: Cell::new(topic.partitions[index as usize].leader_epoch),
            flushing: Cell::new(false),
            commit_log,
            traffic: Traffic::default(),
        });
        partition.log.set_observer(Rc::new(ShardLogObserver));
        partition.recover_producer_state().await;
        Ok(partition)
    }

    fn error(&self, kind: PartitionErrorKind) -> PartitionError {
        PartitionError::new(&self.topic, self.index, kind)
    }

    fn storage_error(&self, operation: &'static str, source: StorageError) -> PartitionError {
        self.error(PartitionErrorKind::Storage { operation, source })
    }

    /// Loads the snapshot (if any, and not ahead of the log) and replays the batches after it.
    async fn recover_producer_state(&self) {
        let path = self.dir.join(PRODUCER_SNAPSHOT_FILE);
        let snapshot = glommio::executor()
            .spawn_blocking(move || {
                std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<ProducerSnapshot>(&b).ok())
            })
            .await;
        let log_end = self.log.log_end_offset();
        let mut from = self.log.log_start_offset();
        match snapshot {
            Some(s) if s.log_end_offset > log_end => {
                self.remove_stale_snapshot(s.log_end_offset).await
            }
            Some(s) if s.log_end_offset >= from => {
                from = s.log_end_offset;
                *self.producers.borrow_mut() = s.table;
            }
            _ => {}
        }
        while from < log_end {
            match self.replay_producers_from(from).await {
                Some(next) if next > from => from = next,
                _ => break, // no progress: nothing more to learn
            }
        }
    }

    /// Removes a snapshot taken past the log end (of batches a crash or a reopen cut): once the log
    /// grows past its offset again, loading it would describe batches the log does not hold.
    async fn remove_stale_snapshot(&self, snapshot_end: i64) {
        tracing::warn!(topic = %self.topic, partition = self.index, snapshot_end, log_end_offset = self.log.log_end_offset(), "removing a producer-state snapshot taken past the log end");
        let path = self.dir.join(PRODUCER_SNAPSHOT_FILE);
        let removed = glommio::executor()
            .spawn_blocking(move || std::fs::remove_file(path))
            .await;
        if let Err(e) = removed {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "cannot remove the stale producer-state snapshot");
        }
    }

    /// Replays the producer ids of the batches in one read from `from`; the offset after them.
    async fn replay_producers_from(&self, from: i64) -> Option<i64> {
        let read = match self.log.read(from, PRODUCER_SCAN_STEP_BYTES).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "producer state scan stopped");
                return None;
            }
        };
        let bytes = concat(&read.chunks);
        let mut next = from;
        let mut producers = self.producers.borrow_mut();
        for view in record_batch::batches(&bytes) {
            let Ok(view) = view else { break };
            let base = view.base_offset();
            producers.replay(
                view.producer_id(),
                view.producer_epoch(),
                view.base_sequence(),
                view.last_offset_delta(),
                base,
                view.max_timestamp(),
            );
            next = base + i64::from(view.last_offset_delta()) + 1;
        }
        Some(next)
    }

    /// Writes the producer-state snapshot (housekeeping and shutdown).
    pub async fn snapshot_producer_state(&self) {
        let snapshot = ProducerSnapshot {
            log_end_offset: self.log.log_end_offset(),
            table: self.producers.borrow().clone(),
        };
        let Ok(json) = serde_json::to_vec(&snapshot) else {
            return;
        };
        let dir = self.dir.clone();
        let result = glommio::executor()
            .spawn_blocking(move || {
                crate::metadata::store::write_atomically(&dir.join(PRODUCER_SNAPSHOT_FILE), &json)
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "cannot write producer state snapshot");
        }
    }

    /// The high watermark: the durable end of the log. Consumers read below it, ListOffsets
    /// "latest" answers it, and acks=all is answered when it passes the request's batches.
    pub fn high_watermark(&self) -> i64 {
        self.log.durable_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// Makes acks=0/1 appends durable soon, without the producer waiting: one task per partition
    /// flushes while the log end is ahead of the high watermark (each flush is group-committed
    /// with any acks=all waiting at the same time).
    fn flush_in_background(self: &Rc<Self>) {
        if self.flushing.replace(true) {
            return;
        }
        let this = self.clone();
        glommio::spawn_local(async move {
            while this.log.durable_offset() < this.log.log_end_offset() {
                if let Err(e) = this.log.flush().await {
                    tracing::debug!(topic = %this.topic, partition = this.index, error = %e, "background flush stopped");
                    break;
                }
            }
            this.flushing.set(false);
        })
        .detach();
    }

    /// Makes the segments durable up to the log end: a checkpoint of the shard's commit log,
    /// after which its records of this partition are no longer needed.
    pub async fn checkpoint(&self) -> Result<(), StorageError> {
        self.log.flush().await.map(|_| ())
    }

    /// Starts one background checkpoint when the bytes durable only in the commit log reach
    /// `commit_log_checkpoint_bytes` (they hold tail-cache memory until then).
    fn checkpoint_if_due(self: &Rc<Self>, checkpoint_bytes: u64) {
        if self.log.bytes_not_durable_in_segments() < checkpoint_bytes
            || self.flushing.replace(true)
        {
            return;
        }
        let this = self.clone();
        glommio::spawn_local(async move {
            if let Err(e) = this.checkpoint().await {
                tracing::debug!(topic = %this.topic, partition = this.index, error = %e, "checkpoint stopped");
            }
            this.flushing.set(false);
        })
        .detach();
    }

    /// Offsets, size and traffic, as the admin listener reports them.
    pub fn stats(&self) -> PartitionStats {
        let t = &self.traffic;
        PartitionStats {
            topic: self.topic.clone(),
            partition: self.index,
            log_start_offset: self.log.log_start_offset(),
            log_end_offset: self.log.log_end_offset(),
            high_watermark: self.high_watermark(),
            size_bytes: self.log.size_bytes(),
            bytes_in: t.bytes_in.get(),
            records_in: t.records_in.get(),
            bytes_out: t.bytes_out.get(),
            records_out: t.records_out.get(),
        }
    }

    pub fn describe(&self) -> PartitionDescription {
        PartitionDescription {
            size_bytes: self.log.size_bytes(),
            producers: self.producers.borrow().active(),
        }
    }

    pub fn tail_cache_bytes(&self) -> usize {
        self.log.tail_cache_bytes()
    }

    /// Takes the topic's current metadata: its config overrides and this partition's leader epoch.
    pub fn apply_metadata(&self, topic: &TopicMeta, config: &BrokerConfig) {
        let settings = topic_config::settings(&topic.configs, config);
        self.log.set_config(settings.log.clone());
        *self.settings.borrow_mut() = settings;
        if let Some(meta) = topic.partitions.get(self.index as usize) {
            self.leader_epoch.set(meta.leader_epoch);
        }
    }

    /// Retention, segment roll by time, and the producer-state snapshot.
    pub async fn housekeeping(&self, now_ms: i64) {
        if self.log_failure().is_some() {
            // Offline until reopened; a snapshot now could describe batches never durable.
            return;
        }
        if self.commit_log.is_some() && self.log.bytes_not_durable_in_segments() > 0 {
            // An idle partition's segments catch up with the commit log.
            if let Err(e) = self.checkpoint().await {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "checkpoint failed");
            }
        }
        if let Err(e) = self.log.housekeeping(now_ms).await {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "housekeeping failed");
        }
        self.snapshot_producer_state().await;
    }

    /// Why this partition's log went offline (a write or fdatasync failed), if it did: the
    /// partition must then be closed and reopened (`reopen`), never written again.
    pub fn log_failure(&self) -> Option<StorageError> {
        self.log.failure()
    }

    /// Closes a log that failed. The producer state is not saved: it may describe batches that
    /// never became durable (the reopen rebuilds it from the log).
    pub async fn close_after_failure(&self) {
        if let Err(e) = self.log.close().await {
            tracing::debug!(topic = %self.topic, partition = self.index, error = %e, "closed the failed log");
        }
    }

    /// Closes the log after writing the producer state.
    pub async fn close(&self) {
        self.snapshot_producer_state().await;
        if let Err(e) = self.log.close().await {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "closing log failed");
        }
    }
}

/// Applies the records of `key` in the shard's commit log that its segments lack: at start-up
/// those read back then, after a log failure (`reopen`) those in the files now. Records taken and
/// not applied are put back, so the commit log does not restart without them.
async fn apply_commit_log(
    log: &PartitionLog,
    commit_log: &ShardCommitLog,
    key: &PartitionKey,
    reopen: bool,
) -> Result<(), StorageError> {
    let records = if reopen {
        commit_log.read_back(key).await?
    } else {
        commit_log.take_replayed(key).await
    };
    if records.is_empty() {
        return Ok(());
    }
    let before = log.log_end_offset();
    if let Err(e) = log.apply_replayed(&records).await {
        commit_log.put_back(key, records);
        return Err(e);
    }
    tracing::info!(
        partition = key.partition,
        records = records.len(),
        from = before,
        to = log.log_end_offset(),
        "applied the shard's commit log"
    );
    Ok(())
}

/// One contiguous buffer from read chunks (recovery scans only; the fetch path never copies).
pub fn concat(chunks: &[Bytes]) -> Bytes {
    match chunks {
        [one] => one.clone(),
        _ => {
            let mut out = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
            for c in chunks {
                out.extend_from_slice(c);
            }
            out.freeze()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use glommio::{LocalExecutorBuilder, Placement};
    use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};

    use super::request::{PartitionRequest, PartitionResponse};
    use super::*;
    use crate::metadata::image::MetadataImage;

    const PRODUCER_ID: i64 = 7;

    fn idempotent_batch(sequence: i32) -> Bytes {
        let mut builder =
            RecordBatchBuilder::new(Compression::None, 1_000).producer(PRODUCER_ID, 0, sequence);
        builder.append(1_000, None, Some(b"value"), &[]);
        builder.finish()
    }

    async fn produce(p: &Rc<Partition>, sequence: i32) -> Result<i64, PartitionError> {
        let request = PartitionRequest::Produce {
            records: idempotent_batch(sequence).into(),
            acks: -1,
        };
        match p.clone().serve(request).await? {
            PartitionResponse::Produced(produced) => Ok(produced.base_offset),
            other => panic!("a produce answered {other:?}"),
        }
    }

    #[test]
    fn a_reopen_cuts_what_was_not_durable_and_rebuilds_the_producer_state_from_what_is_left() {
        let data = tempfile::tempdir().unwrap();
        let config = BrokerConfig {
            data_dir: data.path().to_path_buf(),
            ..BrokerConfig::default()
        };
        LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(512 * 1024)
            .spawn(move || async move {
                let image = MetadataImage::default();
                let topic = TopicMeta {
                    name: "t".to_string(),
                    id: [9; 16],
                    partitions: image.place_partitions(1, 1, 0),
                    configs: BTreeMap::new(),
                };
                let p = Partition::open(&config, &topic, 0, None).await.unwrap();
                for sequence in 0..3 {
                    assert_eq!(produce(&p, sequence).await.unwrap(), i64::from(sequence));
                }
                p.close().await;
                // As if the log had failed with offsets 0 and 1 durable and 2 written, not synced.
                let p = Partition::reopen(&config, &topic, 0, 2, None)
                    .await
                    .unwrap();
                assert_eq!((p.log_end_offset(), p.high_watermark()), (2, 2));
                // The snapshot close wrote at offset 3 described the cut batch: it is gone.
                assert!(!p.dir.join(PRODUCER_SNAPSHOT_FILE).exists());
                // Sequence 1 was kept: its retry is a duplicate, answered with its offset.
                assert_eq!(produce(&p, 1).await.unwrap(), 1);
                // Sequence 2 was cut: its retry is written again, where it was.
                assert_eq!(produce(&p, 2).await.unwrap(), 2);
                assert_eq!(p.log_end_offset(), 3);
                p.close().await;
                // A durable end at or past the log end cuts nothing.
                let p = Partition::reopen(&config, &topic, 0, 5, None)
                    .await
                    .unwrap();
                assert_eq!(p.log_end_offset(), 3);
                p.close().await;
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
