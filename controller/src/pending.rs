//! A node's own proposals until their outcome, for a voter (`Node`) and a broker-only node
//! (`Observer`) alike: ids handed out in order, each with the deadline past which it is answered
//! REQUEST_TIMED_OUT. Sans-io: time is passed in.

use std::collections::BTreeMap;

use crate::node::{ProposalOutcome, ProposeError, PENDING_PROPOSALS_MAX, RECORD_MAX_BYTES};
use crate::records::{self, MetadataRecord, Proposal};

pub(crate) struct PendingProposals {
    /// Each pending proposal's id and deadline (ms).
    deadlines: BTreeMap<u64, u64>,
    next_id: u64,
    timeout_ms: u64,
}

impl PendingProposals {
    pub fn new(timeout_ms: u64) -> PendingProposals {
        PendingProposals {
            deadlines: BTreeMap::new(),
            next_id: 0,
            timeout_ms,
        }
    }

    /// Admits `record` from `(origin_node, origin_incarnation)` at `now_ms`: the proposal and
    /// its encoded size, or why not (`PENDING_PROPOSALS_MAX` pending, over `RECORD_MAX_BYTES`).
    pub fn admit(
        &mut self,
        record: MetadataRecord,
        (origin_node, origin_incarnation): (u64, u64),
        now_ms: u64,
    ) -> Result<(Proposal, usize), ProposeError> {
        if self.deadlines.len() >= PENDING_PROPOSALS_MAX {
            return Err(ProposeError::TooManyPending);
        }
        let size_bytes = records::encode(&record).len();
        if size_bytes > RECORD_MAX_BYTES {
            return Err(ProposeError::RecordTooLarge { size_bytes });
        }
        let proposal_id = self.next_id;
        self.next_id += 1;
        self.deadlines.insert(proposal_id, now_ms + self.timeout_ms);
        let proposal = Proposal {
            origin_node,
            origin_incarnation,
            proposal_id,
            record,
        };
        Ok((proposal, size_bytes))
    }

    /// Forgets `proposal_id` (applied or refused); whether it was still pending.
    pub fn settle(&mut self, proposal_id: u64) -> bool {
        self.deadlines.remove(&proposal_id).is_some()
    }

    /// Removes the proposals past their deadline at `now_ms` and answers them timed out.
    pub fn expire(&mut self, now_ms: u64) -> Vec<ProposalOutcome> {
        let expired: Vec<u64> = self
            .deadlines
            .iter()
            .filter(|(_, deadline_ms)| **deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        let timeout_ms = self.timeout_ms;
        expired
            .into_iter()
            .map(|proposal_id| {
                self.deadlines.remove(&proposal_id);
                ProposalOutcome {
                    proposal_id,
                    result: Err(ProposeError::RequestTimedOut { timeout_ms }),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> MetadataRecord {
        MetadataRecord::FenceBroker {
            broker_id: 1,
            broker_epoch: 1,
        }
    }

    #[test]
    fn proposals_get_ids_in_order_and_time_out_at_their_deadline() {
        let mut pending = PendingProposals::new(100);
        let (a, _) = pending.admit(record(), (1, 9), 0).unwrap();
        let (b, _) = pending.admit(record(), (1, 9), 50).unwrap();
        assert_eq!((a.proposal_id, b.proposal_id), (0, 1));
        assert_eq!((a.origin_node, a.origin_incarnation), (1, 9));
        assert!(pending.expire(99).is_empty());
        let expired = pending.expire(100);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].proposal_id, 0);
        assert!(matches!(
            expired[0].result,
            Err(ProposeError::RequestTimedOut { timeout_ms: 100 })
        ));
        assert!(pending.settle(1));
        assert!(!pending.settle(1), "settled once");
        assert!(pending.expire(1000).is_empty());
    }

    #[test]
    fn pending_proposals_are_bounded() {
        let mut pending = PendingProposals::new(100);
        for _ in 0..PENDING_PROPOSALS_MAX {
            pending.admit(record(), (1, 1), 0).unwrap();
        }
        assert!(matches!(
            pending.admit(record(), (1, 1), 0),
            Err(ProposeError::TooManyPending)
        ));
    }
}
