//! `riffle consume TOPIC`: prints records, alone from `--offset` or as a member of a consumer
//! group (`--group`, committing what it printed), until `--num` records, the end of the
//! partitions (`--exit-at-end`), or Ctrl-C.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use riffle_client::group::{
    GroupApi, GroupMember, MemberConfig, COMMIT_INTERVAL_NS, HEARTBEAT_INTERVAL_NS,
    REBALANCE_TIMEOUT_MS, SESSION_TIMEOUT_MS,
};
use riffle_client::{
    Client, ClientError, ConsumedRecord, FetchedPartition, PartitionInfo, READY_TIMEOUT,
};
use serde_json::json;

use crate::output;
use crate::parse::{resolve_offsets, text, OffsetSpec, RecordFormat};
use crate::{CliError, CommonArgs};

/// How long one Fetch waits for new records: also how soon Ctrl-C is noticed.
const FETCH_MAX_WAIT_MS: i32 = 500;
/// Pause between looks at a group that has not assigned this member anything yet.
const GROUP_IDLE_POLL: Duration = Duration::from_millis(100);
/// A JoinGroup may wait for the whole rebalance (Kafka: the rebalance timeout plus 5 s).
const JOIN_WAIT: Duration = Duration::from_millis(REBALANCE_TIMEOUT_MS as u64 + 5_000);

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    topic: String,
    /// Where to start: start, end, an offset N, or -N (N records before the end). With
    /// --group, only for partitions the group has no committed offset for.
    #[arg(short, long, default_value = "start", allow_hyphen_values = true)]
    offset: OffsetSpec,
    /// Consume as a member of this consumer group, committing what was printed.
    #[arg(short, long)]
    group: Option<String>,
    /// Stop after this many records.
    #[arg(short, long, value_name = "N")]
    num: Option<u64>,
    /// How to print a record: text with {key}, {value}, {partition}, {offset},
    /// {timestamp}, {headers}, {topic}; \t and \n escapes.
    #[arg(short, long, default_value = "{value}")]
    format: RecordFormat,
    /// Read only these partitions (repeatable; not with --group).
    #[arg(short, long, conflicts_with = "group")]
    partition: Vec<i32>,
    /// Stop once every partition has been read to its end.
    #[arg(short, long)]
    exit_at_end: bool,
    #[command(flatten)]
    common: CommonArgs,
}

pub(crate) fn run(args: &ConsumeArgs) -> Result<(), CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| CliError::Usage(format!("cannot handle signal {signal}: {e}")))?;
    }
    let mut client = args.common.connect()?;
    let positions = start_positions(&mut client, args)?;
    let mut printer = Printer { args, printed: 0 };
    match &args.group {
        Some(group) => consume_in_group(&mut client, args, group, positions, &mut printer, &stop),
        None => consume_alone(&mut client, args, positions, &mut printer, &stop),
    }
}

/// The partitions to read with the offset `--offset` names in each.
fn start_positions(
    client: &mut Client,
    args: &ConsumeArgs,
) -> Result<Vec<(PartitionInfo, i64)>, CliError> {
    let mut partitions = client.partition_leaders(&args.topic, READY_TIMEOUT, false)?;
    if !args.partition.is_empty() {
        if let Some(p) = args
            .partition
            .iter()
            .find(|p| !partitions.iter().any(|q| q.partition == **p))
        {
            return Err(CliError::Usage(format!(
                "topic '{}' has no partition {p} (it has {})",
                args.topic,
                partitions.len()
            )));
        }
        partitions.retain(|q| args.partition.contains(&q.partition));
    }
    Ok(resolve_offsets(
        client,
        &args.topic,
        &partitions,
        args.offset,
    )?)
}

/// Prints records as `--format` or `--json` says and counts them against `--num`.
struct Printer<'a> {
    args: &'a ConsumeArgs,
    printed: u64,
}

impl Printer<'_> {
    fn done(&self) -> bool {
        self.args.num.is_some_and(|n| self.printed >= n)
    }

    fn print(&mut self, record: &ConsumedRecord) -> Result<(), CliError> {
        let topic = &self.args.topic;
        if self.args.common.json {
            let headers: serde_json::Map<_, _> = record
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(v.as_deref().map(|v| text(Some(v))))))
                .collect();
            output::json(&json!({
                "topic": topic,
                "partition": record.partition,
                "offset": record.offset,
                "timestamp": record.timestamp_ms,
                "key": record.key.as_deref().map(|k| text(Some(k))),
                "value": record.value.as_deref().map(|v| text(Some(v))),
                "headers": headers,
            }))?;
        } else {
            output::line(&self.args.format.render(topic, record))?;
        }
        self.printed += 1;
        Ok(())
    }

    /// Prints the records of `fetched` until `--num` is reached and moves `position` past
    /// what was printed. Returns whether the partition is read to its end.
    fn take(&mut self, fetched: &FetchedPartition, position: &mut i64) -> Result<bool, CliError> {
        for r in &fetched.records {
            if self.done() {
                return Ok(false);
            }
            self.print(r)?;
            *position = r.offset + 1;
        }
        *position = (*position).max(fetched.next_offset);
        Ok(*position >= fetched.high_watermark)
    }
}

/// Fetches `positions` once and prints what came; returns whether every partition is at
/// its end.
fn fetch_and_print(
    client: &mut Client,
    topic: &str,
    positions: &mut [(PartitionInfo, i64)],
    printer: &mut Printer<'_>,
) -> Result<bool, CliError> {
    let fetched = client.fetch(topic, positions, FETCH_MAX_WAIT_MS)?;
    let mut at_end: BTreeMap<i32, bool> = positions
        .iter()
        .map(|(p, _)| (p.partition, false))
        .collect();
    for f in &fetched {
        if let Some((_, position)) = positions
            .iter_mut()
            .find(|(p, _)| p.partition == f.partition)
        {
            at_end.insert(f.partition, printer.take(f, position)?);
        }
    }
    Ok(at_end.values().all(|&e| e))
}

fn consume_alone(
    client: &mut Client,
    args: &ConsumeArgs,
    mut positions: Vec<(PartitionInfo, i64)>,
    printer: &mut Printer<'_>,
    stop: &AtomicBool,
) -> Result<(), CliError> {
    while !printer.done() && !stop.load(Ordering::Relaxed) {
        let at_end = fetch_and_print(client, &args.topic, &mut positions, printer)?;
        if at_end && args.exit_at_end {
            break;
        }
    }
    Ok(())
}

/// Runs a classic group member (`riffle_client::group::GroupMember`) over blocking calls to
/// the coordinator; fetches the assigned partitions between its requests. On the way out
/// the member commits what was printed and leaves the group.
fn consume_in_group(
    client: &mut Client,
    args: &ConsumeArgs,
    group: &str,
    positions: Vec<(PartitionInfo, i64)>,
    printer: &mut Printer<'_>,
    stop: &AtomicBool,
) -> Result<(), CliError> {
    let versions =
        client
            .bootstrap()
            .versions()
            .group_apis()
            .ok_or_else(|| ClientError::Unsupported {
                broker: args.common.brokers.clone(),
                api: "the classic consumer group protocol",
            })?;
    let coordinator = client.find_coordinator(group)?;
    let leaders: Vec<PartitionInfo> = positions.iter().map(|(p, _)| p.clone()).collect();
    let mut member = GroupMember::new(Arc::new(MemberConfig {
        group: group.into(),
        topic: args.topic.clone(),
        start_offsets: numbered(&positions),
        versions: versions.clone(),
        session_timeout_ms: SESSION_TIMEOUT_MS,
        rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
        heartbeat_interval_ns: HEARTBEAT_INTERVAL_NS,
        commit_interval_ns: COMMIT_INTERVAL_NS,
    }));
    let clock = Instant::now();
    let mut assigned: Vec<(PartitionInfo, i64)> = Vec::new();
    let mut stopping = false;
    loop {
        stopping |= stop.load(Ordering::Relaxed) || printer.done();
        let now_ns = clock.elapsed().as_nanos() as u64;
        while let Some(request) = member.poll(now_ns, stopping, true, || numbered(&assigned)) {
            let wait = if request.api() == GroupApi::Join {
                JOIN_WAIT
            } else {
                Duration::ZERO
            };
            let response = client
                .broker(coordinator)?
                .call_group(&request, &versions, wait)?;
            match member.on_response(now_ns, response) {
                Ok(Some(a)) => {
                    assigned = a
                        .positions
                        .iter()
                        .filter_map(|&(p, o)| {
                            Some((leaders.iter().find(|l| l.partition == p)?.clone(), o))
                        })
                        .collect();
                    let ids: Vec<i32> = a.positions.iter().map(|p| p.0).collect();
                    eprintln!(
                        "joined group '{group}' (generation {}), assigned partitions {ids:?} of '{}'",
                        a.generation, args.topic
                    );
                }
                Ok(None) => {}
                Err(what) => eprintln!("warning: {what}"),
            }
        }
        if member.done() {
            return Ok(());
        }
        if stopping || !member.assigned() || assigned.is_empty() {
            std::thread::sleep(GROUP_IDLE_POLL);
            continue;
        }
        let at_end = fetch_and_print(client, &args.topic, &mut assigned, printer)?;
        stopping |= at_end && args.exit_at_end;
    }
}

/// (partition, offset) pairs, as a group member commits them.
fn numbered(positions: &[(PartitionInfo, i64)]) -> Vec<(i32, i64)> {
    positions.iter().map(|(p, o)| (p.partition, *o)).collect()
}
