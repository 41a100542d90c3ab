//! DeleteRecords: each partition's log start moves on its owner shard
//! (`Partition::delete_records_before`).

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use riffle_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::answer_each_partition;
use crate::errors;
use crate::partition::request;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| (t.name, t.partitions))
        .collect();
    let answered = answer_each_partition(shard, topics, |topic, p| async move {
        let index = p.partition_index;
        let result = match &topic {
            None => Err(error_code::UNKNOWN_TOPIC_OR_PARTITION),
            Some(topic) => request::delete_records_before(shard, topic, index, p.offset)
                .await
                .map_err(|e| errors::partition_error_code(&e)),
        };
        DeleteRecordsPartitionResult {
            partition_index: index,
            low_watermark: *result.as_ref().unwrap_or(&-1),
            error_code: result.err().unwrap_or(error_code::NONE),
        }
    })
    .await;
    DeleteRecordsResponse {
        topics: answered
            .into_iter()
            .map(|(name, partitions)| DeleteRecordsTopicResult { name, partitions })
            .collect(),
        ..Default::default()
    }
}
