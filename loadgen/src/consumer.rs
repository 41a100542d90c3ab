//! A consumer: one Fetch (long poll) in flight per partition leader for its partitions; each
//! record's end-to-end latency is the receipt time minus the intended send time carried in
//! the first 8 bytes of its value. In a consumer group the consumer is one member: a
//! `GroupMember` on its coordinator connection decides which partitions it fetches, from where.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;

use riffle_protocol::messages::fetch_response::FetchResponse;
use riffle_protocol::{decode_response, error_code, Bytes};

use crate::conn::{reconnect_if_due, Conn, RECONNECT_BACKOFF_NS};
use crate::stats::{Interval, Kind};
use crate::worker::{wall_ns, Agent};
use riffle_client::group::{
    Assigned, GroupMember, GroupResponse, MemberConfig, REBALANCE_TIMEOUT_MS,
};
use riffle_client::{fetch_request, for_each_record, GroupVersions};

const FETCH_MAX_WAIT_MS: i32 = 500;
const FETCH_MAX_BYTES: i32 = 16 << 20;
const PARTITION_MAX_BYTES: i32 = 4 << 20;
const REQUEST_TIMEOUT_NS: u64 = 30_000_000_000;
/// A JoinGroup may wait for the whole rebalance (Kafka: the rebalance timeout plus 5 s).
const GROUP_REQUEST_TIMEOUT_NS: u64 = (REBALANCE_TIMEOUT_MS as u64 + 5_000) * 1_000_000;

/// Settings shared by a run's consumers.
#[derive(Debug)]
pub(crate) struct ConsumerConfig {
    pub topic: String,
    pub fetch_version: i16,
    pub warmup_end_ns: u64,
    pub stop_ns: u64,
    /// Each partition's leader, where it is fetched from.
    pub leaders: BTreeMap<i32, SocketAddr>,
}

/// Lives on one worker thread for the whole run.
pub(crate) struct ConsumerAgent {
    cfg: Arc<ConsumerConfig>,
    /// One per partition leader.
    fetchers: Vec<Fetcher>,
    group: Option<GroupSession>,
}

impl ConsumerAgent {
    /// A consumer of the given (partition, offset) positions, assigned by the run.
    pub(crate) fn manual(cfg: Arc<ConsumerConfig>, positions: Vec<(i32, i64)>) -> Self {
        let mut fetchers: Vec<Fetcher> = Vec::new();
        assign(&cfg, &mut fetchers, &positions);
        ConsumerAgent {
            cfg,
            fetchers,
            group: None,
        }
    }

    /// A member of a consumer group, whose coordinator is at `coordinator`.
    pub(crate) fn member(
        cfg: Arc<ConsumerConfig>,
        member: Arc<MemberConfig>,
        coordinator: SocketAddr,
    ) -> Self {
        ConsumerAgent {
            cfg,
            fetchers: Vec::new(),
            group: Some(GroupSession {
                versions: member.versions.clone(),
                member: GroupMember::new(member),
                addr: coordinator,
                conn: None,
                reconnect_at_ns: 0,
                in_flight: None,
                frames: Vec::new(),
            }),
        }
    }
}

/// Points each fetcher at its leader's share of `positions` (others are dropped), adding
/// fetchers for new leaders.
fn assign(cfg: &ConsumerConfig, fetchers: &mut Vec<Fetcher>, positions: &[(i32, i64)]) {
    for f in fetchers.iter_mut() {
        f.positions.clear();
    }
    for &(partition, offset) in positions {
        let Some(&leader) = cfg.leaders.get(&partition) else {
            continue; // the run's setup listed every partition; the group may know more
        };
        let i = match fetchers.iter().position(|f| f.addr == leader) {
            Some(i) => i,
            None => {
                fetchers.push(Fetcher::new(leader));
                fetchers.len() - 1
            }
        };
        fetchers[i].positions.push((partition, offset));
    }
}

/// (partition, next offset) over all fetchers, sorted.
fn positions(fetchers: &[Fetcher]) -> Vec<(i32, i64)> {
    let mut out: Vec<(i32, i64)> = fetchers
        .iter()
        .flat_map(|f| f.positions.iter().copied())
        .collect();
    out.sort_unstable();
    out
}

/// A connection to one partition leader, fetching the consumer's partitions there.
struct Fetcher {
    addr: SocketAddr,
    conn: Option<Conn>,
    reconnect_at_ns: u64,
    /// (partition, next offset to fetch)
    positions: Vec<(i32, i64)>,
    in_flight: Option<(i32, u64)>,
    frames: Vec<Bytes>,
}

impl Fetcher {
    fn new(addr: SocketAddr) -> Self {
        Fetcher {
            addr,
            conn: None,
            reconnect_at_ns: 0,
            positions: Vec::new(),
            in_flight: None,
            frames: Vec::new(),
        }
    }

    /// `may_fetch`: the partitions are (still) this consumer's. Returns when to run next.
    fn poll(
        &mut self,
        cfg: &ConsumerConfig,
        now_ns: u64,
        may_fetch: bool,
        iv: &mut Interval,
    ) -> Option<u64> {
        reconnect_if_due(
            &mut self.conn,
            self.addr,
            &mut self.reconnect_at_ns,
            cfg.stop_ns,
            now_ns,
            iv,
        );
        if let Err(what) = self.step(cfg, now_ns, may_fetch, iv) {
            iv.error(what);
            self.conn = None;
            self.in_flight = None;
            self.reconnect_at_ns = now_ns + RECONNECT_BACKOFF_NS;
        }
        if self.conn.is_none() && now_ns < cfg.stop_ns {
            return Some(self.reconnect_at_ns.max(now_ns));
        }
        (now_ns < cfg.stop_ns).then_some(cfg.stop_ns)
    }

    fn step(
        &mut self,
        cfg: &ConsumerConfig,
        now_ns: u64,
        may_fetch: bool,
        iv: &mut Interval,
    ) -> Result<(), String> {
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
            let (got, resp) = decode_response::<FetchResponse>(frame, cfg.fetch_version)
                .map_err(|e| format!("bad fetch response: {e}"))?;
            if got != corr {
                return Err(format!("correlation id {got}, expected {corr}"));
            }
            let measured = now_ns >= cfg.warmup_end_ns;
            if measured {
                iv.hist(Kind::Fetch)
                    .saturating_record(((now_ns - sent_ns) / 1000).max(1));
            }
            if resp.error_code != error_code::NONE {
                iv.error(format!("fetch: error code {}", resp.error_code));
            }
            self.take_records(cfg, &resp, measured, iv);
        }
        if let Some((_, sent_ns)) = self.in_flight {
            if now_ns > sent_ns + REQUEST_TIMEOUT_NS {
                return Err("fetch request timed out".into());
            }
        }
        let conn = self.conn.as_mut().expect("connected above");
        if self.in_flight.is_none()
            && now_ns < cfg.stop_ns
            && may_fetch
            && !self.positions.is_empty()
        {
            let request = fetch_request(
                &cfg.topic,
                &self.positions,
                FETCH_MAX_WAIT_MS,
                FETCH_MAX_BYTES,
                PARTITION_MAX_BYTES,
            );
            let corr = conn
                .send(cfg.fetch_version, &request)
                .map_err(|e| format!("encode fetch: {e}"))?;
            self.in_flight = Some((corr, now_ns));
        }
        conn.flush()
            .map_err(|e| format!("fetch connection to {}: {e}", self.addr))?;
        Ok(())
    }

    fn take_records(
        &mut self,
        cfg: &ConsumerConfig,
        resp: &FetchResponse,
        measured: bool,
        iv: &mut Interval,
    ) {
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
                    cfg.topic, p.partition_index, p.error_code
                ));
                continue;
            }
            let Some(records) = &p.records else { continue };
            let (mut messages, mut bytes) = (0u64, 0u64);
            let read = for_each_record(&records.to_bytes(), pos.1, |_, _, r| {
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
            });
            if let Some(e) = read.error {
                iv.error(format!("fetch {}-{}: {e}", cfg.topic, p.partition_index));
            }
            pos.1 = read.next_offset;
            iv.consumed.add(messages, bytes, measured);
        }
    }
}

/// A member's connection to its group coordinator, one request at a time.
struct GroupSession {
    member: GroupMember,
    versions: GroupVersions,
    addr: SocketAddr,
    conn: Option<Conn>,
    reconnect_at_ns: u64,
    /// (correlation id, sent at)
    in_flight: Option<(i32, u64)>,
    frames: Vec<Bytes>,
}

impl GroupSession {
    /// Drives the member; returns when to run next and whether the assignment changed.
    fn poll(
        &mut self,
        cfg: &ConsumerConfig,
        fetchers: &mut Vec<Fetcher>,
        now_ns: u64,
        iv: &mut Interval,
    ) -> (Option<u64>, bool) {
        let stopping = now_ns >= cfg.stop_ns;
        reconnect_if_due(
            &mut self.conn,
            self.addr,
            &mut self.reconnect_at_ns,
            cfg.stop_ns,
            now_ns,
            iv,
        );
        let mut assigned = false;
        if self.conn.is_some() {
            match self.step(cfg, fetchers, now_ns, stopping, iv) {
                Ok(a) => assigned = a,
                Err(what) => {
                    iv.error(what);
                    self.conn = None;
                    self.reconnect_at_ns = now_ns + RECONNECT_BACKOFF_NS;
                    self.in_flight = None;
                    self.member.on_disconnect(now_ns, stopping);
                }
            }
        } else if stopping {
            self.member.on_disconnect(now_ns, true);
        }
        if self.member.done() {
            self.conn = None;
            self.in_flight = None;
        }
        let next = match &self.conn {
            None if !stopping => Some(self.reconnect_at_ns.max(now_ns)),
            None => None,
            Some(_) => self.member.next_due_ns().map(|t| t.max(now_ns)),
        };
        (next, assigned)
    }

    fn step(
        &mut self,
        cfg: &ConsumerConfig,
        fetchers: &mut Vec<Fetcher>,
        now_ns: u64,
        stopping: bool,
        iv: &mut Interval,
    ) -> Result<bool, String> {
        let conn = self.conn.as_mut().expect("called when connected");
        conn.read_frames(&mut self.frames)
            .map_err(|e| format!("coordinator connection to {}: {e}", self.addr))?;
        let mut assigned = false;
        for frame in std::mem::take(&mut self.frames) {
            let (corr, _) = self
                .in_flight
                .take()
                .ok_or("group response with no request in flight")?;
            let api = self
                .member
                .expecting()
                .ok_or("group response the member does not expect")?;
            let (got, response) = GroupResponse::decode(api, frame, &self.versions)?;
            if got != corr {
                return Err(format!("correlation id {got}, expected {corr}"));
            }
            match self.member.on_response(now_ns, response) {
                Ok(Some(a)) => {
                    assign(cfg, fetchers, &a.positions);
                    iv.note(assignment_note(self.member.group(), cfg, &a, now_ns));
                    assigned = true;
                }
                Ok(None) => {}
                Err(what) => iv.error(what),
            }
        }
        if let Some((_, sent_ns)) = self.in_flight {
            if now_ns > sent_ns + GROUP_REQUEST_TIMEOUT_NS {
                return Err(format!(
                    "{:?} request to the coordinator timed out",
                    self.member.expecting()
                ));
            }
        } else {
            let fetch_idle = fetchers.iter().all(|f| f.in_flight.is_none());
            if let Some(request) = self
                .member
                .poll(now_ns, stopping, fetch_idle, || positions(fetchers))
            {
                let corr = conn
                    .send_group(&self.versions, &request)
                    .map_err(|e| format!("encode {:?}: {e}", request.api()))?;
                self.in_flight = Some((corr, now_ns));
            }
        }
        conn.flush()
            .map_err(|e| format!("coordinator connection to {}: {e}", self.addr))?;
        Ok(assigned)
    }
}

fn assignment_note(group: &str, cfg: &ConsumerConfig, a: &Assigned, now_ns: u64) -> String {
    let partitions: Vec<i32> = a.positions.iter().map(|&(p, _)| p).collect();
    format!(
        "group {group} joined, generation {}: member {}{} assigned {} partitions {partitions:?} at {:.1} s ({} from committed offsets)",
        a.generation,
        a.member_id,
        if a.leader { " (leader)" } else { "" },
        cfg.topic,
        now_ns as f64 / 1e9,
        a.committed
    )
}

impl Agent for ConsumerAgent {
    fn poll(&mut self, now_ns: u64, iv: &mut Interval) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut earliest = |t: Option<u64>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        let may_fetch = self.group.as_ref().is_none_or(|g| g.member.assigned());
        for f in &mut self.fetchers {
            earliest(f.poll(&self.cfg, now_ns, may_fetch, iv));
        }
        if let Some(g) = &mut self.group {
            let (t, assigned) = g.poll(&self.cfg, &mut self.fetchers, now_ns, iv);
            earliest(t);
            if assigned {
                // Start fetching the new assignment now.
                let may_fetch = g.member.assigned();
                for f in &mut self.fetchers {
                    earliest(f.poll(&self.cfg, now_ns, may_fetch, iv));
                }
            }
        }
        next
    }

    fn io_interest(&self, interest: &mut Vec<(RawFd, bool)>) {
        let fetch = self.fetchers.iter().filter_map(|f| f.conn.as_ref());
        let coordinator = self.group.as_ref().and_then(|g| g.conn.as_ref());
        for c in fetch.chain(coordinator) {
            interest.push((c.fd(), c.pending_out_bytes() > 0));
        }
    }

    fn finished(&self, now_ns: u64) -> bool {
        now_ns >= self.cfg.stop_ns
            && self.fetchers.iter().all(|f| f.in_flight.is_none())
            && self.group.as_ref().is_none_or(|g| g.member.done())
    }
}
