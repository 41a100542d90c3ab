//! CreatePartitions: grow a topic; the new partitions are placed on the least loaded shards. A
//! manual assignment of the added partitions is checked as Kafka checks it.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use riffle_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use riffle_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use crate::errors;
use crate::metadata::calls;
use crate::replica_assignment::{self, Refusal};
use crate::shard::Shard;

/// Kafka's checks of a manual assignment for the added partitions (one replica list each).
fn check_assignments(shard: &Shard, topic: &CreatePartitionsTopic) -> Result<(), Refusal> {
    let (Some(assignments), Some(meta)) = (
        &topic.assignments,
        shard.image().topic(&topic.name).cloned(),
    ) else {
        return Ok(()); // an unknown topic is the controller's answer
    };
    let lists: Vec<Vec<i32>> = assignments.iter().map(|a| a.broker_ids.clone()).collect();
    let current_replicas = meta.partitions.first().map_or(1, |p| p.replicas.len());
    replica_assignment::check_added_partitions(
        meta.partitions.len() as i32,
        current_replicas,
        topic.count,
        &lists,
        &[shard.config().node_id],
    )
}

pub async fn handle(
    shard: &Rc<Shard>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let validate_only = request.validate_only;
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.name.clone();
        let count = t.count;
        let outcome = if let Err(refusal) = check_assignments(shard, &t) {
            Err(refusal)
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
