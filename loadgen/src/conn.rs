//! A non-blocking Kafka connection for the data path: requests are queued as encoded
//! chunks and written as the socket accepts them; responses are cut out of one read buffer
//! by their size prefix, in order (Kafka answers a connection's requests in order).

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use riffle_protocol::{
    encode_request, frame_size, Bytes, BytesMut, Message, RequestHeader, DEFAULT_MAX_FRAME_BYTES,
};

use riffle_client::group::GroupRequest;
use riffle_client::GroupVersions;

use crate::CLIENT_ID;

/// Bytes read from the socket per read call.
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// Buffers handed to one writev.
const WRITEV_SLICES_MAX: usize = 16;
/// How long a data-path connect may take (the broker was reachable during setup).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Time between attempts to reopen a lost data-path connection.
pub(crate) const RECONNECT_BACKOFF_NS: u64 = 1_000_000_000;

/// Reopens `conn` when it is closed, a retry is due and the run has not ended; a failure is
/// counted in `iv` and moves the next attempt back by `RECONNECT_BACKOFF_NS`.
pub(crate) fn reconnect_if_due(
    conn: &mut Option<Conn>,
    addr: SocketAddr,
    reconnect_at_ns: &mut u64,
    stop_ns: u64,
    now_ns: u64,
    iv: &mut crate::stats::Interval,
) {
    if conn.is_some() || now_ns < *reconnect_at_ns || now_ns >= stop_ns {
        return;
    }
    match Conn::connect(addr) {
        Ok(c) => *conn = Some(c),
        Err(e) => {
            iv.error(format!("connect to {addr}: {e}"));
            *reconnect_at_ns = now_ns + RECONNECT_BACKOFF_NS;
        }
    }
}

/// One connection, owned by one worker thread for its whole life.
pub(crate) struct Conn {
    stream: TcpStream,
    out: VecDeque<Bytes>,
    out_bytes: usize,
    inbuf: BytesMut,
    scratch: Vec<u8>,
    next_correlation_id: i32,
}

impl Conn {
    pub(crate) fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        Ok(Conn {
            stream,
            out: VecDeque::new(),
            out_bytes: 0,
            inbuf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            scratch: vec![0u8; READ_CHUNK_BYTES],
            next_correlation_id: 1,
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Bytes queued and not yet accepted by the socket.
    pub(crate) fn pending_out_bytes(&self) -> usize {
        self.out_bytes
    }

    /// Queues a request; returns its correlation id. Call `flush` to write it.
    pub(crate) fn send<M: Message>(&mut self, api_version: i16, body: &M) -> io::Result<i32> {
        let correlation_id = self.next_correlation_id();
        let header = RequestHeader {
            request_api_key: M::API_KEY as i16,
            request_api_version: api_version,
            correlation_id,
            client_id: Some(CLIENT_ID.into()),
        };
        let chunks = encode_request(&header, body).map_err(invalid_input)?;
        self.queue(chunks);
        Ok(correlation_id)
    }

    /// Queues a group member's request; returns its correlation id.
    pub(crate) fn send_group(
        &mut self,
        versions: &GroupVersions,
        request: &GroupRequest,
    ) -> io::Result<i32> {
        let correlation_id = self.next_correlation_id();
        let chunks = request
            .encode(versions, correlation_id, CLIENT_ID)
            .map_err(invalid_input)?;
        self.queue(chunks);
        Ok(correlation_id)
    }

    fn next_correlation_id(&mut self) -> i32 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1).max(1);
        correlation_id
    }

    fn queue(&mut self, chunks: Vec<Bytes>) {
        for c in chunks {
            self.out_bytes += c.len();
            self.out.push_back(c);
        }
    }

    /// Writes queued bytes until the socket would block.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            let mut slices = [IoSlice::new(&[]); WRITEV_SLICES_MAX];
            let n_slices = self.out.len().min(WRITEV_SLICES_MAX);
            for (s, b) in slices.iter_mut().zip(self.out.iter()) {
                *s = IoSlice::new(b);
            }
            match self.stream.write_vectored(&slices[..n_slices]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    self.out_bytes -= n;
                    while n > 0 {
                        let front = self.out.front_mut().expect("wrote queued bytes");
                        if n >= front.len() {
                            n -= front.len();
                            self.out.pop_front();
                        } else {
                            let _ = front.split_to(n);
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what the socket holds and appends each whole response frame (without its size
    /// prefix) to `frames`. Err on EOF or a broken frame.
    pub(crate) fn read_frames(&mut self, frames: &mut Vec<Bytes>) -> io::Result<()> {
        loop {
            match self.stream.read(&mut self.scratch) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "broker closed the connection",
                    ))
                }
                Ok(n) => {
                    self.inbuf.extend_from_slice(&self.scratch[..n]);
                    if n < self.scratch.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        loop {
            let size = frame_size(&self.inbuf, DEFAULT_MAX_FRAME_BYTES)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
            match size {
                Some(len) if self.inbuf.len() >= 4 + len => {
                    let _ = self.inbuf.split_to(4);
                    frames.push(self.inbuf.split_to(len).freeze());
                }
                _ => return Ok(()),
            }
        }
    }
}

fn invalid_input(e: riffle_protocol::EncodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}
