//! DeleteTopics: the controller removes the topic from the image and has every shard apply the
//! change (closing the topic's partitions, deleting their files, forgetting the offsets committed
//! for it) before the answer goes out. Start-up finishes a deletion a crash interrupted.

use std::rc::Rc;

use riffle_protocol::messages::delete_topics_response::DeletableTopicResult;
use riffle_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use riffle_protocol::{error_code, RequestHeader, Uuid};

use crate::errors;
use crate::metadata::{calls, ControllerError};
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _header: &RequestHeader,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v0–5 name topics; v6 names or ids
    let mut wanted: Vec<(Option<String>, Uuid)> = request
        .topic_names
        .into_iter()
        .map(|n| (Some(n), Uuid::default()))
        .collect();
    wanted.extend(request.topics.into_iter().map(|t| (t.name, t.topic_id)));
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let resolved = match &name {
            Some(n) => Ok(n.clone()),
            None => shard
                .image()
                .topic_by_id(&id)
                .map(|t| t.name.clone())
                .ok_or(ControllerError::UnknownTopicId { id }),
        };
        let outcome = match resolved {
            Err(e) => Err(e),
            Ok(n) => calls::delete_topic(shard, n).await,
        };
        responses.push(match outcome {
            Ok(topic) => {
                tracing::info!(topic = %topic.name, "deleted topic");
                DeletableTopicResult {
                    name: Some(topic.name.clone()),
                    topic_id: topic.uuid(),
                    error_code: error_code::NONE,
                    error_message: None,
                }
            }
            Err(e) => {
                let (code, message) = errors::controller_answer(e);
                DeletableTopicResult {
                    name,
                    topic_id: id,
                    error_code: code,
                    error_message: Some(message),
                }
            }
        });
    }
    DeleteTopicsResponse {
        responses,
        ..Default::default()
    }
}
