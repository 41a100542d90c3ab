//! riffle-loadgen: an open-loop load generator for Kafka-protocol brokers (Riffle, Apache
//! Kafka, Redpanda) with coordinated-omission-safe latency histograms, and the tools to
//! report and compare runs.

/// Prints a line to stdout, ignoring a closed pipe (`riffle-loadgen report … | head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Prints text as it is to stdout, ignoring a closed pipe.
macro_rules! out_raw {
    ($text:expr) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), "{}", $text);
    }};
}

mod conn;
mod consumer;
mod hgrm;
mod producer;
mod report;
mod run;
mod schedule;
mod sink;
mod stats;
mod summary;
mod worker;

/// How riffle-loadgen names itself to brokers.
const CLIENT_ID: &str = "riffle-loadgen";

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use riffle_protocol::record_batch::Compression;

#[derive(Parser)]
#[command(
    name = "riffle-loadgen",
    version,
    about = "Open-loop load generator and latency histogram tools for Kafka-protocol brokers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce at a target rate (or flat out) and measure acknowledgement latency.
    Produce {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        produce: ProduceArgs,
    },
    /// Consume the topic and measure fetch and end-to-end latency.
    Consume {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        consume: ConsumeArgs,
        /// Start at the earliest or the latest offset (in a group: where it has no commit).
        #[arg(long, value_enum, default_value = "earliest")]
        from: From,
    },
    /// Producers and consumers together: end-to-end latency from the intended send time to
    /// the consumer's receipt.
    E2e {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        produce: ProduceArgs,
        #[command(flatten)]
        consume: ConsumeArgs,
    },
    /// Print runs side by side (throughput, p50, p90, p99, p99.9, p99.99, max).
    Report {
        /// Run directories (each written with --out).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Print runs side by side and draw their latency percentile curves in one SVG chart.
    Compare {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// The chart to write: .svg or .png.
        #[arg(long, default_value = "compare.svg")]
        out: PathBuf,
    },
    /// A trivial Kafka endpoint that acknowledges Produce at once, to measure the loadgen's ceiling.
    Sink {
        #[arg(long, default_value = "127.0.0.1:9093")]
        listen: String,
        /// Partitions every topic appears to have.
        #[arg(long, default_value_t = 8)]
        partitions: i32,
    },
}

#[derive(Args)]
struct CommonArgs {
    /// A broker to bootstrap from.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value = "riffle-loadgen")]
    topic: String,
    /// Measured time, after the warm-up (e.g. 30s, 500ms, 2m).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Time before measuring starts; its messages are excluded from the results.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Directory for summary.json, <kind>.hgrm and timeline.csv.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct ProduceArgs {
    /// Create the topic with this many partitions first (an existing topic is kept).
    #[arg(long)]
    create_partitions: Option<i32>,
    /// Message value size in bytes (at least 8: the send timestamp).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Target messages per second over all producers; 0 = flat out.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Producer connections.
    #[arg(long, default_value_t = 2)]
    producers: usize,
    #[arg(long, value_enum, default_value = "all")]
    acks: Acks,
    /// Largest record batch (one per Produce request).
    #[arg(long, default_value_t = 64 * 1024)]
    batch_bytes: usize,
    /// Produce requests each connection keeps in flight (Kafka's
    /// `max.in.flight.requests.per.connection`): flat out, the rate is this window over the
    /// request latency, so raise it to load a broker to its limit.
    #[arg(long, default_value_t = 5)]
    in_flight: usize,
    /// How long a batch may wait for more messages before it is sent.
    #[arg(long, default_value_t = 1)]
    linger_ms: u64,
    #[arg(long, value_enum, default_value = "none")]
    compression: Codec,
}

#[derive(Args)]
struct ConsumeArgs {
    /// Consumer group: each consumer joins it as a member, and the group assigns the
    /// partitions. Without a group coordinator on the broker, partitions are assigned
    /// round-robin to this run's consumers instead (and the output says so).
    #[arg(long)]
    group: Option<String>,
    /// Consumer connections.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum Acks {
    #[value(name = "all", alias = "-1")]
    All,
    #[value(name = "1")]
    One,
    #[value(name = "0")]
    Zero,
}

#[derive(Clone, Copy, ValueEnum)]
enum Codec {
    None,
    Lz4,
    Zstd,
}

#[derive(Clone, Copy, ValueEnum)]
enum From {
    Earliest,
    Latest,
}

impl CommonArgs {
    fn into_common(self) -> run::Common {
        run::Common {
            bootstrap: self.bootstrap,
            topic: self.topic,
            duration: self.duration,
            warmup: self.warmup,
            out: self.out,
            quiet: self.quiet,
        }
    }
}

impl ProduceArgs {
    fn spec(&self) -> Result<run::ProduceSpec> {
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            bail!("--rate must be >= 0");
        }
        if self.in_flight == 0 {
            bail!("--in-flight must be at least 1");
        }
        Ok(run::ProduceSpec {
            create_partitions: self.create_partitions,
            size_bytes: self.size,
            rate: self.rate,
            producers: self.producers.max(1),
            acks: match self.acks {
                Acks::All => -1,
                Acks::One => 1,
                Acks::Zero => 0,
            },
            batch_bytes: self.batch_bytes.max(1),
            in_flight: self.in_flight,
            linger_ms: self.linger_ms,
            compression: match self.compression {
                Codec::None => Compression::None,
                Codec::Lz4 => Compression::Lz4,
                Codec::Zstd => Compression::Zstd,
            },
        })
    }
}

impl ConsumeArgs {
    fn spec(&self, from_latest: bool) -> run::ConsumeSpec {
        run::ConsumeSpec {
            group: self.group.clone(),
            consumers: self.consumers.max(1),
            from_latest,
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Produce { common, produce } => produce
            .spec()
            .and_then(|p| run::run("produce", &common.into_common(), Some(&p), None)),
        Command::Consume {
            common,
            consume,
            from,
        } => {
            let k = consume.spec(matches!(from, From::Latest));
            run::run("consume", &common.into_common(), None, Some(&k))
        }
        Command::E2e {
            common,
            produce,
            consume,
        } => produce.spec().and_then(|p| {
            run::run(
                "e2e",
                &common.into_common(),
                Some(&p),
                Some(&consume.spec(true)),
            )
        }),
        Command::Report { dirs } => report::report(&dirs),
        Command::Compare { dirs, out } => report::compare(&dirs, &out),
        Command::Sink { listen, partitions } => sink::serve(&listen, partitions),
    };
    if let Err(e) = result {
        eprintln!("riffle-loadgen: error: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce_args(extra: &[&str]) -> Result<run::ProduceSpec> {
        let argv = ["riffle-loadgen", "produce"].iter().chain(extra);
        let Command::Produce { produce, .. } = Cli::try_parse_from(argv)?.command else {
            unreachable!("parsed as produce");
        };
        produce.spec()
    }

    #[test]
    fn in_flight_defaults_to_kafkas_five_and_zero_is_refused() {
        assert_eq!(produce_args(&[]).unwrap().in_flight, 5);
        assert_eq!(produce_args(&["--in-flight", "32"]).unwrap().in_flight, 32);
        let refused = produce_args(&["--in-flight", "0"]).err().unwrap();
        assert!(refused.to_string().contains("--in-flight"), "{refused}");
    }

    #[test]
    fn cli_accepts_the_documented_flags() {
        Cli::try_parse_from([
            "riffle-loadgen",
            "produce",
            "--bootstrap",
            "h:1",
            "--topic",
            "t",
            "--create-partitions",
            "4",
            "--size",
            "100",
            "--rate",
            "1000",
            "--duration",
            "30s",
            "--warmup",
            "5s",
            "--producers",
            "2",
            "--acks",
            "1",
            "--batch-bytes",
            "16384",
            "--linger-ms",
            "5",
            "--compression",
            "lz4",
            "--out",
            "d",
        ])
        .unwrap();
        Cli::try_parse_from([
            "riffle-loadgen",
            "consume",
            "--bootstrap",
            "h:1",
            "--topic",
            "t",
            "--group",
            "g",
            "--duration",
            "3s",
            "--out",
            "d",
        ])
        .unwrap();
        Cli::try_parse_from([
            "riffle-loadgen",
            "e2e",
            "--topic",
            "t",
            "--rate",
            "10",
            "--group",
            "g",
        ])
        .unwrap();
        Cli::try_parse_from(["riffle-loadgen", "compare", "a", "b", "--out", "c.svg"]).unwrap();
        Cli::try_parse_from(["riffle-loadgen", "report", "a"]).unwrap();
    }
}
