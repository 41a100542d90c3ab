//! Consumer group administration: ListGroups (asked of every broker, each lists the groups
//! it coordinates), DescribeGroups, DeleteGroups, and the committed offsets a group keeps
//! (OffsetFetch, and OffsetCommit outside any generation to move them).

use std::collections::BTreeMap;

use riffle_protocol::error_code;
use riffle_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use riffle_protocol::messages::delete_groups_response::DeleteGroupsResponse;
use riffle_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use riffle_protocol::messages::describe_groups_response::DescribeGroupsResponse;
use riffle_protocol::messages::list_groups_request::ListGroupsRequest;
use riffle_protocol::messages::list_groups_response::ListGroupsResponse;
use riffle_protocol::messages::offset_commit_response::OffsetCommitResponse;
use riffle_protocol::messages::offset_fetch_request::OffsetFetchRequest;
use riffle_protocol::messages::offset_fetch_response::OffsetFetchResponse;

use crate::client::Client;
use crate::consumer_protocol::{Assignment, PROTOCOL_TYPE};
use crate::error::ClientError;
use crate::group::offset_commit_request;

/// A group as ListGroups names it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Empty when the broker's ListGroups version does not carry it (before v4).
    pub state: String,
}

/// A member of a described group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMemberInfo {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    /// (topic, partition) assigned to the member, for a "consumer" group.
    pub assignment: Vec<(String, i32)>,
}

/// A group as DescribeGroups describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    /// The assignor the members agreed on ("range").
    pub protocol: String,
    pub members: Vec<GroupMemberInfo>,
}

/// Committed offsets, per topic and partition.
pub type CommittedOffsets = BTreeMap<(String, i32), i64>;

impl Client {
    /// Every group of the cluster: ListGroups on each broker in the metadata.
    pub fn list_groups(&mut self) -> Result<Vec<GroupListing>, ClientError> {
        let metadata = self.metadata(Some(&[]))?;
        let brokers: Vec<_> = metadata
            .brokers
            .iter()
            .map(|b| self.broker_addr(&metadata, b.node_id))
            .collect();
        let mut out = Vec::new();
        for addr in brokers {
            let resp: ListGroupsResponse = self.broker(addr)?.call(&ListGroupsRequest::default())?;
            ClientError::check(
                resp.error_code,
                || format!("ListGroups on broker {addr}"),
                None,
            )?;
            out.extend(resp.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id,
                protocol_type: g.protocol_type,
                state: g.group_state,
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// `group`'s state and members. A group nobody knows is Kafka's "Dead" with no members.
    pub fn describe_group(&mut self, group: &str) -> Result<GroupDescription, ClientError> {
        let resp: DescribeGroupsResponse =
            self.coordinator(group)?.call(&DescribeGroupsRequest {
                groups: vec![group.into()],
                include_authorized_operations: false,
            })?;
        let g = resp
            .groups
            .into_iter()
            .find(|g| g.group_id == group)
            .ok_or_else(|| {
                ClientError::Other(format!("DescribeGroups left out group '{group}'"))
            })?;
        ClientError::check(g.error_code, || format!("group '{group}'"), None)?;
        let consumer = g.protocol_type == PROTOCOL_TYPE;
        let members = g
            .members
            .into_iter()
            .map(|m| GroupMemberInfo {
                assignment: if consumer {
                    assigned_partitions(&m.member_assignment)
                } else {
                    Vec::new()
                },
                member_id: m.member_id,
                client_id: m.client_id,
                client_host: m.client_host,
            })
            .collect();
        Ok(GroupDescription {
            group_id: g.group_id,
            state: g.group_state,
            protocol_type: g.protocol_type,
            protocol: g.protocol_data,
            members,
        })
    }

    pub fn delete_group(&mut self, group: &str) -> Result<(), ClientError> {
        let resp: DeleteGroupsResponse = self.coordinator(group)?.call(&DeleteGroupsRequest {
            groups_names: vec![group.into()],
        })?;
        for r in &resp.results {
            ClientError::check(r.error_code, || format!("group '{group}'"), None)?;
        }
        Ok(())
    }

    /// Every offset `group` has committed.
    pub fn committed_offsets(&mut self, group: &str) -> Result<CommittedOffsets, ClientError> {
        let resp: OffsetFetchResponse = self.coordinator(group)?.call(&OffsetFetchRequest {
            group_id: group.into(),
            // Null: every partition the group has an offset for.
            topics: None,
            ..Default::default()
        })?;
        ClientError::check(resp.error_code, || format!("group '{group}'"), None)?;
        let mut out = CommittedOffsets::new();
        for t in resp.topics {
            for p in t.partitions {
                ClientError::check(
                    p.error_code,
                    || format!("group '{group}' {}-{}", t.name, p.partition_index),
                    None,
                )?;
                if p.committed_offset >= 0 {
                    out.insert((t.name.clone(), p.partition_index), p.committed_offset);
                }
            }
        }
        Ok(out)
    }

    /// Commits `offsets` of `topic` for `group` outside any generation, as Kafka's tools
    /// reset a group: the coordinator refuses while the group has members.
    pub fn commit_offsets(
        &mut self,
        group: &str,
        topic: &str,
        offsets: &[(i32, i64)],
    ) -> Result<(), ClientError> {
        let request = offset_commit_request(group, -1, "", topic, offsets);
        let resp: OffsetCommitResponse = self.coordinator(group)?.call(&request)?;
        for t in &resp.topics {
            for p in &t.partitions {
                let code = p.error_code;
                let context = || format!("group '{group}' {topic}-{}", p.partition_index);
                if code == error_code::UNKNOWN_MEMBER_ID || code == error_code::ILLEGAL_GENERATION {
                    return Err(ClientError::Kafka {
                        code,
                        context: context(),
                        message: Some("the group has active members; stop them first".into()),
                    });
                }
                ClientError::check(code, context, None)?;
            }
        }
        Ok(())
    }
}

/// The (topic, partition) pairs of a consumer member's assignment; none if it does not decode.
fn assigned_partitions(assignment: &[u8]) -> Vec<(String, i32)> {
    let Ok(a) = Assignment::decode(assignment) else {
        return Vec::new();
    };
    let mut out: Vec<(String, i32)> = a
        .partitions
        .into_iter()
        .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
        .collect();
    out.sort();
    out
}
