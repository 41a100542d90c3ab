//! The consumer-group coordinator, classic groups and KIP-848 consumer groups. Groups are spread over `OFFSET_SLOTS` slots by a hash
//! of their id, and each slot lives on one shard (slot mod shards): that shard keeps the slot's
//! groups in memory and their committed offsets in the slot's log. Requests for a group travel to
//! its shard like partition work does, so no group state is shared between threads.

pub mod assignor;
pub mod consumer;
pub mod consumer_coordinator;
pub mod group;
pub mod request;
pub mod store;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use riffle_protocol::error_code;

use crate::config::BrokerConfig;
use crate::errors;
use crate::metadata::image::MetadataImage;
use crate::Shutdown;
use group::{
    CommittedOffset, Group, GroupSettings, GroupState, JoinRequest, JoinResult, MemberDescription,
    Reply, SyncResult,
};
use riffle_storage::clock::now_ms;
use store::{Entry, GroupRecord, OffsetStore};

/// The protocol type of consumers (classic consumer groups and KIP-848 ones).
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Slots groups are spread over (Kafka: `offsets.topic.num.partitions`). Fixed: changing it would
/// move groups away from their stored offsets.
pub const OFFSET_SLOTS: u32 = 16;

/// How often session and rebalance deadlines are checked.
const TICK: Duration = Duration::from_millis(100);

/// Compact a slot's log when it holds this many records more than twice the live ones.
const COMPACT_SLACK_RECORDS: i64 = 10_000;

pub fn slot_of(group_id: &str) -> u32 {
    crc32c::crc32c(group_id.as_bytes()) % OFFSET_SLOTS
}

/// The shard that coordinates `group_id`.
pub fn shard_of(group_id: &str, shards: usize) -> usize {
    slot_of(group_id) as usize % shards.max(1)
}

/// A row of ListGroups.
#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Kafka's state name (a classic or a consumer group's).
    pub state: &'static str,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
}

/// DescribeGroups of one group.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

/// Committed offsets by topic, then partition (None: nothing committed), as OffsetFetch answers.
pub type CommittedOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

/// One partition's commit in an OffsetCommit.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: CommittedOffset,
}

/// Who commits: Kafka's member id, instance id and generation (-1 and "" for a commit from
/// outside the group).
#[derive(Debug, Clone)]
pub struct Committer {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation: i32,
}

/// Who fetches offsets: OffsetFetch v9+ names a consumer group's member and its epoch; before
/// v9, and for an admin or a client outside the group, no member and epoch -1.
#[derive(Debug, Clone)]
pub struct OffsetFetcher {
    pub member_id: Option<String>,
    pub member_epoch: i32,
}

impl OffsetFetcher {
    /// An admin or a client outside the group.
    pub const OUTSIDER: OffsetFetcher = OffsetFetcher {
        member_id: None,
        member_epoch: -1,
    };
}

/// A group's committed partition: (group id, topic, partition).
type CommitKey = (String, String, i32);

/// The groups of the slots one shard owns.
pub struct GroupCoordinator {
    settings: GroupSettings,
    offsets_retention: Option<Duration>,
    groups: RefCell<HashMap<String, Group>>,
    stores: HashMap<u32, OffsetStore>,
    stopping: Cell<bool>,
    /// Per (group, topic, partition) with a commit in flight: (numbers issued, number visible).
    commits_issued: RefCell<HashMap<CommitKey, (u64, u64)>>,
    /// KIP-848 consumer groups' settings from the broker configuration.
    consumer_settings: consumer::ConsumerGroupSettings,
    /// The metadata image's topics as consumer groups see them, by image version.
    consumer_topics: RefCell<Option<(u64, Rc<consumer::Topics>)>>,
}

impl GroupCoordinator {
    /// Opens this shard's slots and rebuilds their groups from the logs.
    pub async fn open(
        shard: usize,
        shards: usize,
        config: &BrokerConfig,
    ) -> anyhow::Result<Rc<GroupCoordinator>> {
        let mut groups = HashMap::new();
        let mut stores = HashMap::new();
        for slot in (0..OFFSET_SLOTS).filter(|s| *s as usize % shards == shard) {
            let store = OffsetStore::open(&config.data_dir, slot, &mut groups)
                .await
                .map_err(|e| anyhow::anyhow!("opening consumer offsets slot {slot}: {e}"))?;
            stores.insert(slot, store);
        }
        if !groups.is_empty() {
            tracing::info!(shard, groups = groups.len(), "loaded consumer groups");
        }
        Ok(Rc::new(GroupCoordinator {
            settings: GroupSettings {
                min_session_timeout: Duration::from_millis(config.group_min_session_timeout_ms),
                max_session_timeout: Duration::from_millis(config.group_max_session_timeout_ms),
                initial_rebalance_delay: Duration::from_millis(
                    config.group_initial_rebalance_delay_ms,
                ),
            },
            offsets_retention: (config.offsets_retention_minutes > 0)
                .then(|| Duration::from_secs(config.offsets_retention_minutes as u64 * 60)),
            groups: RefCell::new(groups),
            stores,
            stopping: Cell::new(false),
            commits_issued: RefCell::new(HashMap::new()),
            consumer_settings: consumer::ConsumerGroupSettings::from_config(config),
            consumer_topics: RefCell::new(None),
        }))
    }

    fn store_for(&self, group_id: &str) -> &OffsetStore {
        self.stores
            .get(&slot_of(group_id))
            .expect("requests reach the shard that owns the group's slot")
    }

    /// Stores the generations that changed, without making the caller wait: a group that loses
    /// its record comes back at an older generation, which only makes its members rejoin.
    fn persist_changes(self: &Rc<Self>, group_id: &str) {
        let record = {
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(group_id) else {
                return;
            };
            if !g.take_dirty() {
                return;
            }
            Entry::Group {
                group: group_id.to_string(),
                value: Some(GroupRecord {
                    generation: g.generation(),
                    protocol_type: g.protocol_type().map(str::to_string),
                }),
            }
        };
        let this = self.clone();
        let group = group_id.to_string();
        glommio::spawn_local(async move {
            if let Err(e) = this.store_for(&group).write(&[record]).await {
                tracing::warn!(%group, error = %e, "cannot store the group's generation");
            }
        })
        .detach();
    }

    async fn wait<T>(reply: Reply<T>, on_cancel: T) -> T {
        match reply {
            Reply::Now(r) => r,
            Reply::Later(rx) => rx.await.unwrap_or(on_cancel),
        }
    }

    pub async fn join(self: &Rc<Self>, group_id: &str, req: JoinRequest) -> JoinResult {
        if self.stopping.get() {
            return JoinResult::error(error_code::NOT_COORDINATOR, &req.member_id);
        }
        let member_id = req.member_id.clone();
        let reply = {
            let mut groups = self.groups.borrow_mut();
            if !groups.contains_key(group_id) && !req.member_id.is_empty() {
                return JoinResult::error(error_code::UNKNOWN_MEMBER_ID, &member_id);
            }
            groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id.to_string()))
                .join(req, Instant::now(), &self.settings)
        };
        self.persist_changes(group_id);
        let cancelled = JoinResult::error(error_code::REBALANCE_IN_PROGRESS, &member_id);
        Self::wait(reply, cancelled).await
    }

    pub async fn sync(
        self: &Rc<Self>,
        group_id: &str,
        committer: Committer,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        if self.stopping.get() {
            return SyncResult::error(error_code::NOT_COORDINATOR);
        }
        let reply = match self.groups.borrow_mut().get_mut(group_id) {
            None => return SyncResult::error(error_code::UNKNOWN_MEMBER_ID),
            Some(g) => g.sync(
                &committer.member_id,
                committer.group_instance_id.as_deref(),
                committer.generation,
                protocol_type.as_deref(),
                protocol_name.as_deref(),
                assignments,
                Instant::now(),
            ),
        };
        Self::wait(reply, SyncResult::error(error_code::REBALANCE_IN_PROGRESS)).await
    }

    pub fn heartbeat(&self, group_id: &str, member: Committer) -> i16 {
        match self.groups.borrow_mut().get_mut(group_id) {
            None => error_code::UNKNOWN_MEMBER_ID,
            Some(g) => g.heartbeat(
                &member.member_id,
                member.group_instance_id.as_deref(),
                member.generation,
                Instant::now(),
            ),
        }
    }

    /// LeaveGroup: one error code per (member id, instance id), or None if the group is unknown.
    pub fn leave(
        self: &Rc<Self>,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Option<Vec<i16>> {
        let codes = self
            .groups
            .borrow_mut()
            .get_mut(group_id)
            .map(|g| g.leave(members, Instant::now(), &self.settings));
        self.persist_changes(group_id);
        codes
    }

    /// OffsetCommit: checks the committer, stores the offsets durably, and only then makes them
    /// visible (OffsetFetch); a failed write changes nothing. Commits to one partition are
    /// numbered as issued, so that one finishing late never hides a later one (the log has them
    /// in the order issued, and so does the memory).
    pub async fn commit(
        self: &Rc<Self>,
        group_id: &str,
        committer: Committer,
        commits: Vec<OffsetCommit>,
        api_version: i16,
    ) -> Result<(), i16> {
        if self.stopping.get() {
            return Err(error_code::NOT_COORDINATOR);
        }
        let entries: Vec<Entry> = {
            let mut groups = self.groups.borrow_mut();
            // Kafka's rule: a commit without a generation creates a "simple" group.
            let simple = committer.generation < 0;
            let group = match groups.get_mut(group_id) {
                Some(g) => g,
                None if simple => groups
                    .entry(group_id.to_string())
                    .or_insert_with(|| Group::new(group_id.to_string())),
                None if api_version >= 9 => return Err(error_code::GROUP_ID_NOT_FOUND),
                None => return Err(error_code::ILLEGAL_GENERATION),
            };
            group.validate_commit(
                &committer.member_id,
                committer.group_instance_id.as_deref(),
                committer.generation,
                api_version,
            )?;
            group.touch(&committer.member_id, Instant::now());
            commits
                .iter()
                .map(|c| Entry::Offset {
                    group: group_id.to_string(),
                    topic: c.topic.clone(),
                    partition: c.partition,
                    value: Some(c.offset.clone()),
                })
                .collect()
        };
        let numbered = self.number_commits(group_id, commits);
        self.store_for(group_id)
            .write(&entries)
            .await
            .map_err(|e| {
                tracing::error!(group = group_id, error = %e, "cannot store committed offsets");
                errors::storage_error_code(&e)
            })?;
        self.make_visible(group_id, numbered);
        Ok(())
    }

    /// Numbers each commit as issued (per group and partition).
    fn number_commits(
        &self,
        group_id: &str,
        commits: Vec<OffsetCommit>,
    ) -> Vec<(u64, OffsetCommit)> {
        let mut issued = self.commits_issued.borrow_mut();
        commits
            .into_iter()
            .map(|c| {
                let key = (group_id.to_string(), c.topic.clone(), c.partition);
                let number = issued.entry(key).or_default();
                number.0 += 1;
                (number.0, c)
            })
            .collect()
    }

    /// Applies durable commits to the group's offsets, each unless a later-issued one is there.
    fn make_visible(&self, group_id: &str, numbered: Vec<(u64, OffsetCommit)>) {
        let mut issued = self.commits_issued.borrow_mut();
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(group_id) else {
            return; // deleted meanwhile
        };
        for (number, c) in numbered {
            let key = (group_id.to_string(), c.topic.clone(), c.partition);
            let Some(state) = issued.get_mut(&key) else {
                continue;
            };
            if number > state.1 {
                state.1 = number;
                group
                    .offsets
                    .entry(c.topic)
                    .or_default()
                    .insert(c.partition, c.offset);
            }
            if state.0 == state.1 {
                issued.remove(&key); // nothing in flight: no need to remember
            }
        }
    }

    /// OffsetFetch: the committed offset of each requested partition (None: nothing committed),
    /// or of every partition the group committed when `topics` is None. A consumer group's member
    /// fetches with its current epoch (`fetcher`, OffsetFetch v9+).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        fetcher: &OffsetFetcher,
    ) -> Result<CommittedOffsets, i16> {
        let groups = self.groups.borrow();
        let group = groups.get(group_id);
        if let Some(consumer) = group.and_then(|g| g.consumer.as_ref()) {
            consumer.validate_offset_fetch(fetcher.member_id.as_deref(), fetcher.member_epoch)?;
        }
        let offsets = group.map(|g| &g.offsets);
        Ok(match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let committed = offsets.and_then(|o| o.get(&topic));
                    let rows = partitions
                        .into_iter()
                        .map(|p| (p, committed.and_then(|c| c.get(&p)).cloned()))
                        .collect();
                    (topic, rows)
                })
                .collect(),
            None => offsets
                .into_iter()
                .flatten()
                .map(|(topic, parts)| {
                    let rows = parts.iter().map(|(p, o)| (*p, Some(o.clone()))).collect();
                    (topic.clone(), rows)
                })
                .collect(),
        })
    }

    pub fn list(self: &Rc<Self>) -> Vec<GroupListing> {
        self.check_deadlines(None, Instant::now());
        self.groups
            .borrow()
            .values()
            .filter(|g| g.state() != GroupState::Dead)
            .map(|g| match &g.consumer {
                Some(c) => GroupListing {
                    group_id: g.id.clone(),
                    protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
                    state: c.state().name(),
                    group_type: "consumer",
                },
                None => GroupListing {
                    group_id: g.id.clone(),
                    protocol_type: g.protocol_type().unwrap_or("").to_string(),
                    state: g.state().name(),
                    group_type: "classic",
                },
            })
            .collect()
    }

    /// DescribeGroups describes classic groups only; a consumer group is not one (Kafka 4). Err
    /// is Kafka's message for a group it does not describe.
    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, String> {
        let groups = self.groups.borrow();
        let g = groups
            .get(group_id)
            .filter(|g| g.state() != GroupState::Dead)
            .ok_or_else(|| format!("Group {group_id} not found."))?;
        if g.consumer.is_some() {
            return Err(format!("Group {group_id} is not a classic group."));
        }
        Ok(GroupDescription {
            state: g.state(),
            protocol_type: g.protocol_type().unwrap_or("").to_string(),
            protocol_name: g.protocol_name().unwrap_or("").to_string(),
            members: g.describe_members(),
        })
    }

    /// OffsetDelete: removes committed offsets, durably, where Kafka's rules allow it. Err is the
    /// group-level error; otherwise one code per requested partition.
    pub async fn delete_offsets(
        self: &Rc<Self>,
        group_id: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Result<Vec<(String, Vec<(i32, i16)>)>, i16> {
        if self.stopping.get() {
            return Err(error_code::NOT_COORDINATOR);
        }
        let mut entries = Vec::new();
        let results = {
            let mut groups = self.groups.borrow_mut();
            let group = groups
                .get_mut(group_id)
                .ok_or(error_code::GROUP_ID_NOT_FOUND)?;
            group.check_offset_delete_group()?;
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let allowed = group.check_offset_delete(&topic);
                    let codes = partitions
                        .into_iter()
                        .map(|partition| {
                            if let Err(code) = allowed {
                                return (partition, code);
                            }
                            let removed = group
                                .offsets
                                .get_mut(&topic)
                                .and_then(|parts| parts.remove(&partition));
                            if removed.is_some() {
                                entries.push(Entry::Offset {
                                    group: group_id.to_string(),
                                    topic: topic.clone(),
                                    partition,
                                    value: None,
                                });
                            }
                            (partition, error_code::NONE)
                        })
                        .collect();
                    (topic, codes)
                })
                .collect::<Vec<_>>()
        };
        if let Some(g) = self.groups.borrow_mut().get_mut(group_id) {
            g.offsets.retain(|_, parts| !parts.is_empty());
        }
        self.store_for(group_id)
            .write(&entries)
            .await
            .map_err(|e| {
                tracing::error!(group = group_id, error = %e, "cannot delete committed offsets");
                errors::storage_error_code(&e)
            })?;
        Ok(results)
    }

    /// DeleteGroups: an empty group and its offsets go, durably.
    pub async fn delete(self: &Rc<Self>, group_id: &str) -> i16 {
        self.check_deadlines(Some(group_id), Instant::now());
        let entries = {
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(group_id) else {
                return error_code::GROUP_ID_NOT_FOUND;
            };
            if let Err(code) = g.mark_dead() {
                return code;
            }
            let g = groups.remove(group_id).expect("just seen");
            tombstones(&g)
        };
        match self.store_for(group_id).write(&entries).await {
            Ok(()) => error_code::NONE,
            Err(e) => {
                tracing::error!(group = group_id, error = %e, "cannot delete the group's offsets");
                errors::storage_error_code(&e)
            }
        }
    }

    /// Session and rebalance deadlines, until the broker stops; then every waiting request is
    /// answered so that the connections can finish.
    pub async fn run_timers(self: Rc<Self>, shutdown: Shutdown) {
        use futures::future::{select, Either};
        let mut shutdown = shutdown;
        loop {
            let sleep = Box::pin(glommio::timer::sleep(TICK));
            match select(sleep, shutdown).await {
                Either::Left((_, rest)) => shutdown = rest,
                Either::Right(_) => break,
            }
            self.check_deadlines(None, Instant::now());
        }
        self.stopping.set(true);
        for g in self.groups.borrow_mut().values_mut() {
            g.shutdown();
        }
    }

    /// Session, rebalance and revocation deadlines of `group_id` (of every group when None) at
    /// `now`. The timer checks them every `TICK`; answers that report membership (DescribeGroups,
    /// ListGroups, DeleteGroups) check them first, so that a member whose session has just ended
    /// is gone from them, as it is from Kafka's, whose timers fire at the deadline.
    pub(super) fn check_deadlines(self: &Rc<Self>, group_id: Option<&str>, now: Instant) {
        let changed: Vec<String> = {
            let mut groups = self.groups.borrow_mut();
            let tick = |g: &mut Group| {
                g.tick(now, &self.settings);
                if let Some(consumer) = g.consumer.as_mut() {
                    consumer.tick(now);
                }
                g.is_dirty().then(|| g.id.clone())
            };
            match group_id {
                Some(id) => groups.get_mut(id).and_then(tick).into_iter().collect(),
                None => groups.values_mut().filter_map(tick).collect(),
            }
        };
        for id in changed {
            self.persist_changes(&id);
        }
    }

    /// Offsets retention and log compaction (from the shard's housekeeping).
    pub async fn housekeeping(self: &Rc<Self>) {
        self.expire_offsets().await;
        for (slot, store) in &self.stores {
            let live: Vec<Entry> = {
                let groups = self.groups.borrow();
                let in_slot = groups.values().filter(|g| slot_of(&g.id) == *slot);
                store::live_entries(in_slot)
            };
            if store.record_span() > 2 * live.len() as i64 + COMPACT_SLACK_RECORDS {
                match store.compact(live).await {
                    Ok(()) => tracing::debug!(slot, "compacted the consumer offsets log"),
                    Err(e) => tracing::warn!(slot, error = %e, "compacting consumer offsets"),
                }
            }
        }
    }

    /// The committed offsets of topics that are not in `image` (deleted) go from every group of
    /// this shard. Idempotent: runs at start-up and on every metadata change.
    pub async fn forget_topics_not_in(self: &Rc<Self>, image: &MetadataImage) {
        let gone: BTreeSet<String> = self
            .groups
            .borrow()
            .values()
            .flat_map(|g| g.offsets.keys())
            .filter(|t| image.topic(t).is_none())
            .cloned()
            .collect();
        for topic in gone {
            self.forget_topic(&topic).await;
        }
    }

    /// A deleted topic's committed offsets go from every group of this shard.
    async fn forget_topic(self: &Rc<Self>, topic: &str) {
        let mut by_slot: HashMap<u32, Vec<Entry>> = HashMap::new();
        for g in self.groups.borrow_mut().values_mut() {
            if let Some(parts) = g.offsets.remove(topic) {
                by_slot
                    .entry(slot_of(&g.id))
                    .or_default()
                    .extend(parts.into_keys().map(|partition| Entry::Offset {
                        group: g.id.clone(),
                        topic: topic.to_string(),
                        partition,
                        value: None,
                    }));
            }
        }
        self.write_by_slot(by_slot, "forgetting a deleted topic's offsets")
            .await;
    }

    async fn write_by_slot(&self, by_slot: HashMap<u32, Vec<Entry>>, what: &str) {
        for (slot, entries) in by_slot {
            if let Some(store) = self.stores.get(&slot) {
                if let Err(e) = store.write(&entries).await {
                    tracing::warn!(slot, error = %e, "{what}");
                }
            }
        }
    }

    /// `offsets.retention.minutes`: offsets of an empty group expire that long after their
    /// commit; a group left with nothing is forgotten.
    async fn expire_offsets(self: &Rc<Self>) {
        let Some(retention) = self.offsets_retention else {
            return;
        };
        let cutoff = now_ms() - retention.as_millis() as i64;
        let mut by_slot: HashMap<u32, Vec<Entry>> = HashMap::new();
        {
            let mut groups = self.groups.borrow_mut();
            for g in groups.values_mut() {
                if !g.is_empty() {
                    continue;
                }
                let mut expired = Vec::new();
                for (topic, parts) in g.offsets.iter_mut() {
                    parts.retain(|partition, o| {
                        let keep = o.commit_timestamp_ms > cutoff;
                        if !keep {
                            expired.push(Entry::Offset {
                                group: g.id.clone(),
                                topic: topic.clone(),
                                partition: *partition,
                                value: None,
                            });
                        }
                        keep
                    });
                }
                g.offsets.retain(|_, parts| !parts.is_empty());
                if !expired.is_empty() {
                    by_slot.entry(slot_of(&g.id)).or_default().extend(expired);
                }
            }
            let forgotten: Vec<String> = groups
                .values()
                .filter(|g| g.is_empty() && g.offsets.is_empty())
                .filter(|g| by_slot.contains_key(&slot_of(&g.id)))
                .map(|g| g.id.clone())
                .collect();
            for id in forgotten {
                groups.remove(&id);
                by_slot.entry(slot_of(&id)).or_default().push(Entry::Group {
                    group: id,
                    value: None,
                });
            }
        }
        self.write_by_slot(by_slot, "cannot store expired offsets")
            .await;
    }

    pub async fn close(&self) {
        for store in self.stores.values() {
            store.close().await;
        }
    }
}

/// Everything that deletes a group from its slot's log.
fn tombstones(g: &Group) -> Vec<Entry> {
    let mut out: Vec<Entry> = g
        .offsets
        .iter()
        .flat_map(|(topic, parts)| {
            parts.keys().map(|p| Entry::Offset {
                group: g.id.clone(),
                topic: topic.clone(),
                partition: *p,
                value: None,
            })
        })
        .collect();
    out.push(Entry::Group {
        group: g.id.clone(),
        value: None,
    });
    out
}

#[cfg(test)]
mod tests {
    use glommio::{LocalExecutorBuilder, Placement};

    use super::*;

    fn commit_of(offset: i64) -> OffsetCommit {
        OffsetCommit {
            topic: "t".to_string(),
            partition: 0,
            offset: CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: None,
                commit_timestamp_ms: 0,
            },
        }
    }

    fn visible_offset(c: &GroupCoordinator) -> Option<i64> {
        let topics = Some(vec![("t".to_string(), vec![0])]);
        let fetched = c
            .fetch_offsets("g", topics, &OffsetFetcher::OUTSIDER)
            .unwrap();
        fetched[0].1[0].1.as_ref().map(|o| o.offset)
    }

    #[test]
    fn a_commit_that_becomes_durable_late_never_hides_a_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        };
        LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(1 << 20)
            .spawn(move || async move {
                let c = GroupCoordinator::open(0, 1, &config).await.unwrap();
                c.groups
                    .borrow_mut()
                    .insert("g".to_string(), Group::new("g".to_string()));
                let first = c.number_commits("g", vec![commit_of(10)]);
                let second = c.number_commits("g", vec![commit_of(20)]);
                assert_eq!(
                    visible_offset(&c),
                    None,
                    "nothing is visible before it is durable"
                );
                c.make_visible("g", second);
                assert_eq!(visible_offset(&c), Some(20));
                c.make_visible("g", first);
                assert_eq!(visible_offset(&c), Some(20), "the earlier commit came late");
                assert!(c.commits_issued.borrow().is_empty());
                c.close().await;
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn a_member_whose_session_ended_is_gone_from_the_answers_before_the_timer_runs() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            group_consumer_session_timeout_ms: 20,
            ..BrokerConfig::default()
        };
        LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(1 << 20)
            .spawn(move || async move {
                // No `run_timers` here: only the answers' own deadline check can see it end.
                let c = GroupCoordinator::open(0, 1, &config).await.unwrap();
                let join = consumer::Heartbeat {
                    member_id: "m".to_string(),
                    rebalance_timeout_ms: 30_000,
                    subscribed_topic_names: Some(vec!["t".to_string()]),
                    owned: Some(Default::default()),
                    api_version: 1,
                    ..Default::default()
                };
                let image = MetadataImage::default();
                c.consumer_heartbeat("g", join, &image).unwrap();
                assert_eq!(c.list()[0].state, "Stable");
                assert_eq!(c.delete("g").await, error_code::NON_EMPTY_GROUP);
                glommio::timer::sleep(Duration::from_millis(60)).await;
                assert_eq!(c.list()[0].state, "Empty", "ListGroups");
                assert_eq!(c.delete("g").await, error_code::NONE, "DeleteGroups");
                c.close().await;
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
