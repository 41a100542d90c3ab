//! What readers may see of a partition and the offsets they may ask for: everything here answers
//! below the high watermark (the durable end of the log), so no reader is handed a record a crash
//! could take back.

use std::time::Duration;

use bytes::Bytes;
use futures::future::select;
use riffle_protocol::record_batch::{self, RecordBatchView, TimestampType};
use riffle_storage::StorageError;

use super::error::{PartitionError, PartitionErrorKind};
use super::{concat, visible, Partition};
use crate::admin::metrics;

/// ListOffsets' special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// KIP-405's earliest-local and earliest-pending-upload: without tiered storage, the log start.
const EARLIEST_LOCAL: i64 = -4;
const EARLIEST_PENDING_UPLOAD: i64 = -5;

/// Largest decompressed batch scanned for a timestamp lookup.
const TIMESTAMP_SCAN_MAX_BYTES: usize = 64 << 20;

/// One Fetch read of a partition: whole stored batches below the high watermark.
#[derive(Debug, Default)]
pub struct PartitionRead {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub chunks: Vec<Bytes>,
    pub bytes: usize,
}

/// ListOffsets' answer: an offset and the timestamp it was found by (-1 when not by timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    pub timestamp: i64,
    pub offset: i64,
}

/// OffsetForLeaderEpoch's answer: the epoch and the offset it ends at (-1, -1 if unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEnd {
    pub leader_epoch: i32,
    pub end_offset: i64,
}

impl Partition {
    /// Counts the batches handed to a reader for this partition and its shard (metrics).
    fn count_read(&self, read: &PartitionRead) {
        let records = visible::record_count(&read.chunks);
        super::bump(&self.traffic.bytes_out, read.bytes as u64);
        super::bump(&self.traffic.records_out, records);
        metrics::consumed(read.bytes as u64, records);
    }

    /// Reads up to `max_bytes` of whole batches from `offset` (at least one), cut at the high
    /// watermark. Between the high watermark and the log end nothing is visible yet; past the log
    /// end (or before its start) the offset is out of range. `max_bytes` 0 reads no batch: it
    /// checks the offset and answers the positions (a Fetch whose `max_bytes` is spent).
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<PartitionRead, PartitionError> {
        let high_watermark = self.high_watermark();
        let mut out = PartitionRead {
            high_watermark,
            log_start_offset: self.log.log_start_offset(),
            ..Default::default()
        };
        if offset >= high_watermark && offset <= self.log.log_end_offset() {
            return Ok(out);
        }
        let read = self
            .log
            .read(offset, max_bytes)
            .await
            .map_err(|e| self.read_error(offset, e))?;
        let high_watermark = self.high_watermark();
        (out.chunks, out.bytes) = if read.log_end_offset <= high_watermark {
            (read.chunks, read.bytes) // all of it is durable: nothing to cut
        } else {
            visible::cut_at_offset(read.chunks, high_watermark)
        };
        out.high_watermark = high_watermark;
        out.log_start_offset = read.log_start_offset;
        self.count_read(&out);
        Ok(out)
    }

    fn read_error(&self, offset: i64, e: StorageError) -> PartitionError {
        match e {
            StorageError::OffsetOutOfRange {
                log_start_offset, ..
            } => self.error(PartitionErrorKind::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark: self.high_watermark(),
            }),
            e => {
                let e = self.storage_error("read", e);
                tracing::error!(offset, error = %e, "fetch read failed");
                e
            }
        }
    }

    /// Resolves once the high watermark is above `offset`, after `timeout`, or when the log can go
    /// no further (closed or failed): a Fetch long poll waiting for data.
    pub async fn wait_for_data(&self, offset: i64, timeout: Duration) {
        let visible = std::pin::pin!(self.wait_for_high_watermark_above(offset));
        select(visible, Box::pin(glommio::timer::sleep(timeout))).await;
    }

    async fn wait_for_high_watermark_above(&self, offset: i64) {
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

    /// ListOffsets: latest (-1, the high watermark), earliest (-2, -4, -5: the log start), max
    /// timestamp (-3), or the first record whose timestamp is at or after `timestamp_ms`. A record
    /// found by timestamp counts only below the high watermark, as in Kafka.
    pub async fn list_offset(&self, timestamp_ms: i64) -> Result<ListedOffset, PartitionError> {
        let unknown = ListedOffset {
            timestamp: -1,
            offset: -1,
        };
        let below_high_watermark = |found: Option<(i64, i64)>| match found {
            Some((timestamp, offset)) if offset < self.high_watermark() => {
                ListedOffset { timestamp, offset }
            }
            _ => unknown,
        };
        let at = |offset| ListedOffset {
            timestamp: -1,
            offset,
        };
        match timestamp_ms {
            LATEST => Ok(at(self.high_watermark())),
            EARLIEST | EARLIEST_LOCAL | EARLIEST_PENDING_UPLOAD => {
                Ok(at(self.log.log_start_offset()))
            }
            MAX_TIMESTAMP => Ok(below_high_watermark(self.offset_of_max_timestamp().await?)),
            ts if ts < 0 => {
                Err(self.error(PartitionErrorKind::InvalidTimestamp { timestamp_ms: ts }))
            }
            ts => {
                let found = self.offset_for_timestamp(ts).await?;
                Ok(below_high_watermark(found.map(|(offset, t)| (t, offset))))
            }
        }
    }

    /// The largest timestamp and the offset of the first record that holds it (Kafka since 3.8,
    /// KAFKA-16310), as (timestamp, offset). The log knows the batch; its records say which one.
    async fn offset_of_max_timestamp(&self) -> Result<Option<(i64, i64)>, PartitionError> {
        let Some((max_ts, batch_last_offset)) = self.log.max_timestamp() else {
            return Ok(None);
        };
        let read = self
            .log
            .read(batch_last_offset, 1)
            .await
            .map_err(|e| self.storage_error("max timestamp lookup", e))?;
        let bytes = concat(&read.chunks);
        let found = record_batch::batches(&bytes)
            .next()
            .and_then(Result::ok)
            .and_then(|view| first_record_at_or_after(&view, max_ts));
        Ok(Some(
            found.map_or((max_ts, batch_last_offset), |(offset, ts)| (ts, offset)),
        ))
    }

    /// The first record whose timestamp is at or after `timestamp_ms`, as (offset, timestamp). The
    /// log finds the batch; its records say which one.
    async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, PartitionError> {
        let fail = |e| self.storage_error("timestamp lookup", e);
        let Some((base, batch_max_ts)) = self
            .log
            .offset_for_timestamp(timestamp_ms)
            .await
            .map_err(fail)?
        else {
            return Ok(None);
        };
        let read = self.log.read(base, 1).await.map_err(fail)?;
        let bytes = concat(&read.chunks);
        let found = record_batch::batches(&bytes)
            .next()
            .and_then(Result::ok)
            .and_then(|view| first_record_at_or_after(&view, timestamp_ms));
        Ok(Some(found.unwrap_or((base, batch_max_ts))))
    }

    /// DeleteRecords: moves the log start up to `offset` (-1: the high watermark), never past the
    /// high watermark, as Kafka does. Returns the new log start (the low watermark).
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, PartitionError> {
        let end = self.high_watermark();
        let target = if offset == -1 { end } else { offset };
        if target < 0 || target > end {
            return Err(self.error(PartitionErrorKind::OffsetOutOfRange {
                offset,
                log_start_offset: self.log.log_start_offset(),
                high_watermark: end,
            }));
        }
        self.log
            .delete_records_before(target)
            .await
            .map_err(|e| self.storage_error("delete records", e))
    }

    /// OffsetForLeaderEpoch (KIP-320): the end offset of `leader_epoch`, checked against the
    /// client's `current_leader_epoch`. Every partition has had one leader epoch so far, which
    /// ends at the log end offset.
    pub fn end_offset_for_epoch(
        &self,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> Result<EpochEnd, PartitionError> {
        let current = self.leader_epoch.get();
        if current_leader_epoch > current {
            return Err(self.error(PartitionErrorKind::UnknownLeaderEpoch {
                asked: current_leader_epoch,
                current,
            }));
        }
        if leader_epoch > current {
            return Ok(EpochEnd {
                leader_epoch: -1,
                end_offset: -1,
            });
        }
        Ok(EpochEnd {
            leader_epoch: current,
            end_offset: self.log.log_end_offset(),
        })
    }
}

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
