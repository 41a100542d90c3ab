//! The writing half of a connection: responses in request order.
//!
//! Responses that are already complete when one is written go out in the same write: a flush
//! round of the log completes a connection's pipelined Produce requests together, and each
//! separate send costs a system call plus, on loopback, the receiver's TCP processing and
//! wake-up (a quarter of a flat-out broker's CPU when every response was its own send). A
//! response is never held back waiting for the next one.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::channel::{mpsc, oneshot};
use futures::io::{AsyncWrite, AsyncWriteExt};
use futures::{FutureExt, StreamExt};
use std::net::SocketAddr;
use std::rc::Rc;

use super::{Activity, ForceClose, HeldBudget, Pending};
use crate::handlers;

/// Chunks smaller than this are copied into one write with their neighbours; bigger ones (a
/// Fetch's stored batches) are written as they are.
const COALESCE_BELOW_BYTES: usize = 16 * 1024;
/// Coalesced bytes past this are written before the next ready response is added.
const COALESCE_MAX_BYTES: usize = 256 * 1024;

/// Once a write fails, times out or is cut by shutdown, the writer stops writing and tells the
/// reader, but still awaits every pending handler, so requests already read finish (appends are
/// never cut halfway) and release their budget.
pub(super) struct Writer<S> {
    /// None once writing has stopped.
    pub socket: Option<S>,
    pub peer: SocketAddr,
    pub activity: Rc<Activity>,
    pub write_timeout: Duration,
    pub force_close: ForceClose,
    /// Tells the reader why writing stopped (taken on the first stop).
    pub stopped: Option<oneshot::Sender<String>>,
}

/// Responses copied into one buffer, and what they hold until that buffer is written: their
/// requests' budget and the buffers a response keeps.
struct Coalesced {
    bytes: BytesMut,
    /// Bytes of big chunks already written on their own since the last flush: they count toward
    /// `COALESCE_MAX_BYTES` too, so a run of big Fetch responses gives back its budget as it goes.
    written_alone: usize,
    released: Vec<(Pending, Option<HeldBudget>)>,
}

impl Coalesced {
    fn bytes_since_flush(&self) -> usize {
        self.bytes.len() + self.written_alone
    }
}

/// The next queued request, looked at without waiting.
enum Next {
    /// Its response is complete.
    Ready(Pending, handlers::Outcome),
    /// Its handler is still running.
    Running(Pending),
    /// No request is queued.
    Idle,
    /// The reader is gone and every request was answered.
    Closed,
}

fn peek(responses: &mut mpsc::Receiver<Pending>) -> Next {
    match responses.try_recv() {
        Err(mpsc::TryRecvError::Empty) => Next::Idle,
        Err(mpsc::TryRecvError::Closed) => Next::Closed,
        Ok(mut pending) => match (&mut pending.response).now_or_never() {
            Some(outcome) => Next::Ready(pending, outcome),
            None => Next::Running(pending),
        },
    }
}

impl<S: AsyncWrite + Unpin> Writer<S> {
    pub async fn run(mut self, mut responses: mpsc::Receiver<Pending>) {
        let mut out = Coalesced {
            bytes: BytesMut::with_capacity(COALESCE_BELOW_BYTES * 2),
            written_alone: 0,
            released: Vec::new(),
        };
        let mut next = Next::Idle;
        loop {
            let (pending, outcome) = match std::mem::replace(&mut next, Next::Idle) {
                Next::Ready(pending, outcome) => (pending, outcome),
                Next::Running(mut pending) => {
                    self.flush(&mut out).await;
                    let outcome = (&mut pending.response).await;
                    (pending, outcome)
                }
                Next::Idle => {
                    self.flush(&mut out).await;
                    let Some(mut pending) = responses.next().await else {
                        break;
                    };
                    let outcome = (&mut pending.response).await;
                    (pending, outcome)
                }
                Next::Closed => break,
            };
            self.add(&mut out, pending, outcome).await;
            if out.bytes_since_flush() >= COALESCE_MAX_BYTES {
                self.flush(&mut out).await;
            }
            next = peek(&mut responses);
        }
        self.flush(&mut out).await;
        if let Some(mut socket) = self.socket.take() {
            let _ = self.bounded(socket.close()).await;
        }
    }

    /// Adds one response: small chunks to the coalesced bytes; a big chunk is written as it is,
    /// after what was coalesced before it.
    async fn add(&mut self, out: &mut Coalesced, pending: Pending, outcome: handlers::Outcome) {
        let mut held = None;
        if self.socket.is_some() {
            match outcome {
                Ok(Some(handlers::Response { chunks, held: h })) => {
                    held = h;
                    for chunk in chunks {
                        if let Err(why) = self.add_chunk(out, chunk).await {
                            self.stop(why);
                            break;
                        }
                    }
                }
                Ok(None) => {}
                Err(reason) => {
                    // The responses before this one still go out.
                    self.flush(out).await;
                    self.stop(reason);
                }
            }
        }
        out.released.push((pending, held));
    }

    async fn add_chunk(&mut self, out: &mut Coalesced, chunk: Bytes) -> Result<(), String> {
        if chunk.len() < COALESCE_BELOW_BYTES {
            out.bytes.extend_from_slice(&chunk);
            return Ok(());
        }
        if !out.bytes.is_empty() {
            self.write_all(&out.bytes).await?;
            out.bytes.clear();
        }
        out.written_alone += chunk.len();
        self.write_all(&chunk).await
    }

    /// Writes the coalesced bytes (unless writing stopped), then releases what their responses
    /// held: budget, buffers, and their place among the requests awaiting a response.
    async fn flush(&mut self, out: &mut Coalesced) {
        if !out.bytes.is_empty() && self.socket.is_some() {
            if let Err(why) = self.write_all(&out.bytes).await {
                self.stop(why);
            }
        }
        out.bytes.clear();
        out.written_alone = 0;
        let awaiting = self.activity.awaiting_response.get();
        debug_assert!(
            awaiting >= out.released.len(),
            "the reader counts each request it queues"
        );
        self.activity
            .awaiting_response
            .set(awaiting.saturating_sub(out.released.len()));
        out.released.clear();
    }

    fn stop(&mut self, why: String) {
        tracing::debug!(peer = %self.peer, "stopping writes: {why}");
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.send(why);
        }
        // No graceful close: it could wait on the same stalled socket. The socket closes when
        // the reader's half is dropped too.
        self.socket = None;
    }

    /// Runs one socket operation under the write timeout and the shutdown cut.
    async fn bounded<T>(
        &self,
        op: impl std::future::Future<Output = std::io::Result<T>>,
    ) -> Result<T, String> {
        futures::select_biased! {
            _ = self.force_close.clone().fuse() => Err("cut by shutdown (shutdown_timeout_ms)".to_string()),
            r = op.fuse() => r.map_err(|e| format!("write failed: {e}")),
            _ = glommio::timer::sleep(self.write_timeout).fuse() => Err(format!(
                "no progress for response_write_timeout_ms ({} ms)",
                self.write_timeout.as_millis()
            )),
        }
    }

    /// Each write must make progress within the write timeout: a slow reader is fine, a stopped
    /// one is cut.
    async fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            let mut socket = self.socket.take().ok_or("writes stopped")?;
            let written = self.bounded(socket.write(bytes)).await;
            self.socket = Some(socket);
            match written? {
                0 => return Err("write failed: connection closed".to_string()),
                n => bytes = &bytes[n..],
            }
        }
        self.activity.touch();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::sync::Semaphore;
    use glommio::{LocalExecutorBuilder, Placement};
    use std::cell::{Cell, RefCell};
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Instant;

    /// A socket that records each write it is given, or fails every write. Given the
    /// connection's activity, it also records how many requests awaited a response at each write.
    #[derive(Clone, Default)]
    struct Recorder {
        writes: Rc<RefCell<Vec<Vec<u8>>>>,
        broken: bool,
        activity: Option<Rc<Activity>>,
        awaiting_at_write: Rc<RefCell<Vec<usize>>>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            if self.broken {
                return Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
            }
            self.writes.borrow_mut().push(buf.to_vec());
            if let Some(activity) = &self.activity {
                let awaiting = activity.awaiting_response.get();
                self.awaiting_at_write.borrow_mut().push(awaiting);
            }
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    const BUDGET: usize = 100;
    const PER_REQUEST: usize = 10;

    /// A connection's requests as the reader queues them: each holds budget and is counted as
    /// awaiting its response; a request given a gate completes only once the gate opens.
    struct Requests {
        budget: Rc<Semaphore>,
        activity: Rc<Activity>,
        queue: mpsc::Sender<Pending>,
    }

    impl Requests {
        fn new(last_active: Instant) -> (Self, mpsc::Receiver<Pending>) {
            let (queue, responses) = mpsc::channel(16);
            let requests = Requests {
                budget: Rc::new(Semaphore::new(BUDGET as u64)),
                activity: Rc::new(Activity {
                    last_active: Cell::new(last_active),
                    awaiting_response: Cell::new(0),
                }),
                queue,
            };
            (requests, responses)
        }

        async fn push(&mut self, chunks: Vec<Vec<u8>>, gate: Option<oneshot::Receiver<()>>) {
            let task = glommio::spawn_local(async move {
                if let Some(gate) = gate {
                    let _ = gate.await;
                }
                Ok(Some(handlers::Response {
                    chunks: chunks.into_iter().map(Bytes::from).collect(),
                    held: None,
                }))
            });
            let permit = self.budget.acquire_static_permit(PER_REQUEST as u64).await;
            let awaiting = &self.activity.awaiting_response;
            awaiting.set(awaiting.get() + 1);
            let pending = Pending {
                response: task,
                _budget: permit.unwrap(),
            };
            self.queue.try_send(pending).unwrap();
        }

        fn writer(&self, socket: Recorder, stopped: oneshot::Sender<String>) -> Writer<Recorder> {
            Writer {
                socket: Some(socket),
                peer: "127.0.0.1:1".parse().unwrap(),
                activity: self.activity.clone(),
                write_timeout: Duration::from_secs(5),
                force_close: futures::future::pending::<()>().boxed_local().shared(),
                stopped: Some(stopped),
            }
        }

        fn released(&self) -> bool {
            self.activity.awaiting_response.get() == 0 && self.budget.available() == BUDGET as u64
        }
    }

    fn run_executor<Fut: std::future::Future<Output = ()> + 'static>(
        test: impl FnOnce() -> Fut + Send + 'static,
    ) {
        LocalExecutorBuilder::new(Placement::Unbound)
            .spawn(test)
            .unwrap()
            .join()
            .unwrap();
    }

    /// Five pipelined requests: three complete, one still running, one complete behind it.
    #[test]
    fn complete_responses_leave_in_one_write_in_request_order() {
        run_executor(|| async {
            let long_ago = Instant::now() - Duration::from_secs(600);
            let (mut requests, responses) = Requests::new(long_ago);
            let big = vec![7u8; COALESCE_BELOW_BYTES];
            let (open_gate, gate) = oneshot::channel::<()>();
            requests.push(vec![b"one".to_vec()], None).await;
            requests
                .push(vec![b"two".to_vec(), b"+".to_vec()], None)
                .await;
            requests.push(vec![b"three".to_vec()], None).await;
            requests.push(vec![b"four".to_vec()], Some(gate)).await;
            let last = vec![b"five".to_vec(), big.clone(), b"six".to_vec()];
            requests.push(last, None).await;
            // Every ungated handler finishes before the writer starts.
            glommio::executor().yield_now().await;
            let socket = Recorder::default();
            let (stopped, _) = oneshot::channel();
            let writer = requests.writer(socket.clone(), stopped);
            let writer = glommio::spawn_local(writer.run(responses));
            glommio::executor().yield_now().await;
            // The complete responses left together; the running one holds back the rest.
            assert_eq!(*socket.writes.borrow(), vec![b"onetwo+three".to_vec()]);
            assert_eq!(requests.activity.awaiting_response.get(), 2);
            assert_eq!(
                requests.budget.available(),
                (BUDGET - 2 * PER_REQUEST) as u64
            );
            // A write is activity: the idle limit counts from it.
            assert!(requests.activity.last_active.get() > long_ago);
            open_gate.send(()).unwrap();
            requests.queue.close_channel();
            writer.await;
            let expected = vec![
                b"onetwo+three".to_vec(),
                b"fourfive".to_vec(),
                big,
                b"six".to_vec(),
            ];
            assert_eq!(*socket.writes.borrow(), expected);
            assert!(requests.released());
        });
    }

    /// Ready responses made only of big chunks (a run of Fetch responses) give back their budget
    /// as their bytes leave, not only when the run ends.
    #[test]
    fn a_run_of_big_responses_releases_each_after_its_bytes_left() {
        run_executor(|| async {
            let (mut requests, responses) = Requests::new(Instant::now());
            for byte in 1..=3u8 {
                let big = vec![byte; COALESCE_MAX_BYTES];
                requests.push(vec![big], None).await;
            }
            requests.queue.close_channel();
            glommio::executor().yield_now().await;
            let socket = Recorder {
                activity: Some(requests.activity.clone()),
                ..Recorder::default()
            };
            let (stopped, _) = oneshot::channel();
            requests
                .writer(socket.clone(), stopped)
                .run(responses)
                .await;
            assert_eq!(socket.writes.borrow().len(), 3);
            // Each write found the responses before it already released.
            assert_eq!(*socket.awaiting_at_write.borrow(), vec![3, 2, 1]);
            assert!(requests.released());
        });
    }

    /// A failed write stops the writing and tells the reader why, but every request already
    /// queued still runs to its end and gives back its budget.
    #[test]
    fn a_failed_write_stops_writing_and_still_releases_every_request() {
        run_executor(|| async {
            let (mut requests, responses) = Requests::new(Instant::now());
            let (open_gate, gate) = oneshot::channel::<()>();
            requests.push(vec![b"one".to_vec()], None).await;
            requests.push(vec![b"two".to_vec()], Some(gate)).await;
            requests.queue.close_channel();
            let socket = Recorder {
                broken: true,
                ..Recorder::default()
            };
            let (stopped, why) = oneshot::channel();
            let writer = glommio::spawn_local(requests.writer(socket, stopped).run(responses));
            let why = why.await.expect("the writer says why it stopped");
            assert!(why.contains("write failed"), "{why}");
            open_gate.send(()).unwrap();
            writer.await;
            assert!(requests.released());
        });
    }
}
