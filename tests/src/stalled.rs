//! A client that stops halfway: it pipelines produce requests and never reads a response, so
//! the broker's writes to it stall. Runs on its own thread; the test watches it from outside.

use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use riffle_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use riffle_protocol::messages::ProduceRequest;
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::Records;

use crate::kafka::{Connection, PRODUCE_VERSION};

/// The client's receive buffer: small, so the broker's responses back up quickly.
const RECV_BUFFER_BYTES: usize = 4096;
/// A blocked write of the client gives up after this long (the broker should cut it far sooner).
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// How the non-reading producer ended.
#[derive(Debug)]
pub struct NonReadingOutcome {
    pub requests_sent: u64,
    /// The error its last write met (the broker closing the connection: reset or broken pipe).
    pub error_kind: ErrorKind,
    pub error: String,
    pub ended_at: Instant,
}

pub struct NonReadingProducer {
    sent: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<NonReadingOutcome>>,
}

impl NonReadingProducer {
    /// Connects and starts pipelining acks=1 produce requests to `topic` partition 0.
    pub fn start(addr: &str, topic: &str) -> NonReadingProducer {
        let mut conn =
            Connection::connect_from(addr, IpAddr::from([127, 0, 0, 1]), Some(RECV_BUFFER_BYTES))
                .expect("connect the non-reading producer");
        conn.stream()
            .set_write_timeout(Some(CLIENT_WRITE_TIMEOUT))
            .expect("set the write timeout");
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let topic = topic.to_string();
        let thread = thread::spawn(move || pipeline(conn, &topic, &counter));
        NonReadingProducer {
            sent,
            thread: Some(thread),
        }
    }

    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until its writes block (no request sent for `quiet`): the broker has stopped reading
    /// from it. Panics after `timeout`.
    pub fn wait_until_stalled(&self, quiet: Duration, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        let mut last = self.requests_sent();
        let mut since = Instant::now();
        loop {
            thread::sleep(Duration::from_millis(50));
            let now = self.requests_sent();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet && now > 0 {
                return since;
            }
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                panic!("the non-reading producer ended before its writes stalled ({now} sent)");
            }
            assert!(
                Instant::now() < deadline,
                "the non-reading producer's writes did not stall within {timeout:?} ({now} sent)"
            );
        }
    }

    /// Waits for its writes to fail (the broker closed the connection); panics after `timeout`.
    pub fn wait_until_cut(mut self, timeout: Duration) -> NonReadingOutcome {
        let thread = self.thread.take().expect("joined once");
        let deadline = Instant::now() + timeout;
        while !thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the broker did not close the non-reading connection within {timeout:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        thread.join().expect("the non-reading producer thread")
    }
}

fn pipeline(mut conn: Connection, topic: &str, sent: &AtomicU64) -> NonReadingOutcome {
    let mut builder = RecordBatchBuilder::new(Compression::None, 1_700_000_000_000);
    builder.append(1_700_000_000_000, Some(b"k"), Some(b"never read"), &[]);
    let batch = builder.finish();
    loop {
        let request = conn.encode(
            PRODUCE_VERSION,
            &ProduceRequest {
                transactional_id: None,
                acks: 1,
                timeout_ms: 10_000,
                topic_data: vec![TopicProduceData {
                    topic_id: Default::default(),
                    name: topic.to_string(),
                    partition_data: vec![PartitionProduceData {
                        index: 0,
                        records: Some(Records::from_bytes(batch.clone())),
                    }],
                }],
            },
        );
        if let Err(e) = conn.stream().write_all(&request) {
            return NonReadingOutcome {
                requests_sent: sent.load(Ordering::Relaxed),
                error_kind: e.kind(),
                error: e.to_string(),
                ended_at: Instant::now(),
            };
        }
        sent.fetch_add(1, Ordering::Relaxed);
    }
}
