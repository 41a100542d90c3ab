//! `riffle`: a Kafka-wire-compatible broker, one shard per core.
//!
//! `riffle` alone is `riffle serve` with defaults: a single combined node listening on
//! 127.0.0.1:9092 with its data in ./riffle-data. `riffle topic|produce|consume|group|cluster`
//! are the admin CLI (`riffle-cli`).

/// mimalloc in place of glibc's malloc: a request's decode, futures and buffers are many small
/// short-lived allocations, and glibc's took 4.8 % of a flat-out broker's CPU (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod authorized_operations;
mod broker_config;
mod client_quotas;
mod cluster;
mod config;
mod connection;
mod errors;
mod group_config;
mod groups;
mod handlers;
mod io_properties;
mod logging;
mod metadata;
mod partition;
mod replica_assignment;
mod server;
mod shard;
mod topic_config;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use config::{BrokerConfig, ControllerQuorum, LogFormat, Roles};

/// Resolves when the broker is shutting down; cloned into every task that must stop.
pub type Shutdown = futures::future::Shared<futures::future::BoxFuture<'static, ()>>;

#[derive(Parser)]
#[command(
    name = "riffle",
    version,
    about = "A Kafka-compatible streaming broker, one shard per core"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (the default).
    Serve(ServeArgs),
    /// The admin CLI: topic, produce, consume, group, cluster (any Kafka-compatible broker).
    #[command(flatten)]
    Admin(riffle_cli::Command),
}

/// Every flag can also be set in the TOML file given with --config; flags win.
#[derive(Args, Default)]
struct ServeArgs {
    /// Kafka listener address.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<SocketAddr>,
    /// Address clients are told to connect to (default: the listen address).
    #[arg(long, value_name = "HOST:PORT")]
    advertised: Option<String>,
    /// Directory for logs and metadata.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Number of shards (one per core); 0 = all cores.
    #[arg(long, value_name = "N")]
    smp: Option<usize>,
    /// This node's id.
    #[arg(long, value_name = "ID")]
    node_id: Option<i32>,
    /// TOML config file (keys as in the README's configuration table).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive (RUST_LOG wins).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log lines as text, or one JSON object per line.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Admin HTTP listener: /metrics, /v1/health, /v1/ready, /v1/status and the console at /.
    #[arg(long, value_name = "HOST:PORT")]
    admin_listen: Option<SocketAddr>,
    /// What this node runs: broker,controller (combined, the default), broker or controller.
    #[arg(long, value_name = "ROLES")]
    roles: Option<Roles>,
    /// The rack this broker is in (Kafka's broker.rack).
    #[arg(long, value_name = "RACK")]
    broker_rack: Option<String>,
    /// The controller quorum's voters (Kafka's controller.quorum.voters); unset: a single node.
    #[arg(long, value_name = "ID@HOST:PORT,...")]
    controller_quorum: Option<ControllerQuorum>,
    /// Where this node's controller listens for its peers (default: its quorum entry).
    #[arg(long, value_name = "HOST:PORT")]
    controller_listen: Option<SocketAddr>,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<BrokerConfig> {
        let mut c = match &self.config {
            Some(path) => BrokerConfig::from_file(path)?,
            None => BrokerConfig::default(),
        };
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.advertised {
            c.advertised = Some(v);
        }
        if let Some(v) = self.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = self.smp {
            c.smp = v;
        }
        if let Some(v) = self.node_id {
            c.node_id = v;
        }
        if let Some(v) = self.log_level {
            c.log_level = v;
        }
        if let Some(v) = self.log_format {
            c.log_format = v;
        }
        if let Some(v) = self.admin_listen {
            c.admin_listen = Some(v);
        }
        if let Some(v) = self.roles {
            c.roles = v;
        }
        if let Some(v) = self.broker_rack {
            c.broker_rack = Some(v);
        }
        if let Some(v) = self.controller_quorum {
            c.controller_quorum = Some(v);
        }
        if let Some(v) = self.controller_listen {
            c.controller_listen = Some(v);
        }
        Ok(c)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        Some(Command::Admin(command)) => std::process::exit(riffle_cli::run(command)),
        None => ServeArgs::default(),
    };
    let config_file = args.config.clone();
    let mut config = args.into_config()?;
    logging::init(&config.log_level, config.log_format)?;
    io_properties::size_from_data_dir(&mut config, config_file.as_deref())?;
    server::run(config)
}
