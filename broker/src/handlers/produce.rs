//! Produce: validate and append each partition's batches on its owner shard; answer for acks=0
//! (no response), 1 (appended) and all (durable: fdatasync'd, group-committed per partition).

use std::rc::Rc;

use riffle_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use riffle_protocol::messages::{ProduceRequest, ProduceResponse};
use riffle_protocol::{error_code, Message, RequestHeader};

use super::{on_owner, respond, topic_or_create, Outcome};
use crate::partition::ProduceOutcome;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, header: &RequestHeader, request: ProduceRequest) -> Outcome {
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
    let mut work = Vec::new();
    for topic_data in request.topic_data {
        let topic = topic_or_create(shard, &topic_data.name, true).await;
        for part in topic_data.partition_data {
            let name = topic_data.name.clone();
            let topic = topic.clone();
            let shard = shard.clone();
            work.push(async move {
                let outcome = match (topic, part.records) {
                    (Err(code), _) => ProduceOutcome::error(code, None),
                    (Ok(_), None) => ProduceOutcome::error(
                        error_code::CORRUPT_MESSAGE,
                        Some("null records".to_string()),
                    ),
                    (Ok(topic), Some(records)) => {
                        let records = records.to_bytes();
                        on_owner(&shard, &topic, part.index, move |p| {
                            p.produce(records, acks)
                        })
                        .await
                        .unwrap_or_else(|code| ProduceOutcome::error(code, None))
                    }
                };
                (name, part.index, outcome)
            });
        }
    }
    let results = futures::future::join_all(work).await;
    if acks == 0 {
        return Ok(None);
    }
    let mut responses: Vec<TopicProduceResponse> = Vec::new();
    for (name, index, outcome) in results {
        if outcome.error_code != error_code::NONE {
            tracing::debug!(topic = %name, partition = index, code = outcome.error_code, message = ?outcome.error_message, "produce refused");
        }
        let partition = PartitionProduceResponse {
            index,
            error_code: outcome.error_code,
            base_offset: outcome.base_offset,
            log_append_time_ms: outcome.log_append_time_ms,
            log_start_offset: outcome.log_start_offset,
            error_message: outcome.error_message,
            ..Default::default()
        };
        match responses.last_mut() {
            Some(t) if t.name == name => t.partition_responses.push(partition),
            _ => responses.push(TopicProduceResponse {
                name,
                partition_responses: vec![partition],
            }),
        }
    }
    respond(
        header,
        &ProduceResponse {
            responses,
            ..Default::default()
        },
    )
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
