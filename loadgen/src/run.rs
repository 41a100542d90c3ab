//! Runs a produce, consume or e2e workload: setup over a blocking connection, then worker
//! threads (one per core) drive the agents while the main thread collects, prints progress
//! and finally writes the run's files.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use riffle_protocol::record_batch::Compression;
use serde_json::json;

use crate::consumer::{ConsumerAgent, ConsumerConfig};
use crate::producer::{ProducerAgent, ProducerConfig};
use crate::report;
use crate::schedule::OpenLoop;
use crate::stats::{Collector, Interval, Kind};
use crate::summary::{summarize, write_run, RunResult, Summary};
use crate::worker::{allowed_cpus, run_worker, Agent, Clock};
use riffle_client::group::{
    MemberConfig, COMMIT_INTERVAL_NS, HEARTBEAT_INTERVAL_NS, REBALANCE_TIMEOUT_MS,
    SESSION_TIMEOUT_MS,
};
use riffle_client::{
    Client, ConnectOptions, NewTopic, PartitionInfo, Versions, EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP, READY_TIMEOUT,
};
use riffle_protocol::{error_code, ApiKey};

/// How long setup waits to connect to a broker.
const SETUP_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long setup waits for one response.
const SETUP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long workers may take after the run to collect outstanding acknowledgements.
const DRAIN_NS: u64 = 15_000_000_000;
/// In e2e, consumers keep reading this long after the producers stop.
const E2E_CONSUMER_TAIL_NS: u64 = 2_000_000_000;

pub(crate) struct Common {
    pub bootstrap: String,
    pub topic: String,
    pub duration: Duration,
    pub warmup: Duration,
    pub out: Option<PathBuf>,
    pub quiet: bool,
}

pub(crate) struct ProduceSpec {
    pub create_partitions: Option<i32>,
    pub size_bytes: usize,
    pub rate: f64,
    pub producers: usize,
    pub acks: i16,
    pub batch_bytes: usize,
    pub in_flight: usize,
    pub linger_ms: u64,
    pub compression: Compression,
}

pub(crate) struct ConsumeSpec {
    pub group: Option<String>,
    pub consumers: usize,
    pub from_latest: bool,
}

pub(crate) fn run(
    workload: &str,
    c: &Common,
    p: Option<&ProduceSpec>,
    k: Option<&ConsumeSpec>,
) -> Result<()> {
    let run = Run {
        workload,
        common: c,
        produce: p,
        consume: k,
    };
    let setup = run.prepare()?;
    let clock = Clock::start();
    let deadlines = Deadlines::new(c, p.is_some() && k.is_some());
    let agents = interleave(
        run.producer_agents(&setup, clock, &deadlines),
        run.consumer_agents(&setup, &deadlines),
    );
    let measured = run.drive(agents, clock, deadlines.hard_stop_ns)?;
    run.finish(setup, measured)
}

/// One run's workload as given on the command line.
struct Run<'a> {
    workload: &'a str,
    common: &'a Common,
    /// The producer side, in produce and e2e runs.
    produce: Option<&'a ProduceSpec>,
    /// The consumer side, in consume and e2e runs.
    consume: Option<&'a ConsumeSpec>,
}

/// What the setup connection learned from the broker, and what the run reports as its
/// parameters and notes.
struct Setup {
    /// The agreed Produce and Fetch versions (-1: none riffle-loadgen speaks).
    produce_version: i16,
    fetch_version: i16,
    partitions: Vec<PartitionInfo>,
    params: BTreeMap<String, serde_json::Value>,
    notes: Vec<String>,
    /// Each partition with the offset the consumers start from (empty without consumers).
    positions: Vec<(PartitionInfo, i64)>,
    /// With a group: the members' settings and the coordinator's address.
    member: Option<(Arc<MemberConfig>, SocketAddr)>,
}

/// The run's marks on its clock, in nanoseconds since it started.
struct Deadlines {
    warmup_end_ns: u64,
    /// When the producers (and, without producers, the consumers) stop.
    stop_ns: u64,
    /// When the last agent stops: in e2e the consumers read a tail after the producers.
    last_stop_ns: u64,
    /// When workers give up on outstanding acknowledgements.
    hard_stop_ns: u64,
}

impl Deadlines {
    fn new(c: &Common, e2e: bool) -> Deadlines {
        let warmup_end_ns = c.warmup.as_nanos() as u64;
        let stop_ns = warmup_end_ns + c.duration.as_nanos() as u64;
        let last_stop_ns = stop_ns + if e2e { E2E_CONSUMER_TAIL_NS } else { 0 };
        Deadlines {
            warmup_end_ns,
            stop_ns,
            last_stop_ns,
            hard_stop_ns: last_stop_ns + DRAIN_NS,
        }
    }
}

/// What the workers measured, and what running them cost.
struct Measured {
    collector: Collector,
    threads: usize,
    loadgen_cpu_s: f64,
    wall_s: f64,
}

/// Connects to the bootstrap broker, creates the topic with `create_partitions` (an existing
/// topic is fine), and waits for its partitions' leaders.
fn connect(
    c: &Common,
    create_partitions: Option<i32>,
) -> Result<(Client, Versions, Vec<PartitionInfo>)> {
    let options = ConnectOptions {
        client_id: crate::CLIENT_ID.into(),
        connect_timeout: SETUP_CONNECT_TIMEOUT,
        request_timeout: SETUP_REQUEST_TIMEOUT,
    };
    let mut setup = Client::connect(&c.bootstrap, options)?;
    let versions = setup.bootstrap().versions().clone();
    if let Some(n) = create_partitions {
        let topic = NewTopic {
            name: c.topic.clone(),
            partitions: n,
            replication_factor: -1,
            configs: Vec::new(),
        };
        match setup.create_topic(&topic) {
            Err(e) if e.kafka_code() != Some(error_code::TOPIC_ALREADY_EXISTS) => {
                bail!("creating topic {}: {e}", c.topic)
            }
            _ => {}
        }
    }
    // A broker that creates topics on first use (Kafka's auto.create.topics.enable) may.
    let partitions = setup.partition_leaders(&c.topic, READY_TIMEOUT, true)?;
    Ok((setup, versions, partitions))
}

impl Run<'_> {
    /// Over a blocking connection: agrees API versions, finds (or creates) the topic and,
    /// with consumers, their start offsets and group coordinator.
    fn prepare(&self) -> Result<Setup> {
        let c = self.common;
        let (mut client, versions, partitions) =
            connect(c, self.produce.and_then(|p| p.create_partitions))?;
        let produce_version = versions.get(ApiKey::Produce);
        if self.produce.is_some() && produce_version.is_none() {
            bail!("broker {} supports no usable Produce version", c.bootstrap);
        }
        let mut setup = Setup {
            produce_version: produce_version.unwrap_or(-1),
            fetch_version: versions.get(ApiKey::Fetch).unwrap_or(-1),
            params: common_params(c, partitions.len()),
            partitions,
            notes: Vec::new(),
            positions: Vec::new(),
            member: None,
        };
        if let Some(p) = self.produce {
            insert_produce_params(&mut setup.params, p)?;
        }
        if let Some(k) = self.consume {
            setup.prepare_consumers(&mut client, &versions, c, k)?;
        }
        Ok(setup)
    }

    /// The producer agents: each producer's partitions, one agent per leader among them.
    fn producer_agents(
        &self,
        setup: &Setup,
        clock: Clock,
        deadlines: &Deadlines,
    ) -> Vec<Box<dyn Agent>> {
        let Some(p) = self.produce else {
            return Vec::new();
        };
        let cfg = Arc::new(ProducerConfig {
            topic: self.common.topic.clone(),
            acks: p.acks,
            size_bytes: p.size_bytes,
            batch_bytes: p.batch_bytes,
            in_flight_max: p.in_flight,
            linger_ns: p.linger_ms * 1_000_000,
            compression: p.compression,
            produce_version: setup.produce_version,
            warmup_end_ns: deadlines.warmup_end_ns,
            stop_ns: deadlines.stop_ns,
            clock,
        });
        let n = p.producers.max(1);
        let mut agents: Vec<Box<dyn Agent>> = Vec::new();
        for i in 0..n {
            let mine = producer_partitions(&setup.partitions, i, n);
            // One connection per leader among this producer's partitions, each with its
            // share of the rate (a single broker: one connection).
            for (leader, ids) in by_leader(&mine) {
                let rate = p.rate / n as f64 * ids.len() as f64 / mine.len() as f64;
                let offset_ns = if p.rate > 0.0 {
                    (i as f64 * 1e9 / p.rate) as u64
                } else {
                    0
                };
                agents.push(Box::new(ProducerAgent::new(
                    cfg.clone(),
                    leader,
                    ids,
                    OpenLoop::new(rate, offset_ns),
                    agents.len() as u64 + 1,
                )));
            }
        }
        agents
    }

    /// The consumer agents: group members, or partitions dealt round-robin without a group.
    fn consumer_agents(&self, setup: &Setup, deadlines: &Deadlines) -> Vec<Box<dyn Agent>> {
        let Some(k) = self.consume else {
            return Vec::new();
        };
        let cfg = Arc::new(ConsumerConfig {
            topic: self.common.topic.clone(),
            fetch_version: setup.fetch_version,
            warmup_end_ns: deadlines.warmup_end_ns,
            stop_ns: deadlines.last_stop_ns,
            leaders: setup
                .positions
                .iter()
                .map(|(info, _)| (info.partition, info.leader))
                .collect(),
        });
        let m = k.consumers.max(1);
        (0..m)
            .map(|i| -> Box<dyn Agent> {
                Box::new(match &setup.member {
                    Some((member, coordinator)) => {
                        ConsumerAgent::member(cfg.clone(), member.clone(), *coordinator)
                    }
                    None => ConsumerAgent::manual(
                        cfg.clone(),
                        setup
                            .positions
                            .iter()
                            .skip(i)
                            .step_by(m)
                            .map(|(info, offset)| (info.partition, *offset))
                            .collect(),
                    ),
                })
            })
            .collect()
    }

    /// Runs the agents on worker threads (one per allowed CPU at most) while this thread
    /// collects their reports and prints progress.
    fn drive(
        &self,
        agents: Vec<Box<dyn Agent>>,
        clock: Clock,
        hard_stop_ns: u64,
    ) -> Result<Measured> {
        let cpus = allowed_cpus();
        let threads = agents.len().min(cpus.len()).max(1);
        let (tx, rx) = std::sync::mpsc::channel();
        let cpu_before_s = process_cpu_s();
        let mut handles = Vec::new();
        for (t, agents) in deal(agents, threads).into_iter().enumerate() {
            let tx = tx.clone();
            let cpu = (threads > 1 || cpus.len() > 1).then(|| cpus[t % cpus.len()]);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("loadgen-{t}"))
                    .spawn(move || run_worker(cpu, clock, agents, hard_stop_ns, tx))?,
            );
        }
        drop(tx);
        let mut collector = self.collector();
        let started = clock.start_instant();
        collector.run(
            rx,
            threads,
            started,
            started + Duration::from_nanos(hard_stop_ns) + Duration::from_secs(5),
        );
        for h in handles {
            let _ = h.join();
        }
        Ok(Measured {
            collector,
            threads,
            loadgen_cpu_s: process_cpu_s() - cpu_before_s,
            wall_s: clock.start_instant().elapsed().as_secs_f64(),
        })
    }

    fn collector(&self) -> Collector {
        let primary = if self.produce.is_some() && self.consume.is_none() {
            Kind::Produce
        } else {
            Kind::E2e
        };
        Collector {
            total: Interval::new(),
            timeline: Vec::new(),
            primary,
            consumer_side: self.consume.is_some(),
            quiet: self.common.quiet,
            warmup_s: self.common.warmup.as_secs_f64(),
        }
    }

    /// Summarizes the run, writes its files with `--out`, prints its result and fails the
    /// run when any error occurred.
    fn finish(&self, setup: Setup, measured: Measured) -> Result<()> {
        let c = self.common;
        let collector = &measured.collector;
        let mut primary = collector.primary;
        if self.consume.is_some()
            && self.produce.is_none()
            && collector.total.hists[Kind::E2e as usize].is_empty()
        {
            // Data not written by riffle-loadgen carries no send timestamps.
            primary = Kind::Fetch;
        }
        let result = RunResult {
            workload: self.workload,
            params: setup.params,
            total: &collector.total,
            timeline: &collector.timeline,
            primary,
            consumer_side: self.consume.is_some(),
            duration_s: c.duration.as_secs_f64(),
            target_rate: self.produce.map_or(0.0, |p| p.rate),
            notes: setup
                .notes
                .into_iter()
                .chain(collector.total.notes.iter().cloned())
                .collect(),
        };
        let mut summary = summarize(&result);
        summary.loadgen_cpu_s = measured.loadgen_cpu_s;
        summary.loadgen_cpu_util =
            measured.loadgen_cpu_s / measured.wall_s / measured.threads as f64;
        if let Some(dir) = &c.out {
            write_run(dir, &result, &summary)?;
        }
        self.print_result(&summary, &measured);
        fail_on_errors(&summary)
    }

    fn print_result(&self, summary: &Summary, measured: &Measured) {
        let name = self
            .common
            .out
            .as_ref()
            .map_or_else(|| self.workload.to_string(), |d| d.display().to_string());
        out_raw!(report::table(&[(name, summary.clone())]));
        for n in &summary.notes {
            out!("note: {n}");
        }
        out!(
            "loadgen CPU: {:.2} s over {:.1} s on {} worker thread(s) ({:.0}% busy)",
            measured.loadgen_cpu_s,
            measured.wall_s,
            measured.threads,
            100.0 * summary.loadgen_cpu_util
        );
        if summary.errors > 0 {
            out!(
                "errors: {} (first: {})",
                summary.errors,
                summary.error_samples.join("; ")
            );
        }
    }
}

impl Setup {
    /// Checks the broker can serve consumers, finds where they start and, with a group the
    /// broker can coordinate, its coordinator; notes how partitions get assigned.
    fn prepare_consumers(
        &mut self,
        client: &mut Client,
        versions: &Versions,
        c: &Common,
        k: &ConsumeSpec,
    ) -> Result<()> {
        if versions.get(ApiKey::Fetch).is_none() || versions.get(ApiKey::ListOffsets).is_none() {
            bail!(
                "broker {} supports no Fetch/ListOffsets version riffle-loadgen speaks",
                c.bootstrap
            );
        }
        self.params.insert("consumers".into(), json!(k.consumers));
        self.params.insert("group".into(), json!(k.group));
        self.list_positions(client, &c.topic, k.from_latest)?;
        let from = if k.from_latest { "latest" } else { "earliest" };
        self.params.insert("from".into(), json!(from));
        let group_apis = versions.group_apis();
        let note = match (&k.group, group_apis) {
            (Some(group), Some(versions)) => {
                let coordinator = client.find_coordinator(group)?;
                let member = MemberConfig {
                    group: group.clone(),
                    topic: c.topic.clone(),
                    start_offsets: self
                        .positions
                        .iter()
                        .map(|(i, o)| (i.partition, *o))
                        .collect(),
                    versions,
                    session_timeout_ms: SESSION_TIMEOUT_MS,
                    rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
                    heartbeat_interval_ns: HEARTBEAT_INTERVAL_NS,
                    commit_interval_ns: COMMIT_INTERVAL_NS,
                };
                self.member = Some((Arc::new(member), coordinator));
                format!(
                    "group {group}: {} consumer(s) join as members (coordinator {coordinator}); the \
                     group assigns the {} partitions (range) and each starts at the group's \
                     committed offset, else the {from} offset",
                    k.consumers,
                    self.partitions.len(),
                )
            }
            (group, _) => {
                let groups = versions.offers(ApiKey::JoinGroup);
                let partitions = self.partitions.len();
                round_robin_note(group.as_deref(), groups, from, k.consumers, partitions)
            }
        };
        if !c.quiet || k.group.is_some() {
            eprintln!("riffle-loadgen: {note}");
        }
        self.notes.push(note);
        Ok(())
    }

    /// Each partition's latest (or earliest) offset, where consumers without a group, and
    /// group members without a committed offset, start.
    fn list_positions(
        &mut self,
        client: &mut Client,
        topic: &str,
        from_latest: bool,
    ) -> Result<()> {
        let timestamp = if from_latest {
            LATEST_TIMESTAMP
        } else {
            EARLIEST_TIMESTAMP
        };
        let offsets = client.list_offsets(topic, &self.partitions, timestamp)?;
        for (info, (_, offset)) in self.partitions.iter().zip(offsets) {
            self.positions.push((info.clone(), offset));
        }
        Ok(())
    }
}

/// Why consumers read without a group, and how the partitions are dealt to them.
/// `groups`: whether the broker advertises a group coordinator at all.
fn round_robin_note(
    group: Option<&str>,
    groups: bool,
    from: &str,
    consumers: usize,
    partitions: usize,
) -> String {
    let why = match (group, groups) {
        (None, _) => "no --group",
        (Some(_), true) => "the broker offers no group API version riffle-loadgen speaks",
        (Some(_), false) => "the broker has no group coordinator (JoinGroup not advertised)",
    };
    format!(
        "{}{why}: reading all {partitions} partitions from the {from} offset, assigned round-robin to {consumers} consumer(s)",
        group.map(|g| format!("group {g} not joined: ")).unwrap_or_default(),
    )
}

/// The parameters every workload records.
fn common_params(c: &Common, partitions: usize) -> BTreeMap<String, serde_json::Value> {
    BTreeMap::from([
        ("bootstrap".into(), json!(c.bootstrap)),
        ("topic".into(), json!(c.topic)),
        ("partitions".into(), json!(partitions)),
        ("duration_s".into(), json!(c.duration.as_secs_f64())),
        ("warmup_s".into(), json!(c.warmup.as_secs_f64())),
    ])
}

/// Checks the producer settings and records them.
fn insert_produce_params(
    params: &mut BTreeMap<String, serde_json::Value>,
    p: &ProduceSpec,
) -> Result<()> {
    if p.size_bytes < 8 {
        bail!("--size must be at least 8 bytes (the payload carries the send timestamp)");
    }
    params.insert("size".into(), json!(p.size_bytes));
    params.insert("rate".into(), json!(p.rate));
    params.insert("producers".into(), json!(p.producers));
    params.insert("acks".into(), json!(p.acks));
    params.insert("batch_bytes".into(), json!(p.batch_bytes));
    params.insert("in_flight".into(), json!(p.in_flight));
    params.insert("linger_ms".into(), json!(p.linger_ms));
    params.insert(
        "compression".into(),
        json!(format!("{:?}", p.compression).to_lowercase()),
    );
    Ok(())
}

/// Producer `i` of `n`: every n-th partition, or one shared partition when producers
/// outnumber partitions.
fn producer_partitions(partitions: &[PartitionInfo], i: usize, n: usize) -> Vec<&PartitionInfo> {
    if n <= partitions.len() {
        partitions.iter().skip(i).step_by(n).collect()
    } else {
        vec![&partitions[i % partitions.len()]]
    }
}

/// The partition ids grouped by their leader.
fn by_leader(partitions: &[&PartitionInfo]) -> BTreeMap<SocketAddr, Vec<i32>> {
    let mut by_leader: BTreeMap<SocketAddr, Vec<i32>> = BTreeMap::new();
    for q in partitions {
        by_leader.entry(q.leader).or_default().push(q.partition);
    }
    by_leader
}

/// Producers and consumers alternated, so they spread over the cores.
fn interleave(
    producers: Vec<Box<dyn Agent>>,
    consumers: Vec<Box<dyn Agent>>,
) -> Vec<Box<dyn Agent>> {
    let mut all: Vec<Box<dyn Agent>> = Vec::new();
    let mut pi = producers.into_iter();
    let mut ci = consumers.into_iter();
    loop {
        match (pi.next(), ci.next()) {
            (None, None) => break,
            (a, b) => all.extend(a.into_iter().chain(b)),
        }
    }
    all
}

/// The agents dealt round-robin to `threads` workers.
fn deal(agents: Vec<Box<dyn Agent>>, threads: usize) -> Vec<Vec<Box<dyn Agent>>> {
    let mut per_thread: Vec<Vec<Box<dyn Agent>>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, a) in agents.into_iter().enumerate() {
        per_thread[i % threads].push(a);
    }
    per_thread
}

/// A run that moved nothing, or had any error, fails (its files are already written).
fn fail_on_errors(summary: &Summary) -> Result<()> {
    let moved = summary.produced.messages_total + summary.consumed.messages_total;
    if moved == 0 && summary.errors > 0 {
        bail!(
            "no message got through: {}",
            summary.error_samples.first().cloned().unwrap_or_default()
        );
    }
    if summary.errors > 0 {
        bail!(
            "{} errors during the run (results written, but not those of a healthy run)",
            summary.errors
        );
    }
    Ok(())
}

/// CPU seconds (user + system) this process has used.
fn process_cpu_s() -> f64 {
    // SAFETY: getrusage writes one rusage struct, which is plain data.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(usage.ru_utime) + s(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::round_robin_note;

    #[test]
    fn reading_without_a_group_names_the_reason() {
        let note = round_robin_note(None, true, "latest", 1, 4);
        assert_eq!(
            note,
            "no --group: reading all 4 partitions from the latest offset, assigned round-robin to 1 consumer(s)"
        );
        let note = round_robin_note(Some("g"), false, "earliest", 2, 8);
        assert!(
            note.starts_with("group g not joined: the broker has no group coordinator"),
            "{note}"
        );
        let note = round_robin_note(Some("g"), true, "earliest", 2, 8);
        assert!(note.contains("offers no group API version"), "{note}");
    }
}
