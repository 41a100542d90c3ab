//! OffsetForLeaderEpoch: clients validate their position after a leader change (KIP-320); each
//! partition answers on its owner shard (`Partition::end_offset_for_epoch`).

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use riffle_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::answer_each_partition;
use crate::errors;
use crate::partition::request;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| (t.topic, t.partitions))
        .collect();
    let answered = answer_each_partition(shard, topics, |topic, p| async move {
        let result = match &topic {
            None => Err(error_code::UNKNOWN_TOPIC_OR_PARTITION),
            Some(topic) => {
                let (current, asked) = (p.current_leader_epoch, p.leader_epoch);
                request::end_offset_for_epoch(shard, topic, p.partition, current, asked)
                    .await
                    .map_err(|e| errors::partition_error_code(&e))
            }
        };
        let (error_code, leader_epoch, end_offset) = match result {
            Ok(end) => (error_code::NONE, end.leader_epoch, end.end_offset),
            Err(code) => (code, -1, -1),
        };
        EpochEndOffset {
            error_code,
            partition: p.partition,
            leader_epoch,
            end_offset,
        }
    })
    .await;
    OffsetForLeaderEpochResponse {
        topics: answered
            .into_iter()
            .map(|(topic, partitions)| OffsetForLeaderTopicResult { topic, partitions })
            .collect(),
        ..Default::default()
    }
}
