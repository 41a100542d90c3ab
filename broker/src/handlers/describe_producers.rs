//! DescribeProducers: the producers with state in each partition asked for, from the partition's
//! producer state on its owner shard (`Partition::describe`). Riffle has no transactions yet, so
//! no producer has a coordinator epoch or an open transaction (-1 for both, as Kafka reports an
//! idempotent producer).

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use riffle_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse};

use super::answer_each_partition;
use crate::errors;
use crate::partition::request;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| (t.name, t.partition_indexes))
        .collect();
    let answered = answer_each_partition(shard, topics, |topic, index| async move {
        let described = match &topic {
            None => Err((
                error_code::UNKNOWN_TOPIC_OR_PARTITION,
                "This server does not host this topic-partition.".to_string(),
            )),
            Some(topic) => request::describe(shard, topic, index)
                .await
                .map_err(|e| (errors::partition_error_code(&e), e.to_string())),
        };
        match described {
            Ok(d) => PartitionResponse {
                partition_index: index,
                error_code: error_code::NONE,
                error_message: None,
                active_producers: d
                    .producers
                    .into_iter()
                    .map(|p| ProducerState {
                        producer_id: p.producer_id,
                        producer_epoch: i32::from(p.epoch),
                        last_sequence: p.last_sequence,
                        last_timestamp: p.last_timestamp_ms,
                        coordinator_epoch: -1,
                        current_txn_start_offset: -1,
                    })
                    .collect(),
            },
            Err((code, message)) => PartitionResponse {
                partition_index: index,
                error_code: code,
                error_message: Some(message),
                active_producers: Vec::new(),
            },
        }
    })
    .await;
    DescribeProducersResponse {
        topics: answered
            .into_iter()
            .map(|(name, partitions)| TopicResponse { name, partitions })
            .collect(),
        ..Default::default()
    }
}
