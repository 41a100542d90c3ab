//! The metadata records of the controller log, named after KRaft's (`RegisterBrokerRecord`,
//! `TopicRecord`, `PartitionRecord`, `PartitionChangeRecord`…), and their versioned encoding:
//! one version byte, then postcard. The same bytes give the same record on every node.

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Encoding version written as the first byte of every entry and snapshot. A node refuses
/// bytes of a version it does not know instead of guessing.
pub const ENCODING_VERSION: u8 = 1;

/// A broker's node id, as in Kafka's Metadata responses.
pub type BrokerId = i32;

/// Kafka's 16-byte topic id (a UUID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicId(pub [u8; 16]);

/// One listener a broker advertises (Kafka's `BrokerEndpoint`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// Kafka's `RegisterBrokerRecord`: a broker (re)starting announces itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: BrokerId,
    /// Random per process start; a registration with a new incarnation replaces the old one
    /// and starts a new broker epoch.
    pub incarnation_id: [u8; 16],
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
    /// Shards (cores) of the broker: the partition-to-shard placement spreads over them.
    pub shard_count: u32,
}

/// The replicas of one partition and, for each, the shard of that broker that owns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionAssignment {
    pub replicas: Vec<BrokerId>,
    /// `shards[i]` is the shard of `replicas[i]` that owns the partition.
    pub shards: Vec<u32>,
}

/// One record of the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    RegisterBroker(BrokerRegistration),
    /// Proposed by the controller leader when a broker's session expired; applying it moves
    /// leadership off the broker, so fencing never depends on a follower's clock.
    FenceBroker {
        broker_id: BrokerId,
        broker_epoch: u64,
    },
    /// Proposed by the leader when a fenced broker heartbeats again.
    UnfenceBroker {
        broker_id: BrokerId,
        broker_epoch: u64,
    },
    /// Kafka's `TopicRecord` and its `PartitionRecord`s in one record, so a topic never exists
    /// half created.
    CreateTopic {
        name: String,
        topic_id: TopicId,
        partitions: Vec<PartitionAssignment>,
        configs: BTreeMap<String, String>,
    },
    /// Kafka's `RemoveTopicRecord`.
    DeleteTopic {
        topic_id: TopicId,
    },
    /// New partitions appended to a topic (CreatePartitions), as written before
    /// `AddPartitions`; still applied when read from a log.
    CreatePartitions {
        topic_id: TopicId,
        partitions: Vec<PartitionAssignment>,
    },
    /// Kafka's `ConfigRecord`s for one topic: `set` keys replace, `delete` keys go.
    AlterTopicConfigs {
        topic_id: TopicId,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    /// Kafka's `PartitionChangeRecord` (AlterPartition): applies only if the partition is
    /// still at `partition_epoch`, so a stale change is refused, never half applied.
    ChangePartition {
        topic_id: TopicId,
        partition: u32,
        partition_epoch: u64,
        leader: Option<BrokerId>,
        isr: Option<Vec<BrokerId>>,
    },
    /// New partitions appended to a topic (CreatePartitions), applied only while the topic
    /// still has `existing_count` partitions: a retried request never adds twice.
    AddPartitions {
        topic_id: TopicId,
        existing_count: u32,
        partitions: Vec<PartitionAssignment>,
    },
}

/// A proposal as it travels in a log entry: who proposed it, so that node can answer its
/// caller once the entry is applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub origin_node: u64,
    /// The origin's process start, so a restarted node never takes an answer meant for the
    /// proposal of the same id made before its restart.
    pub origin_incarnation: u64,
    pub proposal_id: u64,
    pub record: MetadataRecord,
}

/// Several proposals in one Raft entry: batching is what makes raft-rs fast (RAFT.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalBatch {
    pub proposals: Vec<Proposal>,
}

/// Bytes that are not a record of a known version.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty metadata payload")]
    Empty,
    #[error("metadata encoding version {found} is not known (this node reads {ENCODING_VERSION})")]
    UnknownVersion { found: u8 },
    #[error("malformed metadata payload: {0}")]
    Malformed(#[from] postcard::Error),
}

/// Serialises `value` behind the version byte.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![ENCODING_VERSION];
    // Serialising into a Vec fails only for types serde cannot express (maps with
    // non-string keys are fine in postcard); ours are all plain data.
    let body = postcard::to_stdvec(value).expect("metadata types are always serialisable");
    bytes.extend_from_slice(&body);
    bytes
}

/// Reads what `encode` wrote, checking the version byte.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != ENCODING_VERSION {
        return Err(DecodeError::UnknownVersion { found: version });
    }
    Ok(postcard::from_bytes(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_batch() -> ProposalBatch {
        let record = MetadataRecord::CreateTopic {
            name: "orders".into(),
            topic_id: TopicId([7; 16]),
            partitions: vec![PartitionAssignment {
                replicas: vec![1, 2, 3],
                shards: vec![0, 1, 0],
            }],
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
        };
        ProposalBatch {
            proposals: vec![Proposal {
                origin_node: 2,
                origin_incarnation: 5,
                proposal_id: 9,
                record,
            }],
        }
    }

    #[test]
    fn batch_round_trips_through_versioned_encoding() {
        let batch = sample_batch();
        let bytes = encode(&batch);
        assert_eq!(bytes[0], ENCODING_VERSION);
        assert_eq!(decode::<ProposalBatch>(&bytes).unwrap(), batch);
    }

    #[test]
    fn unknown_version_is_refused() {
        let mut bytes = encode(&sample_batch());
        bytes[0] = 9;
        assert!(matches!(
            decode::<ProposalBatch>(&bytes),
            Err(DecodeError::UnknownVersion { found: 9 })
        ));
        assert!(matches!(
            decode::<ProposalBatch>(&[]),
            Err(DecodeError::Empty)
        ));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = encode(&sample_batch());
        for len in 1..bytes.len() {
            assert!(decode::<ProposalBatch>(&bytes[..len]).is_err(), "len {len}");
        }
        for i in 1..bytes.len() {
            let mut mutated = bytes.clone();
            mutated[i] ^= 0xff;
            // Any outcome but a panic is fine: a mutated byte may still decode.
            let _ = decode::<ProposalBatch>(&mutated);
        }
    }
}
