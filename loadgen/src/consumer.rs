//! A consumer connection: one Fetch (long poll) in flight for its assigned partitions; each
//! record's end-to-end latency is the receipt time minus the intended send time carried in
//! the first 8 bytes of its value.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;

use riffle_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use riffle_protocol::messages::fetch_response::FetchResponse;
use riffle_protocol::record_batch::{batches, parse_records, Compression, Record};
use riffle_protocol::{decode_response, error_code, Bytes};

use crate::conn::{reconnect_if_due, Conn, RECONNECT_BACKOFF_NS};
use crate::stats::{Interval, Kind};
use crate::worker::{wall_ns, Agent};

const FETCH_MAX_WAIT_MS: i32 = 500;
const FETCH_MAX_BYTES: i32 = 16 << 20;
const PARTITION_MAX_BYTES: i32 = 4 << 20;
/// Decompressed size a batch may reach.
const DECOMPRESSED_MAX_BYTES: usize = 64 << 20;
const REQUEST_TIMEOUT_NS: u64 = 30_000_000_000;

/// Settings shared by a run's consumers.
#[derive(Debug)]
pub(crate) struct ConsumerConfig {
    pub topic: String,
    pub fetch_version: i16,
    pub warmup_end_ns: u64,
    pub stop_ns: u64,
}

/// Lives on one worker thread for the whole run.
pub(crate) struct ConsumerAgent {
    cfg: Arc<ConsumerConfig>,
    addr: SocketAddr,
    conn: Option<Conn>,
    reconnect_at_ns: u64,
    /// (partition, next offset to fetch)
    positions: Vec<(i32, i64)>,
    in_flight: Option<(i32, u64)>,
    frames: Vec<Bytes>,
}

impl ConsumerAgent {
    pub(crate) fn new(
        cfg: Arc<ConsumerConfig>,
        addr: SocketAddr,
        positions: Vec<(i32, i64)>,
    ) -> Self {
        ConsumerAgent {
            cfg,
            addr,
            conn: None,
            reconnect_at_ns: 0,
            positions,
            in_flight: None,
            frames: Vec::new(),
        }
    }

    fn step(&mut self, now_ns: u64, iv: &mut Interval) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        conn.read_frames(&mut self.frames)
            .map_err(|e| format!("fetch connection to {}: {e}", self.addr))?;
        let frames = std::mem::take(&mut self.frames);
        for frame in frames {
            let (corr, sent_ns) = self
                .in_flight
                .take()
                .ok_or("response with no fetch in flight")?;
            let (got, resp) = decode_response::<FetchResponse>(frame, self.cfg.fetch_version)
                .map_err(|e| format!("bad fetch response: {e}"))?;
            if got != corr {
                return Err(format!("correlation id {got}, expected {corr}"));
            }
            let measured = now_ns >= self.cfg.warmup_end_ns;
            if measured {
                iv.hist(Kind::Fetch)
                    .saturating_record(((now_ns - sent_ns) / 1000).max(1));
            }
            if resp.error_code != error_code::NONE {
                iv.error(format!("fetch: error code {}", resp.error_code));
            }
            self.take_records(&resp, measured, iv);
        }
        if let Some((_, sent_ns)) = self.in_flight {
            if now_ns > sent_ns + REQUEST_TIMEOUT_NS {
                return Err("fetch request timed out".into());
            }
        }
        let conn = self.conn.as_mut().expect("connected above");
        if self.in_flight.is_none() && now_ns < self.cfg.stop_ns {
            let request = FetchRequest {
                replica_id: -1,
                max_wait_ms: FETCH_MAX_WAIT_MS,
                min_bytes: 1,
                max_bytes: FETCH_MAX_BYTES,
                isolation_level: 0,
                session_id: 0,
                session_epoch: -1,
                topics: vec![FetchTopic {
                    topic: self.cfg.topic.clone(),
                    partitions: self
                        .positions
                        .iter()
                        .map(|&(partition, fetch_offset)| FetchPartition {
                            partition,
                            current_leader_epoch: -1,
                            fetch_offset,
                            last_fetched_epoch: -1,
                            log_start_offset: -1,
                            partition_max_bytes: PARTITION_MAX_BYTES,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            };
            let corr = conn
                .send(self.cfg.fetch_version, &request)
                .map_err(|e| format!("encode fetch: {e}"))?;
            self.in_flight = Some((corr, now_ns));
        }
        conn.flush()
            .map_err(|e| format!("fetch connection to {}: {e}", self.addr))?;
        Ok(())
    }

    fn take_records(&mut self, resp: &FetchResponse, measured: bool, iv: &mut Interval) {
        let receipt_wall_ns = wall_ns();
        for p in resp.responses.iter().flat_map(|t| t.partitions.iter()) {
            let Some(pos) = self
                .positions
                .iter_mut()
                .find(|(q, _)| *q == p.partition_index)
            else {
                continue;
            };
            if p.error_code != error_code::NONE {
                iv.error(format!(
                    "fetch {}-{}: error code {}",
                    self.cfg.topic, p.partition_index, p.error_code
                ));
                continue;
            }
            let Some(records) = &p.records else { continue };
            let data = records.to_bytes();
            let (mut messages, mut bytes) = (0u64, 0u64);
            for batch in batches(&data) {
                let Ok(batch) = batch else { break }; // a partial batch ends a fetch response
                if batch.last_offset() < pos.1 {
                    continue;
                }
                let base = batch.base_offset();
                let mut on_record = |r: Record<'_>| {
                    let offset = base + r.offset_delta as i64;
                    if offset < pos.1 {
                        return;
                    }
                    let value = r.value.unwrap_or(&[]);
                    messages += 1;
                    bytes += value.len() as u64;
                    if measured && value.len() >= 8 {
                        let sent = u64::from_le_bytes(value[..8].try_into().expect("8 bytes"));
                        // Only values that look like our timestamps (not from another tool).
                        if sent > 0 && sent <= receipt_wall_ns + 1_000_000_000 {
                            let latency_us = receipt_wall_ns.saturating_sub(sent) / 1000;
                            iv.hist(Kind::E2e).saturating_record(latency_us.max(1));
                        }
                    }
                };
                let parsed = if batch.attributes().compression() == Compression::None {
                    batch
                        .records()
                        .map(|it| it.filter_map(Result::ok).for_each(&mut on_record))
                } else {
                    batch.decompress(DECOMPRESSED_MAX_BYTES).map(|raw| {
                        parse_records(&raw, batch.record_count())
                            .filter_map(Result::ok)
                            .for_each(&mut on_record)
                    })
                };
                if let Err(e) = parsed {
                    iv.error(format!(
                        "fetch {}-{}: bad batch at {base}: {e}",
                        self.cfg.topic, p.partition_index
                    ));
                }
                pos.1 = batch.last_offset() + 1;
            }
            iv.consumed.add(messages, bytes, measured);
        }
    }
}

impl Agent for ConsumerAgent {
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
            iv.error(what);
            self.conn = None;
            self.in_flight = None;
            self.reconnect_at_ns = now_ns + RECONNECT_BACKOFF_NS;
        }
        if self.conn.is_none() && now_ns < self.cfg.stop_ns {
            return Some(self.reconnect_at_ns.max(now_ns));
        }
        (now_ns < self.cfg.stop_ns).then_some(self.cfg.stop_ns)
    }

    fn io_interest(&self) -> Option<(RawFd, bool)> {
        self.conn
            .as_ref()
            .map(|c| (c.fd(), c.pending_out_bytes() > 0))
    }

    fn finished(&self, now_ns: u64) -> bool {
        now_ns >= self.cfg.stop_ns && self.in_flight.is_none()
    }
}
