//! ListGroups: the groups of every shard's coordinator, filtered by state (v4+) and type (v5+).

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::list_groups_response::ListedGroup;
use riffle_protocol::messages::{ListGroupsRequest, ListGroupsResponse};

use crate::groups::request as group_request;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, request: ListGroupsRequest) -> ListGroupsResponse {
    let wanted_state = |s: &str| {
        request.states_filter.is_empty()
            || request
                .states_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(s))
    };
    let wanted_type = |group_type: &str| {
        request.types_filter.is_empty()
            || request
                .types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case(group_type))
    };
    let (mut groups, error) = match group_request::list_all(shard).await {
        Ok(groups) => (groups, error_code::NONE),
        Err(code) => (Vec::new(), code),
    };
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    ListGroupsResponse {
        error_code: error,
        groups: groups
            .into_iter()
            .filter(|g| wanted_type(g.group_type) && wanted_state(g.state))
            .map(|g| ListedGroup {
                group_id: g.group_id,
                protocol_type: g.protocol_type,
                group_state: g.state.to_string(),
                group_type: g.group_type.to_string(),
            })
            .collect(),
        ..Default::default()
    }
}
