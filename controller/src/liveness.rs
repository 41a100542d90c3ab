//! Broker sessions as the controller leader sees them: the time of each broker's last
//! heartbeat, in the leader's memory only. An expired session becomes a `FenceBroker`
//! proposal, so the fencing itself is decided by the log and never by a follower's clock.

use std::collections::BTreeMap;

use crate::image::MetadataImage;
use crate::records::BrokerId;

pub(crate) struct BrokerLiveness {
    session_timeout_ms: u64,
    leader_since_ms: u64,
    last_heartbeat_ms: BTreeMap<BrokerId, u64>,
    /// When a fence of (broker, epoch) was last proposed, so it is not proposed every tick.
    fence_proposed_ms: BTreeMap<(BrokerId, u64), u64>,
}

impl BrokerLiveness {
    pub(crate) fn new(session_timeout_ms: u64) -> BrokerLiveness {
        BrokerLiveness {
            session_timeout_ms,
            leader_since_ms: 0,
            last_heartbeat_ms: BTreeMap::new(),
            fence_proposed_ms: BTreeMap::new(),
        }
    }

    /// Leadership was (re)gained at `now_ms`: every session starts afresh.
    pub(crate) fn reset(&mut self, now_ms: u64) {
        self.leader_since_ms = now_ms;
        self.last_heartbeat_ms.clear();
        self.fence_proposed_ms.clear();
    }

    pub(crate) fn heartbeat(&mut self, broker_id: BrokerId, now_ms: u64) {
        self.last_heartbeat_ms.insert(broker_id, now_ms);
    }

    /// Unfenced brokers of `image` whose session expired and whose fence is not already in
    /// flight, with the broker epoch the fence must name.
    pub(crate) fn expired(&mut self, image: &MetadataImage, now_ms: u64) -> Vec<(BrokerId, u64)> {
        let mut expired = Vec::new();
        for broker in image.usable_brokers() {
            let broker_id = broker.registration.broker_id;
            let last_ms = self
                .last_heartbeat_ms
                .get(&broker_id)
                .copied()
                .unwrap_or(0)
                .max(self.leader_since_ms);
            if now_ms < last_ms + self.session_timeout_ms {
                continue;
            }
            let key = (broker_id, broker.broker_epoch);
            let in_flight = self
                .fence_proposed_ms
                .get(&key)
                .is_some_and(|at_ms| now_ms < at_ms + self.session_timeout_ms);
            if !in_flight {
                self.fence_proposed_ms.insert(key, now_ms);
                expired.push(key);
            }
        }
        expired
    }
}
