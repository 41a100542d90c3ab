//! One member of a classic consumer group, without I/O: Kafka's consumer side of the group
//! protocol (JoinGroup → SyncGroup → OffsetFetch, then Heartbeat and OffsetCommit, LeaveGroup at
//! the end). Its driver (loadgen's consumer agent, the CLI's group consumer) sends the
//! requests `poll` returns on its coordinator connection, one at a time, and hands back the
//! responses; time is the run clock in nanoseconds.

use std::collections::BTreeMap;
use std::sync::Arc;

use riffle_protocol::messages::heartbeat_request::HeartbeatRequest;
use riffle_protocol::messages::heartbeat_response::HeartbeatResponse;
use riffle_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use riffle_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use riffle_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use riffle_protocol::messages::leave_group_response::LeaveGroupResponse;
use riffle_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use riffle_protocol::messages::offset_commit_response::OffsetCommitResponse;
use riffle_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestTopic,
};
use riffle_protocol::messages::offset_fetch_response::OffsetFetchResponse;
use riffle_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use riffle_protocol::messages::sync_group_response::SyncGroupResponse;
use riffle_protocol::{
    decode_response, encode_request, error_code, ApiKey, Bytes, EncodeError, Message, RequestHeader,
};

use crate::connection::GroupVersions;
use crate::consumer_protocol::{range_assign, Assignment, Subscription, PROTOCOL_TYPE, RANGE};

/// Time before a join is retried after an unexpected error or a lost connection.
pub const GROUP_RETRY_BACKOFF_NS: u64 = 1_000_000_000;
/// Kafka's `session.timeout.ms` before 3.0 (Riffle's and Kafka's minimum is 6 s).
pub const SESSION_TIMEOUT_MS: i32 = 10_000;
/// How long the coordinator waits for the members to rejoin (Kafka: `max.poll.interval.ms`).
pub const REBALANCE_TIMEOUT_MS: i32 = 30_000;
/// Kafka's `heartbeat.interval.ms`: a third of the session timeout.
pub const HEARTBEAT_INTERVAL_NS: u64 = SESSION_TIMEOUT_MS as u64 * 1_000_000 / 3;
/// How often consumed positions are committed (Kafka: `auto.commit.interval.ms`).
pub const COMMIT_INTERVAL_NS: u64 = 1_000_000_000;

/// What a run's members share.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub group: String,
    pub topic: String,
    /// Every partition of the topic with the offset to start from when the group has none
    /// committed (the run's --from); the leader assigns these partitions.
    pub start_offsets: Vec<(i32, i64)>,
    pub versions: GroupVersions,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub heartbeat_interval_ns: u64,
    pub commit_interval_ns: u64,
}

/// A request for the coordinator.
#[derive(Debug)]
pub enum GroupRequest {
    Join(JoinGroupRequest),
    Sync(SyncGroupRequest),
    OffsetFetch(OffsetFetchRequest),
    Heartbeat(HeartbeatRequest),
    OffsetCommit(OffsetCommitRequest),
    Leave(LeaveGroupRequest),
}

/// The coordinator's answer to the request in flight.
#[derive(Debug)]
pub enum GroupResponse {
    Join(JoinGroupResponse),
    Sync(SyncGroupResponse),
    OffsetFetch(OffsetFetchResponse),
    Heartbeat(HeartbeatResponse),
    OffsetCommit(OffsetCommitResponse),
    Leave(LeaveGroupResponse),
}

impl GroupResponse {
    /// Decodes the response frame (without its size prefix) to a request of `api`; returns
    /// its correlation id and the response.
    pub fn decode(
        api: GroupApi,
        frame: Bytes,
        versions: &GroupVersions,
    ) -> Result<(i32, GroupResponse), String> {
        fn typed<R: Message>(
            frame: Bytes,
            version: i16,
            wrap: fn(R) -> GroupResponse,
        ) -> Result<(i32, GroupResponse), String> {
            decode_response::<R>(frame, version)
                .map(|(corr, r)| (corr, wrap(r)))
                .map_err(|e| format!("bad {:?} response: {e}", R::API_KEY))
        }
        let v = versions;
        match api {
            GroupApi::Join => typed(frame, v.join_group, GroupResponse::Join),
            GroupApi::Sync => typed(frame, v.sync_group, GroupResponse::Sync),
            GroupApi::OffsetFetch => typed(frame, v.offset_fetch, GroupResponse::OffsetFetch),
            GroupApi::Heartbeat => typed(frame, v.heartbeat, GroupResponse::Heartbeat),
            GroupApi::OffsetCommit => typed(frame, v.offset_commit, GroupResponse::OffsetCommit),
            GroupApi::Leave => typed(frame, v.leave_group, GroupResponse::Leave),
        }
    }
}

/// Which API a request or response is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupApi {
    Join,
    Sync,
    OffsetFetch,
    Heartbeat,
    OffsetCommit,
    Leave,
}

impl GroupRequest {
    pub fn api_key(&self) -> ApiKey {
        match self {
            GroupRequest::Join(_) => ApiKey::JoinGroup,
            GroupRequest::Sync(_) => ApiKey::SyncGroup,
            GroupRequest::OffsetFetch(_) => ApiKey::OffsetFetch,
            GroupRequest::Heartbeat(_) => ApiKey::Heartbeat,
            GroupRequest::OffsetCommit(_) => ApiKey::OffsetCommit,
            GroupRequest::Leave(_) => ApiKey::LeaveGroup,
        }
    }

    /// The request framed for the wire at the agreed version.
    pub fn encode(
        &self,
        versions: &GroupVersions,
        correlation_id: i32,
        client_id: &str,
    ) -> Result<Vec<Bytes>, EncodeError> {
        fn framed<M: Message>(
            version: i16,
            body: &M,
            correlation_id: i32,
            client_id: &str,
        ) -> Result<Vec<Bytes>, EncodeError> {
            let header = RequestHeader {
                request_api_key: M::API_KEY as i16,
                request_api_version: version,
                correlation_id,
                client_id: Some(client_id.into()),
            };
            encode_request(&header, body)
        }
        let v = versions;
        match self {
            GroupRequest::Join(r) => framed(v.join_group, r, correlation_id, client_id),
            GroupRequest::Sync(r) => framed(v.sync_group, r, correlation_id, client_id),
            GroupRequest::OffsetFetch(r) => framed(v.offset_fetch, r, correlation_id, client_id),
            GroupRequest::Heartbeat(r) => framed(v.heartbeat, r, correlation_id, client_id),
            GroupRequest::OffsetCommit(r) => framed(v.offset_commit, r, correlation_id, client_id),
            GroupRequest::Leave(r) => framed(v.leave_group, r, correlation_id, client_id),
        }
    }

    pub fn api(&self) -> GroupApi {
        match self {
            GroupRequest::Join(_) => GroupApi::Join,
            GroupRequest::Sync(_) => GroupApi::Sync,
            GroupRequest::OffsetFetch(_) => GroupApi::OffsetFetch,
            GroupRequest::Heartbeat(_) => GroupApi::Heartbeat,
            GroupRequest::OffsetCommit(_) => GroupApi::OffsetCommit,
            GroupRequest::Leave(_) => GroupApi::Leave,
        }
    }
}

/// A new assignment: fetch these partitions from these offsets.
#[derive(Debug, Clone, PartialEq)]
pub struct Assigned {
    pub generation: i32,
    pub member_id: String,
    pub leader: bool,
    /// (partition, offset to fetch next), sorted.
    pub positions: Vec<(i32, i64)>,
    /// How many of the positions are offsets the group had committed.
    pub committed: usize,
}

#[derive(Debug, PartialEq)]
enum Phase {
    /// Not in the current generation: JoinGroup at `at_ns`; with `commit_first`, the consumed
    /// positions are committed for the old generation first (the eager protocol's revoke).
    Rejoin {
        at_ns: u64,
        commit_first: bool,
    },
    Joining,
    Syncing,
    FetchingOffsets {
        partitions: Vec<i32>,
    },
    /// Assigned: fetch, heartbeat and commit.
    Stable,
    /// The run is over: commit (unless `committed`), then LeaveGroup.
    Leaving {
        committed: bool,
    },
    Done,
}

/// Lives in one consumer agent, on one worker thread, for the whole run.
#[derive(Debug)]
pub struct GroupMember {
    cfg: Arc<MemberConfig>,
    member_id: String,
    generation: i32,
    leader: bool,
    phase: Phase,
    /// Sent at the next poll, before anything else (the step after a response).
    queued: Option<GroupRequest>,
    in_flight: Option<GroupApi>,
    next_heartbeat_ns: u64,
    next_commit_ns: u64,
}

impl GroupMember {
    pub fn new(cfg: Arc<MemberConfig>) -> Self {
        GroupMember {
            cfg,
            member_id: String::new(),
            generation: -1,
            leader: false,
            phase: Phase::Rejoin {
                at_ns: 0,
                commit_first: false,
            },
            queued: None,
            in_flight: None,
            next_heartbeat_ns: 0,
            next_commit_ns: 0,
        }
    }

    /// The response the coordinator connection awaits.
    pub fn expecting(&self) -> Option<GroupApi> {
        self.in_flight
    }

    /// Whether the member holds a valid assignment (fetching is allowed).
    pub fn assigned(&self) -> bool {
        self.phase == Phase::Stable
    }

    pub fn group(&self) -> &str {
        &self.cfg.group
    }

    pub fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// When `poll` next has something to send (None: only after a response or a fetch).
    pub fn next_due_ns(&self) -> Option<u64> {
        if self.in_flight.is_some() {
            return None;
        }
        match self.phase {
            _ if self.queued.is_some() => Some(0),
            Phase::Rejoin { at_ns, .. } => Some(at_ns),
            Phase::Stable => Some(self.next_heartbeat_ns.min(self.next_commit_ns)),
            _ => None,
        }
    }

    /// The next request to send, if one is due and none is in flight. `stopping`: the run is
    /// over; `fetch_idle`: no fetch is in flight, so `positions` (partition, next offset) are
    /// final until the next fetch, as a commit before a rejoin or at the end needs them.
    pub fn poll(
        &mut self,
        now_ns: u64,
        stopping: bool,
        fetch_idle: bool,
        positions: impl FnOnce() -> Vec<(i32, i64)>,
    ) -> Option<GroupRequest> {
        if self.in_flight.is_some() {
            if stopping && matches!(self.phase, Phase::Joining | Phase::Syncing) {
                // A join waits for the whole group; the run does not. The coordinator drops
                // the member when its session times out.
                self.phase = Phase::Done;
            }
            return None;
        }
        if stopping {
            self.begin_leaving();
        }
        let request = if let Some(q) = self.queued.take() {
            Some(q)
        } else {
            match &mut self.phase {
                Phase::Rejoin {
                    at_ns,
                    commit_first,
                } => {
                    if *commit_first {
                        if !fetch_idle {
                            return None;
                        }
                        *commit_first = false;
                        self.commit(positions())
                            .or_else(|| Some(self.join_request()))
                    } else if now_ns >= *at_ns {
                        Some(self.join_request())
                    } else {
                        None
                    }
                }
                Phase::Stable if now_ns >= self.next_heartbeat_ns => {
                    self.next_heartbeat_ns = now_ns + self.cfg.heartbeat_interval_ns;
                    Some(GroupRequest::Heartbeat(HeartbeatRequest {
                        group_id: self.cfg.group.clone(),
                        generation_id: self.generation,
                        member_id: self.member_id.clone(),
                        group_instance_id: None,
                    }))
                }
                Phase::Stable if now_ns >= self.next_commit_ns => {
                    self.next_commit_ns = now_ns + self.cfg.commit_interval_ns;
                    self.commit(positions())
                }
                Phase::Leaving { committed } => {
                    if !fetch_idle {
                        return None;
                    }
                    let commit = if *committed {
                        None
                    } else {
                        *committed = true;
                        self.commit(positions())
                    };
                    commit.or_else(|| self.leave_request())
                }
                _ => None,
            }
        };
        if let Some(r) = &request {
            self.in_flight = Some(r.api());
        }
        request
    }

    /// The run is over: leave, after a commit if the member holds consumed positions.
    fn begin_leaving(&mut self) {
        if matches!(self.phase, Phase::Leaving { .. } | Phase::Done) {
            return;
        }
        let can_commit = matches!(
            self.phase,
            Phase::Stable
                | Phase::Rejoin {
                    commit_first: true,
                    ..
                }
        );
        self.queued = None;
        self.phase = Phase::Leaving {
            committed: !can_commit,
        };
    }

    /// Handles the response to the request in flight. Err: an unexpected error, for the run's
    /// error count (the member has already moved on: retrying, rejoining or leaving).
    pub fn on_response(
        &mut self,
        now_ns: u64,
        response: GroupResponse,
    ) -> Result<Option<Assigned>, String> {
        self.in_flight = None;
        match response {
            GroupResponse::Join(r) => self.on_join(now_ns, r),
            GroupResponse::Sync(r) => self.on_sync(now_ns, r),
            GroupResponse::OffsetFetch(r) => self.on_offsets(now_ns, r),
            GroupResponse::Heartbeat(r) => self.on_heartbeat(now_ns, r.error_code).map(|_| None),
            GroupResponse::OffsetCommit(r) => self.on_commit(now_ns, &r).map(|_| None),
            GroupResponse::Leave(r) => {
                self.phase = Phase::Done;
                // UNKNOWN_MEMBER_ID (already gone) is as good as a leave.
                let mut codes =
                    std::iter::once(r.error_code).chain(r.members.iter().map(|m| m.error_code));
                match codes.find(|&c| c != error_code::NONE && c != error_code::UNKNOWN_MEMBER_ID) {
                    Some(code) => Err(format!("LeaveGroup {}: error code {code}", self.cfg.group)),
                    None => Ok(None),
                }
            }
        }
    }

    /// The coordinator connection is gone: rejoin on a new one, or give up at the end.
    pub fn on_disconnect(&mut self, now_ns: u64, stopping: bool) {
        self.in_flight = None;
        self.queued = None;
        self.phase = if stopping || matches!(self.phase, Phase::Leaving { .. } | Phase::Done) {
            Phase::Done
        } else {
            Phase::Rejoin {
                at_ns: now_ns + GROUP_RETRY_BACKOFF_NS,
                commit_first: self.phase == Phase::Stable,
            }
        };
    }

    fn rejoin(&mut self, at_ns: u64, commit_first: bool) {
        if !matches!(self.phase, Phase::Leaving { .. } | Phase::Done) {
            self.phase = Phase::Rejoin {
                at_ns,
                commit_first,
            };
        }
    }

    /// The membership errors every group API may answer; true when handled by rejoining.
    fn rejoin_on(&mut self, now_ns: u64, code: i16) -> bool {
        match code {
            error_code::REBALANCE_IN_PROGRESS | error_code::ILLEGAL_GENERATION => {
                self.rejoin(now_ns, false)
            }
            error_code::UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                self.rejoin(now_ns, false);
            }
            _ => return false,
        }
        true
    }

    fn join_request(&mut self) -> GroupRequest {
        self.phase = Phase::Joining;
        let subscription = Subscription {
            topics: vec![self.cfg.topic.clone()],
            user_data: None,
        };
        GroupRequest::Join(JoinGroupRequest {
            group_id: self.cfg.group.clone(),
            session_timeout_ms: self.cfg.session_timeout_ms,
            rebalance_timeout_ms: self.cfg.rebalance_timeout_ms,
            member_id: self.member_id.clone(),
            group_instance_id: None,
            protocol_type: PROTOCOL_TYPE.into(),
            protocols: vec![JoinGroupRequestProtocol {
                name: RANGE.into(),
                metadata: subscription.encode(),
            }],
            reason: None,
        })
    }

    fn on_join(&mut self, now_ns: u64, r: JoinGroupResponse) -> Result<Option<Assigned>, String> {
        match r.error_code {
            error_code::NONE => {}
            // KIP-394: a new member learns its id first and joins again with it.
            error_code::MEMBER_ID_REQUIRED => {
                self.member_id = r.member_id;
                self.rejoin(now_ns, false);
                return Ok(None);
            }
            error_code::COORDINATOR_LOAD_IN_PROGRESS => {
                self.rejoin(now_ns + GROUP_RETRY_BACKOFF_NS, false);
                return Ok(None);
            }
            code if self.rejoin_on(now_ns, code) => return Ok(None),
            code => {
                self.rejoin(now_ns + GROUP_RETRY_BACKOFF_NS, false);
                return Err(format!("JoinGroup {}: error code {code}", self.cfg.group));
            }
        }
        if self.phase != Phase::Joining {
            return Ok(None); // leaving
        }
        self.member_id = r.member_id;
        self.generation = r.generation_id;
        self.leader = r.leader == self.member_id;
        let (assignments, error) = if self.leader {
            self.assign(&r.members)
        } else {
            (Vec::new(), None)
        };
        self.phase = Phase::Syncing;
        self.queued = Some(GroupRequest::Sync(SyncGroupRequest {
            group_id: self.cfg.group.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: None,
            protocol_type: Some(PROTOCOL_TYPE.into()),
            protocol_name: Some(RANGE.into()),
            assignments,
        }));
        error.map_or(Ok(None), Err)
    }

    /// The leader's range assignment over every member's subscription. A member whose
    /// metadata does not decode gets nothing (and the error is reported).
    fn assign(
        &self,
        members: &[JoinGroupResponseMember],
    ) -> (Vec<SyncGroupRequestAssignment>, Option<String>) {
        let mut error = None;
        let subscriptions: Vec<(String, Subscription)> = members
            .iter()
            .map(|m| {
                let s = Subscription::decode(&m.metadata).unwrap_or_else(|e| {
                    error = Some(format!(
                        "group {} member {}: {e}",
                        self.cfg.group, m.member_id
                    ));
                    Subscription::default()
                });
                (m.member_id.clone(), s)
            })
            .collect();
        let topics = BTreeMap::from([(
            self.cfg.topic.clone(),
            self.cfg.start_offsets.iter().map(|&(p, _)| p).collect(),
        )]);
        let assignments = range_assign(&subscriptions, &topics)
            .into_iter()
            .map(|(member_id, a)| SyncGroupRequestAssignment {
                member_id,
                assignment: a.encode(),
            })
            .collect();
        (assignments, error)
    }

    fn on_sync(&mut self, now_ns: u64, r: SyncGroupResponse) -> Result<Option<Assigned>, String> {
        match r.error_code {
            error_code::NONE => {}
            code if self.rejoin_on(now_ns, code) => return Ok(None),
            code => {
                self.rejoin(now_ns + GROUP_RETRY_BACKOFF_NS, false);
                return Err(format!("SyncGroup {}: error code {code}", self.cfg.group));
            }
        }
        if self.phase != Phase::Syncing {
            return Ok(None);
        }
        let (partitions, error) = match Assignment::decode(&r.assignment) {
            Ok(a) => (a.of_topic(&self.cfg.topic), None),
            Err(e) => (Vec::new(), Some(format!("group {}: {e}", self.cfg.group))),
        };
        let assigned = if partitions.is_empty() {
            Some(self.stable(now_ns, Vec::new(), 0))
        } else {
            self.queued = Some(GroupRequest::OffsetFetch(OffsetFetchRequest {
                group_id: self.cfg.group.clone(),
                topics: Some(vec![OffsetFetchRequestTopic {
                    name: self.cfg.topic.clone(),
                    partition_indexes: partitions.clone(),
                }]),
                ..Default::default()
            }));
            self.phase = Phase::FetchingOffsets { partitions };
            None
        };
        error.map_or(Ok(assigned), Err)
    }

    fn on_offsets(
        &mut self,
        now_ns: u64,
        r: OffsetFetchResponse,
    ) -> Result<Option<Assigned>, String> {
        let Phase::FetchingOffsets { partitions } = &self.phase else {
            return Ok(None);
        };
        let mut error = (r.error_code != error_code::NONE).then(|| {
            format!(
                "OffsetFetch {}: error code {}",
                self.cfg.group, r.error_code
            )
        });
        let mut committed = 0;
        let mut positions = Vec::with_capacity(partitions.len());
        for &p in partitions {
            let got = r
                .topics
                .iter()
                .filter(|t| t.name == self.cfg.topic)
                .flat_map(|t| t.partitions.iter())
                .find(|q| q.partition_index == p);
            let offset = match got {
                Some(q) if q.error_code == error_code::NONE && q.committed_offset >= 0 => {
                    committed += 1;
                    q.committed_offset
                }
                Some(q) if q.error_code != error_code::NONE => {
                    error.get_or_insert_with(|| {
                        format!(
                            "OffsetFetch {} {}-{p}: error code {}",
                            self.cfg.group, self.cfg.topic, q.error_code
                        )
                    });
                    -1
                }
                _ => -1,
            };
            let start = match self.cfg.start_offsets.iter().find(|&&(q, _)| q == p) {
                _ if offset >= 0 => offset,
                Some(&(_, start)) => start,
                None => {
                    error.get_or_insert_with(|| {
                        format!(
                            "group {} assigned {}-{p}, a partition the topic did not have at the start",
                            self.cfg.group, self.cfg.topic
                        )
                    });
                    continue;
                }
            };
            positions.push((p, start));
        }
        let assigned = self.stable(now_ns, positions, committed);
        error.map_or(Ok(Some(assigned)), Err)
    }

    fn stable(&mut self, now_ns: u64, positions: Vec<(i32, i64)>, committed: usize) -> Assigned {
        self.phase = Phase::Stable;
        self.next_heartbeat_ns = now_ns + self.cfg.heartbeat_interval_ns;
        self.next_commit_ns = now_ns + self.cfg.commit_interval_ns;
        Assigned {
            generation: self.generation,
            member_id: self.member_id.clone(),
            leader: self.leader,
            positions,
            committed,
        }
    }

    fn on_heartbeat(&mut self, now_ns: u64, code: i16) -> Result<(), String> {
        if self.phase != Phase::Stable {
            return Ok(());
        }
        match code {
            error_code::NONE => Ok(()),
            // Eager rebalance: stop fetching, commit what was consumed, rejoin.
            error_code::REBALANCE_IN_PROGRESS => {
                self.rejoin(now_ns, true);
                Ok(())
            }
            code if self.rejoin_on(now_ns, code) => Ok(()),
            code => Err(format!("Heartbeat {}: error code {code}", self.cfg.group)),
        }
    }

    fn on_commit(&mut self, now_ns: u64, r: &OffsetCommitResponse) -> Result<(), String> {
        let failed = r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
            .find(|(_, p)| p.error_code != error_code::NONE);
        let Some((t, p)) = failed else {
            return Ok(());
        };
        let stable = self.phase == Phase::Stable;
        match p.error_code {
            // A commit for an old generation lost to a rebalance: the next owner re-reads.
            error_code::REBALANCE_IN_PROGRESS
            | error_code::ILLEGAL_GENERATION
            | error_code::UNKNOWN_MEMBER_ID
                if !stable =>
            {
                Ok(())
            }
            code if stable && self.rejoin_on(now_ns, code) => Ok(()),
            code => Err(format!(
                "OffsetCommit {} {}-{}: error code {code}",
                self.cfg.group, t.name, p.partition_index
            )),
        }
    }

    /// OffsetCommit of `positions` for the current generation (None: nothing to commit).
    fn commit(&self, positions: Vec<(i32, i64)>) -> Option<GroupRequest> {
        if positions.is_empty() || self.generation < 0 {
            return None;
        }
        Some(GroupRequest::OffsetCommit(offset_commit_request(
            &self.cfg.group,
            self.generation,
            &self.member_id,
            &self.cfg.topic,
            &positions,
        )))
    }

    fn leave_request(&mut self) -> Option<GroupRequest> {
        if self.member_id.is_empty() {
            self.phase = Phase::Done;
            return None;
        }
        let member_id = self.member_id.clone();
        // v0–2 name the member directly, v3+ in a list (a version has only one of the two).
        let (member_id, members) = if self.cfg.versions.leave_group >= 3 {
            (
                String::new(),
                vec![MemberIdentity {
                    member_id,
                    group_instance_id: None,
                    reason: None,
                }],
            )
        } else {
            (member_id, Vec::new())
        };
        Some(GroupRequest::Leave(LeaveGroupRequest {
            group_id: self.cfg.group.clone(),
            member_id,
            members,
        }))
    }
}

/// An OffsetCommit of `positions` (partition, next offset to read) of `topic` for `group`,
/// by `member_id` in `generation` (-1 and "" outside any generation, as admin tools commit).
pub fn offset_commit_request(
    group: &str,
    generation: i32,
    member_id: &str,
    topic: &str,
    positions: &[(i32, i64)],
) -> OffsetCommitRequest {
    OffsetCommitRequest {
        group_id: group.into(),
        generation_id_or_member_epoch: generation,
        member_id: member_id.into(),
        group_instance_id: None,
        topics: vec![OffsetCommitRequestTopic {
            name: topic.into(),
            partitions: positions
                .iter()
                .map(
                    |&(partition_index, committed_offset)| OffsetCommitRequestPartition {
                        partition_index,
                        committed_offset,
                        committed_metadata: Some(String::new()),
                        ..Default::default()
                    },
                )
                .collect(),
        }],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
