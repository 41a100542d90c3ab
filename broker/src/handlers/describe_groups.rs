//! DescribeGroups: state, protocol and members of each classic group. An unknown group, or a
//! consumer-protocol (KIP-848) one, is "Dead", and from v6 (KIP-1043) also GROUP_ID_NOT_FOUND with
//! Kafka's message ("Group g is not a classic group." for the latter), as Kafka 4 answers.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use riffle_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use riffle_protocol::RequestHeader;

use crate::authorized_operations;
use crate::groups::group::GroupState;
use crate::groups::request as group_request;
use crate::shard::Shard;

/// The first version that answers an unknown group with GROUP_ID_NOT_FOUND.
const GROUP_ID_NOT_FOUND_FROM_VERSION: i16 = 6;

pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let not_found = header.request_api_version >= GROUP_ID_NOT_FOUND_FROM_VERSION;
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
            Ok(Err(message)) if not_found => DescribedGroup {
                error_code: error_code::GROUP_ID_NOT_FOUND,
                error_message: Some(message),
                group_id,
                group_state: GroupState::Dead.name().to_string(),
                ..Default::default()
            },
            Ok(Err(_)) => DescribedGroup {
                error_code: error_code::NONE,
                group_id,
                group_state: GroupState::Dead.name().to_string(),
                ..Default::default()
            },
            Ok(Ok(d)) => DescribedGroup {
                error_code: error_code::NONE,
                error_message: None,
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
