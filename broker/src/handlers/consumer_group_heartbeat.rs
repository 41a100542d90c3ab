//! ConsumerGroupHeartbeat (KIP-848): a consumer-protocol member joins, heartbeats, reconciles its
//! assignment and leaves through this one API; the coordinator of the group decides.

use std::net::SocketAddr;
use std::rc::Rc;

use riffle_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use riffle_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use riffle_protocol::{RequestHeader, Uuid};

use crate::groups::assignor;
use crate::groups::consumer::Heartbeat;
use crate::groups::request as group_request;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: ConsumerGroupHeartbeatRequest,
    peer: SocketAddr,
) -> ConsumerGroupHeartbeatResponse {
    let group_id = request.group_id;
    let heartbeat = Heartbeat {
        member_id: request.member_id,
        member_epoch: request.member_epoch,
        instance_id: request.instance_id,
        rack_id: request.rack_id,
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request.subscribed_topic_names,
        subscribed_topic_regex: request.subscribed_topic_regex,
        server_assignor: request.server_assignor,
        owned: request.topic_partitions.map(|topics| {
            let mut owned = assignor::Assignment::new();
            for t in topics {
                owned.entry(t.topic_id.0).or_default().extend(t.partitions);
            }
            owned
        }),
        client_id: header.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", peer.ip()),
        api_version: header.request_api_version,
    };
    match group_request::consumer_heartbeat(shard, &group_id, heartbeat).await {
        Ok(Ok(answer)) => ConsumerGroupHeartbeatResponse {
            member_id: Some(answer.member_id),
            member_epoch: answer.member_epoch,
            heartbeat_interval_ms: answer.heartbeat_interval_ms,
            assignment: answer.assignment.map(|a| Assignment {
                topic_partitions: a
                    .into_iter()
                    .map(|(topic, partitions)| TopicPartitions {
                        topic_id: Uuid(topic),
                        partitions: partitions.into_iter().collect(),
                    })
                    .collect(),
            }),
            ..Default::default()
        },
        Ok(Err(e)) => ConsumerGroupHeartbeatResponse {
            error_code: e.code,
            error_message: Some(e.message),
            member_epoch: -1,
            ..Default::default()
        },
        Err(code) => ConsumerGroupHeartbeatResponse {
            error_code: code,
            member_epoch: -1,
            ..Default::default()
        },
    }
}
