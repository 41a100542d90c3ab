//! Fetch: batch-aligned reads below the high watermark (the durable end of the log) from each
//! partition's owner shard, sent as the stored buffers (no copy of record data), with long polling
//! woken by the high watermark moving (never by polling timers): when fewer than `min_bytes` are
//! visible the request waits for more on any of its partitions, or for `max_wait_ms`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::{select, select_all, Either};
use riffle_protocol::messages::fetch_request::FetchPartition;
use riffle_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use riffle_protocol::messages::{FetchRequest, FetchResponse};
use riffle_protocol::{error_code, Records, RequestHeader, Uuid};
use riffle_storage::StorageError;

use super::on_owner;
use crate::errors;
use crate::metadata::image::TopicMeta;
use crate::partition::visible;
use crate::shard::Shard;

/// Topic-id based fetches start at this version.
const TOPIC_IDS_FROM_VERSION: i16 = 13;

/// One partition's read, as the owner shard returns it.
#[derive(Debug, Default)]
struct PartitionRead {
    error_code: i16,
    high_watermark: i64,
    log_start_offset: i64,
    chunks: Vec<Bytes>,
    bytes: usize,
}

struct TopicTarget {
    /// Ok: the topic; Err: the error every partition of it gets.
    topic: Result<Arc<TopicMeta>, i16>,
    name: String,
    id: Uuid,
    partitions: Vec<FetchPartition>,
}

async fn read_partition(
    shard: &Rc<Shard>,
    target: &TopicTarget,
    p: &FetchPartition,
    max_bytes: usize,
) -> PartitionRead {
    let topic = match &target.topic {
        Ok(t) => t,
        Err(code) => {
            return PartitionRead {
                error_code: *code,
                high_watermark: -1,
                log_start_offset: -1,
                ..Default::default()
            }
        }
    };
    let offset = p.fetch_offset;
    let result = on_owner(shard, topic, p.partition, move |part| async move {
        let mut out = PartitionRead {
            error_code: error_code::NONE,
            high_watermark: part.high_watermark(),
            log_start_offset: part.log.log_start_offset(),
            ..Default::default()
        };
        // Between the high watermark and the log end nothing is visible yet; past the log end
        // the read below answers OFFSET_OUT_OF_RANGE.
        if offset >= out.high_watermark && offset <= part.log.log_end_offset() {
            return out;
        }
        match part.log.read(offset, max_bytes).await {
            Ok(read) => {
                let high_watermark = part.high_watermark();
                if read.log_end_offset <= high_watermark {
                    // All of it is durable: nothing to cut.
                    out.chunks = read.chunks;
                    out.bytes = read.bytes;
                } else {
                    let (chunks, bytes) = visible::cut_at_offset(read.chunks, high_watermark);
                    out.chunks = chunks;
                    out.bytes = bytes;
                }
                out.high_watermark = high_watermark;
                out.log_start_offset = read.log_start_offset;
            }
            Err(e) => {
                if !matches!(e, StorageError::OffsetOutOfRange { .. }) {
                    tracing::error!(topic = %part.topic, partition = part.index, offset, error = %e, "fetch read failed");
                }
                out.error_code = errors::storage_error_code(&e);
            }
        }
        out
    })
    .await;
    result.unwrap_or_else(|code| PartitionRead {
        error_code: code,
        high_watermark: -1,
        log_start_offset: -1,
        ..Default::default()
    })
}

pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: FetchRequest,
) -> FetchResponse {
    let by_id = header.request_api_version >= TOPIC_IDS_FROM_VERSION;
    let image = shard.image();
    let targets: Vec<TopicTarget> = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = if by_id {
                image
                    .topic_by_id(&t.topic_id)
                    .cloned()
                    .ok_or(error_code::UNKNOWN_TOPIC_ID)
            } else {
                image
                    .topic(&t.topic)
                    .cloned()
                    .ok_or(error_code::UNKNOWN_TOPIC_OR_PARTITION)
            };
            TopicTarget {
                topic,
                name: t.topic,
                id: t.topic_id,
                partitions: t.partitions,
            }
        })
        .collect();
    drop(image);

    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64)
        .min(Duration::from_millis(shard.config().fetch_max_wait_ms));
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if request.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        request.max_bytes as usize
    };

    loop {
        let reads = futures::future::join_all(targets.iter().flat_map(|t| {
            t.partitions.iter().map(move |p| {
                read_partition(
                    shard,
                    t,
                    p,
                    (p.partition_max_bytes.max(0) as usize).min(max_bytes),
                )
            })
        }))
        .await;
        let total: usize = reads.iter().map(|r| r.bytes).sum();
        let any_error = reads.iter().any(|r| r.error_code != error_code::NONE);
        let now = Instant::now();
        if total >= min_bytes || any_error || now >= deadline || shard.shared.is_shutting_down() {
            return build_response(&targets, reads, max_bytes);
        }
        // Wait for an append past what each partition had, or the deadline.
        let waits: Vec<_> = targets
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
            .zip(&reads)
            .filter_map(|((t, p), r)| {
                let topic = t.topic.as_ref().ok()?.clone();
                let seen = r.high_watermark.max(p.fetch_offset);
                let index = p.partition;
                let shard = shard.clone();
                let remaining = deadline - now;
                Some(Box::pin(async move {
                    // Bounded on the owner too: it returns by the deadline, so nothing lingers
                    // there once the request is answered.
                    let _ = on_owner(&shard, &topic, index, move |part| async move {
                        let visible = std::pin::pin!(part.wait_for_high_watermark_above(seen));
                        select(visible, Box::pin(glommio::timer::sleep(remaining))).await;
                    })
                    .await;
                }))
            })
            .collect();
        if waits.is_empty() {
            glommio::timer::sleep(deadline - now).await;
            continue;
        }
        let timer = Box::pin(glommio::timer::sleep(deadline - now));
        let limit = select(timer, shard.shutdown.clone());
        if let Either::Right(_) = select(select_all(waits), limit).await {
            // deadline: one last read below answers with what there is
            continue;
        }
    }
}

fn build_response(
    targets: &[TopicTarget],
    reads: Vec<PartitionRead>,
    max_bytes: usize,
) -> FetchResponse {
    let mut reads = reads.into_iter();
    let mut total = 0usize;
    let responses = targets
        .iter()
        .map(|t| FetchableTopicResponse {
            topic: t.name.clone(),
            topic_id: t.id,
            partitions: t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = reads.next().unwrap_or_default();
                    // The response's max_bytes: later partitions are left out once it is spent;
                    // the first data is always sent, even when larger, so consumers progress.
                    if total > 0 && total + r.bytes > max_bytes {
                        r.chunks.clear();
                        r.bytes = 0;
                    }
                    total += r.bytes;
                    PartitionData {
                        partition_index: p.partition,
                        error_code: r.error_code,
                        high_watermark: r.high_watermark,
                        last_stable_offset: r.high_watermark,
                        log_start_offset: r.log_start_offset,
                        aborted_transactions: None,
                        records: Some(Records::from_chunks(r.chunks)),
                        ..Default::default()
                    }
                })
                .collect(),
        })
        .collect();
    FetchResponse {
        error_code: error_code::NONE,
        session_id: 0,
        responses,
        ..Default::default()
    }
}
