//! ConsumerGroupDescribe (KIP-848): members, epochs, assignments and assignor of consumer groups.
//! A classic group, like an unknown one, is GROUP_ID_NOT_FOUND, with Kafka's message.

use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use riffle_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};
use riffle_protocol::Uuid;

use crate::authorized_operations;
use crate::groups::assignor;
use crate::groups::request as group_request;
use crate::metadata::image::MetadataImage;
use crate::shard::Shard;

/// MemberType of ConsumerGroupDescribe v1 (KIP-1099): every member here uses the consumer protocol.
const CONSUMER_MEMBER_TYPE: i8 = 1;

pub async fn handle(
    shard: &Rc<Shard>,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let operations = authorized_operations::bits(
        request.include_authorized_operations,
        authorized_operations::GROUP,
    );
    let mut groups = Vec::with_capacity(request.group_ids.len());
    for group_id in request.group_ids {
        if group_id.is_empty() {
            groups.push(DescribedGroup {
                error_code: error_code::INVALID_GROUP_ID,
                error_message: Some("GroupId can't be empty.".to_string()),
                group_id,
                ..Default::default()
            });
            continue;
        }
        let described = group_request::consumer_describe(shard, &group_id).await;
        let image = shard.image();
        groups.push(match described {
            Err(code) => DescribedGroup {
                error_code: code,
                group_id,
                ..Default::default()
            },
            Ok(Err(e)) => DescribedGroup {
                error_code: e.code,
                error_message: Some(e.message),
                group_id,
                ..Default::default()
            },
            Ok(Ok(d)) => DescribedGroup {
                group_id,
                group_state: d.state.to_string(),
                group_epoch: d.epoch,
                assignment_epoch: d.assignment_epoch,
                assignor_name: d.assignor.to_string(),
                members: d
                    .members
                    .into_iter()
                    .map(|m| Member {
                        member_id: m.member_id,
                        instance_id: m.instance_id,
                        rack_id: m.rack_id,
                        member_epoch: m.member_epoch,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        subscribed_topic_names: m.subscribed_topic_names,
                        subscribed_topic_regex: m.subscribed_topic_regex,
                        assignment: assignment(&m.assignment, &image),
                        target_assignment: assignment(&m.target_assignment, &image),
                        member_type: CONSUMER_MEMBER_TYPE,
                    })
                    .collect(),
                authorized_operations: operations,
                ..Default::default()
            },
        });
    }
    ConsumerGroupDescribeResponse {
        groups,
        ..Default::default()
    }
}

fn assignment(a: &assignor::Assignment, image: &MetadataImage) -> Assignment {
    Assignment {
        topic_partitions: a
            .iter()
            .map(|(id, partitions)| {
                let id = Uuid(*id);
                TopicPartitions {
                    topic_id: id,
                    topic_name: image
                        .topic_by_id(&id)
                        .map(|t| t.name.clone())
                        .unwrap_or_default(),
                    partitions: partitions.iter().copied().collect(),
                }
            })
            .collect(),
    }
}
