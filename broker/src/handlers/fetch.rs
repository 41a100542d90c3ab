//! Fetch: batch-aligned reads below the high watermark (the durable end of the log) from each
//! partition's owner shard, sent as the stored buffers (no copy of record data), with long polling
//! woken by the high watermark moving (never by polling timers): when fewer than `min_bytes` are
//! visible the request waits for more on any of its partitions, or for `max_wait_ms`.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::{select, select_all, Either};
use riffle_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use riffle_protocol::messages::fetch_response::{
    FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use riffle_protocol::messages::{FetchRequest, FetchResponse};
use riffle_protocol::{error_code, Records, RequestHeader, Uuid};

use super::leader_endpoints;
use crate::connection::HeldBudget;
use crate::errors;
use crate::metadata::image::TopicMeta;
use crate::partition::request;
use crate::shard::Shard;

/// Topic-id based fetches start at this version.
const TOPIC_IDS_FROM_VERSION: i16 = 13;
/// A Fetch holds at most this fraction (1/N) of the shard's in-flight budget for its records, so
/// that several fetches and the requests being read share it.
const FETCH_BUDGET_SHARE_DIVISOR: usize = 4;
/// throttle_time_ms of a Fetch answered empty because the shard's budget stayed spent until its
/// deadline: the client waits this long before fetching again (KIP-219), as after Kafka's quota
/// throttling.
const FETCH_BUDGET_THROTTLE_MS: i32 = 100;
/// A Fetch reads its partitions in at most this many waves (`read_in_waves`); what is left of
/// max_bytes after them is left for the next Fetch.
const FETCH_READ_WAVES: usize = 4;

/// One partition's part of the response.
#[derive(Debug, Default)]
struct PartitionRead {
    error_code: i16,
    high_watermark: i64,
    log_start_offset: i64,
    chunks: Vec<Bytes>,
    bytes: usize,
    /// Set when this broker does not lead the partition: its leader (KIP-951).
    current_leader: Option<LeaderIdAndEpoch>,
}

impl PartitionRead {
    fn error(code: i16) -> Self {
        PartitionRead {
            error_code: code,
            high_watermark: -1,
            log_start_offset: -1,
            ..Default::default()
        }
    }
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
        Err(code) => return PartitionRead::error(*code),
    };
    match request::read(shard, topic, p.partition, p.fetch_offset, max_bytes).await {
        Ok(read) => PartitionRead {
            error_code: error_code::NONE,
            high_watermark: read.high_watermark,
            log_start_offset: read.log_start_offset,
            chunks: read.chunks,
            bytes: read.bytes,
            current_leader: None,
        },
        Err(e) => PartitionRead {
            current_leader: e
                .current_leader()
                .map(|(leader_id, leader_epoch)| LeaderIdAndEpoch {
                    leader_id,
                    leader_epoch,
                }),
            ..PartitionRead::error(errors::partition_error_code(&e))
        },
    }
}

fn resolve_topics(shard: &Rc<Shard>, version: i16, request: Vec<FetchTopic>) -> Vec<TopicTarget> {
    let by_id = version >= TOPIC_IDS_FROM_VERSION;
    let image = shard.image();
    request
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
        .collect()
}

/// The response, and the shard budget its records hold until it is written: a fetch reads only
/// once it holds budget for what it may read (its `max_bytes`, capped by `fetch_max_bytes` and a
/// share of `shard_inflight_budget_bytes`), so many large fetches wait for each other instead of
/// exhausting memory; one still waiting at its deadline is answered empty and throttled.
pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: FetchRequest,
) -> (FetchResponse, Option<HeldBudget>) {
    let targets = resolve_topics(shard, header.request_api_version, request.topics);
    let earlier = earlier_entries(&targets);
    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64)
        .min(Duration::from_millis(shard.config().fetch_max_wait_ms));
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let cap_bytes = shard.config().fetch_max_bytes;
    let budget_share = shard.config().shard_inflight_budget_bytes / FETCH_BUDGET_SHARE_DIVISOR;
    let max_bytes = match usize::try_from(request.max_bytes) {
        Ok(asked) if asked > 0 => asked.min(cap_bytes),
        _ => cap_bytes,
    }
    .min(budget_share);
    // What the reads may return at most: each partition read is capped (a repeat is not read).
    let read_max_bytes: usize = targets
        .iter()
        .flat_map(|t| t.partitions.iter())
        .zip(&earlier)
        .filter(|(_, first)| first.is_none())
        .map(|(p, _)| partition_limit(p, max_bytes))
        .fold(0usize, usize::saturating_add)
        .min(max_bytes);
    loop {
        let budget = &shard.inflight_budget;
        let waited = select(
            Box::pin(HeldBudget::acquire(budget, read_max_bytes as u64, deadline)),
            shard.shutdown.clone(),
        )
        .await;
        let Either::Left((Some(mut held), _)) = waited else {
            return (throttled(), None);
        };
        let mut reads = read_in_waves(shard, &targets, &earlier, max_bytes).await;
        answer_repeats_as_first(&earlier, &mut reads);
        let total: usize = reads.iter().map(|r| r.bytes).sum();
        let any_error = reads.iter().any(|r| r.error_code != error_code::NONE);
        let now = Instant::now();
        if total >= min_bytes || any_error || now >= deadline || shard.shared.is_shutting_down() {
            let leaders = reads
                .iter()
                .filter_map(|r| r.current_leader.as_ref().map(|l| l.leader_id))
                .collect();
            let (mut response, kept_bytes) = build_response(&targets, reads, max_bytes);
            response.node_endpoints = leader_endpoints(shard, leaders);
            // The first batch is sent whole even past max_bytes; the budget counts up to it.
            held.keep(kept_bytes.min(read_max_bytes) as u64);
            return (response, Some(held));
        }
        drop(held);
        wait_for_data(shard, &targets, &reads, deadline - now).await;
    }
}

/// What one entry may read: its `partition_max_bytes`, within the response's `max_bytes`.
fn partition_limit(p: &FetchPartition, max_bytes: usize) -> usize {
    (p.partition_max_bytes.max(0) as usize).min(max_bytes)
}

/// Reads the request's partitions as Kafka does, in request order with what is left of
/// `max_bytes`, but concurrently: each wave reads, at once, the partitions whose share still fits
/// (each up to its `partition_max_bytes`), and asks the others only for their positions. A
/// partition whose position shows data it was not given is read in the next wave, with what the
/// wave left. Reading every partition in full and leaving out those past `max_bytes` instead made
/// a wide consumer read the disk six times for each byte it received. Repeats are read once (they
/// are answered as their first entry).
async fn read_in_waves(
    shard: &Rc<Shard>,
    targets: &[TopicTarget],
    earlier: &[Option<usize>],
    max_bytes: usize,
) -> Vec<PartitionRead> {
    let entries: Vec<(&TopicTarget, &FetchPartition)> = targets
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
        .collect();
    let mut reads: Vec<PartitionRead> = entries.iter().map(|_| PartitionRead::default()).collect();
    // Entries whose data is still to be read: every first entry, to begin with.
    let mut to_read: Vec<usize> = (0..entries.len())
        .filter(|&i| earlier[i].is_none())
        .collect();
    let mut left = max_bytes;
    for _ in 0..FETCH_READ_WAVES {
        // In request order, each entry up to its own limit while `left` lasts. An entry with a
        // share gets at least one whole batch, so the first batch goes out even above max_bytes
        // (KIP-74); one that overshoots a later share is left out by `build_response`.
        let mut share = left;
        let caps: Vec<usize> = to_read
            .iter()
            .map(|&i| {
                // A client's 0 still gets one batch, as before (0 here means positions only).
                let own = partition_limit(entries[i].1, max_bytes).max(1);
                let cap = own.min(share);
                share -= cap;
                cap
            })
            .collect();
        let wave_reads = futures::future::join_all(to_read.iter().zip(&caps).map(|(&i, &cap)| {
            let (t, p) = entries[i];
            read_partition(shard, t, p, cap)
        }))
        .await;
        let mut next = Vec::new();
        for ((&i, &cap), read) in to_read.iter().zip(&caps).zip(wave_reads) {
            left = left.saturating_sub(read.bytes);
            let data_left_out = cap == 0
                && read.error_code == error_code::NONE
                && read.high_watermark > entries[i].1.fetch_offset;
            if data_left_out {
                next.push(i);
            }
            reads[i] = read;
        }
        if next.is_empty() || left == 0 {
            break;
        }
        to_read = next;
    }
    reads
}

/// For each entry of the request, in order: the index of an earlier entry that names the same
/// partition, if one does. Such a repeat is read once: it gets the first entry's offsets and no
/// records (Kafka's fetch sessions keep one entry per partition too).
fn earlier_entries(targets: &[TopicTarget]) -> Vec<Option<usize>> {
    let mut first: HashMap<(Uuid, &str, i32), usize> = HashMap::new();
    targets
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.id, t.name.as_str(), p.partition))
        })
        .enumerate()
        .map(|(i, key)| Some(*first.entry(key).or_insert(i)).filter(|&f| f != i))
        .collect()
}

/// Gives each repeated entry the first entry's offsets.
fn answer_repeats_as_first(earlier: &[Option<usize>], reads: &mut [PartitionRead]) {
    for (i, first) in earlier.iter().enumerate() {
        if let Some(f) = *first {
            reads[i].error_code = reads[f].error_code;
            reads[i].high_watermark = reads[f].high_watermark;
            reads[i].log_start_offset = reads[f].log_start_offset;
            reads[i].current_leader = reads[f].current_leader.clone();
        }
    }
}

/// Waits until any partition's high watermark passes what its read saw, for at most `remaining`,
/// or until shutdown; the caller then reads again.
async fn wait_for_data(
    shard: &Rc<Shard>,
    targets: &[TopicTarget],
    reads: &[PartitionRead],
    remaining: Duration,
) {
    let waits: Vec<_> = targets
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
        .zip(reads)
        .filter_map(|((t, p), r)| {
            let topic = t.topic.as_ref().ok()?;
            let seen = r.high_watermark.max(p.fetch_offset);
            // Bounded on the owner too: it returns by the deadline, so nothing lingers there
            // once the request is answered.
            Some(Box::pin(request::wait_for_data(
                shard,
                topic,
                p.partition,
                seen,
                remaining,
            )))
        })
        .collect();
    let limit = select(
        Box::pin(glommio::timer::sleep(remaining)),
        shard.shutdown.clone(),
    );
    if waits.is_empty() {
        limit.await;
        return;
    }
    select(select_all(waits), limit).await;
}

/// An empty answer to a fetch that got no budget in time (Kafka answers a throttled fetch alike).
fn throttled() -> FetchResponse {
    FetchResponse {
        throttle_time_ms: FETCH_BUDGET_THROTTLE_MS,
        error_code: error_code::NONE,
        session_id: 0,
        ..Default::default()
    }
}

/// The response and the record bytes it carries.
fn build_response(
    targets: &[TopicTarget],
    reads: Vec<PartitionRead>,
    max_bytes: usize,
) -> (FetchResponse, usize) {
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
                        current_leader: r.current_leader.unwrap_or_default(),
                        ..Default::default()
                    }
                })
                .collect(),
        })
        .collect();
    let response = FetchResponse {
        error_code: error_code::NONE,
        session_id: 0,
        responses,
        ..Default::default()
    };
    (response, total)
}
