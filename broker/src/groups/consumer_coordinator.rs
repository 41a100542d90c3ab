//! The coordinator's side of KIP-848 consumer groups: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe for the groups of this shard's slots. The metadata image comes with each
//! request (the subscribed topics' ids and partition counts, the group's configs); the state
//! machine is `consumer::ConsumerGroup`.

use std::rc::Rc;
use std::time::{Duration, Instant};

use riffle_protocol::error_code;

use super::assignor::Assignment;
use super::consumer::{
    ConsumerGroup, ConsumerGroupSettings, GroupError, Heartbeat, HeartbeatAnswer, TopicInfo, Topics,
};
use super::group::{Group, GroupState};
use super::GroupCoordinator;
use crate::metadata::image::MetadataImage;

/// ConsumerGroupDescribe of one group.
#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    pub state: &'static str,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: &'static str,
    pub members: Vec<ConsumerMemberDescription>,
}

/// What ConsumerGroupDescribe shows of a member.
#[derive(Debug, Clone)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

/// The image's topics as consumer groups see them.
pub fn topics_of(image: &MetadataImage) -> Topics {
    image
        .topics
        .values()
        .map(|t| {
            let info = TopicInfo {
                id: t.id,
                partitions: t.partitions.len() as i32,
            };
            (t.name.clone(), info)
        })
        .collect()
}

fn not_consumer_group(group_id: &str) -> GroupError {
    GroupError::new(
        error_code::GROUP_ID_NOT_FOUND,
        format!("Group {group_id} is not a consumer group."),
    )
}

impl GroupCoordinator {
    /// The settings of `group_id`: the broker's, with the group's configs over them.
    fn consumer_settings(&self, group_id: &str, image: &MetadataImage) -> ConsumerGroupSettings {
        let mut settings = self.consumer_settings.clone();
        let overrides = image.group_configs.get(group_id);
        let ms = |key: &str| {
            overrides
                .and_then(|o| o.get(key))
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis)
        };
        if let Some(d) = ms("consumer.heartbeat.interval.ms") {
            settings.heartbeat_interval = d;
        }
        if let Some(d) = ms("consumer.session.timeout.ms") {
            settings.session_timeout = d;
        }
        settings
    }

    /// The image's topics, computed once per image version.
    fn topics(&self, image: &MetadataImage) -> Rc<Topics> {
        let mut cache = self.consumer_topics.borrow_mut();
        match &*cache {
            Some((version, topics)) if *version == image.version => topics.clone(),
            _ => {
                let topics = Rc::new(topics_of(image));
                *cache = Some((image.version, topics.clone()));
                topics
            }
        }
    }

    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        heartbeat: Heartbeat,
        image: &MetadataImage,
    ) -> Result<HeartbeatAnswer, GroupError> {
        if self.stopping.get() {
            return Err(GroupError::new(error_code::NOT_COORDINATOR, "stopping"));
        }
        if group_id.is_empty() {
            return Err(GroupError::new(
                error_code::INVALID_REQUEST,
                "GroupId can't be empty.",
            ));
        }
        let settings = self.consumer_settings(group_id, image);
        let topics = self.topics(image);
        let mut groups = self.groups.borrow_mut();
        let joining = heartbeat.member_epoch == 0;
        let unknown_member = || {
            // The group's state does not survive a restart: its members learn they must join
            // again (GROUP_ID_NOT_FOUND would be fatal to librdkafka).
            GroupError::new(
                error_code::UNKNOWN_MEMBER_ID,
                format!(
                    "Member {} is not a member of the group.",
                    heartbeat.member_id
                ),
            )
        };
        let created = !groups.contains_key(group_id);
        if created {
            if !joining {
                return Err(unknown_member());
            }
            groups.insert(group_id.to_string(), Group::new(group_id.to_string()));
        }
        let group = groups.get_mut(group_id).expect("just made sure");
        if group.state() == GroupState::Dead {
            return Err(GroupError::new(
                error_code::COORDINATOR_NOT_AVAILABLE,
                "The group is being deleted.",
            ));
        }
        if group.consumer.is_none() {
            if group.state() != GroupState::Empty {
                return Err(not_consumer_group(group_id));
            }
            if !joining {
                return Err(unknown_member());
            }
            group.consumer = Some(ConsumerGroup::default());
        }
        let consumer = group.consumer.as_mut().expect("just made sure");
        let answer = consumer.heartbeat(heartbeat, Instant::now(), &topics, &settings);
        if answer.is_err() && created {
            groups.remove(group_id); // a refused first join leaves nothing behind
        }
        answer
    }

    pub fn consumer_describe(
        &self,
        group_id: &str,
    ) -> Result<ConsumerGroupDescription, GroupError> {
        let groups = self.groups.borrow();
        let group = groups
            .get(group_id)
            .filter(|g| g.state() != GroupState::Dead)
            .ok_or_else(|| {
                GroupError::new(
                    error_code::GROUP_ID_NOT_FOUND,
                    format!("Group {group_id} not found."),
                )
            })?;
        let consumer = group
            .consumer
            .as_ref()
            .ok_or_else(|| not_consumer_group(group_id))?;
        Ok(ConsumerGroupDescription {
            state: consumer.state().name(),
            epoch: consumer.epoch,
            assignment_epoch: consumer.assignment_epoch,
            assignor: consumer.assignor().name(),
            members: consumer
                .members()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.clone(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    assignment: m.assigned.clone(),
                    target_assignment: consumer.target_of(&m.id),
                })
                .collect(),
        })
    }
}

impl ConsumerGroupSettings {
    pub fn from_config(config: &crate::config::BrokerConfig) -> Self {
        ConsumerGroupSettings {
            heartbeat_interval: Duration::from_millis(config.group_consumer_heartbeat_interval_ms),
            session_timeout: Duration::from_millis(config.group_consumer_session_timeout_ms),
            max_size: config.group_consumer_max_size,
        }
    }
}
