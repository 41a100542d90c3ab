//! DeleteRecords: move a partition's log start offset forward (-1: up to the high watermark).

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use riffle_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::on_partition;
use crate::errors;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let image = shard.image();
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let topic = image.topic(&t.name).cloned();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let offset = p.offset;
            let result = on_partition(
                shard,
                topic.as_deref(),
                p.partition_index,
                move |part| async move {
                    // As Kafka: up to the high watermark (-1 means it).
                    let end = part.high_watermark();
                    let target = if offset == -1 { end } else { offset };
                    if target < 0 || target > end {
                        return Err(error_code::OFFSET_OUT_OF_RANGE);
                    }
                    part.log
                        .delete_records_before(target)
                        .await
                        .map_err(|e| errors::storage_error_code(&e))
                },
            )
            .await;
            partitions.push(match result {
                Ok(low_watermark) => DeleteRecordsPartitionResult {
                    partition_index: p.partition_index,
                    low_watermark,
                    error_code: error_code::NONE,
                },
                Err(code) => DeleteRecordsPartitionResult {
                    partition_index: p.partition_index,
                    low_watermark: -1,
                    error_code: code,
                },
            });
        }
        topics.push(DeleteRecordsTopicResult {
            name: t.name,
            partitions,
        });
    }
    DeleteRecordsResponse {
        topics,
        ..Default::default()
    }
}
