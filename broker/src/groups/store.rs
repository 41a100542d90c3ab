//! The durable side of the group coordinator: committed offsets and each group's generation,
//! kept as records in a log per coordinator slot (Kafka keeps them in `__consumer_offsets`). The
//! last record for a key wins; a record without a value deletes the key. The state is rebuilt by
//! replaying the log at start-up, and the log is compacted by writing the live state again and
//! dropping what came before it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use riffle_protocol::record_batch::{self, Compression, RecordBatchBuilder};
use riffle_storage::{LogConfig, PartitionLog, StorageError};
use serde::{Deserialize, Serialize};

use super::group::{CommittedOffset, Group};
use riffle_storage::clock::now_ms;

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Key {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

/// A group's durable facts: a restart brings the group back empty at this generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub generation: i32,
    pub protocol_type: Option<String>,
}

/// One change to store.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        value: Option<GroupRecord>,
    },
}

impl Entry {
    fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let (key, value) = match self {
            Entry::Offset {
                group,
                topic,
                partition,
                value,
            } => (
                Key::Offset {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                },
                value.as_ref().map(serde_json::to_vec),
            ),
            Entry::Group { group, value } => (
                Key::Group {
                    group: group.clone(),
                },
                value.as_ref().map(serde_json::to_vec),
            ),
        };
        let key = serde_json::to_vec(&key).expect("keys serialize");
        (key, value.map(|v| v.expect("values serialize")))
    }

    fn decode(key: &[u8], value: Option<&[u8]>) -> Option<Entry> {
        Some(match serde_json::from_slice::<Key>(key).ok()? {
            Key::Offset {
                group,
                topic,
                partition,
            } => Entry::Offset {
                group,
                topic,
                partition,
                value: match value {
                    Some(v) => Some(serde_json::from_slice(v).ok()?),
                    None => None,
                },
            },
            Key::Group { group } => Entry::Group {
                group,
                value: match value {
                    Some(v) => Some(serde_json::from_slice(v).ok()?),
                    None => None,
                },
            },
        })
    }

    /// Applies this change to the groups being rebuilt.
    pub fn apply(self, groups: &mut HashMap<String, Group>) {
        match self {
            Entry::Offset {
                group,
                topic,
                partition,
                value,
            } => match value {
                Some(v) => {
                    groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(group))
                        .offsets
                        .entry(topic)
                        .or_default()
                        .insert(partition, v);
                }
                None => {
                    if let Some(g) = groups.get_mut(&group) {
                        if let Some(t) = g.offsets.get_mut(&topic) {
                            t.remove(&partition);
                            if t.is_empty() {
                                g.offsets.remove(&topic);
                            }
                        }
                    }
                }
            },
            Entry::Group { group, value } => match value {
                Some(v) => {
                    let offsets = groups.remove(&group).map(|g| g.offsets).unwrap_or_default();
                    let mut g = Group::restored(group.clone(), v.generation, v.protocol_type);
                    g.offsets = offsets;
                    groups.insert(group, g);
                }
                None => {
                    groups.remove(&group);
                }
            },
        }
    }
}

/// The live state of groups as entries, for compaction.
pub fn live_entries<'a>(groups: impl Iterator<Item = &'a Group>) -> Vec<Entry> {
    let mut out = Vec::new();
    for g in groups {
        if g.generation() > 0 || g.protocol_type().is_some() {
            out.push(Entry::Group {
                group: g.id.clone(),
                value: Some(GroupRecord {
                    generation: g.generation(),
                    protocol_type: g.protocol_type().map(str::to_string),
                }),
            });
        }
        for (topic, partitions) in &g.offsets {
            for (partition, value) in partitions {
                out.push(Entry::Offset {
                    group: g.id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: Some(value.clone()),
                });
            }
        }
    }
    out
}

/// Records per batch when many entries are written at once (compaction, group deletion).
const RECORDS_PER_BATCH: usize = 1000;

fn encode_batch(entries: &[Entry]) -> Bytes {
    let mut builder = RecordBatchBuilder::new(Compression::None, now_ms());
    for e in entries {
        let (key, value) = e.encode();
        builder.append(now_ms(), Some(&key), value.as_deref(), &[]);
    }
    builder.finish()
}

/// Where a slot's log lives.
pub fn slot_dir(data_dir: &Path, slot: u32) -> PathBuf {
    data_dir
        .join("__consumer_offsets")
        .join(format!("slot-{slot}"))
}

/// The log settings of an offsets slot: never deleted by retention (compaction keeps it small),
/// small segments so that compaction frees space soon, durable on every write.
fn slot_log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 << 20,
        segment_ms: None,
        retention_bytes: None,
        retention_ms: None,
        tail_cache_bytes: 256 << 10,
        preallocate_bytes: 1 << 20,
        ..LogConfig::default()
    }
}

/// One slot's log.
pub struct OffsetStore {
    pub slot: u32,
    log: Rc<PartitionLog>,
}

impl OffsetStore {
    /// Opens (recovering) the slot's log and replays it into `groups`.
    pub async fn open(
        data_dir: &Path,
        slot: u32,
        groups: &mut HashMap<String, Group>,
    ) -> Result<OffsetStore, StorageError> {
        let log = PartitionLog::open(&slot_dir(data_dir, slot), slot_log_config()).await?;
        let store = OffsetStore { slot, log };
        store.replay(groups).await?;
        Ok(store)
    }

    async fn replay(&self, groups: &mut HashMap<String, Group>) -> Result<(), StorageError> {
        const STEP_BYTES: usize = 1 << 20;
        let end = self.log.log_end_offset();
        let mut from = self.log.log_start_offset();
        while from < end {
            let read = self.log.read(from, STEP_BYTES).await?;
            let mut next = from;
            for chunk in &read.chunks {
                for view in record_batch::batches(chunk) {
                    let Ok(view) = view else { break };
                    next = next.max(view.last_offset() + 1);
                    let Ok(records) = view.records() else {
                        continue;
                    };
                    for record in records.flatten() {
                        match record.key.and_then(|k| Entry::decode(k, record.value)) {
                            Some(entry) => entry.apply(groups),
                            None => tracing::warn!(
                                slot = self.slot,
                                "skipping an offsets record that does not decode"
                            ),
                        }
                    }
                }
            }
            if next <= from {
                break;
            }
            from = next;
        }
        Ok(())
    }

    /// Appends `entries` and returns once they are durable. The batches get consecutive
    /// offsets: the log assigns an offset on an append's first poll, and all of them are first
    /// polled together here, so no other write lands between them.
    pub async fn write(&self, entries: &[Entry]) -> Result<(), StorageError> {
        if entries.is_empty() {
            return Ok(());
        }
        let appends = entries
            .chunks(RECORDS_PER_BATCH)
            .map(|chunk| self.log.append(encode_batch(chunk)));
        futures::future::try_join_all(appends).await?;
        self.log.flush().await?;
        Ok(())
    }

    /// Records in the log, live or not.
    pub fn record_span(&self) -> i64 {
        self.log.log_end_offset() - self.log.log_start_offset()
    }

    /// Writes the live state again and drops everything before it. A crash in between leaves
    /// both copies, which replay to the same state.
    pub async fn compact(&self, live: Vec<Entry>) -> Result<(), StorageError> {
        let start = self.log.log_end_offset();
        self.write(&live).await?;
        self.log.delete_records_before(start).await?;
        self.log.housekeeping(now_ms()).await
    }

    pub async fn close(&self) {
        if let Err(e) = self.log.close().await {
            tracing::warn!(slot = self.slot, error = %e, "closing offsets log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(group: &str, topic: &str, partition: i32, value: Option<i64>) -> Entry {
        Entry::Offset {
            group: group.into(),
            topic: topic.into(),
            partition,
            value: value.map(|offset| CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: Some("m".into()),
                commit_timestamp_ms: 1,
            }),
        }
    }

    #[test]
    fn entries_survive_encoding_as_records() {
        let entries = vec![
            offset("g", "t", 3, Some(42)),
            offset("g", "t", 3, None),
            Entry::Group {
                group: "g".into(),
                value: Some(GroupRecord {
                    generation: 7,
                    protocol_type: Some("consumer".into()),
                }),
            },
            Entry::Group {
                group: "g".into(),
                value: None,
            },
        ];
        let batch = encode_batch(&entries);
        let view = record_batch::RecordBatchView::parse(&batch).unwrap();
        view.validate_integrity().unwrap();
        let decoded: Vec<Entry> = view
            .records()
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                Entry::decode(r.key.unwrap(), r.value).unwrap()
            })
            .collect();
        assert_eq!(decoded, entries);
    }

    #[test]
    fn replay_keeps_the_last_value_and_honours_deletions() {
        let mut groups = HashMap::new();
        for e in [
            offset("a", "t", 0, Some(1)),
            offset("a", "t", 0, Some(5)),
            offset("a", "t", 1, Some(9)),
            offset("a", "t", 1, None),
            offset("b", "t", 0, Some(3)),
            Entry::Group {
                group: "a".into(),
                value: Some(GroupRecord {
                    generation: 4,
                    protocol_type: Some("consumer".into()),
                }),
            },
            Entry::Group {
                group: "b".into(),
                value: None,
            },
        ] {
            e.apply(&mut groups);
        }
        let a = &groups["a"];
        assert_eq!(a.generation(), 4);
        assert_eq!(a.offsets["t"].len(), 1);
        assert_eq!(a.offsets["t"][&0].offset, 5);
        assert!(!groups.contains_key("b"), "a deleted group is gone");
        let live = live_entries(groups.values());
        assert_eq!(live.len(), 2, "the group record and one offset: {live:?}");
    }
}
