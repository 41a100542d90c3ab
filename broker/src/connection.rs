//! One client connection on the shard that accepted it: read frames, start a handler task per
//! request (in arrival order), and write the responses back in request order.
//!
//! Limits: a frame above `socket_request_max_bytes` closes the connection; at most
//! `connection_max_inflight_requests` requests wait for their response; every request holds
//! permits of its frame size from the shard's in-flight budget until its response is written, so a
//! shard that is out of budget stops reading from its sockets.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use futures::channel::mpsc;
use futures::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use futures::{FutureExt, SinkExt, StreamExt};
use glommio::net::TcpStream;
use glommio::sync::StaticPermit;
use glommio::Task;
use riffle_protocol::{decode_request, frame_size, RequestError};

use crate::handlers;
use crate::shard::Shard;
use crate::Shutdown;

/// The smallest read from the socket; bigger frames are read whole into their own buffer.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Chunks smaller than this are copied into one write with their neighbours.
const COALESCE_BELOW_BYTES: usize = 16 * 1024;

/// A request being handled: its response (None: nothing to send, e.g. acks=0) and its budget.
struct Pending {
    response: Task<handlers::Outcome>,
    _budget: StaticPermit,
}

pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr, shutdown: Shutdown) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let (reader, writer) = stream.split();
    let (queue, responses) =
        mpsc::channel::<Pending>(shard.config().connection_max_inflight_requests);
    let writer_task = glommio::spawn_local(write_responses(writer, responses, peer));
    let reason = read_requests(&shard, reader, queue, peer, shutdown).await;
    match &reason {
        Closed::Eof | Closed::Shutdown => tracing::debug!(%peer, "connection closed: {reason}"),
        Closed::Io(_) => tracing::debug!(%peer, "connection lost: {reason}"),
        Closed::Protocol(_) => tracing::warn!(%peer, "closing connection: {reason}"),
    }
    // The reader dropped its queue: the writer sends what is pending, then ends.
    writer_task.await;
}

#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error("end of stream")]
    Eof,
    #[error("broker shutting down")]
    Shutdown,
    #[error("{0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Protocol(String),
}

async fn read_requests(
    shard: &Rc<Shard>,
    mut reader: ReadHalf<TcpStream>,
    mut queue: mpsc::Sender<Pending>,
    peer: SocketAddr,
    shutdown: Shutdown,
) -> Closed {
    let max_frame_bytes = shard.config().socket_request_max_bytes;
    let budget_bytes = shard.config().shard_inflight_budget_bytes as u64;
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        // 1. the size prefix
        let size = loop {
            match frame_size(&buf, max_frame_bytes) {
                Ok(Some(size)) => break size,
                Ok(None) => {}
                Err(_) => {
                    let claimed = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    return Closed::Protocol(format!(
                        "frame size {claimed} is negative or above socket_request_max_bytes {max_frame_bytes}"
                    ));
                }
            }
            if let Err(closed) = fill(&mut reader, &mut buf, 4, &shutdown).await {
                return closed;
            }
        };
        // 2. budget for the whole request before reading its body
        let frame_bytes = 4 + size;
        let budget = match shard
            .inflight_budget
            .acquire_static_permit((frame_bytes as u64).min(budget_bytes))
            .await
        {
            Ok(p) => p,
            Err(_) => return Closed::Shutdown,
        };
        // 3. the body
        if let Err(closed) = fill(&mut reader, &mut buf, frame_bytes, &shutdown).await {
            return closed;
        }
        let mut frame = buf.split_to(frame_bytes);
        frame.advance(4);
        let frame = frame.freeze();
        // 4. decode and start the handler; its task is queued in arrival order
        let response = match decode_request(frame.clone()) {
            Ok(request) => glommio::spawn_local(handlers::handle(shard.clone(), request, peer)),
            Err(RequestError::UnsupportedVersion { header }) => {
                tracing::debug!(%peer, api_key = header.request_api_key, version = header.request_api_version, "unsupported version");
                glommio::spawn_local(handlers::unsupported_version(header, frame))
            }
            Err(RequestError::UnknownApiKey { header }) => {
                return Closed::Protocol(format!(
                    "unknown API key {} (correlation id {})",
                    header.request_api_key, header.correlation_id
                ));
            }
            Err(RequestError::MalformedHeader(e)) => {
                return Closed::Protocol(format!("malformed request header: {e}"));
            }
            Err(RequestError::MalformedBody { header, error }) => {
                return Closed::Protocol(format!(
                    "malformed {} v{} request (correlation id {}): {error}",
                    riffle_protocol::ApiKey::from_i16(header.request_api_key)
                        .map_or("?", |k| k.name()),
                    header.request_api_version,
                    header.correlation_id
                ));
            }
        };
        if queue
            .send(Pending {
                response,
                _budget: budget,
            })
            .await
            .is_err()
        {
            return Closed::Io(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        }
        // keep the buffer from growing without bound: start a fresh one when it is drained
        if buf.is_empty() && buf.capacity() > 4 * READ_CHUNK_BYTES {
            buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
        }
    }
}

/// Reads until `buf` holds at least `want` bytes.
async fn fill(
    reader: &mut ReadHalf<TcpStream>,
    buf: &mut BytesMut,
    want: usize,
    shutdown: &Shutdown,
) -> Result<(), Closed> {
    while buf.len() < want {
        let start = buf.len();
        let room = (want - start).max(READ_CHUNK_BYTES);
        buf.resize(start + room, 0);
        let read = futures::select_biased! {
            r = reader.read(&mut buf[start..]).fuse() => r,
            _ = shutdown.clone().fuse() => {
                buf.truncate(start);
                return Err(Closed::Shutdown);
            }
        };
        match read {
            Ok(0) => {
                buf.truncate(start);
                return Err(Closed::Eof);
            }
            Ok(n) => buf.truncate(start + n),
            Err(e) => {
                buf.truncate(start);
                return Err(Closed::Io(e));
            }
        }
    }
    Ok(())
}

/// Writes responses in request order; small chunks are coalesced, stored batches go as they are.
async fn write_responses(
    mut writer: WriteHalf<TcpStream>,
    mut responses: mpsc::Receiver<Pending>,
    peer: SocketAddr,
) {
    let mut small = BytesMut::with_capacity(COALESCE_BELOW_BYTES * 2);
    while let Some(pending) = responses.next().await {
        let chunks = match pending.response.await {
            Ok(Some(chunks)) => chunks,
            Ok(None) => continue,
            Err(reason) => {
                tracing::warn!(%peer, "closing connection: {reason}");
                break;
            }
        };
        if let Err(e) = write_chunks(&mut writer, &mut small, chunks).await {
            tracing::debug!(%peer, error = %e, "write failed");
            break;
        }
    }
    let _ = writer.close().await;
}

async fn write_chunks(
    writer: &mut WriteHalf<TcpStream>,
    small: &mut BytesMut,
    chunks: Vec<Bytes>,
) -> std::io::Result<()> {
    for chunk in chunks {
        if chunk.len() < COALESCE_BELOW_BYTES {
            small.extend_from_slice(&chunk);
            continue;
        }
        if !small.is_empty() {
            writer.write_all(small).await?;
            small.clear();
        }
        writer.write_all(&chunk).await?;
    }
    if !small.is_empty() {
        writer.write_all(small).await?;
        small.clear();
    }
    Ok(())
}
