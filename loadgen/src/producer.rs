//! A producer connection: takes messages from its open-loop schedule, appends them to a
//! RecordBatch, sends a Produce request per batch with several in flight, and records each
//! message's latency from its intended send time when the acknowledgement arrives.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;

use riffle_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use riffle_protocol::messages::produce_response::ProduceResponse;
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::{decode_response, error_code, Bytes, Records};

use crate::conn::{reconnect_if_due, Conn, RECONNECT_BACKOFF_NS};
use crate::schedule::{record_latencies, IntendedTimes, OpenLoop};
use crate::stats::{Interval, Kind};
use crate::worker::{Agent, Clock};

/// With acks=0 nothing is acknowledged: stop building batches while this much is unsent.
const ACKS0_UNSENT_MAX_BYTES: usize = 4 << 20;
/// A request not answered in this time breaks the connection.
const REQUEST_TIMEOUT_NS: u64 = 30_000_000_000;
/// Upper bound of a record's framing bytes around its value (length, attributes, deltas, key).
const RECORD_OVERHEAD_BYTES: usize = 16;

/// Settings shared by a run's producers.
#[derive(Debug)]
pub(crate) struct ProducerConfig {
    pub topic: String,
    pub acks: i16,
    pub size_bytes: usize,
    pub batch_bytes: usize,
    /// Produce requests one connection keeps in flight (acks 1 and all).
    pub in_flight_max: usize,
    pub linger_ns: u64,
    pub compression: Compression,
    pub produce_version: i16,
    pub warmup_end_ns: u64,
    pub stop_ns: u64,
    pub clock: Clock,
}

struct BatchInProgress {
    builder: RecordBatchBuilder,
    times: IntendedTimes,
}

struct InFlight {
    correlation_id: i32,
    partition: i32,
    times: IntendedTimes,
    sent_ns: u64,
}

/// Lives on one worker thread for the whole run.
pub(crate) struct ProducerAgent {
    cfg: Arc<ProducerConfig>,
    addr: SocketAddr,
    conn: Option<Conn>,
    reconnect_at_ns: u64,
    partitions: Vec<i32>,
    next_partition: usize,
    schedule: OpenLoop,
    batch: Option<BatchInProgress>,
    in_flight: VecDeque<InFlight>,
    /// The payload, rewritten in place for each message: intended send time (wall-clock ns,
    /// little endian) in the first 8 bytes, filler after.
    value: Vec<u8>,
    frames: Vec<Bytes>,
    /// Messages acknowledged (or sent, with acks=0) so far.
    acked: u64,
    /// Whether the backlog at the stop time was reported.
    stop_reported: bool,
    /// Set when the run stopped without a connection: the backlog is given up.
    abandoned: bool,
}

impl ProducerAgent {
    pub(crate) fn new(
        cfg: Arc<ProducerConfig>,
        addr: SocketAddr,
        partitions: Vec<i32>,
        schedule: OpenLoop,
        seed: u64,
    ) -> Self {
        assert!(!partitions.is_empty());
        assert!(cfg.size_bytes >= 8, "payload carries an 8-byte timestamp");
        let mut value = vec![0u8; cfg.size_bytes];
        fill_payload(&mut value[8..], seed);
        let in_flight = VecDeque::with_capacity(cfg.in_flight_max);
        ProducerAgent {
            cfg,
            addr,
            conn: None,
            reconnect_at_ns: 0,
            partitions,
            next_partition: (seed as usize) % 7,
            schedule,
            batch: None,
            in_flight,
            value,
            frames: Vec::new(),
            acked: 0,
            stop_reported: false,
            abandoned: false,
        }
    }

    fn fail_connection(&mut self, iv: &mut Interval, now_ns: u64, what: String) {
        iv.error(what);
        for f in self.in_flight.drain(..) {
            iv.error(format!(
                "produce to {}-{} lost with the connection",
                self.cfg.topic, f.partition
            ));
        }
        self.conn = None;
        self.reconnect_at_ns = now_ns + RECONNECT_BACKOFF_NS;
    }

    fn handle_responses(&mut self, now_ns: u64, iv: &mut Interval) -> Result<(), String> {
        let mut frames = std::mem::take(&mut self.frames);
        for frame in frames.drain(..) {
            let f = self
                .in_flight
                .pop_front()
                .ok_or("response with no request in flight")?;
            let (corr, resp) = decode_response::<ProduceResponse>(frame, self.cfg.produce_version)
                .map_err(|e| format!("bad produce response: {e}"))?;
            if corr != f.correlation_id {
                return Err(format!(
                    "correlation id {corr}, expected {}",
                    f.correlation_id
                ));
            }
            let code = resp
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
                .map(|p| p.error_code)
                .find(|&c| c != error_code::NONE)
                .unwrap_or(error_code::NONE);
            if code != error_code::NONE {
                iv.error(format!(
                    "produce {}-{}: error code {code}",
                    self.cfg.topic, f.partition
                ));
                continue;
            }
            self.acknowledged(f.times, now_ns, iv);
        }
        self.frames = frames;
        Ok(())
    }

    fn acknowledged(&mut self, times: IntendedTimes, now_ns: u64, iv: &mut Interval) {
        let measured = record_latencies(
            iv.hist(Kind::Produce),
            times,
            now_ns,
            self.cfg.warmup_end_ns,
        );
        let size = self.cfg.size_bytes as u64;
        self.acked += times.count as u64;
        iv.produced.add(
            times.count as u64 - measured,
            (times.count as u64 - measured) * size,
            false,
        );
        iv.produced.add(measured, measured * size, true);
    }

    fn append(&mut self, intended_ns: u64, first_k_step: f64) {
        let wall_ns = self.cfg.clock.wall_of(intended_ns);
        self.value[..8].copy_from_slice(&wall_ns.to_le_bytes());
        let timestamp_ms = (wall_ns / 1_000_000) as i64;
        let b = self.batch.get_or_insert_with(|| BatchInProgress {
            builder: RecordBatchBuilder::new(self.cfg.compression, timestamp_ms),
            times: IntendedTimes {
                first_ns: intended_ns,
                step_ns: first_k_step,
                count: 0,
            },
        });
        b.builder.append(timestamp_ms, None, Some(&self.value), &[]);
        b.times.count += 1;
    }

    fn batch_full(&self) -> bool {
        self.batch
            .as_ref()
            .is_some_and(|b| b.builder.size_estimate() + self.cfg.size_bytes > self.cfg.batch_bytes)
    }

    fn can_send(&self) -> bool {
        match &self.conn {
            None => false,
            Some(c) if self.cfg.acks == 0 => c.pending_out_bytes() < ACKS0_UNSENT_MAX_BYTES,
            Some(_) => self.in_flight.len() < self.cfg.in_flight_max,
        }
    }

    fn send_batch(&mut self, now_ns: u64, iv: &mut Interval) -> Result<(), String> {
        let Some(b) = self.batch.take() else {
            return Ok(());
        };
        let partition = self.partitions[self.next_partition % self.partitions.len()];
        self.next_partition = self.next_partition.wrapping_add(1);
        let request = ProduceRequest {
            transactional_id: None,
            acks: self.cfg.acks,
            timeout_ms: 30_000,
            topic_data: vec![TopicProduceData {
                topic_id: Default::default(),
                name: self.cfg.topic.clone(),
                partition_data: vec![PartitionProduceData {
                    index: partition,
                    records: Some(Records::from_bytes(b.builder.finish())),
                }],
            }],
        };
        let conn = self.conn.as_mut().expect("can_send checked the connection");
        let correlation_id = conn
            .send(self.cfg.produce_version, &request)
            .map_err(|e| format!("encode produce: {e}"))?;
        if self.cfg.acks == 0 {
            self.acknowledged(b.times, now_ns, iv);
        } else {
            self.in_flight.push_back(InFlight {
                correlation_id,
                partition,
                times: b.times,
                sent_ns: now_ns,
            });
        }
        Ok(())
    }

    /// Takes due messages into the batch and sends full or lingered batches while it may.
    fn produce(&mut self, now_ns: u64, iv: &mut Interval) -> Result<(), String> {
        let stopping = now_ns >= self.cfg.stop_ns;
        if self.schedule.is_flat_out() {
            while !stopping && self.can_send() {
                while !self.batch_full() {
                    self.schedule.take();
                    self.append(now_ns, 0.0);
                }
                self.send_batch(now_ns, iv)?;
            }
            return Ok(());
        }
        loop {
            // Messages due before the stop time; never more than fit in the batch.
            let due_until = now_ns.min(self.cfg.stop_ns.saturating_sub(1));
            // Everything due before the stop is sent, however late: dropping a backlog at the
            // end would hide the latency of a broker that fell behind.
            while !self.batch_full() && self.schedule.due(due_until, 1) == 1 {
                let k = self.schedule.take();
                let step = self.schedule.period_ns();
                let intended = self.schedule.intended_ns(k);
                self.append(intended, step);
            }
            let Some(b) = &self.batch else { return Ok(()) };
            let lingered = now_ns >= b.times.first_ns + self.cfg.linger_ns;
            if (self.batch_full() || lingered || stopping) && self.can_send() {
                self.send_batch(now_ns, iv)?;
            } else {
                return Ok(());
            }
        }
    }

    /// Whether every message scheduled before the stop has been taken into a batch.
    fn backlog_sent(&self) -> bool {
        self.schedule
            .next_due_ns()
            .is_none_or(|t| t >= self.cfg.stop_ns)
    }

    fn step(&mut self, now_ns: u64, iv: &mut Interval) -> Result<(), String> {
        if let Some(conn) = self.conn.as_mut() {
            conn.read_frames(&mut self.frames)
                .map_err(|e| format!("produce connection to {}: {e}", self.addr))?;
        }
        self.handle_responses(now_ns, iv)?;
        if let Some(f) = self.in_flight.front() {
            if now_ns > f.sent_ns + REQUEST_TIMEOUT_NS {
                return Err(format!(
                    "produce request timed out after {} s",
                    REQUEST_TIMEOUT_NS / 1_000_000_000
                ));
            }
        }
        self.produce(now_ns, iv)?;
        if let Some(conn) = self.conn.as_mut() {
            conn.flush()
                .map_err(|e| format!("produce connection to {}: {e}", self.addr))?;
        }
        Ok(())
    }
}

impl Agent for ProducerAgent {
    fn poll(&mut self, now_ns: u64, iv: &mut Interval) -> Option<u64> {
        reconnect_if_due(
            &mut self.conn,
            self.addr,
            &mut self.reconnect_at_ns,
            self.cfg.stop_ns,
            now_ns,
            iv,
        );
        if let Err(what) = self.step(now_ns, iv) {
            self.fail_connection(iv, now_ns, what);
        }
        if now_ns >= self.cfg.stop_ns && !self.stop_reported {
            self.stop_reported = true;
            let scheduled = self.schedule.scheduled_before(self.cfg.stop_ns);
            iv.backlog_at_stop += scheduled.saturating_sub(self.acked);
        }
        if self.conn.is_none() {
            if now_ns < self.cfg.stop_ns {
                return Some(self.reconnect_at_ns.max(now_ns));
            }
            if !self.abandoned {
                // No broker to drain the backlog into: give up on it, and say so.
                self.abandoned = true;
                let scheduled = self.schedule.scheduled_before(self.cfg.stop_ns);
                let unsent = scheduled.saturating_sub(self.acked);
                if unsent > 0 {
                    iv.error(format!(
                        "{unsent} messages due before the stop were never acknowledged (no connection to {})",
                        self.addr
                    ));
                }
                self.batch = None;
            }
            return None;
        }
        if now_ns >= self.cfg.stop_ns {
            let more = self.batch.is_some() || !self.backlog_sent();
            return (more && self.can_send()).then_some(now_ns);
        }
        if self.schedule.is_flat_out() {
            return self.can_send().then_some(now_ns);
        }
        // Messages are appended lazily (their intended times come from the schedule, not
        // from when they are appended), so the worker wakes once per batch, not per message:
        // when the batch has lingered long enough or would be full.
        if !self.can_send() {
            return None; // a response frees a slot; the socket wakes the worker
        }
        let first_ns = match &self.batch {
            Some(b) => b.times.first_ns,
            None => self
                .schedule
                .next_due_ns()
                .expect("rate mode has a schedule"),
        };
        let per_batch =
            (self.cfg.batch_bytes / (self.cfg.size_bytes + RECORD_OVERHEAD_BYTES)).max(1);
        let full_ns = first_ns + ((per_batch - 1) as f64 * self.schedule.period_ns()) as u64;
        let send_ns = (first_ns + self.cfg.linger_ns).min(full_ns);
        Some(send_ns.min(self.cfg.stop_ns))
    }

    fn io_interest(&self, interest: &mut Vec<(RawFd, bool)>) {
        interest.extend(
            self.conn
                .as_ref()
                .map(|c| (c.fd(), c.pending_out_bytes() > 0)),
        );
    }

    fn finished(&self, now_ns: u64) -> bool {
        if now_ns >= self.cfg.stop_ns && self.abandoned {
            return true;
        }
        now_ns >= self.cfg.stop_ns
            && self.backlog_sent()
            && self.in_flight.is_empty()
            && self.batch.is_none()
            && self
                .conn
                .as_ref()
                .is_none_or(|c| c.pending_out_bytes() == 0)
    }
}

/// Filler after the timestamp: printable pseudo-random text, so compression has work to do
/// without the data being all alike.
fn fill_payload(out: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in out.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = b"abcdefghijklmnopqrstuvwxyz012345"[(x % 32) as usize];
    }
}
