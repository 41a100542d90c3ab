//! riffle-cli: the `riffle` binary's admin commands (topic, produce, consume, group, cluster),
//! rpk-style. They speak only the Kafka protocol through `riffle-client`, so they work against
//! any Kafka-compatible broker; output is a table for people or JSON (`--json`) for scripts.

mod admin_http;
mod cluster;
mod consume;
mod group;
mod output;
mod parse;
mod produce;
mod topic;

use std::time::Duration;

use clap::{Args, Subcommand};
use riffle_client::{Client, ClientError, ConnectOptions};

pub use consume::ConsumeArgs;
pub use produce::ProduceArgs;

/// How the CLI names itself to brokers.
const CLIENT_ID: &str = "riffle-cli";
/// The broker a command talks to when `--brokers` is not given.
const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// The admin commands; the `riffle` binary flattens them beside `serve`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create, list, describe, delete and configure topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Produce the lines of standard input as records.
    Produce(ProduceArgs),
    /// Print records of a topic, alone or as a member of a consumer group.
    Consume(ConsumeArgs),
    /// List, describe, delete consumer groups and move their committed offsets.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Show the cluster: its id, controller and brokers.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
}

/// The flags every command takes.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Brokers to bootstrap from, comma-separated.
    #[arg(long, value_name = "HOST:PORT[,HOST:PORT…]", default_value = DEFAULT_BROKERS, env = "RIFFLE_BROKERS")]
    pub brokers: String,
    /// Print JSON for scripts instead of tables.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for a connection or a broker's answer.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub timeout_ms: u64,
}

impl CommonArgs {
    fn connect(&self) -> Result<Client, CliError> {
        let timeout = Duration::from_millis(self.timeout_ms.max(1));
        let options = ConnectOptions {
            client_id: CLIENT_ID.into(),
            connect_timeout: timeout,
            request_timeout: timeout,
        };
        Ok(Client::connect(&self.brokers, options)?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Arguments clap accepted but that do not make sense.
    #[error("{0}")]
    Usage(String),
    #[error("reading standard input: {0}")]
    Stdin(std::io::Error),
    /// The broker's admin listener could not be asked, or answered an error.
    #[error("{0}")]
    Admin(String),
    /// Standard output was closed (`riffle consume … | head`): stop quietly.
    #[error("standard output closed")]
    StdoutClosed,
}

/// Deletes each of `names` (topics or groups, `kind`) in turn, saying so per name, or once
/// in JSON at the end.
fn delete_each(
    common: &CommonArgs,
    kind: &str,
    names: &[String],
    mut delete: impl FnMut(&mut Client, &str) -> Result<(), ClientError>,
) -> Result<(), CliError> {
    let mut client = common.connect()?;
    for name in names {
        delete(&mut client, name)?;
        if !common.json {
            output::line(&format!("deleted {kind} '{name}'"))?;
        }
    }
    if common.json {
        return output::json(&serde_json::json!({ "deleted": names }));
    }
    Ok(())
}

/// Runs `command` and returns the process exit code; an error is printed as one line on
/// standard error: `error: UNKNOWN_TOPIC_OR_PARTITION: topic 'x': …`.
pub fn run(command: Command) -> i32 {
    let result = match command {
        Command::Topic(c) => topic::run(c),
        Command::Produce(a) => produce::run(&a),
        Command::Consume(a) => consume::run(&a),
        Command::Group(c) => group::run(c),
        Command::Cluster(c) => cluster::run(c),
    };
    match result {
        Ok(()) | Err(CliError::StdoutClosed) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
