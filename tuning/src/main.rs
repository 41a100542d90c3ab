//! riffle-tune: checks and tunes the Linux server a Riffle broker runs on (`check`, `apply`) and
//! measures the disk under its data dir (`iotune`), whose `io-properties.toml` the broker reads.

mod apply;
mod check;
mod iotune;
mod parse;
mod probe;
mod source;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use check::{BrokerNeeds, Host, Status};

#[derive(Parser)]
#[command(
    name = "riffle-tune",
    version,
    about = "Check and tune a server for Riffle, and measure its disk"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One row per OS setting: current, recommended, status, why. Exits 1 if any check fails.
    Check {
        #[command(flatten)]
        machine: MachineArgs,
        /// Print the table as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make the run-time changes `check` recommends (needs root), printing before and after.
    Apply {
        #[command(flatten)]
        machine: MachineArgs,
        /// Print what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply only the check with this name (as `check` prints it, or `limits`).
        #[arg(long, value_name = "NAME")]
        only: Option<String>,
        /// Also write /etc/security/limits.d/99-riffle-USER.conf (memlock, nofile) for this user.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
    /// Measure the disk under DIR with io_uring and O_DIRECT; writes DIR/io-properties.toml.
    Iotune {
        /// Directory on the disk to measure (the broker's data dir).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Total time to spend measuring (e.g. 30s, 2m).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        duration: Duration,
        /// Largest scratch file (bytes); smaller when the file system has less free space.
        #[arg(long, value_name = "BYTES", default_value_t = iotune::FILE_BYTES_DEFAULT)]
        file_bytes: u64,
        /// Do not print the progress line.
        #[arg(long)]
        quiet: bool,
    },
}

/// What the broker will be asked to do; defaults are `riffle serve`'s (see the README).
#[derive(Args)]
struct MachineArgs {
    /// The broker's TOML config file: `data_dir`, `smp` and `io_memory_bytes` are read from it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The broker's data dir [default: riffle-data, or the config's].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Shards the broker will run [default: every core this process may run on].
    #[arg(long, value_name = "N")]
    smp: Option<usize>,
    /// glommio io memory per ring [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    io_memory_bytes: Option<u64>,
    /// Partitions the broker will hold (for the open-files limit).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    partitions: u64,
    /// Client connections the broker will hold (for the open-files limit).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    connections: u64,
}

/// The keys of the broker's config file that matter here; the others are ignored.
#[derive(Deserialize, Default)]
struct BrokerFile {
    data_dir: Option<PathBuf>,
    smp: Option<usize>,
    io_memory_bytes: Option<u64>,
}

/// `riffle serve`'s defaults (broker/src/config.rs).
const BROKER_DATA_DIR_DEFAULT: &str = "riffle-data";
const BROKER_IO_MEMORY_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;

impl MachineArgs {
    fn resolve(&self, allowed_cpus: usize) -> anyhow::Result<(PathBuf, BrokerNeeds)> {
        let file: BrokerFile = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => BrokerFile::default(),
        };
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| BROKER_DATA_DIR_DEFAULT.into());
        let smp = self.smp.or(file.smp).unwrap_or(0);
        let needs = BrokerNeeds {
            shards: if smp == 0 { allowed_cpus.max(1) } else { smp },
            io_memory_bytes: self
                .io_memory_bytes
                .or(file.io_memory_bytes)
                .unwrap_or(BROKER_IO_MEMORY_BYTES_DEFAULT),
            partitions: self.partitions,
            connections: self.connections,
        };
        Ok((data_dir, needs))
    }

    /// Runs every check; file probes (a scratch file in the data dir) only when asked.
    fn check(&self, try_files: bool) -> anyhow::Result<(Vec<check::Row>, BrokerNeeds)> {
        let allowed = probe::allowed_cpus().len();
        let (data_dir, needs) = self.resolve(allowed)?;
        let probes = probe::gather(&data_dir, try_files);
        let host = Host::new(&source::LiveSource, probes, needs.clone());
        Ok((check::run(&host), needs))
    }
}

/// `--duration`: humantime's forms ("30s", "500ms", "2m"), at most `iotune::DURATION_MAX`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let duration =
        humantime::parse_duration(s.trim()).map_err(|err| format!("bad duration {s:?}: {err}"))?;
    if duration > iotune::DURATION_MAX {
        return Err(format!("duration {s:?} out of range (at most 1h)"));
    }
    Ok(duration)
}

fn run_check(machine: &MachineArgs, json: bool) -> anyhow::Result<ExitCode> {
    let (rows, _) = machine.check(true)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&check::json(&rows))?);
    } else {
        print!("{}", check::table(&rows));
    }
    let failed = rows.iter().any(|r| r.status == Status::Fail);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn run_apply(
    machine: &MachineArgs,
    dry_run: bool,
    only: Option<&str>,
    user: Option<&str>,
) -> anyhow::Result<ExitCode> {
    if !dry_run && !nix::unistd::geteuid().is_root() {
        eprintln!(
            "riffle-tune apply changes kernel and device settings, which needs root.\n\
             Run it again with sudo, or add --dry-run to see what it would change."
        );
        return Ok(ExitCode::FAILURE);
    }
    anyhow::ensure!(
        only != Some(apply::LIMITS_CHECK) || user.is_some(),
        "--only {} needs --user USER: the limits are written for a service user",
        apply::LIMITS_CHECK
    );
    let (rows, needs) = machine.check(false)?;
    let mut changes = apply::plan(&rows, only)?;
    if let Some(user) = user {
        if only.is_none_or(|o| o == apply::LIMITS_CHECK) {
            changes.push(apply::limits_change(user, &needs)?);
        }
    }
    apply::run(&changes, dry_run, &mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Check { machine, json } => run_check(&machine, json),
        Command::Apply {
            machine,
            dry_run,
            only,
            user,
        } => run_apply(&machine, dry_run, only.as_deref(), user.as_deref()),
        Command::Iotune {
            dir,
            duration,
            file_bytes,
            quiet,
        } => {
            let options = iotune::Options {
                dir,
                duration,
                file_bytes,
                progress: !quiet,
            };
            iotune::run(&options)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
