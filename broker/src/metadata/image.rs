//! The metadata image: topics, partitions, placements and topic configs as one immutable,
//! versioned value. The controller (shard 0) builds a new image for every change and publishes it
//! whole; every shard reads the current one without blocking.

use std::collections::BTreeMap;
use std::sync::Arc;

use riffle_protocol::Uuid;
use serde::{Deserialize, Serialize};

use crate::client_quotas::QuotaEntry;

/// Where one partition lives and who leads it. `leader_epoch` and `replicas` are real from the
/// start so that replication can come without a format change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// The shard (core) of the leader node that owns this partition's log.
    pub shard: u32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    /// The in-sync replicas; a single node's partitions have their one replica in sync.
    #[serde(default)]
    pub isr: Vec<i32>,
}

impl PartitionMeta {
    /// The in-sync replicas as Metadata lists them (an image written before `isr` existed has
    /// every replica in sync: it had one).
    pub fn in_sync(&self) -> &[i32] {
        if self.isr.is_empty() {
            &self.replicas
        } else {
            &self.isr
        }
    }
}

/// A broker as the controller quorum's image has it: what Metadata and DescribeCluster list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMeta {
    pub node_id: i32,
    /// Its advertised Kafka listener.
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are left out of Metadata.
    pub fenced: bool,
}

/// The cluster around this node, from the controller quorum: its brokers and the quorum's
/// leader. Only with `controller_quorum`; never persisted (liveness is re-learnt at start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMembers {
    /// Registered brokers, fenced ones included, by node id.
    pub brokers: Vec<BrokerMeta>,
    /// The quorum's leader (the active controller), None during an election.
    pub controller_id: Option<i32>,
}

impl ClusterMembers {
    pub fn broker(&self, node_id: i32) -> Option<&BrokerMeta> {
        self.brokers.iter().find(|b| b.node_id == node_id)
    }

    /// Brokers clients may talk to: registered and not fenced.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerMeta> {
        self.brokers.iter().filter(|b| !b.fenced)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    /// Kafka's 16-byte topic id.
    pub id: [u8; 16],
    pub partitions: Vec<PartitionMeta>,
    /// Topic-level config overrides (`retention.ms`, `cleanup.policy`, ...), Kafka's names.
    pub configs: BTreeMap<String, String>,
}

impl TopicMeta {
    pub fn uuid(&self) -> Uuid {
        Uuid(self.id)
    }
}

/// One published version of the cluster metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub version: u64,
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    /// Producer ids below this one have been handed out (InitProducerId).
    pub next_producer_id: i64,
    /// Dynamic broker configs set by IncrementalAlterConfigs/AlterConfigs, Kafka's names.
    #[serde(default)]
    pub broker_configs: BTreeMap<String, String>,
    /// Group configs (`consumer.session.timeout.ms`, ...) by group id.
    #[serde(default)]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Client quotas set by AlterClientQuotas, one entry per entity.
    #[serde(default)]
    pub client_quotas: Vec<QuotaEntry>,
    /// The brokers and active controller the quorum knows; None without a quorum (or until
    /// its controller task first publishes them).
    #[serde(skip)]
    pub cluster: Option<Arc<ClusterMembers>>,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicMeta>> {
        self.topics.values().find(|t| t.id == id.0)
    }

    /// Number of partitions placed on each of `shards` shards, for balancing new placements.
    pub fn partitions_per_shard(&self, shards: usize) -> Vec<usize> {
        let mut counts = vec![0; shards];
        for topic in self.topics.values() {
            for p in &topic.partitions {
                if let Some(c) = counts.get_mut(p.shard as usize) {
                    *c += 1;
                }
            }
        }
        counts
    }

    /// Places `count` new partitions on the least loaded shards, lowest shard first on ties.
    pub fn place_partitions(
        &self,
        count: usize,
        shards: usize,
        node_id: i32,
    ) -> Vec<PartitionMeta> {
        let mut load = self.partitions_per_shard(shards);
        (0..count)
            .map(|_| {
                let (shard, _) = load
                    .iter()
                    .enumerate()
                    .min_by_key(|(i, c)| (**c, *i))
                    .expect("at least one shard");
                load[shard] += 1;
                PartitionMeta {
                    shard: shard as u32,
                    leader: node_id,
                    leader_epoch: 0,
                    replicas: vec![node_id],
                    isr: vec![node_id],
                }
            })
            .collect()
    }

    /// After a restart with fewer shards, moves partitions of vanished shards onto existing ones.
    pub fn fit_to_shards(&mut self, shards: usize) {
        for topic in self.topics.values_mut() {
            if topic.partitions.iter().any(|p| p.shard as usize >= shards) {
                let t = Arc::make_mut(topic);
                for p in &mut t.partitions {
                    p.shard %= shards as u32;
                }
            }
        }
    }
}

/// Kafka's rules for topic names: 1..=249 characters of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be '{name}'"));
    }
    if name.len() > 249 {
        return Err("topic name is longer than 249 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name '{name}' contains '{c}'; legal characters are ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_balances_partitions_over_shards() {
        let mut image = MetadataImage::default();
        let parts = image.place_partitions(5, 2, 7);
        let shards: Vec<u32> = parts.iter().map(|p| p.shard).collect();
        assert_eq!(shards, vec![0, 1, 0, 1, 0]);
        assert!(parts.iter().all(|p| p.leader == 7 && p.replicas == vec![7]));
        image.topics.insert(
            "a".into(),
            Arc::new(TopicMeta {
                name: "a".into(),
                id: [1; 16],
                partitions: parts,
                configs: BTreeMap::new(),
            }),
        );
        // shard 1 has fewer partitions, so the next one goes there
        assert_eq!(image.place_partitions(1, 2, 7)[0].shard, 1);
    }

    #[test]
    fn fewer_shards_after_restart_keeps_every_partition_placed() {
        let mut image = MetadataImage::default();
        let parts = image.place_partitions(4, 4, 0);
        image.topics.insert(
            "a".into(),
            Arc::new(TopicMeta {
                name: "a".into(),
                id: [1; 16],
                partitions: parts,
                configs: BTreeMap::new(),
            }),
        );
        image.fit_to_shards(2);
        assert!(image.topics["a"].partitions.iter().all(|p| p.shard < 2));
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_2-x").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
