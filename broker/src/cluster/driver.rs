//! The controller task: owns this node's `Node` on shard 0 and is the only code that touches
//! it. Every event (a tick, a peer's message, a writer's report) is handed to the node, then
//! `drive` persists (fsync) before the messages that need it are queued to the peers, applies
//! what committed, and the quorum's state is published. Lives from start-up to shutdown; at
//! shutdown a leader hands leadership to the most caught-up follower first.

use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::{select, Either};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpListener;
use riffle_controller::eraftpb::{Message, MessageType};
use riffle_controller::node::{Node, NodeConfig};
use riffle_controller::transport::Handshake;

use super::peers::{self, PeerLink};
use super::{BrokerStatus, ClusterStatus, ClusterView, VoterStatus};
use crate::config::BrokerConfig;
use crate::Shutdown;

/// Events queued to the controller task; past it, peers' readers and the ticker wait.
const EVENTS_QUEUED_MAX: usize = 4096;
/// Directory of the controller's Raft log under the data dir.
pub(crate) const CONTROLLER_DIR: &str = "controller";
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
}

/// Milliseconds on a monotonic clock shared by the controller's tasks.
pub(crate) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Opens the node's Raft log, binds the controller listener and starts the controller task and
/// its transport on this shard. Call on shard 0 only, once.
pub(crate) fn start(
    config: &BrokerConfig,
    view: Arc<ClusterView>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
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
    let dir = config.data_dir.join(CONTROLLER_DIR);
    let node = Node::open(node_config, &dir)
        .with_context(|| format!("opening the controller log in {}", dir.display()))?;

    let (events, inbox) = local_channel::new_bounded(EVENTS_QUEUED_MAX);
    // Shared by the transport's tasks and the ticker; local channels' senders do not clone.
    let events = Rc::new(events);
    let handshake = Handshake {
        cluster_id: config.cluster_id.clone(),
        node_id,
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
    glommio::spawn_local(tick_every(tick, events)).detach();
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
    };
    glommio::spawn_local(controller.run(inbox, shutdown)).detach();
    let line = format!(
        "riffle controller listening on {listen}, node id {node_id}, quorum {:?}",
        quorum.ids()
    );
    tracing::info!("{line}");
    println!("{line}");
    Ok(())
}

async fn tick_every(tick: Duration, events: Rc<LocalSender<Event>>) {
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
            self.handle(event);
            if let Err(e) = self.step() {
                fail(e);
                return;
            }
        }
        self.hand_over_leadership().await;
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick => self.node.tick(now_ms()),
            Event::Message(message) => self.node.step(message),
            Event::Unreachable { to } => self.node.report_unreachable(to),
            Event::SnapshotSent { to, delivered } => self.node.report_snapshot(to, delivered),
        }
    }

    /// Persists, sends, applies (`Node::drive`), then publishes the quorum's state.
    fn step(&mut self) -> Result<(), riffle_controller::node::ControllerError> {
        self.node.drive()?;
        let messages = self.node.take_messages();
        self.send(messages);
        // Proposals come with the metadata wiring; none is made by this node yet but fencing.
        self.node.take_outcomes();
        self.publish();
        Ok(())
    }

    fn send(&mut self, messages: Vec<Message>) {
        for message in messages {
            let to = message.to;
            let is_snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
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
        let status = self.status();
        if self.published.as_ref() != Some(&status) {
            self.view.publish(status.clone());
            self.published = Some(status);
        }
    }

    fn status(&self) -> ClusterStatus {
        let quorum = self.node.status();
        let voters = quorum
            .voters
            .iter()
            .map(|&node_id| {
                let matched_index = quorum.matched.get(&node_id).copied();
                VoterStatus {
                    node_id,
                    address: self
                        .addresses
                        .iter()
                        .find(|(id, _)| *id == node_id)
                        .map(|(_, address)| address.clone())
                        .unwrap_or_default(),
                    matched_index,
                    lag: matched_index.map(|m| quorum.commit_index.saturating_sub(m)),
                }
            })
            .collect();
        let image = self.node.image();
        let brokers = image
            .brokers
            .values()
            .map(|b| {
                let listener = b.registration.listeners.first();
                BrokerStatus {
                    broker_id: b.registration.broker_id,
                    host: listener.map(|l| l.host.clone()).unwrap_or_default(),
                    port: listener.map_or(0, |l| l.port),
                    rack: b.registration.rack.clone(),
                    broker_epoch: b.broker_epoch,
                    fenced: b.fenced,
                }
            })
            .collect();
        ClusterStatus {
            node_id: quorum.node_id,
            leader_id: quorum.leader_id,
            term: quorum.term,
            commit_index: quorum.commit_index,
            applied_index: quorum.applied_index,
            voters,
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

/// The node's storage failed: it cannot go on (raft-rs's node is inoperable after a storage
/// error), so the process stops rather than serve with a controller that no longer votes.
fn fail(error: riffle_controller::node::ControllerError) {
    tracing::error!(%error, "controller failed; stopping the broker");
    crate::server::stop_process();
}
