//! SyncGroup: the leader hands out the assignment; every member waits for its share.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use crate::groups::group::SyncResult;
use crate::groups::request as group_request;
use crate::groups::Committer;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, request: SyncGroupRequest) -> SyncGroupResponse {
    let result = if request.group_id.is_empty() {
        SyncResult::error(error_code::INVALID_GROUP_ID)
    } else {
        let group = request.group_id;
        let member = Committer {
            member_id: request.member_id,
            group_instance_id: request.group_instance_id,
            generation: request.generation_id,
        };
        let assignments = request
            .assignments
            .into_iter()
            .map(|a| (a.member_id, a.assignment))
            .collect();
        let (protocol_type, protocol_name) = (request.protocol_type, request.protocol_name);
        group_request::sync(
            shard,
            &group,
            member,
            (protocol_type, protocol_name),
            assignments,
        )
        .await
        .unwrap_or_else(SyncResult::error)
    };
    SyncGroupResponse {
        error_code: result.error_code,
        protocol_type: result.protocol_type,
        protocol_name: result.protocol_name,
        assignment: result.assignment,
        ..Default::default()
    }
}
