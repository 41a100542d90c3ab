//! ListOffsets: each partition's answer comes from `Partition::list_offset` on its owner shard.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use riffle_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::answer_each_partition;
use crate::errors;
use crate::partition::request;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| (t.name, t.partitions))
        .collect();
    let answered = answer_each_partition(shard, topics, |topic, p| async move {
        let index = p.partition_index;
        let answer = match &topic {
            None => Err(error_code::UNKNOWN_TOPIC_OR_PARTITION),
            Some(topic) => request::list_offset(shard, topic, index, p.timestamp)
                .await
                .map_err(|e| errors::partition_error_code(&e)),
        };
        match answer {
            Ok(listed) => ListOffsetsPartitionResponse {
                partition_index: index,
                error_code: error_code::NONE,
                timestamp: listed.timestamp,
                offset: listed.offset,
                leader_epoch: 0,
                ..Default::default()
            },
            Err(code) => ListOffsetsPartitionResponse {
                partition_index: index,
                error_code: code,
                timestamp: -1,
                offset: -1,
                leader_epoch: -1,
                ..Default::default()
            },
        }
    })
    .await;
    ListOffsetsResponse {
        topics: answered
            .into_iter()
            .map(|(name, partitions)| ListOffsetsTopicResponse { name, partitions })
            .collect(),
        ..Default::default()
    }
}
