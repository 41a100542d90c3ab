//! A broker-only node's link to the quorum (`--roles broker`): no vote and no Raft log here.
//! Once a tick (or at once when a topic change waits) this task sends the quorum's leader a
//! fetch: its heartbeat, its proposals, and the index it applied; it applies the committed
//! records (or the snapshot) that come back to its `Observer`, copies the image to the shards
//! exactly as a combined node does (`image_sync`), and answers its callers once their
//! proposals are applied. A controller that does not lead names the leader; an unreachable one
//! is left for the next voter. Lives on shard 0 from start-up to shutdown.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{select, Either};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::TcpStream;
use riffle_controller::node::{ProposalOutcome, ProposeError};
use riffle_controller::observer::{FetchResponse, Observer};
use riffle_controller::records::{self, BrokerRegistration, MetadataRecord};
use riffle_controller::transport::{self, Handshake, PeerRole, OBSERVER_FRAME_MAX_BYTES};

use super::client::{ClusterClient, TopicChange};
use super::config::QuorumVoter;
use super::driver::{now_ms, registration, tick_every, Event, EVENTS_QUEUED_MAX};
use super::image_sync::{self, ImageSync};
use super::{observer_statuses, BrokerStatus, ClusterStatus, ClusterView, VoterStatus};
use crate::shard::Shard;
use crate::Shutdown;

/// How long connecting to a controller may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a controller may take to answer one fetch before the connection is dropped.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Fetches sent back to back while the leader says more is there; the rest waits a tick.
const FETCHES_PER_TICK_MAX: usize = 64;

/// Starts the fetcher of a broker-only node. Call on shard 0 only, once.
pub(super) fn start(
    shard: &Rc<Shard>,
    view: Arc<ClusterView>,
    shutdown: Shutdown,
) -> anyhow::Result<ClusterClient> {
    let config = shard.config();
    let quorum = config
        .controller_quorum
        .clone()
        .ok_or_else(|| anyhow::anyhow!("a broker-only node runs only with controller_quorum"))?;
    let (events, inbox) = local_channel::new_bounded(EVENTS_QUEUED_MAX);
    let events = Rc::new(events);
    let tick = Duration::from_millis(config.controller_tick_ms);
    glommio::spawn_local(tick_every(tick, events.clone())).detach();
    let handshake = transport::encode_handshake(&Handshake {
        cluster_id: config.cluster_id.clone(),
        node_id: config.node_id as u64,
        role: PeerRole::Observer,
    });
    let follower = BrokerOnly {
        observer: Observer::new(
            config.node_id,
            rand::random(),
            config.controller_proposal_timeout_ms,
        ),
        shard: shard.clone(),
        view,
        registration: registration(shard),
        registration_proposal: None,
        replies: BTreeMap::new(),
        sync: ImageSync::default(),
        voters: quorum.voters.clone(),
        target: 0,
        connection: None,
        handshake,
        published: None,
    };
    glommio::spawn_local(follower.run(inbox, shutdown)).detach();
    let line = format!(
        "riffle broker-only node {} following the controller quorum {:?}",
        config.node_id,
        quorum.ids()
    );
    tracing::info!("{line}");
    println!("{line}");
    Ok(ClusterClient { events })
}

/// The fetcher's state. Lives on shard 0.
struct BrokerOnly {
    observer: Observer,
    shard: Rc<Shard>,
    view: Arc<ClusterView>,
    registration: BrokerRegistration,
    registration_proposal: Option<u64>,
    /// Topic changes proposed for this node's callers, by proposal id.
    replies: BTreeMap<u64, TopicChange>,
    sync: ImageSync,
    voters: Vec<QuorumVoter>,
    /// The voter fetched from: the leader when known.
    target: usize,
    connection: Option<TcpStream>,
    handshake: Vec<u8>,
    published: Option<ClusterStatus>,
}

impl BrokerOnly {
    async fn run(mut self, inbox: LocalReceiver<Event>, shutdown: Shutdown) {
        loop {
            let next = Box::pin(inbox.recv());
            let event = match select(next, shutdown.clone()).await {
                Either::Left((Some(event), _)) => event,
                Either::Left((None, _)) | Either::Right(_) => return,
            };
            match event {
                Event::Tick => {
                    self.observer.tick(now_ms());
                    self.keep_registered();
                }
                Event::Change(change) => self.propose_change(change),
                // Raft's events reach voters only.
                _ => continue,
            }
            self.fetch().await;
            // Applied before the callers hear of it, so a client that created a topic here
            // finds it in this node's Metadata at once.
            if self.observer.applied_index() > 0 {
                let controller_id = self.observer.leader().map(|l| l.leader_id);
                self.sync
                    .sync(&self.shard, self.observer.image(), controller_id, true)
                    .await;
            }
            let outcomes = self.observer.take_outcomes();
            self.answer(outcomes);
            self.publish();
        }
    }

    /// Plans `change` against this node's copy of the image and queues it for the leader.
    fn propose_change(&mut self, change: TopicChange) {
        let planned = image_sync::plan(self.observer.image(), &change.change)
            .map_err(ProposeError::Rejected)
            .and_then(|record| self.observer.propose(record));
        match planned {
            Ok(proposal_id) => {
                self.replies.insert(proposal_id, change);
            }
            Err(e) => {
                let _ = change.reply.send(Err(e));
            }
        }
    }

    fn answer(&mut self, outcomes: Vec<ProposalOutcome>) {
        for outcome in outcomes {
            if self.registration_proposal == Some(outcome.proposal_id) {
                self.registration_proposal = None;
                if let Err(e) = &outcome.result {
                    tracing::debug!(error = %e, "broker-only node: registration not applied; retrying");
                }
            }
            if let Some(change) = self.replies.remove(&outcome.proposal_id) {
                let _ = change.reply.send(outcome.result);
            }
        }
    }

    /// Registers this broker (again after a restart) once it follows the log.
    fn keep_registered(&mut self) {
        if self.registration_proposal.is_some() || self.observer.leader().is_none() {
            return;
        }
        if self.broker_epoch().is_some() {
            return;
        }
        let record = MetadataRecord::RegisterBroker(self.registration.clone());
        if let Ok(proposal_id) = self.observer.propose(record) {
            self.registration_proposal = Some(proposal_id);
        }
    }

    /// The epoch of this process's registration, once applied here.
    fn broker_epoch(&self) -> Option<u64> {
        self.observer
            .image()
            .brokers
            .get(&self.registration.broker_id)
            .filter(|b| b.registration.incarnation_id == self.registration.incarnation_id)
            .map(|b| b.broker_epoch)
    }

    /// Fetches from the leader until it has nothing more (bounded); on any failure the
    /// connection is dropped and the next voter is tried at the next tick.
    async fn fetch(&mut self) {
        for _ in 0..FETCHES_PER_TICK_MAX {
            let request = self.observer.request(self.broker_epoch());
            let answer = self.round_trip(&records::encode(&request)).await;
            let response = match answer {
                Ok(response) => response,
                Err(e) => {
                    tracing::debug!(
                        controller = self.voters[self.target].node_id,
                        error = %e,
                        "broker-only node: fetch failed; trying the next controller"
                    );
                    self.connection = None;
                    self.observer.lost_leader();
                    self.target = (self.target + 1) % self.voters.len();
                    return;
                }
            };
            let not_leader = match &response {
                FetchResponse::NotLeader { leader_hint } => Some(*leader_hint),
                FetchResponse::Fetched(_) => None,
            };
            let more = matches!(&response, FetchResponse::Fetched(f) if f.more);
            if let Err(e) = self.observer.on_response(response) {
                tracing::warn!(error = %e, "broker-only node: dropping a controller's answer");
                self.connection = None;
                return;
            }
            if let Some(hint) = not_leader {
                self.connection = None;
                self.target = hint
                    .and_then(|id| self.voters.iter().position(|v| v.node_id == id))
                    .unwrap_or((self.target + 1) % self.voters.len());
                return;
            }
            if !more {
                return;
            }
        }
    }

    /// Sends one request on the connection to the target voter (connecting first) and reads
    /// its answer.
    async fn round_trip(&mut self, request: &[u8]) -> anyhow::Result<FetchResponse> {
        if self.connection.is_none() {
            let voter = &self.voters[self.target];
            self.connection = Some(connect(voter, &self.handshake).await?);
            tracing::info!(
                controller = voter.node_id,
                address = %voter.address(),
                "broker-only node: fetching the metadata log"
            );
        }
        let stream = self.connection.as_mut().expect("connected above");
        round_trip(stream, request).await
    }

    fn publish(&mut self) {
        let status = self.status();
        if self.published.as_ref() != Some(&status) {
            self.view.publish(status.clone());
            self.published = Some(status);
        }
    }

    /// The quorum as its leader last answered, and the brokers as this node applied them.
    fn status(&self) -> ClusterStatus {
        let leader = self.observer.leader();
        let commit_index = leader.map_or(0, |l| l.commit_index);
        let quorum = leader.map(|l| l.quorum.clone()).unwrap_or_default();
        let voters = self
            .voters
            .iter()
            .map(|v| {
                let seen = quorum.voters.iter().find(|q| q.node_id == v.node_id);
                let matched_index = seen.and_then(|q| q.matched_index);
                VoterStatus {
                    node_id: v.node_id,
                    address: v.address(),
                    matched_index,
                    lag: matched_index.map(|m| commit_index.saturating_sub(m)),
                    last_fetch_ms: seen.and_then(|q| q.last_fetch_ms),
                    last_caught_up_ms: seen.and_then(|q| q.last_caught_up_ms),
                }
            })
            .collect();
        let image = self.observer.image();
        ClusterStatus {
            node_id: self.registration.broker_id as u64,
            leader_id: leader.map(|l| l.leader_id),
            term: leader.map_or(0, |l| l.term),
            commit_index,
            applied_index: self.observer.applied_index(),
            voters,
            observers: observer_statuses(&quorum.observers, commit_index),
            brokers: image.brokers.values().map(BrokerStatus::from).collect(),
            topic_count: image.topics.len(),
        }
    }
}

/// Connects to `voter`'s controller listener as an observer (`handshake`).
pub(super) async fn connect(voter: &QuorumVoter, handshake: &[u8]) -> anyhow::Result<TcpStream> {
    let addr = voter.resolve()?;
    let mut stream = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).await?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    stream.write_all(handshake).await?;
    Ok(stream)
}

/// Writes one encoded request and reads the controller's answer.
pub(super) async fn round_trip(
    stream: &mut TcpStream,
    request: &[u8],
) -> anyhow::Result<FetchResponse> {
    stream.write_all(&transport::frame(request)).await?;
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).await?;
    let size_bytes = u32::from_be_bytes(length) as usize;
    anyhow::ensure!(
        size_bytes <= OBSERVER_FRAME_MAX_BYTES,
        "answer of {size_bytes} bytes exceeds {OBSERVER_FRAME_MAX_BYTES}"
    );
    let mut payload = vec![0u8; size_bytes];
    stream.read_exact(&mut payload).await?;
    Ok(records::decode(&payload)?)
}
