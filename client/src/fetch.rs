//! Fetch: reads records from partition leaders and decodes their batches (compressed ones
//! included) into records with offsets and timestamps.

use std::collections::BTreeMap;

use riffle_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use riffle_protocol::messages::fetch_response::FetchResponse;
use riffle_protocol::record_batch::{batches, parse_records, Compression, Record, TimestampType};

use crate::client::{Client, PartitionInfo};
use crate::error::ClientError;

/// Bytes one Fetch response may carry (Kafka's `fetch.max.bytes`).
const FETCH_MAX_BYTES: i32 = 16 << 20;
/// Bytes one partition may contribute (Kafka's `max.partition.fetch.bytes`).
const PARTITION_MAX_BYTES: i32 = 1 << 20;
/// Size a compressed batch may reach once decompressed (zip-bomb bound).
pub const DECOMPRESSED_MAX_BYTES: usize = 64 << 20;

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumedRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// What one Fetch returned for one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedPartition {
    pub partition: i32,
    pub high_watermark: i64,
    /// The offset to fetch next.
    pub next_offset: i64,
    /// Records at or after the fetch offset, in offset order.
    pub records: Vec<ConsumedRecord>,
}

/// What `for_each_record` read.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordsRead {
    /// The offset to fetch next: past the last whole batch (control batches included).
    pub next_offset: i64,
    /// The first batch that did not decode (its records are skipped, reading goes on).
    pub error: Option<String>,
}

/// Calls `on_record(offset, timestamp_ms, record)` for every record at or after
/// `from_offset` in `data`, the batches of a Fetch response. Control batches (transaction
/// markers) are skipped; a partial batch at the end is normal.
pub fn for_each_record(
    data: &[u8],
    from_offset: i64,
    mut on_record: impl FnMut(i64, i64, Record<'_>),
) -> RecordsRead {
    let mut read = RecordsRead {
        next_offset: from_offset,
        error: None,
    };
    for batch in batches(data) {
        let Ok(batch) = batch else { break }; // a partial batch ends a fetch response
        if batch.last_offset() < from_offset {
            continue;
        }
        read.next_offset = batch.last_offset() + 1;
        if batch.attributes().is_control() {
            continue;
        }
        let base = batch.base_offset();
        let log_append_time = batch.attributes().timestamp_type() == TimestampType::LogAppendTime;
        let mut each = |r: Record<'_>| {
            let offset = base + i64::from(r.offset_delta);
            if offset >= from_offset {
                let timestamp_ms = if log_append_time {
                    batch.max_timestamp()
                } else {
                    batch.base_timestamp() + r.timestamp_delta
                };
                on_record(offset, timestamp_ms, r);
            }
        };
        let parsed = if batch.attributes().compression() == Compression::None {
            batch
                .records()
                .map(|it| it.filter_map(Result::ok).for_each(&mut each))
        } else {
            batch.decompress(DECOMPRESSED_MAX_BYTES).map(|raw| {
                parse_records(&raw, batch.record_count())
                    .filter_map(Result::ok)
                    .for_each(&mut each)
            })
        };
        if let Err(e) = parsed {
            read.error
                .get_or_insert_with(|| format!("bad batch at offset {base}: {e}"));
        }
    }
    read
}

impl Client {
    /// One Fetch per leader for `positions` (partition, next offset to read), waiting up to
    /// `max_wait_ms` for data. Partitions are answered in partition order.
    pub fn fetch(
        &mut self,
        topic: &str,
        positions: &[(PartitionInfo, i64)],
        max_wait_ms: i32,
    ) -> Result<Vec<FetchedPartition>, ClientError> {
        let mut by_leader: BTreeMap<_, Vec<(i32, i64)>> = BTreeMap::new();
        for (p, offset) in positions {
            by_leader
                .entry(p.leader)
                .or_default()
                .push((p.partition, *offset));
        }
        let mut out = Vec::with_capacity(positions.len());
        for (leader, wanted) in by_leader {
            let request = fetch_request(
                topic,
                &wanted,
                max_wait_ms,
                FETCH_MAX_BYTES,
                PARTITION_MAX_BYTES,
            );
            let resp: FetchResponse = self.broker(leader)?.call(&request)?;
            ClientError::check(resp.error_code, || format!("topic '{topic}'"), None)?;
            for p in resp.responses.iter().flat_map(|t| t.partitions.iter()) {
                let context = || format!("partition {topic}-{}", p.partition_index);
                ClientError::check(p.error_code, context, None)?;
                let from = wanted
                    .iter()
                    .find(|w| w.0 == p.partition_index)
                    .map_or(0, |w| w.1);
                let mut records = Vec::new();
                let data = p.records.as_ref().map(|r| r.to_bytes()).unwrap_or_default();
                let read = for_each_record(&data, from, |offset, timestamp_ms, r| {
                    records.push(consumed(p.partition_index, offset, timestamp_ms, &r));
                });
                if let Some(reason) = read.error {
                    return Err(ClientError::Other(format!("{}: {reason}", context())));
                }
                out.push(FetchedPartition {
                    partition: p.partition_index,
                    high_watermark: p.high_watermark,
                    next_offset: read.next_offset,
                    records,
                });
            }
        }
        out.sort_by_key(|p| p.partition);
        Ok(out)
    }
}

/// A Fetch of `positions` (partition, offset) of `topic` outside any fetch session, as a
/// consumer (not a replica) sends it: up to `max_bytes`, `partition_max_bytes` each.
pub fn fetch_request(
    topic: &str,
    positions: &[(i32, i64)],
    max_wait_ms: i32,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> FetchRequest {
    FetchRequest {
        replica_id: -1,
        max_wait_ms,
        min_bytes: 1,
        max_bytes,
        isolation_level: 0,
        // No fetch session: every request names all its partitions.
        session_id: 0,
        session_epoch: -1,
        topics: vec![FetchTopic {
            topic: topic.into(),
            partitions: positions
                .iter()
                .map(|&(partition, fetch_offset)| FetchPartition {
                    partition,
                    current_leader_epoch: -1,
                    fetch_offset,
                    last_fetched_epoch: -1,
                    log_start_offset: -1,
                    partition_max_bytes,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn consumed(partition: i32, offset: i64, timestamp_ms: i64, r: &Record<'_>) -> ConsumedRecord {
    ConsumedRecord {
        partition,
        offset,
        timestamp_ms,
        key: r.key.map(<[u8]>::to_vec),
        value: r.value.map(<[u8]>::to_vec),
        headers: r
            .headers
            .iter()
            .map(|h| {
                (
                    String::from_utf8_lossy(h.key).into_owned(),
                    h.value.map(<[u8]>::to_vec),
                )
            })
            .collect(),
    }
}
