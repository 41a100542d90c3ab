//! LeaveGroup: members leave (v0–2 one member, v3+ a batch, static members by instance id).

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::leave_group_response::MemberResponse;
use riffle_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use riffle_protocol::RequestHeader;

use crate::groups::request as group_request;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if header.request_api_version < 3 {
        vec![(request.member_id, None)]
    } else {
        request
            .members
            .into_iter()
            .map(|m| (m.member_id, m.group_instance_id))
            .collect()
    };
    let codes = if request.group_id.is_empty() {
        Err(error_code::INVALID_GROUP_ID)
    } else {
        let group = request.group_id;
        group_request::leave(shard, &group, members.clone())
            .await
            .and_then(|r| r.ok_or(error_code::UNKNOWN_MEMBER_ID))
    };
    match codes {
        Err(code) => LeaveGroupResponse {
            error_code: code,
            members: members
                .into_iter()
                .map(|(member_id, group_instance_id)| MemberResponse {
                    member_id,
                    group_instance_id,
                    error_code: code,
                })
                .collect(),
            ..Default::default()
        },
        Ok(codes) => LeaveGroupResponse {
            // v0–2 carry the one member's result at the top.
            error_code: if header.request_api_version < 3 {
                codes.first().copied().unwrap_or(error_code::NONE)
            } else {
                error_code::NONE
            },
            members: members
                .into_iter()
                .zip(codes)
                .map(|((member_id, group_instance_id), code)| MemberResponse {
                    member_id,
                    group_instance_id,
                    error_code: code,
                })
                .collect(),
            ..Default::default()
        },
    }
}
