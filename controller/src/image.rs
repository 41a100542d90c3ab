//! The metadata image: the state every node derives by applying the committed log in order.
//! `apply` is deterministic (ordered maps, no clocks, no randomness), so the same log gives
//! the same image everywhere; a record that does not fit the image is refused whole with a
//! `MetadataError` named after Kafka's error, and leaves the image untouched.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::records::{BrokerId, BrokerRegistration, MetadataRecord, PartitionAssignment, TopicId};

/// Longest topic name Kafka accepts.
pub const TOPIC_NAME_MAX_LEN: usize = 249;
/// Most partitions one topic may have; a client cannot make the image grow past it.
pub const TOPIC_PARTITIONS_MAX: usize = 10_000;
/// Most topic configs one topic may carry.
pub const TOPIC_CONFIGS_MAX: usize = 64;
/// Longest topic config key or value, in bytes.
pub const TOPIC_CONFIG_VALUE_MAX_LEN: usize = 4096;
/// Most topics the cluster holds; one more is refused (POLICY_VIOLATION).
pub const CLUSTER_TOPICS_MAX: usize = 10_000;
/// Most partitions the cluster holds, over all topics; more are refused (INVALID_PARTITIONS).
pub const CLUSTER_PARTITIONS_MAX: usize = 200_000;
/// Largest encoded image a change may grow it to (POLICY_VIOLATION beyond). The image travels
/// whole as a voter's Raft snapshot, in one transport frame (`transport::FRAME_MAX_BYTES`,
/// 64 MiB): this leaves room for the message around it and for the estimate's slack.
pub const IMAGE_MAX_BYTES: usize = 48 * 1024 * 1024;
/// Bytes a partition's state may add to the image beyond its assignment (leader, ISR, epochs).
const PARTITION_STATE_MAX_BYTES: usize = 64;
/// Leader id meaning "no leader", as in Kafka's Metadata response.
pub const NO_LEADER: BrokerId = -1;

/// Why a record does not fit the image; each variant names the Kafka error it maps to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("TOPIC_ALREADY_EXISTS: topic '{topic}' already exists")]
    TopicAlreadyExists { topic: String },
    #[error("UNKNOWN_TOPIC_ID: no topic with id {topic_id:?}")]
    UnknownTopicId { topic_id: TopicId },
    #[error("UNKNOWN_TOPIC_OR_PARTITION: topic '{topic}' does not exist")]
    UnknownTopicOrPartition { topic: String },
    #[error("INVALID_TOPIC_EXCEPTION: topic name '{topic}': {reason}")]
    InvalidTopic { topic: String, reason: &'static str },
    #[error("INVALID_PARTITIONS: {reason}")]
    InvalidPartitions { reason: String },
    #[error("INVALID_REPLICATION_FACTOR: replication factor {requested} with {available} usable brokers")]
    InvalidReplicationFactor { requested: i32, available: usize },
    #[error("INVALID_REPLICA_ASSIGNMENT: {reason}")]
    InvalidReplicaAssignment { reason: String },
    #[error("INVALID_CONFIG: {reason}")]
    InvalidConfig { reason: String },
    #[error("BROKER_NOT_AVAILABLE: broker {broker_id} is not registered")]
    BrokerNotAvailable { broker_id: BrokerId },
    #[error("STALE_BROKER_EPOCH: broker {broker_id} is at epoch {current}, not {given}")]
    StaleBrokerEpoch {
        broker_id: BrokerId,
        current: u64,
        given: u64,
    },
    #[error("INVALID_UPDATE_VERSION: partition {partition} of {topic_id:?} is at epoch {current}, not {given}")]
    InvalidUpdateVersion {
        topic_id: TopicId,
        partition: u32,
        current: u64,
        given: u64,
    },
    #[error("INELIGIBLE_REPLICA: {reason}")]
    IneligibleReplica { reason: String },
    #[error("POLICY_VIOLATION: {reason}")]
    PolicyViolation { reason: String },
}

/// A registered broker and its liveness as decided by the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerState {
    pub registration: BrokerRegistration,
    /// Raft index of the registration: a new incarnation gets a new, larger epoch.
    pub broker_epoch: u64,
    pub fenced: bool,
}

/// Leader, ISR and epochs of one partition, plus where its replicas live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub assignment: PartitionAssignment,
    pub leader: BrokerId,
    pub isr: Vec<BrokerId>,
    /// Bumped on every leader change (Kafka's `leader_epoch`).
    pub leader_epoch: u64,
    /// Bumped on every change of leader or ISR (Kafka's `partition_epoch`).
    pub partition_epoch: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicState {
    pub name: String,
    pub topic_id: TopicId,
    pub partitions: Vec<PartitionState>,
    pub configs: BTreeMap<String, String>,
}

/// The whole cluster metadata. Its serialised form is the Raft snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub brokers: BTreeMap<BrokerId, BrokerState>,
    pub topics: BTreeMap<TopicId, TopicState>,
    pub topic_ids_by_name: BTreeMap<String, TopicId>,
}

impl MetadataImage {
    pub fn topic_by_name(&self, name: &str) -> Option<&TopicState> {
        self.topic_ids_by_name
            .get(name)
            .and_then(|id| self.topics.get(id))
    }

    /// Brokers that may lead or receive new replicas: registered and not fenced.
    pub fn usable_brokers(&self) -> impl Iterator<Item = &BrokerState> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Applies one committed record. `index` is its Raft index, used as the broker epoch of a
    /// registration (the same on every node). On error the image is unchanged.
    pub fn apply(&mut self, index: u64, record: &MetadataRecord) -> Result<(), MetadataError> {
        match record {
            MetadataRecord::RegisterBroker(registration) => {
                self.register_broker(index, registration)
            }
            MetadataRecord::FenceBroker {
                broker_id,
                broker_epoch,
            } => self.set_fenced(*broker_id, *broker_epoch, true),
            MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => self.set_fenced(*broker_id, *broker_epoch, false),
            MetadataRecord::CreateTopic {
                name,
                topic_id,
                partitions,
                configs,
            } => self.create_topic(name, *topic_id, partitions, configs),
            MetadataRecord::DeleteTopic { topic_id } => self.delete_topic(*topic_id),
            MetadataRecord::CreatePartitions {
                topic_id,
                partitions,
            } => self.create_partitions(*topic_id, partitions),
            MetadataRecord::AddPartitions {
                topic_id,
                existing_count,
                partitions,
            } => {
                self.check_partition_count(*topic_id, *existing_count)?;
                self.create_partitions(*topic_id, partitions)
            }
            MetadataRecord::AlterTopicConfigs {
                topic_id,
                set,
                delete,
            } => self.alter_configs(*topic_id, set, delete),
            MetadataRecord::ChangePartition {
                topic_id,
                partition,
                partition_epoch,
                leader,
                isr,
            } => self.change_partition(*topic_id, *partition, *partition_epoch, *leader, isr),
        }
    }

    fn register_broker(
        &mut self,
        index: u64,
        registration: &BrokerRegistration,
    ) -> Result<(), MetadataError> {
        if registration.broker_id < 0 {
            return Err(MetadataError::BrokerNotAvailable {
                broker_id: registration.broker_id,
            });
        }
        if registration.shard_count == 0 {
            return Err(MetadataError::InvalidConfig {
                reason: format!("broker {} registers 0 shards", registration.broker_id),
            });
        }
        if let Some(existing) = self.brokers.get(&registration.broker_id) {
            if existing.registration == *registration {
                // A retried registration of the same incarnation changes nothing.
                return Ok(());
            }
        }
        let broker_id = registration.broker_id;
        self.brokers.insert(
            broker_id,
            BrokerState {
                registration: registration.clone(),
                broker_epoch: index,
                // A new incarnation starts fenced until its first heartbeat unfences it, as
                // in KRaft: it may not have caught up with its logs yet.
                fenced: true,
            },
        );
        self.replace_shards_beyond(broker_id, registration.shard_count);
        self.move_leadership_off(broker_id);
        Ok(())
    }

    /// A broker restarted with fewer shards: its replicas on shards it no longer has move to
    /// a shard it has, chosen by partition index so every node picks the same.
    fn replace_shards_beyond(&mut self, broker_id: BrokerId, shard_count: u32) {
        for topic in self.topics.values_mut() {
            for (partition_index, partition) in topic.partitions.iter_mut().enumerate() {
                let assignment = &mut partition.assignment;
                for (replica, shard) in assignment.replicas.iter().zip(&mut assignment.shards) {
                    if *replica == broker_id && *shard >= shard_count {
                        *shard = partition_index as u32 % shard_count;
                    }
                }
            }
        }
    }

    fn set_fenced(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: u64,
        fenced: bool,
    ) -> Result<(), MetadataError> {
        let broker = self
            .brokers
            .get_mut(&broker_id)
            .ok_or(MetadataError::BrokerNotAvailable { broker_id })?;
        if broker.broker_epoch != broker_epoch {
            return Err(MetadataError::StaleBrokerEpoch {
                broker_id,
                current: broker.broker_epoch,
                given: broker_epoch,
            });
        }
        if broker.fenced == fenced {
            return Ok(());
        }
        broker.fenced = fenced;
        if fenced {
            self.move_leadership_off(broker_id);
        } else {
            self.elect_leaderless_with(broker_id);
        }
        Ok(())
    }

    /// The broker is gone or fenced: it leaves every ISR it is in (unless it is the last
    /// member, which Kafka keeps so the partition can come back with no data lost), and the
    /// partitions it led get the first usable ISR member as leader, or none.
    fn move_leadership_off(&mut self, broker_id: BrokerId) {
        let usable: Vec<BrokerId> = self
            .usable_brokers()
            .map(|b| b.registration.broker_id)
            .collect();
        for topic in self.topics.values_mut() {
            for partition in &mut topic.partitions {
                if !partition.isr.contains(&broker_id) && partition.leader != broker_id {
                    continue;
                }
                if partition.isr.len() > 1 {
                    partition.isr.retain(|r| *r != broker_id);
                }
                if partition.leader == broker_id {
                    let next = partition
                        .isr
                        .iter()
                        .copied()
                        .find(|r| *r != broker_id && usable.contains(r))
                        .unwrap_or(NO_LEADER);
                    partition.leader = next;
                    partition.leader_epoch += 1;
                }
                partition.partition_epoch += 1;
            }
        }
    }

    /// A broker came back: partitions with no leader whose ISR holds it get it as leader.
    fn elect_leaderless_with(&mut self, broker_id: BrokerId) {
        for topic in self.topics.values_mut() {
            for partition in &mut topic.partitions {
                if partition.leader == NO_LEADER && partition.isr.contains(&broker_id) {
                    partition.leader = broker_id;
                    partition.leader_epoch += 1;
                    partition.partition_epoch += 1;
                }
            }
        }
    }

    fn create_topic(
        &mut self,
        name: &str,
        topic_id: TopicId,
        partitions: &[PartitionAssignment],
        configs: &BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        validate_topic_name(name)?;
        if self.topic_ids_by_name.contains_key(name) || self.topics.contains_key(&topic_id) {
            return Err(MetadataError::TopicAlreadyExists {
                topic: name.to_owned(),
            });
        }
        validate_partition_count(0, partitions.len())?;
        for assignment in partitions {
            self.validate_assignment(assignment)?;
        }
        validate_configs(configs)?;
        if self.topics.len() >= CLUSTER_TOPICS_MAX {
            return Err(MetadataError::PolicyViolation {
                reason: format!("the cluster holds {CLUSTER_TOPICS_MAX} topics, its limit"),
            });
        }
        self.check_growth(
            partitions.len(),
            name.len() + encoded_bytes(partitions) + encoded_bytes(configs),
        )?;
        let partitions = partitions.iter().map(|a| self.new_partition(a)).collect();
        self.topics.insert(
            topic_id,
            TopicState {
                name: name.to_owned(),
                topic_id,
                partitions,
                configs: configs.clone(),
            },
        );
        self.topic_ids_by_name.insert(name.to_owned(), topic_id);
        Ok(())
    }

    fn new_partition(&self, assignment: &PartitionAssignment) -> PartitionState {
        let leader = assignment
            .replicas
            .iter()
            .copied()
            .find(|r| self.brokers.get(r).is_some_and(|b| !b.fenced))
            .unwrap_or(NO_LEADER);
        PartitionState {
            assignment: assignment.clone(),
            leader,
            isr: assignment.replicas.clone(),
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }

    fn validate_assignment(&self, assignment: &PartitionAssignment) -> Result<(), MetadataError> {
        let invalid = |reason: String| Err(MetadataError::InvalidReplicaAssignment { reason });
        if assignment.replicas.is_empty() || assignment.replicas.len() != assignment.shards.len() {
            return invalid(format!(
                "{} replicas with {} shards",
                assignment.replicas.len(),
                assignment.shards.len()
            ));
        }
        for (i, (replica, shard)) in assignment
            .replicas
            .iter()
            .zip(&assignment.shards)
            .enumerate()
        {
            if assignment.replicas[..i].contains(replica) {
                return invalid(format!("broker {replica} named twice"));
            }
            let broker = self
                .brokers
                .get(replica)
                .ok_or(MetadataError::BrokerNotAvailable {
                    broker_id: *replica,
                })?;
            if *shard >= broker.registration.shard_count {
                return invalid(format!(
                    "shard {shard} of broker {replica}, which has {}",
                    broker.registration.shard_count
                ));
            }
        }
        Ok(())
    }

    fn delete_topic(&mut self, topic_id: TopicId) -> Result<(), MetadataError> {
        let topic = self
            .topics
            .remove(&topic_id)
            .ok_or(MetadataError::UnknownTopicId { topic_id })?;
        self.topic_ids_by_name.remove(&topic.name);
        Ok(())
    }

    fn create_partitions(
        &mut self,
        topic_id: TopicId,
        partitions: &[PartitionAssignment],
    ) -> Result<(), MetadataError> {
        let existing = self
            .topics
            .get(&topic_id)
            .ok_or(MetadataError::UnknownTopicId { topic_id })?
            .partitions
            .len();
        validate_partition_count(existing, partitions.len())?;
        for assignment in partitions {
            self.validate_assignment(assignment)?;
        }
        self.check_growth(partitions.len(), encoded_bytes(partitions))?;
        let new: Vec<PartitionState> = partitions.iter().map(|a| self.new_partition(a)).collect();
        let topic = self.topics.get_mut(&topic_id).expect("checked above");
        topic.partitions.extend(new);
        Ok(())
    }

    fn alter_configs(
        &mut self,
        topic_id: TopicId,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<(), MetadataError> {
        let topic = self
            .topics
            .get(&topic_id)
            .ok_or(MetadataError::UnknownTopicId { topic_id })?;
        let mut configs = topic.configs.clone();
        for key in delete {
            configs.remove(key);
        }
        configs.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        validate_configs(&configs)?;
        let added_bytes = encoded_bytes(&configs).saturating_sub(encoded_bytes(&topic.configs));
        self.check_growth(0, added_bytes)?;
        self.topics
            .get_mut(&topic_id)
            .expect("checked above")
            .configs = configs;
        Ok(())
    }

    /// A checked CreatePartitions applies only to the partition count it was planned against,
    /// so a retry of a request that timed out but took effect adds nothing (the retry is told
    /// INVALID_PARTITIONS, as Kafka tells a request for a count the topic already has).
    fn check_partition_count(
        &self,
        topic_id: TopicId,
        existing_count: u32,
    ) -> Result<(), MetadataError> {
        let topic = self
            .topics
            .get(&topic_id)
            .ok_or(MetadataError::UnknownTopicId { topic_id })?;
        if topic.partitions.len() != existing_count as usize {
            return Err(MetadataError::InvalidPartitions {
                reason: format!(
                    "topic '{}' has {} partitions, not the {existing_count} this change was \
                     planned for (changed since, or an earlier attempt of it took effect)",
                    topic.name,
                    topic.partitions.len()
                ),
            });
        }
        Ok(())
    }

    /// Refuses a change that would take the cluster past `CLUSTER_PARTITIONS_MAX` partitions or
    /// its encoded image past `IMAGE_MAX_BYTES`; `added_bytes` is what the change stores.
    fn check_growth(
        &self,
        added_partitions: usize,
        added_bytes: usize,
    ) -> Result<(), MetadataError> {
        if added_partitions > 0 {
            let total: usize = self.topics.values().map(|t| t.partitions.len()).sum();
            if total + added_partitions > CLUSTER_PARTITIONS_MAX {
                return Err(MetadataError::InvalidPartitions {
                    reason: format!(
                        "the cluster would hold {} partitions, more than its limit of \
                         {CLUSTER_PARTITIONS_MAX}",
                        total + added_partitions
                    ),
                });
            }
        }
        let grown_bytes =
            encoded_bytes(self) + added_bytes + added_partitions * PARTITION_STATE_MAX_BYTES;
        if grown_bytes > IMAGE_MAX_BYTES {
            return Err(MetadataError::PolicyViolation {
                reason: format!(
                    "the cluster metadata would grow to about {grown_bytes} bytes, more than its \
                     limit of {IMAGE_MAX_BYTES} (it must fit one snapshot message)"
                ),
            });
        }
        Ok(())
    }

    fn change_partition(
        &mut self,
        topic_id: TopicId,
        partition_index: u32,
        partition_epoch: u64,
        leader: Option<BrokerId>,
        isr: &Option<Vec<BrokerId>>,
    ) -> Result<(), MetadataError> {
        let usable: Vec<BrokerId> = self
            .usable_brokers()
            .map(|b| b.registration.broker_id)
            .collect();
        let topic = self
            .topics
            .get_mut(&topic_id)
            .ok_or(MetadataError::UnknownTopicId { topic_id })?;
        let partition = topic
            .partitions
            .get_mut(partition_index as usize)
            .ok_or_else(|| MetadataError::UnknownTopicOrPartition {
                topic: format!("{}-{partition_index}", topic.name),
            })?;
        if partition.partition_epoch != partition_epoch {
            return Err(MetadataError::InvalidUpdateVersion {
                topic_id,
                partition: partition_index,
                current: partition.partition_epoch,
                given: partition_epoch,
            });
        }
        let new_isr = isr.clone().unwrap_or_else(|| partition.isr.clone());
        let new_leader = leader.unwrap_or(partition.leader);
        check_partition_change(&partition.assignment, &new_isr, new_leader, &usable)?;
        if new_leader != partition.leader {
            partition.leader = new_leader;
            partition.leader_epoch += 1;
        }
        partition.isr = new_isr;
        partition.partition_epoch += 1;
        Ok(())
    }
}

fn check_partition_change(
    assignment: &PartitionAssignment,
    isr: &[BrokerId],
    leader: BrokerId,
    usable: &[BrokerId],
) -> Result<(), MetadataError> {
    let ineligible = |reason: String| Err(MetadataError::IneligibleReplica { reason });
    if isr.is_empty() {
        return ineligible("an empty ISR".into());
    }
    if let Some(r) = isr.iter().find(|r| !assignment.replicas.contains(r)) {
        return ineligible(format!("ISR member {r} is not a replica"));
    }
    if leader != NO_LEADER && (!isr.contains(&leader) || !usable.contains(&leader)) {
        return ineligible(format!("leader {leader} is not a usable ISR member"));
    }
    Ok(())
}

fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let invalid = |reason| {
        Err(MetadataError::InvalidTopic {
            topic: name.chars().take(TOPIC_NAME_MAX_LEN).collect(),
            reason,
        })
    };
    if name.is_empty() || name == "." || name == ".." {
        return invalid("empty, '.' or '..'");
    }
    if name.len() > TOPIC_NAME_MAX_LEN {
        return invalid("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// The postcard size of `value` (a walk, no allocation).
fn encoded_bytes<T: Serialize + ?Sized>(value: &T) -> usize {
    // Sizing plain data cannot fail; a failure would only make the estimate smaller.
    postcard::experimental::serialized_size(value).unwrap_or(0)
}

fn validate_partition_count(existing: usize, added: usize) -> Result<(), MetadataError> {
    if added == 0 {
        return Err(MetadataError::InvalidPartitions {
            reason: "at least one partition must be added".into(),
        });
    }
    if existing + added > TOPIC_PARTITIONS_MAX {
        return Err(MetadataError::InvalidPartitions {
            reason: format!(
                "{} partitions is more than the limit of {TOPIC_PARTITIONS_MAX}",
                existing + added
            ),
        });
    }
    Ok(())
}

fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), MetadataError> {
    if configs.len() > TOPIC_CONFIGS_MAX {
        return Err(MetadataError::InvalidConfig {
            reason: format!("{} configs is more than {TOPIC_CONFIGS_MAX}", configs.len()),
        });
    }
    if let Some((key, _)) = configs.iter().find(|(k, v)| {
        k.is_empty() || k.len() > TOPIC_CONFIG_VALUE_MAX_LEN || v.len() > TOPIC_CONFIG_VALUE_MAX_LEN
    }) {
        return Err(MetadataError::InvalidConfig {
            reason: format!(
                "config '{}' is empty or longer than {TOPIC_CONFIG_VALUE_MAX_LEN} bytes",
                key.chars().take(64).collect::<String>()
            ),
        });
    }
    Ok(())
}
