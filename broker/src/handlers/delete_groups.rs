//! DeleteGroups: removes empty groups and their committed offsets.

use std::rc::Rc;

use riffle_protocol::messages::delete_groups_response::DeletableGroupResult;
use riffle_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::groups::request as group_request;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let code = group_request::delete(shard, &group_id)
            .await
            .unwrap_or_else(|code| code);
        results.push(DeletableGroupResult {
            group_id,
            error_code: code,
        });
    }
    DeleteGroupsResponse {
        results,
        ..Default::default()
    }
}
