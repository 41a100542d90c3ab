//! OffsetDelete: removes a group's committed offsets for some partitions (Kafka's admin
//! `deleteConsumerGroupOffsets`); refused for topics the group's members subscribe to.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use riffle_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::groups::request as group_request;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    if request.group_id.is_empty() {
        return OffsetDeleteResponse {
            error_code: error_code::INVALID_GROUP_ID,
            ..Default::default()
        };
    }
    // Partitions of unknown topics are answered here; the rest go to the coordinator.
    let image = shard.image();
    let mut unknown = Vec::new();
    let mut known = Vec::new();
    for t in request.topics {
        let count = image.topic(&t.name).map_or(0, |m| m.partitions.len());
        let (valid, invalid): (Vec<i32>, Vec<i32>) = t
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .partition(|&p| p >= 0 && (p as usize) < count);
        if !invalid.is_empty() {
            unknown.push((t.name.clone(), invalid));
        }
        if !valid.is_empty() {
            known.push((t.name, valid));
        }
    }
    drop(image);
    let group = request.group_id;
    let outcome = if known.is_empty() {
        Ok(Vec::new())
    } else {
        group_request::delete_offsets(shard, &group, known)
            .await
            .and_then(|r| r)
    };
    let results = match outcome {
        Err(code) => {
            return OffsetDeleteResponse {
                error_code: code,
                ..Default::default()
            }
        }
        Ok(results) => results,
    };
    let unknown = unknown.into_iter().map(|(topic, partitions)| {
        let codes = partitions
            .into_iter()
            .map(|p| (p, error_code::UNKNOWN_TOPIC_OR_PARTITION))
            .collect();
        (topic, codes)
    });
    OffsetDeleteResponse {
        error_code: error_code::NONE,
        topics: results
            .into_iter()
            .chain(unknown)
            .map(|(name, partitions)| OffsetDeleteResponseTopic {
                name,
                partitions: partitions
                    .into_iter()
                    .map(
                        |(partition_index, error_code)| OffsetDeleteResponsePartition {
                            partition_index,
                            error_code,
                        },
                    )
                    .collect(),
            })
            .collect(),
        ..Default::default()
    }
}
