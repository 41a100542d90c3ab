//! The controller transport on glommio: one listener for the other voters' connections, one
//! outbound connection per peer. Frames, handshake and queue bounds are the sans-io half in
//! `riffle_controller::transport`; this is the socket loop around it. Lives on shard 0 with
//! the controller task, for the life of the process.
//!
//! Inbound: a connection must open with a handshake of this cluster id from a voter of the
//! quorum; bad input closes that connection (logged) and harms nothing else. Outbound: the
//! driver queues messages (bounded; a full queue drops them, raft resends what matters) and
//! rings the peer's doorbell; the writer connects on demand with back-off and reports every
//! failure (and every snapshot's fate) back to the driver as an event.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::oneshot;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use riffle_controller::eraftpb::{Message, MessageType};
use riffle_controller::observer::FetchRequest;
use riffle_controller::records;
use riffle_controller::transport::{
    self, ConnectionReader, Handshake, Inbound, PeerQueue, PeerRole, OBSERVER_FRAME_MAX_BYTES,
};

use super::config::QuorumVoter;
use super::driver::{now_ms, Event};

/// Inbound controller connections held at once; one more is closed at once (a quorum of
/// `QUORUM_VOTERS_MAX` needs at most one per peer, plus one per broker-only node, plus
/// reconnects not yet noticed).
pub(crate) const CONTROLLER_CONNECTIONS_MAX: usize = 64;
/// How long a connection attempt to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A write to a peer that makes no progress for this long breaks the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read from a socket at once.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// The driver's side of one peer: the bounded queue, and the doorbell that wakes its writer.
pub(crate) struct PeerLink {
    pub(crate) voter: QuorumVoter,
    queue: RefCell<PeerQueue>,
    doorbell: LocalSender<()>,
}

impl PeerLink {
    /// Queues `message`; false when the queue is full and it was dropped.
    pub(crate) fn push(&self, message: Message) -> bool {
        let queued = self.queue.borrow_mut().push(message);
        // A full doorbell already means "wake up": nothing is lost.
        let _ = self.doorbell.try_send(());
        queued
    }
}

/// Starts the writer of each peer and returns the links the driver queues to.
pub(crate) fn connect_peers(
    peers: Vec<QuorumVoter>,
    handshake: &Handshake,
    events: &Rc<LocalSender<Event>>,
) -> Vec<Rc<PeerLink>> {
    peers
        .into_iter()
        .map(|voter| {
            let (doorbell, rings) = glommio::channels::local_channel::new_bounded(1);
            let link = Rc::new(PeerLink {
                voter,
                queue: RefCell::new(PeerQueue::default()),
                doorbell,
            });
            let writer = write_to_peer(
                link.clone(),
                rings,
                transport::encode_handshake(handshake),
                events.clone(),
            );
            glommio::spawn_local(writer).detach();
            link
        })
        .collect()
}

/// Sends what the driver queues for one peer, connecting when needed. Ends when the driver
/// drops the link (its doorbell closes).
async fn write_to_peer(
    link: Rc<PeerLink>,
    rings: LocalReceiver<()>,
    handshake: Vec<u8>,
    events: Rc<LocalSender<Event>>,
) {
    let to = link.voter.node_id;
    let mut stream: Option<TcpStream> = None;
    while rings.recv().await.is_some() {
        loop {
            let messages = link.queue.borrow_mut().drain();
            if messages.is_empty() {
                break;
            }
            if stream.is_none() {
                stream = connect(&link, &handshake).await;
            }
            let Some(connected) = stream.as_mut() else {
                report_failed(&events, to, &messages).await;
                continue;
            };
            if let Err(failed_from) = write_messages(connected, &messages, &events).await {
                tracing::debug!(
                    peer = to,
                    "controller: connection to peer broke; reconnecting"
                );
                stream = None;
                link.queue.borrow_mut().connect_failed(now_ms());
                report_failed(&events, to, &messages[failed_from..]).await;
            }
        }
    }
}

/// Connects to the peer and sends the handshake, unless the back-off says to wait.
async fn connect(link: &PeerLink, handshake: &[u8]) -> Option<TcpStream> {
    let now = now_ms();
    if !link.queue.borrow().may_connect(now) {
        return None;
    }
    let address = link.voter.address();
    let attempt = async {
        let addr = resolve(&address)?;
        let mut stream = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).await?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        stream.write_all(handshake).await?;
        Ok::<_, anyhow::Error>(stream)
    };
    match attempt.await {
        Ok(stream) => {
            link.queue.borrow_mut().connected();
            tracing::info!(peer = link.voter.node_id, %address, "controller: connected to peer");
            Some(stream)
        }
        Err(e) => {
            link.queue.borrow_mut().connect_failed(now);
            tracing::debug!(peer = link.voter.node_id, %address, error = %e, "controller: cannot connect to peer");
            None
        }
    }
}

fn resolve(address: &str) -> anyhow::Result<SocketAddr> {
    // Voters are usually named by IP; a host name is resolved here (a short blocking call on
    // a path that runs only on reconnects).
    use std::net::ToSocketAddrs;
    address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{address} resolves to nothing"))
}

/// Writes `messages` in order; Err(i) when message `i` could not be written. Each snapshot
/// written is reported delivered (raft-rs stalls without `report_snapshot`).
async fn write_messages(
    stream: &mut TcpStream,
    messages: &[Message],
    events: &LocalSender<Event>,
) -> Result<(), usize> {
    for (i, message) in messages.iter().enumerate() {
        let frame = transport::encode_message(message);
        if stream.write_all(&frame).await.is_err() {
            return Err(i);
        }
        if message.get_msg_type() == MessageType::MsgSnapshot {
            let _ = events
                .send(Event::SnapshotSent {
                    to: message.to,
                    delivered: true,
                })
                .await;
        }
    }
    Ok(())
}

/// Tells the driver the peer is unreachable, and that each snapshot among `lost` failed.
async fn report_failed(events: &LocalSender<Event>, to: u64, lost: &[Message]) {
    let _ = events.send(Event::Unreachable { to }).await;
    for message in lost {
        if message.get_msg_type() == MessageType::MsgSnapshot {
            let _ = events
                .send(Event::SnapshotSent {
                    to,
                    delivered: false,
                })
                .await;
        }
    }
}

/// Accepts the other voters' connections for the life of the shard.
pub(crate) async fn accept_peers(
    listener: TcpListener,
    cluster_id: String,
    voters: Vec<u64>,
    events: Rc<LocalSender<Event>>,
) {
    let open = Rc::new(Cell::new(0usize));
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "controller: accept failed");
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        if open.get() >= CONTROLLER_CONNECTIONS_MAX {
            tracing::warn!(%peer, "controller: connection refused: {CONTROLLER_CONNECTIONS_MAX} open");
            continue;
        }
        open.set(open.get() + 1);
        let open = open.clone();
        let reader = read_peer(
            stream,
            peer,
            cluster_id.clone(),
            voters.clone(),
            events.clone(),
        );
        glommio::spawn_local(async move {
            reader.await;
            open.set(open.get() - 1);
        })
        .detach();
    }
}

/// Reads one peer's connection and hands its messages to the driver; closes it on bad input.
/// A broker-only node's connection carries fetch requests instead, each answered on it.
async fn read_peer(
    mut stream: TcpStream,
    peer: SocketAddr,
    cluster_id: String,
    voters: Vec<u64>,
    events: Rc<LocalSender<Event>>,
) {
    // Answers to a broker-only node go out on this connection: one that stops reading must
    // not hold its reader forever.
    if let Err(e) = stream.set_write_timeout(Some(WRITE_TIMEOUT)) {
        tracing::debug!(%peer, error = %e, "controller: cannot set a write timeout");
        return;
    }
    let mut reader = ConnectionReader::new(&cluster_id);
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    loop {
        let read = match stream.read(&mut buf).await {
            Ok(0) => return,
            Ok(read) => read,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "controller: peer connection ended");
                return;
            }
        };
        let inbound = match reader.feed(&buf[..read]) {
            Ok(inbound) => inbound,
            Err(e) => {
                tracing::warn!(%peer, "controller: closing connection: {e}");
                return;
            }
        };
        // A voter may also connect as an observer, to ask for the leader's view of the quorum.
        if let Some(handshake) = reader.peer() {
            if handshake.role == PeerRole::Voter && !voters.contains(&handshake.node_id) {
                tracing::warn!(%peer, node_id = handshake.node_id, "controller: closing connection: node is not a voter of this quorum");
                return;
            }
        }
        for frame in inbound {
            let delivered = match frame {
                Inbound::Raft(message) => events.send(Event::Message(message)).await.is_ok(),
                Inbound::Fetch(request) => answer_fetch(&mut stream, request, &events).await,
            };
            if !delivered {
                return;
            }
        }
    }
}

/// Hands a broker-only node's fetch to the driver and writes its answer; false when the
/// connection is to be closed.
async fn answer_fetch(
    stream: &mut TcpStream,
    request: FetchRequest,
    events: &LocalSender<Event>,
) -> bool {
    let (reply, answer) = oneshot::channel();
    if events.send(Event::Fetch { request, reply }).await.is_err() {
        return false;
    }
    let Ok(response) = answer.await else {
        return false;
    };
    let payload = records::encode(&response);
    if payload.len() > OBSERVER_FRAME_MAX_BYTES {
        // The answer's parts are bounded well below it (`observer`): a broken bound, logged.
        tracing::error!(
            size_bytes = payload.len(),
            "controller: an answer to a broker-only node exceeds the frame limit"
        );
        return false;
    }
    stream.write_all(&transport::frame(&payload)).await.is_ok()
}
