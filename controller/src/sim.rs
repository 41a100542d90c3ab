//! Deterministic simulation of a controller quorum (test harness, used by
//! `tests/simulation.rs`): real `Node`s on real `RaftLog` directories, an in-memory network
//! that drops, duplicates, delays (so reorders) and partitions messages, crashes and
//! restarts, all drawn from one seed. Invariants are checked after every step.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use raft::eraftpb::{Message, MessageType};
use raft::Storage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::node::{Node, NodeConfig};
use crate::observer::{FetchResponse, Observer};
use crate::placement::plan_create_topic;
use crate::records::{self, BrokerRegistration, Listener, MetadataRecord, TopicId};

/// Simulated time per step; every live node is ticked once a step.
const STEP_MS: u64 = 10;
/// Longest a message may stay in the network, in steps (delays reorder messages).
const DELAY_STEPS_MAX: u64 = 4;
/// Steps a healed, fault-free cluster gets to elect a leader and converge.
const CONVERGE_STEPS_MAX: u64 = 2000;
/// Brokers the workload registers.
const SIM_BROKERS: i32 = 3;
/// The broker-only node that follows the log by fetching (`observer`).
const OBSERVER_ID: i32 = 100;

/// Fault rates of one run, per mille of messages.
#[derive(Clone, Debug)]
pub struct Faults {
    pub drop_per_mille: u32,
    pub duplicate_per_mille: u32,
}

/// What a run did, so a test can check that its scenarios really happened.
#[derive(Clone, Debug, Default)]
pub struct SimStats {
    pub steps: u64,
    pub elections: u64,
    pub crashes: u64,
    pub snapshots_sent: u64,
    pub proposals_acknowledged: u64,
    pub final_applied_index: u64,
}

struct Envelope {
    deliver_at_step: u64,
    message: Message,
}

pub struct Simulation {
    seed: u64,
    rng: StdRng,
    base_dir: PathBuf,
    voters: Vec<u64>,
    /// The first voters, who bootstrap the quorum; later ones join it empty.
    founders: usize,
    nodes: BTreeMap<u64, Option<Node>>,
    incarnations: u64,
    network: Vec<Envelope>,
    /// Links cut in both directions, as (lower id, higher id).
    cut_links: BTreeSet<(u64, u64)>,
    faults: Faults,
    step: u64,
    leaders_by_term: BTreeMap<u64, u64>,
    /// Term and CRC of every committed entry seen on any node.
    committed: BTreeMap<u64, (u64, u32)>,
    /// Encoded image after each applied index seen on any node.
    images: BTreeMap<u64, Vec<u8>>,
    /// Topics whose creation was acknowledged to the client.
    acknowledged_topics: BTreeSet<String>,
    pending_topics: BTreeMap<(u64, u64), String>,
    next_topic: u64,
    /// Applied index of each node when its image was last compared.
    image_checked_at: BTreeMap<u64, u64>,
    /// Brokers the workload no longer heartbeats.
    silent_brokers: BTreeSet<i32>,
    /// A broker-only node fetching from one voter at a time, its requests and answers lost
    /// like any message; it proposes topics too.
    observer: Observer,
    observer_target: u64,
    observer_topics: BTreeMap<u64, String>,
    next_observer_topic: u64,
    stats: SimStats,
}

impl Simulation {
    /// A cluster of `voter_count` nodes with their logs under `base_dir`.
    pub fn new(seed: u64, voter_count: u64, base_dir: PathBuf, faults: Faults) -> Simulation {
        let voters: Vec<u64> = (1..=voter_count).collect();
        let mut sim = Simulation {
            seed,
            rng: StdRng::seed_from_u64(seed),
            base_dir,
            voters: voters.clone(),
            founders: voters.len(),
            nodes: BTreeMap::new(),
            incarnations: 0,
            network: Vec::new(),
            cut_links: BTreeSet::new(),
            faults,
            step: 0,
            leaders_by_term: BTreeMap::new(),
            committed: BTreeMap::new(),
            images: BTreeMap::new(),
            acknowledged_topics: BTreeSet::new(),
            pending_topics: BTreeMap::new(),
            next_topic: 0,
            image_checked_at: BTreeMap::new(),
            silent_brokers: BTreeSet::new(),
            observer: Observer::new(OBSERVER_ID, 1, 200 * STEP_MS),
            observer_target: 1,
            observer_topics: BTreeMap::new(),
            next_observer_topic: 0,
            stats: SimStats::default(),
        };
        for id in voters {
            sim.start(id);
        }
        sim
    }

    fn node_config(&mut self, id: u64) -> NodeConfig {
        self.incarnations += 1;
        let mut config = NodeConfig::new(id, self.voters.clone(), self.incarnations);
        config.heartbeat_tick = 2;
        config.election_tick = 10;
        // Width-1 election ranges, distinct per node: raft-rs draws timeouts from an unseeded
        // thread_rng, so this is what makes a seed replay the same run.
        let min = 10 + 3 * id as usize;
        config.election_tick_range = Some((min, min + 1));
        config.snapshot_interval_entries = 25;
        config.proposal_timeout_ms = 200 * STEP_MS;
        config.broker_session_timeout_ms = 300 * STEP_MS;
        config
    }

    fn start(&mut self, id: u64) {
        let mut config = self.node_config(id);
        if !self.voters[..self.founders].contains(&id) {
            config.initial_voters.clear();
        }
        let dir = self.base_dir.join(format!("node-{id}"));
        let node = Node::open(config, &dir)
            .unwrap_or_else(|e| panic!("seed {}: node {id} cannot open: {e}", self.seed));
        self.nodes.insert(id, Some(node));
    }

    /// Drops node `id` (its files stay, fsync'd) and appends a torn frame to its log, as a
    /// crash in the middle of an unacknowledged append would leave it.
    pub fn crash(&mut self, id: u64) {
        if self.nodes.insert(id, None).flatten().is_some() {
            self.stats.crashes += 1;
            let torn: Vec<u8> = (0..self.rng.gen_range(1..12))
                .map(|_| self.rng.gen())
                .collect();
            let path = self.base_dir.join(format!("node-{id}")).join("log");
            let mut bytes = std::fs::read(&path).unwrap_or_default();
            bytes.extend_from_slice(&torn);
            std::fs::write(&path, bytes).expect("sim dir is writable");
        }
    }

    pub fn restart(&mut self, id: u64) {
        if self.nodes.get(&id).is_some_and(|n| n.is_none()) {
            self.start(id);
        }
    }

    /// Cuts every link between `side` and the other nodes.
    pub fn partition(&mut self, side: &[u64]) {
        for a in side {
            for b in &self.voters {
                if !side.contains(b) {
                    self.cut_links.insert((*a.min(b), *a.max(b)));
                }
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut_links.clear();
    }

    /// The workload stops heartbeating `broker_id`, as a broker that died would.
    pub fn silence_broker(&mut self, broker_id: i32) {
        self.silent_brokers.insert(broker_id);
    }

    /// Partitions led by `broker_id` in the image of the first live node.
    pub fn partitions_led_by(&self, broker_id: i32) -> usize {
        self.live_nodes().next().map_or(0, |n| {
            n.image()
                .topics
                .values()
                .flat_map(|t| &t.partitions)
                .filter(|p| p.leader == broker_id)
                .count()
        })
    }

    /// Starts node `id`, empty, and asks the leader to add it as a voter; `false` when no
    /// leader would take the proposal.
    pub fn add_voter(&mut self, id: u64) -> bool {
        let Some(leader) = self.leader() else {
            return false;
        };
        if !self.voters.contains(&id) {
            self.voters.push(id);
            self.start(id);
        }
        let leader = self
            .nodes
            .get_mut(&leader)
            .and_then(|n| n.as_mut())
            .expect("live");
        leader.propose_add_voter(id).is_ok()
    }

    /// Asks the leader to remove voter `id`.
    pub fn remove_voter(&mut self, id: u64) -> Result<(), crate::node::ProposeError> {
        let leader = self
            .leader()
            .ok_or(crate::node::ProposeError::NotController { leader_hint: None })?;
        let leader = self
            .nodes
            .get_mut(&leader)
            .and_then(|n| n.as_mut())
            .expect("live");
        leader.propose_remove_voter(id)
    }

    /// Stops and forgets node `id` once it is no longer a voter.
    pub fn retire(&mut self, id: u64) {
        self.nodes.remove(&id);
        self.voters.retain(|v| *v != id);
    }

    /// The voters as node `id` has applied them.
    pub fn applied_voters(&self, id: u64) -> Option<Vec<u64>> {
        let node = self.nodes.get(&id)?.as_ref()?;
        Some(node.status().voters)
    }

    /// Index of the latest snapshot in node `id`'s log.
    pub fn snapshot_index(&self, id: u64) -> Option<u64> {
        let node = self.nodes.get(&id)?.as_ref()?;
        Some(node.raft_log().latest_snapshot().get_metadata().index)
    }

    /// Asks node `id` to hand its leadership over, as a graceful shutdown does.
    pub fn transfer_leadership(&mut self, id: u64) -> Option<u64> {
        self.nodes.get_mut(&id)?.as_mut()?.transfer_leadership()
    }

    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    pub fn voters(&self) -> Vec<u64> {
        self.voters.clone()
    }

    pub fn leader(&self) -> Option<u64> {
        self.live_nodes()
            .find(|n| n.is_leader())
            .map(|n| n.node_id())
    }

    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    fn live_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values().flatten()
    }

    fn linked(&self, a: u64, b: u64) -> bool {
        !self.cut_links.contains(&(a.min(b), a.max(b)))
    }

    /// Runs `steps` steps of ticks, deliveries and client workload.
    pub fn run(&mut self, steps: u64) {
        for _ in 0..steps {
            self.one_step();
        }
    }

    fn one_step(&mut self) {
        self.step += 1;
        self.stats.steps += 1;
        let now_ms = self.step * STEP_MS;
        self.deliver_due();
        self.client_workload();
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            let Some(node) = self.nodes.get_mut(&id).and_then(|n| n.as_mut()) else {
                continue;
            };
            node.tick(now_ms);
            let seed = self.seed;
            node.drive()
                .unwrap_or_else(|e| panic!("seed {seed}: node {id} failed: {e}"));
            let messages = node.take_messages();
            self.collect_outcomes(id);
            for message in messages {
                self.send(message);
            }
        }
        self.observer_step(now_ms);
        self.check_invariants();
    }

    /// One step of the observer: maybe a topic proposal, maybe a fetch (request and answer each
    /// lost like a message); its image must equal the voters' at the index it applied.
    fn observer_step(&mut self, now_ms: u64) {
        self.observer.tick(now_ms);
        for outcome in self.observer.take_outcomes() {
            if let Some(name) = self.observer_topics.remove(&outcome.proposal_id) {
                if outcome.result.is_ok() {
                    self.acknowledged_topics.insert(name);
                }
            }
        }
        if self.rng.gen_range(0..40) == 0 {
            let name = format!("observed-{}", self.next_observer_topic);
            let topic_id =
                TopicId(((1u128 << 100) + self.next_observer_topic as u128).to_be_bytes());
            let planned = plan_create_topic(
                self.observer.image(),
                &name,
                topic_id,
                1,
                1,
                BTreeMap::new(),
            );
            if let Some(proposal_id) = planned.ok().and_then(|r| self.observer.propose(r).ok()) {
                self.next_observer_topic += 1;
                self.observer_topics.insert(proposal_id, name);
            }
        }
        if self.rng.gen_range(0..3) != 0 {
            return;
        }
        let request = self.observer.request(None);
        let request_lost = self.rng.gen_range(0..1000) < self.faults.drop_per_mille;
        let answer_lost = self.rng.gen_range(0..1000) < self.faults.drop_per_mille;
        let retarget = self.voters[self.rng.gen_range(0..self.voters.len())];
        let Some(Some(node)) = self.nodes.get_mut(&self.observer_target) else {
            self.observer_target = retarget;
            return;
        };
        if request_lost {
            self.observer_target = retarget;
            return;
        }
        let response = node.answer_fetch(request);
        if answer_lost {
            self.observer_target = retarget;
            return;
        }
        if let FetchResponse::NotLeader { leader_hint } = &response {
            self.observer_target = leader_hint.unwrap_or(retarget);
        }
        let seed = self.seed;
        self.observer
            .on_response(response)
            .unwrap_or_else(|e| panic!("seed {seed}: the observer refused an answer: {e}"));
        self.check_observer_image();
    }

    fn check_observer_image(&self) {
        let applied = self.observer.applied_index();
        if let Some(seen) = self.images.get(&applied) {
            assert!(
                *seen == records::encode(self.observer.image()),
                "seed {}: the observer has another image at index {applied}",
                self.seed
            );
        }
    }

    /// Runs until the observer applied `index` (fault-free network); panics with the seed
    /// otherwise, and checks its image.
    fn observer_catches_up(&mut self, index: u64) {
        let acknowledged = self.acknowledged_topics.clone();
        for _ in 0..CONVERGE_STEPS_MAX {
            if self.observer.applied_index() >= index {
                self.check_observer_image();
                for name in &acknowledged {
                    assert!(
                        self.observer.image().topic_by_name(name).is_some(),
                        "seed {}: acknowledged topic {name} missing on the observer",
                        self.seed
                    );
                }
                return;
            }
            self.one_step();
        }
        panic!(
            "seed {}: the observer did not reach index {index} (it is at {})",
            self.seed,
            self.observer.applied_index()
        );
    }

    fn send(&mut self, message: Message) {
        let is_snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
        if is_snapshot {
            self.stats.snapshots_sent += 1;
        }
        let dropped = !self.linked(message.from, message.to)
            || self.rng.gen_range(0..1000) < self.faults.drop_per_mille;
        if dropped {
            if is_snapshot {
                self.report_snapshot(message.from, message.to, false);
            }
            return;
        }
        let copies = if self.rng.gen_range(0..1000) < self.faults.duplicate_per_mille {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let deliver_at_step = self.step + self.rng.gen_range(0..=DELAY_STEPS_MAX);
            self.network.push(Envelope {
                deliver_at_step,
                message: message.clone(),
            });
        }
    }

    fn report_snapshot(&mut self, from: u64, to: u64, delivered: bool) {
        if let Some(Some(sender)) = self.nodes.get_mut(&from) {
            sender.report_snapshot(to, delivered);
        }
    }

    fn deliver_due(&mut self) {
        let step = self.step;
        let (due, later): (Vec<Envelope>, Vec<Envelope>) = std::mem::take(&mut self.network)
            .into_iter()
            .partition(|e| e.deliver_at_step <= step);
        self.network = later;
        for envelope in due {
            let message = envelope.message;
            let (from, to) = (message.from, message.to);
            let is_snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
            let linked = self.linked(from, to);
            let delivered = match self.nodes.get_mut(&to) {
                Some(Some(node)) if linked => {
                    node.step(message);
                    true
                }
                _ => false,
            };
            if is_snapshot {
                self.report_snapshot(from, to, delivered);
            }
        }
    }

    /// Registers brokers, heartbeats those not silenced, and creates topics through random
    /// live nodes.
    fn client_workload(&mut self) {
        let live: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.is_some())
            .map(|(id, _)| *id)
            .collect();
        if live.is_empty() || self.rng.gen_range(0..10) != 0 {
            return;
        }
        let via = live[self.rng.gen_range(0..live.len())];
        let node = self
            .nodes
            .get_mut(&via)
            .and_then(|n| n.as_mut())
            .expect("live");
        let unregistered = (1..=SIM_BROKERS).find(|b| !node.image().brokers.contains_key(b));
        if let Some(broker_id) = unregistered {
            let _ = node.propose(registration(broker_id));
            return;
        }
        if node.is_leader() {
            for broker_id in (1..=SIM_BROKERS).filter(|b| !self.silent_brokers.contains(b)) {
                let epoch = node.image().brokers[&broker_id].broker_epoch;
                let _ = node.broker_heartbeat(broker_id, epoch);
            }
        }
        let name = format!("topic-{}", self.next_topic);
        let topic_id = TopicId((self.next_topic as u128 + 1).to_be_bytes());
        let Ok(record) = plan_create_topic(node.image(), &name, topic_id, 2, 2, BTreeMap::new())
        else {
            return;
        };
        if let Ok(proposal_id) = node.propose(record) {
            self.next_topic += 1;
            self.pending_topics.insert((via, proposal_id), name);
        }
    }

    fn collect_outcomes(&mut self, id: u64) {
        let Some(Some(node)) = self.nodes.get_mut(&id) else {
            return;
        };
        for outcome in node.take_outcomes() {
            if let Some(name) = self.pending_topics.remove(&(id, outcome.proposal_id)) {
                if outcome.result.is_ok() {
                    self.stats.proposals_acknowledged += 1;
                    self.acknowledged_topics.insert(name);
                }
            }
        }
    }

    fn check_invariants(&mut self) {
        let seed = self.seed;
        let ids: Vec<u64> = self.live_nodes().map(|n| n.node_id()).collect();
        for id in ids {
            let node = self.nodes[&id].as_ref().expect("live");
            if node.is_leader() {
                let leader = *self.leaders_by_term.entry(node.term()).or_insert(id);
                assert_eq!(
                    leader,
                    id,
                    "seed {seed}: two leaders in term {}",
                    node.term()
                );
            }
            self.check_committed_entries(id);
            let node = self.nodes[&id].as_ref().expect("live");
            let applied = node.applied_index();
            if self.image_checked_at.insert(id, applied) == Some(applied) {
                continue;
            }
            let image = records::encode(node.image());
            let seen = self.images.entry(applied).or_insert_with(|| image.clone());
            assert!(
                *seen == image,
                "seed {seed}: node {id} has another image at index {applied}"
            );
        }
        self.stats.elections = self.leaders_by_term.len() as u64;
    }

    /// Every committed entry in a node's log must equal what any other node committed there.
    fn check_committed_entries(&mut self, id: u64) {
        let node = self.nodes[&id].as_ref().expect("live");
        let store = node.raft_log();
        let first = store.first_index().expect("in memory");
        let commit = node
            .status()
            .commit_index
            .min(store.last_index().expect("in memory"));
        if first > commit {
            return;
        }
        let entries = store
            .entries(
                first,
                commit + 1,
                None,
                raft::GetEntriesContext::empty(false),
            )
            .expect("committed entries are in the log");
        for entry in entries {
            let fingerprint = (entry.term, crc32c::crc32c(entry.get_data()));
            let seen = *self.committed.entry(entry.index).or_insert(fingerprint);
            assert_eq!(
                seen, fingerprint,
                "seed {}: node {id} forked at committed index {}",
                self.seed, entry.index
            );
        }
    }

    /// Heals the network, restarts every node, stops faults and runs until all nodes applied
    /// the same index with one leader and a fresh proposal committed; panics with the seed
    /// otherwise. Then checks that every acknowledged topic is in the image.
    pub fn converge(&mut self) {
        self.heal();
        for id in self.voters.clone() {
            self.restart(id);
        }
        self.set_faults(Faults {
            drop_per_mille: 0,
            duplicate_per_mille: 0,
        });
        let marker = format!("converge-{}", self.step);
        let mut proposed = false;
        for _ in 0..CONVERGE_STEPS_MAX {
            self.one_step();
            if !proposed {
                proposed = self.propose_marker(&marker);
                continue;
            }
            if self.converged(&marker) {
                self.check_acknowledged();
                self.observer_catches_up(self.max_applied_index());
                self.stats.final_applied_index = self
                    .live_nodes()
                    .map(|n| n.applied_index())
                    .max()
                    .unwrap_or(0);
                return;
            }
        }
        panic!(
            "seed {}: no convergence within {CONVERGE_STEPS_MAX} steps after healing",
            self.seed
        );
    }

    fn propose_marker(&mut self, marker: &str) -> bool {
        let Some(leader) = self.leader() else {
            return false;
        };
        let node = self
            .nodes
            .get_mut(&leader)
            .and_then(|n| n.as_mut())
            .expect("live");
        let topic_id = TopicId((u128::MAX - self.step as u128).to_be_bytes());
        match plan_create_topic(node.image(), marker, topic_id, 1, 1, BTreeMap::new()) {
            Ok(record) => node.propose(record).is_ok(),
            Err(_) => false,
        }
    }

    fn converged(&self, marker: &str) -> bool {
        let mut applied = self.live_nodes().map(|n| n.applied_index());
        let first = applied.next();
        let same_index = applied.all(|a| Some(a) == first);
        same_index
            && self
                .live_nodes()
                .all(|n| n.image().topic_by_name(marker).is_some())
            && self.live_nodes().count() == self.voters.len()
    }

    fn check_acknowledged(&self) {
        for node in self.live_nodes() {
            for name in &self.acknowledged_topics {
                assert!(
                    node.image().topic_by_name(name).is_some(),
                    "seed {}: acknowledged topic {name} missing on node {}",
                    self.seed,
                    node.node_id()
                );
            }
        }
    }

    /// Broker ids fenced in the image of the first live node.
    pub fn fenced_brokers(&self) -> Vec<i32> {
        self.live_nodes()
            .next()
            .map(|n| {
                n.image()
                    .brokers
                    .values()
                    .filter(|b| b.fenced)
                    .map(|b| b.registration.broker_id)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Applied index of a live node whose topics a majority can still grow.
    pub fn max_applied_index(&self) -> u64 {
        self.live_nodes()
            .map(|n| n.applied_index())
            .max()
            .unwrap_or(0)
    }

    /// Index of the last entry in node `id`'s log.
    pub fn last_index(&self, id: u64) -> Option<u64> {
        let node = self.nodes.get(&id)?.as_ref()?;
        node.raft_log().last_index().ok()
    }

    pub fn commit_index(&self, id: u64) -> Option<u64> {
        Some(self.nodes.get(&id)?.as_ref()?.status().commit_index)
    }

    pub fn applied_index(&self, id: u64) -> Option<u64> {
        self.nodes.get(&id)?.as_ref().map(|n| n.applied_index())
    }

    pub fn acknowledged_count(&self) -> usize {
        self.acknowledged_topics.len()
    }
}

fn registration(broker_id: i32) -> MetadataRecord {
    MetadataRecord::RegisterBroker(BrokerRegistration {
        broker_id,
        incarnation_id: [broker_id as u8; 16],
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092 + broker_id as u16,
        }],
        rack: Some(format!("rack-{}", broker_id % 2)),
        shard_count: 2,
    })
}
