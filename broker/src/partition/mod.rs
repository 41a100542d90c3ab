//! A partition on its owner shard, and the one owner of every partition rule: admission of
//! produced batches (validation, idempotence), append and durability, the high watermark and what
//! a reader may see, offsets by time, delete-records, and the files on disk. Handlers reach it only
//! through the typed requests of `request.rs`; nothing else touches its log.

pub mod error;
mod on_disk;
mod produce;
pub mod producer_state;
mod reads;
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
use error::{PartitionError, PartitionErrorKind};
use producer_state::ProducerStateTable;

pub use on_disk::{partition_dir, remove_partition_dir, sweep_orphaned_partition_dirs};
pub use produce::Produced;
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

const PRODUCER_SNAPSHOT_FILE: &str = "producer-state.json";

/// Largest read of the log while rebuilding producer state at open.
const PRODUCER_SCAN_STEP_BYTES: usize = 1 << 20;

/// One partition on its owner shard. Shard-local: lives on the owning shard from its first use
/// until the topic is deleted or the broker stops.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub dir: PathBuf,
    log: Rc<PartitionLog>,
    producers: RefCell<ProducerStateTable>,
    settings: RefCell<TopicSettings>,
    /// The leader epoch of this partition as the metadata image last said.
    leader_epoch: Cell<i32>,
    /// A task is making acks=0/1 appends durable (so that the high watermark moves on).
    flushing: Cell<bool>,
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
        let partition = Rc::new(Partition {
            topic: topic.name.clone(),
            index,
            dir,
            log,
            producers: RefCell::new(ProducerStateTable::default()),
            settings: RefCell::new(settings),
            leader_epoch: Cell::new(topic.partitions[index as usize].leader_epoch),
            flushing: Cell::new(false),
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
        if let Some(s) =
            snapshot.filter(|s| s.log_end_offset <= log_end && s.log_end_offset >= from)
        {
            from = s.log_end_offset;
            *self.producers.borrow_mut() = s.table;
        }
        while from < log_end {
            match self.replay_producers_from(from).await {
                Some(next) if next > from => from = next,
                _ => break, // no progress: nothing more to learn
            }
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
        if let Err(e) = self.log.housekeeping(now_ms).await {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "housekeeping failed");
        }
        self.snapshot_producer_state().await;
    }

    /// Closes the log after writing the producer state.
    pub async fn close(&self) {
        self.snapshot_producer_state().await;
        if let Err(e) = self.log.close().await {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "closing log failed");
        }
    }
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
