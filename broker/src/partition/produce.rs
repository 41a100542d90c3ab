//! The produce path of a partition: validate every batch, admit it against the producer state
//! (idempotence), append in arrival order, and answer at the durability `acks` asks for.

use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use riffle_protocol::record_batch::{self, BatchError, Compression, RecordBatchView};
use riffle_storage::{AppendInfo, ReceiveBuffer, StorageError};

use super::error::{PartitionError, PartitionErrorKind};
use super::producer_state::Admission;
use super::Partition;
use crate::admin::metrics;
use riffle_storage::clock::now_ms;

/// A produce to one partition that succeeded, as the Produce response needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Produced {
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// One partition's records in a Produce request: bytes of their own, or a slice of the
/// connection's receive buffer, named so that the tail cache charges that whole buffer once
/// rather than the slice (a slice keeps all of it alive).
#[derive(Debug, Clone)]
pub struct ProduceRecords {
    pub bytes: Bytes,
    pub buffer: Option<ReceiveBuffer>,
}

impl From<Bytes> for ProduceRecords {
    fn from(bytes: Bytes) -> Self {
        ProduceRecords {
            bytes,
            buffer: None,
        }
    }
}

/// The idempotence fields of a batch header.
#[derive(Debug, Clone, Copy)]
struct BatchIds {
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    last_offset_delta: i32,
    max_timestamp_ms: i64,
}

impl BatchIds {
    fn of(view: &RecordBatchView<'_>) -> Self {
        BatchIds {
            producer_id: view.producer_id(),
            producer_epoch: view.producer_epoch(),
            base_sequence: view.base_sequence(),
            last_offset_delta: view.last_offset_delta(),
            max_timestamp_ms: view.max_timestamp(),
        }
    }
}

/// One validated batch: where it lies in the request's records, and its producer fields.
type Admitted = (Range<usize>, BatchIds);

/// How far a compressed batch may grow when decompressed to check its records on produce, a
/// bound against decompression bombs (Kafka's own is its heap): 64 times the batch, at least
/// 8 MiB (the most a zstd context the shard keeps can decode into: below it no new context per
/// batch, which cost more than the decoding) and at most 64 MiB. Past it the batch gets
/// INVALID_RECORD. One batch at a time per shard (the check does not yield), so a shard holds at
/// most this much for it.
fn decompressed_batch_max_bytes(batch_bytes: usize) -> usize {
    const RATIO: usize = 64;
    const MIN: usize = 8 << 20;
    const MAX: usize = 64 << 20;
    batch_bytes.saturating_mul(RATIO).clamp(MIN, MAX)
}

/// The records of a partition's batches, read as Kafka's LogValidator reads them on produce:
/// a compressed batch is decompressed and its records parsed (an uncompressed one's records were
/// parsed by `validate()`); on a compacted topic, the records without a key are noted, numbered
/// from 0 across the batches.
struct RecordCheck {
    compacted: bool,
    scanned: i32,
    keyless: Vec<i32>,
}

impl RecordCheck {
    fn new(compacted: bool) -> RecordCheck {
        RecordCheck {
            compacted,
            scanned: 0,
            keyless: Vec::new(),
        }
    }

    fn check(&mut self, view: &RecordBatchView<'_>) -> Result<(), BatchError> {
        if !self.compacted {
            return view.validate_compressed_records(decompressed_batch_max_bytes(view.len()));
        }
        let decompressed;
        let records = if view.attributes().try_compression()? == Compression::None {
            view.records_bytes()
        } else {
            decompressed = view.decompress(decompressed_batch_max_bytes(view.len()))?;
            &decompressed[..]
        };
        for record in record_batch::parse_records(records, view.record_count()) {
            if record?.key.is_none() {
                self.keyless.push(self.scanned);
            }
            self.scanned += 1;
        }
        Ok(())
    }
}

/// The (base, last) offsets of a batch already written.
type Written = (i64, i64);

impl Partition {
    /// Validates and appends the record batches of one Produce partition. Everything up to the
    /// appends runs without yielding, so produce requests are appended in the order they arrive.
    /// With `acks == -1` it returns once the batches are durable.
    pub async fn produce(
        self: Rc<Self>,
        records: ProduceRecords,
        acks: i16,
    ) -> Result<Produced, PartitionError> {
        let ProduceRecords {
            bytes: records,
            buffer,
        } = records;
        let batches = self.validate(&records)?;
        self.check_min_insync(acks)?;
        let (to_append, duplicate) = self.admit(&batches)?;
        let log_append_time = self.settings.borrow().log_append_time;
        let append_time_ms = if log_append_time { now_ms() } else { -1 };
        let appends = to_append.iter().map(|(range, _)| {
            if log_append_time {
                let mut copy = BytesMut::from(&records[range.clone()]);
                record_batch::set_log_append_time(&mut copy, append_time_ms);
                self.log.append_received(copy.freeze(), None)
            } else {
                self.log
                    .append_received(records.slice(range.clone()), buffer.clone())
            }
        });
        let started = Instant::now();
        let results = futures::future::join_all(appends).await;
        let first_offset = self.record_appends(&to_append, results, append_time_ms)?;
        self.count_appended(&to_append, started.elapsed());
        if acks == -1 {
            self.make_durable(&to_append, duplicate).await?;
        } else if first_offset.is_some() {
            self.flush_in_background();
        }
        Ok(Produced {
            base_offset: first_offset.or(duplicate.map(|d| d.0)).unwrap_or(-1),
            log_append_time_ms: append_time_ms,
            log_start_offset: self.log.log_start_offset(),
        })
    }

    /// Splits the records into batches and checks each against Kafka's rules for client batches
    /// (CRC, codec, counts, no control batches) and `max.message.bytes`, before any is appended.
    fn validate(&self, records: &Bytes) -> Result<Vec<Admitted>, PartitionError> {
        let (max_message_bytes, compacted) = {
            let settings = self.settings.borrow();
            (settings.max_message_bytes, settings.compacted)
        };
        let mut batches = Vec::new();
        let mut position = 0usize;
        let mut records_check = RecordCheck::new(compacted);
        for view in record_batch::batches(records) {
            let invalid =
                |source| self.error(PartitionErrorKind::InvalidBatch { position, source });
            let view = view
                .and_then(|v| v.validate().map(|()| v))
                .map_err(invalid)?;
            if view.len() > max_message_bytes {
                return Err(self.error(PartitionErrorKind::MessageTooLarge {
                    size_bytes: view.len(),
                    max_bytes: max_message_bytes,
                }));
            }
            self.check_timestamps(&view)?;
            records_check.check(&view).map_err(invalid)?;
            batches.push((position..position + view.len(), BatchIds::of(&view)));
            position += view.len();
        }
        let corrupt = |reason| self.error(PartitionErrorKind::CorruptRequest { reason });
        if batches.is_empty() {
            return Err(corrupt("no record batch in produce request"));
        }
        if position != records.len() {
            return Err(corrupt("trailing bytes after the last batch"));
        }
        if !records_check.keyless.is_empty() {
            return Err(
                self.error(PartitionErrorKind::KeylessRecordsOnCompactedTopic {
                    topic: self.topic.clone(),
                    partition: self.index,
                    record_indexes: records_check.keyless,
                }),
            );
        }
        Ok(batches)
    }

    /// With CreateTime, the batch's first and largest timestamps must lie within
    /// `message.timestamp.before.max.ms` before and `message.timestamp.after.max.ms` after the
    /// broker's clock (Kafka 4 checks each record; the header's two bound the usual batch).
    fn check_timestamps(&self, view: &RecordBatchView<'_>) -> Result<(), PartitionError> {
        let settings = self.settings.borrow();
        if settings.log_append_time {
            return Ok(());
        }
        let now = now_ms();
        let earliest_ms = now.saturating_sub(settings.timestamp_before_max_ms);
        let latest_ms = now.saturating_add(settings.timestamp_after_max_ms);
        for timestamp_ms in [view.base_timestamp(), view.max_timestamp()] {
            if !(earliest_ms..=latest_ms).contains(&timestamp_ms) {
                return Err(self.error(PartitionErrorKind::TimestampOutOfRange {
                    timestamp_ms,
                    earliest_ms,
                    latest_ms,
                }));
            }
        }
        Ok(())
    }

    /// acks=all needs `min.insync.replicas` in-sync replicas; a single node is the only one.
    fn check_min_insync(&self, acks: i16) -> Result<(), PartitionError> {
        const IN_SYNC_REPLICAS: i32 = 1;
        let required = self.settings.borrow().min_insync_replicas;
        if acks == -1 && required > IN_SYNC_REPLICAS {
            return Err(self.error(PartitionErrorKind::NotEnoughReplicas {
                required,
                in_sync: IN_SYNC_REPLICAS,
            }));
        }
        Ok(())
    }

    /// Admits every batch against the producer state (recording the appended ones as in flight):
    /// the batches to append, and the (base, last) offsets of the first duplicate. A refused batch
    /// refuses the whole request and undoes the admissions before it; so does a duplicate whose
    /// original is still being appended (the client retries, and is answered once it is written).
    fn admit(
        &self,
        batches: &[Admitted],
    ) -> Result<(Vec<Admitted>, Option<Written>), PartitionError> {
        let mut to_append = Vec::with_capacity(batches.len());
        let mut duplicate = None;
        let mut producers = self.producers.borrow_mut();
        for (range, ids) in batches {
            match producers.admit(
                ids.producer_id,
                ids.producer_epoch,
                ids.base_sequence,
                ids.last_offset_delta,
            ) {
                Ok(Admission::Append) => to_append.push((range.clone(), *ids)),
                Ok(Admission::Duplicate { base_offset }) if base_offset >= 0 => {
                    let last_offset = base_offset + i64::from(ids.last_offset_delta);
                    duplicate.get_or_insert((base_offset, last_offset));
                }
                refused => {
                    for (_, ids) in &to_append {
                        producers.failed(ids.producer_id, ids.base_sequence);
                    }
                    let kind = match refused {
                        Err(source) => PartitionErrorKind::Sequence {
                            producer_id: ids.producer_id,
                            source,
                        },
                        _ => PartitionErrorKind::DuplicateInFlight {
                            producer_id: ids.producer_id,
                            base_sequence: ids.base_sequence,
                        },
                    };
                    return Err(self.error(kind));
                }
            }
        }
        Ok((to_append, duplicate))
    }

    /// Records each append's offset and timestamp (`append_time_ms` under LogAppendTime, else the
    /// batch's largest) in the producer state, or its failure; the first base offset.
    fn record_appends(
        &self,
        appended: &[Admitted],
        results: Vec<Result<AppendInfo, StorageError>>,
        append_time_ms: i64,
    ) -> Result<Option<i64>, PartitionError> {
        let mut first_offset = None;
        let mut failure = None;
        let mut producers = self.producers.borrow_mut();
        for ((_, ids), result) in appended.iter().zip(results) {
            match result {
                Ok(info) => {
                    first_offset.get_or_insert(info.base_offset);
                    let timestamp_ms = if append_time_ms >= 0 {
                        append_time_ms
                    } else {
                        ids.max_timestamp_ms
                    };
                    producers.appended(
                        ids.producer_id,
                        ids.base_sequence,
                        info.base_offset,
                        timestamp_ms,
                    );
                }
                Err(e) => {
                    producers.failed(ids.producer_id, ids.base_sequence);
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            Some(e) => Err(self.logged(self.storage_error("append", e))),
            None => Ok(first_offset),
        }
    }

    /// Counts appended batches for this partition and its shard (metrics).
    fn count_appended(&self, appended: &[Admitted], append_latency: Duration) {
        if appended.is_empty() {
            return;
        }
        let bytes: usize = appended.iter().map(|(range, _)| range.len()).sum();
        let records: u64 = appended
            .iter()
            .map(|(_, ids)| u64::from(ids.last_offset_delta.unsigned_abs()) + 1)
            .sum();
        super::bump(&self.traffic.bytes_in, bytes as u64);
        super::bump(&self.traffic.records_in, records);
        metrics::produced(bytes as u64, records, append_latency);
    }

    /// Makes everything appended durable: through the shard's commit log while it runs (one
    /// fdatasync for the shard's round), else by this partition's own fdatasync, which is also
    /// the fallback when the commit log fails (the segments hold every byte written to it).
    async fn durable_now(self: &Rc<Self>) -> Result<(), StorageError> {
        let Some(shard_log) = &self.commit_log else {
            return self.log.flush().await.map(|_| ());
        };
        let Some(running) = shard_log.running() else {
            return self.log.flush().await.map(|_| ());
        };
        let key = super::PartitionKey {
            topic_id: self.topic_id,
            partition: self.index,
        };
        match self
            .log
            .commit_to(&running, super::commit_log::partition_id(&key))
            .await
        {
            Ok(_) => {
                self.checkpoint_if_due(shard_log.checkpoint_bytes);
                Ok(())
            }
            Err(_) if running.check_usable().is_err() => self.log.flush().await.map(|_| ()),
            Err(e) => Err(e),
        }
    }

    /// acks=all: returns once the appended batches and the original of a duplicate are durable. A
    /// failed flush leaves the producer state as if the appended batches were never admitted.
    async fn make_durable(
        self: &Rc<Self>,
        appended: &[Admitted],
        duplicate: Option<Written>,
    ) -> Result<(), PartitionError> {
        let duplicate_pending = duplicate.is_some_and(|(_, last)| self.high_watermark() <= last);
        if appended.is_empty() && !duplicate_pending {
            return Ok(());
        }
        if let Err(e) = self.durable_now().await {
            let mut producers = self.producers.borrow_mut();
            for (_, ids) in appended {
                producers.not_durable(ids.producer_id, ids.base_sequence);
            }
            return Err(self.logged(self.storage_error("flush", e)));
        }
        Ok(())
    }

    /// Logs a storage failure of the produce path (client errors are logged by the handler).
    fn logged(&self, e: PartitionError) -> PartitionError {
        tracing::error!(error = %e, "produce failed");
        e
    }
}
