//! Replica assignment and partition-to-shard placement for new partitions, computed by the
//! node that proposes a CreateTopics or CreatePartitions from its image. Replicas spread over
//! racks first, then over the least-loaded brokers; each replica goes to the least-loaded
//! shard of its broker. The result travels in the record, so applying it needs no choice.

use std::collections::{BTreeMap, BTreeSet};

use crate::image::{MetadataError, MetadataImage, TOPIC_PARTITIONS_MAX};
use crate::records::{BrokerId, MetadataRecord, PartitionAssignment, TopicId};

/// Replica and leader counts of the brokers, and partition counts of their shards.
#[derive(Default)]
struct Load {
    replicas: BTreeMap<BrokerId, usize>,
    preferred_leaders: BTreeMap<BrokerId, usize>,
    shard_partitions: BTreeMap<(BrokerId, u32), usize>,
}

impl Load {
    fn of(image: &MetadataImage) -> Load {
        let mut load = Load::default();
        for partition in image.topics.values().flat_map(|t| &t.partitions) {
            load.add(&partition.assignment);
        }
        load
    }

    fn add(&mut self, assignment: &PartitionAssignment) {
        for (slot, (broker, shard)) in assignment
            .replicas
            .iter()
            .zip(&assignment.shards)
            .enumerate()
        {
            *self.replicas.entry(*broker).or_default() += 1;
            if slot == 0 {
                *self.preferred_leaders.entry(*broker).or_default() += 1;
            }
            *self.shard_partitions.entry((*broker, *shard)).or_default() += 1;
        }
    }
}

struct Candidate {
    broker_id: BrokerId,
    rack: Option<String>,
    shard_count: u32,
}

/// Assigns `count` new partitions with `replication_factor` replicas each over the unfenced
/// brokers of `image`.
pub fn assign_partitions(
    image: &MetadataImage,
    count: usize,
    replication_factor: i32,
) -> Result<Vec<PartitionAssignment>, MetadataError> {
    let candidates: Vec<Candidate> = image
        .usable_brokers()
        .map(|b| Candidate {
            broker_id: b.registration.broker_id,
            rack: b.registration.rack.clone(),
            shard_count: b.registration.shard_count,
        })
        .collect();
    if replication_factor < 1 || replication_factor as usize > candidates.len() {
        return Err(MetadataError::InvalidReplicationFactor {
            requested: replication_factor,
            available: candidates.len(),
        });
    }
    if count == 0 || count > TOPIC_PARTITIONS_MAX {
        return Err(MetadataError::InvalidPartitions {
            reason: format!(
                "{count} partitions: between 1 and {TOPIC_PARTITIONS_MAX} may be added"
            ),
        });
    }
    let mut load = Load::of(image);
    let mut assignments = Vec::with_capacity(count);
    for _ in 0..count {
        let assignment = assign_one(&candidates, replication_factor as usize, &load);
        load.add(&assignment);
        assignments.push(assignment);
    }
    Ok(assignments)
}

fn assign_one(
    candidates: &[Candidate],
    replication_factor: usize,
    load: &Load,
) -> PartitionAssignment {
    let mut replicas = Vec::with_capacity(replication_factor);
    let mut shards = Vec::with_capacity(replication_factor);
    let mut racks_used = BTreeSet::new();
    for slot in 0..replication_factor {
        let chosen = candidates
            .iter()
            .filter(|c| !replicas.contains(&c.broker_id))
            .min_by_key(|c| {
                let new_rack = c.rack.as_ref().is_none_or(|r| !racks_used.contains(r));
                let replica_count = load.replicas.get(&c.broker_id).copied().unwrap_or(0);
                let leader_count = if slot == 0 {
                    load.preferred_leaders
                        .get(&c.broker_id)
                        .copied()
                        .unwrap_or(0)
                } else {
                    0
                };
                (!new_rack, leader_count, replica_count, c.broker_id)
            })
            .expect("replication factor is checked against the candidate count");
        if let Some(rack) = &chosen.rack {
            racks_used.insert(rack.clone());
        }
        replicas.push(chosen.broker_id);
        shards.push(least_loaded_shard(chosen, load));
    }
    PartitionAssignment { replicas, shards }
}

fn least_loaded_shard(candidate: &Candidate, load: &Load) -> u32 {
    (0..candidate.shard_count)
        .min_by_key(|shard| {
            let count = load
                .shard_partitions
                .get(&(candidate.broker_id, *shard))
                .copied()
                .unwrap_or(0);
            (count, *shard)
        })
        .expect("a registered broker has at least one shard")
}

/// The record for a CreateTopics request, checked against `image` as the apply will be.
pub fn plan_create_topic(
    image: &MetadataImage,
    name: &str,
    topic_id: TopicId,
    partitions: usize,
    replication_factor: i32,
    configs: BTreeMap<String, String>,
) -> Result<MetadataRecord, MetadataError> {
    if image.topic_by_name(name).is_some() {
        return Err(MetadataError::TopicAlreadyExists {
            topic: name.to_owned(),
        });
    }
    let record = MetadataRecord::CreateTopic {
        name: name.to_owned(),
        topic_id,
        partitions: assign_partitions(image, partitions, replication_factor)?,
        configs,
    };
    image.clone().apply(0, &record)?;
    Ok(record)
}

/// The record for a CreatePartitions request raising `name` to `total` partitions, with the
/// replication factor of its first partition.
pub fn plan_create_partitions(
    image: &MetadataImage,
    name: &str,
    total: usize,
) -> Result<MetadataRecord, MetadataError> {
    let topic =
        image
            .topic_by_name(name)
            .ok_or_else(|| MetadataError::UnknownTopicOrPartition {
                topic: name.to_owned(),
            })?;
    let existing = topic.partitions.len();
    if total <= existing {
        return Err(MetadataError::InvalidPartitions {
            reason: format!("topic '{name}' has {existing} partitions, {total} would not add any"),
        });
    }
    let replication_factor = topic.partitions[0].assignment.replicas.len() as i32;
    let record = MetadataRecord::AddPartitions {
        topic_id: topic.topic_id,
        existing_count: existing as u32,
        partitions: assign_partitions(image, total - existing, replication_factor)?,
    };
    image.clone().apply(0, &record)?;
    Ok(record)
}
