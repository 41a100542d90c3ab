//! The controller-to-controller wire format and the per-peer send state, sans-io: frames of
//! `[length u32 BE][payload]`, a handshake first (magic, version, cluster id, node id) so a
//! node of another cluster cannot join, then raft messages. The socket loop that uses these
//! (glommio on the controller's shard) lives in the broker.

use std::collections::VecDeque;

use protobuf::Message as _;
use raft::eraftpb::Message;

use crate::observer::FetchRequest;
use crate::records;

/// Largest frame accepted; a snapshot message carries the whole image in one frame, so
/// this also bounds the image a quorum can replicate.
pub const FRAME_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Longest cluster id in a handshake.
pub const CLUSTER_ID_MAX_LEN: usize = 255;
/// Largest frame on a broker-only node's connection, either way: a request (its proposals
/// are bounded by `observer::FETCH_PROPOSAL_MAX_BYTES`) or an answer (entries or a snapshot
/// chunk, bounded by `observer`'s limits, and the quorum view).
pub const OBSERVER_FRAME_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Messages queued for one peer while it is unreachable; beyond it new ones are dropped
/// (raft retransmits what matters).
pub const PEER_QUEUE_MAX_MESSAGES: usize = 1024;
/// First and largest reconnect back-off.
pub const RECONNECT_BACKOFF_MIN_MS: u64 = 50;
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 5000;

/// The handshake's magic says who connects: a voter (then raft messages one way) or a
/// broker-only node (then `observer` fetch requests, each answered on the same connection).
const HANDSHAKE_MAGIC: [u8; 4] = *b"RFLC";
const OBSERVER_HANDSHAKE_MAGIC: [u8; 4] = *b"RFLO";
const WIRE_VERSION: u8 = 1;
const LENGTH_BYTES: usize = 4;

/// Why a connection is closed. Each is logged with the peer's address by the caller.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("frame of {size_bytes} bytes exceeds the connection's limit")]
    FrameTooLarge { size_bytes: usize },
    #[error("not a riffle controller handshake")]
    BadMagic,
    #[error("controller wire version {found} is not supported (this node speaks {WIRE_VERSION})")]
    UnsupportedVersion { found: u8 },
    #[error("peer belongs to cluster '{found}', this node to '{expected}'")]
    ClusterIdMismatch { expected: String, found: String },
    #[error("malformed handshake")]
    MalformedHandshake,
    #[error("malformed raft message: {0}")]
    MalformedMessage(String),
    #[error("message claims to come from node {claimed} on node {peer}'s connection")]
    SenderMismatch { claimed: u64, peer: u64 },
}

/// The first frame on every connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    pub cluster_id: String,
    pub node_id: u64,
    pub role: PeerRole,
}

/// Who is on the other end of a controller connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    /// A voter of the quorum: raft messages.
    Voter,
    /// A broker-only node following the log: fetch requests (`observer`).
    Observer,
}

/// What one frame on an inbound connection carries.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    Raft(Message),
    Fetch(FetchRequest),
}

/// `payload` behind its length.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(LENGTH_BYTES + payload.len());
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// The handshake frame; the cluster id is cut to `CLUSTER_ID_MAX_LEN` bytes by the caller's
/// configuration check, asserted here.
pub fn encode_handshake(handshake: &Handshake) -> Vec<u8> {
    assert!(
        handshake.cluster_id.len() <= CLUSTER_ID_MAX_LEN,
        "cluster id checked at start-up"
    );
    let mut payload = match handshake.role {
        PeerRole::Voter => HANDSHAKE_MAGIC.to_vec(),
        PeerRole::Observer => OBSERVER_HANDSHAKE_MAGIC.to_vec(),
    };
    payload.push(WIRE_VERSION);
    payload.extend_from_slice(&handshake.node_id.to_be_bytes());
    payload.push(handshake.cluster_id.len() as u8);
    payload.extend_from_slice(handshake.cluster_id.as_bytes());
    frame(&payload)
}

/// One raft message as a frame.
pub fn encode_message(message: &Message) -> Vec<u8> {
    // eraftpb is proto3: encoding into a Vec cannot fail.
    frame(
        &message
            .write_to_bytes()
            .expect("eraftpb messages always encode"),
    )
}

fn decode_handshake(
    payload: &[u8],
    expected_cluster_id: &str,
) -> Result<Handshake, TransportError> {
    let (magic, rest) = payload
        .split_at_checked(4)
        .ok_or(TransportError::BadMagic)?;
    let role = if magic == HANDSHAKE_MAGIC {
        PeerRole::Voter
    } else if magic == OBSERVER_HANDSHAKE_MAGIC {
        PeerRole::Observer
    } else {
        return Err(TransportError::BadMagic);
    };
    let (&version, rest) = rest
        .split_first()
        .ok_or(TransportError::MalformedHandshake)?;
    if version != WIRE_VERSION {
        return Err(TransportError::UnsupportedVersion { found: version });
    }
    let (node_id, rest) = rest
        .split_at_checked(8)
        .ok_or(TransportError::MalformedHandshake)?;
    let node_id = u64::from_be_bytes(
        node_id
            .try_into()
            .map_err(|_| TransportError::MalformedHandshake)?,
    );
    let (&len, rest) = rest
        .split_first()
        .ok_or(TransportError::MalformedHandshake)?;
    if rest.len() != len as usize {
        return Err(TransportError::MalformedHandshake);
    }
    let cluster_id = std::str::from_utf8(rest).map_err(|_| TransportError::MalformedHandshake)?;
    if cluster_id != expected_cluster_id {
        return Err(TransportError::ClusterIdMismatch {
            expected: expected_cluster_id.to_owned(),
            found: cluster_id.to_owned(),
        });
    }
    Ok(Handshake {
        cluster_id: cluster_id.to_owned(),
        node_id,
        role,
    })
}

/// Reads one inbound connection: bytes in, the peer's handshake then its messages out. Any
/// error means the connection must be closed; nothing read after it is trusted.
pub struct ConnectionReader {
    expected_cluster_id: String,
    buffer: Vec<u8>,
    peer: Option<Handshake>,
}

impl ConnectionReader {
    pub fn new(expected_cluster_id: &str) -> ConnectionReader {
        ConnectionReader {
            expected_cluster_id: expected_cluster_id.to_owned(),
            buffer: Vec::new(),
            peer: None,
        }
    }

    /// The peer, once its handshake was read.
    pub fn peer(&self) -> Option<&Handshake> {
        self.peer.as_ref()
    }

    /// Takes `bytes` read from the socket and returns the messages they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Inbound>, TransportError> {
        self.buffer.extend_from_slice(bytes);
        let mut messages = Vec::new();
        let mut pos = 0;
        while let Some(payload) = self.next_payload(&mut pos)? {
            match &self.peer {
                None => self.peer = Some(decode_handshake(payload, &self.expected_cluster_id)?),
                Some(peer) if peer.role == PeerRole::Observer => {
                    let request: FetchRequest = records::decode(payload)
                        .map_err(|e| TransportError::MalformedMessage(e.to_string()))?;
                    if request.broker_id as u64 != peer.node_id {
                        return Err(TransportError::SenderMismatch {
                            claimed: request.broker_id as u64,
                            peer: peer.node_id,
                        });
                    }
                    messages.push(Inbound::Fetch(request));
                }
                Some(peer) => {
                    let message = Message::parse_from_bytes(payload)
                        .map_err(|e| TransportError::MalformedMessage(e.to_string()))?;
                    if message.from != peer.node_id {
                        return Err(TransportError::SenderMismatch {
                            claimed: message.from,
                            peer: peer.node_id,
                        });
                    }
                    messages.push(Inbound::Raft(message));
                }
            }
        }
        self.buffer.drain(..pos);
        Ok(messages)
    }

    /// The next whole frame's payload at `*pos`, checking its length before waiting for it.
    fn next_payload(&self, pos: &mut usize) -> Result<Option<&[u8]>, TransportError> {
        let Some(header) = self.buffer.get(*pos..*pos + LENGTH_BYTES) else {
            return Ok(None);
        };
        let size_bytes = u32::from_be_bytes(header.try_into().expect("4 bytes")) as usize;
        // A broker-only node's requests are small (`observer`'s bounds): its frames are capped
        // lower, so the many connections of brokers hold little.
        let frame_max_bytes = match &self.peer {
            Some(peer) if peer.role == PeerRole::Observer => OBSERVER_FRAME_MAX_BYTES,
            _ => FRAME_MAX_BYTES,
        };
        if size_bytes > frame_max_bytes {
            return Err(TransportError::FrameTooLarge { size_bytes });
        }
        let start = *pos + LENGTH_BYTES;
        let Some(payload) = self.buffer.get(start..start + size_bytes) else {
            return Ok(None);
        };
        *pos = start + size_bytes;
        Ok(Some(payload))
    }
}

/// Outbound state for one peer: a bounded queue and the reconnect back-off.
pub struct PeerQueue {
    queue: VecDeque<Message>,
    backoff_ms: u64,
    next_attempt_ms: u64,
    dropped: u64,
}

impl Default for PeerQueue {
    fn default() -> PeerQueue {
        PeerQueue {
            queue: VecDeque::new(),
            backoff_ms: RECONNECT_BACKOFF_MIN_MS,
            next_attempt_ms: 0,
            dropped: 0,
        }
    }
}

impl PeerQueue {
    /// Queues `message`; `false` when the queue is full and the message was dropped (the
    /// caller reports the peer unreachable, and a snapshot's failure, to the node).
    pub fn push(&mut self, message: Message) -> bool {
        if self.queue.len() >= PEER_QUEUE_MAX_MESSAGES {
            self.dropped += 1;
            return false;
        }
        self.queue.push_back(message);
        true
    }

    /// Everything queued, to write on a connected socket.
    pub fn drain(&mut self) -> Vec<Message> {
        self.queue.drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Messages dropped because the queue was full, since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether a connection attempt may start at `now_ms`.
    pub fn may_connect(&self, now_ms: u64) -> bool {
        now_ms >= self.next_attempt_ms
    }

    /// A connection attempt failed (or a connection broke) at `now_ms`: wait twice as long
    /// before the next, up to the maximum.
    pub fn connect_failed(&mut self, now_ms: u64) {
        self.next_attempt_ms = now_ms + self.backoff_ms;
        self.backoff_ms = (self.backoff_ms * 2).min(RECONNECT_BACKOFF_MAX_MS);
    }

    pub fn connected(&mut self) {
        self.backoff_ms = RECONNECT_BACKOFF_MIN_MS;
        self.next_attempt_ms = 0;
    }
}
