//! JoinGroup: join (or rejoin) a classic group and wait for the join phase of its rebalance.

use std::net::SocketAddr;
use std::rc::Rc;

use riffle_protocol::messages::join_group_response::JoinGroupResponseMember;
use riffle_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use riffle_protocol::{error_code, RequestHeader};

use crate::groups::group::{JoinRequest, JoinResult};
use crate::groups::request as group_request;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: JoinGroupRequest,
    peer: SocketAddr,
) -> JoinGroupResponse {
    let version = header.request_api_version;
    let result = if request.group_id.is_empty() {
        JoinResult::error(error_code::INVALID_GROUP_ID, &request.member_id)
    } else {
        let group = request.group_id;
        let join = JoinRequest {
            member_id: request.member_id.clone(),
            group_instance_id: request.group_instance_id,
            client_id: header.client_id.clone().unwrap_or_default(),
            client_host: format!("/{}", peer.ip()),
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            protocol_type: request.protocol_type,
            protocols: request
                .protocols
                .into_iter()
                .map(|p| (p.name, p.metadata))
                .collect(),
            require_known_member_id: version >= 4,
        };
        let member_id = request.member_id;
        group_request::join(shard, &group, join)
            .await
            .unwrap_or_else(|code| JoinResult::error(code, &member_id))
    };
    JoinGroupResponse {
        error_code: result.error_code,
        generation_id: result.generation_id,
        protocol_type: result.protocol_type,
        // Nullable only from v7.
        protocol_name: match result.protocol_name {
            None if version < 7 => Some(String::new()),
            name => name,
        },
        leader: result.leader,
        member_id: result.member_id,
        members: result
            .members
            .into_iter()
            .map(
                |(member_id, group_instance_id, metadata)| JoinGroupResponseMember {
                    member_id,
                    group_instance_id,
                    metadata,
                },
            )
            .collect(),
        ..Default::default()
    }
}
