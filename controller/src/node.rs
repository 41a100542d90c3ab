//! One controller of the quorum: a raft-rs `RawNode` over the durable `RaftLog`, the metadata
//! image it applies, and the proposals waiting for their outcome. Synchronous and
//! runtime-agnostic: the caller ticks it, steps messages into it, calls `drive`, and sends
//! what `take_messages` returns, so a glommio task and the deterministic simulation drive
//! the same code. Lives on the one shard that runs the controller, for the process's life.

use std::collections::BTreeMap;
use std::path::Path;

use protobuf::Message as _;
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType, Message};
use raft::{Config, GetEntriesContext, RawNode, SnapshotStatus, StateRole, Storage, INVALID_ID};

use crate::image::{MetadataError, MetadataImage};
use crate::liveness::BrokerLiveness;
use crate::logger::raft_logger;
use crate::observer::{
    FetchRequest, FetchResponse, Fetched, ObservedEntry, QuorumView, Refusal, SnapshotChunk,
    SnapshotPosition, FETCH_ENTRIES_MAX, FETCH_ENTRY_MAX_BYTES, FETCH_PROPOSALS_MAX,
    SNAPSHOT_CHUNK_BYTES,
};
use crate::pending::PendingProposals;
use crate::raft_log::{RaftLog, RaftLogError};
use crate::records::{self, BrokerId, DecodeError, MetadataRecord, Proposal, ProposalBatch};

/// Raft index and term of the bootstrap snapshot that carries the initial voters, so nodes
/// added later catch up by snapshot (RAFT.md).
const BOOTSTRAP_INDEX: u64 = 1;
const BOOTSTRAP_TERM: u64 = 1;
/// Most proposals carried by one log entry.
pub const PROPOSALS_PER_ENTRY_MAX: usize = 256;
/// Most record bytes carried by one log entry (an entry holds at least one proposal).
pub const ENTRY_RECORD_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Most proposals of this node awaiting their outcome; one more is refused (retriable).
pub const PENDING_PROPOSALS_MAX: usize = 4096;
/// Largest encoded record a proposal may carry.
pub const RECORD_MAX_BYTES: usize = 1024 * 1024;

/// Settings of one controller node. Ticks are calls to `Node::tick`.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's id in the quorum (Kafka's `node.id`), nonzero.
    pub node_id: u64,
    /// The voters a fresh quorum starts with; ignored once the log exists. Empty for a node
    /// that joins an existing quorum: it waits for the leader's snapshot, and the leader
    /// adds it with `propose_add_voter`.
    pub initial_voters: Vec<u64>,
    /// Random per process start: tells this start's proposals from an earlier one's.
    pub incarnation: u64,
    pub heartbeat_tick: usize,
    pub election_tick: usize,
    /// Election timeouts are drawn from `[min, max)` ticks; the simulation gives each node a
    /// range of width 1 because raft-rs draws from an unseeded `thread_rng`.
    pub election_tick_range: Option<(usize, usize)>,
    /// A snapshot of the image is taken (and the log compacted) every this many entries.
    pub snapshot_interval_entries: u64,
    /// A proposal not applied within this long is answered `RequestTimedOut`.
    pub proposal_timeout_ms: u64,
    /// A broker that has not heartbeaten for this long is fenced (Kafka's
    /// `broker.session.timeout.ms`).
    pub broker_session_timeout_ms: u64,
}

impl NodeConfig {
    /// Defaults for a node ticked every 100 ms: 300 ms heartbeats, 1-2 s elections.
    pub fn new(node_id: u64, initial_voters: Vec<u64>, incarnation: u64) -> NodeConfig {
        NodeConfig {
            node_id,
            initial_voters,
            incarnation,
            heartbeat_tick: 3,
            election_tick: 10,
            election_tick_range: None,
            snapshot_interval_entries: 1000,
            proposal_timeout_ms: 5000,
            broker_session_timeout_ms: 9000,
        }
    }

    fn raft_config(&self, applied: u64) -> Config {
        let (min_election_tick, max_election_tick) = self.election_tick_range.unwrap_or((0, 0));
        Config {
            id: self.node_id,
            election_tick: self.election_tick,
            heartbeat_tick: self.heartbeat_tick,
            min_election_tick,
            max_election_tick,
            applied,
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            ..Config::default()
        }
    }
}

/// A node that cannot go on: its storage failed or its log holds what it cannot read.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Storage(#[from] RaftLogError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("snapshot at index {index}: {source}")]
    Snapshot { index: u64, source: DecodeError },
    #[error("invalid controller configuration: {0}")]
    Config(String),
}

/// Why a proposal did not take effect. All but `Rejected` are retriable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Kafka's NOT_CONTROLLER: no leader is known, or the operation needs the leader.
    #[error("NOT_CONTROLLER: the controller quorum has no known leader here (leader hint {leader_hint:?})")]
    NotController { leader_hint: Option<u64> },
    /// Not applied in time; it may still be applied later.
    #[error("REQUEST_TIMED_OUT: the proposal was not committed within {timeout_ms} ms")]
    RequestTimedOut { timeout_ms: u64 },
    #[error("THROTTLING_QUOTA_EXCEEDED: {PENDING_PROPOSALS_MAX} proposals are already pending")]
    TooManyPending,
    #[error("POLICY_VIOLATION: a record of {size_bytes} bytes exceeds {RECORD_MAX_BYTES}")]
    RecordTooLarge { size_bytes: usize },
    /// Committed, but the record did not fit the image: nothing changed.
    #[error(transparent)]
    Rejected(#[from] MetadataError),
}

impl ProposeError {
    pub fn is_retriable(&self) -> bool {
        !matches!(
            self,
            ProposeError::Rejected(_) | ProposeError::RecordTooLarge { .. }
        )
    }
}

/// The answer to one proposal, in the order they are learnt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalOutcome {
    pub proposal_id: u64,
    pub result: Result<(), ProposeError>,
}

/// The quorum as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumStatus {
    pub node_id: u64,
    pub leader_id: Option<u64>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub voters: Vec<u64>,
    /// On the leader: each voter's matched index (its lag is `commit_index - matched`).
    pub matched: BTreeMap<u64, u64>,
}

pub struct Node {
    raw: RawNode<RaftLog>,
    config: NodeConfig,
    image: MetadataImage,
    applied_index: u64,
    snapshot_index: u64,
    now_ms: u64,
    /// Proposals for the next entries, with their encoded size.
    unproposed: Vec<(Proposal, usize)>,
    /// This node's proposals not yet answered.
    pending: PendingProposals,
    outcomes: Vec<ProposalOutcome>,
    outgoing: Vec<Message>,
    liveness: BrokerLiveness,
    was_leader: bool,
    /// A committed removal of this node, applied only after it stepped down (raft-rs panics
    /// when a leader removes itself).
    deferred_self_removal: Option<ConfChangeV2>,
}

impl Node {
    /// Opens the node's log in `dir`, bootstrapping a fresh quorum of `initial_voters` when
    /// the log is empty, and restores the image from the latest snapshot.
    pub fn open(config: NodeConfig, dir: &Path) -> Result<Node, ControllerError> {
        if config.node_id == INVALID_ID {
            return Err(ControllerError::Config(
                "node id 0 is reserved by raft".into(),
            ));
        }
        let mut log = RaftLog::open(dir)?;
        if !log.is_initialized() && !config.initial_voters.is_empty() {
            bootstrap(&mut log, &config)?;
        }
        let snapshot = log.latest_snapshot();
        let snapshot_index = snapshot.get_metadata().index;
        // A node joining an existing quorum starts empty and receives the leader's snapshot.
        let image = if snapshot.is_empty() {
            MetadataImage::default()
        } else {
            records::decode(snapshot.get_data()).map_err(|source| ControllerError::Snapshot {
                index: snapshot_index,
                source,
            })?
        };
        let raw = RawNode::new(&config.raft_config(snapshot_index), log, &raft_logger())?;
        let pending = PendingProposals::new(config.proposal_timeout_ms);
        Ok(Node {
            raw,
            liveness: BrokerLiveness::new(config.broker_session_timeout_ms),
            config,
            image,
            applied_index: snapshot_index,
            snapshot_index,
            now_ms: 0,
            unproposed: Vec::new(),
            pending,
            outcomes: Vec::new(),
            outgoing: Vec::new(),
            was_leader: false,
            deferred_self_removal: None,
        })
    }

    pub fn node_id(&self) -> u64 {
        self.config.node_id
    }

    /// The image as of `applied_index`.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    pub fn leader_id(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|id| *id != INVALID_ID)
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    pub(crate) fn raft_log(&self) -> &RaftLog {
        self.raw.store()
    }

    pub fn status(&self) -> QuorumStatus {
        let matched = if self.is_leader() {
            self.raw
                .raft
                .prs()
                .iter()
                .map(|(id, pr)| (*id, pr.matched))
                .collect()
        } else {
            BTreeMap::new()
        };
        QuorumStatus {
            node_id: self.config.node_id,
            leader_id: self.leader_id(),
            term: self.term(),
            commit_index: self.raw.raft.raft_log.committed,
            applied_index: self.applied_index,
            voters: self.raw.store().conf_state().voters.clone(),
            matched,
        }
    }

    /// On the leader: the voters raft heard from within the last election timeout, itself
    /// included. For combined nodes these are the live brokers; elsewhere empty.
    pub fn recently_active_voters(&self) -> Vec<u64> {
        if !self.is_leader() {
            return Vec::new();
        }
        let me = self.config.node_id;
        self.raw
            .raft
            .prs()
            .iter()
            .filter(|(id, pr)| **id == me || pr.recent_active)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Advances logical time by one tick; `now_ms` is the caller's monotonic clock.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.raw.tick();
        self.expire_proposals();
        self.notice_leadership();
        if self.is_leader() {
            for (broker_id, broker_epoch) in self.liveness.expired(&self.image, now_ms) {
                let fence = MetadataRecord::FenceBroker {
                    broker_id,
                    broker_epoch,
                };
                // Fencing has no caller to answer: a refused or lost one is retried once the
                // session is found expired again.
                let _ = self.propose(fence);
            }
        }
    }

    /// A new leader gives every broker a whole session before fencing it: it has not heard
    /// their heartbeats to the previous leader.
    fn notice_leadership(&mut self) {
        let is_leader = self.is_leader();
        if is_leader && !self.was_leader {
            self.liveness.reset(self.now_ms);
        }
        self.was_leader = is_leader;
    }

    fn expire_proposals(&mut self) {
        let expired = self.pending.expire(self.now_ms);
        self.outcomes.extend(expired);
    }

    /// Hands a message from another controller to raft.
    pub fn step(&mut self, message: Message) {
        let from = message.from;
        if message.to != self.config.node_id {
            tracing::warn!(
                node_id = self.config.node_id,
                from,
                to = message.to,
                "controller: message for another node dropped"
            );
            return;
        }
        if let Err(error) = self.raw.step(message) {
            // A message from a node outside the configuration, or a stale local one: raft
            // refuses it and nothing changed.
            tracing::debug!(node_id = self.config.node_id, from, %error, "controller: message refused");
        }
    }

    /// Queues `record` for the leader; its outcome comes out of `take_outcomes` once applied
    /// (or timed out). Proposals of one `drive` travel in one entry.
    pub fn propose(&mut self, record: MetadataRecord) -> Result<u64, ProposeError> {
        if self.leader_id().is_none() {
            return Err(ProposeError::NotController { leader_hint: None });
        }
        let origin = (self.config.node_id, self.config.incarnation);
        let (proposal, size_bytes) = self.pending.admit(record, origin, self.now_ms)?;
        let proposal_id = proposal.proposal_id;
        self.unproposed.push((proposal, size_bytes));
        Ok(proposal_id)
    }

    /// Records a heartbeat of `broker_id` at `broker_epoch`. Only the leader keeps sessions;
    /// a fenced broker that heartbeats is unfenced by a record.
    pub fn broker_heartbeat(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: u64,
    ) -> Result<(), ProposeError> {
        if !self.is_leader() {
            return Err(ProposeError::NotController {
                leader_hint: self.leader_id(),
            });
        }
        let broker = self
            .image
            .brokers
            .get(&broker_id)
            .ok_or(MetadataError::BrokerNotAvailable { broker_id })?;
        if broker.broker_epoch != broker_epoch {
            return Err(ProposeError::Rejected(MetadataError::StaleBrokerEpoch {
                broker_id,
                current: broker.broker_epoch,
                given: broker_epoch,
            }));
        }
        self.liveness.heartbeat(broker_id, self.now_ms);
        if broker.fenced {
            self.propose(MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            })?;
        }
        Ok(())
    }

    /// Answers a broker-only node's fetch (`observer`): on the leader, records its heartbeat,
    /// queues its proposals for the next entry, and hands it the committed entries after the
    /// index it applied (bounded), or the next chunk of the latest snapshot when the log no
    /// longer holds them. Elsewhere: where the leader is. The quorum view is the caller's.
    pub fn answer_fetch(&mut self, request: FetchRequest) -> FetchResponse {
        if !self.is_leader() {
            return FetchResponse::NotLeader {
                leader_hint: self.leader_id(),
            };
        }
        if request.view_only {
            return FetchResponse::Fetched(Fetched {
                leader_id: self.config.node_id,
                term: self.term(),
                commit_index: self.raw.raft.raft_log.committed,
                refused: Vec::new(),
                snapshot: None,
                entries: Vec::new(),
                more: false,
                quorum: QuorumView::default(),
            });
        }
        if let Some(broker_epoch) = request.broker_epoch {
            // A stale epoch (an earlier incarnation) is no heartbeat; the broker re-registers.
            let _ = self.broker_heartbeat(request.broker_id, broker_epoch);
        }
        let refused = self.take_forwarded(request.broker_id, request.proposals);
        let first_index = self.raw.store().latest_snapshot().get_metadata().index + 1;
        let (snapshot, entries, more) =
            if request.snapshot.is_some() || request.applied_index + 1 < first_index {
                // Entries follow the snapshot's last chunk: fetch again at once.
                let chunk = self.snapshot_chunk(request.snapshot.as_ref());
                (Some(chunk), Vec::new(), true)
            } else {
                let (entries, more) = self.committed_entries_after(request.applied_index);
                (None, entries, more)
            };
        FetchResponse::Fetched(Fetched {
            leader_id: self.config.node_id,
            term: self.term(),
            commit_index: self.raw.raft.raft_log.committed,
            refused,
            snapshot,
            entries,
            more,
            quorum: QuorumView::default(),
        })
    }

    /// Queues a broker-only node's proposals as its own (origin checked); returns the refused.
    fn take_forwarded(
        &mut self,
        broker_id: BrokerId,
        proposals: Vec<Proposal>,
    ) -> Vec<(u64, Refusal)> {
        let mut refused = Vec::new();
        for mut proposal in proposals.into_iter().take(FETCH_PROPOSALS_MAX) {
            // A broker answers only for itself.
            proposal.origin_node = broker_id as u64;
            let size_bytes = records::encode(&proposal.record).len();
            if size_bytes > RECORD_MAX_BYTES {
                refused.push((proposal.proposal_id, Refusal::RecordTooLarge { size_bytes }));
            } else if self.unproposed.len() >= PENDING_PROPOSALS_MAX {
                refused.push((proposal.proposal_id, Refusal::TooManyPending));
            } else {
                self.unproposed.push((proposal, size_bytes));
            }
        }
        refused
    }

    /// The chunk of the latest snapshot at `position` (from its start when it names another).
    fn snapshot_chunk(&self, position: Option<&SnapshotPosition>) -> SnapshotChunk {
        let snapshot = self.raw.store().latest_snapshot();
        let index = snapshot.get_metadata().index;
        let data = snapshot.get_data();
        let offset = position
            .filter(|p| p.index == index && p.offset <= data.len() as u64)
            .map_or(0, |p| p.offset);
        let end = (offset as usize + SNAPSHOT_CHUNK_BYTES).min(data.len());
        SnapshotChunk {
            index,
            total_bytes: data.len() as u64,
            offset,
            bytes: data[offset as usize..end].to_vec(),
        }
    }

    /// Applied entries after `index`, at most `FETCH_ENTRIES_MAX` and about
    /// `FETCH_ENTRY_MAX_BYTES`; and whether more are applied already.
    fn committed_entries_after(&self, index: u64) -> (Vec<ObservedEntry>, bool) {
        let low = index + 1;
        let high = (self.applied_index + 1).min(low + FETCH_ENTRIES_MAX);
        if low >= high {
            return (Vec::new(), false);
        }
        let entries = self
            .raw
            .store()
            .entries(
                low,
                high,
                FETCH_ENTRY_MAX_BYTES,
                GetEntriesContext::empty(false),
            )
            .unwrap_or_default();
        let last = entries.last().map_or(index, |e| e.index);
        let observed = entries
            .into_iter()
            .map(|entry| ObservedEntry {
                index: entry.index,
                data: if entry.get_entry_type() == EntryType::EntryNormal {
                    entry.get_data().to_vec()
                } else {
                    Vec::new()
                },
            })
            .collect();
        (observed, last < self.applied_index)
    }

    /// Proposes adding `voter` to the quorum (ConfChangeV2). Leader only.
    pub fn propose_add_voter(&mut self, voter: u64) -> Result<(), ProposeError> {
        self.propose_voter_change(voter, ConfChangeType::AddNode)
    }

    /// Proposes removing `voter`; the current leader is never removed: transfer leadership
    /// first (raft-rs panics when a leader removes itself, RAFT.md).
    pub fn propose_remove_voter(&mut self, voter: u64) -> Result<(), ProposeError> {
        if Some(voter) == self.leader_id() {
            return Err(ProposeError::Rejected(MetadataError::IneligibleReplica {
                reason: format!("controller {voter} leads the quorum; transfer leadership first"),
            }));
        }
        self.propose_voter_change(voter, ConfChangeType::RemoveNode)
    }

    fn propose_voter_change(
        &mut self,
        voter: u64,
        change_type: ConfChangeType,
    ) -> Result<(), ProposeError> {
        if !self.is_leader() {
            return Err(ProposeError::NotController {
                leader_hint: self.leader_id(),
            });
        }
        let mut single = ConfChangeSingle {
            node_id: voter,
            ..Default::default()
        };
        single.set_change_type(change_type);
        let mut change = ConfChangeV2::default();
        change.mut_changes().push(single);
        self.raw
            .propose_conf_change(Vec::new(), change)
            .map_err(|_| ProposeError::NotController { leader_hint: None })
    }

    /// Asks the most caught-up follower to take over leadership (graceful shutdown). Returns
    /// the chosen follower, or `None` when this node does not lead or has no follower.
    pub fn transfer_leadership(&mut self) -> Option<u64> {
        if !self.is_leader() {
            return None;
        }
        let me = self.config.node_id;
        let voters = self.raw.store().conf_state().voters.clone();
        let target = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != me && voters.contains(id))
            .max_by_key(|(id, pr)| (pr.matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id)?;
        self.raw.transfer_leader(target);
        Some(target)
    }

    /// The transport could not reach `to`.
    pub fn report_unreachable(&mut self, to: u64) {
        self.raw.report_unreachable(to);
    }

    /// The outcome of sending a snapshot to `to`. Must be called for every snapshot message
    /// taken from `take_messages`: without it the follower stays in snapshot state forever.
    pub fn report_snapshot(&mut self, to: u64, delivered: bool) {
        let status = if delivered {
            SnapshotStatus::Finish
        } else {
            SnapshotStatus::Failure
        };
        self.raw.report_snapshot(to, status);
    }

    /// Messages for other controllers, in the order they must be sent.
    pub fn take_messages(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.outgoing)
    }

    /// Outcomes of this node's proposals learnt since the last call.
    pub fn take_outcomes(&mut self) -> Vec<ProposalOutcome> {
        std::mem::take(&mut self.outcomes)
    }

    /// Proposes the queued batch and handles every ready: persist, send, apply, snapshot.
    pub fn drive(&mut self) -> Result<(), ControllerError> {
        self.flush_proposals();
        while self.raw.has_ready() {
            self.handle_ready()?;
        }
        if let Some(change) = self.deferred_self_removal.take() {
            self.raw
                .raft
                .become_follower(self.raw.raft.term, INVALID_ID);
            self.apply_conf_change(&change)?;
        }
        self.notice_leadership();
        Ok(())
    }

    fn flush_proposals(&mut self) {
        while !self.unproposed.is_empty() {
            let mut total_bytes = 0;
            let take = self
                .unproposed
                .iter()
                .take(PROPOSALS_PER_ENTRY_MAX)
                .take_while(|(_, size_bytes)| {
                    total_bytes += size_bytes;
                    total_bytes <= ENTRY_RECORD_MAX_BYTES
                })
                .count()
                .max(1);
            let proposals: Vec<Proposal> = self.unproposed.drain(..take).map(|(p, _)| p).collect();
            // Proposals forwarded for a broker-only node are answered through its own fetches.
            let me = (self.config.node_id, self.config.incarnation);
            let ids: Vec<u64> = proposals
                .iter()
                .filter(|p| (p.origin_node, p.origin_incarnation) == me)
                .map(|p| p.proposal_id)
                .collect();
            let data = records::encode(&ProposalBatch { proposals });
            if self.raw.propose(Vec::new(), data).is_err() {
                // No leader to forward to any more: answer now rather than at the timeout.
                for proposal_id in ids {
                    if !self.pending.settle(proposal_id) {
                        continue;
                    }
                    self.outcomes.push(ProposalOutcome {
                        proposal_id,
                        result: Err(ProposeError::NotController { leader_hint: None }),
                    });
                }
            }
        }
    }

    /// One ready in RAFT.md's order: messages a leader may send at once, snapshot, entries
    /// and HardState fsync'd, then the messages that needed them, apply, advance.
    fn handle_ready(&mut self) -> Result<(), ControllerError> {
        let mut ready = self.raw.ready();
        self.outgoing.extend(ready.take_messages());
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot().clone())?;
        }
        self.raw.mut_store().append(ready.entries())?;
        if let Some(hard_state) = ready.hs() {
            self.raw.mut_store().set_hard_state(hard_state.clone())?;
        }
        self.outgoing.extend(ready.take_persisted_messages());
        self.apply_entries(ready.take_committed_entries())?;
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        self.outgoing.extend(light.take_messages());
        self.apply_entries(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.maybe_snapshot()
    }

    fn install_snapshot(
        &mut self,
        snapshot: raft::eraftpb::Snapshot,
    ) -> Result<(), ControllerError> {
        let index = snapshot.get_metadata().index;
        self.image = records::decode(snapshot.get_data())
            .map_err(|source| ControllerError::Snapshot { index, source })?;
        self.raw.mut_store().install_snapshot(snapshot)?;
        self.applied_index = index;
        self.snapshot_index = index;
        tracing::info!(
            node_id = self.config.node_id,
            index,
            "controller: installed the leader's snapshot"
        );
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), ControllerError> {
        for entry in entries {
            self.applied_index = entry.index;
            match entry.get_entry_type() {
                EntryType::EntryNormal => self.apply_batch(&entry),
                EntryType::EntryConfChangeV2 => {
                    let change = ConfChangeV2::parse_from_bytes(entry.get_data())
                        .map_err(raft::Error::CodecError)?;
                    self.apply_or_defer_conf_change(change)?;
                }
                EntryType::EntryConfChange => {
                    let change = raft::eraftpb::ConfChange::parse_from_bytes(entry.get_data())
                        .map_err(raft::Error::CodecError)?;
                    self.apply_or_defer_conf_change(raft_proto::ConfChangeI::into_v2(change))?;
                }
            }
        }
        Ok(())
    }

    fn apply_or_defer_conf_change(&mut self, change: ConfChangeV2) -> Result<(), ControllerError> {
        let removes_me = change.get_changes().iter().any(|c| {
            c.node_id == self.config.node_id && c.get_change_type() == ConfChangeType::RemoveNode
        });
        if removes_me && self.is_leader() {
            self.deferred_self_removal = Some(change);
            return Ok(());
        }
        self.apply_conf_change(&change)
    }

    fn apply_conf_change(&mut self, change: &ConfChangeV2) -> Result<(), ControllerError> {
        let conf_state = self.raw.apply_conf_change(change)?;
        self.raw.mut_store().set_conf_state(conf_state)?;
        Ok(())
    }

    /// Applies each proposal of the entry to the image and answers this node's own ones.
    fn apply_batch(&mut self, entry: &Entry) {
        let me = (self.config.node_id, self.config.incarnation);
        for (proposal_id, result) in apply_batch(&mut self.image, entry.index, entry.get_data(), me)
        {
            if self.pending.settle(proposal_id) {
                self.outcomes.push(ProposalOutcome {
                    proposal_id,
                    result: result.map_err(ProposeError::Rejected),
                });
            }
        }
    }

    fn maybe_snapshot(&mut self) -> Result<(), ControllerError> {
        let last_index = self.raw.store().last_index()?;
        if self.applied_index < self.snapshot_index + self.config.snapshot_interval_entries
            || self.applied_index > last_index
        {
            return Ok(());
        }
        let data = records::encode(&self.image);
        self.raw
            .mut_store()
            .create_snapshot(self.applied_index, data)?;
        self.snapshot_index = self.applied_index;
        Ok(())
    }
}

fn bootstrap(log: &mut RaftLog, config: &NodeConfig) -> Result<(), ControllerError> {
    if !config.initial_voters.contains(&config.node_id) {
        return Err(ControllerError::Config(format!(
            "node {} is not among the initial voters {:?}",
            config.node_id, config.initial_voters
        )));
    }
    let mut snapshot = raft::eraftpb::Snapshot::default();
    snapshot.set_data(records::encode(&MetadataImage::default()).into());
    let metadata = snapshot.mut_metadata();
    metadata.index = BOOTSTRAP_INDEX;
    metadata.term = BOOTSTRAP_TERM;
    metadata.mut_conf_state().voters = config.initial_voters.clone();
    log.install_snapshot(snapshot)?;
    Ok(())
}

/// Applies each proposal of the entry at `index` (its `data`, a `ProposalBatch`) to `image`;
/// returns the results of the proposals `origin` (node id, incarnation) made. Voters and
/// observers apply entries with this one function, so their images agree.
pub(crate) fn apply_batch(
    image: &mut MetadataImage,
    index: u64,
    data: &[u8],
    origin: (u64, u64),
) -> Vec<(u64, Result<(), MetadataError>)> {
    if data.is_empty() {
        // The empty entry a new leader appends, or a conf change.
        return Vec::new();
    }
    let batch: ProposalBatch = match records::decode(data) {
        Ok(batch) => batch,
        Err(error) => {
            // Every node reads the same bytes and skips them alike: the images stay equal.
            tracing::error!(index, %error, "controller: skipping an unreadable entry");
            return Vec::new();
        }
    };
    let mut answered = Vec::new();
    for proposal in batch.proposals {
        let result = image.apply(index, &proposal.record);
        if (proposal.origin_node, proposal.origin_incarnation) == origin {
            answered.push((proposal.proposal_id, result));
        }
    }
    answered
}
