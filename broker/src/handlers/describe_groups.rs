//! DescribeGroups: state, protocol and members of each group (an unknown group is "Dead").

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use riffle_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use crate::authorized_operations;
use crate::groups::group::GroupState;
use crate::groups::request as group_request;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(request.groups.len());
    let operations = authorized_operations::bits(
        request.include_authorized_operations,
        authorized_operations::GROUP,
    );
    for group_id in request.groups {
        let described = group_request::describe(shard, &group_id).await;
        groups.push(match described {
            Err(code) => DescribedGroup {
                error_code: code,
                group_id,
                ..Default::default()
            },
            Ok(None) => DescribedGroup {
                error_code: error_code::NONE,
                group_id,
                group_state: GroupState::Dead.name().to_string(),
                ..Default::default()
            },
            Ok(Some(d)) => DescribedGroup {
                error_code: error_code::NONE,
                group_id,
                group_state: d.state.name().to_string(),
                protocol_type: d.protocol_type,
                protocol_data: d.protocol_name,
                members: d
                    .members
                    .into_iter()
                    .map(|m| DescribedGroupMember {
                        member_id: m.member_id,
                        group_instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        member_metadata: m.metadata,
                        member_assignment: m.assignment,
                    })
                    .collect(),
                authorized_operations: operations,
            },
        });
    }
    DescribeGroupsResponse {
        groups,
        ..Default::default()
    }
}
