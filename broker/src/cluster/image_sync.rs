//! Copies the quorum's metadata image into the broker image the shards serve from. Combined
//! nodes (`driver`) and broker-only nodes (`broker_only`) apply the same committed log to the
//! same `riffle_controller` image, and hand it to their shards with this one code path. Lives
//! on shard 0 with the task that owns the quorum's image.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use riffle_controller::image::{
    MetadataError, MetadataImage as QuorumImage, PartitionState, TopicState,
};
use riffle_controller::placement;
use riffle_controller::records::{MetadataRecord, TopicId};

use super::client::Change;
use crate::metadata::image::{
    BrokerMeta, ClusterMembers, MetadataImage as BrokerImage, PartitionMeta, TopicMeta,
};
use crate::shard::Shard;

/// What was last copied, so an unchanged image costs a comparison only.
#[derive(Default)]
pub(super) struct ImageSync {
    /// The quorum's topics as last copied into the broker image.
    synced_topics: Option<BTreeMap<TopicId, TopicState>>,
    /// The brokers and controller as last copied into the broker image.
    synced_members: Option<ClusterMembers>,
}

impl ImageSync {
    /// Copies every topic again at the next `sync` (local topics the quorum does not know go
    /// once `authoritative`).
    pub(super) fn recopy_topics(&mut self) {
        self.synced_topics = None;
    }

    /// Copies the quorum's topics (leaders, epochs, replicas and ISR included) and its brokers
    /// into the broker image the shards serve from, when they changed: new partitions are placed
    /// on the shard the quorum assigned, configs follow, deleted topics go. Local topics the
    /// quorum never knew (a data dir from before the quorum) are kept unless `authoritative`.
    pub(super) async fn sync(
        &mut self,
        shard: &Rc<Shard>,
        image: &QuorumImage,
        controller_id: Option<u64>,
        authoritative: bool,
    ) {
        let members = members(image, controller_id);
        let topics = &image.topics;
        let topics_synced = self.synced_topics.as_ref() == Some(topics);
        if topics_synced && self.synced_members.as_ref() == Some(&members) {
            return;
        }
        let Some(metadata) = shard.controller.clone() else {
            return;
        };
        let topics = topics.clone();
        let before = self.synced_topics.take().unwrap_or_default();
        let node_id = shard.config().node_id;
        let shards = shard.shared.shard_count();
        let published = Arc::new(members.clone());
        let copied = metadata
            .update_topics(shard, |image| {
                if !topics_synced {
                    copy_topics(image, &before, &topics, authoritative, node_id, shards);
                }
                image.cluster = Some(published);
            })
            .await;
        match copied {
            Ok(()) => {
                self.synced_topics = Some(topics);
                self.synced_members = Some(members);
            }
            Err(e) => tracing::error!(error = %e, "controller: cannot apply the quorum's topics"),
        }
    }
}

/// The registered brokers and the active controller, as Metadata and DescribeCluster list
/// them.
fn members(image: &QuorumImage, controller_id: Option<u64>) -> ClusterMembers {
    let brokers = image
        .brokers
        .values()
        .map(|b| {
            let listener = b.registration.listeners.first();
            BrokerMeta {
                node_id: b.registration.broker_id,
                host: listener.map(|l| l.host.clone()).unwrap_or_default(),
                port: listener.map_or(0, |l| i32::from(l.port)),
                rack: b.registration.rack.clone(),
                fenced: b.fenced,
            }
        })
        .collect();
    ClusterMembers {
        brokers,
        controller_id: controller_id.and_then(|id| i32::try_from(id).ok()),
    }
}

/// The record for `change`, checked against the quorum's image.
pub(super) fn plan(image: &QuorumImage, change: &Change) -> Result<MetadataRecord, MetadataError> {
    let topic_id = |name: &str| {
        image
            .topic_by_name(name)
            .map(|t| t.topic_id)
            .ok_or_else(|| MetadataError::UnknownTopicOrPartition {
                topic: name.to_owned(),
            })
    };
    match change {
        Change::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => placement::plan_create_topic(
            image,
            name,
            TopicId(rand::random()),
            *partitions,
            *replication_factor,
            configs.clone(),
        ),
        Change::Delete { name } => Ok(MetadataRecord::DeleteTopic {
            topic_id: topic_id(name)?,
        }),
        Change::CreatePartitions { name, total } => {
            placement::plan_create_partitions(image, name, *total)
        }
        Change::SetConfigs { name, configs } => {
            let current = image
                .topic_by_name(name)
                .map(|t| t.configs.clone())
                .unwrap_or_default();
            Ok(MetadataRecord::AlterTopicConfigs {
                topic_id: topic_id(name)?,
                set: configs.clone(),
                delete: current
                    .keys()
                    .filter(|k| !configs.contains_key(*k))
                    .cloned()
                    .collect(),
            })
        }
    }
}

/// Brings the broker image's topics in line with the quorum's (see `ImageSync::sync`).
fn copy_topics(
    image: &mut BrokerImage,
    before: &BTreeMap<TopicId, TopicState>,
    topics: &BTreeMap<TopicId, TopicState>,
    authoritative: bool,
    node_id: i32,
    shards: usize,
) {
    if authoritative {
        image
            .topics
            .retain(|_, t| topics.contains_key(&TopicId(t.id)));
    }
    for (topic_id, gone) in before {
        if !topics.contains_key(topic_id)
            && image.topic(&gone.name).is_some_and(|t| t.id == topic_id.0)
        {
            image.topics.remove(&gone.name);
        }
    }
    for topic in topics.values() {
        let local = image
            .topic(&topic.name)
            .filter(|t| t.id == topic.topic_id.0)
            .cloned();
        let mut partitions = local.map(|t| t.partitions.clone()).unwrap_or_default();
        partitions.truncate(topic.partitions.len());
        let kept = partitions.len();
        partitions.extend(
            topic.partitions[kept..]
                .iter()
                .map(|state| new_partition(state, node_id, shards)),
        );
        for (partition, state) in partitions.iter_mut().zip(&topic.partitions) {
            partition.leader = state.leader;
            partition.leader_epoch = i32::try_from(state.leader_epoch).unwrap_or(i32::MAX);
            partition.replicas = state.assignment.replicas.clone();
            partition.isr = state.isr.clone();
        }
        let meta = TopicMeta {
            name: topic.name.clone(),
            id: topic.topic_id.0,
            partitions,
            configs: topic.configs.clone(),
        };
        if image
            .topic(&topic.name)
            .map(|t| **t != meta)
            .unwrap_or(true)
        {
            image.topics.insert(topic.name.clone(), Arc::new(meta));
        }
    }
}

/// A partition new to this node: on the shard the quorum assigned to this node's replica (kept
/// within the shards this process runs), or shard 0 when another broker holds it.
fn new_partition(state: &PartitionState, node_id: i32, shards: usize) -> PartitionMeta {
    let assignment = &state.assignment;
    let shard = assignment
        .replicas
        .iter()
        .position(|r| *r == node_id)
        .and_then(|i| assignment.shards.get(i))
        .map_or(0, |s| s % shards.max(1) as u32);
    PartitionMeta {
        shard,
        leader: state.leader,
        leader_epoch: 0,
        replicas: assignment.replicas.clone(),
        isr: state.isr.clone(),
    }
}
