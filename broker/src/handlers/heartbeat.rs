//! Heartbeat: keeps a member's session alive and tells it when the group rebalances.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::groups::request as group_request;
use crate::groups::Committer;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, request: HeartbeatRequest) -> HeartbeatResponse {
    let code = if request.group_id.is_empty() {
        error_code::INVALID_GROUP_ID
    } else {
        let group = request.group_id;
        let member = Committer {
            member_id: request.member_id,
            group_instance_id: request.group_instance_id,
            generation: request.generation_id,
        };
        group_request::heartbeat(shard, &group, member)
            .await
            .unwrap_or_else(|code| code)
    };
    HeartbeatResponse {
        error_code: code,
        ..Default::default()
    }
}
