//! `riffle produce TOPIC`: each line of standard input becomes a record. Lines are batched
//! per partition and sent when a batch is full or input pauses, so typing works as well
//! as piping a file; progress goes to standard error when it is a terminal.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use riffle_client::{partition_for_key, Client, PartitionInfo, ProduceRecord, READY_TIMEOUT};
use serde_json::json;

use crate::output;
use crate::parse::{acks, key_value};
use crate::{CliError, CommonArgs};

/// Records per Produce request.
const BATCH_RECORDS_MAX: usize = 1_000;
/// Value bytes per Produce request.
const BATCH_BYTES_MAX: usize = 1 << 20;
/// How long a partial batch waits for more input before it is sent.
const LINGER: Duration = Duration::from_millis(100);
/// How long to wait for input when nothing is pending (then wait again).
const IDLE_WAIT: Duration = Duration::from_secs(3600);
/// Lines read ahead of the producer.
const LINES_QUEUED_MAX: usize = 4_096;
/// How often progress is shown on a terminal.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Args, Debug)]
pub struct ProduceArgs {
    topic: String,
    /// The key of every record.
    #[arg(short, long, conflicts_with = "key_separator")]
    key: Option<String>,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// A header on every record, KEY=VALUE (repeatable).
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE", value_parser = key_value)]
    headers: Vec<(String, String)>,
    /// Acknowledgements to wait for: all, 1 or 0.
    #[arg(long, default_value = "all", value_parser = acks, allow_hyphen_values = true)]
    acks: i16,
    /// Send every record to this partition (default: by key, else batch by batch in turn).
    #[arg(short, long)]
    partition: Option<i32>,
    #[command(flatten)]
    common: CommonArgs,
}

/// What one produce run sent, per partition: (records, first offset, last offset).
type Produced = BTreeMap<i32, (u64, Option<i64>, Option<i64>)>;

pub(crate) fn run(args: &ProduceArgs) -> Result<(), CliError> {
    let mut client = args.common.connect()?;
    let partitions = client.partition_leaders(&args.topic, READY_TIMEOUT, false)?;
    if let Some(p) = args.partition {
        if !partitions.iter().any(|q| q.partition == p) {
            return Err(CliError::Usage(format!(
                "topic '{}' has no partition {p} (it has {})",
                args.topic,
                partitions.len()
            )));
        }
    }
    let lines = read_lines_ahead();
    let mut producer = Producer {
        args,
        client: &mut client,
        partitions: &partitions,
        next_partition: 0,
        produced: Produced::new(),
    };
    let total = producer.run(&lines)?;
    report(args, total, &producer.produced)
}

/// Reads standard input on its own thread so that a batch can be sent while input pauses.
fn read_lines_ahead() -> Receiver<std::io::Result<String>> {
    let (tx, rx) = sync_channel(LINES_QUEUED_MAX);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let failed = line.is_err();
            if tx.send(line).is_err() || failed {
                return;
            }
        }
    });
    rx
}

struct Producer<'a> {
    args: &'a ProduceArgs,
    client: &'a mut Client,
    partitions: &'a [PartitionInfo],
    /// The partition the next unkeyed batch goes to (Kafka's sticky partitioner, per batch).
    next_partition: usize,
    produced: Produced,
}

impl Producer<'_> {
    /// Sends every line until standard input ends; returns the number of records.
    fn run(&mut self, lines: &Receiver<std::io::Result<String>>) -> Result<u64, CliError> {
        let progress = std::io::stderr().is_terminal();
        let mut next_progress = Instant::now() + PROGRESS_INTERVAL;
        let mut batch: Vec<ProduceRecord> = Vec::new();
        let mut batch_bytes = 0;
        let mut total = 0u64;
        loop {
            let wait = if batch.is_empty() { IDLE_WAIT } else { LINGER };
            let line = match lines.recv_timeout(wait) {
                Ok(line) => Some(line.map_err(CliError::Stdin)?),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    total += self.send(std::mem::take(&mut batch))?;
                    return Ok(total);
                }
            };
            let paused = line.is_none();
            if let Some(line) = line {
                let record = self.record(line);
                batch_bytes += record.value.as_ref().map_or(0, Vec::len);
                batch.push(record);
            }
            if paused || batch.len() >= BATCH_RECORDS_MAX || batch_bytes >= BATCH_BYTES_MAX {
                total += self.send(std::mem::take(&mut batch))?;
                batch_bytes = 0;
            }
            if progress && Instant::now() >= next_progress {
                eprintln!("produced {total} records to '{}'", self.args.topic);
                next_progress = Instant::now() + PROGRESS_INTERVAL;
            }
        }
    }

    fn record(&self, line: String) -> ProduceRecord {
        let (key, value) = match (&self.args.key, &self.args.key_separator) {
            (Some(k), _) => (Some(k.clone().into_bytes()), line),
            (None, Some(sep)) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k.as_bytes().to_vec()), v.to_string()),
                None => (None, line),
            },
            (None, None) => (None, line),
        };
        ProduceRecord {
            key,
            value: Some(value.into_bytes()),
            headers: self
                .args
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect(),
            timestamp_ms: now_ms(),
        }
    }

    /// Sends `batch`, split by partition; returns how many records it held.
    fn send(&mut self, batch: Vec<ProduceRecord>) -> Result<u64, CliError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let sticky = self.next_partition % self.partitions.len();
        self.next_partition += 1;
        let mut by_partition: BTreeMap<usize, Vec<ProduceRecord>> = BTreeMap::new();
        for r in batch {
            let index = match (self.args.partition, &r.key) {
                (Some(p), _) => self
                    .partitions
                    .iter()
                    .position(|q| q.partition == p)
                    .unwrap_or(0),
                (None, Some(key)) => {
                    let p = partition_for_key(key, self.partitions.len() as i32);
                    self.partitions
                        .iter()
                        .position(|q| q.partition == p)
                        .unwrap_or(0)
                }
                (None, None) => sticky,
            };
            by_partition.entry(index).or_default().push(r);
        }
        let mut sent = 0;
        for (index, records) in by_partition {
            let info = &self.partitions[index];
            let first = self
                .client
                .produce(&self.args.topic, info, &records, self.args.acks)?;
            let n = records.len() as u64;
            let entry = self
                .produced
                .entry(info.partition)
                .or_insert((0, None, None));
            entry.0 += n;
            if let Some(first) = first {
                entry.1.get_or_insert(first);
                entry.2 = Some(first + n as i64 - 1);
            }
            sent += n;
        }
        Ok(sent)
    }
}

fn report(args: &ProduceArgs, total: u64, produced: &Produced) -> Result<(), CliError> {
    if args.common.json {
        let partitions: Vec<_> = produced
            .iter()
            .map(|(p, (n, first, last))| {
                json!({ "partition": p, "records": n, "first_offset": first, "last_offset": last })
            })
            .collect();
        return output::json(
            &json!({ "topic": args.topic, "records": total, "partitions": partitions }),
        );
    }
    let mut parts = Vec::new();
    for (p, (_, first, last)) in produced {
        match (first, last) {
            (Some(f), Some(l)) => parts.push(format!("partition {p} offsets {f}..{l}")),
            _ => parts.push(format!("partition {p}")),
        }
    }
    let detail = if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    };
    output::line(&format!(
        "produced {total} records to '{}'{detail}",
        args.topic
    ))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
