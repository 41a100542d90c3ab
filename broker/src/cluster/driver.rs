//! The controller task: owns this node's `Node` on shard 0 and is the only code that touches
//! it. Every event (a tick, a peer's message, a writer's report) is handed to the node, then
//! `drive` persists (fsync) before the messages that need it are queued to the peers, applies
//! what committed, and the quorum's state is published. Lives from start-up to shutdown; at
//! shutdown a leader hands leadership to the most caught-up follower first.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::channel::oneshot;
use futures::future::{select, Either};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use riffle_controller::eraftpb::{Message, MessageType};
use riffle_controller::image::MetadataError;
use riffle_controller::node::{Node, NodeConfig, ProposalOutcome, ProposeError};
use riffle_controller::observer::{
    FetchRequest, FetchResponse, Fetched, ObserverView, QuorumView, VoterView, OBSERVERS_MAX,
};
use riffle_controller::records;
use riffle_controller::records::{
    BrokerRegistration, Listener, MetadataRecord, PartitionAssignment, TopicId,
};
use riffle_controller::transport::{self, Handshake, PeerRole};

use super::broker_only;
use super::client::{ClusterClient, TopicChange};
use super::config::QuorumVoter;
use super::image_sync::{self, ImageSync};
use super::peers::{self, PeerLink};
use super::{
    observer_statuses, wall_clock_ms, BrokerStatus, ClusterStatus, ClusterView, VoterStatus,
    CONTROLLER_DIR,
};
use crate::shard::Shard;
use crate::Shutdown;

/// Events queued to the controller task; past it, peers' readers and the ticker wait.
pub(super) const EVENTS_QUEUED_MAX: usize = 4096;
/// A follower refreshes the leader's view of the quorum every this many ticks.
const LEADER_VIEW_EVERY_TICKS: u32 = 5;
/// How long a leader that is shutting down waits for its transfer to be sent.
const TRANSFER_GRACE: Duration = Duration::from_millis(300);

/// What wakes the controller task.
pub(crate) enum Event {
    Tick,
    Message(Message),
    /// A writer could not reach the peer.
    Unreachable {
        to: u64,
    },
    /// A snapshot message was written to the peer, or lost.
    SnapshotSent {
        to: u64,
        delivered: bool,
    },
    /// A topic change from this node's metadata controller.
    Change(TopicChange),
    /// A broker-only node's fetch (`riffle_controller::observer`), answered on `reply`.
    Fetch {
        request: FetchRequest,
        reply: oneshot::Sender<FetchResponse>,
    },
    /// On a follower: the leader's answer to a view-only fetch (`fetch_leader_view`).
    LeaderView(Box<Fetched>),
}

/// Milliseconds on a monotonic clock shared by the controller's tasks.
pub(crate) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Opens the node's Raft log, binds the controller listener and starts the controller task and
/// its transport on this shard. Call on shard 0 only, once.
pub(crate) fn start(
    shard: &Rc<Shard>,
    view: Arc<ClusterView>,
    shutdown: Shutdown,
) -> anyhow::Result<ClusterClient> {
    let config = shard.config();
    let quorum = config
        .controller_quorum
        .clone()
        .context("the controller runs only with controller_quorum")?;
    let node_id = config.node_id as u64;
    let me = quorum
        .voter(node_id)
        .context("node_id is a voter (checked by BrokerConfig::validate)")?;
    let listen = match config.controller_listen {
        Some(addr) => addr,
        None => me.resolve()?,
    };
    let listener = TcpListener::bind(listen)
        .with_context(|| format!("cannot listen for controllers on {listen}"))?;
    let listen = listener.local_addr().unwrap_or(listen);

    let mut node_config = NodeConfig::new(node_id, quorum.ids(), rand::random());
    node_config.heartbeat_tick = config.controller_heartbeat_tick;
    node_config.election_tick = config.controller_election_tick;
    node_config.broker_session_timeout_ms = config.broker_session_timeout_ms;
    node_config.proposal_timeout_ms = config.controller_proposal_timeout_ms;
    node_config.snapshot_interval_entries = config.controller_snapshot_interval_entries;
    let dir = config.data_dir.join(CONTROLLER_DIR);
    let node = Node::open(node_config, &dir)
        .with_context(|| format!("opening the controller log in {}", dir.display()))?;

    let (events, inbox) = local_channel::new_bounded(EVENTS_QUEUED_MAX);
    // Shared by the transport's tasks and the ticker; local channels' senders do not clone.
    let events = Rc::new(events);
    let handshake = Handshake {
        cluster_id: config.cluster_id.clone(),
        node_id,
        role: PeerRole::Voter,
    };
    let others = quorum
        .voters
        .iter()
        .filter(|v| v.node_id != node_id)
        .cloned()
        .collect();
    let links = peers::connect_peers(others, &handshake, &events);
    let accept = peers::accept_peers(
        listener,
        config.cluster_id.clone(),
        quorum.ids(),
        events.clone(),
    );
    glommio::spawn_local(accept).detach();
    let tick = Duration::from_millis(config.controller_tick_ms);
    glommio::spawn_local(tick_every(tick, events.clone())).detach();
    let leader = Rc::new(Cell::new(None));
    let view_handshake = transport::encode_handshake(&Handshake {
        cluster_id: config.cluster_id.clone(),
        node_id,
        role: PeerRole::Observer,
    });
    let leader_view = fetch_leader_view(
        quorum.voters.clone(),
        node_id,
        view_handshake,
        leader.clone(),
        tick * LEADER_VIEW_EVERY_TICKS,
        events.clone(),
    );
    glommio::spawn_local(leader_view).detach();
    let registration = registration(shard);
    let controller = Controller {
        node,
        links,
        view,
        addresses: quorum
            .voters
            .iter()
            .map(|v| (v.node_id, v.address()))
            .collect(),
        published: None,
        shard: shard.clone(),
        registration,
        registration_proposal: None,
        replies: BTreeMap::new(),
        sync: ImageSync::default(),
        observers: BTreeMap::new(),
        leader_view: None,
        leader: leader.clone(),
        takeover: Takeover::at(&dir),
        follower_times: BTreeMap::new(),
    };
    glommio::spawn_local(controller.run(inbox, shutdown)).detach();
    let line = format!(
        "riffle controller listening on {listen}, node id {node_id}, quorum {:?}",
        quorum.ids()
    );
    tracing::info!("{line}");
    println!("{line}");
    Ok(ClusterClient { events })
}

/// On a follower, asks the leader for its view of the quorum every `every`, so DescribeQuorum
/// and `/v1/cluster` answered here show what only the leader knows. Ends with the controller.
async fn fetch_leader_view(
    voters: Vec<QuorumVoter>,
    node_id: u64,
    handshake: Vec<u8>,
    leader: Rc<Cell<Option<u64>>>,
    every: Duration,
    events: Rc<LocalSender<Event>>,
) {
    let request = records::encode(&FetchRequest::view_only(node_id));
    let mut connection: Option<(u64, TcpStream)> = None;
    loop {
        glommio::timer::sleep(every).await;
        let Some(target) = leader.get().filter(|id| *id != node_id) else {
            connection = None;
            continue;
        };
        if connection.as_ref().is_none_or(|(id, _)| *id != target) {
            let Some(voter) = voters.iter().find(|v| v.node_id == target) else {
                continue;
            };
            connection = broker_only::connect(voter, &handshake)
                .await
                .ok()
                .map(|stream| (target, stream));
        }
        let Some((_, stream)) = connection.as_mut() else {
            continue;
        };
        match broker_only::round_trip(stream, &request).await {
            Ok(FetchResponse::Fetched(fetched)) => {
                if events
                    .send(Event::LeaderView(Box::new(fetched)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(FetchResponse::NotLeader { .. }) | Err(_) => connection = None,
        }
    }
}

/// This process's broker registration: a new incarnation per start.
pub(super) fn registration(shard: &Rc<Shard>) -> BrokerRegistration {
    let config = shard.config();
    let (host, port) = config.advertised_host_port();
    BrokerRegistration {
        broker_id: config.node_id,
        incarnation_id: rand::random(),
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host,
            port: u16::try_from(port).unwrap_or(0),
        }],
        rack: config.broker_rack.clone(),
        shard_count: shard.shared.shard_count() as u32,
    }
}

pub(super) async fn tick_every(tick: Duration, events: Rc<LocalSender<Event>>) {
    loop {
        glommio::timer::sleep(tick).await;
        if events.send(Event::Tick).await.is_err() {
            return;
        }
    }
}

/// The controller task's state. Lives on shard 0.
struct Controller {
    node: Node,
    links: Vec<Rc<PeerLink>>,
    view: Arc<ClusterView>,
    addresses: Vec<(u64, String)>,
    published: Option<ClusterStatus>,
    /// Shard 0, whose metadata controller keeps the broker image the shards serve from.
    shard: Rc<Shard>,
    /// This broker's registration (a new incarnation per process start).
    registration: BrokerRegistration,
    registration_proposal: Option<u64>,
    /// Topic changes proposed for this node's callers, by proposal id.
    replies: BTreeMap<u64, TopicChange>,
    sync: ImageSync,
    /// On the leader: the broker-only nodes that fetch from it, for DescribeQuorum.
    observers: BTreeMap<u64, ObserverView>,
    /// On a follower: the leader's last answer to a view-only fetch.
    leader_view: Option<Fetched>,
    /// The leader as of the last event, for `fetch_leader_view`.
    leader: Rc<Cell<Option<u64>>>,
    takeover: Takeover,
    /// On the leader: when each follower last answered and was last caught up (wall clock ms).
    follower_times: BTreeMap<u64, FollowerTimes>,
}

/// What DescribeQuorum reports of a follower's timing, as the leader saw it.
#[derive(Default, Clone, Copy)]
struct FollowerTimes {
    last_fetch_ms: Option<i64>,
    last_caught_up_ms: Option<i64>,
}

/// The topics this node had before it joined a quorum (its `metadata.json`) become records of
/// the quorum once, so upgrading loses nothing. Until that is done the quorum's image is not
/// authoritative here: a local topic it does not know is kept.
struct Takeover {
    /// Written once every local topic is in the quorum's image.
    marker: PathBuf,
    done: bool,
    in_flight: BTreeSet<u64>,
    failed: bool,
}

/// File under the controller dir saying the local topics were taken over.
const TAKEOVER_MARKER: &str = "local_topics_taken_over";

impl Takeover {
    fn at(dir: &std::path::Path) -> Takeover {
        let marker = dir.join(TAKEOVER_MARKER);
        Takeover {
            done: marker.exists(),
            marker,
            in_flight: BTreeSet::new(),
            failed: false,
        }
    }
}

impl Controller {
    async fn run(mut self, inbox: LocalReceiver<Event>, shutdown: Shutdown) {
        loop {
            let next = Box::pin(inbox.recv());
            let event = match select(next, shutdown.clone()).await {
                Either::Left((Some(event), _)) => event,
                Either::Left((None, _)) => return,
                Either::Right(_) => break,
            };
            let tick = matches!(event, Event::Tick);
            self.handle(event);
            if tick {
                self.keep_registered();
                self.take_over_local_topics();
                self.heartbeat_live_brokers();
            }
            let outcomes = match self.step() {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    fail(e);
                    return;
                }
            };
            self.leader.set(self.node.leader_id());
            self.sync_image().await;
            self.answer(outcomes);
        }
        self.hand_over_leadership().await;
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick => self.node.tick(now_ms()),
            Event::Message(message) => {
                self.note_follower_answer(&message);
                self.node.step(message);
            }
            Event::Unreachable { to } => self.node.report_unreachable(to),
            Event::SnapshotSent { to, delivered } => self.node.report_snapshot(to, delivered),
            Event::Change(change) => self.propose_change(change),
            Event::Fetch { request, reply } => {
                let _ = reply.send(self.answer_fetch(request));
            }
            Event::LeaderView(fetched) => self.leader_view = Some(*fetched),
        }
    }

    /// Answers a broker-only node; on the leader, remembers it as an observer and hands it
    /// the quorum as the leader sees it.
    fn answer_fetch(&mut self, request: FetchRequest) -> FetchResponse {
        let (node_id, applied_index) = (request.broker_id as u64, request.applied_index);
        let view_only = request.view_only;
        let mut response = self.node.answer_fetch(request);
        if let FetchResponse::Fetched(fetched) = &mut response {
            let known = self.observers.contains_key(&node_id);
            if !view_only && (self.observers.len() < OBSERVERS_MAX || known) {
                self.observers.insert(
                    node_id,
                    ObserverView {
                        node_id,
                        applied_index,
                        last_fetch_ms: wall_clock_ms(),
                    },
                );
            }
            fetched.quorum = self.quorum_view();
        }
        response
    }

    /// The leader's view of the quorum, for broker-only nodes to show.
    fn quorum_view(&self) -> QuorumView {
        let status = self.published.clone().unwrap_or_else(|| self.status());
        QuorumView {
            voters: status
                .voters
                .iter()
                .map(|v| VoterView {
                    node_id: v.node_id,
                    matched_index: v.matched_index,
                    last_fetch_ms: v.last_fetch_ms,
                    last_caught_up_ms: v.last_caught_up_ms,
                })
                .collect(),
            observers: self.observers.values().cloned().collect(),
        }
    }

    /// On the leader, a follower's answer to an append or heartbeat is its "fetch" (KRaft's
    /// followers fetch; raft-rs's leader pushes and they answer).
    fn note_follower_answer(&mut self, message: &Message) {
        let answer = matches!(
            message.get_msg_type(),
            MessageType::MsgAppendResponse | MessageType::MsgHeartbeatResponse
        );
        if answer && self.node.is_leader() {
            self.follower_times
                .entry(message.from)
                .or_default()
                .last_fetch_ms = Some(wall_clock_ms());
        }
    }

    /// Plans `change` against the quorum's image and proposes it; a refusal is answered now.
    fn propose_change(&mut self, change: TopicChange) {
        let planned = image_sync::plan(self.node.image(), &change.change)
            .map_err(ProposeError::Rejected)
            .and_then(|record| self.node.propose(record));
        match planned {
            Ok(proposal_id) => {
                self.replies.insert(proposal_id, change);
            }
            Err(e) => {
                let _ = change.reply.send(Err(e));
            }
        }
    }

    /// Answers this node's proposals once applied (and copied into the broker image).
    fn answer(&mut self, outcomes: Vec<ProposalOutcome>) {
        for outcome in outcomes {
            if self.registration_proposal == Some(outcome.proposal_id) {
                self.registration_proposal = None;
                if let Err(e) = &outcome.result {
                    tracing::debug!(error = %e, "controller: broker registration not applied; retrying");
                }
            }
            if self.takeover.in_flight.remove(&outcome.proposal_id) {
                self.takeover_answered(&outcome.result);
            }
            if let Some(change) = self.replies.remove(&outcome.proposal_id) {
                let _ = change.reply.send(outcome.result);
            }
        }
    }

    /// Proposes this node's pre-quorum topics (ids, partition counts, configs kept) once it is
    /// caught up and registered; a name the quorum already has is left to it. Their one replica
    /// is this node, on the shard that holds its data, so nothing written before is lost.
    fn take_over_local_topics(&mut self) {
        let status = self.node.status();
        let image = self.node.image();
        let broker_id = self.registration.broker_id;
        if !self.shard.config().roles.broker
            || self.takeover.done
            || !self.takeover.in_flight.is_empty()
            || status.leader_id.is_none()
            || status.applied_index < status.commit_index
            || !image.brokers.contains_key(&broker_id)
        {
            return;
        }
        let records: Vec<MetadataRecord> = self
            .shard
            .image()
            .topics
            .values()
            .filter(|t| image.topic_by_name(&t.name).is_none())
            .map(|t| MetadataRecord::CreateTopic {
                name: t.name.clone(),
                topic_id: TopicId(t.id),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| PartitionAssignment {
                        replicas: vec![broker_id],
                        shards: vec![p.shard],
                    })
                    .collect(),
                configs: t.configs.clone(),
            })
            .collect();
        for record in records {
            match self.node.propose(record) {
                Ok(proposal_id) => {
                    self.takeover.in_flight.insert(proposal_id);
                }
                Err(_) => self.takeover.failed = true,
            }
        }
        if self.takeover.in_flight.is_empty() {
            self.takeover_answered(&Ok(()));
        }
    }

    /// One taken-over topic answered; once all are, the takeover is done (or retried).
    fn takeover_answered(&mut self, result: &Result<(), ProposeError>) {
        let refused = matches!(
            result,
            Err(e) if !matches!(e, ProposeError::Rejected(MetadataError::TopicAlreadyExists { .. }))
        );
        self.takeover.failed |= refused;
        if !self.takeover.in_flight.is_empty() {
            return;
        }
        if std::mem::take(&mut self.takeover.failed) {
            return;
        }
        match write_marker(&self.takeover.marker) {
            Ok(()) => {
                tracing::info!("controller: this node's topics are in the quorum's metadata");
                self.takeover.done = true;
                // Copy again, now removing local topics the quorum does not have.
                self.sync.recopy_topics();
            }
            Err(e) => tracing::warn!(error = %e, "controller: cannot record the topic takeover"),
        }
    }

    /// Registers this broker (again, after a restart) once the quorum has a leader; a
    /// controller-only node is no broker and never registers.
    fn keep_registered(&mut self) {
        if !self.shard.config().roles.broker {
            return;
        }
        let broker_id = self.registration.broker_id;
        let registered = self
            .node
            .image()
            .brokers
            .get(&broker_id)
            .is_some_and(|b| b.registration.incarnation_id == self.registration.incarnation_id);
        if registered || self.registration_proposal.is_some() || self.node.leader_id().is_none() {
            return;
        }
        let record = MetadataRecord::RegisterBroker(self.registration.clone());
        if let Ok(proposal_id) = self.node.propose(record) {
            self.registration_proposal = Some(proposal_id);
        }
    }

    /// On the leader: every combined node whose controller answers raft is a live broker, so
    /// raft's own heartbeats keep broker sessions; a node that stops answering is fenced after
    /// `broker_session_timeout_ms`.
    fn heartbeat_live_brokers(&mut self) {
        let live: Vec<(i32, u64)> = self
            .node
            .recently_active_voters()
            .into_iter()
            .filter_map(|id| {
                let broker_id = i32::try_from(id).ok()?;
                let broker = self.node.image().brokers.get(&broker_id)?;
                Some((broker_id, broker.broker_epoch))
            })
            .collect();
        for (broker_id, broker_epoch) in live {
            let _ = self.node.broker_heartbeat(broker_id, broker_epoch);
        }
    }

    async fn sync_image(&mut self) {
        let controller_id = self.node.leader_id();
        let authoritative = self.takeover.done;
        self.sync
            .sync(&self.shard, self.node.image(), controller_id, authoritative)
            .await;
    }

    /// Persists, sends, applies (`Node::drive`), then publishes the quorum's state; returns
    /// the outcomes of this node's proposals.
    fn step(&mut self) -> Result<Vec<ProposalOutcome>, riffle_controller::node::ControllerError> {
        self.node.drive()?;
        let messages = self.node.take_messages();
        self.send(messages);
        self.publish();
        Ok(self.node.take_outcomes())
    }

    fn send(&mut self, messages: Vec<Message>) {
        for message in messages {
            let to = message.to;
            let is_snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
            if is_snapshot {
                let index = message.get_snapshot().get_metadata().index;
                tracing::info!(
                    to,
                    index,
                    "controller: sending a snapshot to a voter behind the log"
                );
            }
            let Some(link) = self.links.iter().find(|l| l.voter.node_id == to) else {
                // A node outside the configured quorum (not possible until voters change).
                if is_snapshot {
                    self.node.report_snapshot(to, false);
                }
                continue;
            };
            if !link.push(message) {
                self.node.report_unreachable(to);
                if is_snapshot {
                    self.node.report_snapshot(to, false);
                }
            }
        }
    }

    fn publish(&mut self) {
        self.note_caught_up_followers();
        let status = self.status();
        if self.published.as_ref() != Some(&status) {
            self.view.publish(status.clone());
            self.published = Some(status);
        }
    }

    /// On the leader, stamps the voters that hold every committed entry; elsewhere forgets
    /// (a later leader must not show what an earlier term saw).
    fn note_caught_up_followers(&mut self) {
        if !self.node.is_leader() {
            self.follower_times.clear();
            self.observers.clear();
            return;
        }
        // An observer silent for a broker session is gone from DescribeQuorum.
        let stale_before_ms = wall_clock_ms()
            - i64::try_from(self.shard.config().broker_session_timeout_ms).unwrap_or(i64::MAX);
        self.observers
            .retain(|_, o| o.last_fetch_ms >= stale_before_ms);
        let quorum = self.node.status();
        let now = wall_clock_ms();
        for (node_id, matched) in quorum.matched {
            if node_id != quorum.node_id && matched >= quorum.commit_index {
                self.follower_times
                    .entry(node_id)
                    .or_default()
                    .last_caught_up_ms = Some(now);
            }
        }
    }

    /// The quorum as this node sees it; a follower fills in what only the leader knows (each
    /// voter's log end and times, the observers) from the leader's last view.
    fn status(&self) -> ClusterStatus {
        let quorum = self.node.status();
        let view = self.leader_view.as_ref().filter(|v| {
            !self.node.is_leader() && Some(v.leader_id) == quorum.leader_id && v.term == quorum.term
        });
        let voters = quorum
            .voters
            .iter()
            .map(|&node_id| {
                let times = self
                    .follower_times
                    .get(&node_id)
                    .copied()
                    .unwrap_or_default();
                let mut voter = VoterStatus {
                    node_id,
                    address: self
                        .addresses
                        .iter()
                        .find(|(id, _)| *id == node_id)
                        .map(|(_, address)| address.clone())
                        .unwrap_or_default(),
                    matched_index: quorum.matched.get(&node_id).copied(),
                    lag: None,
                    last_fetch_ms: times.last_fetch_ms,
                    last_caught_up_ms: times.last_caught_up_ms,
                };
                let mut commit_index = quorum.commit_index;
                if let Some(seen) = view.and_then(|v| {
                    commit_index = v.commit_index;
                    v.quorum.voters.iter().find(|q| q.node_id == node_id)
                }) {
                    voter.matched_index = seen.matched_index;
                    voter.last_fetch_ms = seen.last_fetch_ms;
                    voter.last_caught_up_ms = seen.last_caught_up_ms;
                }
                voter.lag = voter.matched_index.map(|m| commit_index.saturating_sub(m));
                voter
            })
            .collect();
        let observers = match view {
            Some(v) => observer_statuses(&v.quorum.observers, v.commit_index),
            None => observer_statuses(self.observers.values(), quorum.commit_index),
        };
        let image = self.node.image();
        let brokers = image.brokers.values().map(BrokerStatus::from).collect();
        ClusterStatus {
            node_id: quorum.node_id,
            leader_id: quorum.leader_id,
            term: quorum.term,
            commit_index: quorum.commit_index,
            applied_index: quorum.applied_index,
            voters,
            observers,
            brokers,
            topic_count: image.topics.len(),
        }
    }

    /// A leader that stops asks its most caught-up follower to take over, so the quorum does
    /// not wait a whole election timeout (the graceful shutdown).
    async fn hand_over_leadership(&mut self) {
        let Some(target) = self.node.transfer_leadership() else {
            return;
        };
        tracing::info!(target, "controller: shutting down; transferring leadership");
        if let Err(e) = self.node.drive() {
            fail(e);
            return;
        }
        let messages = self.node.take_messages();
        self.send(messages);
        glommio::timer::sleep(TRANSFER_GRACE).await;
    }
}

/// Writes the (empty) takeover marker durably. Blocking, like the Raft log's own writes.
fn write_marker(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::create(path)?.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The node's storage failed: it cannot go on (raft-rs's node is inoperable after a storage
/// error), so the process stops rather than serve with a controller that no longer votes.
fn fail(error: riffle_controller::node::ControllerError) {
    tracing::error!(%error, "controller failed; stopping the broker");
    crate::server::stop_process();
}
