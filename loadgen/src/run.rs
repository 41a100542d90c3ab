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
use crate::summary::{summarize, write_run, RunResult};
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
    pub linger_ms: u64,
    pub compression: Compression,
}

pub(crate) struct ConsumeSpec {
    pub group: Option<String>,
    pub consumers: usize,
    pub from_latest: bool,
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

pub(crate) fn run(
    workload: &str,
    c: &Common,
    p: Option<&ProduceSpec>,
    k: Option<&ConsumeSpec>,
) -> Result<()> {
    let (mut setup, versions, partitions) = connect(c, p.and_then(|p| p.create_partitions))?;
    let mut notes = Vec::new();
    let mut params: BTreeMap<String, serde_json::Value> = BTreeMap::from([
        ("bootstrap".into(), json!(c.bootstrap)),
        ("topic".into(), json!(c.topic)),
        ("partitions".into(), json!(partitions.len())),
        ("duration_s".into(), json!(c.duration.as_secs_f64())),
        ("warmup_s".into(), json!(c.warmup.as_secs_f64())),
    ]);
    if let Some(p) = p {
        if p.size_bytes < 8 {
            bail!("--size must be at least 8 bytes (the payload carries the send timestamp)");
        }
        params.insert("size".into(), json!(p.size_bytes));
        params.insert("rate".into(), json!(p.rate));
        params.insert("producers".into(), json!(p.producers));
        params.insert("acks".into(), json!(p.acks));
        params.insert("batch_bytes".into(), json!(p.batch_bytes));
        params.insert("linger_ms".into(), json!(p.linger_ms));
        params.insert(
            "compression".into(),
            json!(format!("{:?}", p.compression).to_lowercase()),
        );
    }
    let mut positions: Vec<(PartitionInfo, i64)> = Vec::new();
    // With a group: the members' settings and the coordinator's address.
    let mut member: Option<(Arc<MemberConfig>, SocketAddr)> = None;
    if let Some(k) = k {
        if versions.get(ApiKey::Fetch).is_none() || versions.get(ApiKey::ListOffsets).is_none() {
            bail!(
                "broker {} supports no Fetch/ListOffsets version riffle-loadgen speaks",
                c.bootstrap
            );
        }
        params.insert("consumers".into(), json!(k.consumers));
        params.insert("group".into(), json!(k.group));
        let timestamp = if k.from_latest {
            LATEST_TIMESTAMP
        } else {
            EARLIEST_TIMESTAMP
        };
        let offsets = setup.list_offsets(&c.topic, &partitions, timestamp)?;
        let from = if k.from_latest { "latest" } else { "earliest" };
        params.insert("from".into(), json!(from));
        for (info, (_, offset)) in partitions.iter().zip(offsets) {
            positions.push((info.clone(), offset));
        }
        let note = match (&k.group, &versions.group_apis()) {
            (Some(group), Some(group_versions)) => {
                let coordinator = setup.find_coordinator(group)?;
                member = Some((
                    Arc::new(MemberConfig {
                        group: group.clone(),
                        topic: c.topic.clone(),
                        start_offsets: positions.iter().map(|(i, o)| (i.partition, *o)).collect(),
                        versions: group_versions.clone(),
                        session_timeout_ms: SESSION_TIMEOUT_MS,
                        rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
                        heartbeat_interval_ns: HEARTBEAT_INTERVAL_NS,
                        commit_interval_ns: COMMIT_INTERVAL_NS,
                    }),
                    coordinator,
                ));
                format!(
                    "group {group}: {} consumer(s) join as members (coordinator {coordinator}); the \
                     group assigns the {} partitions (range) and each starts at the group's \
                     committed offset, else the {from} offset",
                    k.consumers,
                    partitions.len(),
                )
            }
            (group, _) => {
                let why = if versions.offers(ApiKey::JoinGroup) {
                    "the broker offers no group API version riffle-loadgen speaks"
                } else {
                    "the broker has no group coordinator (JoinGroup not advertised)"
                };
                format!(
                    "{}{why}: reading all {} partitions from the {from} offset, assigned round-robin to {} consumer(s)",
                    group.as_ref().map(|g| format!("group {g} not joined: ")).unwrap_or_default(),
                    partitions.len(),
                    k.consumers
                )
            }
        };
        if !c.quiet || k.group.is_some() {
            eprintln!("riffle-loadgen: {note}");
        }
        notes.push(note);
    }
    drop(setup);

    let clock = Clock::start();
    let warmup_end_ns = c.warmup.as_nanos() as u64;
    let stop_ns = warmup_end_ns + c.duration.as_nanos() as u64;
    let mut agents: Vec<Box<dyn Agent>> = Vec::new();
    let mut consumer_agents: Vec<Box<dyn Agent>> = Vec::new();
    if let Some(p) = p {
        let cfg = Arc::new(ProducerConfig {
            topic: c.topic.clone(),
            acks: p.acks,
            size_bytes: p.size_bytes,
            batch_bytes: p.batch_bytes,
            linger_ns: p.linger_ms * 1_000_000,
            compression: p.compression,
            produce_version: versions.get(ApiKey::Produce).ok_or_else(|| {
                anyhow::anyhow!("broker {} supports no usable Produce version", c.bootstrap)
            })?,
            warmup_end_ns,
            stop_ns,
            clock,
        });
        let n = p.producers.max(1);
        for i in 0..n {
            let mine: Vec<&PartitionInfo> = if n <= partitions.len() {
                partitions.iter().skip(i).step_by(n).collect()
            } else {
                vec![&partitions[i % partitions.len()]]
            };
            // One connection per leader among this producer's partitions, each with its
            // share of the rate (a single broker: one connection).
            let mut by_leader: BTreeMap<SocketAddr, Vec<i32>> = BTreeMap::new();
            for q in &mine {
                by_leader.entry(q.leader).or_default().push(q.partition);
            }
            for (leader, ids) in by_leader {
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
    }
    if let Some(k) = k {
        let consumer_stop = if p.is_some() {
            stop_ns + E2E_CONSUMER_TAIL_NS
        } else {
            stop_ns
        };
        let cfg = Arc::new(ConsumerConfig {
            topic: c.topic.clone(),
            fetch_version: versions.get(ApiKey::Fetch).unwrap_or(-1),
            warmup_end_ns,
            stop_ns: consumer_stop,
            leaders: positions
                .iter()
                .map(|(info, _)| (info.partition, info.leader))
                .collect(),
        });
        let m = k.consumers.max(1);
        for i in 0..m {
            consumer_agents.push(Box::new(match &member {
                Some((member, coordinator)) => {
                    ConsumerAgent::member(cfg.clone(), member.clone(), *coordinator)
                }
                None => ConsumerAgent::manual(
                    cfg.clone(),
                    positions
                        .iter()
                        .skip(i)
                        .step_by(m)
                        .map(|(info, offset)| (info.partition, *offset))
                        .collect(),
                ),
            }));
        }
    }
    // Interleave, so producers and consumers spread over the cores.
    let mut all: Vec<Box<dyn Agent>> = Vec::new();
    let mut pi = agents.into_iter();
    let mut ci = consumer_agents.into_iter();
    loop {
        match (pi.next(), ci.next()) {
            (None, None) => break,
            (a, b) => all.extend(a.into_iter().chain(b)),
        }
    }
    let cpus = allowed_cpus();
    let threads = all.len().min(cpus.len()).max(1);
    let mut per_thread: Vec<Vec<Box<dyn Agent>>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, a) in all.into_iter().enumerate() {
        per_thread[i % threads].push(a);
    }
    let last_stop_ns = stop_ns
        + if k.is_some() && p.is_some() {
            E2E_CONSUMER_TAIL_NS
        } else {
            0
        };
    let hard_stop_ns = last_stop_ns + DRAIN_NS;
    let (tx, rx) = std::sync::mpsc::channel();
    let cpu_before_s = process_cpu_s();
    let mut handles = Vec::new();
    for (t, agents) in per_thread.into_iter().enumerate() {
        let tx = tx.clone();
        let cpu = (threads > 1 || cpus.len() > 1).then(|| cpus[t % cpus.len()]);
        handles.push(
            std::thread::Builder::new()
                .name(format!("loadgen-{t}"))
                .spawn(move || run_worker(cpu, clock, agents, hard_stop_ns, tx))?,
        );
    }
    drop(tx);
    let primary = if p.is_some() && k.is_none() {
        Kind::Produce
    } else {
        Kind::E2e
    };
    let mut collector = Collector {
        total: Interval::new(),
        timeline: Vec::new(),
        primary,
        consumer_side: k.is_some(),
        quiet: c.quiet,
        warmup_s: c.warmup.as_secs_f64(),
    };
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
    let loadgen_cpu_s = process_cpu_s() - cpu_before_s;
    let wall_s = clock.start_instant().elapsed().as_secs_f64();
    let mut primary = primary;
    if k.is_some() && p.is_none() && collector.total.hists[Kind::E2e as usize].is_empty() {
        // Data not written by riffle-loadgen carries no send timestamps.
        primary = Kind::Fetch;
    }
    let result = RunResult {
        workload,
        params,
        total: &collector.total,
        timeline: &collector.timeline,
        primary,
        consumer_side: k.is_some(),
        duration_s: c.duration.as_secs_f64(),
        target_rate: p.map_or(0.0, |p| p.rate),
        notes: notes
            .into_iter()
            .chain(collector.total.notes.iter().cloned())
            .collect(),
    };
    let mut summary = summarize(&result);
    summary.loadgen_cpu_s = loadgen_cpu_s;
    summary.loadgen_cpu_util = loadgen_cpu_s / wall_s / threads as f64;
    if let Some(dir) = &c.out {
        write_run(dir, &result, &summary)?;
    }
    let name = c
        .out
        .as_ref()
        .map_or_else(|| workload.to_string(), |d| d.display().to_string());
    out_raw!(report::table(&[(name, summary.clone())]));
    for n in &summary.notes {
        out!("note: {n}");
    }
    out!(
        "loadgen CPU: {loadgen_cpu_s:.2} s over {wall_s:.1} s on {threads} worker thread(s) ({:.0}% busy)",
        100.0 * summary.loadgen_cpu_util
    );
    if summary.errors > 0 {
        out!(
            "errors: {} (first: {})",
            summary.errors,
            summary.error_samples.join("; ")
        );
    }
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
