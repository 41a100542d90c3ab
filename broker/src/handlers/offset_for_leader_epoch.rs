//! OffsetForLeaderEpoch: clients validate their position after a leader change (KIP-320); each
//! partition answers on its owner shard (`Partition::end_offset_for_epoch`).

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use riffle_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::errors;
use crate::partition::request;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = shard.image();
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let topic = image.topic(&t.topic).cloned();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let result = match &topic {
                None => Err(error_code::UNKNOWN_TOPIC_OR_PARTITION),
                Some(topic) => request::end_offset_for_epoch(
                    shard,
                    topic,
                    p.partition,
                    p.current_leader_epoch,
                    p.leader_epoch,
                )
                .await
                .map_err(|e| errors::partition_error_code(&e)),
            };
            partitions.push(match result {
                Ok(end) => EpochEndOffset {
                    error_code: error_code::NONE,
                    partition: p.partition,
                    leader_epoch: end.leader_epoch,
                    end_offset: end.end_offset,
                },
                Err(code) => EpochEndOffset {
                    error_code: code,
                    partition: p.partition,
                    leader_epoch: -1,
                    end_offset: -1,
                },
            });
        }
        topics.push(OffsetForLeaderTopicResult {
            topic: t.topic,
            partitions,
        });
    }
    OffsetForLeaderEpochResponse {
        topics,
        ..Default::default()
    }
}
