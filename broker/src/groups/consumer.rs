//! One KIP-848 consumer group (ConsumerGroupHeartbeat), without I/O: members, their subscriptions,
//! the group epoch, the target assignment and its epoch, and each member's reconciliation towards
//! its target. A partition goes to a member only once its previous owner has revoked it. Time and
//! the topics of the metadata image come in as arguments, so unit tests drive it as the
//! coordinator shard does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use riffle_protocol::error_code;

use super::assignor::{Assignment, Assignor, TopicId};

/// The epoch a member sends to leave the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// The epoch a static member sends to leave for now, keeping its assignment until its session
/// ends, so that it can come back (same instance id) without a rebalance.
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// The first OffsetCommit and OffsetFetch version that carries a member id and epoch (KIP-848):
/// a consumer-protocol member must commit with it.
pub const MEMBER_EPOCH_OFFSET_API_VERSION: i16 = 9;

/// What the broker configuration and the group's configs decide.
#[derive(Debug, Clone)]
pub struct ConsumerGroupSettings {
    /// `group.consumer.heartbeat.interval.ms` (group config `consumer.heartbeat.interval.ms`).
    pub heartbeat_interval: Duration,
    /// `group.consumer.session.timeout.ms` (group config `consumer.session.timeout.ms`).
    pub session_timeout: Duration,
    /// `group.consumer.max.size`: members one group may hold.
    pub max_size: usize,
}

/// A topic of the metadata image as the group needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: TopicId,
    pub partitions: i32,
}

/// The topics of the metadata image, by name.
pub type Topics = BTreeMap<String, TopicInfo>;

/// A ConsumerGroupHeartbeat, as the group needs it. `None` fields did not change since the
/// member's last heartbeat.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
    /// Version 1 (KIP-1082): the member names itself; version 0: the coordinator does.
    pub api_version: i16,
}

/// The answer to a ConsumerGroupHeartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The partitions the member may use now; None: unchanged since it last heard.
    pub assignment: Option<Assignment>,
}

/// A Kafka error with its message, as ConsumerGroupHeartbeat reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupError {
    pub code: i16,
    pub message: String,
}

impl GroupError {
    pub fn new(code: i16, message: impl Into<String>) -> Self {
        GroupError {
            code,
            message: message.into(),
        }
    }
}

fn invalid(message: &str) -> GroupError {
    GroupError::new(error_code::INVALID_REQUEST, message)
}

/// Where a member is on its way to its target assignment (Kafka's MemberState).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Owns its target at the assignment epoch.
    Stable,
    /// Must give up `revoking` before it moves to the new epoch.
    UnrevokedPartitions,
    /// At the new epoch, waiting for partitions that other members still hold.
    UnreleasedPartitions,
}

/// One member of a consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    regex: Option<regex::Regex>,
    /// The regex came with the heartbeat being served: its topics count from the next one.
    regex_pending: bool,
    pub server_assignor: Option<String>,
    rebalance_timeout: Duration,
    session_timeout: Duration,
    pub epoch: i32,
    previous_epoch: i32,
    pub state: MemberState,
    /// The partitions it may use.
    pub assigned: Assignment,
    /// The partitions it must give up (still its own until it says so).
    revoking: Assignment,
    /// A static member that left with epoch -2: kept, with its assignment, until its session ends.
    left_static: bool,
    session_expires_at: Instant,
    revocation_deadline: Option<Instant>,
}

impl ConsumerMember {
    /// A member that just joined: nothing subscribed or assigned yet, at epoch 0.
    fn new(
        id: &str,
        instance_id: Option<String>,
        now: Instant,
        settings: &ConsumerGroupSettings,
    ) -> Self {
        ConsumerMember {
            id: id.to_string(),
            instance_id,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            regex: None,
            regex_pending: false,
            server_assignor: None,
            rebalance_timeout: Duration::ZERO,
            session_timeout: settings.session_timeout,
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            left_static: false,
            session_expires_at: now + settings.session_timeout,
            revocation_deadline: None,
        }
    }

    fn subscribes_to(&self, topic: &str) -> bool {
        self.subscribed_topic_names.iter().any(|t| t == topic) || self.regex_matches(topic)
    }

    fn regex_matches(&self, topic: &str) -> bool {
        !self.regex_pending && self.regex.as_ref().is_some_and(|r| r.is_match(topic))
    }

    /// Takes what the heartbeat changed (None fields did not) and renews the session; true if
    /// the subscription or the assignor changed, which moves the group epoch.
    fn update(
        &mut self,
        hb: &Heartbeat,
        regex: Option<regex::Regex>,
        now: Instant,
        settings: &ConsumerGroupSettings,
    ) -> bool {
        let mut changed = false;
        // A static member that left (-2) and heartbeats again under its own id is back.
        self.left_static = false;
        if let Some(mut names) = hb.subscribed_topic_names.clone() {
            names.sort();
            names.dedup();
            if names != self.subscribed_topic_names {
                self.subscribed_topic_names = names;
                changed = true;
            }
        }
        if let Some(pattern) = hb.subscribed_topic_regex.clone() {
            let pattern = Some(pattern).filter(|p| !p.is_empty());
            if pattern != self.subscribed_topic_regex {
                self.regex = regex;
                self.regex_pending = self.regex.is_some();
                self.subscribed_topic_regex = pattern;
                changed = true;
            }
        }
        if let Some(name) = hb.server_assignor.as_deref() {
            if self.server_assignor.as_deref() != Some(name) {
                self.server_assignor = Some(name.to_string());
                changed = true;
            }
        }
        if hb.rebalance_timeout_ms >= 0 {
            self.rebalance_timeout = Duration::from_millis(hb.rebalance_timeout_ms as u64);
        }
        if hb.rack_id.is_some() {
            self.rack_id = hb.rack_id.clone();
        }
        self.client_id = hb.client_id.clone();
        self.client_host = hb.client_host.clone();
        self.session_timeout = settings.session_timeout;
        self.session_expires_at = now + settings.session_timeout;
        changed
    }

    /// Everything it holds: assigned and still revoking.
    fn holds(&self) -> impl Iterator<Item = (TopicId, i32)> + '_ {
        self.assigned
            .iter()
            .chain(self.revoking.iter())
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
    }
}

/// The state Kafka reports for a consumer group (ListGroups, ConsumerGroupDescribe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    /// The group epoch moved; the target assignment is not computed yet.
    Assigning,
    /// Some members have not reached their target.
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// A consumer group's membership and assignment (its committed offsets live with the classic
/// group state, in `Group`).
#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    /// Moves on every change of membership, subscriptions or subscribed topics' metadata.
    pub epoch: i32,
    /// The group epoch the target assignment was computed at.
    pub assignment_epoch: i32,
    members: BTreeMap<String, ConsumerMember>,
    target: BTreeMap<String, Assignment>,
    /// The subscribed topics as the target was computed for them.
    subscribed: Topics,
    /// A new regex was resolved since the last heartbeat: the next one moves the group epoch.
    regexes_resolved: bool,
}

/// Fails with INVALID_REQUEST as Kafka does for a heartbeat that breaks the protocol's rules.
pub fn validate(hb: &Heartbeat) -> Result<(), GroupError> {
    if hb.api_version >= 1 && hb.member_id.is_empty() {
        return Err(invalid("MemberId can't be empty."));
    }
    if hb.instance_id.as_deref() == Some("") {
        return Err(invalid("InstanceId can't be empty."));
    }
    if hb.rack_id.as_deref() == Some("") {
        return Err(invalid("RackId can't be empty."));
    }
    match hb.member_epoch {
        0 => {
            if hb.rebalance_timeout_ms == -1 {
                return Err(invalid(
                    "RebalanceTimeoutMs must be provided in first request.",
                ));
            }
            // Present and empty: a join reports what it owns, nothing (Kafka refuses null too).
            if hb.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                return Err(invalid("TopicPartitions must be empty when (re-)joining."));
            }
            if hb.subscribed_topic_names.is_none() && hb.subscribed_topic_regex.is_none() {
                return Err(invalid(
                    "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when \
                     (re-)joining.",
                ));
            }
        }
        LEAVE_GROUP_STATIC_MEMBER_EPOCH if hb.instance_id.is_none() => {
            return Err(invalid(
                "InstanceId can't be null when MemberEpoch is -2 (static member leaving).",
            ));
        }
        e if e < LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
            return Err(invalid(&format!("MemberEpoch {e} is invalid.")));
        }
        _ if hb.member_id.is_empty() => return Err(invalid("MemberId can't be empty.")),
        _ => {}
    }
    if hb.rebalance_timeout_ms < -1 {
        return Err(invalid("RebalanceTimeoutMs can't be negative."));
    }
    Ok(())
}

impl ConsumerGroup {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn members(&self) -> impl Iterator<Item = &ConsumerMember> {
        self.members.values()
    }

    pub fn target_of(&self, member_id: &str) -> Assignment {
        self.target.get(member_id).cloned().unwrap_or_default()
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self.members.values().any(|m| {
            m.state != MemberState::Stable || (!m.left_static && m.epoch != self.assignment_epoch)
        }) {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// The assignor in use: the one most members ask for (ties: the first served), as Kafka does.
    pub fn assignor(&self) -> Assignor {
        Assignor::ALL
            .into_iter()
            .enumerate()
            .max_by_key(|(i, a)| {
                let votes = self
                    .members
                    .values()
                    .filter(|m| m.server_assignor.as_deref() == Some(a.name()))
                    .count();
                (votes, std::cmp::Reverse(*i))
            })
            .map(|(_, a)| a)
            .unwrap_or(Assignor::Uniform)
    }

    /// True if a member subscribes to `topic` (OffsetDelete keeps such offsets).
    pub fn subscribes_to(&self, topic: &str) -> bool {
        self.members.values().any(|m| m.subscribes_to(topic))
    }

    /// ConsumerGroupHeartbeat: join (epoch 0), heartbeat, or leave (-1, or -2 for a static member).
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        now: Instant,
        topics: &Topics,
        settings: &ConsumerGroupSettings,
    ) -> Result<HeartbeatAnswer, GroupError> {
        validate(&hb)?;
        if matches!(
            hb.member_epoch,
            LEAVE_GROUP_MEMBER_EPOCH | LEAVE_GROUP_STATIC_MEMBER_EPOCH
        ) {
            return self.leave(&hb);
        }
        let joining = hb.member_epoch == 0;
        // Checked before the member is looked up, so that a refused join leaves nothing behind.
        let regex = check_subscription(&hb)?;
        let (member_id, added) = self.member_for(&hb, now, settings)?;
        let member = self.members.get_mut(&member_id).expect("found or added");
        let bump = member.update(&hb, regex, now, settings) || added;
        let before = member.assigned.clone();
        let subscribed = self.subscribed_topics(topics);
        // A change of the subscribed topics' metadata (created, deleted, more partitions) moves
        // the epoch too, unless it already moved.
        let metadata_changed = subscribed != self.subscribed && self.epoch == self.assignment_epoch;
        self.subscribed = subscribed;
        let regexes_resolved = std::mem::take(&mut self.regexes_resolved);
        if bump || metadata_changed || regexes_resolved {
            self.epoch += 1;
        }
        if self.epoch > self.assignment_epoch {
            self.compute_target();
        }
        self.reconcile(&member_id, hb.owned.as_ref(), now);
        self.resolve_regexes();
        let member = &self.members[&member_id];
        let full = hb.rebalance_timeout_ms != -1
            && (hb.subscribed_topic_names.is_some() || hb.subscribed_topic_regex.is_some())
            && hb.owned.is_some();
        let changed = member.assigned != before;
        Ok(HeartbeatAnswer {
            member_id: member_id.clone(),
            member_epoch: member.epoch,
            heartbeat_interval_ms: settings.heartbeat_interval.as_millis() as i32,
            assignment: (joining || full || changed).then(|| member.assigned.clone()),
        })
    }

    /// The member a heartbeat is from: found (its epoch checked), or added when it joins (then
    /// true).
    fn member_for(
        &mut self,
        hb: &Heartbeat,
        now: Instant,
        settings: &ConsumerGroupSettings,
    ) -> Result<(String, bool), GroupError> {
        let joining = hb.member_epoch == 0;
        let member_id = if hb.member_id.is_empty() {
            super::group::random_uuid()
        } else {
            hb.member_id.clone()
        };
        if let Some(iid) = hb.instance_id.as_deref() {
            if self.claim_instance(iid, &member_id, joining)? {
                return Ok((member_id, false));
            }
        }
        match self.members.get(&member_id) {
            Some(m) => {
                if !joining {
                    check_epoch(m, hb)?;
                }
            }
            None if !joining => {
                return Err(GroupError::new(
                    error_code::UNKNOWN_MEMBER_ID,
                    format!("Member {member_id} is not a member of the group."),
                ));
            }
            None if self.members.len() >= settings.max_size => {
                return Err(GroupError::new(
                    error_code::GROUP_MAX_SIZE_REACHED,
                    format!(
                        "The group has reached its maximum size of {} members.",
                        settings.max_size
                    ),
                ));
            }
            None => {
                let member = ConsumerMember::new(&member_id, hb.instance_id.clone(), now, settings);
                self.members.insert(member_id.clone(), member);
                return Ok((member_id, true));
            }
        }
        Ok((member_id, false))
    }

    /// A static member's instance id: Ok(true) when `member_id` takes the place of the member
    /// that left with it (-2), keeping its assignment and epoch, without a rebalance; Ok(false)
    /// when the instance id is free or already this member's.
    fn claim_instance(
        &mut self,
        iid: &str,
        member_id: &str,
        joining: bool,
    ) -> Result<bool, GroupError> {
        let holder = self
            .members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(iid))
            .map(|m| (m.id.clone(), m.left_static));
        match holder {
            None => Ok(false),
            Some((id, _)) if id == member_id => Ok(false),
            Some((old_id, true)) if joining => {
                let mut m = self.members.remove(&old_id).expect("just found");
                m.id = member_id.to_string();
                m.left_static = false;
                self.members.insert(member_id.to_string(), m);
                if let Some(t) = self.target.remove(&old_id) {
                    self.target.insert(member_id.to_string(), t);
                }
                Ok(true)
            }
            Some(_) if joining => Err(GroupError::new(
                error_code::UNRELEASED_INSTANCE_ID,
                format!("Static member with instance id {iid} is still in the group."),
            )),
            Some(_) => Err(GroupError::new(
                error_code::FENCED_INSTANCE_ID,
                format!("Instance id {iid} belongs to another member."),
            )),
        }
    }

    fn leave(&mut self, hb: &Heartbeat) -> Result<HeartbeatAnswer, GroupError> {
        let unknown = || {
            GroupError::new(
                error_code::UNKNOWN_MEMBER_ID,
                format!("Member {} is not a member of the group.", hb.member_id),
            )
        };
        let id = match hb.instance_id.as_deref() {
            Some(iid) => {
                let m = self
                    .members
                    .values()
                    .find(|m| m.instance_id.as_deref() == Some(iid))
                    .ok_or_else(unknown)?;
                if m.id != hb.member_id {
                    return Err(GroupError::new(
                        error_code::FENCED_INSTANCE_ID,
                        format!("Instance id {iid} belongs to another member."),
                    ));
                }
                m.id.clone()
            }
            None => {
                if !self.members.contains_key(&hb.member_id) {
                    return Err(unknown());
                }
                hb.member_id.clone()
            }
        };
        if hb.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            self.members.get_mut(&id).expect("found").left_static = true;
        } else {
            self.remove_member(&id);
        }
        Ok(HeartbeatAnswer {
            member_id: id,
            member_epoch: hb.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// A member goes (left, or fenced): its partitions are free, the group epoch moves. (Topics
    /// only it subscribed to stay in `subscribed` until the next heartbeat; nobody gets them.)
    fn remove_member(&mut self, id: &str) {
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            self.epoch += 1;
            if self.members.is_empty() {
                // Nothing to assign: an empty group is at its target.
                self.assignment_epoch = self.epoch;
            }
        }
    }

    /// Sessions that ended and revocations that took longer than the member's rebalance timeout:
    /// those members are fenced. Returns true if any was.
    pub fn tick(&mut self, now: Instant) -> bool {
        let fenced: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_expires_at <= now || m.revocation_deadline.is_some_and(|d| d <= now)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &fenced {
            tracing::info!(member = %id, "consumer group member fenced (session or revocation timeout)");
            self.remove_member(id);
        }
        !fenced.is_empty()
    }

    /// The topics some member subscribes to, as the image has them.
    fn subscribed_topics(&self, topics: &Topics) -> Topics {
        let mut out = Topics::new();
        for m in self.members.values() {
            for name in &m.subscribed_topic_names {
                if let Some(t) = topics.get(name) {
                    out.insert(name.clone(), *t);
                }
            }
            if m.regex.is_some() {
                out.extend(
                    topics
                        .iter()
                        .filter(|(name, _)| m.regex_matches(name))
                        .map(|(n, t)| (n.clone(), *t)),
                );
            }
        }
        out
    }

    /// Kafka resolves a new regex asynchronously, after the heartbeat that brought it, and moves
    /// the group epoch when the result is in: the topics named literally are assigned first,
    /// those the regex matches at the next heartbeat (librdkafka's suite expects exactly that).
    fn resolve_regexes(&mut self) {
        for m in self.members.values_mut().filter(|m| m.regex_pending) {
            m.regex_pending = false;
            self.regexes_resolved = true;
        }
    }

    fn compute_target(&mut self) {
        let subscriptions: BTreeMap<String, BTreeSet<TopicId>> = self
            .members
            .values()
            .map(|m| {
                let ids = self
                    .subscribed
                    .iter()
                    .filter(|(name, _)| m.subscribes_to(name))
                    .map(|(_, t)| t.id)
                    .collect();
                (m.id.clone(), ids)
            })
            .collect();
        let partitions = self
            .subscribed
            .values()
            .map(|t| (t.id, t.partitions))
            .collect();
        self.target = self
            .assignor()
            .assign(&subscriptions, &partitions, &self.target);
        self.assignment_epoch = self.epoch;
    }

    /// Moves a member towards its target (Kafka's CurrentAssignmentBuilder): first it revokes
    /// what it must give up, keeping its epoch; then it moves to the assignment epoch with the
    /// target partitions that no other member holds, and gets the others when they are released.
    fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now: Instant) {
        let target_epoch = self.assignment_epoch;
        let target = self.target_of(id);
        let held_by_others: BTreeSet<(TopicId, i32)> = self
            .members
            .values()
            .filter(|m| m.id != id)
            .flat_map(ConsumerMember::holds)
            .collect();
        let m = self.members.get_mut(id).expect("a member");
        if m.state == MemberState::UnrevokedPartitions {
            let revoked = owned.is_some_and(|o| !intersects(o, &m.revoking));
            if !revoked {
                return;
            }
            m.revoking.clear();
            m.revocation_deadline = None;
            m.state = MemberState::Stable;
        }
        if m.state == MemberState::Stable && m.epoch == target_epoch {
            return;
        }
        let keep = intersection(&m.assigned, &target);
        let revoke = difference(&m.assigned, &target);
        if !revoke.is_empty() {
            m.assigned = keep;
            m.revoking = revoke;
            m.state = MemberState::UnrevokedPartitions;
            m.revocation_deadline = Some(now + m.rebalance_timeout);
            return;
        }
        let mut assigned = keep;
        let mut missing = false;
        for (topic, parts) in &target {
            for p in parts {
                if held_by_others.contains(&(*topic, *p)) {
                    missing = true;
                } else {
                    assigned.entry(*topic).or_default().insert(*p);
                }
            }
        }
        m.assigned = assigned;
        if m.epoch != target_epoch {
            m.previous_epoch = m.epoch;
            m.epoch = target_epoch;
        }
        m.state = if missing {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
    }

    /// OffsetCommit by a member: its id and current epoch (Kafka's rules), in OffsetCommit v9 or
    /// later (the first to carry a member epoch); a commit without an epoch (an admin, a consumer
    /// without group management) only while the group has no members.
    pub fn validate_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
        api_version: i16,
    ) -> Result<(), i16> {
        if member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let m = self
            .members
            .get(member_id)
            .ok_or(error_code::UNKNOWN_MEMBER_ID)?;
        if api_version < MEMBER_EPOCH_OFFSET_API_VERSION {
            return Err(error_code::UNSUPPORTED_VERSION);
        }
        if member_epoch != m.epoch {
            return Err(error_code::STALE_MEMBER_EPOCH);
        }
        Ok(())
    }

    /// OffsetFetch v9+ by a member (Kafka's rules): no member id and no epoch (an admin, a client
    /// outside the group) may always fetch; a member fetches with its current epoch.
    pub fn validate_offset_fetch(
        &self,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), i16> {
        if member_id.is_none() && member_epoch < 0 {
            return Ok(());
        }
        let m = member_id
            .and_then(|id| self.members.get(id))
            .ok_or(error_code::UNKNOWN_MEMBER_ID)?;
        if member_epoch != m.epoch {
            return Err(error_code::STALE_MEMBER_EPOCH);
        }
        Ok(())
    }
}

/// The heartbeat's regex, compiled (INVALID_REGULAR_EXPRESSION), and its assignor, known
/// (UNSUPPORTED_ASSIGNOR).
fn check_subscription(hb: &Heartbeat) -> Result<Option<regex::Regex>, GroupError> {
    if let Some(name) = hb.server_assignor.as_deref() {
        if Assignor::from_name(name).is_none() {
            return Err(GroupError::new(
                error_code::UNSUPPORTED_ASSIGNOR,
                format!("ServerAssignor {name} is not supported."),
            ));
        }
    }
    let Some(pattern) = hb
        .subscribed_topic_regex
        .as_deref()
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    regex::Regex::new(pattern).map(Some).map_err(|e| {
        GroupError::new(
            error_code::INVALID_REGULAR_EXPRESSION,
            format!("SubscribedTopicRegex is not a valid regular expression: {e}"),
        )
    })
}

/// Kafka's epoch check: a newer epoch than the member's is fenced; an older one only passes when
/// it is the member's previous epoch and it owns nothing it was not given (a lost response).
fn check_epoch(m: &ConsumerMember, hb: &Heartbeat) -> Result<(), GroupError> {
    let fenced = || {
        GroupError::new(
            error_code::FENCED_MEMBER_EPOCH,
            format!(
                "The consumer group member has an epoch ({}) that is not the one of the group ({}).",
                hb.member_epoch, m.epoch
            ),
        )
    };
    if hb.member_epoch > m.epoch {
        return Err(fenced());
    }
    if hb.member_epoch < m.epoch {
        let owned_ok = hb
            .owned
            .as_ref()
            .is_some_and(|o| difference(o, &m.assigned).is_empty());
        if hb.member_epoch != m.previous_epoch || !owned_ok {
            return Err(fenced());
        }
    }
    Ok(())
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|qs| !ps.is_disjoint(qs)))
}

fn intersection(a: &Assignment, b: &Assignment) -> Assignment {
    a.iter()
        .filter_map(|(t, ps)| {
            let common: BTreeSet<i32> = ps.intersection(b.get(t)?).copied().collect();
            (!common.is_empty()).then_some((*t, common))
        })
        .collect()
}

fn difference(a: &Assignment, b: &Assignment) -> Assignment {
    a.iter()
        .filter_map(|(t, ps)| {
            let rest: BTreeSet<i32> = match b.get(t) {
                Some(qs) => ps.difference(qs).copied().collect(),
                None => ps.clone(),
            };
            (!rest.is_empty()).then_some((*t, rest))
        })
        .collect()
}

#[cfg(test)]
mod tests;
