//! One classic consumer group: Kafka's group membership state machine (Empty → PreparingRebalance
//! → CompletingRebalance → Stable), without I/O. Time comes in as `now`; a request that must wait
//! for the rebalance gets a receiver that the state machine completes later, so the same code runs
//! in unit tests and on the coordinator shard.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::oneshot;
use riffle_protocol::error_code;

use super::consumer::ConsumerGroup;

/// Limits from the broker configuration that decide what a join may ask for.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members before it completes.
    pub initial_rebalance_delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    /// Deleted: requests that still reach it are told to find the coordinator again.
    Dead,
}

impl GroupState {
    /// The name Kafka's DescribeGroups and ListGroups report.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A JoinGroup request, as the state machine needs it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    /// -1 (JoinGroup v0) means "the session timeout".
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED and its id (KIP-394).
    pub require_known_member_id: bool,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinResult {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only the leader gets the members: (member id, group instance id, metadata).
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    pub fn error(code: i16, member_id: &str) -> Self {
        JoinResult {
            error_code: code,
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncResult {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(code: i16) -> Self {
        SyncResult {
            error_code: code,
            ..Default::default()
        }
    }
}

/// An answer now, or one the group gives when the rebalance gets there.
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// A committed offset (OffsetCommit), as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

/// What DescribeGroups shows of a member.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    /// Set while its JoinGroup waits for the join phase to end.
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    /// Set while its SyncGroup waits for the leader's assignment.
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
    /// Sent SyncGroup in this generation.
    synced: bool,
    /// Removed when no heartbeat (or other request) arrives before this.
    expires_at: Instant,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// A member waiting for a rebalance answer is not expected to heartbeat meanwhile.
    fn waiting(&self) -> bool {
        self.join_waiter.is_some() || self.sync_waiter.is_some()
    }

    fn answer_join(&mut self, result: JoinResult) {
        if let Some(w) = self.join_waiter.take() {
            let _ = w.send(result);
        }
    }

    fn answer_sync(&mut self, result: SyncResult) {
        if let Some(w) = self.sync_waiter.take() {
            let _ = w.send(result);
        }
    }
}

/// The join phase of a rebalance: when it ends at the latest, and, for the first rebalance of an
/// empty group, the initial delay that new arrivals extend.
struct JoinPhase {
    deadline: Instant,
    initial_delay_until: Option<Instant>,
}

pub struct Group {
    pub id: String,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    /// In join order: the first member leads when the leader is gone.
    members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they rejoin or their session ends.
    pending: HashMap<String, Instant>,
    join_phase: Option<JoinPhase>,
    /// CompletingRebalance: members that have not sent SyncGroup by then are removed.
    sync_deadline: Option<Instant>,
    /// Committed offsets by topic and partition.
    pub offsets: BTreeMap<String, BTreeMap<i32, CommittedOffset>>,
    /// The generation or protocol type changed since the coordinator last stored it.
    dirty: bool,
    /// Set while this is a KIP-848 consumer group (ConsumerGroupHeartbeat): its members and
    /// assignment; the classic state then stays Empty.
    pub consumer: Option<ConsumerGroup>,
}

impl Group {
    pub fn new(id: String) -> Self {
        Group {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            join_phase: None,
            sync_deadline: None,
            offsets: BTreeMap::new(),
            dirty: false,
            consumer: None,
        }
    }

    /// A group brought back from the offsets log: empty, at its last generation.
    pub fn restored(id: String, generation: i32, protocol_type: Option<String>) -> Self {
        let mut group = Group::new(id);
        group.generation = generation;
        group.protocol_type = protocol_type;
        group
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    /// No member of either protocol.
    pub fn is_empty(&self) -> bool {
        self.state == GroupState::Empty && self.consumer.as_ref().is_none_or(|c| c.is_empty())
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    /// True once after the generation or protocol type changed (the coordinator stores it).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn describe_members(&self) -> Vec<MemberDescription> {
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        self.members
            .iter()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata_for(protocol),
                assignment: m.assignment.clone(),
            })
            .collect()
    }

    fn member_index(&self, member_id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.id == member_id)
    }

    /// UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID unless `member_id` is a member (with this
    /// instance id, for a static member).
    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<usize, i16> {
        if let Some(iid) = instance_id {
            if let Some(m) = self
                .members
                .iter()
                .find(|m| m.instance_id.as_deref() == Some(iid))
            {
                if m.id != member_id {
                    return Err(error_code::FENCED_INSTANCE_ID);
                }
            }
        }
        self.member_index(member_id)
            .ok_or(error_code::UNKNOWN_MEMBER_ID)
    }

    /// Protocols every member supports, in the first member's order of preference.
    fn candidate_protocols(&self) -> Vec<String> {
        let Some(first) = self.members.first() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect()
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidate_protocols()
                .iter()
                .any(|c| protocols.iter().any(|(name, _)| name == c))
    }

    /// Each member votes for its most preferred candidate; the most votes wins (ties: the first
    /// member's preference).
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes = vec![0usize; candidates.len()];
        for m in &self.members {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|(name, _)| candidates.iter().position(|c| c == name))
            {
                votes[i] += 1;
            }
        }
        let best = votes.iter().copied().max()?;
        candidates
            .into_iter()
            .zip(votes)
            .find(|(_, v)| *v == best)
            .map(|(c, _)| c)
    }

    fn rebalance_timeout(&self) -> Duration {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    pub fn join(
        &mut self,
        req: JoinRequest,
        now: Instant,
        cfg: &GroupSettings,
    ) -> Reply<JoinResult> {
        let fail = |code| Reply::Now(JoinResult::error(code, &req.member_id));
        if self.state == GroupState::Dead {
            return fail(error_code::COORDINATOR_NOT_AVAILABLE);
        }
        // A classic member may not join a consumer group with members (Kafka without online
        // migration); an empty consumer group becomes a classic one.
        if let Some(consumer) = &self.consumer {
            if !consumer.is_empty() {
                return fail(error_code::INCONSISTENT_GROUP_PROTOCOL);
            }
            self.consumer = None;
        }
        let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        if req.session_timeout_ms < 0
            || session < cfg.min_session_timeout
            || session > cfg.max_session_timeout
        {
            return fail(error_code::INVALID_SESSION_TIMEOUT);
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            return fail(error_code::INCONSISTENT_GROUP_PROTOCOL);
        }
        if req.member_id.is_empty() {
            self.join_new_member(req, now, cfg)
        } else {
            self.join_known_member(req, now, cfg)
        }
    }

    fn join_new_member(
        &mut self,
        req: JoinRequest,
        now: Instant,
        cfg: &GroupSettings,
    ) -> Reply<JoinResult> {
        let member_id = format!("{}-{}", req.client_id, random_uuid());
        if let Some(iid) = req.group_instance_id.as_deref() {
            if let Some(index) = self
                .members
                .iter()
                .position(|m| m.instance_id.as_deref() == Some(iid))
            {
                return self.replace_static_member(index, member_id, req, now, cfg);
            }
        } else if req.require_known_member_id {
            let session = Duration::from_millis(req.session_timeout_ms as u64);
            self.pending.insert(member_id.clone(), now + session);
            return Reply::Now(JoinResult::error(
                error_code::MEMBER_ID_REQUIRED,
                &member_id,
            ));
        }
        self.add_member(member_id, req, now, cfg)
    }

    /// A static member that restarted (its instance id is known, its member id is new): the new
    /// incarnation takes the old one's place and assignment, and the old id is fenced. A Stable
    /// group whose protocol would not change does not rebalance (KIP-345): the member gets the
    /// current generation, with the old leader named so that it does not assign.
    fn replace_static_member(
        &mut self,
        index: usize,
        member_id: String,
        req: JoinRequest,
        now: Instant,
        cfg: &GroupSettings,
    ) -> Reply<JoinResult> {
        let current_leader = self.leader.clone().unwrap_or_default();
        let m = &mut self.members[index];
        m.answer_join(JoinResult::error(
            error_code::FENCED_INSTANCE_ID,
            &m.id.clone(),
        ));
        m.answer_sync(SyncResult::error(error_code::FENCED_INSTANCE_ID));
        let old_id = std::mem::replace(&mut m.id, member_id.clone());
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(member_id.clone());
        }
        let rx = self.update_member(index, req, now);
        match self.state {
            GroupState::Stable if self.select_protocol() == self.protocol_name => {
                let result = JoinResult {
                    error_code: error_code::NONE,
                    generation_id: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader: current_leader,
                    member_id,
                    members: Vec::new(),
                };
                let m = &mut self.members[index];
                m.synced = true;
                m.answer_join(result);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            _ => {
                self.prepare_rebalance(now, cfg);
                self.maybe_complete_join(now);
            }
        }
        Reply::Later(rx)
    }

    fn join_known_member(
        &mut self,
        req: JoinRequest,
        now: Instant,
        cfg: &GroupSettings,
    ) -> Reply<JoinResult> {
        if self.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return self.add_member(id, req, now, cfg);
        }
        let index = match self.check_member(&req.member_id, req.group_instance_id.as_deref()) {
            Ok(i) => i,
            Err(code) => return Reply::Now(JoinResult::error(code, &req.member_id)),
        };
        match self.state {
            GroupState::Empty | GroupState::Dead => Reply::Now(JoinResult::error(
                error_code::UNKNOWN_MEMBER_ID,
                &req.member_id,
            )),
            GroupState::PreparingRebalance => {
                let rx = self.update_member(index, req, now);
                self.maybe_complete_join(now);
                Reply::Later(rx)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                let member = &self.members[index];
                let is_leader = self.leader.as_deref() == Some(member.id.as_str());
                let unchanged = member.same_protocols(&req.protocols);
                let keeps_generation = match self.state {
                    GroupState::CompletingRebalance => unchanged,
                    _ => unchanged && !is_leader,
                };
                if keeps_generation {
                    // It missed its JoinGroup answer: tell it the current generation again.
                    self.members[index].expires_at = now + self.members[index].session_timeout;
                    return Reply::Now(self.join_result_for(index));
                }
                let rx = self.update_member(index, req, now);
                self.prepare_rebalance(now, cfg);
                self.maybe_complete_join(now);
                Reply::Later(rx)
            }
        }
    }

    fn add_member(
        &mut self,
        member_id: String,
        req: JoinRequest,
        now: Instant,
        cfg: &GroupSettings,
    ) -> Reply<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let session = Duration::from_millis(req.session_timeout_ms as u64);
        let rebalance = if req.rebalance_timeout_ms < 0 {
            session
        } else {
            Duration::from_millis(req.rebalance_timeout_ms as u64)
        };
        if self.members.is_empty() && self.protocol_type.as_deref() != Some(&req.protocol_type) {
            self.protocol_type = Some(req.protocol_type.clone());
            self.dirty = true;
        }
        self.members.push(Member {
            id: member_id,
            instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout: session,
            rebalance_timeout: rebalance,
            protocols: req.protocols,
            assignment: Bytes::new(),
            join_waiter: Some(tx),
            sync_waiter: None,
            synced: false,
            expires_at: now + session,
        });
        if self.state == GroupState::PreparingRebalance {
            self.extend_initial_delay(now, cfg);
        } else {
            self.prepare_rebalance(now, cfg);
        }
        self.maybe_complete_join(now);
        Reply::Later(rx)
    }

    /// Takes a rejoining member's new subscription and waits for the join phase to end.
    fn update_member(
        &mut self,
        index: usize,
        req: JoinRequest,
        now: Instant,
    ) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let m = &mut self.members[index];
        // An earlier JoinGroup of the same member still waiting is superseded by this one.
        m.answer_join(JoinResult::error(
            error_code::REBALANCE_IN_PROGRESS,
            &m.id.clone(),
        ));
        m.session_timeout = Duration::from_millis(req.session_timeout_ms as u64);
        m.rebalance_timeout = if req.rebalance_timeout_ms < 0 {
            m.session_timeout
        } else {
            Duration::from_millis(req.rebalance_timeout_ms as u64)
        };
        m.protocols = req.protocols;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.join_waiter = Some(tx);
        m.expires_at = now + m.session_timeout;
        rx
    }

    fn prepare_rebalance(&mut self, now: Instant, cfg: &GroupSettings) {
        if self.state == GroupState::CompletingRebalance {
            for m in &mut self.members {
                m.assignment = Bytes::new();
                m.answer_sync(SyncResult::error(error_code::REBALANCE_IN_PROGRESS));
            }
        }
        let from_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        self.sync_deadline = None;
        let timeout = self.rebalance_timeout();
        let initial_delay_until = (from_empty && !cfg.initial_rebalance_delay.is_zero())
            .then(|| now + cfg.initial_rebalance_delay.min(timeout));
        self.join_phase = Some(JoinPhase {
            deadline: now + timeout,
            initial_delay_until,
        });
    }

    /// A member arriving during the initial delay restarts it (never past the join deadline).
    fn extend_initial_delay(&mut self, now: Instant, cfg: &GroupSettings) {
        if let Some(phase) = &mut self.join_phase {
            if let Some(until) = &mut phase.initial_delay_until {
                *until = (now + cfg.initial_rebalance_delay).min(phase.deadline);
            }
        }
    }

    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let Some(phase) = &self.join_phase else {
            return;
        };
        let all_joined =
            self.members.iter().all(|m| m.join_waiter.is_some()) && self.pending.is_empty();
        let delaying = phase.initial_delay_until.is_some_and(|until| now < until);
        if (all_joined && !delaying) || now >= phase.deadline {
            self.complete_join(now);
        }
    }

    /// Ends the join phase: members that did not rejoin are removed, the next generation starts
    /// and every waiting member gets its JoinGroup answer (the leader with all subscriptions).
    fn complete_join(&mut self, now: Instant) {
        self.join_phase = None;
        self.members.retain(|m| m.join_waiter.is_some());
        self.generation += 1;
        self.dirty = true;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader = None;
            return;
        }
        self.protocol_name = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| self.member_index(l).is_none())
        {
            self.leader = Some(self.members[0].id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        self.sync_deadline = Some(now + self.rebalance_timeout());
        for i in 0..self.members.len() {
            let result = self.join_result_for(i);
            let m = &mut self.members[i];
            m.synced = false;
            m.assignment = Bytes::new();
            m.expires_at = now + m.session_timeout;
            m.answer_join(result);
        }
    }

    fn join_result_for(&self, index: usize) -> JoinResult {
        let member = &self.members[index];
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member.id {
            self.members
                .iter()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.metadata_for(&protocol),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error_code: error_code::NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: Some(protocol),
            leader,
            member_id: member.id.clone(),
            members,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Reply<SyncResult> {
        let fail = |code| Reply::Now(SyncResult::error(code));
        if self.state == GroupState::Dead {
            return fail(error_code::COORDINATOR_NOT_AVAILABLE);
        }
        let index = match self.check_member(member_id, instance_id) {
            Ok(i) => i,
            Err(code) => return fail(code),
        };
        if generation != self.generation {
            return fail(error_code::ILLEGAL_GENERATION);
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol_name.as_deref())
        {
            return fail(error_code::INCONSISTENT_GROUP_PROTOCOL);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => fail(error_code::UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => fail(error_code::REBALANCE_IN_PROGRESS),
            GroupState::Stable => {
                let m = &mut self.members[index];
                m.expires_at = now + m.session_timeout;
                m.synced = true;
                Reply::Now(self.sync_result(index))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let m = &mut self.members[index];
                m.answer_sync(SyncResult::error(error_code::REBALANCE_IN_PROGRESS));
                m.sync_waiter = Some(tx);
                m.synced = true;
                m.expires_at = now + m.session_timeout;
                if self.leader.as_deref() == Some(member_id) {
                    let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in &mut self.members {
                        m.assignment = assignments.remove(&m.id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    self.sync_deadline = None;
                    for i in 0..self.members.len() {
                        let result = self.sync_result(i);
                        self.members[i].answer_sync(result);
                    }
                }
                Reply::Later(rx)
            }
        }
    }

    fn sync_result(&self, index: usize) -> SyncResult {
        SyncResult {
            error_code: error_code::NONE,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self.members[index].assignment.clone(),
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        match self.state {
            GroupState::Dead => return error_code::COORDINATOR_NOT_AVAILABLE,
            GroupState::Empty => return error_code::UNKNOWN_MEMBER_ID,
            _ => {}
        }
        let index = match self.check_member(member_id, instance_id) {
            Ok(i) => i,
            Err(code) => return code,
        };
        if generation != self.generation {
            return error_code::ILLEGAL_GENERATION;
        }
        let m = &mut self.members[index];
        m.expires_at = now + m.session_timeout;
        if self.state == GroupState::PreparingRebalance {
            error_code::REBALANCE_IN_PROGRESS
        } else {
            error_code::NONE
        }
    }

    /// LeaveGroup for each (member id, group instance id); a static member may leave by its
    /// instance id alone. Returns one error code per member.
    pub fn leave(
        &mut self,
        members: &[(String, Option<String>)],
        now: Instant,
        cfg: &GroupSettings,
    ) -> Vec<i16> {
        let mut removed = false;
        let codes = members
            .iter()
            .map(|(member_id, instance_id)| {
                if self.state == GroupState::Dead {
                    return error_code::COORDINATOR_NOT_AVAILABLE;
                }
                if instance_id.is_none() && self.pending.remove(member_id).is_some() {
                    removed = true;
                    return error_code::NONE;
                }
                let index = match instance_id {
                    Some(iid) => {
                        match self
                            .members
                            .iter()
                            .position(|m| m.instance_id.as_deref() == Some(iid.as_str()))
                        {
                            Some(i) if member_id.is_empty() || self.members[i].id == *member_id => {
                                i
                            }
                            Some(_) => return error_code::FENCED_INSTANCE_ID,
                            None => return error_code::UNKNOWN_MEMBER_ID,
                        }
                    }
                    None => match self.member_index(member_id) {
                        Some(i) => i,
                        None => return error_code::UNKNOWN_MEMBER_ID,
                    },
                };
                self.remove_member(index);
                removed = true;
                error_code::NONE
            })
            .collect();
        if removed {
            self.after_removal(now, cfg);
        }
        codes
    }

    fn remove_member(&mut self, index: usize) {
        let mut m = self.members.remove(index);
        m.answer_join(JoinResult::error(error_code::UNKNOWN_MEMBER_ID, &m.id));
        m.answer_sync(SyncResult::error(error_code::UNKNOWN_MEMBER_ID));
        if self.leader.as_deref() == Some(m.id.as_str()) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
    }

    fn after_removal(&mut self, now: Instant, cfg: &GroupSettings) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, cfg);
                self.maybe_complete_join(now);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Session and rebalance timeouts: called often (every ~100 ms) by the coordinator.
    pub fn tick(&mut self, now: Instant, cfg: &GroupSettings) {
        let pending_before = self.pending.len();
        self.pending.retain(|_, expires| *expires > now);
        let mut removed = self.pending.len() != pending_before;
        let mut i = 0;
        while i < self.members.len() {
            let m = &self.members[i];
            if !m.waiting() && m.expires_at <= now {
                tracing::info!(group = %self.id, member = %m.id, "member session expired");
                self.remove_member(i);
                removed = true;
            } else {
                i += 1;
            }
        }
        if self.state == GroupState::CompletingRebalance
            && self.sync_deadline.is_some_and(|d| d <= now)
        {
            // The leader never sent the assignment: drop whoever did not sync, and start over.
            let mut i = 0;
            while i < self.members.len() {
                if self.members[i].synced {
                    i += 1;
                } else {
                    self.remove_member(i);
                }
            }
            removed = true;
        }
        if removed {
            self.after_removal(now, cfg);
        }
        self.maybe_complete_join(now);
    }

    /// OffsetCommit's membership check (Kafka's rules): a member commits for its generation; a
    /// commit without member and generation (an admin or a manually assigned consumer) only
    /// while the group has no members.
    pub fn validate_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        api_version: i16,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(error_code::COORDINATOR_NOT_AVAILABLE);
        }
        if let Some(consumer) = &self.consumer {
            return consumer.validate_commit(member_id, generation, api_version);
        }
        if generation < 0 && self.state == GroupState::Empty {
            // An admin or a consumer without group management (Kafka accepts whatever member id
            // it names, as librdkafka's consumer-protocol clients send theirs).
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.check_member(member_id, instance_id)?;
            if generation != self.generation {
                return Err(error_code::ILLEGAL_GENERATION);
            }
        } else if self.state != GroupState::Empty {
            return Err(error_code::UNKNOWN_MEMBER_ID);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(error_code::REBALANCE_IN_PROGRESS);
        }
        Ok(())
    }

    /// A commit from a member also counts as a sign of life.
    pub fn touch(&mut self, member_id: &str, now: Instant) {
        if let Some(i) = self.member_index(member_id) {
            let m = &mut self.members[i];
            m.expires_at = now + m.session_timeout;
        }
    }

    /// OffsetDelete's group-level check: a deleted group is not found, and a non-consumer group
    /// with members keeps every offset (NON_EMPTY_GROUP).
    pub fn check_offset_delete_group(&self) -> Result<(), i16> {
        if self.consumer.is_some() && self.state != GroupState::Dead {
            return Ok(());
        }
        match self.state {
            GroupState::Dead => Err(error_code::GROUP_ID_NOT_FOUND),
            GroupState::Empty => Ok(()),
            _ if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) => {
                Err(error_code::NON_EMPTY_GROUP)
            }
            _ => Ok(()),
        }
    }

    /// OffsetDelete's check for one topic (Kafka's rules): offsets of an empty group can go; a
    /// group with members keeps the offsets of topics its members subscribe to
    /// (GROUP_SUBSCRIBED_TO_TOPIC).
    pub fn check_offset_delete(&self, topic: &str) -> Result<(), i16> {
        self.check_offset_delete_group()?;
        if let Some(consumer) = &self.consumer {
            return match consumer.subscribes_to(topic) {
                true => Err(error_code::GROUP_SUBSCRIBED_TO_TOPIC),
                false => Ok(()),
            };
        }
        if self.state == GroupState::Empty {
            return Ok(());
        }
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        let subscribed = self.members.iter().any(|m| {
            // A subscription that does not parse counts as subscribed: keep the offsets.
            subscribed_topics(&m.metadata_for(protocol))
                .is_none_or(|topics| topics.iter().any(|t| t == topic))
        });
        if subscribed {
            Err(error_code::GROUP_SUBSCRIBED_TO_TOPIC)
        } else {
            Ok(())
        }
    }

    /// DeleteGroups: only an empty group can go.
    pub fn mark_dead(&mut self) -> Result<(), i16> {
        if !self.is_empty() {
            return Err(error_code::NON_EMPTY_GROUP);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                self.state = GroupState::Dead;
                Ok(())
            }
            _ => Err(error_code::NON_EMPTY_GROUP),
        }
    }

    /// The broker is stopping: every waiting request is told to find the coordinator again.
    pub fn shutdown(&mut self) {
        for m in &mut self.members {
            m.answer_join(JoinResult::error(
                error_code::NOT_COORDINATOR,
                &m.id.clone(),
            ));
            m.answer_sync(SyncResult::error(error_code::NOT_COORDINATOR));
        }
    }
}

/// The protocol type of Kafka consumers, whose member metadata is a ConsumerProtocolSubscription.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The topics of a ConsumerProtocolSubscription (every version starts with an int16 version and
/// the topic names as an int32-counted array of int16-length strings), or None if it is not one.
fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut rest = metadata.get(2..)?;
    let take = |rest: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        *rest = tail;
        Some(head.to_vec())
    };
    let count = i32::from_be_bytes(take(&mut rest, 4)?.try_into().ok()?);
    let count = usize::try_from(count).ok()?;
    let mut topics = Vec::with_capacity(count.min(rest.len() / 2));
    for _ in 0..count {
        let len = i16::from_be_bytes(take(&mut rest, 2)?.try_into().ok()?);
        let name = take(&mut rest, usize::try_from(len).ok()?)?;
        topics.push(String::from_utf8(name).ok()?);
    }
    Some(topics)
}

/// A version-4 UUID in its usual text form, for member ids.
pub(super) fn random_uuid() -> String {
    let b: [u8; 16] = rand::random();
    let hex =
        |r: std::ops::Range<usize>| -> String { b[r].iter().map(|x| format!("{x:02x}")).collect() };
    format!(
        "{}-{}-4{}-{}-{}",
        hex(0..4),
        hex(4..6),
        &hex(6..8)[1..],
        hex(8..10),
        hex(10..16)
    )
}

#[cfg(test)]
mod tests;
