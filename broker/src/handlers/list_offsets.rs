//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3) and by timestamp (the first offset
//! whose timestamp is at or after the one asked for).

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use riffle_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::on_partition;
use crate::shard::Shard;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// KIP-405's earliest-local and earliest-pending-upload: without tiered storage, the log start.
const EARLIEST_LOCAL: i64 = -4;
const EARLIEST_PENDING_UPLOAD: i64 = -5;

pub async fn handle(shard: &Rc<Shard>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let image = shard.image();
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let topic = image.topic(&t.name).cloned();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let index = p.partition_index;
            let timestamp = p.timestamp;
            let answer = on_partition(shard, topic.as_deref(), index, move |part| async move {
                let log = &part.log;
                // A record found by timestamp counts only below the high watermark (as Kafka).
                let visible = |found: Option<(i64, i64)>| match found {
                    Some((ts, offset)) if offset < part.high_watermark() => (ts, offset),
                    _ => (-1, -1),
                };
                match timestamp {
                    LATEST => Ok((-1, part.high_watermark())),
                    EARLIEST | EARLIEST_LOCAL | EARLIEST_PENDING_UPLOAD => {
                        Ok((-1, log.log_start_offset()))
                    }
                    MAX_TIMESTAMP => Ok(visible(log.max_timestamp())),
                    ts if ts < 0 => Err(error_code::INVALID_REQUEST),
                    ts => {
                        let found = part.offset_for_timestamp(ts).await?;
                        Ok(visible(found.map(|(offset, found_ts)| (found_ts, offset))))
                    }
                }
            })
            .await;
            partitions.push(match answer {
                Ok((timestamp, offset)) => ListOffsetsPartitionResponse {
                    partition_index: index,
                    error_code: error_code::NONE,
                    timestamp,
                    offset,
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
            });
        }
        topics.push(ListOffsetsTopicResponse {
            name: t.name,
            partitions,
        });
    }
    ListOffsetsResponse {
        topics,
        ..Default::default()
    }
}
