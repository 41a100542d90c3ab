//! OffsetForLeaderEpoch: clients validate their position after a leader change (KIP-320). Every
//! partition has had one leader epoch (0) so far, which ends at the log end offset.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use riffle_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::on_partition;
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
            let result = on_partition(
                shard,
                topic.as_deref(),
                p.partition,
                move |part| async move { Ok(part.log.log_end_offset()) },
            )
            .await;
            let current_epoch = topic
                .as_ref()
                .and_then(|t| t.partitions.get(p.partition.max(0) as usize))
                .map_or(-1, |m| m.leader_epoch);
            partitions.push(match result {
                Err(code) => EpochEndOffset {
                    error_code: code,
                    partition: p.partition,
                    leader_epoch: -1,
                    end_offset: -1,
                },
                Ok(_) if p.current_leader_epoch > current_epoch => EpochEndOffset {
                    error_code: error_code::UNKNOWN_LEADER_EPOCH,
                    partition: p.partition,
                    leader_epoch: -1,
                    end_offset: -1,
                },
                Ok(_) if p.leader_epoch > current_epoch => EpochEndOffset {
                    error_code: error_code::NONE,
                    partition: p.partition,
                    leader_epoch: -1,
                    end_offset: -1,
                },
                Ok(end) => EpochEndOffset {
                    error_code: error_code::NONE,
                    partition: p.partition,
                    leader_epoch: current_epoch,
                    end_offset: end,
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
