//! A partition on its owner shard: the log, the idempotent-producer state and the topic settings,
//! and the produce path that validates batches and appends them in order.

pub mod producer_state;
pub mod visible;

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use riffle_protocol::error_code;
use riffle_protocol::record_batch::{self, RecordBatchView, TimestampType};
use riffle_storage::PartitionLog;
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::errors;
use crate::metadata::image::TopicMeta;
use crate::shard::Shard;
use crate::topic_config::{self, TopicSettings};
use producer_state::{Admission, ProducerStateTable};

/// Identifies a partition across renames and re-creations: topic id + index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic_id: [u8; 16],
    pub partition: i32,
}

/// Result of a produce to one partition, as the Produce response needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProduceOutcome {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

impl ProduceOutcome {
    pub fn error(code: i16, message: impl Into<Option<String>>) -> Self {
        ProduceOutcome {
            error_code: code,
            error_message: message.into(),
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
        }
    }
}

/// Producer state written beside the log so that duplicate detection survives a restart: the
/// table as of `log_end_offset`; batches after it are replayed from the log at open.
#[derive(Serialize, Deserialize)]
struct ProducerSnapshot {
    log_end_offset: i64,
    table: ProducerStateTable,
}

const PRODUCER_SNAPSHOT_FILE: &str = "producer-state.json";

/// One partition on its owner shard. Shard-local: lives on the owning shard from its first use
/// until the topic is deleted or the broker stops.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub dir: PathBuf,
    pub log: Rc<PartitionLog>,
    producers: RefCell<ProducerStateTable>,
    settings: RefCell<TopicSettings>,
    /// A task is making acks=0/1 appends durable (so that the high watermark moves on).
    flushing: Cell<bool>,
}

pub fn partition_dir(data_dir: &std::path::Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

impl Partition {
    /// Opens (recovering) the log and rebuilds the producer state.
    pub async fn open(
        shard: Rc<Shard>,
        topic: &TopicMeta,
        index: i32,
    ) -> Result<Rc<Partition>, i16> {
        let settings = topic_config::settings(&topic.configs, shard.config());
        let dir = partition_dir(&shard.config().data_dir, &topic.name, index);
        let log = PartitionLog::open(&dir, settings.log.clone()).await.map_err(|e| {
            tracing::error!(topic = %topic.name, partition = index, error = %e, "cannot open partition log");
            errors::storage_error_code(&e)
        })?;
        let partition = Rc::new(Partition {
            topic: topic.name.clone(),
            index,
            dir,
            log,
            producers: RefCell::new(ProducerStateTable::default()),
            settings: RefCell::new(settings),
            flushing: Cell::new(false),
        });
        partition.recover_producer_state().await;
        Ok(partition)
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
        const SCAN_STEP_BYTES: usize = 1 << 20;
        while from < log_end {
            let read = match self.log.read(from, SCAN_STEP_BYTES).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "producer state scan stopped");
                    break;
                }
            };
            let bytes = concat(&read.chunks);
            let mut next = from;
            for view in record_batch::batches(&bytes) {
                let Ok(view) = view else { break };
                let base = view.base_offset();
                self.producers.borrow_mut().replay(
                    view.producer_id(),
                    view.producer_epoch(),
                    view.base_sequence(),
                    view.last_offset_delta(),
                    base,
                );
                next = base + i64::from(view.last_offset_delta()) + 1;
            }
            if next <= from {
                break; // no progress: nothing more to learn
            }
            from = next;
        }
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

    /// Resolves once the high watermark is above `offset`, or the log can go no further (closed
    /// or failed). Callers bound it with their own deadline.
    pub async fn wait_for_high_watermark_above(&self, offset: i64) {
        while self.high_watermark() <= offset {
            if self.log.log_end_offset() > offset {
                if self.log.flush().await.is_err() {
                    return;
                }
            } else {
                self.log.wait_for_append(offset).await;
                if self.log.log_end_offset() <= offset {
                    return; // closed or failed
                }
            }
        }
    }

    pub fn apply_settings(&self, settings: TopicSettings) {
        self.log.set_config(settings.log.clone());
        *self.settings.borrow_mut() = settings;
    }

    /// Validates and appends the record batches of one Produce partition. Everything up to the
    /// appends runs without yielding, so produce requests are appended in the order they arrive.
    /// With `acks == -1` it returns once the batches are durable.
    pub async fn produce(self: Rc<Self>, records: Bytes, acks: i16) -> ProduceOutcome {
        let (max_message_bytes, log_append_time) = {
            let s = self.settings.borrow();
            (s.max_message_bytes, s.log_append_time)
        };
        // 1. split and validate every batch before appending any (validate() applies Kafka's
        //    rules for client batches: CRC, codec, counts, no control batches)
        let mut batches = Vec::new();
        let mut position = 0usize;
        for view in record_batch::batches(&records) {
            let view = match view.and_then(|v| v.validate().map(|()| v)) {
                Ok(v) => v,
                Err(e) => {
                    return ProduceOutcome::error(errors::batch_error_code(&e), Some(e.to_string()))
                }
            };
            if view.len() > max_message_bytes {
                return ProduceOutcome::error(
                    error_code::MESSAGE_TOO_LARGE,
                    Some(format!(
                        "batch of {} bytes exceeds max.message.bytes {max_message_bytes}",
                        view.len()
                    )),
                );
            }
            batches.push((position..position + view.len(), BatchIds::of(&view)));
            position += view.len();
        }
        if batches.is_empty() {
            return ProduceOutcome::error(
                error_code::CORRUPT_MESSAGE,
                Some("no record batch in produce request".to_string()),
            );
        }
        if position != records.len() {
            return ProduceOutcome::error(
                error_code::CORRUPT_MESSAGE,
                Some("trailing bytes after the last batch".to_string()),
            );
        }

        // 2. idempotence: admit every batch (records them as in flight)
        let mut to_append = Vec::with_capacity(batches.len());
        let mut duplicate_offset = None;
        {
            let mut producers = self.producers.borrow_mut();
            for (range, ids) in &batches {
                match producers.admit(
                    ids.producer_id,
                    ids.producer_epoch,
                    ids.base_sequence,
                    ids.last_offset_delta,
                ) {
                    Ok(Admission::Append) => to_append.push((range.clone(), *ids)),
                    Ok(Admission::Duplicate { base_offset }) => {
                        duplicate_offset.get_or_insert(base_offset);
                    }
                    Err(code) => {
                        for (_, ids) in &to_append {
                            producers.failed(ids.producer_id, ids.base_sequence);
                        }
                        return ProduceOutcome::error(code, None);
                    }
                }
            }
        }

        // 3. append in order (the log assigns offsets on the first poll of each append)
        let append_time = if log_append_time { now_ms() } else { -1 };
        let appends = to_append.iter().map(|(range, _)| {
            let batch = if log_append_time {
                let mut copy = BytesMut::from(&records[range.clone()]);
                record_batch::set_log_append_time(&mut copy, append_time);
                copy.freeze()
            } else {
                records.slice(range.clone())
            };
            self.log.append(batch)
        });
        let results = futures::future::join_all(appends).await;
        let mut first_offset = None;
        let mut failure = None;
        {
            let mut producers = self.producers.borrow_mut();
            for ((_, ids), result) in to_append.iter().zip(results) {
                match result {
                    Ok(info) => {
                        first_offset.get_or_insert(info.base_offset);
                        producers.appended(ids.producer_id, ids.base_sequence, info.base_offset);
                    }
                    Err(e) => {
                        producers.failed(ids.producer_id, ids.base_sequence);
                        failure.get_or_insert(e);
                    }
                }
            }
        }
        if let Some(e) = failure {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "append failed");
            return ProduceOutcome::error(errors::storage_error_code(&e), Some(e.to_string()));
        }
        if acks == -1 && first_offset.is_some() {
            if let Err(e) = self.log.flush().await {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "flush failed");
                return ProduceOutcome::error(errors::storage_error_code(&e), Some(e.to_string()));
            }
        } else if first_offset.is_some() {
            self.flush_in_background();
        }
        ProduceOutcome {
            error_code: error_code::NONE,
            error_message: None,
            base_offset: first_offset.or(duplicate_offset).unwrap_or(-1),
            log_append_time_ms: append_time,
            log_start_offset: self.log.log_start_offset(),
        }
    }

    /// ListOffsets by timestamp: the first record whose timestamp is at or after `timestamp_ms`,
    /// as (offset, timestamp). The log finds the batch; its records say which one.
    pub async fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>, i16> {
        let storage_code = |e: riffle_storage::StorageError| errors::storage_error_code(&e);
        let Some((base, batch_max_ts)) = self
            .log
            .offset_for_timestamp(timestamp_ms)
            .await
            .map_err(storage_code)?
        else {
            return Ok(None);
        };
        let read = self.log.read(base, 1).await.map_err(storage_code)?;
        let bytes = concat(&read.chunks);
        let found = record_batch::batches(&bytes)
            .next()
            .and_then(Result::ok)
            .and_then(|view| first_record_at_or_after(&view, timestamp_ms));
        Ok(Some(found.unwrap_or((base, batch_max_ts))))
    }

    /// Closes the log after writing the producer state.
    pub async fn close(&self) {
        self.snapshot_producer_state().await;
        if let Err(e) = self.log.close().await {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "closing log failed");
        }
    }
}

/// Largest decompressed batch scanned for a timestamp lookup.
const TIMESTAMP_SCAN_MAX_BYTES: usize = 64 << 20;

/// The first record of `view` whose timestamp is at or after `timestamp_ms`, as (offset, timestamp).
fn first_record_at_or_after(view: &RecordBatchView<'_>, timestamp_ms: i64) -> Option<(i64, i64)> {
    if view.attributes().timestamp_type() == TimestampType::LogAppendTime {
        // every record carries the batch's append time
        return (view.max_timestamp() >= timestamp_ms)
            .then_some((view.base_offset(), view.max_timestamp()));
    }
    let decompressed;
    let records = match view.records() {
        Ok(iter) => iter,
        Err(_) => {
            decompressed = view.decompress(TIMESTAMP_SCAN_MAX_BYTES).ok()?;
            record_batch::parse_records(&decompressed, view.record_count())
        }
    };
    for record in records {
        let record = record.ok()?;
        let ts = view.base_timestamp() + record.timestamp_delta;
        if ts >= timestamp_ms {
            return Some((view.base_offset() + i64::from(record.offset_delta), ts));
        }
    }
    None
}

/// The idempotence fields of a batch header.
#[derive(Debug, Clone, Copy)]
struct BatchIds {
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    last_offset_delta: i32,
}

impl BatchIds {
    fn of(view: &RecordBatchView<'_>) -> Self {
        BatchIds {
            producer_id: view.producer_id(),
            producer_epoch: view.producer_epoch(),
            base_sequence: view.base_sequence(),
            last_offset_delta: view.last_offset_delta(),
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
