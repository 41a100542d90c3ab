//! Broker-only nodes follow the metadata log without voting, as KRaft's brokers do (observers
//! that Fetch and FetchSnapshot from the active controller): the broker asks the controller
//! leader for the committed records after the last index it applied, and gets a snapshot (in
//! chunks) when the log was compacted past it. Its requests carry its heartbeat and its
//! proposals, so one round trip per tick keeps its session, its image and its topic changes.
//! Sans-io: `Observer` is the broker's side, `Node::answer_fetch` the leader's.
//!
//! Why pull and not raft-rs learners: a learner is part of the Raft configuration, so adding
//! and removing one is a conf change (and removing must never hit the leader), every voter's
//! transport must learn its address, and a dead broker stays in every leader's progress set
//! until removed. A puller holds nothing on the controllers between its requests.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::image::MetadataImage;
use crate::node::{apply_batch, ProposalOutcome, ProposeError};
use crate::pending::PendingProposals;
use crate::records::{self, BrokerId, DecodeError, MetadataRecord, Proposal};

/// Most committed entries one answer carries.
pub const FETCH_ENTRIES_MAX: u64 = 1000;
/// Most entry bytes one answer carries (at least one entry goes, whatever its size).
pub const FETCH_ENTRY_MAX_BYTES: u64 = 1024 * 1024;
/// Bytes of a snapshot one answer carries.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Largest snapshot (encoded metadata image) an observer assembles.
pub const OBSERVER_SNAPSHOT_MAX_BYTES: u64 = 512 * 1024 * 1024;
/// Most proposals one request carries; the rest wait for the next request.
pub const FETCH_PROPOSALS_MAX: usize = 64;
/// Most proposal bytes one request carries (at least one proposal goes).
pub const FETCH_PROPOSAL_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Most observers the leader remembers for DescribeQuorum.
pub const OBSERVERS_MAX: usize = 1024;

/// Where an observer is in a snapshot transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPosition {
    pub index: u64,
    pub offset: u64,
}

/// A broker-only node's request to a controller: "records after `applied_index`, please",
/// with its heartbeat and its proposals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    pub broker_id: BrokerId,
    /// The broker epoch of this process's registration, once the broker applied it; the
    /// request is then also its heartbeat.
    pub broker_epoch: Option<u64>,
    pub applied_index: u64,
    /// Set while a snapshot is being transferred.
    pub snapshot: Option<SnapshotPosition>,
    pub proposals: Vec<Proposal>,
    /// Only the leader's view of the quorum, no records: a follower voter asks it to answer
    /// DescribeQuorum as the leader would (`broker_id` is then the voter's id).
    pub view_only: bool,
}

impl FetchRequest {
    /// A follower voter's request for the leader's view of the quorum.
    pub fn view_only(node_id: u64) -> FetchRequest {
        FetchRequest {
            broker_id: i32::try_from(node_id).unwrap_or(-1),
            broker_epoch: None,
            applied_index: 0,
            snapshot: None,
            proposals: Vec::new(),
            view_only: true,
        }
    }
}

/// A piece of the leader's latest snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    pub index: u64,
    pub total_bytes: u64,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// One committed entry: its index and its proposal batch (empty for Raft's own entries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedEntry {
    pub index: u64,
    pub data: Vec<u8>,
}

/// Why the leader did not take a proposal of the request (it never enters the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    TooManyPending,
    RecordTooLarge { size_bytes: usize },
}

impl From<Refusal> for ProposeError {
    fn from(refusal: Refusal) -> ProposeError {
        match refusal {
            Refusal::TooManyPending => ProposeError::TooManyPending,
            Refusal::RecordTooLarge { size_bytes } => ProposeError::RecordTooLarge { size_bytes },
        }
    }
}

/// The quorum as its leader sees it, for DescribeQuorum and `riffle cluster info` on a
/// broker-only node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumView {
    pub voters: Vec<VoterView>,
    pub observers: Vec<ObserverView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterView {
    pub node_id: u64,
    pub matched_index: Option<u64>,
    pub last_fetch_ms: Option<i64>,
    pub last_caught_up_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserverView {
    pub node_id: u64,
    pub applied_index: u64,
    /// Wall clock (ms since the Unix epoch) of its last request.
    pub last_fetch_ms: i64,
}

/// What the leader answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetched {
    pub leader_id: u64,
    pub term: u64,
    pub commit_index: u64,
    pub refused: Vec<(u64, Refusal)>,
    pub snapshot: Option<SnapshotChunk>,
    pub entries: Vec<ObservedEntry>,
    /// More is there to fetch at once.
    pub more: bool,
    pub quorum: QuorumView,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchResponse {
    /// This controller does not lead; the request's proposals were not taken.
    NotLeader {
        leader_hint: Option<u64>,
    },
    Fetched(Fetched),
}

/// What the observer cannot accept from a controller; the connection is dropped.
#[derive(Debug, thiserror::Error)]
pub enum ObserverError {
    #[error("snapshot at index {index}: {source}")]
    Snapshot { index: u64, source: DecodeError },
    #[error("snapshot of {total_bytes} bytes exceeds {OBSERVER_SNAPSHOT_MAX_BYTES}")]
    SnapshotTooLarge { total_bytes: u64 },
    #[error("entry {index} does not follow the applied index {applied_index}")]
    Gap { index: u64, applied_index: u64 },
}

struct SnapshotTransfer {
    index: u64,
    total_bytes: u64,
    bytes: Vec<u8>,
}

/// The broker-only node's copy of the metadata log's outcome, and its proposals waiting for
/// theirs. Lives on shard 0 of a broker-only node, for the process's life.
pub struct Observer {
    broker_id: BrokerId,
    incarnation: u64,
    image: MetadataImage,
    applied_index: u64,
    transfer: Option<SnapshotTransfer>,
    now_ms: u64,
    /// Proposals not yet sent, with their encoded size.
    unsent: VecDeque<(Proposal, usize)>,
    /// Proposals in the request awaiting its answer.
    in_flight: Vec<Proposal>,
    /// Proposals not yet answered.
    pending: PendingProposals,
    outcomes: Vec<ProposalOutcome>,
    leader: Option<Fetched>,
}

impl Observer {
    pub fn new(broker_id: BrokerId, incarnation: u64, proposal_timeout_ms: u64) -> Observer {
        Observer {
            broker_id,
            incarnation,
            image: MetadataImage::default(),
            applied_index: 0,
            transfer: None,
            now_ms: 0,
            unsent: VecDeque::new(),
            in_flight: Vec::new(),
            pending: PendingProposals::new(proposal_timeout_ms),
            outcomes: Vec::new(),
            leader: None,
        }
    }

    /// The image as of `applied_index` (empty until the first answer).
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The last answer of a leader, entries and snapshot taken out: its id, term, commit index
    /// and view of the quorum.
    pub fn leader(&self) -> Option<&Fetched> {
        self.leader.as_ref()
    }

    /// Forgets the leader (its connection broke, or it said it no longer leads).
    pub fn lost_leader(&mut self) {
        self.leader = None;
    }

    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        for outcome in self.pending.expire(now_ms) {
            // Never sent: it can never apply, so it is dropped, not only answered.
            self.unsent
                .retain(|(p, _)| p.proposal_id != outcome.proposal_id);
            self.outcomes.push(outcome);
        }
    }

    /// Queues `record` for the next request; its outcome comes out of `take_outcomes` once
    /// this observer applied it (or it timed out, or the leader refused it).
    pub fn propose(&mut self, record: MetadataRecord) -> Result<u64, ProposeError> {
        let origin = (self.broker_id as u64, self.incarnation);
        let (proposal, size_bytes) = self.pending.admit(record, origin, self.now_ms)?;
        let proposal_id = proposal.proposal_id;
        self.unsent.push_back((proposal, size_bytes));
        Ok(proposal_id)
    }

    /// The next request; `broker_epoch` is this process's registration's, once applied.
    pub fn request(&mut self, broker_epoch: Option<u64>) -> FetchRequest {
        // A request whose answer never came: its proposals may or may not be in the log, so
        // they stay pending until applied or timed out, and are not sent again.
        self.in_flight.clear();
        let mut total_bytes = 0;
        let take = self
            .unsent
            .iter()
            .take(FETCH_PROPOSALS_MAX)
            .take_while(|(_, size_bytes)| {
                total_bytes += size_bytes;
                total_bytes <= FETCH_PROPOSAL_MAX_BYTES
            })
            .count()
            .max(1)
            .min(self.unsent.len());
        self.in_flight = self.unsent.drain(..take).map(|(p, _)| p).collect();
        FetchRequest {
            broker_id: self.broker_id,
            broker_epoch,
            applied_index: self.applied_index,
            snapshot: self.transfer.as_ref().map(|t| SnapshotPosition {
                index: t.index,
                offset: t.bytes.len() as u64,
            }),
            proposals: self.in_flight.clone(),
            view_only: false,
        }
    }

    /// Takes the answer to the last `request`.
    pub fn on_response(&mut self, response: FetchResponse) -> Result<(), ObserverError> {
        let mut fetched = match response {
            FetchResponse::NotLeader { .. } => {
                // Not proposed anywhere: safe to send again, to the leader.
                for proposal in std::mem::take(&mut self.in_flight).into_iter().rev() {
                    let size_bytes = records::encode(&proposal.record).len();
                    self.unsent.push_front((proposal, size_bytes));
                }
                self.leader = None;
                return Ok(());
            }
            FetchResponse::Fetched(fetched) => fetched,
        };
        self.in_flight.clear();
        for (proposal_id, refusal) in std::mem::take(&mut fetched.refused) {
            if self.pending.settle(proposal_id) {
                self.outcomes.push(ProposalOutcome {
                    proposal_id,
                    result: Err(refusal.into()),
                });
            }
        }
        if let Some(chunk) = fetched.snapshot.take() {
            self.take_chunk(chunk)?;
        }
        for entry in std::mem::take(&mut fetched.entries) {
            if entry.index <= self.applied_index {
                continue;
            }
            if entry.index != self.applied_index + 1 {
                return Err(ObserverError::Gap {
                    index: entry.index,
                    applied_index: self.applied_index,
                });
            }
            self.applied_index = entry.index;
            let answered = apply_batch(
                &mut self.image,
                entry.index,
                &entry.data,
                (self.broker_id as u64, self.incarnation),
            );
            for (proposal_id, result) in answered {
                if self.pending.settle(proposal_id) {
                    self.outcomes.push(ProposalOutcome {
                        proposal_id,
                        result: result.map_err(ProposeError::Rejected),
                    });
                }
            }
        }
        self.leader = Some(fetched);
        Ok(())
    }

    fn take_chunk(&mut self, chunk: SnapshotChunk) -> Result<(), ObserverError> {
        if chunk.total_bytes > OBSERVER_SNAPSHOT_MAX_BYTES {
            return Err(ObserverError::SnapshotTooLarge {
                total_bytes: chunk.total_bytes,
            });
        }
        let continues = self.transfer.as_ref().is_some_and(|t| {
            t.index == chunk.index
                && t.total_bytes == chunk.total_bytes
                && t.bytes.len() as u64 == chunk.offset
        });
        if !continues {
            if chunk.offset != 0 {
                // A chunk of another snapshot: start again from its beginning.
                self.transfer = Some(SnapshotTransfer {
                    index: chunk.index,
                    total_bytes: chunk.total_bytes,
                    bytes: Vec::new(),
                });
                return Ok(());
            }
            self.transfer = Some(SnapshotTransfer {
                index: chunk.index,
                total_bytes: chunk.total_bytes,
                bytes: Vec::new(),
            });
        }
        let transfer = self.transfer.as_mut().expect("set above");
        transfer.bytes.extend_from_slice(&chunk.bytes);
        if (transfer.bytes.len() as u64) < transfer.total_bytes {
            return Ok(());
        }
        let transfer = self.transfer.take().expect("set above");
        let index = transfer.index;
        self.image = records::decode(&transfer.bytes)
            .map_err(|source| ObserverError::Snapshot { index, source })?;
        self.applied_index = index;
        Ok(())
    }

    /// Outcomes of this observer's proposals learnt since the last call.
    pub fn take_outcomes(&mut self) -> Vec<ProposalOutcome> {
        std::mem::take(&mut self.outcomes)
    }
}
