//! One client connection on the shard that accepted it: read frames, start a handler task per
//! request (in arrival order), and write the responses back in request order.
//!
//! Limits: a frame above `socket_request_max_bytes` closes the connection; at most
//! `connection_max_inflight_requests` requests wait for their response; every request holds
//! permits of its frame size from the shard's in-flight budget until its response is written, so a
//! shard that is out of budget stops reading from its sockets. No client can hold those for long
//! by going silent: a connection with nothing to do is closed after `connections_max_idle_ms`, a
//! frame must arrive within `request_frame_timeout_ms`, and a response write that makes no
//! progress for `response_write_timeout_ms` (or is still pending when shutdown cuts writes)
//! closes the connection.

mod limits;
mod receive;
mod writer;

use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use futures::future::{self, Either, LocalBoxFuture, Shared};
use futures::io::{AsyncReadExt, ReadHalf};
use futures::FutureExt;
use glommio::net::TcpStream;
use glommio::sync::{Semaphore, StaticPermit};
use glommio::Task;
use riffle_protocol::{decode_request, frame_size, RequestError};
use riffle_storage::ReceiveBuffer;
use tracing::Instrument;

pub(crate) use limits::{ConnectionLimits, ConnectionSlot};

use crate::admin::metrics;
use crate::handlers;
use crate::shard::Shard;
use crate::Shutdown;

/// Resolves when the shard cuts the writes still pending at shutdown (`shutdown_timeout_ms` after
/// the signal). Shard-local: it rides a glommio timer.
pub(crate) type ForceClose = Shared<LocalBoxFuture<'static, ()>>;

/// What a connection task gets from the accept loop besides its socket.
pub(crate) struct Accepted {
    pub shard: Rc<Shard>,
    pub peer: SocketAddr,
    pub shutdown: Shutdown,
    pub force_close: ForceClose,
    /// The connection's place under `max_connections`, given back when the task ends.
    pub slot: ConnectionSlot,
}

/// A request being handled: its response (None: nothing to send, e.g. acks=0) and its budget.
struct Pending {
    response: Task<handlers::Outcome>,
    _budget: StaticPermit,
}

/// Units of the shard's in-flight budget that a response holds until it is written (a Fetch's
/// records), given back when dropped. Shard-local, lives as long as its response.
pub(crate) struct HeldBudget {
    budget: Rc<Semaphore>,
    units: u64,
}

impl HeldBudget {
    /// Waits for `units` of `budget` until `deadline`; None if it passes first or the budget is
    /// closed (shutdown).
    pub async fn acquire(budget: &Rc<Semaphore>, units: u64, deadline: Instant) -> Option<Self> {
        let wait = deadline.saturating_duration_since(Instant::now());
        futures::select_biased! {
            granted = budget.acquire(units).fuse() => granted.ok().map(|()| HeldBudget {
                budget: budget.clone(),
                units,
            }),
            _ = glommio::timer::sleep(wait).fuse() => None,
        }
    }

    /// Gives back all but `units` (what the response really holds).
    pub fn keep(&mut self, units: u64) {
        if units < self.units {
            self.budget.signal(self.units - units);
            self.units = units;
        }
    }
}

impl Drop for HeldBudget {
    fn drop(&mut self) {
        self.budget.signal(self.units);
    }
}

/// What the reader and the writer of one connection share (one shard, one connection's life).
struct Activity {
    /// When a byte was last read or a response last written.
    last_active: Cell<Instant>,
    /// Requests read whose response is not yet written (or dropped).
    awaiting_response: Cell<usize>,
}

impl Activity {
    fn touch(&self) {
        self.last_active.set(Instant::now());
    }
}

/// Serves one connection inside its span (shard, peer, and the client id once a request names
/// it), which every log line of the connection and of its requests' handlers carries.
pub(crate) async fn serve(accepted: Accepted, stream: TcpStream) {
    let span = tracing::info_span!(
        "connection",
        shard = accepted.shard.id,
        peer = %accepted.peer,
        client_id = tracing::field::Empty
    );
    let _open = metrics::ConnectionGauge::open();
    serve_in_span(accepted, stream, span.clone())
        .instrument(span)
        .await
}

async fn serve_in_span(accepted: Accepted, stream: TcpStream, span: tracing::Span) {
    let Accepted {
        shard,
        peer,
        shutdown,
        force_close,
        slot,
    } = accepted;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let (socket_reader, socket_writer) = stream.split();
    let (queue, responses) =
        mpsc::channel::<Pending>(shard.config().connection_max_inflight_requests);
    let activity = Rc::new(Activity {
        last_active: Cell::new(Instant::now()),
        awaiting_response: Cell::new(0),
    });
    let (stopped_tx, stopped_rx) = oneshot::channel::<String>();
    let writer = writer::Writer {
        socket: Some(socket_writer),
        peer,
        activity: activity.clone(),
        write_timeout: Duration::from_millis(shard.config().response_write_timeout_ms),
        force_close,
        stopped: Some(stopped_tx),
    };
    let writer_task = glommio::spawn_local(writer.run(responses));
    let reader = Reader::new(&shard, socket_reader, peer, shutdown, activity, span);
    // The writer stopping (a client that stops reading) stops the reader too: dropping it drops
    // the queue, never a request whose handler has started.
    let reason = match future::select(Box::pin(reader.run(queue)), stopped_rx).await {
        Either::Left((reason, _)) => reason,
        Either::Right((Ok(why), _)) => Closed::WriteStopped(why),
        Either::Right((Err(_), _)) => Closed::WriteStopped("writer ended".to_string()),
    };
    match &reason {
        Closed::Eof | Closed::Shutdown | Closed::Idle { .. } => {
            tracing::debug!(%peer, "connection closed: {reason}")
        }
        Closed::Io(_) => tracing::debug!(%peer, "connection lost: {reason}"),
        Closed::Protocol(_) | Closed::FrameTimeout { .. } | Closed::WriteStopped(_) => {
            tracing::warn!(%peer, "closing connection: {reason}")
        }
    }
    // The reader dropped its queue: the writer answers what is pending, then ends.
    writer_task.await;
    drop(slot);
}

#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error("end of stream")]
    Eof,
    #[error("broker shutting down")]
    Shutdown,
    #[error("idle for connections_max_idle_ms ({idle_ms} ms)")]
    Idle { idle_ms: u64 },
    #[error("a request frame did not arrive within request_frame_timeout_ms ({timeout_ms} ms)")]
    FrameTimeout { timeout_ms: u64 },
    #[error("responses cannot be written: {0}")]
    WriteStopped(String),
    #[error("{0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Protocol(String),
}

/// The reading half of a connection: frames in, handler tasks out, each with its budget.
struct Reader {
    shard: Rc<Shard>,
    socket: ReadHalf<TcpStream>,
    received: receive::Received,
    peer: SocketAddr,
    shutdown: Shutdown,
    activity: Rc<Activity>,
    max_frame_bytes: usize,
    budget_bytes: u64,
    idle_ms: u64,
    frame_timeout_ms: u64,
    /// The connection's span: handler tasks run in it; the client id is recorded once known.
    span: tracing::Span,
    client_id_recorded: bool,
}

impl Reader {
    fn new(
        shard: &Rc<Shard>,
        socket: ReadHalf<TcpStream>,
        peer: SocketAddr,
        shutdown: Shutdown,
        activity: Rc<Activity>,
        span: tracing::Span,
    ) -> Self {
        let config = shard.config();
        Reader {
            shard: shard.clone(),
            socket,
            received: receive::Received::new(),
            peer,
            shutdown,
            activity,
            max_frame_bytes: config.socket_request_max_bytes,
            budget_bytes: config.shard_inflight_budget_bytes as u64,
            idle_ms: config.connections_max_idle_ms,
            frame_timeout_ms: config.request_frame_timeout_ms,
            span,
            client_id_recorded: false,
        }
    }

    async fn run(mut self, queue: mpsc::Sender<Pending>) -> Closed {
        match self.read_requests(queue).await {
            Ok(never) => match never {},
            Err(closed) => closed,
        }
    }

    async fn read_requests(
        &mut self,
        mut queue: mpsc::Sender<Pending>,
    ) -> Result<Infallible, Closed> {
        loop {
            self.wait_for_request().await?;
            let frame_bytes = 4 + self.read_size().await?;
            let budget = self.reserve_budget(frame_bytes).await?;
            self.fill(frame_bytes, self.frame_deadline()).await?;
            let (frame, received_in) = self.received.take_frame(frame_bytes);
            // A queue slot first, so that no handler starts unless its response has a place.
            future::poll_fn(|cx| queue.poll_ready(cx))
                .await
                .map_err(|_| Closed::Io(std::io::ErrorKind::BrokenPipe.into()))?;
            let response = self.start_handler(frame, received_in)?;
            let awaiting = self.activity.awaiting_response.get();
            self.activity.awaiting_response.set(awaiting + 1);
            queue
                .start_send(Pending {
                    response,
                    _budget: budget,
                })
                .map_err(|_| Closed::Io(std::io::ErrorKind::BrokenPipe.into()))?;
        }
    }

    fn frame_deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.frame_timeout_ms)
    }

    /// Waits for the first byte of the next request; a connection with no request read and no
    /// response pending for `connections_max_idle_ms` is closed.
    async fn wait_for_request(&mut self) -> Result<(), Closed> {
        let idle = Duration::from_millis(self.idle_ms);
        while self.received.unframed().is_empty() {
            let idle_deadline = self.activity.last_active.get() + idle;
            if Instant::now() >= idle_deadline {
                if self.activity.awaiting_response.get() == 0 {
                    return Err(Closed::Idle {
                        idle_ms: self.idle_ms,
                    });
                }
                // A response is on its way (a long poll, a slow write bounded by its timeout).
                self.activity.touch();
                continue;
            }
            // Any room serves: requests read one by one share a buffer.
            self.read_some(0, idle_deadline).await?;
        }
        Ok(())
    }

    /// Reads the size prefix; its bytes must follow the first within the frame deadline.
    async fn read_size(&mut self) -> Result<usize, Closed> {
        let deadline = self.frame_deadline();
        loop {
            let unframed = self.received.unframed();
            match frame_size(unframed, self.max_frame_bytes) {
                Ok(Some(size)) => return Ok(size),
                Ok(None) => self.fill(4, deadline).await?,
                Err(_) => {
                    let prefix = [unframed[0], unframed[1], unframed[2], unframed[3]];
                    let claimed = i32::from_be_bytes(prefix);
                    return Err(Closed::Protocol(format!(
                        "frame size {claimed} is negative or above socket_request_max_bytes {}",
                        self.max_frame_bytes
                    )));
                }
            }
        }
    }

    /// Budget for the whole request before reading its body. Waiting for it does not count
    /// against the frame deadline: the broker, not the client, is the one holding back.
    async fn reserve_budget(&self, frame_bytes: usize) -> Result<StaticPermit, Closed> {
        let permits = (frame_bytes as u64).min(self.budget_bytes);
        futures::select_biased! {
            permit = self.shard.inflight_budget.acquire_static_permit(permits).fuse() => {
                permit.map_err(|_| Closed::Shutdown)
            }
            _ = self.shutdown.clone().fuse() => Err(Closed::Shutdown),
        }
    }

    /// Reads until the buffer holds `want` bytes, or fails once `deadline` passes.
    async fn fill(&mut self, want: usize, deadline: Instant) -> Result<(), Closed> {
        while self.received.unframed().len() < want {
            if !self.read_some(want, deadline).await? {
                return Err(Closed::FrameTimeout {
                    timeout_ms: self.frame_timeout_ms,
                });
            }
        }
        Ok(())
    }

    /// One read toward `want` buffered bytes: Ok(false) if `deadline` passed first.
    async fn read_some(&mut self, want: usize, deadline: Instant) -> Result<bool, Closed> {
        let wait = deadline.saturating_duration_since(Instant::now());
        let room = self.received.room(want);
        let read = futures::select_biased! {
            r = self.socket.read(room).fuse() => Some(r),
            _ = self.shutdown.clone().fuse() => return Err(Closed::Shutdown),
            _ = glommio::timer::sleep(wait).fuse() => None,
        };
        match read {
            None => Ok(false),
            Some(Ok(0)) => Err(Closed::Eof),
            Some(Ok(n)) => {
                self.received.advance(n);
                self.activity.touch();
                Ok(true)
            }
            Some(Err(e)) => Err(Closed::Io(e)),
        }
    }

    /// Decodes the frame and starts its handler; a frame that cannot be answered closes.
    fn start_handler(
        &mut self,
        frame: Bytes,
        received_in: ReceiveBuffer,
    ) -> Result<Task<handlers::Outcome>, Closed> {
        let (shard, peer) = (self.shard.clone(), self.peer);
        match decode_request(frame.clone()) {
            Ok(request) => {
                if !self.client_id_recorded {
                    if let Some(client_id) = &request.header.client_id {
                        self.span.record("client_id", client_id.as_str());
                        self.client_id_recorded = true;
                    }
                }
                let api_key = request.header.request_api_key;
                let handled = async move {
                    let started = Instant::now();
                    let outcome = handlers::handle(shard, request, peer, received_in).await;
                    metrics::request_served(api_key, started.elapsed());
                    outcome
                };
                Ok(glommio::spawn_local(handled.instrument(self.span.clone())))
            }
            Err(RequestError::UnsupportedVersion { header }) => {
                tracing::debug!(%peer, api_key = header.request_api_key, version = header.request_api_version, "unsupported version");
                Ok(glommio::spawn_local(handlers::unsupported_version(
                    header, frame,
                )))
            }
            Err(RequestError::UnknownApiKey { header }) => Err(Closed::Protocol(format!(
                "unknown API key {} (correlation id {})",
                header.request_api_key, header.correlation_id
            ))),
            Err(RequestError::MalformedHeader(e)) => {
                Err(Closed::Protocol(format!("malformed request header: {e}")))
            }
            Err(RequestError::MalformedBody { header, error }) => Err(Closed::Protocol(format!(
                "malformed {} v{} request (correlation id {}): {error}",
                riffle_protocol::ApiKey::from_i16(header.request_api_key).map_or("?", |k| k.name()),
                header.request_api_version,
                header.correlation_id
            ))),
        }
    }
}
