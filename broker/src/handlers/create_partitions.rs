//! CreatePartitions: grow a topic; the new partitions are placed on the least loaded shards.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use riffle_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use crate::errors;
use crate::metadata::calls;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let validate_only = request.validate_only;
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.clone();
        let count = t.count;
        let outcome = if t.assignments.is_some() {
            Err((
                error_code::INVALID_REQUEST,
                "manual replica assignment is not supported yet".to_string(),
            ))
        } else {
            calls::create_partitions(shard, name, count, validate_only)
                .await
                .map_err(errors::controller_answer)
        };
        results.push(match outcome {
            Ok(()) => CreatePartitionsTopicResult {
                name: t.name,
                error_code: error_code::NONE,
                error_message: None,
            },
            Err((code, message)) => CreatePartitionsTopicResult {
                name: t.name,
                error_code: code,
                error_message: Some(message),
            },
        });
    }
    CreatePartitionsResponse {
        results,
        ..Default::default()
    }
}
