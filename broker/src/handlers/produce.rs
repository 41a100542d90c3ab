//! Produce: validate and append each partition's batches on its owner shard; answer for acks=0
//! (no response), 1 (appended) and all (durable: fdatasync'd, group-committed per partition).
//! From v13 (KIP-516) topics are named by their id, and an unknown id is UNKNOWN_TOPIC_ID.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use riffle_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, PartitionProduceResponse, TopicProduceResponse,
};
use riffle_protocol::messages::{ProduceRequest, ProduceResponse};
use riffle_protocol::{error_code, Message, RequestHeader};
use riffle_storage::ReceiveBuffer;

use super::{leader_endpoints, respond, topic_or_create, Outcome};
use crate::errors;
use crate::metadata::image::TopicMeta;
use crate::partition::error::{PartitionError, PartitionErrorKind};
use crate::partition::{request, ProduceRecords, Produced};
use crate::shard::Shard;

/// A partition's records smaller than this are copied out of the request frame before they are
/// appended. Larger ones are kept as slices of the connection's receive buffer: the tail cache
/// charges that whole buffer while it holds any slice of it, so a few bytes would take a share of
/// the cache out of all proportion to what they serve.
const RETAIN_SLICE_MIN_BYTES: usize = 1024;

/// The first version that names topics by id.
const TOPIC_IDS_FROM_VERSION: i16 = 13;

/// The partition's records as the log will keep them: a slice of the frame, naming the receive
/// buffer it is in, unless they are small enough to copy.
fn retained(records: Bytes, received_in: &ReceiveBuffer) -> ProduceRecords {
    if records.len() < RETAIN_SLICE_MIN_BYTES {
        Bytes::copy_from_slice(&records).into()
    } else {
        ProduceRecords {
            bytes: records,
            buffer: Some(received_in.clone()),
        }
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: ProduceRequest,
    received_in: &ReceiveBuffer,
) -> Outcome {
    let acks = request.acks;
    if !matches!(acks, -1..=1) {
        let response = error_response(&request, error_code::INVALID_REQUIRED_ACKS);
        return respond(header, &response);
    }
    if request.transactional_id.is_some() {
        let response = error_response(&request, error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        return respond(header, &response);
    }
    // Build every partition's work first; join_all then starts them in request order, which is
    // the order their appends are queued on the owner shards.
    let by_id = header.request_api_version >= TOPIC_IDS_FROM_VERSION;
    let mut work = Vec::new();
    for topic_data in request.topic_data {
        let topic = if by_id {
            shard
                .image()
                .topic_by_id(&topic_data.topic_id)
                .cloned()
                .ok_or(error_code::UNKNOWN_TOPIC_ID)
        } else {
            topic_or_create(shard, &topic_data.name, true).await
        };
        for part in topic_data.partition_data {
            let name = (topic_data.name.clone(), topic_data.topic_id);
            let topic = topic.clone();
            work.push(async move {
                let records = part.records.map(|r| retained(r.to_bytes(), received_in));
                let answer = produce_partition(shard, topic, part.index, records, acks).await;
                (name, part.index, answer)
            });
        }
    }
    let results = futures::future::join_all(work).await;
    if acks == 0 {
        return Ok(None);
    }
    let mut responses: Vec<TopicProduceResponse> = Vec::new();
    let mut leaders = Vec::new();
    for ((name, topic_id), index, answer) in results {
        if let Err(refused) = &answer {
            leaders.extend(refused.current_leader.as_ref().map(|l| l.leader_id));
        }
        let partition = partition_response(index, answer);
        match responses.last_mut() {
            Some(t) if t.name == name && t.topic_id == topic_id => {
                t.partition_responses.push(partition)
            }
            _ => responses.push(TopicProduceResponse {
                name,
                topic_id,
                partition_responses: vec![partition],
            }),
        }
    }
    respond(
        header,
        &ProduceResponse {
            responses,
            node_endpoints: leader_endpoints(shard, leaders),
            ..Default::default()
        },
    )
}

/// A partition's answer: what it produced, or why not.
type Answer = Result<Produced, Refused>;

/// The Kafka error code and message a partition is answered with; when this broker does not
/// lead it, the leader the client should turn to (KIP-951); the records that caused a refusal
/// (KIP-467).
struct Refused {
    code: i16,
    message: Option<String>,
    current_leader: Option<LeaderIdAndEpoch>,
    record_errors: Vec<BatchIndexAndErrorMessage>,
}

impl Refused {
    fn code(code: i16, message: Option<String>) -> Refused {
        Refused {
            code,
            message,
            current_leader: None,
            record_errors: Vec::new(),
        }
    }

    fn from_error(e: &PartitionError) -> Refused {
        let current_leader = e
            .current_leader()
            .map(|(leader_id, leader_epoch)| LeaderIdAndEpoch {
                leader_id,
                leader_epoch,
            });
        let mut refused = Refused {
            current_leader,
            ..Refused::code(errors::partition_error_code(e), Some(e.to_string()))
        };
        // KIP-467: the records at fault, each with Kafka's message (clients name them).
        if let PartitionErrorKind::KeylessRecordsOnCompactedTopic { record_indexes, .. } = &e.kind {
            let reason = e.kind.to_string();
            refused.message = Some(format!(
                "{} record(s) rejected: {reason}",
                record_indexes.len()
            ));
            refused.record_errors = record_indexes
                .iter()
                .map(|&batch_index| BatchIndexAndErrorMessage {
                    batch_index,
                    batch_index_error_message: Some(reason.clone()),
                })
                .collect();
        }
        refused
    }
}

async fn produce_partition(
    shard: &Rc<Shard>,
    topic: Result<Arc<TopicMeta>, i16>,
    index: i32,
    records: Option<ProduceRecords>,
    acks: i16,
) -> Answer {
    let topic = topic.map_err(|code| Refused::code(code, None))?;
    let records = records.ok_or_else(|| {
        Refused::code(
            error_code::CORRUPT_MESSAGE,
            Some("null records".to_string()),
        )
    })?;
    request::produce(shard, &topic, index, records, acks)
        .await
        .map_err(|e| {
            tracing::debug!(error = %e, "produce refused");
            Refused::from_error(&e)
        })
}

fn partition_response(index: i32, answer: Answer) -> PartitionProduceResponse {
    match answer {
        Ok(p) => PartitionProduceResponse {
            index,
            error_code: error_code::NONE,
            base_offset: p.base_offset,
            log_append_time_ms: p.log_append_time_ms,
            log_start_offset: p.log_start_offset,
            ..Default::default()
        },
        Err(refused) => PartitionProduceResponse {
            index,
            error_code: refused.code,
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
            error_message: refused.message,
            current_leader: refused.current_leader.unwrap_or_default(),
            record_errors: refused.record_errors,
        },
    }
}

/// Reads a Produce v0–2 body (never served, only answered): skips the v1 header of the frame.
pub fn decode_old_request(header: &RequestHeader, frame: bytes::Bytes) -> Option<ProduceRequest> {
    let client_id_len = header.client_id.as_ref().map_or(0, String::len);
    let mut body = frame.slice((8 + 2 + client_id_len).min(frame.len())..);
    ProduceRequest::decode(&mut body, header.request_api_version).ok()
}

pub fn error_response(request: &ProduceRequest, code: i16) -> ProduceResponse {
    ProduceResponse {
        responses: request
            .topic_data
            .iter()
            .map(|t| TopicProduceResponse {
                name: t.name.clone(),
                topic_id: t.topic_id,
                partition_responses: t
                    .partition_data
                    .iter()
                    .map(|p| PartitionProduceResponse {
                        index: p.index,
                        error_code: code,
                        base_offset: -1,
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `kept` still points into `frame` (a slice of it) rather than a copy.
    fn is_slice_of(kept: &Bytes, frame: &Bytes) -> bool {
        let range = frame.as_ptr_range();
        range.contains(&kept.as_ptr())
    }

    #[test]
    fn records_are_kept_as_slices_naming_their_receive_buffer_unless_they_are_small() {
        let frame = Bytes::from(vec![7u8; 64 << 10]);
        let received_in = ReceiveBuffer::new(frame.len());
        let cases = [
            // A one-message request: small records go to their own allocation.
            (0..200, false),
            (0..RETAIN_SLICE_MIN_BYTES - 1, false),
            // Larger ones stay in the frame, however much of it they are: the tail cache
            // charges the whole buffer they name.
            (0..RETAIN_SLICE_MIN_BYTES, true),
            (100..100 + 16 * 1024, true),
            (16..64 << 10, true),
        ];
        for (range, sliced) in cases {
            let records = frame.slice(range.clone());
            let kept = retained(records.clone(), &received_in);
            assert_eq!(kept.bytes, records, "same bytes for {range:?}");
            assert_eq!(is_slice_of(&kept.bytes, &frame), sliced, "{range:?}");
            assert_eq!(kept.buffer.is_some(), sliced, "{range:?}");
            if let Some(buffer) = kept.buffer {
                assert_eq!(buffer.capacity(), frame.len());
            }
        }
    }
}
